-- One event per request; endpoints and latencies vary like vehicle traffic.
local endpoints = {"/vehicles/lock", "/vehicles/unlock", "/vehicles/status", "/vehicles/climate", "/vehicles/location", "/vehicles/charging"}
local bodies = {}
math.randomseed(42)
for i = 1, 1000 do
  local ep = endpoints[(i % #endpoints) + 1]
  local status = 200
  if i % 50 == 0 then status = 503 elseif i % 20 == 0 then status = 404 end
  bodies[i] = string.format('{"endpoint":"%s","response_time_ms":%.2f,"status_code":%d,"client_id":"vin-%05d"}', ep, math.exp(math.random() * 5), status, i)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/events", nil, bodies[(n % 1000) + 1])
end
