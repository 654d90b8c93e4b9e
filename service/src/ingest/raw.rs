//! Reading one event's fields straight from the JSON text, in bounded memory.
//!
//! A `serde_json::Value` of an 8 MiB body can take 30 times its size (`[1,1,1,…]` is four
//! million 32-byte values plus their vector). Here an event object keeps only the six
//! fields it can have, and only the scalar ones whole: an array or object where a field
//! belongs is skipped (serde_json skips without recursion or allocation beyond one byte per
//! nesting level) and remembered as its kind, and an unknown key is remembered by a
//! shortened name. So the memory an event takes while it is read is bounded by its own
//! scalar strings, never by the shape of what surrounds them.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields an event may have, in the order they are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Endpoint,
    ResponseTimeMs,
    StatusCode,
    ClientId,
    Method,
    Timestamp,
    EventId,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Endpoint,
        Field::ResponseTimeMs,
        Field::StatusCode,
        Field::ClientId,
        Field::Method,
        Field::Timestamp,
        Field::EventId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Endpoint => "endpoint",
            Field::ResponseTimeMs => "response_time_ms",
            Field::StatusCode => "status_code",
            Field::ClientId => "client_id",
            Field::Method => "method",
            Field::Timestamp => "timestamp",
            Field::EventId => "event_id",
        }
    }

    fn parse(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == key)
    }
}

/// A field's value: scalars whole, containers by kind only.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array,
    Object,
}

impl Raw {
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Number(_) => "a number",
            Raw::String(_) => "a string",
            Raw::Array => "an array",
            Raw::Object => "an object",
        }
    }
}

/// At most this many unknown keys are remembered per event; the rest are counted.
pub const MAX_UNKNOWN_KEYS: usize = 8;
/// Unknown keys are echoed in errors cut to this many characters.
const MAX_KEY_CHARS: usize = 64;

/// One event as read: an object's known fields, or the kind of the non-object it was.
// One lives at a time, on the stack; boxing the fields would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RawEvent {
    Object(RawFields),
    NotObject(&'static str),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawFields {
    values: [Option<Raw>; Field::ALL.len()],
    /// Known fields given more than once (JSON allows it; which one was meant is unknowable).
    pub repeated: Vec<Field>,
    /// The first [`MAX_UNKNOWN_KEYS`] unknown keys, shortened.
    pub unknown: Vec<String>,
    /// How many more unknown keys there were.
    pub unknown_more: usize,
}

impl RawFields {
    pub fn get(&self, field: Field) -> Option<&Raw> {
        self.values[field as usize].as_ref()
    }

    fn set(&mut self, field: Field, value: Raw) {
        let slot = &mut self.values[field as usize];
        if slot.is_some() && !self.repeated.contains(&field) {
            self.repeated.push(field);
        }
        *slot = Some(value);
    }

    fn unknown_key(&mut self, key: &str) {
        if self.unknown.len() < MAX_UNKNOWN_KEYS {
            self.unknown.push(shorten(key));
        } else {
            self.unknown_more += 1;
        }
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_KEY_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

impl<'de> de::Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawEvent, D::Error> {
        d.deserialize_any(RawEventVisitor)
    }
}

struct RawEventVisitor;

impl<'de> Visitor<'de> for RawEventVisitor {
    type Value = RawEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEvent, A::Error> {
        read_fields(map).map(RawEvent::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawEvent, A::Error> {
        skip_seq(seq)?;
        Ok(RawEvent::NotObject(Raw::Array.kind()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("a string"))
    }
    fn visit_unit<E>(self) -> Result<RawEvent, E> {
        Ok(RawEvent::NotObject("null"))
    }
}

/// Reads an event object's entries; the caller's visitor has seen the `{`.
pub fn read_fields<'de, A: MapAccess<'de>>(mut map: A) -> Result<RawFields, A::Error> {
    let mut fields = RawFields::default();
    while let Some(key) = map.next_key_seed(KeySeed)? {
        match key {
            Key::Known(field) => {
                let value = map.next_value::<Raw>().map_err(|e| out_of_range(field, e))?;
                fields.set(field, value);
            }
            Key::Unknown(name) => {
                map.next_value::<IgnoredAny>()?;
                fields.unknown_key(&name);
            }
        }
    }
    Ok(fields)
}

/// What starts the error of a number JSON allows but no number type holds (`1e309`): valid
/// JSON, so the body reader turns it into a 422 naming the field, not a 400.
pub const OUT_OF_RANGE: &str = "number out of range in field ";

fn out_of_range<E: de::Error>(field: Field, e: E) -> E {
    if e.to_string().starts_with("number out of range") {
        E::custom(format!("{OUT_OF_RANGE}`{}`", field.name()))
    } else {
        e
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

enum Key {
    Known(Field),
    /// Shortened to [`MAX_KEY_CHARS`] as it is read: a megabyte-long key costs nothing.
    Unknown(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match Field::parse(key) {
            Some(field) => Key::Known(field),
            None => Key::Unknown(shorten(key)),
        })
    }
}

impl<'de> de::Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Raw, E> {
        Ok(Raw::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Raw, E> {
        Ok(Raw::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Raw, E> {
        serde_json::Number::from_f64(x).map(Raw::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::String(s))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw, A::Error> {
        skip_seq(seq)?;
        Ok(Raw::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> RawEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scalars_are_kept_and_containers_reduced_to_their_kind() {
        let RawEvent::Object(f) = read(
            r#"{"endpoint":"/a","status_code":200,"client_id":[1,[2,{"x":3}]],"method":null,"timestamp":{"a":[]}}"#,
        ) else {
            panic!()
        };
        assert_eq!(f.get(Field::Endpoint), Some(&Raw::String("/a".into())));
        assert_eq!(f.get(Field::StatusCode), Some(&Raw::Number(200.into())));
        assert_eq!(f.get(Field::ClientId), Some(&Raw::Array));
        assert_eq!(f.get(Field::Method), Some(&Raw::Null));
        assert_eq!(f.get(Field::Timestamp), Some(&Raw::Object));
        assert_eq!(f.get(Field::ResponseTimeMs), None);
    }

    #[test]
    fn unknown_keys_are_shortened_and_counted_and_repeats_noted() {
        let long = "k".repeat(1000);
        let keys: String = (0..20).map(|i| format!(r#""x{i}":1,"#)).collect();
        let RawEvent::Object(f) = read(&format!(r#"{{"{long}":[[[]]],{keys}"endpoint":"/a","endpoint":"/b"}}"#)) else {
            panic!()
        };
        assert_eq!(f.unknown.len(), MAX_UNKNOWN_KEYS);
        assert_eq!(f.unknown[0].chars().count(), MAX_KEY_CHARS + 1);
        assert_eq!(f.unknown_more, 21 - MAX_UNKNOWN_KEYS);
        assert_eq!(f.repeated, vec![Field::Endpoint]);
        assert_eq!(f.get(Field::Endpoint), Some(&Raw::String("/b".into())));
    }

    #[test]
    fn non_objects_are_named_by_kind() {
        assert_eq!(read("[1,2]"), RawEvent::NotObject("an array"));
        assert_eq!(read("\"x\""), RawEvent::NotObject("a string"));
        assert_eq!(read("null"), RawEvent::NotObject("null"));
        assert_eq!(read("1.5"), RawEvent::NotObject("a number"));
    }

    #[test]
    fn deep_nesting_inside_a_field_is_skipped_without_recursion() {
        let deep = format!(r#"{{"endpoint":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let RawEvent::Object(f) = read(&deep) else { panic!() };
        assert_eq!(f.get(Field::Endpoint), Some(&Raw::Array));
    }
}
