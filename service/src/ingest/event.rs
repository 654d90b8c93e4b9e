//! The event model and its validation: one JSON value in, an [`Event`] or field errors out.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::kpi::{Observation, unix_us};

pub const MAX_ENDPOINT_CHARS: usize = 256;
pub const MAX_CLIENT_ID_CHARS: usize = 128;
pub const MAX_RESPONSE_TIME_MS: f64 = 3_600_000.0;
/// Timestamps further ahead than this are a client clock problem, not data.
pub const MAX_CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;
pub const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
const FIELDS: &str = "endpoint, response_time_ms, status_code, client_id, method, timestamp";

/// A validated API event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix time in microseconds: the event's `timestamp`, or its time of receipt.
    pub ts_us: i64,
    pub endpoint: String,
    pub method: Option<String>,
    pub status_code: u16,
    pub response_time_ms: f64,
    pub client_id: String,
}

impl Event {
    pub fn observation(&self) -> Observation<'_> {
        Observation {
            ts_us: self.ts_us,
            endpoint: &self.endpoint,
            response_time_ms: self.response_time_ms,
            status_code: self.status_code,
        }
    }
}

/// The JSON shape of an event, for the OpenAPI document. Validation does not go through
/// serde: it reads the raw value so that it can report every bad field at once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"endpoint": "/vehicles/lock", "response_time_ms": 182.5, "status_code": 200, "client_id": "vin-WVWZZZ1JZXW000001", "method": "POST"}))]
#[allow(dead_code)]
pub struct EventInput {
    /// The API path the vehicle app called; starts with `/`, at most 256 characters.
    pub endpoint: String,
    /// Response time in milliseconds, 0 to 3 600 000.
    pub response_time_ms: f64,
    /// HTTP status code, 100 to 599.
    pub status_code: u16,
    /// The calling vehicle or app, 1 to 128 characters.
    pub client_id: String,
    /// HTTP method, upper case.
    pub method: Option<String>,
    /// When the call happened (RFC 3339); defaults to the time of receipt.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub timestamp: Option<String>,
}

/// One problem with one field of one event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// Position of the event in the batch; absent for a single event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub reason: String,
}

impl FieldError {
    /// `events[3].status_code: must be ...`, or `status_code: must be ...` for a single event.
    pub fn describe(&self) -> String {
        match self.index {
            Some(i) => format!("events[{i}].{}: {}", self.field, self.reason),
            None => format!("{}: {}", self.field, self.reason),
        }
    }
}

/// The time bounds an event's `timestamp` must fall in.
#[derive(Debug, Clone, Copy)]
pub struct TimeBounds {
    /// Time of receipt, Unix microseconds.
    pub now_us: i64,
    /// The retention period: older events would be deleted at once, so they are refused.
    pub retention_us: i64,
}

/// Validates one event. On failure, appends one [`FieldError`] per bad field to `errors`.
pub fn validate(
    value: &Value,
    index: Option<usize>,
    bounds: TimeBounds,
    errors: &mut Vec<FieldError>,
) -> Option<Event> {
    let now_us = bounds.now_us;
    let before = errors.len();
    let mut fail = |field: &str, reason: String| errors.push(FieldError { index, field: field.to_string(), reason });
    let Some(obj) = value.as_object() else {
        fail("(event)", format!("must be a JSON object with {FIELDS}, got {}", kind(value)));
        return None;
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "endpoint" | "response_time_ms" | "status_code" | "client_id" | "method" | "timestamp"
        ) {
            fail(key, format!("unknown field; expected one of {FIELDS}"));
        }
    }

    let endpoint = match required(obj, "endpoint") {
        Err(reason) => {
            fail("endpoint", reason);
            None
        }
        Ok(v) => match v.as_str() {
            None => {
                fail("endpoint", format!("must be a string, got {}", kind(v)));
                None
            }
            Some(s) if !s.starts_with('/') => {
                fail("endpoint", format!("must start with '/', got {}", quote(s)));
                None
            }
            Some(s) if s.chars().count() > MAX_ENDPOINT_CHARS => {
                fail("endpoint", format!("must be at most {MAX_ENDPOINT_CHARS} characters, got {}", s.chars().count()));
                None
            }
            Some(s) if s.chars().any(char::is_control) => {
                fail("endpoint", "must not contain control characters".to_string());
                None
            }
            Some(s) => Some(s.to_string()),
        },
    };

    let response_time_ms = match required(obj, "response_time_ms") {
        Err(reason) => {
            fail("response_time_ms", reason);
            None
        }
        Ok(v) => match v.as_f64() {
            None => {
                fail("response_time_ms", format!("must be a number, got {}", kind(v)));
                None
            }
            Some(x) if !x.is_finite() || !(0.0..=MAX_RESPONSE_TIME_MS).contains(&x) => {
                fail("response_time_ms", format!("must be between 0 and 3600000 (one hour), got {v}"));
                None
            }
            Some(x) => Some(x),
        },
    };

    let status_code = match required(obj, "status_code") {
        Err(reason) => {
            fail("status_code", reason);
            None
        }
        Ok(v) => match v.as_i64() {
            None => {
                fail("status_code", format!("must be an integer between 100 and 599, got {}", describe(v)));
                None
            }
            Some(c) if !(100..=599).contains(&c) => {
                fail("status_code", format!("must be an integer between 100 and 599, got {c}"));
                None
            }
            Some(c) => Some(c as u16),
        },
    };

    let client_id = match required(obj, "client_id") {
        Err(reason) => {
            fail("client_id", reason);
            None
        }
        Ok(v) => match v.as_str() {
            None => {
                fail("client_id", format!("must be a string, got {}", kind(v)));
                None
            }
            Some("") => {
                fail("client_id", "must not be empty".to_string());
                None
            }
            Some(s) if s.chars().count() > MAX_CLIENT_ID_CHARS => {
                fail(
                    "client_id",
                    format!("must be at most {MAX_CLIENT_ID_CHARS} characters, got {}", s.chars().count()),
                );
                None
            }
            Some(s) => Some(s.to_string()),
        },
    };

    let method = match obj.get("method") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if METHODS.contains(&m.as_str()) => Some(m.clone()),
        Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            fail("method", format!("must be upper case: {}", quote(&m.to_ascii_uppercase())));
            None
        }
        Some(v) => {
            fail("method", format!("must be one of {}, got {}", METHODS.join(", "), describe(v)));
            None
        }
    };

    let ts_us = match obj.get("timestamp") {
        None | Some(Value::Null) => Some(now_us),
        Some(Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Err(_) => {
                fail(
                    "timestamp",
                    format!("must be an RFC 3339 date-time such as 2026-11-28T09:30:00Z, got {}", quote(s)),
                );
                None
            }
            Ok(t) if unix_us(t) > now_us + MAX_CLOCK_SKEW_US => {
                fail("timestamp", format!("is more than 5 minutes in the future ({s}); check the client's clock"));
                None
            }
            Ok(t) if unix_us(t) < now_us - bounds.retention_us => {
                fail("timestamp", format!("is older than the retention period ({s}); it would be deleted at once"));
                None
            }
            Ok(t) => Some(unix_us(t)),
        },
        Some(v) => {
            fail("timestamp", format!("must be an RFC 3339 string, got {}", kind(v)));
            None
        }
    };

    if errors.len() > before {
        return None;
    }
    Some(Event {
        ts_us: ts_us?,
        endpoint: endpoint?,
        method,
        status_code: status_code?,
        response_time_ms: response_time_ms?,
        client_id: client_id?,
    })
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a Value, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Err("is required".to_string()),
        Some(v) => Ok(v),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value itself when short, its kind otherwise.
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        other => kind(other).to_string(),
    }
}

/// A string for an error message, cut at 40 characters.
fn quote(s: &str) -> String {
    if s.chars().count() <= 40 { format!("{s:?}") } else { format!("{:?}…", s.chars().take(40).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW_US: i64 = 1_800_000_000_000_000;
    const BOUNDS: TimeBounds = TimeBounds { now_us: NOW_US, retention_us: 30 * 86_400_000_000 };

    fn good() -> Value {
        json!({"endpoint": "/lock", "response_time_ms": 12.5, "status_code": 200, "client_id": "car-1"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = good();
        v.as_object_mut().unwrap().insert(field.to_string(), value);
        v
    }

    fn without(field: &str) -> Value {
        let mut v = good();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    /// One bad input and the one error it must produce, as `field: reason`.
    fn check(input: Value, expected: &str) {
        let mut errors = Vec::new();
        let event = validate(&input, None, BOUNDS, &mut errors);
        assert!(event.is_none(), "accepted {input}");
        let got: Vec<String> = errors.iter().map(FieldError::describe).collect();
        assert_eq!(got, vec![expected.to_string()], "for input {input}");
    }

    #[test]
    fn bad_inputs_name_the_field_and_the_reason() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!([1]),
                "(event): must be a JSON object with endpoint, response_time_ms, status_code, client_id, method, timestamp, got an array",
            ),
            (
                json!("x"),
                "(event): must be a JSON object with endpoint, response_time_ms, status_code, client_id, method, timestamp, got a string",
            ),
            (without("endpoint"), "endpoint: is required"),
            (with("endpoint", json!(null)), "endpoint: is required"),
            (with("endpoint", json!(7)), "endpoint: must be a string, got a number"),
            (with("endpoint", json!("lock")), "endpoint: must start with '/', got \"lock\""),
            (
                with("endpoint", json!(format!("/{}", "a".repeat(256)))),
                "endpoint: must be at most 256 characters, got 257",
            ),
            (with("endpoint", json!("/a\nb")), "endpoint: must not contain control characters"),
            (without("response_time_ms"), "response_time_ms: is required"),
            (with("response_time_ms", json!("12")), "response_time_ms: must be a number, got a string"),
            (with("response_time_ms", json!(-1)), "response_time_ms: must be between 0 and 3600000 (one hour), got -1"),
            (
                with("response_time_ms", json!(3_600_000.5)),
                "response_time_ms: must be between 0 and 3600000 (one hour), got 3600000.5",
            ),
            (without("status_code"), "status_code: is required"),
            (with("status_code", json!(99)), "status_code: must be an integer between 100 and 599, got 99"),
            (with("status_code", json!(600)), "status_code: must be an integer between 100 and 599, got 600"),
            (with("status_code", json!(200.5)), "status_code: must be an integer between 100 and 599, got 200.5"),
            (with("status_code", json!("200")), "status_code: must be an integer between 100 and 599, got \"200\""),
            (without("client_id"), "client_id: is required"),
            (with("client_id", json!("")), "client_id: must not be empty"),
            (with("client_id", json!("c".repeat(129))), "client_id: must be at most 128 characters, got 129"),
            (with("client_id", json!(["a"])), "client_id: must be a string, got an array"),
            (with("method", json!("get")), "method: must be upper case: \"GET\""),
            (
                with("method", json!("FETCH")),
                "method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT, got \"FETCH\"",
            ),
            (
                with("timestamp", json!("yesterday")),
                "timestamp: must be an RFC 3339 date-time such as 2026-11-28T09:30:00Z, got \"yesterday\"",
            ),
            (with("timestamp", json!(1700000000)), "timestamp: must be an RFC 3339 string, got a number"),
            (
                with("timestamp", json!("2030-01-01T00:00:00Z")),
                "timestamp: is more than 5 minutes in the future (2030-01-01T00:00:00Z); check the client's clock",
            ),
            (
                with("timestamp", json!("2026-11-28T09:00:00Z")),
                "timestamp: is older than the retention period (2026-11-28T09:00:00Z); it would be deleted at once",
            ),
            (
                with("vin", json!("x")),
                "vin: unknown field; expected one of endpoint, response_time_ms, status_code, client_id, method, timestamp",
            ),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn every_bad_field_is_reported_with_the_batch_index() {
        let mut errors = Vec::new();
        let input = json!({"endpoint": "x", "response_time_ms": -5, "status_code": 200, "client_id": "c", "extra": 1});
        assert!(validate(&input, Some(3), BOUNDS, &mut errors).is_none());
        let got: Vec<String> = errors.iter().map(FieldError::describe).collect();
        assert_eq!(
            got,
            vec![
                "events[3].extra: unknown field; expected one of endpoint, response_time_ms, status_code, client_id, method, timestamp",
                "events[3].endpoint: must start with '/', got \"x\"",
                "events[3].response_time_ms: must be between 0 and 3600000 (one hour), got -5",
            ]
        );
    }

    #[test]
    fn valid_event_uses_its_timestamp_or_the_time_of_receipt() {
        let mut errors = Vec::new();
        let e = validate(&good(), None, BOUNDS, &mut errors).unwrap();
        assert_eq!(e.ts_us, NOW_US);
        assert_eq!(e.method, None);
        let stamped = with("timestamp", json!("2026-11-28T10:00:00.250+01:00"));
        let e = validate(&with("method", json!("POST")), None, BOUNDS, &mut errors).unwrap();
        assert_eq!(e.method.as_deref(), Some("POST"));
        let bounds = TimeBounds { now_us: NOW_US, retention_us: 400 * 86_400_000_000 };
        let e2 = validate(&stamped, None, bounds, &mut errors).unwrap();
        assert_eq!(e2.ts_us, 1_795_856_400_250_000);
        assert!(errors.is_empty());
        assert_eq!(e.endpoint, "/lock");
        assert_eq!(e.status_code, 200);
        assert_eq!(e.response_time_ms, 12.5);
        assert_eq!(e.client_id, "car-1");
    }
}
