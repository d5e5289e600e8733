-- wrk script: a read of one user (GET …/attributes), with the token from the environment.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ATTRGATE_BENCH_TOKEN")
