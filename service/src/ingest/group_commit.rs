//! Group commit: concurrent requests share one transaction, and each is answered only after
//! that transaction has committed.
//!
//! Requests queue their validated events on a bounded channel. Each writer task takes
//! everything queued (up to [`MAX_EVENTS_PER_COMMIT`]), stores it in one transaction, then
//! answers every request with its ids. While one transaction commits, the next group builds
//! up, so the commit rate stays low while throughput grows with concurrency. Several writers
//! (PostgreSQL) overlap their commits; the embedded store has one.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Event;
use crate::store::{Store, Stored};

/// A bound on one transaction's size, so that one huge group does not delay everyone.
pub const MAX_EVENTS_PER_COMMIT: usize = 20_000;
/// Requests waiting for a writer; past this, new requests wait for room (backpressure).
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<Result<Vec<Stored>, StoreFailure>>;

struct Pending {
    events: Vec<Event>,
    reply: Reply,
}

/// Why events were not stored; shared by every request of a failed group.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreFailure(pub String);

/// Called with each group's newly stored events after they are committed (KPI aggregates,
/// metrics); retried events stored before are left out.
pub type OnCommit = Arc<dyn Fn(&[Event]) + Send + Sync>;

#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts `store.writer_count()` writers. They stop once every `GroupCommit` clone is
    /// dropped and the queue is drained; await the handles to know it is flushed.
    pub fn start(store: Store, on_commit: OnCommit) -> (GroupCommit, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let writers = (0..store.writer_count())
            .map(|_| tokio::spawn(writer(store.clone(), rx.clone(), on_commit.clone())))
            .collect();
        (GroupCommit { tx }, writers)
    }

    /// Stores `events` durably; returns where each is stored once committed.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<Stored>, StoreFailure> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { events, reply })
            .await
            .map_err(|_| StoreFailure("the service is shutting down".to_string()))?;
        answer.await.map_err(|_| StoreFailure("the writer stopped before answering".to_string()))?
    }
}

async fn writer(store: Store, rx: Arc<Mutex<mpsc::Receiver<Pending>>>, on_commit: OnCommit) {
    loop {
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut total = first.events.len();
            let mut group = vec![first];
            while total < MAX_EVENTS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(p) => {
                        total += p.events.len();
                        group.push(p);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit(&store, group, &on_commit).await;
    }
}

async fn commit(store: &Store, group: Vec<Pending>, on_commit: &OnCommit) {
    let mut sizes = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let mut events = Vec::with_capacity(group.iter().map(|p| p.events.len()).sum());
    for p in group {
        sizes.push(p.events.len());
        replies.push(p.reply);
        events.extend(p.events);
    }
    let events = Arc::new(events);
    match store.insert_events(events.clone()).await {
        Ok(ids) => {
            debug_assert_eq!(ids.len(), events.len());
            // A retried event stored before was counted then: count only the new ones.
            if ids.iter().any(|s| s.duplicate) {
                let new: Vec<Event> =
                    events.iter().zip(&ids).filter(|(_, s)| !s.duplicate).map(|(e, _)| e.clone()).collect();
                on_commit(&new);
            } else {
                on_commit(&events);
            }
            let mut ids = ids.into_iter();
            for (reply, n) in replies.into_iter().zip(sizes) {
                // A client that hung up does not undo the commit; nothing to do.
                let _ = reply.send(Ok(ids.by_ref().take(n).collect()));
            }
        }
        Err(err) => {
            tracing::warn!(events = events.len(), error = %format!("{err:#}"), "group commit failed; answering 503");
            // The cause is logged above; a client gets no database internals (row values
            // and names can be in PostgreSQL's messages).
            let failure =
                StoreFailure("the database did not commit the events; the cause is in the service's log".into());
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
    }
}
