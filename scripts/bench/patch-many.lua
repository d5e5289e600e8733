-- wrk script: the allowed PATCH of patch.lua, each to one of 10,000 users at random, so
-- that concurrent requests rarely wait for each other's user (one writer per user).
wrk.method = "PATCH"
wrk.body = '{"attributes":{"given_name":"Bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ATTRGATE_BENCH_TOKEN")
request = function()
   local path = "/pools/us-east-1_bench/users/u" .. math.random(1, 10000) .. "/attributes"
   return wrk.format(nil, path)
end
