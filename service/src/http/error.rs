//! API errors: every failure answers `{"error": "...", ...}` with the right status code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ingest::event::{FieldError, MAX_DETAILS, Problems};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field or parameter when there is one.
    pub error: String,
    /// One entry per bad field of each bad event (invalid events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    /// How many more problems there were past the first 100 in `details`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omitted: Option<usize>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), details: None, omitted: None }, retry_after_s: None }
    }

    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn unprocessable(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error)
    }

    /// 422 listing the bad fields (the first [`MAX_DETAILS`]); the summary names the first.
    pub fn invalid_events(problems: Problems) -> ApiError {
        let Problems { details, omitted } = problems;
        let total = details.len() + omitted;
        let first = details.first().map(FieldError::describe).unwrap_or_default();
        let error = match details.first().and_then(|d| d.index) {
            None if total == 1 => first,
            None => format!("{first} (and {} more problems)", total - 1),
            Some(_) => {
                let bad_events = {
                    let mut idx: Vec<Option<usize>> = details.iter().map(|d| d.index).collect();
                    idx.dedup();
                    idx.len()
                };
                let counted = if omitted > 0 { "at least " } else { "" };
                let more = match (total, omitted) {
                    (1, _) => String::new(),
                    (_, 0) => format!(" ({total} problems in all, see details)"),
                    _ => format!(" ({total} problems in all; details lists the first {MAX_DETAILS})"),
                };
                format!("{counted}{bad_events} invalid event(s), nothing was stored; first: {first}{more}")
            }
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody { error, details: Some(details), omitted: (omitted > 0).then_some(omitted) },
            retry_after_s: None,
        }
    }

    /// 503: the store cannot take writes now; clients should retry after a few seconds.
    pub fn store_unavailable(reason: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the event store is unavailable, nothing was stored; retry later ({reason})"),
        );
        e.retry_after_s = Some(5);
        e
    }

    /// 503: the service is at one of its limits; clients should retry in a second.
    pub fn busy(what: &str) -> ApiError {
        let mut e =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what}; nothing was stored; retry shortly"));
        e.retry_after_s = Some(1);
        e
    }

    /// 503: the KPI aggregates are still being rebuilt from the store after a start; an
    /// answer now would read as zero traffic.
    pub fn warming_up() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the KPIs are warming up: the service is reading them after a start; retry in a moment",
        );
        e.retry_after_s = Some(1);
        e
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vehicleconnect\""));
        }
        response
    }
}
