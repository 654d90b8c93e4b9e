-- 1000 events per NDJSON request.
local endpoints = {"/vehicles/lock", "/vehicles/unlock", "/vehicles/status", "/vehicles/climate", "/vehicles/location", "/vehicles/charging"}
math.randomseed(7)
local lines = {}
for i = 1, 1000 do
  local ep = endpoints[(i % #endpoints) + 1]
  local status = 200
  if i % 50 == 0 then status = 503 elseif i % 20 == 0 then status = 404 end
  lines[i] = string.format('{"endpoint":"%s","response_time_ms":%.2f,"status_code":%d,"client_id":"vin-%05d"}', ep, math.exp(math.random() * 5), status, i)
end
wrk.method = "POST"
wrk.path = "/api/events"
wrk.headers["Content-Type"] = "application/x-ndjson"
wrk.body = table.concat(lines, "\n")
