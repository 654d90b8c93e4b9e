//! Request bodies: one event, a JSON array of events, or NDJSON, validated all or nothing.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::event::{Event, Problems, TimeBounds, validate};
use super::raw::{RawEvent, read_fields};

pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Events one request may carry. Bounds the validated events held per request (each at
/// most a few hundred bytes) and the time one request spends in a transaction.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

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
    Events(Problems),
    /// More than [`MAX_EVENTS_PER_REQUEST`] events (413).
    TooManyEvents,
    /// Neither JSON nor NDJSON (415).
    UnsupportedType(String),
}

/// Which parser a `Content-Type` calls for. None at all is JSON: gateways and scripts that
/// send none get what they almost always meant; a wrong one is named (415).
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
///
/// The body is read event by event (never as one JSON tree), each event validated as soon as
/// it is read and kept only as a validated [`Event`]: memory is the body, the events, and
/// one event's raw fields at a time. See docs/security.md.
pub fn parse_events(format: Format, body: &[u8], bounds: TimeBounds) -> Result<(Shape, Vec<Event>), BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed(
            "request body is empty; send an event object, an array of events, or NDJSON".to_string(),
        ));
    }
    let mut events =
        Collector { bounds, shape: Shape::Batch, seen: 0, events: Vec::new(), problems: Problems::default() };
    let read = match format {
        Format::Json => read_json(body, &mut events),
        Format::Ndjson => read_ndjson(body, &mut events),
    };
    if events.seen > MAX_EVENTS_PER_REQUEST {
        return Err(BodyError::TooManyEvents);
    }
    read?;
    if events.seen == 0 {
        return Err(BodyError::Invalid("batch is empty; send at least one event".to_string()));
    }
    if !events.problems.is_empty() {
        return Err(BodyError::Events(events.problems));
    }
    Ok((events.shape, events.events))
}

/// Validates events as they are read; keeps them only while all are valid.
struct Collector {
    bounds: TimeBounds,
    shape: Shape,
    /// Events read so far; one past the limit stops the reading.
    seen: usize,
    events: Vec<Event>,
    problems: Problems,
}

impl Collector {
    fn take<E: de::Error>(&mut self, raw: RawEvent) -> Result<(), E> {
        let index = self.seen;
        self.seen += 1;
        if self.seen > MAX_EVENTS_PER_REQUEST {
            return Err(E::custom("too many events"));
        }
        let index = (self.shape == Shape::Batch).then_some(index);
        if let Some(event) = validate(&raw, index, self.bounds, &mut self.problems)
            && self.problems.is_empty()
        {
            self.events.push(event);
        } else {
            // Nothing will be stored: stop holding what was valid.
            self.events = Vec::new();
        }
        Ok(())
    }
}

fn read_json(body: &[u8], events: &mut Collector) -> Result<(), BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = de.deserialize_any(TopLevel(events)).and_then(|top| de.end().map(|()| top));
    match top {
        // The event being read when it failed: the one after those taken.
        Err(e) => Err(malformed(&e, None, (events.shape == Shape::Batch).then_some(events.seen))),
        Ok(false) => Err(BodyError::Invalid("body must be an event object or an array of event objects".to_string())),
        Ok(true) => Ok(()),
    }
}

fn read_ndjson(body: &[u8], events: &mut Collector) -> Result<(), BodyError> {
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = events.seen;
        let mut de = serde_json::Deserializer::from_slice(line);
        let read = OneEvent(events).deserialize(&mut de).and_then(|()| de.end());
        if let Err(e) = read {
            return Err(malformed(&e, Some((n + 1, index)), Some(index)));
        }
    }
    Ok(())
}

/// A body serde_json could not read: 400 with where, or 422 for a number out of range
/// (valid JSON, a value no number holds), with its `details` like every 422. `ndjson`: the
/// body's line and the event's index; serde_json's own position is then within that line.
/// `index`: the event being read, in a batch.
fn malformed(e: &serde_json::Error, ndjson: Option<(usize, usize)>, index: Option<usize>) -> BodyError {
    let text = e.to_string();
    // serde_json ends every message with " at line L column C": said once, our way.
    let message = match text.rfind(" at line ") {
        Some(at) if e.line() > 0 => &text[..at],
        _ => text.as_str(),
    };
    let place = match ndjson {
        Some((line, index)) => format!("NDJSON line {line} column {} (event {index})", e.column()),
        None => format!("line {} column {}", e.line(), e.column()),
    };
    match message.strip_prefix(crate::ingest::raw::OUT_OF_RANGE) {
        Some(field) => {
            let mut problems = Problems::default();
            problems.push(index, field.trim_matches('`'), || {
                format!("the number at {place} is out of range (too large for any number type)")
            });
            BodyError::Events(problems)
        }
        None => BodyError::Malformed(format!("malformed JSON at {place}: {message}")),
    }
}

/// The whole body: an event object (true), an array of events (true), or anything else (false).
struct TopLevel<'c>(&'c mut Collector);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object or an array of events")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.shape = Shape::Single;
        let fields = read_fields(map)?;
        self.0.take(RawEvent::Object(fields))?;
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(OneEvent(&mut *self.0))?.is_some() {}
        Ok(true)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// One element of a batch (or one NDJSON line), handed to the collector once read.
struct OneEvent<'c>(&'c mut Collector);

impl<'de> DeserializeSeed<'de> for OneEvent<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let raw = <RawEvent as de::Deserialize>::deserialize(d)?;
        self.0.take(raw)
    }
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
                BodyError::Malformed("malformed JSON at line 1 column 1: EOF while parsing an object".into()),
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
                BodyError::Malformed("malformed JSON at NDJSON line 2 column 2 (event 1): key must be a string".into()),
            ),
        ];
        let huge = r#"{"endpoint":"/a","response_time_ms":1e309,"status_code":200,"client_id":"c"}"#;
        for (format, body, want) in cases {
            assert_eq!(parse_events(format, body.as_bytes(), NOW).unwrap_err(), want, "body {body:?}");
        }
        // Out of range: a 422 with details, as every 422, naming the event in a batch.
        let Err(BodyError::Events(p)) = parse_events(Format::Json, huge.as_bytes(), NOW) else { panic!() };
        assert_eq!(
            p.details[0].describe(),
            "response_time_ms: the number at line 1 column 41 is out of range (too large for any number type)"
        );
        let batch = format!("[{E},{}]", huge.replace("1e309", "1e400"));
        let Err(BodyError::Events(p)) = parse_events(Format::Json, batch.as_bytes(), NOW) else { panic!() };
        assert_eq!((p.details[0].index, p.details[0].field.as_str()), (Some(1), "response_time_ms"), "{p:?}");
    }

    #[test]
    fn one_bad_event_rejects_the_whole_batch() {
        let bad = r#"{"endpoint":"/a","response_time_ms":1,"status_code":900,"client_id":"c"}"#;
        let err = parse_events(Format::Json, format!("[{E},{bad},{E}]").as_bytes(), NOW).unwrap_err();
        let BodyError::Events(problems) = err else { panic!("{err:?}") };
        assert_eq!(problems.details.len(), 1);
        assert_eq!(problems.details[0].index, Some(1));
        assert_eq!(problems.details[0].field, "status_code");
    }

    #[test]
    fn a_request_carries_at_most_the_event_limit() {
        let at_limit = format!("[{}]", vec![E; MAX_EVENTS_PER_REQUEST].join(","));
        assert_eq!(parse_events(Format::Json, at_limit.as_bytes(), NOW).unwrap().1.len(), MAX_EVENTS_PER_REQUEST);
        let over = format!("{at_limit}\n{E}").replacen('[', "", 1).replace("},{", "}\n{").replace("}]", "}");
        assert_eq!(parse_events(Format::Ndjson, over.as_bytes(), NOW).unwrap_err(), BodyError::TooManyEvents);
        // Four million tiny elements: refused at the limit, not after reading them all.
        let ones = format!("[{}1]", "1,".repeat(4_000_000));
        assert_eq!(parse_events(Format::Json, ones.as_bytes(), NOW).unwrap_err(), BodyError::TooManyEvents);
    }

    #[test]
    fn many_bad_events_give_a_bounded_answer() {
        let ones = format!("[{}1]", "1,".repeat(MAX_EVENTS_PER_REQUEST - 1));
        let BodyError::Events(problems) = parse_events(Format::Json, ones.as_bytes(), NOW).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.details.len(), crate::ingest::event::MAX_DETAILS);
        assert_eq!(problems.total(), MAX_EVENTS_PER_REQUEST);
    }

    #[test]
    fn deep_nesting_is_skipped_not_recursed_into() {
        // Valid JSON a million levels deep: one event that is not an object, found without
        // recursing (a recursive parser would overflow its stack).
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let BodyError::Events(p) = parse_events(Format::Json, deep.as_bytes(), NOW).unwrap_err() else { panic!() };
        assert!(p.details[0].describe().starts_with("events[0].(event): must be a JSON object"), "{p:?}");
        let unbalanced = format!("{}{}", "[".repeat(1_000_000), "]".repeat(999_999));
        assert!(matches!(parse_events(Format::Json, unbalanced.as_bytes(), NOW), Err(BodyError::Malformed(_))));
        let deep_field = format!(r#"{{"endpoint":{}0{}}}"#, "{\"a\":".repeat(500_000), "}".repeat(500_000));
        let BodyError::Events(p) = parse_events(Format::Json, deep_field.as_bytes(), NOW).unwrap_err() else {
            panic!()
        };
        assert_eq!(p.details[0].describe(), "endpoint: must be a string, got an object");
    }

    #[test]
    fn content_types() {
        assert_eq!(format_of(None), Ok(Format::Json));
        assert_eq!(format_of(Some("application/json; charset=utf-8")), Ok(Format::Json));
        assert_eq!(format_of(Some("application/x-ndjson")), Ok(Format::Ndjson));
        assert!(matches!(format_of(Some("text/csv")), Err(BodyError::UnsupportedType(_))));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::ingest::event::MAX_DETAILS;

    const NOW: TimeBounds = TimeBounds { now_us: 1_800_000_000_000_000, retention_us: 86_400_000_000 };

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| json!(x)),
            ".{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects with the event's own keys, each with any value.
    fn event_like() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "endpoint",
            "response_time_ms",
            "status_code",
            "client_id",
            "method",
            "timestamp",
            "event_id",
            "other",
        ]);
        let value = prop_oneof![
            any_json(),
            "/[a-z/]{0,10}".prop_map(Value::String),
            (0u32..700).prop_map(|n| json!(n)),
            Just(json!("2027-01-15T08:00:00Z")),
        ];
        prop::collection::btree_map(keys, value, 0..8)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_are_answered_without_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_events(Format::Json, &bytes, NOW);
            let _ = parse_events(Format::Ndjson, &bytes, NOW);
        }

        #[test]
        fn any_json_is_answered_and_an_accepted_batch_is_whole(
            values in prop::collection::vec(prop_oneof![any_json(), event_like()], 0..30)
        ) {
            let body = serde_json::to_vec(&values).unwrap();
            match parse_events(Format::Json, &body, NOW) {
                Ok((shape, events)) => {
                    prop_assert_eq!(shape, Shape::Batch);
                    prop_assert_eq!(events.len(), values.len());
                    for e in events {
                        prop_assert!(e.endpoint.starts_with('/'));
                        prop_assert!((100..=599).contains(&e.status_code));
                        prop_assert!((0.0..=3_600_000.0).contains(&e.response_time_ms));
                        prop_assert!(!e.client_id.is_empty());
                    }
                }
                Err(BodyError::Events(p)) => {
                    prop_assert!(p.details.len() <= MAX_DETAILS);
                    prop_assert!(!p.details.is_empty());
                    prop_assert!(p.details.iter().all(|d| d.index.is_some_and(|i| i < values.len())));
                }
                Err(BodyError::Invalid(_)) => prop_assert!(values.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {other:?} for a JSON array"),
            }
        }

        #[test]
        fn one_object_is_validated_like_its_batch_of_one(value in event_like()) {
            let single = parse_events(Format::Json, &serde_json::to_vec(&value).unwrap(), NOW);
            let batch = parse_events(Format::Json, &serde_json::to_vec(&vec![&value]).unwrap(), NOW);
            prop_assert_eq!(single.is_ok(), batch.is_ok());
            if let (Ok((_, a)), Ok((_, b))) = (single, batch) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
