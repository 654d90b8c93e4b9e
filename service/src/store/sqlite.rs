//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is
//! on disk before it returns. One connection writes (SQLite has a single writer); another
//! reads, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OptionalExtension, params};

use super::{ScanCursor, SnapshotRow, Stored, StoredEvent};
use crate::ingest::Event;

/// Schema versions, applied in order, each once. Never edit a released entry: add one.
/// Times are Unix microseconds (UTC).
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE api_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        endpoint TEXT NOT NULL,
        method TEXT,
        status_code INTEGER NOT NULL,
        response_time_ms REAL NOT NULL,
        client_id TEXT NOT NULL
    );
    CREATE INDEX api_events_ts_id_idx ON api_events (ts, id);
    CREATE TABLE kpi_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        computed_at INTEGER NOT NULL,
        window_s INTEGER NOT NULL,
        endpoint TEXT,
        count INTEGER NOT NULL,
        avg_latency_ms REAL,
        p50_latency_ms REAL,
        p95_latency_ms REAL,
        p99_latency_ms REAL,
        error_rate_pct REAL NOT NULL,
        client_error_rate_pct REAL NOT NULL,
        requests_per_min REAL NOT NULL
    );
    CREATE INDEX kpi_snapshots_computed_at_idx ON kpi_snapshots (computed_at);",
    ),
    (
        2,
        "ALTER TABLE api_events ADD COLUMN event_id TEXT;
    CREATE UNIQUE INDEX api_events_event_id_idx ON api_events (event_id) WHERE event_id IS NOT NULL;",
    ),
];

#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening the embedded store `{}`", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: the WAL is synced at every commit, so a 201 survives a power cut, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the data directory `{}`", dir.display()))?;
            }
            let mut writer = connect(&path)?;
            migrate(&mut writer)?;
            let reader = connect(&path)?;
            Ok(SqliteStore { path, writer: Arc::new(Mutex::new(writer)), reader: Arc::new(Mutex::new(reader)) })
        })
        .await?
    }

    pub fn describe(&self) -> String {
        format!("embedded SQLite store `{}`", self.path.display())
    }

    /// Runs `f` on a connection in the blocking pool.
    async fn with<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| anyhow!("embedded store connection poisoned by a panic"))?;
            f(&mut guard)
        })
        .await?
    }

    /// Inserts `events` in one transaction; an event whose `event_id` is stored already is
    /// not stored again, and its answer is the stored id.
    pub async fn insert_events(&self, events: Arc<Vec<Event>>) -> Result<Vec<Stored>> {
        Self::with(&self.writer, move |conn| {
            let received_at = crate::kpi::unix_us(time::OffsetDateTime::now_utc());
            let tx = conn.transaction()?;
            let mut stored = Vec::with_capacity(events.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO api_events (ts, received_at, endpoint, method, status_code, response_time_ms, client_id, event_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING",
                )?;
                let mut existing = tx.prepare_cached("SELECT id FROM api_events WHERE event_id = ?1")?;
                for e in events.iter() {
                    let inserted = insert.execute(params![
                        e.ts_us,
                        received_at,
                        e.endpoint,
                        e.method,
                        e.status_code,
                        e.response_time_ms,
                        e.client_id,
                        e.event_id
                    ])?;
                    stored.push(match inserted {
                        1 => Stored { id: tx.last_insert_rowid(), duplicate: false },
                        _ => Stored { id: existing.query_row([&e.event_id], |r| r.get(0))?, duplicate: true },
                    });
                }
            }
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    pub async fn ping(&self) -> Result<()> {
        let path = self.path.clone();
        Self::with(&self.reader, move |conn| {
            // The connection outlives a deleted file; check the file is still there too.
            if !path.exists() {
                bail!("the embedded store file `{}` is gone", path.display());
            }
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    pub async fn max_event_id(&self) -> Result<i64> {
        Self::with(&self.reader, |conn| {
            Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM api_events", [], |r| r.get(0))?)
        })
        .await
    }

    pub async fn scan_events(
        &self,
        since_us: i64,
        max_id: i64,
        (after_ts, after_id): ScanCursor,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        Self::with(&self.reader, move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ts, endpoint, response_time_ms, status_code FROM api_events
                 WHERE ts >= ?1 AND (ts, id) > (?2, ?3) AND id <= ?4
                 ORDER BY ts, id LIMIT ?5",
            )?;
            let rows = stmt.query_map(params![since_us, after_ts, after_id, max_id, limit as i64], |r| {
                Ok(StoredEvent {
                    id: r.get(0)?,
                    ts_us: r.get(1)?,
                    endpoint: r.get(2)?,
                    response_time_ms: r.get(3)?,
                    status_code: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// `table` and `column` are ours, never user input.
    pub async fn delete_before(
        &self,
        table: &'static str,
        column: &'static str,
        cutoff_us: i64,
        limit: usize,
    ) -> Result<u64> {
        Self::with(&self.writer, move |conn| {
            let sql = format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < ?1 LIMIT ?2)");
            Ok(conn.execute(&sql, params![cutoff_us, limit as i64])? as u64)
        })
        .await
    }

    pub async fn insert_snapshots(&self, rows: Arc<Vec<SnapshotRow>>) -> Result<()> {
        Self::with(&self.writer, move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO kpi_snapshots (computed_at, window_s, endpoint, count, avg_latency_ms, p50_latency_ms,
                        p95_latency_ms, p99_latency_ms, error_rate_pct, client_error_rate_pct, requests_per_min)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for r in rows.iter() {
                    let f = &r.figures;
                    stmt.execute(params![
                        r.computed_at_us,
                        r.window_s,
                        r.endpoint,
                        f.count as i64,
                        f.avg_latency_ms,
                        f.p50_latency_ms,
                        f.p95_latency_ms,
                        f.p99_latency_ms,
                        f.error_rate_pct,
                        f.client_error_rate_pct,
                        f.requests_per_min
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let newest: Option<i32> =
        tx.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).optional()?.flatten();
    if newest.unwrap_or(0) > MIGRATIONS.last().map_or(0, |m| m.0) {
        // Migrations only add, so an older release, rolled back to, still runs on it.
        tracing::warn!(
            schema = newest,
            "the embedded store's schema is newer than this release knows; running on it (migrations are expand-only)"
        );
    }
    for (version, sql) in MIGRATIONS {
        if *version <= newest.unwrap_or(0) {
            continue;
        }
        tx.execute_batch(sql).with_context(|| format!("applying migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, crate::kpi::unix_us(time::OffsetDateTime::now_utc())],
        )?;
        tracing::info!(version, "applied embedded store migration");
    }
    tx.commit()?;
    Ok(())
}
