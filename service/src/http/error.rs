//! API errors: every failure answers `{"error": "...", ...}` with the right status code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ingest::event::FieldError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field or parameter when there is one.
    pub error: String,
    /// One entry per bad field of each bad event (invalid events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), details: None }, retry_after_s: None }
    }

    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn unprocessable(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error)
    }

    /// 422 listing every bad field; the summary names the first.
    pub fn invalid_events(details: Vec<FieldError>) -> ApiError {
        let bad_events = {
            let mut idx: Vec<Option<usize>> = details.iter().map(|d| d.index).collect();
            idx.dedup();
            idx.len()
        };
        let first = details.first().map(FieldError::describe).unwrap_or_default();
        let error = match (details.first().and_then(|d| d.index), details.len()) {
            (None, 1) => first,
            (None, n) => format!("{first} (and {} more problems)", n - 1),
            (Some(_), _) => format!(
                "{bad_events} invalid event(s), nothing was stored; first: {first}{}",
                if details.len() > 1 {
                    format!(" ({} problems in all, see details)", details.len())
                } else {
                    String::new()
                }
            ),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody { error, details: Some(details) },
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
