//! Stopping without resetting a request: when the service is told to stop, it stops
//! accepting at once (`serve::serve`) (under systemd the listening socket stays open, so new connections
//! wait in its queue for the next process), but keeps answering on the connections it has
//! already accepted for [`DRAIN_GRACE`], each answer with `Connection: close` so the client
//! does not reuse the connection, before it closes the idle ones. Without the grace, a
//! connection accepted just before the stop, or a kept-alive one a client was about to use,
//! would be closed with the client's request in flight, and the client would see a reset.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

/// How long a stopping service keeps answering on connections it has already accepted.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Middleware: while draining, every HTTP/1 answer closes its connection.
pub async fn close_when_draining(State(draining): State<watch::Receiver<bool>>, req: Request, next: Next) -> Response {
    let http1 = req.version() < Version::HTTP_2;
    let mut res = next.run(req).await;
    if http1 && *draining.borrow() {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
