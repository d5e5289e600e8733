-- wrk script: an allowed PATCH of one attribute, with the token from the environment.
wrk.method = "PATCH"
wrk.body = '{"attributes":{"given_name":"Bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ATTRGATE_BENCH_TOKEN")
