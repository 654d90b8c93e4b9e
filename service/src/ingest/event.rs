//! The event model and its validation: one JSON value in, an [`Event`] or field errors out.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::raw::{Field, Raw, RawEvent, RawFields};
use crate::kpi::{Observation, unix_us};

pub const MAX_ENDPOINT_CHARS: usize = 256;
pub const MAX_CLIENT_ID_CHARS: usize = 128;
pub const MAX_RESPONSE_TIME_MS: f64 = 3_600_000.0;
/// Timestamps further ahead than this are a client clock problem, not data.
pub const MAX_CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;
pub const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
/// A client-chosen id that makes a retried event idempotent.
pub const MAX_EVENT_ID_CHARS: usize = 128;
const FIELDS: &str = "endpoint, response_time_ms, status_code, client_id, method, timestamp, event_id";

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
    /// The client's id for this event: unique in the store, so a retry stores it once.
    pub event_id: Option<String>,
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

/// One API call a vehicle or app made. Fields not listed here are refused.
// (The OpenAPI document's shape; the body reader in `raw.rs` checks the same rules.)
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"endpoint": "/vehicles/lock", "response_time_ms": 182.5, "status_code": 200, "client_id": "vin-WVWZZZ1JZXW000001", "method": "POST"}))]
#[allow(dead_code)]
pub struct EventInput {
    /// The API path the vehicle app called; starts with `/`, at most 256 characters, no
    /// control characters.
    #[schema(pattern = "^/[^\\u0000-\\u001f\\u007f-\\u009f]*$", max_length = 256)]
    pub endpoint: String,
    /// Response time in milliseconds, 0 to 3 600 000.
    #[schema(minimum = 0, maximum = 3600000)]
    pub response_time_ms: f64,
    /// HTTP status code, 100 to 599.
    #[schema(minimum = 100, maximum = 599)]
    pub status_code: u16,
    /// The calling vehicle or app, 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub client_id: String,
    /// HTTP method, upper case.
    #[schema(value_type = Option<HttpMethod>)]
    pub method: Option<String>,
    /// When the call happened (RFC 3339); defaults to the time of receipt. At most 5 minutes
    /// ahead, and not older than the service's retention period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub timestamp: Option<String>,
    /// Optional, chosen by the client (a UUID, for example): 1 to 128 printable ASCII
    /// characters. An event whose `event_id` is already stored is not stored again; the
    /// answer gives the stored event's id. Makes retries safe.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub event_id: Option<String>,
}

/// The body of `POST /api/events` as JSON: one event, or a batch of 1 to 10 000 (written
/// by hand: the derive cannot bound an array inside a `oneOf`).
pub struct EventsBody;

impl utoipa::PartialSchema for EventsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        use utoipa::openapi::{Ref, RefOr};
        let event = || RefOr::Ref(Ref::from_schema_name("EventInput"));
        let batch = ArrayBuilder::new()
            .items(event())
            .min_items(Some(1))
            .max_items(Some(crate::ingest::body::MAX_EVENTS_PER_REQUEST))
            .description(Some("A batch: all stored, or none."));
        OneOfBuilder::new()
            .item(event())
            .item(batch)
            .description(Some("One event, or a batch of 1 to 10 000 events."))
            .into()
    }
}

impl ToSchema for EventsBody {}

/// The HTTP methods an event's `method` may name.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum HttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    TRACE,
    CONNECT,
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

/// At most this many problems are described in a 422; the rest are only counted, so that
/// a body of a million bad values gets a short answer.
pub const MAX_DETAILS: usize = 100;

/// The problems found in a body: the first [`MAX_DETAILS`] in full, the rest counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems {
    pub details: Vec<FieldError>,
    /// Problems past the first [`MAX_DETAILS`].
    pub omitted: usize,
}

impl Problems {
    pub fn push(&mut self, index: Option<usize>, field: &str, reason: impl FnOnce() -> String) {
        if self.details.len() < MAX_DETAILS {
            self.details.push(FieldError { index, field: field.to_string(), reason: reason() });
        } else {
            self.omitted += 1;
        }
    }

    pub fn total(&self) -> usize {
        self.details.len() + self.omitted
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// Validates one event. On failure, adds one problem per bad field to `problems`.
pub fn validate(raw: &RawEvent, index: Option<usize>, bounds: TimeBounds, problems: &mut Problems) -> Option<Event> {
    let before = problems.total();
    let mut fail = |field: &str, reason: String| problems.push(index, field, || reason);
    let obj = match raw {
        RawEvent::NotObject(kind) => {
            fail("(event)", format!("must be a JSON object with {FIELDS}, got {kind}"));
            return None;
        }
        RawEvent::Object(obj) => obj,
    };
    for key in &obj.unknown {
        fail(key, format!("unknown field; expected one of {FIELDS}"));
    }
    if obj.unknown_more > 0 {
        fail("(event)", format!("has {} more unknown fields", obj.unknown_more));
    }
    for field in &obj.repeated {
        fail(field.name(), "appears more than once; send each field once".to_string());
    }
    let endpoint = check(&mut fail, Field::Endpoint, required(obj, Field::Endpoint).and_then(endpoint));
    let response_time_ms =
        check(&mut fail, Field::ResponseTimeMs, required(obj, Field::ResponseTimeMs).and_then(response_time));
    let status_code = check(&mut fail, Field::StatusCode, required(obj, Field::StatusCode).and_then(status_code));
    let client_id = check(&mut fail, Field::ClientId, required(obj, Field::ClientId).and_then(client_id));
    let method =
        check(&mut fail, Field::Method, optional(obj, Field::Method).map_or(Ok(None), |v| method(v).map(Some)));
    let ts_us = check(
        &mut fail,
        Field::Timestamp,
        optional(obj, Field::Timestamp).map_or(Ok(bounds.now_us), |v| timestamp(v, bounds)),
    );
    let event_id =
        check(&mut fail, Field::EventId, optional(obj, Field::EventId).map_or(Ok(None), |v| event_id(v).map(Some)));
    if problems.total() > before {
        return None;
    }
    Some(Event {
        ts_us: ts_us?,
        endpoint: endpoint?,
        method: method?,
        status_code: status_code?,
        response_time_ms: response_time_ms?,
        client_id: client_id?,
        event_id: event_id?,
    })
}

/// A field's verdict, with a failure reported under its name.
fn check<T>(fail: &mut impl FnMut(&str, String), field: Field, verdict: Result<T, String>) -> Option<T> {
    verdict.map_err(|reason| fail(field.name(), reason)).ok()
}

fn required(obj: &RawFields, field: Field) -> Result<&Raw, String> {
    optional(obj, field).ok_or_else(|| "is required".to_string())
}

/// A field's value; `null` counts as absent.
fn optional(obj: &RawFields, field: Field) -> Option<&Raw> {
    obj.get(field).filter(|v| **v != Raw::Null)
}

fn endpoint(v: &Raw) -> Result<String, String> {
    let Raw::String(s) = v else { return Err(format!("must be a string, got {}", v.kind())) };
    if !s.starts_with('/') {
        return Err(format!("must start with '/', got {}", quote(s)));
    }
    let chars = s.chars().count();
    if chars > MAX_ENDPOINT_CHARS {
        return Err(format!("must be at most {MAX_ENDPOINT_CHARS} characters, got {chars}"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    Ok(s.clone())
}

fn response_time(v: &Raw) -> Result<f64, String> {
    let Raw::Number(n) = v else { return Err(format!("must be a number, got {}", v.kind())) };
    match n.as_f64() {
        Some(x) if x.is_finite() && (0.0..=MAX_RESPONSE_TIME_MS).contains(&x) => Ok(x),
        _ => Err(format!("must be between 0 and 3600000 (one hour), got {n}")),
    }
}

fn status_code(v: &Raw) -> Result<u16, String> {
    match v {
        Raw::Number(n) => match n.as_i64() {
            Some(c) if (100..=599).contains(&c) => Ok(c as u16),
            _ => Err(format!("must be an integer between 100 and 599, got {n}")),
        },
        other => Err(format!("must be an integer between 100 and 599, got {}", describe(other))),
    }
}

fn client_id(v: &Raw) -> Result<String, String> {
    let Raw::String(s) = v else { return Err(format!("must be a string, got {}", v.kind())) };
    let chars = s.chars().count();
    if chars == 0 {
        return Err("must not be empty".to_string());
    }
    if chars > MAX_CLIENT_ID_CHARS {
        return Err(format!("must be at most {MAX_CLIENT_ID_CHARS} characters, got {chars}"));
    }
    Ok(s.clone())
}

fn method(v: &Raw) -> Result<String, String> {
    match v {
        Raw::String(m) if METHODS.contains(&m.as_str()) => Ok(m.clone()),
        Raw::String(m) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            Err(format!("must be upper case: {}", quote(&m.to_ascii_uppercase())))
        }
        other => Err(format!("must be one of {}, got {}", METHODS.join(", "), describe(other))),
    }
}

fn timestamp(v: &Raw, bounds: TimeBounds) -> Result<i64, String> {
    let Raw::String(s) = v else { return Err(format!("must be an RFC 3339 string, got {}", v.kind())) };
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| format!("must be an RFC 3339 date-time such as 2026-11-28T09:30:00Z, got {}", quote(s)))?;
    let ts_us = unix_us(t);
    if ts_us > bounds.now_us + MAX_CLOCK_SKEW_US {
        return Err(format!(
            "is more than {} minutes in the future ({s}); check the client's clock",
            MAX_CLOCK_SKEW_US / 60_000_000
        ));
    }
    if ts_us < bounds.now_us - bounds.retention_us {
        return Err(format!("is older than the retention period ({s}); it would be deleted at once"));
    }
    Ok(ts_us)
}

fn event_id(v: &Raw) -> Result<String, String> {
    let Raw::String(s) = v else { return Err(format!("must be a string, got {}", v.kind())) };
    let valid = (1..=MAX_EVENT_ID_CHARS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(format!(
            "must be 1 to {MAX_EVENT_ID_CHARS} printable ASCII characters without spaces (a UUID, for example), got {}",
            quote(s)
        ));
    }
    Ok(s.clone())
}

/// The value itself when short, its kind otherwise.
fn describe(v: &Raw) -> String {
    match v {
        Raw::Number(n) => n.to_string(),
        Raw::String(s) => quote(s),
        other => other.kind().to_string(),
    }
}

/// A string for an error message, cut at 40 characters.
fn quote(s: &str) -> String {
    if s.chars().count() <= 40 { format!("{s:?}") } else { format!("{:?}…", s.chars().take(40).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn raw(v: &Value) -> RawEvent {
        serde_json::from_value(v.clone()).unwrap()
    }

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
        let mut problems = Problems::default();
        let event = validate(&raw(&input), None, BOUNDS, &mut problems);
        assert!(event.is_none(), "accepted {input}");
        let got: Vec<String> = problems.details.iter().map(FieldError::describe).collect();
        assert_eq!(got, vec![expected.to_string()], "for input {input}");
    }

    #[test]
    fn bad_inputs_name_the_field_and_the_reason() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!([1]),
                "(event): must be a JSON object with endpoint, response_time_ms, status_code, client_id, method, timestamp, event_id, got an array",
            ),
            (
                json!("x"),
                "(event): must be a JSON object with endpoint, response_time_ms, status_code, client_id, method, timestamp, event_id, got a string",
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
                with("event_id", json!("")),
                "event_id: must be 1 to 128 printable ASCII characters without spaces (a UUID, for example), got \"\"",
            ),
            (
                with("event_id", json!("a b")),
                "event_id: must be 1 to 128 printable ASCII characters without spaces (a UUID, for example), got \"a b\"",
            ),
            (with("event_id", json!(7)), "event_id: must be a string, got a number"),
            (
                with("vin", json!("x")),
                "vin: unknown field; expected one of endpoint, response_time_ms, status_code, client_id, method, timestamp, event_id",
            ),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn every_bad_field_is_reported_with_the_batch_index() {
        let mut problems = Problems::default();
        let input = json!({"endpoint": "x", "response_time_ms": -5, "status_code": 200, "client_id": "c", "extra": 1});
        assert!(validate(&raw(&input), Some(3), BOUNDS, &mut problems).is_none());
        let got: Vec<String> = problems.details.iter().map(FieldError::describe).collect();
        assert_eq!(
            got,
            vec![
                "events[3].extra: unknown field; expected one of endpoint, response_time_ms, status_code, client_id, method, timestamp, event_id",
                "events[3].endpoint: must start with '/', got \"x\"",
                "events[3].response_time_ms: must be between 0 and 3600000 (one hour), got -5",
            ]
        );
    }

    #[test]
    fn details_stop_at_the_limit_and_the_rest_are_counted() {
        let mut problems = Problems::default();
        let bad = raw(&with("status_code", json!(1)));
        for i in 0..250 {
            validate(&bad, Some(i), BOUNDS, &mut problems);
        }
        assert_eq!((problems.details.len(), problems.omitted), (MAX_DETAILS, 150));
    }

    #[test]
    fn repeated_and_many_unknown_fields_are_reported() {
        let mut problems = Problems::default();
        let keys: String = (0..12).map(|i| format!(r#","x{i}":1"#)).collect();
        let body = format!(
            r#"{{"endpoint":"/a","endpoint":"/b","response_time_ms":1,"status_code":200,"client_id":"c"{keys}}}"#
        );
        let event: RawEvent = serde_json::from_str(&body).unwrap();
        assert!(validate(&event, None, BOUNDS, &mut problems).is_none());
        let got: Vec<String> = problems.details.iter().map(FieldError::describe).collect();
        assert_eq!(got.len(), 10, "{got:?}");
        assert_eq!(got[8], "(event): has 4 more unknown fields");
        assert_eq!(got[9], "endpoint: appears more than once; send each field once");
    }

    #[test]
    fn valid_event_uses_its_timestamp_or_the_time_of_receipt() {
        let mut errors = Problems::default();
        let e = validate(&raw(&good()), None, BOUNDS, &mut errors).unwrap();
        assert_eq!(e.ts_us, NOW_US);
        assert_eq!(e.method, None);
        let stamped = with("timestamp", json!("2026-11-28T10:00:00.250+01:00"));
        let e = validate(&raw(&with("method", json!("POST"))), None, BOUNDS, &mut errors).unwrap();
        assert_eq!(e.method.as_deref(), Some("POST"));
        let bounds = TimeBounds { now_us: NOW_US, retention_us: 400 * 86_400_000_000 };
        let e2 = validate(&raw(&stamped), None, bounds, &mut errors).unwrap();
        assert_eq!(e2.ts_us, 1_795_856_400_250_000);
        assert!(errors.is_empty());
        assert_eq!(e.endpoint, "/lock");
        assert_eq!(e.status_code, 200);
        assert_eq!(e.response_time_ms, 12.5);
        assert_eq!(e.client_id, "car-1");
    }
}
