-- Baseline: the same single-event requests, each with an unknown field, so the service
-- parses and validates them and answers 422 without touching the store.
local bodies = {}
for i = 1, 1000 do
  bodies[i] = string.format('{"endpoint":"/vehicles/lock","response_time_ms":%d.5,"status_code":200,"client_id":"vin-%05d","baseline":1}', i % 500, i)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/events", nil, bodies[(n % 1000) + 1])
end
