// End-to-end tests of /dashboard in headless Chromium (Debian's package, driven by
// playwright-core) against the real vehicleconnect binary seeded with known events.
//
//   VC_BIN=target/debug/vehicleconnect node --test service/dashboard/tests/
//
// Screenshots go to $VC_SCREENSHOT_DIR (default target/screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = process.env.VC_BIN || join(ROOT, 'target/debug/vehicleconnect');
const CHROMIUM = process.env.VC_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.VC_SCREENSHOT_DIR || join(ROOT, 'target/screenshots');
const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const format = (key, v) => (v == null ? '—' : key.endsWith('_pct') ? `${number.format(v)} %` : key.endsWith('_ms') ? `${number.format(v)} ms` : number.format(v));

/** Starts the service on a free port with an empty embedded store; resolves to its base URL. */
function startService(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'vc-dash-'));
  const child = spawn(BIN, ['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--kpi-interval', '500ms', ...extra], {
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`service did not start:\n${log}`)), 30_000);
    child.on('error', fail);
    child.stderr.on('data', (d) => {
      log += d;
      const m = /listening addr=(\S+)/.exec(log);
      if (m) { clearTimeout(timer); ok({ base: `http://${m[1]}`, child, dir, log: () => log }); }
    });
  });
}

function stopService(svc) {
  svc.child.kill('SIGKILL');
  rmSync(svc.dir, { recursive: true, force: true });
}

async function post(base, events) {
  const r = await fetch(`${base}/api/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
  assert.equal(r.status, 201, await r.text());
}

async function kpis(base, query) {
  return (await fetch(`${base}/api/analytics/kpis?${query}`)).json();
}

/** Polls until `check` returns a truthy value. */
async function until(what, check, ms = 15_000) {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Known events: three endpoints, the unlock endpoint slow and failing.
function seed(now = Date.now()) {
  const events = [];
  const plan = [['/vehicles/lock', 120, 0.0], ['/vehicles/unlock', 900, 0.2], ['/vehicles/status', 40, 0.02]];
  for (let i = 0; i < 600; i++) {
    const [endpoint, base, errRate] = plan[i % 3];
    const ms = base * (0.5 + ((i * 7919) % 1000) / 1000);
    const status = ((i * 104729) % 1000) / 1000 < errRate ? 503 : (i % 50 === 0 ? 404 : 200);
    const ts = new Date(now - ((i * 13) % 600) * 1000 - 30_000).toISOString();
    events.push({ endpoint, response_time_ms: Math.round(ms * 100) / 100, status_code: status, client_id: `vin-${i % 40}`, timestamp: ts });
  }
  return events;
}

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => { await browser?.close(); });

/** A page that records console errors and uncaught exceptions. */
async function open(url, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  return { page, errors, context };
}

async function cardTexts(page) {
  return page.$$eval('.card', (cards) => Object.fromEntries(cards.map((c) => [c.dataset.kpi, c.querySelector('.value').textContent])));
}

function expectedCards(figures) {
  return Object.fromEntries(['requests_per_min', 'avg_latency_ms', 'p95_latency_ms', 'error_rate_pct', 'client_error_rate_pct']
    .map((k) => [k, format(k, figures[k])]));
}

test('dashboard shows the API figures, filters, switches windows, refreshes, and fits a phone', async () => {
  const svc = await startService();
  try {
    const events = seed();
    await post(svc.base, events);
    const api = await until('KPIs to cover the seeded events', async () => {
      const k = await kpis(svc.base, 'window=1h');
      return k.overall.count === events.length && k;
    });

    const { page, errors, context } = await open(`${svc.base}/dashboard?refresh=1`, { width: 1366, height: 900 });
    await page.waitForFunction(() => window.vcDashboard?.state.refreshes > 0);

    // Cards: the same numbers as the API, over the same window.
    assert.deepEqual(await cardTexts(page), expectedCards(api.overall));
    const p95Card = await page.$eval('.card[data-kpi="p95_latency_ms"]', (c) => c.className);
    assert.match(p95Card, /\b(ok|warn|crit)\b/, 'the p95 card is coloured by the thresholds');

    // Charts: drawn, one point per minute of the window.
    const charts = await page.evaluate(() => Object.fromEntries(Object.entries(window.vcDashboard.charts).map(([k, u]) => {
      const c = u.ctx.canvas;
      const px = u.ctx.getImageData(0, 0, c.width, c.height).data;
      let inked = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
      return [k, { points: u.data[0].length, series: u.data.length - 1, inked }];
    })));
    for (const [name, c] of Object.entries(charts)) {
      assert.equal(c.points, 60, `${name} has 60 points`);
      assert.ok(c.inked > 1000, `${name} canvas is drawn (${c.inked} inked pixels)`);
    }
    assert.equal(charts.latency.series, 2, 'average and p95 together');

    // Hover shows exact values and the time in the legend.
    const plot = await page.$('#chart-latency .u-over');
    const box = await plot.boundingBox();
    await page.mouse.move(box.x + box.width - 5, box.y + box.height / 2);
    const legend = await page.$$eval('#chart-latency .u-legend .u-value', (v) => v.map((e) => e.textContent));
    assert.match(legend[0], /\d{2}:\d{2}/, `legend shows the time: ${legend}`);

    // Table: every endpoint, the worst one marked; sorting works.
    const rows = await page.$$eval('#endpoints tbody tr', (trs) => trs.map((t) => ({ ep: t.dataset.endpoint, worst: t.classList.contains('worst'), cells: [...t.cells].map((c) => c.textContent) })));
    assert.equal(rows.length, 3);
    assert.deepEqual(rows.filter((r) => r.worst).map((r) => r.ep), ['/vehicles/unlock']);
    for (const r of rows) {
      const e = api.endpoints.find((x) => x.endpoint === r.ep);
      assert.deepEqual(r.cells.slice(1), [format('count', e.count), format('_ms', e.avg_latency_ms), format('_ms', e.p95_latency_ms), format('_pct', e.error_rate_pct)]);
    }
    await page.click('#endpoints th[data-key="p95_latency_ms"] button');
    const firstByP95 = await page.$eval('#endpoints tbody tr', (t) => t.dataset.endpoint);
    assert.equal(firstByP95, [...api.endpoints].sort((a, b) => b.p95_latency_ms - a.p95_latency_ms)[0].endpoint);

    await page.screenshot({ path: join(SHOTS, 'dashboard-desktop.png'), fullPage: true });

    // Clicking an endpoint filters the cards and charts to it.
    await page.click('button.ep:text-is("/vehicles/unlock")');
    await page.waitForFunction(() => window.vcDashboard.state.view?.endpoint === '/vehicles/unlock');
    const unlock = await kpis(svc.base, 'window=1h&endpoint=/vehicles/unlock');
    assert.deepEqual(await cardTexts(page), expectedCards(unlock.overall));
    assert.equal(await page.isVisible('#filter'), true);
    assert.match(page.url(), /endpoint=%2Fvehicles%2Funlock/);
    await page.click('#clear-filter');
    await page.waitForFunction(() => window.vcDashboard.state.view?.endpoint === null);

    // The window selector changes the data.
    await page.click('.seg button[data-window="15m"]');
    await page.waitForFunction(() => window.vcDashboard.state.view?.window === '15m');
    const w15 = await kpis(svc.base, 'window=15m');
    assert.deepEqual(await cardTexts(page), expectedCards(w15.overall));
    assert.equal(await page.evaluate(() => window.vcDashboard.charts.throughput.data[0].length), 15);

    // Refreshes by itself: new events show without a reload.
    const before = await page.evaluate(() => window.vcDashboard.state.refreshes);
    await post(svc.base, seed().slice(0, 30));
    await until('the API to count the new events', async () => (await kpis(svc.base, 'window=15m')).overall.count === w15.overall.count + 30);
    await page.waitForFunction((n) => window.vcDashboard.state.refreshes > n + 1, before);
    const after15 = await kpis(svc.base, 'window=15m');
    await page.waitForFunction((c) => document.querySelector('.card[data-kpi="requests_per_min"] .value').textContent === c,
      format('requests_per_min', after15.overall.requests_per_min));
    assert.match(await page.textContent('#updated'), /updated \d+ s ago/);

    // Pause stops refreshing.
    await page.click('#pause');
    assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'true');
    const paused = await page.evaluate(() => window.vcDashboard.state.refreshes);
    await page.waitForTimeout(2500);
    assert.equal(await page.evaluate(() => window.vcDashboard.state.refreshes), paused);
    await page.click('#pause');

    // Keyboard: the window buttons and the table are reachable with Tab.
    const focusable = await page.evaluate(() => [...document.querySelectorAll('button')].filter((b) => b.tabIndex >= 0).length);
    assert.ok(focusable >= 10);

    // A phone: no horizontal scroll.
    const phone = await open(`${svc.base}/dashboard?window=1h`, { width: 360, height: 780 });
    await phone.page.waitForFunction(() => window.vcDashboard?.state.refreshes > 0);
    // Without ?refresh, the page reads the KPIs as often as the service computes them (500 ms → 1 s).
    assert.equal(await phone.page.evaluate(() => window.vcDashboard.state.refreshSeconds), 1);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, 'no horizontal scroll at 360 px');
    await phone.page.screenshot({ path: join(SHOTS, 'dashboard-phone.png'), fullPage: true });
    assert.deepEqual(phone.errors, []);
    await phone.context.close();

    // The service goes away: the page says so and keeps the last data.
    stopService(svc);
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /unreachable/);
    assert.equal(await page.textContent('#health'), 'unreachable');
    assert.notEqual(await page.textContent('.card[data-kpi="requests_per_min"] .value'), '—');

    assert.deepEqual(errors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)), [],
      'no console errors (beyond the refused fetches after the service stopped)');
    await context.close();
  } finally {
    stopService(svc);
  }
});

test('a lone busy minute is drawn as a dot, and the header counts the replicas', async () => {
  const svc = await startService();
  try {
    // Events in one minute only, three minutes ago: empty minutes on both sides.
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 3 * 60_000;
    await post(svc.base, [120, 130, 900].map((ms, i) => ({ endpoint: '/vehicles/lock', response_time_ms: ms, status_code: 200, client_id: 'car-1', timestamp: new Date(minute + 1000 * (i + 1)).toISOString() })));
    await until('KPIs to cover the burst', async () => (await kpis(svc.base, 'window=15m')).overall.count === 3);
    const { page, errors, context } = await open(`${svc.base}/dashboard?refresh=1&window=15m`, { width: 1000, height: 800 });
    await page.waitForFunction(() => window.vcDashboard?.charts.latency.data[0].length === 15 && window.vcDashboard.charts.latency.data[1].some((v) => v != null));
    // uPlot drew points for the average's series, and the pixel at the minute's average is
    // inked (a line needs two neighbours: without the dot, nothing is drawn there).
    const drawn = await page.evaluate(() => {
      const u = window.vcDashboard.charts.latency;
      const i = u.data[1].findIndex((v) => v != null);
      const x = Math.round(u.valToPos(u.data[0][i], 'x', true)), y = Math.round(u.valToPos(u.data[1][i], 'y', true));
      return { points: u.series[1].points._paths != null, alpha: u.ctx.getImageData(x, y, 1, 1).data[3] };
    });
    assert.equal(drawn.points, true, 'the lone minute is drawn as a point');
    assert.ok(drawn.alpha > 200, `the lone minute is visible on the latency chart (alpha ${drawn.alpha})`);
    assert.equal(await page.textContent('#replicas'), '1 replica reporting');
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    stopService(svc);
  }
});

test('?scope=global shows every region merged, and names a region that does not answer', async () => {
  const token = 'dashboard-test-read-token';
  const us = await startService(['--read-token', token]);
  const eu = await startService(['--read-token', token, '--region-name', 'eu', '--peers', `us=${us.base},gone=http://127.0.0.1:9`]);
  try {
    const events = (n, status) => Array.from({ length: n }, (_, i) => ({ endpoint: '/vehicles/lock', response_time_ms: 100 + i, status_code: status, client_id: 'car-1' }));
    await post(us.base, events(30, 200));
    await post(eu.base, events(20, 503));
    const global = await until('the global view to count both regions', async () => {
      const v = await kpis(eu.base, 'window=15m&scope=global');
      return v.overall?.count === 50 && v;
    });
    assert.equal(global.overall.error_rate_pct, 40);
    const { page, errors, context } = await open(`${eu.base}/dashboard?refresh=1&window=15m&scope=global`, { width: 1000, height: 800 });
    await page.waitForFunction(() => /eu 20 · us 30 · gone \(no answer\)/.test(document.querySelector('#regions').textContent));
    assert.equal(await page.getAttribute('#regions', 'class'), 'muted warn');
    // The cards show the merged figures (the error rate of both regions' events: 20 of 50).
    await until('the cards to show the global figures', async () =>
      JSON.stringify(await cardTexts(page)) === JSON.stringify(expectedCards(global.overall)));
    assert.deepEqual(errors, []);
    await context.close();
    // Without the scope, the region's own view (every event failed), and no regions line.
    const own = await open(`${eu.base}/dashboard?refresh=1&window=15m`, { width: 1000, height: 800 });
    await until('the cards to show the region\'s own figures', async () => (await cardTexts(own.page)).error_rate_pct === '100 %');
    assert.equal(await own.page.isHidden('#regions'), true);
    await own.context.close();
  } finally {
    stopService(eu);
    stopService(us);
  }
});

test('an empty service shows how to send the first event', async () => {
  const svc = await startService();
  try {
    const { page, errors, context } = await open(`${svc.base}/dashboard`, { width: 1024, height: 800 });
    await page.waitForSelector('#empty:not([hidden])');
    const curl = await page.textContent('#empty-curl');
    assert.ok(curl.startsWith("curl --json '{") && curl.endsWith(`${svc.base}/api/events`), curl);
    assert.match(await page.textContent('#empty'), /vcctl simulate/);
    assert.equal(await page.textContent('.card[data-kpi="p95_latency_ms"] .value'), '—');
    assert.equal(await page.textContent('#health'), 'healthy');
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    stopService(svc);
  }
});

test('assets are served with content types, ETags and compression', async () => {
  const svc = await startService();
  try {
    const root = await fetch(`${svc.base}/`, { redirect: 'manual' });
    assert.equal(root.status, 307);
    assert.equal(root.headers.get('location'), '/dashboard');
    for (const [path, type] of [['/dashboard', 'text/html'], ['/dashboard/app.js', 'text/javascript'], ['/dashboard/style.css', 'text/css'],
      ['/dashboard/uPlot.iife.min.js', 'text/javascript'], ['/dashboard/uPlot.min.css', 'text/css']]) {
      const r = await fetch(`${svc.base}${path}`, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(r.status, 200, path);
      assert.ok(r.headers.get('content-type').startsWith(type), `${path}: ${r.headers.get('content-type')}`);
      assert.equal(r.headers.get('content-encoding'), 'gzip', `${path} is compressed`);
      const etag = r.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{16}"$/);
      const again = await fetch(`${svc.base}${path}`, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304, `${path} revalidates`);
    }
    assert.equal((await fetch(`${svc.base}/dashboard/nope.js`)).status, 404);
    // The page links its files by content hash: those may be cached a year, the page not.
    const page = await fetch(`${svc.base}/dashboard`);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    const linked = [...(await page.text()).matchAll(/"\/dashboard\/([a-zA-Z.]+)\.([0-9a-f]{16})\.(js|css)"/g)];
    assert.equal(linked.length, 4, 'every script and style sheet by its hash');
    for (const [, stem, hash, ext] of linked) {
      const r = await fetch(`${svc.base}/dashboard/${stem}.${hash}.${ext}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable', stem);
      const plain = await (await fetch(`${svc.base}/dashboard/${stem}.${ext}`)).text();
      assert.equal(await r.text(), plain, `${stem}.${hash}.${ext} is ${stem}.${ext}`);
    }
  } finally {
    stopService(svc);
  }
});

test('while the KPIs warm up after a start, the dashboard says so and never shows zeros', async () => {
  const svc = await startService();
  try {
    await post(svc.base, [{ endpoint: '/vehicles/lock', response_time_ms: 120, status_code: 200, client_id: 'car-1' }]);
    const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    // The service's own answer while it rebuilds its aggregates (error injection).
    const warming = { error: 'the KPIs are warming up: they are being rebuilt from the stored events after a start; retry in a moment' };
    await context.route('**/api/analytics/kpis*', (route) =>
      route.fulfill({ status: 503, headers: { 'retry-after': '1' }, contentType: 'application/json', body: JSON.stringify(warming) }));
    const page = await context.newPage();
    await page.goto(`${svc.base}/dashboard?refresh=1`);
    await page.waitForSelector('#banner:not([hidden])');
    const banner = await page.textContent('#banner');
    assert.match(banner, /Warming up/);
    assert.doesNotMatch(banner, /unreachable/);
    assert.equal(await page.textContent('#health'), 'healthy');
    assert.equal(await page.textContent('.card[data-kpi="requests_per_min"] .value'), '—', 'no zeros while warming up');
    // Once the KPIs are ready, they show and the banner goes.
    await context.unroute('**/api/analytics/kpis*');
    await page.waitForSelector('#banner[hidden]', { state: 'attached', timeout: 20_000 });
    assert.notEqual(await page.textContent('.card[data-kpi="requests_per_min"] .value'), '—');
    await context.close();
  } finally {
    stopService(svc);
  }
});
