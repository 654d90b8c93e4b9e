//! The one shape of `status`, whatever the stack: its JSON always has `stack`, `shape`,
//! `healthy` and, where the service is reached, `url` (docs/reference/cli.md, "status");
//! its text starts with the same line; its exit code is 0 when healthy, 1 when not.

use serde_json::{Value, json};

use crate::printer::Printer;

pub struct Subject<'a> {
    pub stack: &'a str,
    pub shape: &'a str,
    /// Where it runs, for the heading: a host, a region.
    pub place: Option<&'a str>,
    pub healthy: bool,
}

/// `body` with the fields every status has.
pub fn json(subject: &Subject<'_>, mut body: Value) -> Value {
    if !body.is_object() {
        body = json!({});
    }
    body["stack"] = json!(subject.stack);
    body["shape"] = json!(subject.shape);
    body["healthy"] = json!(subject.healthy);
    body
}

pub fn heading(subject: &Subject<'_>) -> String {
    let place = subject.place.map(|p| format!(" on {p}")).unwrap_or_default();
    let health = if subject.healthy { "healthy" } else { "NOT healthy" };
    format!("stack:    {} ({}{place}): {health}", subject.stack, subject.shape)
}

/// Prints a status (its text on stdout, or its JSON) and answers its exit code.
pub fn print(printer: &Printer, subject: &Subject<'_>, body: Value, lines: &[String]) -> u8 {
    printer.json(&json(subject, body));
    printer.out(heading(subject));
    for line in lines {
        printer.out(line);
    }
    if subject.healthy { crate::error::OK } else { crate::error::ERROR }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_says_its_stack_shape_and_health() {
        let s = Subject { stack: "fra", shape: "scale", place: Some("eu-central-1"), healthy: false };
        let j = json(&s, json!({"healthy": true, "group": {"desired": 2}}));
        assert_eq!(
            (j["stack"].as_str(), j["shape"].as_str(), j["healthy"].as_bool()),
            (Some("fra"), Some("scale"), Some(false))
        );
        assert_eq!(j["group"]["desired"], 2);
        assert_eq!(heading(&s), "stack:    fra (scale on eu-central-1): NOT healthy");
    }
}
