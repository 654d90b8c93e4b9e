//! The vehicleconnect service: event ingest, KPI engine, metrics and API docs over HTTP.
//!
//! `main.rs` parses the configuration, sets up logging, binds the listener and owns the
//! shutdown signal; [`run`] does everything else, so tests can run the service in-process.

pub mod config;
pub mod dashboard;
pub mod drain;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod kpi;
pub mod kpi_engine;
pub mod metrics;
pub mod peers;
pub mod serve;
pub mod status_probe;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use config::Config;
use ingest::group_commit::{GroupCommit, OnCommit};
use kpi_engine::KpiEngine;
use metrics::Metrics;
use store::Store;

pub mod build {
    //! What this binary is: version and git commit.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    pub const GIT_SHA: &str = env!("VC_GIT_SHA");
    pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("VC_GIT_SHA"), ")");
}

/// How long shutdown waits for queued events to be committed.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);

/// One shutdown signal for every listener, in two phases: `draining` (stop accepting and
/// drain, drain.rs) as soon as `shutdown` completes, then `serving` turns true
/// [`drain::DRAIN_GRACE`] later (close what is idle, wait for what is in flight).
fn shutdown_phases(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (watch::Receiver<bool>, watch::Receiver<bool>) {
    let (start_draining, draining) = watch::channel(false);
    let (stop_serving, serving) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = start_draining.send(true);
        tokio::time::sleep(drain::DRAIN_GRACE).await;
        let _ = stop_serving.send(true);
    });
    (draining, serving)
}

/// Waits for every task.
async fn wait_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// The KPIs' background work. On PostgreSQL, the fleet's sync and leader loop (fleet.rs); on
/// the embedded store, the rebuild (events up to `rebuild_up_to`), the snapshot loop and
/// retention. What writes (snapshots, retention) never runs in a candidate: it shares the
/// store with the serving release.
fn start_background(
    config: &Config,
    store: &Store,
    kpis: &Arc<KpiEngine>,
    replica: &Arc<fleet::Replica>,
    rebuild_up_to: i64,
    stopped: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if config.candidate {
        tracing::info!("running as a candidate: no KPI snapshots, no retention");
    }
    if let Store::Postgres(pg) = store {
        let duties = fleet::Duties {
            may_lead: !config.candidate,
            snapshot_every: config.kpi_interval,
            retention: config.retention,
        };
        return vec![tokio::spawn(fleet::run(kpis.clone(), pg.clone(), replica.clone(), duties, stopped.clone()))];
    }
    let mut tasks = vec![tokio::spawn({
        let (kpis, store) = (kpis.clone(), store.clone());
        async move {
            let t = Instant::now();
            match kpis.rebuild(&store, rebuild_up_to).await {
                Ok(n) => {
                    tracing::info!(events = n, elapsed_ms = t.elapsed().as_millis() as u64, "KPI aggregates rebuilt")
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "rebuilding the KPI aggregates failed; KPIs cover new events only")
                }
            }
        }
    })];
    if config.candidate {
        return tasks;
    }
    tasks.push(tokio::spawn({
        let (kpis, store, stopped) = (kpis.clone(), store.clone(), stopped.clone());
        let interval = config.kpi_interval;
        async move { kpis.run_snapshots(store, interval, stopped).await }
    }));
    tasks.push(tokio::spawn(kpi_engine::run_retention(
        store.clone(),
        config.retention,
        Duration::from_secs(60).min(config.retention),
        stopped.clone(),
    )));
    tasks
}

/// Serves on every listener until `shutdown` completes, then stops accepting, finishes the
/// requests in flight, commits what they queued, and returns.
/// The store the flags name: PostgreSQL (with TLS as `--database-cert` or `--database-ca`
/// ask) or the embedded one.
async fn open_store(config: &Config) -> Result<Store> {
    let timing = store::fleet::Timing::closing_after(config.kpi_close_after);
    let tls = match (&config.database_cert, &config.database_ca) {
        (Some(cert), _) => Some(store::DatabaseTls::pinned(cert)?),
        (None, Some(ca)) => Some(store::DatabaseTls::verified(ca)?),
        (None, None) => None,
    };
    Store::open(config.database.as_deref(), tls, &config.data_dir, config.db_connect_timeout, timing).await
}

fn log_listening(listener: &TcpListener, store: &Store, config: &Config) -> Result<()> {
    tracing::info!(
        addr = %listener.local_addr()?,
        store = %store.describe(),
        version = build::VERSION,
        git_sha = build::GIT_SHA,
        ingest_token = config.ingest_token.is_some(),
        read_token = config.read_token.is_some(),
        origin_secret = config.origin_secret.is_some(),
        peers = config.peers.as_ref().map_or(0, |p| p.0.len()),
        "listening"
    );
    Ok(())
}

pub async fn run(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let started = Instant::now();
    let store = open_store(&config).await?;
    let (kpis, rebuild_up_to, replica) = kpis_of(&store, &config).await?;
    let metrics = Arc::new(Metrics::new(build::VERSION, build::GIT_SHA, &replica.id));
    let on_commit: OnCommit = {
        let (kpis, metrics) = (kpis.clone(), metrics.clone());
        Arc::new(move |events| {
            kpis.record(events);
            metrics.observe_events(events);
        })
    };
    let (ingest, writers) = GroupCommit::start(store.clone(), on_commit);

    let (stop, stopped) = watch::channel(false);
    let background = start_background(&config, &store, &kpis, &replica, rebuild_up_to, &stopped);

    let limits = config.limits();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let state = Arc::new(http::AppState {
        ingest,
        store: store.clone(),
        kpis,
        replica,
        metrics,
        ingest_token: config.ingest_token.clone().filter(|t| !t.is_empty()),
        read_token: config.read_token.clone(),
        origin_secret: config.origin_secret.clone(),
        peers: peers::start(config.peers.clone(), config.read_token.as_deref(), config.peer_ca.as_deref())?,
        region_name: config.region_name.clone(),
        shared_max_age: http::shared_max_age(config.kpi_interval),
        global_reports: tokio::sync::Semaphore::new(1),
        retention_us: config.retention.as_micros().min(i64::MAX as u128) as i64,
        started,
        dashboard: dashboard::Dashboard::new(&config.thresholds, config.kpi_interval),
        body_read_timeout: config.body_read_timeout,
        store_health: status_probe::StoreHealth::start(store.clone(), stopped.clone()),
        body_budget: http::body_budget(),
        kpi_reports: tokio::sync::Semaphore::new(1),
        kpi_cache: Default::default(),
        connection_slots: slots.clone(),
        max_connections: limits.max_connections,
    });
    let (draining, serving) = shutdown_phases(shutdown);
    // Built only when asked for: it holds the state too, which must go with the servers.
    let metrics_app = config.metrics_listen.map(|_| http::metrics_router(state.clone()));
    let app =
        http::router(state).layer(axum::middleware::from_fn_with_state(draining.clone(), drain::close_when_draining));
    let mut servers = tokio::task::JoinSet::new();
    if let (Some(addr), Some(metrics_app)) = (config.metrics_listen, metrics_app) {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} (--metrics-listen)"))?;
        tracing::info!(%addr, "serving /metrics and /api/status only");
        let (draining, serving) = (draining.clone(), serving.clone());
        servers.spawn(serve::serve(listener, metrics_app, limits, slots.clone(), draining, serving));
    }
    for listener in listeners {
        log_listening(&listener, &store, &config)?;
        servers.spawn(serve::serve(listener, app.clone(), limits, slots.clone(), draining.clone(), serving.clone()));
    }
    // The servers hold the only other references to the state: once they end, the event
    // queue's sender is gone and the writers can drain and stop.
    drop(app);
    while let Some(done) = servers.join_next().await {
        done.context("an HTTP server task failed")?;
    }

    // Every request has been answered, so every queued event has been committed or refused;
    // wait for the writers to see the queue closed.
    tracing::info!("shutting down: flushing the event queue");
    let _ = stop.send(true);
    if tokio::time::timeout(FLUSH_DEADLINE, wait_all(writers)).await.is_err() {
        tracing::warn!("event writers did not finish within {FLUSH_DEADLINE:?}");
    }
    for task in background {
        task.abort();
    }
    tracing::info!(uptime_s = started.elapsed().as_secs(), "stopped");
    Ok(())
}

/// The KPI engine for `store`, the event id up to which it rebuilds from the events (the
/// embedded store), and this process's replica.
async fn kpis_of(store: &Store, config: &Config) -> Result<(Arc<KpiEngine>, i64, Arc<fleet::Replica>)> {
    let limits = kpi_engine::kpi_limits(config.kpi_memory);
    let (kpis, rebuild_up_to) = match store {
        // A replica reads the fleet's aggregates, never the raw events: its start does not
        // grow with them.
        Store::Postgres(_) => (Arc::new(KpiEngine::replica(limits)), 0),
        // Everything committed up to here is read back into the aggregates; everything after
        // is recorded as it commits. Read the boundary before the writers start.
        Store::Sqlite(_) => {
            (Arc::new(KpiEngine::new(limits)), store.max_event_id().await.context("reading the newest event id")?)
        }
    };
    let replica = Arc::new(match store {
        Store::Postgres(_) => fleet::Replica::new(),
        Store::Sqlite(_) => fleet::Replica::alone(config.candidate),
    });
    Ok((kpis, rebuild_up_to, replica))
}
