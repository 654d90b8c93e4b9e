//! `api_events` on PostgreSQL is partitioned by day of `ts` (UTC), so that retention drops a
//! day's table instead of deleting its rows one by one.
//!
//! - `api_events_p<YYYYMMDD>` holds the events of one day;
//! - `api_events_until_<YYYYMMDD>`, when there is one, holds every event from before the
//!   table was partitioned (migration 5 attached the old table as it was, without copying a
//!   row): everything before that day.
//!
//! Partitions are made ahead (yesterday to [`DAYS_AHEAD`] days on) when a replica opens the
//! store and by the KPI leader every minute; an insert for a day without one (an event days
//! late) makes it and tries again, so no event is refused for want of a partition.
//! The names carry the ranges: what to make and what to drop is worked out from the names
//! alone, here, apart from the I/O.

use anyhow::{Context, Result};
use deadpool_postgres::GenericClient;
use time::{Date, Duration, OffsetDateTime, Time, format_description::FormatItem, macros::format_description};

use crate::kpi::{from_unix_us, unix_us};

/// Days made ahead of today: a day's partition is there even if no leader runs for days.
pub const DAYS_AHEAD: i64 = 3;

/// Ours, and not the migrations' or the leader's lock: two replicas making the same day's
/// partition at once would otherwise fail on the catalog's unique index.
const PARTITION_LOCK: i64 = 0x7663_7061_7274;

const DAY: &[FormatItem<'static>] = format_description!("[year][month][day]");

/// One table attached to `api_events`, as its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// The events of one day.
    Day(Date),
    /// Every event before this day (the table from before partitioning).
    Until(Date),
}

impl Partition {
    pub fn name(&self) -> String {
        match self {
            Partition::Day(d) => format!("api_events_p{}", d.format(DAY).expect("a date formats")),
            Partition::Until(d) => format!("api_events_until_{}", d.format(DAY).expect("a date formats")),
        }
    }

    pub fn parse(name: &str) -> Option<Partition> {
        let day = |s: &str| Date::parse(s, DAY).ok();
        if let Some(s) = name.strip_prefix("api_events_until_") {
            return day(s).map(Partition::Until);
        }
        name.strip_prefix("api_events_p").and_then(day).map(Partition::Day)
    }

    /// The first day after this partition's events.
    pub fn end(&self) -> Date {
        match self {
            Partition::Day(d) => d.next_day().expect("a day before 9999"),
            Partition::Until(d) => *d,
        }
    }
}

/// The UTC day of `ts_us`.
pub fn day_of(ts_us: i64) -> Date {
    from_unix_us(ts_us).date()
}

fn midnight_us(day: Date) -> i64 {
    unix_us(day.with_time(Time::MIDNIGHT).assume_utc())
}

/// The days in `days` that no partition in `existing` holds.
pub fn missing(existing: &[Partition], days: impl IntoIterator<Item = Date>) -> Vec<Date> {
    let until = existing.iter().filter_map(|p| if let Partition::Until(d) = p { Some(*d) } else { None }).max();
    let mut out: Vec<Date> =
        days.into_iter().filter(|d| until.is_none_or(|u| *d >= u) && !existing.contains(&Partition::Day(*d))).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The partitions whose every event is older than `cutoff_us`.
pub fn expired(existing: &[Partition], cutoff_us: i64) -> Vec<Partition> {
    existing.iter().filter(|p| midnight_us(p.end()) <= cutoff_us).copied().collect()
}

/// The days to have partitions for at `now`: yesterday (events a few minutes late across
/// midnight) to [`DAYS_AHEAD`] on.
pub fn wanted(now: OffsetDateTime) -> Vec<Date> {
    (-1..=DAYS_AHEAD).map(|n| now.date() + Duration::days(n)).collect()
}

/// The tables attached to `api_events`, each with whether it is being detached (a detach
/// interrupted by a crash, which dropping it finishes).
pub async fn list(client: &impl GenericClient) -> Result<Vec<(Partition, bool)>> {
    let rows = client
        .query(
            "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'api_events'::regclass",
            &[],
        )
        .await
        .context("listing the partitions of api_events")?;
    Ok(rows.iter().filter_map(|r| Some((Partition::parse(r.get(0))?, r.get(1)))).collect())
}

/// Makes a partition for each of `days` that has none; says which it made.
pub async fn make(client: &mut deadpool_postgres::Client, days: &[Date]) -> Result<Vec<Date>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK]).await?;
    let existing: Vec<Partition> = list(&tx).await?.into_iter().map(|(p, _)| p).collect();
    let made = missing(&existing, days.iter().copied());
    for day in &made {
        let (from, to) = (from_unix_us(midnight_us(*day)), from_unix_us(midnight_us(day.next_day().expect("a day"))));
        // Made apart, then attached: `CREATE TABLE ... PARTITION OF` would take an ACCESS
        // EXCLUSIVE lock on api_events, and inserts would queue behind it (and behind any long
        // reader it waits for); ATTACH takes SHARE UPDATE EXCLUSIVE, which inserts pass.
        // DDL takes no parameters: the bounds are our own timestamps, quoted by PostgreSQL.
        let sql: String = tx
            .query_one(
                "SELECT format('CREATE TABLE %1$I (LIKE api_events INCLUDING DEFAULTS);
                    ALTER TABLE api_events ATTACH PARTITION %1$I FOR VALUES FROM (%2$L) TO (%3$L)',
                    $1::text, $2::timestamptz, $3::timestamptz)",
                &[&Partition::Day(*day).name(), &from, &to],
            )
            .await?
            .get(0);
        tx.batch_execute(&sql).await.with_context(|| format!("making the partition for {day}"))?;
    }
    tx.commit().await?;
    for day in &made {
        tracing::info!(day = %day, "made the events partition for a day");
    }
    Ok(made)
}

/// Drops the partitions whose every event is older than `cutoff_us`; says which it dropped.
/// Each is detached first without blocking inserts (`DETACH ... CONCURRENTLY`, which
/// cannot run in a transaction), then dropped.
pub async fn drop_expired(client: &deadpool_postgres::Client, cutoff_us: i64) -> Result<Vec<Partition>> {
    let attached = list(client).await?;
    let existing: Vec<Partition> = attached.iter().map(|(p, _)| *p).collect();
    let gone = expired(&existing, cutoff_us);
    for p in &gone {
        let name = p.name();
        // A detach interrupted before (a crash) is finished instead of started again.
        let how = if attached.contains(&(*p, true)) { "FINALIZE" } else { "CONCURRENTLY" };
        // Two statements, two calls: one string would make them one transaction.
        for sql in [format!("ALTER TABLE api_events DETACH PARTITION {name} {how}"), format!("DROP TABLE {name}")] {
            client.batch_execute(&sql).await.with_context(|| format!("dropping the expired partition {name}"))?;
        }
        tracing::info!(partition = %name, "retention dropped a day of events");
    }
    Ok(gone)
}

/// Whether `e` is an insert that found no partition for a row.
pub fn is_missing_partition(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
        && e.as_db_error().is_some_and(|d| d.message().starts_with("no partition of relation"))
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn names_carry_the_ranges_and_nothing_else_parses() {
        assert_eq!(Partition::Day(date!(2026 - 11 - 30)).name(), "api_events_p20261130");
        assert_eq!(Partition::Until(date!(2026 - 12 - 01)).name(), "api_events_until_20261201");
        for p in [Partition::Day(date!(2026 - 01 - 09)), Partition::Until(date!(2027 - 02 - 28))] {
            assert_eq!(Partition::parse(&p.name()), Some(p));
        }
        for other in ["api_events", "api_events_p2026113", "api_events_p20261340", "api_event_ids", "api_events_px"] {
            assert_eq!(Partition::parse(other), None, "{other}");
        }
        assert_eq!(Partition::Day(date!(2026 - 12 - 31)).end(), date!(2027 - 01 - 01));
    }

    #[test]
    fn days_the_old_table_holds_or_a_partition_holds_are_not_missing() {
        let existing = [Partition::Until(date!(2026 - 11 - 28)), Partition::Day(date!(2026 - 11 - 29))];
        let days = [date!(2026 - 11 - 27), date!(2026 - 11 - 30), date!(2026 - 11 - 29), date!(2026 - 11 - 30)];
        assert_eq!(missing(&existing, days), vec![date!(2026 - 11 - 30)]);
        assert_eq!(missing(&[], [date!(2026 - 11 - 27)]), vec![date!(2026 - 11 - 27)]);
    }

    #[test]
    fn only_partitions_wholly_past_the_cutoff_expire() {
        let old = Partition::Until(date!(2026 - 11 - 20));
        let (d27, d28) = (Partition::Day(date!(2026 - 11 - 27)), Partition::Day(date!(2026 - 11 - 28)));
        let cutoff = unix_us(datetime!(2026-11-28 12:00 UTC));
        assert_eq!(expired(&[old, d27, d28], cutoff), vec![old, d27]);
        assert_eq!(expired(&[d27], unix_us(datetime!(2026-11-28 00:00 UTC))), vec![d27], "the end is exclusive");
        assert_eq!(expired(&[d27], unix_us(datetime!(2026-11-27 23:59:59 UTC))), vec![]);
    }

    #[test]
    fn wanted_days_run_from_yesterday_to_days_ahead() {
        let days = wanted(datetime!(2026-12-31 23:59 UTC));
        assert_eq!(days.first(), Some(&date!(2026 - 12 - 30)));
        assert_eq!(days.last(), Some(&date!(2027 - 01 - 03)));
        assert_eq!(days.len(), 5);
    }
}
