//! `GET /api/status`: liveness, version and store health (probed in the background, see
//! `status_probe`), for health checks and `vcctl status`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::build;

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok`, or `degraded` when the store is unavailable.
    pub status: &'static str,
    pub version: &'static str,
    /// The git commit the binary was built from.
    pub git_sha: &'static str,
    pub uptime_s: u64,
    /// This process's id: a health check tells the process it started from whatever else
    /// may hold the port.
    pub pid: u32,
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `postgres` or `embedded`.
    pub store: &'static str,
    /// False while the KPI aggregates are still being rebuilt after a start (on PostgreSQL:
    /// until this replica has read the fleet's, and every minute before the open ones is
    /// closed).
    pub kpis_ready: bool,
    /// This replica's id: host, pid and a random part, new at every start.
    pub replica: String,
    /// Whether this replica is the fleet's KPI leader (closes minutes, writes the KPI
    /// snapshots, applies retention). The embedded store's single process always is.
    pub kpi_leader: bool,
    /// Replicas that reported to the shared store in the last 10 s (PostgreSQL; 1 on the
    /// embedded store).
    pub replicas_reporting: i64,
}

/// Service health.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Status),
        (status = 503, description = "The store is unavailable", body = Status),
    )
)]
pub async fn get_status(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Status>) {
    let healthy = state.store_health.is_healthy();
    let status = Status {
        status: if healthy { "ok" } else { "degraded" },
        version: build::VERSION,
        git_sha: build::GIT_SHA,
        uptime_s: state.started.elapsed().as_secs(),
        pid: std::process::id(),
        database: if healthy { "ok" } else { "unavailable" },
        store: match state.store {
            crate::store::Store::Postgres(_) => "postgres",
            crate::store::Store::Sqlite(_) => "embedded",
        },
        kpis_ready: state.kpis.is_rebuilt(),
        replica: state.replica.id.clone(),
        kpi_leader: state.replica.leader.load(Ordering::Relaxed),
        replicas_reporting: state.replica.reporting.load(Ordering::Relaxed),
    };
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(status))
}
