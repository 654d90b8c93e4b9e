//! The replicas' shared KPI state in PostgreSQL (why and how: ARCHITECTURE.md, "KPIs across
//! replicas"):
//!
//! - `kpi_partials`: each replica's own aggregates of the minutes still open, one row per
//!   (minute, replica), rewritten every second;
//! - `kpi_minutes`: each closed minute's aggregates, computed by the leader from the raw
//!   events (so a replica that died before writing its partials loses nothing), numbered by
//!   `version` in the order they were written;
//! - `kpi_dirty`: minutes that got late events after they closed, marked in the same
//!   transaction as the events, for the leader to compute again;
//! - `kpi_state`: `closed_through` (the newest closed minute), `ready_after` (the newest
//!   minute with events from before the shared aggregates: complete once closed) and
//!   `snapshot_through` (the newest snapshot interval written).
//!
//! Only the leader, which holds a session advisory lock on a connection of its own, writes
//! `kpi_minutes` and `kpi_state`, and only on that connection: a leader that lost the lock
//! lost the connection too, and cannot write after its successor.

use anyhow::{Context, Result};
use tokio_postgres::{Client, IsolationLevel, NoTls};

use super::{PgStore, SnapshotRow};
use crate::kpi::sketch::{MIN_INDEXABLE, Sketch, ln_gamma};
use crate::kpi::{Agg, Minute, US_PER_MINUTE, from_unix_us, minute_of};

/// Ours, and not the migrations' lock.
const LEADER_LOCK: i64 = 0x7663_6b70_696c;

/// When a minute stops taking partials, and when the leader closes it. Every replica of a
/// fleet must use the same (`--kpi-close-after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A minute takes partial aggregates until this long after its end; an event for a
    /// minute older than that is late: its commit marks the minute for the leader.
    pub open_for_us: i64,
    /// The leader closes a minute this long after its end. The third past `open_for_us`
    /// covers an insert still in flight and clocks that disagree (30 s by default).
    pub close_after_us: i64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::closing_after(std::time::Duration::from_secs(90))
    }
}

impl Timing {
    pub fn closing_after(close_after: std::time::Duration) -> Timing {
        let close_after_us = close_after.as_micros().min(i64::MAX as u128) as i64;
        Timing { open_for_us: close_after_us / 3 * 2, close_after_us }
    }

    /// The minutes (inside the longest window) of the events at `ts_us` that are late at `now_us`.
    pub fn late_minutes(&self, ts_us: impl Iterator<Item = i64>, now_us: i64) -> Vec<i64> {
        let oldest = minute_of(now_us) - crate::kpi::Window::LONGEST_MINUTES;
        let mut late: Vec<i64> = ts_us
            .filter(|ts| (minute_of(*ts) + 1) * US_PER_MINUTE + self.open_for_us <= now_us)
            .map(minute_of)
            .filter(|m| *m > oldest)
            .collect();
        late.sort_unstable();
        late.dedup();
        late
    }

    /// The newest minute the leader may close at `now_us`.
    pub fn closable_through(&self, now_us: i64) -> i64 {
        minute_of(now_us - self.close_after_us) - 1
    }
}

/// What `kpi_state` says.
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetState {
    pub closed_through: Option<i64>,
    pub ready_after: Option<i64>,
    pub snapshot_through: Option<i64>,
}

impl FleetState {
    /// Whether the aggregates cover every event at `now_us`: every minute before the open
    /// ones is closed, and so is the newest one with events from before the shared state.
    pub fn complete(&self, now_us: i64, timing: Timing) -> bool {
        let caught_up = |c: i64| c >= timing.closable_through(now_us) - 1;
        self.closed_through.is_some_and(|c| caught_up(c) && self.ready_after.is_none_or(|r| c >= r))
    }
}

/// A row of `kpi_minutes`.
pub struct MinuteRow {
    pub minute: i64,
    pub version: i64,
    pub data: Vec<u8>,
}

impl PgStore {
    pub async fn fleet_state(&self) -> Result<FleetState> {
        let client = self.pool.get().await?;
        state_of(&client).await
    }

    /// Writes this replica's aggregates of the given minutes, in place of what it wrote before.
    pub async fn write_partials(&self, replica: &str, rows: &[(i64, Vec<u8>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let minutes: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let data: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        client
            .execute(
                "INSERT INTO kpi_partials (minute, replica, data)
                 SELECT m, $2, d FROM UNNEST($1::int8[], $3::bytea[]) AS t(m, d)
                 ON CONFLICT (minute, replica) DO UPDATE SET data = excluded.data, updated_at = now()",
                &[&minutes, &replica, &data],
            )
            .await
            .context("writing this replica's KPI partials")?;
        Ok(())
    }

    /// Every other replica's partials of the minutes after `closed_through`.
    pub async fn read_partials(&self, closed_through: i64, except: &str) -> Result<Vec<(i64, Vec<u8>)>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT minute, data FROM kpi_partials WHERE minute > $1 AND replica <> $2 ORDER BY minute",
                &[&closed_through, &except],
            )
            .await
            .context("reading the other replicas' KPI partials")?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The closed minutes written after `version`, from `since_minute` on.
    pub async fn read_minutes(&self, after_version: i64, since_minute: i64) -> Result<Vec<MinuteRow>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT minute, version, data FROM kpi_minutes WHERE version > $1 AND minute >= $2 ORDER BY version",
                &[&after_version, &since_minute],
            )
            .await
            .context("reading the closed KPI minutes")?;
        Ok(rows.iter().map(|r| MinuteRow { minute: r.get(0), version: r.get(1), data: r.get(2) }).collect())
    }

    /// A connection of its own, from which to contend for leadership ([`Leader::try_lead`]).
    pub async fn contender(&self) -> Result<Leader> {
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.context("connecting for the KPI leader lock")?;
                tokio::spawn(watch(connection));
                client
            }
            None => {
                let (client, connection) =
                    self.config.connect(NoTls).await.context("connecting for the KPI leader lock")?;
                tokio::spawn(watch(connection));
                client
            }
        };
        Ok(Leader { client, held: false })
    }

    /// Says this replica is alive (and whether it leads), and how many replicas did so in the
    /// last `within_s` seconds.
    pub async fn heartbeat(&self, replica: &str, leader: bool, within_s: f64) -> Result<i64> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO kpi_replicas (replica, seen_at, leader) VALUES ($1, now(), $2)
                 ON CONFLICT (replica) DO UPDATE SET seen_at = now(), leader = excluded.leader",
                &[&replica, &leader],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM kpi_replicas WHERE seen_at > now() - make_interval(secs => $1)",
                &[&within_s],
            )
            .await?;
        Ok(row.get(0))
    }
}

async fn state_of(client: &Client) -> Result<FleetState> {
    let rows = client.query("SELECT key, value FROM kpi_state", &[]).await.context("reading kpi_state")?;
    let get = |k: &str| rows.iter().find(|r| r.get::<_, &str>(0) == k).map(|r| r.get::<_, i64>(1));
    Ok(FleetState {
        closed_through: get("closed_through"),
        ready_after: get("ready_after"),
        snapshot_through: get("snapshot_through"),
    })
}

/// A connection that contends for the KPI leader's advisory lock and, once it holds it,
/// does the leader's writes: the lock lasts as long as the connection.
pub struct Leader {
    client: Client,
    held: bool,
}

impl Leader {
    /// Takes the lock if no other replica holds it; true while this connection holds it.
    pub async fn try_lead(&mut self) -> Result<bool> {
        if !self.held {
            self.held = self.client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await?.get(0);
        }
        Ok(self.held)
    }

    /// False once the connection (and with it any lock) is gone.
    pub fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }

    pub async fn state(&self) -> Result<FleetState> {
        state_of(&self.client).await
    }

    /// The first leader of a database decides where closing starts: after the last minute
    /// before its oldest event of the longest window (those minutes are computed from the
    /// raw events, once), or at the newest closable minute when there are none. Events
    /// received before this process opened the store may be in no replica's partials (a
    /// release before them wrote them): the KPIs are ready once the newest one's minute is
    /// closed. Events received since are this replica's, or another's, and in its partials.
    pub async fn start_closing(&self, now_us: i64, timing: Timing, opened_at: time::OffsetDateTime) -> Result<i64> {
        let oldest = from_unix_us((minute_of(now_us) - crate::kpi::Window::LONGEST_MINUTES) * US_PER_MINUTE);
        let row = self
            .client
            .query_one(
                "SELECT min(ts), max(ts) FILTER (WHERE received_at < $2) FROM api_events WHERE ts >= $1",
                &[&oldest, &opened_at],
            )
            .await?;
        let (first, last): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) = (row.get(0), row.get(1));
        let closed = first.map_or(timing.closable_through(now_us), |ts| minute_of(crate::kpi::unix_us(ts)) - 1);
        let ready_after = last.map_or(closed, |ts| minute_of(crate::kpi::unix_us(ts)));
        self.client
            .execute(
                "INSERT INTO kpi_state (key, value) VALUES ('closed_through', $1), ('ready_after', $2)
                 ON CONFLICT (key) DO NOTHING",
                &[&closed, &ready_after],
            )
            .await?;
        Ok(self.state().await?.closed_through.unwrap_or(closed))
    }

    /// Closes `minute`: its aggregates from the raw events, in place of the replicas'
    /// partials, in one transaction that also moves `closed_through` to it.
    pub async fn close(&mut self, minute: i64, endpoints_per_minute: usize) -> Result<()> {
        let tx = self.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start().await?;
        let data = crate::kpi::codec::encode(&compute(&tx, minute, endpoints_per_minute).await?);
        write_minute(&tx, minute, &data).await?;
        tx.execute("DELETE FROM kpi_partials WHERE minute <= $1", &[&minute]).await?;
        tx.execute("DELETE FROM kpi_dirty WHERE minute = $1", &[&minute]).await?;
        tx.execute("UPDATE kpi_state SET value = $1 WHERE key = 'closed_through' AND value < $1", &[&minute]).await?;
        tx.commit().await.with_context(|| format!("closing KPI minute {minute}"))?;
        Ok(())
    }

    /// Closed minutes with late events, oldest first, at most `limit`.
    pub async fn dirty(&self, closed_through: i64, limit: i64) -> Result<Vec<i64>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT minute FROM kpi_dirty WHERE minute <= $1 ORDER BY minute LIMIT $2",
                &[&closed_through, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Computes a closed `minute` again, with its late events. The marks it removes are
    /// those its snapshot saw: a late event committed since keeps its mark for the next pass.
    pub async fn recompute(&mut self, minute: i64, endpoints_per_minute: usize) -> Result<()> {
        let tx = self.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start().await?;
        let data = crate::kpi::codec::encode(&compute(&tx, minute, endpoints_per_minute).await?);
        write_minute(&tx, minute, &data).await?;
        tx.execute("DELETE FROM kpi_dirty WHERE minute = $1", &[&minute]).await?;
        tx.commit().await.with_context(|| format!("computing KPI minute {minute} again"))?;
        Ok(())
    }

    /// Marks of minutes outside the longest window, and partials of closed minutes that a
    /// replica wrote late: nobody reads them.
    pub async fn tidy(&self, now_us: i64, closed_through: i64) -> Result<()> {
        let oldest = minute_of(now_us) - crate::kpi::Window::LONGEST_MINUTES;
        self.client.execute("DELETE FROM kpi_dirty WHERE minute <= $1", &[&oldest]).await?;
        self.client.execute("DELETE FROM kpi_minutes WHERE minute <= $1", &[&oldest]).await?;
        self.client.execute("DELETE FROM kpi_partials WHERE minute <= $1", &[&closed_through]).await?;
        self.client.execute("DELETE FROM kpi_replicas WHERE seen_at < now() - interval '1 hour'", &[]).await?;
        Ok(())
    }

    /// Writes the snapshot of interval `interval` unless one was written for it: true when
    /// this call wrote it.
    pub async fn write_snapshot(&mut self, interval: i64, rows: &[SnapshotRow]) -> Result<bool> {
        let tx = self.client.transaction().await?;
        let claimed = tx
            .execute(
                "INSERT INTO kpi_state (key, value) VALUES ('snapshot_through', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE kpi_state.value < excluded.value",
                &[&interval],
            )
            .await?;
        if claimed == 0 {
            return Ok(false);
        }
        super::postgres::insert_snapshot_rows(&tx, rows).await?;
        tx.commit().await.context("writing the KPI snapshot")?;
        Ok(true)
    }
}

async fn write_minute(tx: &tokio_postgres::Transaction<'_>, minute: i64, data: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO kpi_minutes (minute, version, data) VALUES ($1, nextval('kpi_minutes_version_seq'), $2)
         ON CONFLICT (minute) DO UPDATE SET version = excluded.version, data = excluded.data",
        &[&minute, &data],
    )
    .await?;
    Ok(())
}

/// One minute's aggregates from its raw events, computed in PostgreSQL: the busiest
/// endpoints (the rest as `other`), then each one's counts and sketch bins, whose index is
/// the one `Sketch` computes (`ceil(ln(v) / ln(gamma))`, the same IEEE operations). What
/// crosses the network is bounded by endpoints × bins, never by the minute's events.
async fn compute(tx: &tokio_postgres::Transaction<'_>, minute: i64, limit: usize) -> Result<Minute> {
    let (from, to) = (from_unix_us(minute * US_PER_MINUTE), from_unix_us((minute + 1) * US_PER_MINUTE));
    let busiest: Vec<String> = tx
        .query(
            "SELECT endpoint FROM api_events WHERE ts >= $1 AND ts < $2
             GROUP BY endpoint ORDER BY count(*) DESC, endpoint LIMIT $3",
            &[&from, &to, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows = tx
        .query(
            "SELECT CASE WHEN endpoint = ANY($3) THEN endpoint ELSE $4 END AS e,
                    CASE WHEN response_time_ms < $5 THEN NULL ELSE ceil(ln(response_time_ms) / $6)::int4 END AS bin,
                    count(*), sum(response_time_ms), min(response_time_ms), max(response_time_ms),
                    count(*) FILTER (WHERE status_code >= 500),
                    count(*) FILTER (WHERE status_code BETWEEN 400 AND 499)
             FROM api_events WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2 ORDER BY 1, 2",
            &[&from, &to, &busiest, &crate::kpi::OTHER_ENDPOINT, &MIN_INDEXABLE, &ln_gamma()],
        )
        .await?;
    let mut endpoints: Vec<(String, Agg)> = Vec::new();
    let mut current: Option<(String, Parts)> = None;
    for r in &rows {
        let name: String = r.get(0);
        if current.as_ref().is_some_and(|(n, _)| *n != name) {
            endpoints.extend(current.take().map(|(n, p)| (n, p.agg())));
        }
        let parts = &mut current.get_or_insert_with(|| (name, Parts::default())).1;
        let n = r.get::<_, i64>(2) as u64;
        match r.get::<_, Option<i32>>(1) {
            Some(bin) => parts.bins.push((bin, n.min(u64::from(u32::MAX)) as u32)),
            None => parts.zero += n,
        }
        parts.count += n;
        parts.sum_ms += r.get::<_, f64>(3);
        parts.min = parts.min.min(r.get(4));
        parts.max = parts.max.max(r.get(5));
        parts.server_errors += r.get::<_, i64>(6) as u64;
        parts.client_errors += r.get::<_, i64>(7) as u64;
    }
    endpoints.extend(current.map(|(n, p)| (n, p.agg())));
    Ok(Minute::from_endpoints(endpoints, limit))
}

/// One endpoint's rows of [`compute`], added up.
struct Parts {
    count: u64,
    sum_ms: f64,
    server_errors: u64,
    client_errors: u64,
    zero: u64,
    min: f64,
    max: f64,
    bins: Vec<(i32, u32)>,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            count: 0,
            sum_ms: 0.0,
            server_errors: 0,
            client_errors: 0,
            zero: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            bins: Vec::new(),
        }
    }
}

impl Parts {
    fn agg(self) -> Agg {
        let sketch = Sketch::from_parts(self.zero, self.min, self.max, self.bins);
        Agg::from_parts(self.count, self.sum_ms, self.server_errors, self.client_errors, sketch)
    }
}

/// Drives the leader lock's connection; says when it ends.
async fn watch<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "the KPI leader lock's connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 29_000_000; // a minute, as unix minutes

    #[test]
    fn an_event_is_late_once_its_minute_has_been_over_for_a_minute() {
        let t = Timing::default();
        assert_eq!(t.open_for_us, 60_000_000);
        let end = (M + 1) * US_PER_MINUTE;
        assert!(t.late_minutes([M * US_PER_MINUTE].into_iter(), end + t.open_for_us - 1).is_empty());
        assert_eq!(t.late_minutes([M * US_PER_MINUTE, M * US_PER_MINUTE + 5].into_iter(), end + t.open_for_us), [M]);
        let a_day_ago = (M - crate::kpi::Window::LONGEST_MINUTES) * US_PER_MINUTE;
        assert!(t.late_minutes([a_day_ago].into_iter(), end).is_empty(), "outside every window: nothing to do");
    }

    #[test]
    fn the_leader_closes_a_minute_after_the_late_mark_starts() {
        let t = Timing::default();
        let end = (M + 1) * US_PER_MINUTE;
        assert_eq!(t.closable_through(end + t.close_after_us - 1), M - 1);
        assert_eq!(t.closable_through(end + t.close_after_us), M);
        assert!(t.close_after_us > t.open_for_us);
    }
}
