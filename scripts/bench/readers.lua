-- Dashboard readers as a browser brings them: the KPI reports a dashboard asks for (the
-- snapshot of each window and one endpoint over 24 hours), the page, and its script by the
-- hashed name the page links (BENCH_ASSET, found by scripts/bench-cache).
local asset = os.getenv("BENCH_ASSET") or "/dashboard/app.js"
local paths = {
  "/api/analytics/kpis?window=1h",
  "/api/analytics/kpis?window=15m",
  "/api/analytics/kpis?window=24h&endpoint=/vehicles/lock",
  "/dashboard",
  asset,
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
