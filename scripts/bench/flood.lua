-- Readers flooding the service while it ingests: KPI reports (one endpoint over 24 hours is
-- the most expensive), the unfiltered snapshot, and the dashboard's page and script.
local paths = {
  "/api/analytics/kpis?window=24h&endpoint=/vehicles/lock",
  "/api/analytics/kpis?window=1h",
  "/dashboard",
  "/dashboard/app.js",
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
