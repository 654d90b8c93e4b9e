//! `POST /api/events`: authenticate, read at most 8 MiB and 10 000 events, validate all or nothing, group-commit.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::body::read_body;
use super::error::{ApiError, ErrorBody};
use crate::ingest::body::{BodyError, MAX_EVENTS_PER_REQUEST, Shape, format_of, parse_events};
use crate::ingest::event::TimeBounds;
use crate::kpi::unix_us;

/// Answer to a single event.
#[derive(Serialize, ToSchema)]
pub struct Created {
    /// The stored event's id.
    pub id: i64,
    /// True when an event with this `event_id` was stored before: it was not stored again,
    /// and `id` is the stored one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Answer to a batch.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// How many events are durably stored: new ones and retried ones stored before.
    pub accepted: usize,
    /// How many of them were stored before (their `event_id` was there) and not stored again.
    pub duplicates: usize,
    /// The stored id of each event, in the order sent.
    pub ids: Vec<i64>,
}

/// The answer to `POST /api/events`: [`Created`] for one event, [`Accepted`] for a batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventsAnswer {
    Created(Created),
    Accepted(Accepted),
}

/// Record API events.
///
/// The body is one event object, a JSON array of events, or NDJSON (`Content-Type:
/// application/x-ndjson`, one event per line). A request without a `Content-Type` is read as
/// JSON. A batch is all or nothing. A 201 means the events are durably committed.
#[utoipa::path(
    post,
    path = "/api/events",
    tag = "events",
    request_body(
        description = "One event, an array of events, or NDJSON",
        content(
            (crate::ingest::event::EventsBody = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 201, description = "Stored: `{\"id\": n}` for one event, `{\"accepted\": n, \"duplicates\": d, \"ids\": [...]}` for a batch", body = EventsAnswer),
        (status = 400, description = "Malformed JSON or empty body", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when the service has an ingest token)", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the body read timeout", body = ErrorBody),
        (status = 413, description = "Body over 8 MiB, or more than 10 000 events", body = ErrorBody),
        (status = 415, description = "A Content-Type that is neither JSON nor NDJSON (none at all is read as JSON)", body = ErrorBody),
        (status = 422, description = "Invalid events: `details` lists each bad event's index, field and reason", body = ErrorBody),
        (status = 503, description = "Store unavailable, or too many bodies being received at once; nothing stored; see `Retry-After`", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<EventsAnswer>), ApiError> {
    if let Some(token) = &state.ingest_token {
        super::auth::authorize(&headers, token, "ingest token")?;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = format_of(content_type).map_err(body_error)?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let (bytes, _budget) = read_body(body, declared, &state.body_budget, state.body_read_timeout).await?;
    let bounds = TimeBounds { now_us: unix_us(OffsetDateTime::now_utc()), retention_us: state.retention_us };
    let (shape, events) = parse_events(format, &bytes, bounds).map_err(body_error)?;
    let stored = state.ingest.submit(events).await.map_err(|e| ApiError::store_unavailable(&e.0))?;
    let answer = match shape {
        Shape::Single => EventsAnswer::Created(Created { id: stored[0].id, duplicate: stored[0].duplicate }),
        Shape::Batch => EventsAnswer::Accepted(Accepted {
            accepted: stored.len(),
            duplicates: stored.iter().filter(|s| s.duplicate).count(),
            ids: stored.iter().map(|s| s.id).collect(),
        }),
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::Malformed(m) => ApiError::bad_request(m),
        BodyError::Invalid(m) => ApiError::unprocessable(m),
        BodyError::Events(problems) => ApiError::invalid_events(problems),
        BodyError::TooManyEvents => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request carries at most {MAX_EVENTS_PER_REQUEST} events; split the batch"),
        ),
        BodyError::UnsupportedType(m) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    }
}
