// VehicleConnect dashboard: reads only the public JSON API (/api/analytics/kpis, /api/status)
// and redraws in place, so anything it shows can be checked against the API.
'use strict';
(() => {
  const config = JSON.parse(document.getElementById('vc-config').textContent);
  const params = new URLSearchParams(location.search);
  const WINDOWS = { '15m': '15 min', '1h': '1 h', '24h': '24 h' };
  const state = {
    window: WINDOWS[params.get('window')] ? params.get('window') : '1h',
    endpoint: params.get('endpoint') || null,
    // `?scope=global`: every region of a global stack merged by the service (its peers).
    scope: params.get('scope') === 'global' ? 'global' : null,
    paused: false,
    refreshSeconds: Math.max(1, Number(params.get('refresh')) || config.refresh_seconds),
    all: null,        // unfiltered report: the endpoints table
    view: null,       // report behind the cards and charts (filtered when an endpoint is selected)
    status: null,
    updatedAt: null,
    failure: null,
    sort: { key: 'count', dir: -1 },
    refreshes: 0,
  };
  const $ = (sel) => document.querySelector(sel);
  const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  /** The text a card or cell shows for a KPI value. */
  function format(key, v) {
    if (v === null || v === undefined) return '—';
    if (key.endsWith('_pct')) return `${number.format(v)} %`;
    if (key.endsWith('_ms')) return `${number.format(v)} ms`;
    return number.format(v);
  }

  /** ok, warn or crit against the service's thresholds; '' when the KPI has none. */
  function level(key, v) {
    const t = config.thresholds[key];
    if (!t || v === null || v === undefined) return '';
    return v >= t.crit ? 'crit' : v >= t.warn ? 'warn' : 'ok';
  }

  async function getJSON(path, acceptStatuses = []) {
    const r = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
    if (!r.ok && !acceptStatuses.includes(r.status)) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  // ---- charts (uPlot) -------------------------------------------------------------------
  const charts = {};
  // A minute with data between empty ones has no line to either side: uPlot draws a dot
  // for exactly these indices (a burst in one minute would otherwise leave a chart blank).
  function isolated(u, seriesIdx, show) {
    if (show) return null;
    const ys = u.data[seriesIdx];
    const idxs = [];
    for (let i = 0; i < ys.length; i++) {
      if (ys[i] != null && (i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) idxs.push(i);
    }
    return idxs.length ? idxs : null;
  }
  function makeChart(id, series, yFormat) {
    const el = document.getElementById(id);
    const opts = {
      width: el.clientWidth || 300,
      height: 250,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      legend: { live: true },
      axes: [
        { stroke: css('--muted'), grid: { stroke: css('--line') }, ticks: { stroke: css('--line') } },
        { stroke: css('--muted'), grid: { stroke: css('--line') }, ticks: { stroke: css('--line') }, size: 56,
          values: (u, ticks) => ticks.map((v) => number.format(v)) },
      ],
      series: [
        { label: 'time', value: (u, ts) => (ts == null ? '—' : new Date(ts * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) },
        ...series.map((s) => ({
          label: s.label, stroke: css(s.color), width: 2, spanGaps: false,
          points: { show: false, filter: isolated, size: 7, fill: css(s.color) },
          value: (u, v) => (v == null ? '—' : yFormat(v)),
        })),
      ],
    };
    const chart = new uPlot(opts, [[], ...series.map(() => [])], el);
    new ResizeObserver(() => chart.setSize({ width: el.clientWidth, height: 250 })).observe(el);
    return chart;
  }

  function setupCharts() {
    charts.latency = makeChart('chart-latency', [
      { label: 'avg', color: '--c1' }, { label: 'p95', color: '--c2' },
    ], (v) => `${number.format(v)} ms`);
    charts.throughput = makeChart('chart-throughput', [{ label: 'requests/min', color: '--c3' }], (v) => number.format(v));
    charts.errors = makeChart('chart-errors', [{ label: '5xx %', color: '--c4' }], (v) => `${number.format(v)} %`);
  }

  function drawCharts(report) {
    const s = report.series;
    const x = s.map((p) => Date.parse(p.minute) / 1000);
    charts.latency.setData([x, s.map((p) => p.avg_latency_ms), s.map((p) => p.p95_latency_ms)]);
    charts.throughput.setData([x, s.map((p) => p.requests_per_min)]);
    charts.errors.setData([x, s.map((p) => (p.count ? p.error_rate_pct : null))]);
  }

  // ---- cards ------------------------------------------------------------------------------
  function drawCards(report) {
    for (const card of document.querySelectorAll('.card')) {
      const key = card.dataset.kpi;
      const v = report.overall[key];
      card.querySelector('.value').textContent = format(key, v);
      card.dataset.value = v === null ? '' : String(v);
      card.classList.remove('ok', 'warn', 'crit');
      const l = level(key, v);
      if (l) card.classList.add(l);
      card.querySelector('.delta').textContent = delta(key, v, report.previous && report.previous[key]);
    }
  }

  function delta(key, now, before) {
    const label = `vs previous ${WINDOWS[state.window]}`;
    if (now === null || now === undefined || before === null || before === undefined) return `no data for the previous ${WINDOWS[state.window]}`;
    if (before === 0) return now === 0 ? `no change ${label}` : `up from 0 ${label}`;
    const pct = ((now - before) / before) * 100;
    if (Math.abs(pct) < 0.05) return `no change ${label}`;
    return `${pct > 0 ? '▲' : '▼'} ${number.format(Math.abs(pct))} % ${label}`;
  }

  // ---- endpoints table ---------------------------------------------------------------------
  function worstEndpoint(endpoints) {
    let worst = null;
    for (const e of endpoints) {
      if (!e.count) continue;
      if (!worst || e.error_rate_pct > worst.error_rate_pct ||
          (e.error_rate_pct === worst.error_rate_pct && (e.p95_latency_ms || 0) > (worst.p95_latency_ms || 0))) worst = e;
    }
    return worst && (worst.error_rate_pct > 0 || level('p95_latency_ms', worst.p95_latency_ms) !== 'ok') ? worst.endpoint : null;
  }

  function drawTable(report) {
    const { key, dir } = state.sort;
    const rows = [...report.endpoints].sort((a, b) => {
      const va = a[key], vb = b[key];
      if (typeof va === 'string') return dir * va.localeCompare(vb);
      return dir * ((va ?? -1) - (vb ?? -1));
    });
    const worst = worstEndpoint(report.endpoints);
    const tbody = $('#endpoints tbody');
    tbody.replaceChildren(...rows.map((e) => {
      const tr = document.createElement('tr');
      tr.dataset.endpoint = e.endpoint;
      if (e.endpoint === worst) tr.classList.add('worst');
      if (e.endpoint === state.endpoint) tr.classList.add('selected');
      const name = document.createElement('td');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'ep';
      button.textContent = e.endpoint;
      button.setAttribute('aria-label', `Filter to ${e.endpoint}`);
      button.addEventListener('click', () => selectEndpoint(e.endpoint === state.endpoint ? null : e.endpoint));
      name.append(button);
      tr.append(name);
      for (const [k, cls] of [['count', 'num'], ['avg_latency_ms', 'num opt'], ['p95_latency_ms', 'num'], ['error_rate_pct', 'num']]) {
        const td = document.createElement('td');
        td.className = `${cls} ${level(k, e[k])}`.trim();
        td.textContent = format(k, e[k]);
        tr.append(td);
      }
      return tr;
    }));
    for (const th of document.querySelectorAll('#endpoints th')) {
      th.setAttribute('aria-sort', th.dataset.key === key ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }

  // ---- header, banner, empty state -------------------------------------------------------------
  function drawStatus() {
    const h = $('#health');
    if (state.failure) {
      h.className = 'health down';
      h.textContent = 'unreachable';
    } else if (state.status) {
      const ok = state.status.status === 'ok';
      h.className = `health ${ok ? 'ok' : 'degraded'}`;
      h.textContent = ok ? 'healthy' : `degraded: database ${state.status.database}`;
      $('#version').textContent = `v${state.status.version} (${state.status.git_sha})`;
      const n = state.status.replicas_reporting;
      $('#replicas').textContent = n > 0 ? `${n} ${n === 1 ? 'replica' : 'replicas'} reporting` : '';
    }
    const banner = $('#banner');
    if (state.failure) {
      const since = state.updatedAt ? `showing data from ${state.updatedAt.toLocaleTimeString()}` : 'no data yet';
      banner.textContent = `The service is unreachable (${state.failure}); ${since}. Retrying every ${state.refreshSeconds} s.`;
      banner.hidden = false;
    } else if (state.warming) {
      banner.textContent = 'Warming up: the service is reading its KPIs after a start; they appear in a moment.';
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    tick();
  }

  function tick() {
    const u = $('#updated');
    if (state.paused) { u.textContent = 'paused'; return; }
    if (!state.updatedAt) { u.textContent = 'loading…'; return; }
    const s = Math.max(0, Math.round((Date.now() - state.updatedAt) / 1000));
    u.textContent = `updated ${s} s ago`;
  }

  function drawEmpty() {
    const empty = !state.all || state.all.overall.count === 0;
    $('#empty').hidden = !(empty && state.all && !state.endpoint);
  }

  /** The regions behind a global view, and those that did not answer (their events are missing). */
  function drawRegions(regions) {
    const el = $('#regions');
    el.hidden = !regions;
    if (!regions) return;
    const missing = regions.filter((r) => r.error);
    el.textContent = `All regions: ${regions.map((r) => (r.error ? `${r.region} (no answer)` : `${r.region} ${number.format(r.count)}`)).join(' · ')}`;
    el.title = missing.map((r) => `${r.region}: ${r.error}`).join('\n');
    el.classList.toggle('warn', missing.length > 0);
  }

  function drawFilter() {
    $('#filter').hidden = !state.endpoint;
    $('#filter-name').textContent = state.endpoint || '';
  }

  // ---- data flow -------------------------------------------------------------------------------------
  let inFlight = null;
  async function refresh() {
    if (inFlight) return inFlight;
    inFlight = (async () => {
      const q = (endpoint) => {
        const p = new URLSearchParams({ window: state.window });
        if (endpoint) p.set('endpoint', endpoint);
        if (state.scope) p.set('scope', state.scope);
        return `/api/analytics/kpis?${p}`;
      };
      try {
        const [all, view, status] = await Promise.all([
          getJSON(q(null), [503]),
          state.endpoint ? getJSON(q(state.endpoint), [503]) : null,
          getJSON('/api/status', [503]),
        ]);
        state.status = status;
        state.failure = null;
        // 503 without a report: the KPIs are being rebuilt after a start. Say so; never
        // draw the empty aggregates as zero traffic.
        state.warming = !all || !all.overall || (view && !view.overall);
        if (!state.warming) {
          state.all = all;
          state.view = view || all;
          state.updatedAt = new Date();
          state.refreshes += 1;
          drawCards(state.view);
          drawCharts(state.view);
          drawTable(state.all);
          drawRegions(state.all.regions);
        }
      } catch (e) {
        state.failure = e instanceof TypeError ? 'network error' : e.message;
      } finally {
        drawStatus();
        drawEmpty();
        drawFilter();
        inFlight = null;
      }
    })();
    return inFlight;
  }

  function syncUrl() {
    const p = new URLSearchParams(location.search);
    p.set('window', state.window);
    if (state.endpoint) p.set('endpoint', state.endpoint); else p.delete('endpoint');
    history.replaceState(null, '', `${location.pathname}?${p}`);
  }

  function selectWindow(w) {
    state.window = w;
    for (const b of document.querySelectorAll('.seg button')) b.setAttribute('aria-checked', String(b.dataset.window === w));
    syncUrl();
    refresh();
  }

  function selectEndpoint(e) {
    state.endpoint = e;
    syncUrl();
    drawFilter();
    refresh();
  }

  let timer = null;
  function schedule() {
    clearInterval(timer);
    if (!state.paused) timer = setInterval(refresh, state.refreshSeconds * 1000);
  }

  // ---- wiring ------------------------------------------------------------------------------------------
  for (const b of document.querySelectorAll('.seg button')) b.addEventListener('click', () => selectWindow(b.dataset.window));
  for (const th of document.querySelectorAll('#endpoints th')) {
    th.querySelector('button').addEventListener('click', () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (key === 'endpoint' ? 1 : -1) };
      if (state.all) drawTable(state.all);
    });
  }
  $('#pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('#pause').setAttribute('aria-pressed', String(state.paused));
    $('#pause').textContent = state.paused ? 'Resume' : 'Pause';
    schedule();
    if (!state.paused) refresh();
    tick();
  });
  $('#clear-filter').addEventListener('click', () => selectEndpoint(null));
  const origin = location.origin;
  $('#empty-curl').textContent =
    `curl --json '{"endpoint":"/vehicles/lock","response_time_ms":120,"status_code":200,"client_id":"vin-001"}' ${origin}/api/events`;
  for (const o of document.querySelectorAll('.origin')) o.textContent = origin;

  for (const b of document.querySelectorAll('.seg button')) b.setAttribute('aria-checked', String(b.dataset.window === state.window));
  setupCharts();
  setInterval(tick, 1000);
  schedule();
  refresh();

  // Read-only handle for the browser tests and for curious operators in the console.
  window.vcDashboard = { state, charts, refresh };
})();
