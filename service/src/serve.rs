//! Serving HTTP/1.1 on a listener with bounded connections and time limits, so that slow or
//! silent clients cannot hold the service's memory, file descriptors or tasks.
//!
//! - At most `max_connections` connections at once, over all listeners: past that the
//!   service stops accepting, so new connections wait in the kernel's listen queue
//!   (back-pressure) and are taken as soon as one closes.
//! - A connection waiting for a request (new, or kept alive after an answer) is closed after
//!   `idle_timeout` without a byte; once the first byte of a request head arrives, the whole
//!   head must follow within `header_read_timeout`.
//! - An answer the client does not read (its window stays full) is dropped with the
//!   connection after `idle_timeout` without progress.
//! - A request body must arrive within `--body-read-timeout`, applied where bodies are read
//!   (`http::body`).
//!
//! hyper's own `header_read_timeout` starts while a kept-alive connection is idle, so it
//! would make the keep-alive time and the header time one setting; the clock here tells them
//! apart by counting the requests in flight on the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The limits on connections; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Accepts on `listener` until `draining` turns true, serves each connection until
/// `stopping` turns true, then closes idle connections and waits for the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    mut draining: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // At most 16 KiB of request head per connection (431 past it), instead of hyper's
    // ~400 KiB: 4096 connections of stalled heads hold 64 MiB at worst.
    http1.max_buf_size(16 * 1024);
    let mut warned_full: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = turned_on(&mut draining) => break,
        };
        if slots.available_permits() == 0 && warned_full.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            warned_full = Some(Instant::now());
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached; new connections wait in the listen queue (--max-connections)"
            );
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = turned_on(&mut draining) => break,
        };
        let _ = stream.set_nodelay(true);
        let requests = Arc::new(Requests::default());
        let io = TokioIo::new(ClockedIo::new(stream, requests.clone(), limits));
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            let in_flight = InFlight::start(&requests);
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        });
        let connection = http1.serve_connection(io, service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(permit);
        });
    }
    turned_on(&mut stopping).await;
    graceful.shutdown().await;
}

async fn turned_on(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|on| *on).await;
}

/// The requests of one connection, as its service sees them.
#[derive(Default)]
struct Requests {
    /// Every request ever started: a request that began and ended between two reads still
    /// moves the clock to the keep-alive phase.
    started: AtomicUsize,
    in_flight: AtomicUsize,
}

/// One request in flight; dropped when it is answered, or abandoned with its connection.
struct InFlight(Arc<Requests>);

impl InFlight {
    fn start(requests: &Arc<Requests>) -> InFlight {
        requests.started.fetch_add(1, Ordering::SeqCst);
        requests.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(requests.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that times out a connection waiting for a request, a request head that
/// does not finish, and a write that makes no progress.
pub struct ClockedIo {
    stream: TcpStream,
    requests: Arc<Requests>,
    /// `requests.started` when last looked at.
    seen_started: usize,
    limits: Limits,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// When a pending write started waiting; reset by every byte written.
    write_deadline: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// Reading a request head.
    Head,
    /// A request is being served: its body has its own timeout.
    Busy,
}

impl ClockedIo {
    fn new(stream: TcpStream, requests: Arc<Requests>, limits: Limits) -> ClockedIo {
        let deadline = Box::pin(tokio::time::sleep(limits.idle_timeout));
        ClockedIo { stream, requests, seen_started: 0, limits, phase: Phase::Idle, deadline, write_deadline: None }
    }

    /// Moves between phases as requests start and end, and as a new head begins.
    fn update_phase(&mut self, read_bytes: bool) {
        let started = self.requests.started.load(Ordering::SeqCst);
        if started != self.seen_started {
            self.seen_started = started;
            self.phase = Phase::Busy;
        }
        let busy = self.requests.in_flight.load(Ordering::SeqCst) > 0;
        let next = match (self.phase, busy, read_bytes) {
            (_, true, _) => Phase::Busy,
            (Phase::Busy, false, _) => Phase::Idle,
            (Phase::Idle, false, true) => Phase::Head,
            (phase, false, _) => phase,
        };
        if next != self.phase {
            match next {
                Phase::Idle => self.deadline.as_mut().reset(Instant::now() + self.limits.idle_timeout),
                Phase::Head => self.deadline.as_mut().reset(Instant::now() + self.limits.header_read_timeout),
                Phase::Busy => {}
            }
            self.phase = next;
        }
    }

    /// Outside a request, registers the phase's deadline with the task (so the task is
    /// woken when it passes) and fails once it has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.phase != Phase::Busy && self.deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(phase = ?self.phase, "closing a connection: timed out");
            return Poll::Ready(Err(self.timed_out()));
        }
        Poll::Pending
    }

    fn timed_out(&self) -> io::Error {
        let what = match self.phase {
            Phase::Idle => "no request within the idle timeout",
            Phase::Head => "request head not complete within the header read timeout",
            Phase::Busy => "no progress",
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

impl AsyncRead for ClockedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.update_phase(buf.filled().len() > before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.update_phase(false);
                this.poll_deadline(cx)
            }
        }
    }
}

impl AsyncWrite for ClockedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(result) => {
                this.write_deadline = None;
                // An answer is being written: if its request is over, the keep-alive clock
                // starts now. hyper may not read again before the socket has data, so the
                // deadline is registered here, where the task is polled anyway.
                this.update_phase(false);
                if this.phase != Phase::Busy && this.deadline.as_mut().poll(cx).is_ready() {
                    // Already past: let the next read (which fails) come soon.
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let idle = this.limits.idle_timeout;
                let stalled = this.write_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(stalled.as_mut().poll(cx));
                tracing::debug!("closing a connection: the client does not read its answer");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client does not read its answer")))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
