//! The origin secret (`--origin-secret`): behind a CDN, the load balancer admits the CDN's
//! addresses only, but those are every CloudFront customer's. The distribution adds a secret
//! header to each request it forwards; the service answers only requests that carry it, so
//! nobody reaches the origin around the distribution (its cache, its firewall).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The header the distribution sets (vcctl's `cdn: true`), and the service reads.
pub const HEADER: &str = "x-vc-origin-secret";

/// Answered without the secret: the load balancer's and Route 53's health checks, which
/// come around the distribution, and which say nothing but whether the service is up.
const OPEN: &[&str] = &["/api/status"];

/// Refuses (403) a request without the origin secret, when the service has one.
pub async fn require_secret(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(secret) = state.origin_secret.as_deref() else { return next.run(request).await };
    if OPEN.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request.headers().get(HEADER).map(|v| v.as_bytes());
    if given.is_some_and(|g| super::auth::constant_time_eq(g, secret.as_bytes())) {
        return next.run(request).await;
    }
    state.metrics.observe_request(request.method().as_str(), "origin", 403, 0.0);
    ApiError::new(
        StatusCode::FORBIDDEN,
        "this service answers through its CDN only: use the stack's domain, not the load balancer's address",
    )
    .into_response()
}
