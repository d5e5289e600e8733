-- wrk script: the allowed PATCH of patch.lua, conditional on the user's current ETag
-- (the Cognito stub never changes its user, so the tag stays current).
wrk.method = "PATCH"
wrk.body = '{"attributes":{"given_name":"Bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ATTRGATE_BENCH_TOKEN")
wrk.headers["If-Match"] = os.getenv("ATTRGATE_BENCH_IF_MATCH")
