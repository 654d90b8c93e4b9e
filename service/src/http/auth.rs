//! Bearer tokens: the ingest token (`POST /api/events`) and the read token (the aggregates).

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;

/// `Ok` when the request carries `Authorization: Bearer <token>`; `what` names the token in
/// the 401's message.
pub fn authorize(headers: &HeaderMap, token: &str, what: &str) -> Result<(), ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Err(no_credentials(what)) };
    // The scheme is case-insensitive (RFC 7235): `bearer`, `Bearer` and `BEARER` are one.
    let given = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim_start().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match given {
        None => Err(unauthorized(&format!("Authorization header must be `Bearer <{what}>`"))),
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized(&format!("the bearer token is not the {what}"))),
    }
}

/// The 401 of a request without `Authorization`.
pub fn no_credentials(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("Authorization header is required: `Authorization: Bearer <{what}>`"),
    )
}

/// Compares without an early exit, so response timing does not reveal a matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
