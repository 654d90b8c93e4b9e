//! The KPI engine: keeps the per-minute aggregates current and publishes every window's
//! report. On the embedded store it also writes a snapshot to `kpi_snapshots` each
//! `--kpi-interval`, rebuilds the aggregates from the store after a restart, and applies
//! retention; on PostgreSQL the fleet loop (`fleet.rs`) does the equivalent for the fleet.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Result;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::ingest::Event;
use crate::kpi::{Aggregates, KpiLimits, KpiReport, US_PER_MINUTE, Window, unix_us};
use crate::store::{SnapshotRow, Store};

/// Endpoints with aggregates of their own in one minute (docs/security.md).
pub const ENDPOINTS_PER_MINUTE: usize = 200;

/// The bounds of the KPI state: [`ENDPOINTS_PER_MINUTE`], and `--kpi-memory` in all.
pub fn kpi_limits(budget_bytes: usize) -> KpiLimits {
    KpiLimits { endpoints_per_minute: ENDPOINTS_PER_MINUTE, budget_bytes }
}
/// Rows per retention `DELETE`, so that one pass never holds a long lock.
const RETENTION_CHUNK: usize = 10_000;
/// Rows per read while rebuilding the aggregates: with 256-character endpoint names, a
/// chunk is a few MB, well inside what the running service's requests may hold.
const REBUILD_CHUNK: usize = 10_000;

pub struct KpiEngine {
    /// What the reports are computed from: this process's events on the embedded store; on
    /// PostgreSQL, the fleet's (`fleet.rs`): closed minutes as the leader computed them, open
    /// ones as every replica's partials add up.
    aggregates: Mutex<Aggregates>,
    /// On PostgreSQL: this replica's own events of the minutes still open, and which of
    /// those minutes changed since they were last written to `kpi_partials`.
    own: Option<Mutex<Own>>,
    /// The latest report of each window (unfiltered), in `Window::ALL` order.
    latest: RwLock<Arc<Vec<KpiReport>>>,
    /// False until the aggregates hold every event committed before start-up.
    rebuilt: watch::Sender<bool>,
}

/// A replica's own share of the open minutes.
pub struct Own {
    pub aggregates: Aggregates,
    pub changed: BTreeSet<i64>,
}

impl KpiEngine {
    /// One process's KPIs, from its own events (the embedded store).
    pub fn new(limits: KpiLimits) -> KpiEngine {
        KpiEngine::with_own(limits, None)
    }

    /// A replica of a fleet on PostgreSQL: its own events go to `kpi_partials`, its
    /// reports are the fleet's (`fleet.rs`).
    pub fn replica(limits: KpiLimits) -> KpiEngine {
        KpiEngine::with_own(
            limits,
            Some(Mutex::new(Own { aggregates: Aggregates::new(limits), changed: BTreeSet::new() })),
        )
    }

    fn with_own(limits: KpiLimits, own: Option<Mutex<Own>>) -> KpiEngine {
        let now = OffsetDateTime::now_utc();
        let aggregates = Aggregates::new(limits);
        let latest = Window::ALL.iter().map(|w| aggregates.report(*w, now, None)).collect();
        KpiEngine {
            aggregates: Mutex::new(aggregates),
            own,
            latest: RwLock::new(Arc::new(latest)),
            rebuilt: watch::Sender::new(false),
        }
    }

    /// Adds committed events to the aggregates (a replica's: to its own share).
    pub fn record(&self, events: &[Event]) {
        let now_us = unix_us(OffsetDateTime::now_utc());
        match &self.own {
            None => self.view().record(now_us, events.iter().map(Event::observation)),
            Some(own) => {
                let mut own = own.lock().unwrap_or_else(|p| p.into_inner());
                own.aggregates.record(now_us, events.iter().map(Event::observation));
                own.changed.extend(events.iter().map(|e| crate::kpi::minute_of(e.ts_us)));
            }
        }
    }

    /// A replica's own share (`None` on the embedded store).
    pub fn own(&self) -> Option<std::sync::MutexGuard<'_, Own>> {
        self.own.as_ref().map(|o| o.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Says the KPIs are complete (`kpis_ready`).
    pub fn set_ready(&self) {
        self.rebuilt.send_if_modified(|ready| !std::mem::replace(ready, true));
    }

    /// The aggregates the reports are computed from.
    pub fn view(&self) -> std::sync::MutexGuard<'_, Aggregates> {
        // A panic while holding the lock leaves the aggregates as they were after the last
        // complete record; they remain usable.
        self.aggregates.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The report for `window`: the latest snapshot, or a fresh computation for one endpoint.
    pub fn report(&self, window: Window, endpoint: Option<&str>) -> KpiReport {
        match endpoint {
            None => {
                let latest = self.latest.read().unwrap_or_else(|p| p.into_inner()).clone();
                let i = Window::ALL.iter().position(|w| *w == window).expect("every window has a report");
                latest[i].clone()
            }
            Some(e) => self.view().report(window, OffsetDateTime::now_utc(), Some(e)),
        }
    }

    /// Heap bytes the aggregates hold (their own accounting, bounded by the budget), and the budget.
    pub fn state_bytes(&self) -> (usize, usize) {
        let aggregates = self.view();
        (aggregates.heap_bytes(), aggregates.budget_bytes())
    }

    pub fn is_rebuilt(&self) -> bool {
        *self.rebuilt.borrow()
    }

    /// Computes every window's report now and publishes it (what unfiltered reports answer).
    pub fn publish(&self, now: OffsetDateTime) -> Arc<Vec<KpiReport>> {
        let reports: Vec<KpiReport> = {
            let mut aggregates = self.view();
            aggregates.prune(unix_us(now));
            Window::ALL.iter().map(|w| aggregates.report(*w, now, None)).collect()
        };
        let reports = Arc::new(reports);
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = reports.clone();
        reports
    }

    /// One KPI pass: publishes every window's report, and returns the rows for `kpi_snapshots`.
    pub fn compute(&self, now: OffsetDateTime) -> Vec<SnapshotRow> {
        let reports = self.publish(now);
        let computed_at_us = unix_us(now);
        let mut rows = Vec::new();
        for r in reports.iter() {
            let window_s = (r.window.minutes() * 60) as i32;
            rows.push(SnapshotRow { computed_at_us, window_s, endpoint: None, figures: r.overall.clone() });
            for e in &r.endpoints {
                rows.push(SnapshotRow {
                    computed_at_us,
                    window_s,
                    endpoint: Some(e.endpoint.clone()),
                    figures: e.figures.clone(),
                });
            }
        }
        rows
    }

    /// Reads back the events of the longest window committed before start-up (ids up to
    /// `max_id`); events committed since are recorded live, so none is counted twice.
    pub async fn rebuild(&self, store: &Store, max_id: i64) -> Result<u64> {
        let now_us = unix_us(OffsetDateTime::now_utc());
        let since_us = (now_us / US_PER_MINUTE - Window::LONGEST_MINUTES) * US_PER_MINUTE;
        // (ts, id) > (since, MIN) is ts >= since: the first chunk starts at the window.
        let mut cursor = (since_us, i64::MIN);
        let mut total = 0;
        loop {
            let chunk = store.scan_events(since_us, max_id, cursor, REBUILD_CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            cursor = (last.ts_us, last.id);
            total += chunk.len() as u64;
            let now_us = unix_us(OffsetDateTime::now_utc());
            self.view().record(
                now_us,
                chunk.iter().map(|e| crate::kpi::Observation {
                    ts_us: e.ts_us,
                    endpoint: &e.endpoint,
                    response_time_ms: e.response_time_ms,
                    status_code: e.status_code,
                }),
            );
            if chunk.len() < REBUILD_CHUNK {
                break;
            }
        }
        self.rebuilt.send_replace(true);
        Ok(total)
    }

    /// Every `interval`: a KPI pass and its snapshot rows. Runs until `shutdown` flips.
    pub async fn run_snapshots(&self, store: Store, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut rebuilt = self.rebuilt.subscribe();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                // Publish the rebuilt figures at once instead of a whole interval later.
                Ok(()) = rebuilt.changed() => {}
                _ = shutdown.changed() => return,
            }
            let started = std::time::Instant::now();
            let rows = self.compute(OffsetDateTime::now_utc());
            let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            if !self.is_rebuilt() {
                // Snapshots of half-rebuilt aggregates would be wrong; serve them, do not store them.
                continue;
            }
            let n = rows.len();
            match store.insert_snapshots(Arc::new(rows)).await {
                Ok(()) => tracing::debug!(rows = n, elapsed_ms, "KPI snapshot written"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not write the KPI snapshot; will retry next interval")
                }
            }
        }
    }
}

/// Deletes events and snapshots older than `retention`, in bounded chunks, every `every`.
pub async fn run_retention(store: Store, retention: Duration, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = retention_pass(&store, retention, &mut shutdown).await {
            tracing::warn!(error = %format!("{e:#}"), "retention pass failed; will retry")
        }
    }
}

/// Deletes events and snapshots older than `retention` (stopping early when `shutdown`
/// flips), and says how many went.
pub(crate) async fn retention_pass(
    store: &Store,
    retention: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    let cutoff_us = unix_us(OffsetDateTime::now_utc()) - retention.as_micros() as i64;
    let (events, snapshots) = delete_all_before(store, cutoff_us, shutdown).await?;
    if events + snapshots > 0 {
        tracing::info!(events, snapshots, "retention removed old rows");
    }
    Ok(())
}

async fn delete_all_before(store: &Store, cutoff_us: i64, shutdown: &mut watch::Receiver<bool>) -> Result<(u64, u64)> {
    let mut events = 0;
    loop {
        let n = store.expire_events(cutoff_us, RETENTION_CHUNK).await?;
        events += n;
        if n < RETENTION_CHUNK as u64 || *shutdown.borrow() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut snapshots = 0;
    loop {
        let n = store.delete_snapshots_before(cutoff_us, RETENTION_CHUNK).await?;
        snapshots += n;
        if n < RETENTION_CHUNK as u64 || *shutdown.borrow() {
            break;
        }
    }
    Ok((events, snapshots))
}
