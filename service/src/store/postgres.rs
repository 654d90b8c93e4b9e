//! The PostgreSQL store: a small connection pool, one multi-row `INSERT ... SELECT FROM
//! UNNEST` per group commit, and versioned migrations under an advisory lock.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use super::{ScanCursor, SnapshotRow, Stored, StoredEvent, partitions};
use crate::ingest::Event;
use crate::kpi::{from_unix_us, unix_us};

/// Schema versions, applied in order, each once. Never edit a released entry: add one.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE api_events (
        id BIGSERIAL PRIMARY KEY,
        ts TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        endpoint TEXT NOT NULL,
        method TEXT,
        status_code SMALLINT NOT NULL,
        response_time_ms DOUBLE PRECISION NOT NULL,
        client_id TEXT NOT NULL
    );
    CREATE INDEX api_events_ts_id_idx ON api_events (ts, id);
    CREATE TABLE kpi_snapshots (
        id BIGSERIAL PRIMARY KEY,
        computed_at TIMESTAMPTZ NOT NULL,
        window_s INTEGER NOT NULL,
        endpoint TEXT,
        count BIGINT NOT NULL,
        avg_latency_ms DOUBLE PRECISION,
        p50_latency_ms DOUBLE PRECISION,
        p95_latency_ms DOUBLE PRECISION,
        p99_latency_ms DOUBLE PRECISION,
        error_rate_pct DOUBLE PRECISION NOT NULL,
        client_error_rate_pct DOUBLE PRECISION NOT NULL,
        requests_per_min DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX kpi_snapshots_computed_at_idx ON kpi_snapshots (computed_at);",
    ),
    (
        2,
        // Expand only: a nullable column and an index, so an older release still runs on it.
        "ALTER TABLE api_events ADD COLUMN event_id TEXT;
    CREATE UNIQUE INDEX api_events_event_id_idx ON api_events (event_id) WHERE event_id IS NOT NULL;",
    ),
    (
        3,
        // The replicas' shared KPI state (store/fleet.rs); new tables only: a release
        // before it runs on this schema and ignores them.
        "CREATE TABLE kpi_minutes (
        minute BIGINT PRIMARY KEY,
        version BIGINT NOT NULL,
        data BYTEA NOT NULL
    );
    CREATE INDEX kpi_minutes_version_idx ON kpi_minutes (version);
    CREATE SEQUENCE kpi_minutes_version_seq;
    CREATE TABLE kpi_partials (
        minute BIGINT NOT NULL,
        replica TEXT NOT NULL,
        data BYTEA NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (minute, replica)
    );
    CREATE TABLE kpi_dirty (minute BIGINT NOT NULL);
    CREATE INDEX kpi_dirty_minute_idx ON kpi_dirty (minute);
    CREATE TABLE kpi_state (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    CREATE TABLE kpi_replicas (replica TEXT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL, leader BOOLEAN NOT NULL);",
    ),
    (
        4,
        // Which releases may run on this schema (see RELEASE_COMPAT).
        "CREATE TABLE schema_compat (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO schema_compat (key, value) VALUES ('min_release', 1);",
    ),
    (
        5,
        // `api_events` partitioned by day (store/partitions.rs). The old table becomes the
        // partition of everything before the day after its newest event, as it is: no row
        // is copied, one scan checks the range. `event_id`s move to a table of their own,
        // since a unique index on a partitioned table must hold the partition key. An older
        // release's `ON CONFLICT (event_id)` has no index to infer any more: it must not run
        // on this schema (min_release 2, see RELEASE_COMPAT).
        "ALTER TABLE api_events RENAME TO api_events_unpartitioned;
    ALTER INDEX api_events_ts_id_idx RENAME TO api_events_unpartitioned_ts_id_idx;
    ALTER INDEX api_events_event_id_idx RENAME TO api_events_unpartitioned_event_id_idx;
    CREATE TABLE api_events (
        id BIGINT NOT NULL DEFAULT nextval('api_events_id_seq'),
        ts TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        endpoint TEXT NOT NULL,
        method TEXT,
        status_code SMALLINT NOT NULL,
        response_time_ms DOUBLE PRECISION NOT NULL,
        client_id TEXT NOT NULL,
        event_id TEXT
    ) PARTITION BY RANGE (ts);
    ALTER SEQUENCE api_events_id_seq OWNED BY api_events.id;
    CREATE INDEX api_events_ts_id_idx ON api_events (ts, id);
    CREATE TABLE api_event_ids (event_id TEXT PRIMARY KEY, id BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL);
    INSERT INTO api_event_ids (event_id, id, ts)
        SELECT event_id, id, ts FROM api_events_unpartitioned WHERE event_id IS NOT NULL;
    CREATE INDEX api_event_ids_ts_idx ON api_event_ids (ts);
    DROP INDEX api_events_unpartitioned_event_id_idx;
    DO $$
    DECLARE
        bound date := (SELECT (max(ts) AT TIME ZONE 'UTC')::date + 1 FROM api_events_unpartitioned);
        name text := 'api_events_until_' || to_char(bound, 'YYYYMMDD');
    BEGIN
        IF bound IS NULL THEN
            DROP TABLE api_events_unpartitioned;
        ELSE
            EXECUTE format('ALTER TABLE api_events_unpartitioned RENAME TO %I', name);
            EXECUTE format('ALTER TABLE api_events ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                name, bound::timestamp AT TIME ZONE 'UTC');
        END IF;
    END $$;
    UPDATE schema_compat SET value = 2 WHERE key = 'min_release';",
    ),
];

/// What this release can run on: a schema whose `schema_compat.min_release` is at most
/// this. Migrations are expand-only, so an older release normally runs on a newer schema;
/// a migration that an older release cannot live with (one that changes how events are
/// inserted, such as partitioning `api_events`) raises `min_release` past the older
/// releases' level, and they refuse to start on it, naming the fix, instead of failing
/// requests. A deploy or rollback to such a release fails its candidate check and leaves
/// the serving one in place.
pub const RELEASE_COMPAT: i32 = 2;

/// Any number will do, as long as it is ours: serialises migrations of concurrent starts.
const MIGRATION_LOCK: i64 = 0x7663_6d69_6772;

/// A group without any `event_id`: a plain insert. `ON CONFLICT` costs a speculative
/// insertion per row even when no row can conflict (7 % of batch throughput, measured).
const INSERT_EVENTS: &str = "INSERT INTO api_events (ts, endpoint, method, status_code, response_time_ms, client_id)
    SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::int2[], $5::float8[], $6::text[])
    RETURNING id";

/// Groups of this many events or more, none with an `event_id`, go by COPY ([`copy_in`]):
/// below it, its extra round trips cost more than its batched inserts save (measured in
/// docs/performance.md).
const COPY_FROM: usize = 1000;

/// A group where some events carry an `event_id`: each `event_id` is claimed in
/// `api_event_ids` (the first of a repeated one within the group), and an event is stored
/// when it has none or claimed its own; one row per event, in order, says which. The ids
/// are drawn before the claim so the claim can name the event that made it.
const INSERT_EVENTS_ONCE: &str = "WITH input AS MATERIALIZED (
        SELECT u.*, nextval('api_events_id_seq') AS id
        FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::int2[], $5::float8[], $6::text[], $7::text[])
            WITH ORDINALITY AS u(ts, endpoint, method, status_code, response_time_ms, client_id, event_id, ord)
    ), claimed AS (
        INSERT INTO api_event_ids (event_id, id, ts)
        SELECT DISTINCT ON (event_id) event_id, id, ts FROM input WHERE event_id IS NOT NULL ORDER BY event_id, ord
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
    ), stored AS (
        INSERT INTO api_events (id, ts, endpoint, method, status_code, response_time_ms, client_id, event_id)
        SELECT id, ts, endpoint, method, status_code, response_time_ms, client_id, event_id FROM input
        WHERE event_id IS NULL OR id IN (SELECT id FROM claimed)
    )
    SELECT i.id, i.event_id IS NULL OR c.id IS NOT NULL FROM input i LEFT JOIN claimed c ON c.id = i.id ORDER BY i.ord";

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Pool,
    /// For connections of their own, outside the pool (the KPI leader's, store/fleet.rs).
    pub(super) config: std::sync::Arc<tokio_postgres::Config>,
    /// TLS with the server's certificate pinned, or none.
    pub(super) tls: Option<super::DatabaseTls>,
    pub(super) timing: super::fleet::Timing,
    /// The database's clock when this process opened the store: events it received before
    /// were committed by others (store/fleet.rs, `start_closing`).
    pub(super) opened_at: OffsetDateTime,
    description: String,
}

impl PgStore {
    pub async fn open(
        url: &str,
        tls: Option<super::DatabaseTls>,
        connect_timeout: Duration,
        timing: super::fleet::Timing,
    ) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .context("invalid --database URL; expected postgres://user:password@host:port/dbname")?;
        if tls.is_some() {
            // A pinned certificate is asked for to be used: never fall back to plain TCP.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let description = describe(&config);
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Some(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let timeout = Some(Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .context("building the PostgreSQL pool")?;
        let mut store = PgStore {
            pool,
            config: std::sync::Arc::new(config),
            tls,
            timing,
            opened_at: OffsetDateTime::UNIX_EPOCH,
            description,
        };
        store.wait_until_reachable(connect_timeout).await?;
        store.migrate().await?;
        store.make_partitions_ahead().await?;
        store.opened_at = store.pool.get().await?.query_one("SELECT now()", &[]).await?.get(0);
        Ok(store)
    }

    /// PostgreSQL often starts after us at boot: retry with backoff instead of failing at once.
    async fn wait_until_reachable(&self, deadline: Duration) -> Result<()> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match self.pool.get().await {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() + delay < deadline => {
                    tracing::warn!(database = %self.description, error = %e, "PostgreSQL not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot connect to {} within {deadline:?}", self.description));
                }
            }
        }
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        // (No "relation already exists, skipping" notice in the log at every start.)
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: Vec<i32> =
            tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
        if let Some(newest) = applied.iter().max()
            && *newest > MIGRATIONS.last().map_or(0, |m| m.0)
        {
            // Migrations only add (columns that may be null, indexes, tables), so an older
            // release, rolled back to, still runs on the schema a newer one left.
            tracing::warn!(
                schema = newest,
                "the database schema is newer than this release knows; running on it (migrations are expand-only)"
            );
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await.with_context(|| format!("applying migration {version}"))?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        let needed: Option<i32> =
            tx.query_opt("SELECT value FROM schema_compat WHERE key = 'min_release'", &[]).await?.map(|r| r.get(0));
        tx.commit().await?;
        refuse_if_incompatible(needed, applied.iter().max().copied())
    }

    pub fn describe(&self) -> String {
        self.description.clone()
    }

    pub fn timing(&self) -> super::fleet::Timing {
        self.timing
    }

    pub fn opened_at(&self) -> OffsetDateTime {
        self.opened_at
    }

    /// Inserts `events` (see [`insert_and_match`]) and marks the closed minutes they are late
    /// for, all in one transaction. An event for a day with no partition yet (days late)
    /// gets one made, and the insert is tried again.
    pub async fn insert_events(&self, events: &[Event]) -> Result<Vec<Stored>> {
        match self.try_insert_events(events).await {
            Err(e) if e.chain().any(|c| c.downcast_ref().is_some_and(partitions::is_missing_partition)) => {
                let days: Vec<_> = events.iter().map(|e| partitions::day_of(e.ts_us)).collect();
                partitions::make(&mut self.pool.get().await?, &days).await?;
                self.try_insert_events(events).await
            }
            other => other,
        }
    }

    async fn try_insert_events(&self, events: &[Event]) -> Result<Vec<Stored>> {
        let mut client = self.pool.get().await?;
        // Events for minutes already closed: their minutes are marked, in the same
        // transaction, for the KPI leader to compute again (store/fleet.rs). Rare.
        let late = self.timing.late_minutes(events.iter().map(|e| e.ts_us), unix_us(OffsetDateTime::now_utc()));
        let by_copy = events.len() >= COPY_FROM && events.iter().all(|e| e.event_id.is_none());
        if late.is_empty() && !by_copy {
            return insert_and_match(&client, events).await;
        }
        let tx = client.transaction().await?;
        let stored = if by_copy { copy_in(&tx, events).await? } else { insert_and_match(&tx, events).await? };
        if !late.is_empty() {
            tx.execute("INSERT INTO kpi_dirty (minute) SELECT * FROM UNNEST($1::int8[])", &[&late]).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Makes the partitions of the days around now that have none (store/partitions.rs).
    pub async fn make_partitions_ahead(&self) -> Result<()> {
        partitions::make(&mut self.pool.get().await?, &partitions::wanted(OffsetDateTime::now_utc())).await?;
        Ok(())
    }

    /// Drops the days of events older than `cutoff_us`, then deletes up to `limit` of
    /// their `event_id`s (from then on such an event is refused as too old, not as a
    /// duplicate); returns how many `event_id`s went.
    pub async fn expire_events(&self, cutoff_us: i64, limit: usize) -> Result<u64> {
        let client = self.pool.get().await?;
        partitions::drop_expired(&client, cutoff_us).await?;
        let sql = "DELETE FROM api_event_ids WHERE event_id IN
            (SELECT event_id FROM api_event_ids WHERE ts < $1 LIMIT $2)";
        Ok(client.execute(sql, &[&from_unix_us(cutoff_us), &(limit as i64)]).await?)
    }

    pub async fn ping(&self) -> Result<()> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub async fn max_event_id(&self) -> Result<i64> {
        let client = self.pool.get().await?;
        Ok(client.query_one("SELECT coalesce(max(id), 0) FROM api_events", &[]).await?.get(0))
    }

    pub async fn scan_events(
        &self,
        since_us: i64,
        max_id: i64,
        (after_ts, after_id): ScanCursor,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, ts, endpoint, response_time_ms, status_code FROM api_events
                 WHERE ts >= $1 AND (ts, id) > ($2, $3) AND id <= $4
                 ORDER BY ts, id LIMIT $5",
                &[&from_unix_us(since_us), &from_unix_us(after_ts), &after_id, &max_id, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                id: r.get(0),
                ts_us: unix_us(r.get(1)),
                endpoint: r.get(2),
                response_time_ms: r.get(3),
                status_code: r.get::<_, i16>(4) as u16,
            })
            .collect())
    }

    /// `table` and `column` are ours, never user input.
    pub async fn delete_before(&self, table: &str, column: &str, cutoff_us: i64, limit: usize) -> Result<u64> {
        let client = self.pool.get().await?;
        let sql = format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < $1 LIMIT $2)");
        Ok(client.execute(&sql, &[&from_unix_us(cutoff_us), &(limit as i64)]).await?)
    }

    pub async fn insert_snapshots(&self, rows: &[SnapshotRow]) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        insert_snapshot_rows(&*tx, rows).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An error naming the fix when the schema needs a newer release than this one.
fn refuse_if_incompatible(needed: Option<i32>, schema: Option<i32>) -> Result<()> {
    match needed {
        Some(level) if level > RELEASE_COMPAT => anyhow::bail!(
            "the database schema (version {}) needs a newer release of vehicleconnect (compatibility level \
             {level}; this release has {RELEASE_COMPAT}): deploy the release that upgraded it or a newer one, \
             or restore a dump taken before that upgrade",
            schema.unwrap_or(0)
        ),
        _ => Ok(()),
    }
}

/// Inserts snapshot rows with `client` (a transaction: all or none).
pub(super) async fn insert_snapshot_rows(
    client: &impl tokio_postgres::GenericClient,
    rows: &[SnapshotRow],
) -> Result<()> {
    let stmt = client
        .prepare(
            "INSERT INTO kpi_snapshots (computed_at, window_s, endpoint, count, avg_latency_ms, p50_latency_ms,
                p95_latency_ms, p99_latency_ms, error_rate_pct, client_error_rate_pct, requests_per_min)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    for r in rows {
        let f = &r.figures;
        client
            .execute(
                &stmt,
                &[
                    &from_unix_us(r.computed_at_us),
                    &r.window_s,
                    &r.endpoint,
                    &(f.count as i64),
                    &f.avg_latency_ms,
                    &f.p50_latency_ms,
                    &f.p95_latency_ms,
                    &f.p99_latency_ms,
                    &f.error_rate_pct,
                    &f.client_error_rate_pct,
                    &f.requests_per_min,
                ],
            )
            .await?;
    }
    Ok(())
}

/// Inserts `events` (none with an `event_id`) with the binary COPY protocol: PostgreSQL
/// inserts its rows in batches, not one by one as an `INSERT` does. COPY returns no ids, so
/// they are drawn from the sequence first, one round trip for all.
async fn copy_in(tx: &deadpool_postgres::Transaction<'_>, events: &[Event]) -> Result<Vec<Stored>> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let n = events.len() as i64;
    let ids: Vec<i64> = tx
        .query_one("SELECT array_agg(nextval('api_events_id_seq')) FROM generate_series(1, $1::int8)", &[&n])
        .await?
        .get(0);
    anyhow::ensure!(ids.len() == events.len(), "{} ids drawn for {} events", ids.len(), events.len());
    let sink = tx
        .copy_in(
            "COPY api_events (id, ts, endpoint, method, status_code, response_time_ms, client_id) FROM STDIN BINARY",
        )
        .await?;
    let types = [Type::INT8, Type::TIMESTAMPTZ, Type::TEXT, Type::TEXT, Type::INT2, Type::FLOAT8, Type::TEXT];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (e, id) in events.iter().zip(&ids) {
        let (ts, code) = (from_unix_us(e.ts_us), e.status_code as i16);
        writer.as_mut().write(&[id, &ts, &e.endpoint, &e.method, &code, &e.response_time_ms, &e.client_id]).await?;
    }
    writer.finish().await?;
    Ok(ids.into_iter().map(|id| Stored { id, duplicate: false }).collect())
}

/// Inserts `events` in one statement; an event whose `event_id` is stored already (or
/// earlier in `events`) is skipped, and its answer is the stored id.
async fn insert_and_match(client: &impl deadpool_postgres::GenericClient, events: &[Event]) -> Result<Vec<Stored>> {
    let ts: Vec<OffsetDateTime> = events.iter().map(|e| from_unix_us(e.ts_us)).collect();
    let endpoints: Vec<&str> = events.iter().map(|e| e.endpoint.as_str()).collect();
    let methods: Vec<Option<&str>> = events.iter().map(|e| e.method.as_deref()).collect();
    let codes: Vec<i16> = events.iter().map(|e| e.status_code as i16).collect();
    let times: Vec<f64> = events.iter().map(|e| e.response_time_ms).collect();
    let clients: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
    let event_ids: Vec<Option<&str>> = events.iter().map(|e| e.event_id.as_deref()).collect();
    if !event_ids.iter().any(Option::is_some) {
        let stmt = client.prepare_cached(INSERT_EVENTS).await?;
        let rows = client.query(&stmt, &[&ts, &endpoints, &methods, &codes, &times, &clients]).await?;
        // UNNEST yields rows in array order and the sequence numbers them in that order;
        // sorting makes the mapping independent of the order RETURNING lists them in.
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        anyhow::ensure!(ids.len() == events.len(), "{} events inserted, {} ids returned", events.len(), ids.len());
        return Ok(ids.into_iter().map(|id| Stored { id, duplicate: false }).collect());
    }
    let stmt = client.prepare_cached(INSERT_EVENTS_ONCE).await?;
    let rows = client.query(&stmt, &[&ts, &endpoints, &methods, &codes, &times, &clients, &event_ids]).await?;
    let mut stored: Vec<Option<Stored>> =
        rows.iter().map(|r| r.get::<_, bool>(1).then(|| Stored { id: r.get(0), duplicate: false })).collect();
    let missing: Vec<&str> =
        events.iter().zip(&stored).filter(|(_, s)| s.is_none()).filter_map(|(e, _)| e.event_id.as_deref()).collect();
    if !missing.is_empty() {
        let rows = client.query("SELECT event_id, id FROM api_event_ids WHERE event_id = ANY($1)", &[&missing]).await?;
        let existing: std::collections::HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for (slot, e) in stored.iter_mut().zip(events) {
            if slot.is_none() {
                let key = e.event_id.as_deref().unwrap_or_default();
                let id = existing.get(key).with_context(|| format!("event_id {key:?} neither inserted nor found"))?;
                *slot = Some(Stored { id: *id, duplicate: true });
            }
        }
    }
    Ok(stored.into_iter().map(|s| s.expect("every event has an id")).collect())
}

/// `postgres://user@host:port/db`, without the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres")
    )
}
