//! Reading a request body within bounds: at most 8 MiB, within the body read timeout, in
//! one buffer, and within the memory all bodies in flight may share.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::ingest::body::MAX_BODY_BYTES;

/// Bytes of request bodies the service holds at once, over all requests: 8 maximum-size
/// bodies. A request holds its share from the first byte until it is answered, since the
/// events it parses into take about as much again.
pub const BODY_BUDGET_BYTES: usize = 64 * 1024 * 1024;
const KIB: usize = 1024;

/// The shared budget, in KiB permits.
pub fn body_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(BODY_BUDGET_BYTES / KIB))
}

/// Reads the body into one buffer: at most [`MAX_BODY_BYTES`] (refused early on a larger
/// `declared` length, and while reading), within `timeout` in all (a client trickling a
/// byte a second is cut off), without keeping one allocation per chunk (a chunked body of
/// one-byte chunks would otherwise cost 30 times its size), and taking its bytes from
/// `budget` as they arrive (all at once when the length is declared, before the buffer for
/// it is allocated). The permit is the caller's to hold until the request is done.
pub async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    budget: &Arc<Semaphore>,
    timeout: Duration,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), ApiError> {
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut held = take(budget, declared.unwrap_or(0), None).await?;
    let mut buf = Vec::with_capacity(declared.unwrap_or(0));
    let read = tokio::time::timeout(timeout, async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
            if let Ok(chunk) = frame.into_data() {
                if buf.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                held = take(budget, buf.len() + chunk.len(), Some(held)).await?;
                buf.extend_from_slice(&chunk);
            }
        }
        Ok(held)
    })
    .await;
    match read {
        Ok(Ok(held)) => Ok((buf, held)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s; send it at once", timeout.as_secs_f64()),
        )),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {} MiB; split the batch", MAX_BODY_BYTES / (1024 * 1024)),
    )
}

/// Grows `held` to cover `bytes`, waiting at most a few seconds for other requests to
/// finish; past that, a 503 asks the client to come back.
async fn take(
    budget: &Arc<Semaphore>,
    bytes: usize,
    held: Option<OwnedSemaphorePermit>,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let want = bytes.div_ceil(KIB).max(1) as u32;
    let have = held.as_ref().map_or(0, |p| p.num_permits() as u32);
    if have >= want {
        return Ok(held.expect("have > 0 means a permit"));
    }
    let more = tokio::time::timeout(Duration::from_secs(5), budget.clone().acquire_many_owned(want - have)).await;
    let Ok(Ok(mut more)) = more else {
        return Err(ApiError::busy("too many request bodies are being received at once"));
    };
    if let Some(held) = held {
        more.merge(held);
    }
    Ok(more)
}
