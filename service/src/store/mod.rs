//! Durable storage of events and KPI snapshots: PostgreSQL in production, an embedded SQLite
//! file by default. Both hold the same tables (`api_events`, `kpi_snapshots`) and run their
//! migrations at start-up.

pub mod fleet;
pub mod partitions;
mod postgres;
mod sqlite;
pub mod tls;

pub use tls::DatabaseTls;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::ingest::Event;
use crate::kpi::Figures;

pub use fleet::{FleetState, Leader, MinuteRow};
pub use postgres::{MIGRATIONS as POSTGRES_MIGRATIONS, PgStore};
pub use sqlite::SqliteStore;

/// An event as read back for rebuilding the KPI aggregates.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub ts_us: i64,
    pub endpoint: String,
    pub response_time_ms: f64,
    pub status_code: u16,
}

/// Where an event was stored: its id, and whether it was stored before (its `event_id`
/// was already there), in which case it was not stored again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub duplicate: bool,
}

/// One row of `kpi_snapshots`: the KPIs of one window for all endpoints (`endpoint: None`)
/// or for one.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub computed_at_us: i64,
    pub window_s: i32,
    pub endpoint: Option<String>,
    pub figures: Figures,
}

/// Where a scan of events resumes: after this `(ts_us, id)`.
pub type ScanCursor = (i64, i64);

#[derive(Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Store {
    /// Opens the store named by `database` (a `postgres://` URL), or the embedded store in
    /// `data_dir` when there is none, and brings its schema up to date.
    /// `timing`: when minutes close, for the replicas of a fleet on PostgreSQL.
    /// `tls`: PostgreSQL over TLS with the server's certificate pinned.
    pub async fn open(
        database: Option<&str>,
        tls: Option<DatabaseTls>,
        data_dir: &Path,
        connect_timeout: Duration,
        timing: fleet::Timing,
    ) -> Result<Store> {
        match database {
            Some(url) => Ok(Store::Postgres(PgStore::open(url, tls, connect_timeout, timing).await?)),
            None => Ok(Store::Sqlite(SqliteStore::open(&data_dir.join("vehicleconnect.db")).await?)),
        }
    }

    /// For logs: which store, never with a password.
    pub fn describe(&self) -> String {
        match self {
            Store::Postgres(s) => s.describe(),
            Store::Sqlite(s) => s.describe(),
        }
    }

    /// How many transactions may commit at once. SQLite has one writer. PostgreSQL two: one
    /// commits while the next group gathers; a third made groups smaller and single-event
    /// ingest about 5 % slower on two cores (medians of 5 alternating runs, 2026-11-30).
    pub fn writer_count(&self) -> usize {
        match self {
            Store::Postgres(_) => 2,
            Store::Sqlite(_) => 1,
        }
    }

    /// Inserts all `events` in one transaction; returns where each is stored, in order,
    /// once committed. Events whose `event_id` is stored already are not stored again.
    pub async fn insert_events(&self, events: Arc<Vec<Event>>) -> Result<Vec<Stored>> {
        match self {
            Store::Postgres(s) => s.insert_events(&events).await,
            Store::Sqlite(s) => s.insert_events(events).await,
        }
    }

    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Postgres(s) => s.ping().await,
            Store::Sqlite(s) => s.ping().await,
        }
    }

    /// The highest event id committed so far (0 when empty).
    pub async fn max_event_id(&self) -> Result<i64> {
        match self {
            Store::Postgres(s) => s.max_event_id().await,
            Store::Sqlite(s) => s.max_event_id().await,
        }
    }

    /// Events with `ts >= since_us` and `id <= max_id`, in `(ts, id)` order after `cursor`.
    pub async fn scan_events(
        &self,
        since_us: i64,
        max_id: i64,
        cursor: ScanCursor,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        match self {
            Store::Postgres(s) => s.scan_events(since_us, max_id, cursor, limit).await,
            Store::Sqlite(s) => s.scan_events(since_us, max_id, cursor, limit).await,
        }
    }

    /// Removes events older than `cutoff_us`, a chunk of at most `limit` rows a call;
    /// returns how many rows went (0 when done). PostgreSQL drops whole days, which it
    /// logs, and counts the `event_id`s it forgets.
    pub async fn expire_events(&self, cutoff_us: i64, limit: usize) -> Result<u64> {
        match self {
            Store::Postgres(s) => s.expire_events(cutoff_us, limit).await,
            Store::Sqlite(s) => s.delete_before("api_events", "ts", cutoff_us, limit).await,
        }
    }

    /// Deletes up to `limit` KPI snapshots older than `cutoff_us`.
    pub async fn delete_snapshots_before(&self, cutoff_us: i64, limit: usize) -> Result<u64> {
        match self {
            Store::Postgres(s) => s.delete_before("kpi_snapshots", "computed_at", cutoff_us, limit).await,
            Store::Sqlite(s) => s.delete_before("kpi_snapshots", "computed_at", cutoff_us, limit).await,
        }
    }

    pub async fn insert_snapshots(&self, rows: Arc<Vec<SnapshotRow>>) -> Result<()> {
        match self {
            Store::Postgres(s) => s.insert_snapshots(&rows).await,
            Store::Sqlite(s) => s.insert_snapshots(rows).await,
        }
    }
}
