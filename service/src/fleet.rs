//! Replicas on one PostgreSQL: every replica shares its own aggregates of the open minutes
//! and reads everyone's, every second; one of them, the leader (an advisory lock), closes
//! minutes from the raw events, computes again the minutes that got late events, writes
//! the KPI snapshots and applies retention. The tables are in `store/fleet.rs`; the why is
//! in ARCHITECTURE.md, "KPIs across replicas".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::kpi::{Minute, US_PER_MINUTE, Window, codec, minute_of, unix_us};
use crate::kpi_engine::{ENDPOINTS_PER_MINUTE, KpiEngine};
use crate::store::{Leader, PgStore, Store};

/// How often a replica shares its partials and reads the fleet's: what bounds how fresh
/// another replica's events are in this one's KPIs (two of these, and the read itself).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// A replica counts as reporting when it said so this recently.
const REPORTING_WITHIN_S: f64 = 10.0;
/// How long one tick of the leader may spend closing minutes (a first start on a day of
/// events closes up to 1 440): the replicas' reads go on between ticks.
const CLOSE_BUDGET: Duration = Duration::from_secs(2);
/// Closed minutes with late events computed again per tick, at most.
const RECOMPUTE_PER_TICK: i64 = 100;

/// What this replica is in the fleet, for `/api/status` and `/metrics`.
pub struct Replica {
    /// Unique per process start: a restarted replica must not overwrite the partials its
    /// previous life wrote (they count committed events).
    pub id: String,
    pub leader: AtomicBool,
    /// Replicas that reported in the last [`REPORTING_WITHIN_S`] seconds (0: not known yet).
    pub reporting: AtomicI64,
    /// The leader's reconciliation lag: seconds from the end of the newest closed minute to
    /// now (-1: not the leader).
    pub lag_s: AtomicI64,
}

impl Replica {
    /// A replica among others on PostgreSQL: whether it leads and how many report are
    /// learnt by its sync.
    pub fn new() -> Replica {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        let id = format!(
            "{}-{}-{:06x}",
            if host.is_empty() { "replica" } else { &host },
            std::process::id(),
            nanos & 0xff_ffff
        );
        Replica { id, leader: AtomicBool::new(false), reporting: AtomicI64::new(0), lag_s: AtomicI64::new(-1) }
    }

    /// The embedded store's one process: it reports alone, and leads unless it is a candidate.
    pub fn alone(candidate: bool) -> Replica {
        let replica = Replica::new();
        replica.leader.store(!candidate, Ordering::Relaxed);
        replica.reporting.store(1, Ordering::Relaxed);
        replica
    }
}

impl Default for Replica {
    fn default() -> Replica {
        Replica::new()
    }
}

/// The settings the leader needs.
pub struct Duties {
    /// A candidate release never leads: it shares the store with the serving one.
    pub may_lead: bool,
    pub snapshot_every: Duration,
    pub retention: Duration,
}

/// Runs until `stopped` turns true: a sync every tick, and the leader's work when this
/// replica holds the lock.
pub async fn run(
    engine: Arc<KpiEngine>,
    store: PgStore,
    replica: Arc<Replica>,
    duties: Duties,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(SYNC_EVERY.min(duties.snapshot_every));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync = Sync { version: 0 };
    let mut leader: Option<Leader> = None;
    let mut last_retention: Option<Instant> = None;
    let (mut sync_failing, mut lead_failing) = (Failing::default(), Failing::default());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => return,
        }
        let synced = sync.run(&engine, &store, &replica).await;
        sync_failing.report(synced, "KPI sync with the fleet");
        if !duties.may_lead {
            continue;
        }
        let led = lead(&engine, &store, &replica, &duties, &mut leader, &mut last_retention, &stopped).await;
        if led.is_err() {
            // Dropping the connection lets go of the lock: another replica may take it.
            leader = None;
            replica.leader.store(false, Ordering::Relaxed);
            replica.lag_s.store(-1, Ordering::Relaxed);
        }
        lead_failing.report(led, "KPI leader work (the lead is let go)");
    }
}

/// Failures of a task that runs every second, logged once a minute at most while they last
/// (PostgreSQL down would otherwise log two lines a second), and the recovery once.
#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    logged: Option<Instant>,
}

impl Failing {
    fn report(&mut self, outcome: Result<()>, what: &str) {
        match outcome {
            Ok(()) => {
                if let Some(since) = self.since.take() {
                    tracing::info!(after_s = since.elapsed().as_secs(), "{what} works again");
                }
                self.logged = None;
            }
            Err(e) => {
                self.since.get_or_insert_with(Instant::now);
                if self.logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    self.logged = Some(Instant::now());
                    tracing::warn!(error = %format!("{e:#}"), "{what} failed; retrying every second");
                }
            }
        }
    }
}

/// A replica's reads of the fleet: where it got to in `kpi_minutes`.
struct Sync {
    version: i64,
}

impl Sync {
    async fn run(&mut self, engine: &KpiEngine, store: &PgStore, replica: &Replica) -> Result<()> {
        let now_us = unix_us(OffsetDateTime::now_utc());
        let reporting =
            store.heartbeat(&replica.id, replica.leader.load(Ordering::Relaxed), REPORTING_WITHIN_S).await?;
        replica.reporting.store(reporting, Ordering::Relaxed);
        let state = store.fleet_state().await?;
        let Some(closed) = state.closed_through else {
            return Ok(()); // No leader has started closing minutes yet.
        };
        write_own(engine, store, &replica.id, closed).await?;
        let since = minute_of(now_us) - Window::LONGEST_MINUTES;
        let rows = store.read_minutes(self.version, since).await?;
        let others = store.read_partials(closed, &replica.id).await?;
        // Open minutes: this replica's share (fresher than what it wrote) and the others'.
        let mut open: BTreeMap<i64, Minute> = BTreeMap::new();
        if let Some(own) = engine.own() {
            for (m, minute) in own.aggregates.minutes_from(closed + 1) {
                open.insert(m, minute.clone());
            }
        }
        for (m, data) in others {
            match codec::decode(&data) {
                Ok(theirs) => open.entry(m).or_default().merge(&theirs, ENDPOINTS_PER_MINUTE),
                Err(e) => tracing::warn!(minute = m, error = %e, "skipping a damaged KPI partial"),
            }
        }
        {
            let mut view = engine.view();
            let stale: Vec<i64> =
                view.minutes_from(closed + 1).map(|(m, _)| m).filter(|m| !open.contains_key(m)).collect();
            for m in stale {
                view.replace_minute(now_us, m, Minute::default());
            }
            for (m, minute) in open {
                view.replace_minute(now_us, m, minute);
            }
            // Last: a minute the leader closed since `closed` was read is in `rows`, and
            // its closed figures win over the partials read for it.
            for row in rows {
                self.version = self.version.max(row.version);
                match codec::decode(&row.data) {
                    Ok(minute) => view.replace_minute(now_us, row.minute, minute),
                    Err(e) => tracing::warn!(minute = row.minute, error = %e, "skipping a damaged KPI minute"),
                }
            }
        }
        engine.publish(OffsetDateTime::now_utc());
        // Ready once every minute before the open ones is closed (a first start on a day
        // of events closes them over a few ticks).
        if state.complete(now_us, store.timing()) {
            engine.set_ready();
        }
        Ok(())
    }
}

/// Writes this replica's changed open minutes to `kpi_partials`; forgets closed ones.
async fn write_own(engine: &KpiEngine, store: &PgStore, replica: &str, closed: i64) -> Result<()> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let Some(mut own) = engine.own() else { return Ok(()) };
        own.aggregates.forget_before(closed + 1);
        let changed = std::mem::take(&mut own.changed);
        changed
            .into_iter()
            .filter(|m| *m > closed)
            .filter_map(|m| own.aggregates.minute(m).map(|minute| (m, codec::encode(minute))))
            .collect()
    };
    if let Err(e) = store.write_partials(replica, &rows).await {
        // Written again at the next tick.
        if let Some(mut own) = engine.own() {
            own.changed.extend(rows.iter().map(|r| r.0));
        }
        return Err(e);
    }
    Ok(())
}

/// The leader's work, when this replica holds (or now takes) the lock.
async fn lead(
    engine: &KpiEngine,
    store: &PgStore,
    replica: &Replica,
    duties: &Duties,
    slot: &mut Option<Leader>,
    last_retention: &mut Option<Instant>,
    stopped: &watch::Receiver<bool>,
) -> Result<()> {
    if slot.as_ref().is_none_or(|l| !l.is_alive()) {
        *slot = Some(store.contender().await?);
    }
    let leader = slot.as_mut().expect("just set");
    if !leader.try_lead().await? {
        return Ok(());
    }
    if !replica.leader.swap(true, Ordering::Relaxed) {
        tracing::info!(replica = %replica.id, "this replica is now the KPI leader");
    }
    let now_us = unix_us(OffsetDateTime::now_utc());
    let state = leader.state().await?;
    let mut closed = match state.closed_through {
        Some(c) => c,
        None => leader.start_closing(now_us, store.timing(), store.opened_at()).await?,
    };
    let started = Instant::now();
    while closed < store.timing().closable_through(now_us) && started.elapsed() < CLOSE_BUDGET {
        closed += 1;
        leader.close(closed, ENDPOINTS_PER_MINUTE).await?;
    }
    for minute in leader.dirty(closed, RECOMPUTE_PER_TICK).await? {
        leader.recompute(minute, ENDPOINTS_PER_MINUTE).await?;
    }
    replica.lag_s.store((now_us - (closed + 1) * US_PER_MINUTE) / 1_000_000, Ordering::Relaxed);
    let interval_us = duties.snapshot_every.as_micros().max(1) as i64;
    let interval = now_us / interval_us;
    if engine.is_rebuilt() && state.snapshot_through.is_none_or(|s| s < interval) {
        // Stamped with the time its interval was picked by: one snapshot per interval.
        let rows = engine.compute(crate::kpi::from_unix_us(now_us));
        leader.write_snapshot(interval, &rows).await?;
    }
    if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(60).min(duties.retention)) {
        leader.tidy(now_us, closed).await?;
        store.make_partitions_ahead().await?;
        let mut stopped = stopped.clone();
        crate::kpi_engine::retention_pass(&Store::Postgres(store.clone()), duties.retention, &mut stopped).await?;
        // Only once done: a failed pass is tried again at the next tick.
        *last_retention = Some(Instant::now());
    }
    Ok(())
}
