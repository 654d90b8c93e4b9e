//! The store's health, probed in the background once a second, so that `GET /api/status`
//! answers from memory: a flood of health checks takes no database connection from the
//! writers and cannot slow ingest.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;

/// How often the store is pinged.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A ping slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A verdict older than this (the prober is stuck) is not trusted.
const STALE_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct StoreHealth {
    latest: watch::Receiver<(bool, Instant)>,
}

impl StoreHealth {
    /// Starts probing `store` until `stopped` turns true. The store has just been opened
    /// (and migrated), so it starts out healthy.
    pub fn start(store: Store, mut stopped: watch::Receiver<bool>) -> StoreHealth {
        let (tx, rx) = watch::channel((true, Instant::now()));
        tokio::spawn(async move {
            loop {
                let ok = matches!(tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await, Ok(Ok(())));
                if tx.send((ok, Instant::now())).is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        StoreHealth { latest: rx }
    }

    /// Whether the latest probe, at most a few seconds old, reached the store.
    pub fn is_healthy(&self) -> bool {
        let (ok, at) = *self.latest.borrow();
        ok && at.elapsed() < STALE_AFTER
    }
}
