//! Request bodies: one event, a JSON array of events, or NDJSON, validated all or nothing.

use serde_json::Value;

use super::event::{Event, FieldError, TimeBounds, validate};

pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the request carried its events; decides the shape of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single,
    Batch,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON (400).
    Malformed(String),
    /// JSON, but not an event or a list of them, or an empty list (422).
    Invalid(String),
    /// One or more events are invalid (422); nothing is stored.
    Events(Vec<FieldError>),
    /// Neither JSON nor NDJSON (415).
    UnsupportedType(String),
}

/// Which parser a `Content-Type` calls for.
pub fn format_of(content_type: Option<&str>) -> Result<Format, BodyError> {
    let Some(ct) = content_type else {
        return Ok(Format::Json);
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => Ok(Format::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        _ => Err(BodyError::UnsupportedType(format!(
            "unsupported Content-Type {ct:?}; send application/json (an event or an array of events) or application/x-ndjson (one event per line)"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
}

/// Parses and validates a whole body. Either every event is valid, or none is returned.
pub fn parse_events(format: Format, body: &[u8], bounds: TimeBounds) -> Result<(Shape, Vec<Event>), BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed(
            "request body is empty; send an event object, an array of events, or NDJSON".to_string(),
        ));
    }
    let (shape, values) = match format {
        Format::Json => match serde_json::from_slice::<Value>(body) {
            Err(e) => return Err(BodyError::Malformed(format!("malformed JSON: {e}"))),
            Ok(Value::Array(items)) => (Shape::Batch, items),
            Ok(v @ Value::Object(_)) => (Shape::Single, vec![v]),
            Ok(_) => {
                return Err(BodyError::Invalid(
                    "body must be an event object or an array of event objects".to_string(),
                ));
            }
        },
        Format::Ndjson => (Shape::Batch, parse_ndjson(body)?),
    };
    if values.is_empty() {
        return Err(BodyError::Invalid("batch is empty; send at least one event".to_string()));
    }
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let index = (shape == Shape::Batch).then_some(i);
        if let Some(e) = validate(v, index, bounds, &mut errors) {
            events.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(BodyError::Events(errors));
    }
    Ok((shape, events))
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Value>, BodyError> {
    let mut values = Vec::new();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => values.push(v),
            Err(e) => {
                return Err(BodyError::Malformed(format!(
                    "malformed JSON on NDJSON line {} (event {}): {e}",
                    n + 1,
                    values.len()
                )));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimeBounds = TimeBounds { now_us: 1_800_000_000_000_000, retention_us: 86_400_000_000 };
    const E: &str = r#"{"endpoint":"/a","response_time_ms":1,"status_code":200,"client_id":"c"}"#;

    #[test]
    fn single_array_and_ndjson_bodies() {
        let (shape, events) = parse_events(Format::Json, E.as_bytes(), NOW).unwrap();
        assert_eq!((shape, events.len()), (Shape::Single, 1));
        let (shape, events) = parse_events(Format::Json, format!("[{E},{E}]").as_bytes(), NOW).unwrap();
        assert_eq!((shape, events.len()), (Shape::Batch, 2));
        let (shape, events) = parse_events(Format::Ndjson, format!("{E}\n\n{E}\r\n{E}").as_bytes(), NOW).unwrap();
        assert_eq!((shape, events.len()), (Shape::Batch, 3));
    }

    #[test]
    fn body_errors() {
        let cases: Vec<(Format, String, BodyError)> = vec![
            (
                Format::Json,
                "".into(),
                BodyError::Malformed(
                    "request body is empty; send an event object, an array of events, or NDJSON".into(),
                ),
            ),
            (
                Format::Json,
                "{".into(),
                BodyError::Malformed("malformed JSON: EOF while parsing an object at line 1 column 1".into()),
            ),
            (Format::Json, "[]".into(), BodyError::Invalid("batch is empty; send at least one event".into())),
            (
                Format::Json,
                "42".into(),
                BodyError::Invalid("body must be an event object or an array of event objects".into()),
            ),
            (
                Format::Ndjson,
                format!("{E}\n{{oops\n"),
                BodyError::Malformed(
                    "malformed JSON on NDJSON line 2 (event 1): key must be a string at line 1 column 2".into(),
                ),
            ),
        ];
        for (format, body, want) in cases {
            assert_eq!(parse_events(format, body.as_bytes(), NOW).unwrap_err(), want, "body {body:?}");
        }
    }

    #[test]
    fn one_bad_event_rejects_the_whole_batch() {
        let bad = r#"{"endpoint":"/a","response_time_ms":1,"status_code":900,"client_id":"c"}"#;
        let err = parse_events(Format::Json, format!("[{E},{bad},{E}]").as_bytes(), NOW).unwrap_err();
        let BodyError::Events(errors) = err else { panic!("{err:?}") };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, Some(1));
        assert_eq!(errors[0].field, "status_code");
    }

    #[test]
    fn content_types() {
        assert_eq!(format_of(None), Ok(Format::Json));
        assert_eq!(format_of(Some("application/json; charset=utf-8")), Ok(Format::Json));
        assert_eq!(format_of(Some("application/x-ndjson")), Ok(Format::Ndjson));
        assert!(matches!(format_of(Some("text/csv")), Err(BodyError::UnsupportedType(_))));
    }
}
