//! The one deploy report, whatever the shape: the release, each place it went to (this
//! machine, a host, an instance) and what happened there, whether it all ended well, and
//! how long it took; the same text on stdout and the same JSON
//! (docs/reference/schemas/deploy.schema.json) for local, ssh, fleet, aws and scale.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::printer::Printer;

pub struct Shipment<'a> {
    pub stack: &'a str,
    pub shape: &'a str,
    pub release: &'a str,
    /// Every place healthy on the release (or unchanged): nothing to roll back or retry.
    pub ok: bool,
    /// (place, what happened there), in order.
    pub places: &'a [(String, String)],
    /// Where users reach the service, when vcctl knows.
    pub url: Option<&'a str>,
    pub elapsed: Duration,
}

pub fn json(s: &Shipment<'_>, extra: Map<String, Value>) -> Value {
    let hosts: Vec<Value> = s.places.iter().map(|(h, r)| json!({"host": h, "result": r})).collect();
    let mut out = json!({
        "stack": s.stack, "shape": s.shape, "release": s.release, "ok": s.ok, "hosts": hosts,
        "url": s.url, "elapsed_s": s.elapsed.as_secs_f64(),
    });
    let map = out.as_object_mut().expect("an object");
    for (k, v) in extra {
        map.entry(k).or_insert(v);
    }
    out
}

pub fn text(s: &Shipment<'_>, trailer: &[String]) -> String {
    let how = if s.ok { "shipped" } else { "NOT shipped" };
    let took = crate::printer::format_duration(s.elapsed);
    let mut lines = vec![format!("stack `{}` ({}): release {} {how} in {took}", s.stack, s.shape, s.release)];
    lines.extend(s.places.iter().map(|(h, r)| format!("  {h}: {r}")));
    if let (true, Some(url)) = (s.ok, s.url) {
        lines.push(format!("  dashboard: {url}/dashboard\n  API:       {url}/docs"));
    }
    lines.extend(trailer.iter().cloned());
    lines.join("\n")
}

/// Prints the report: its text on stdout, or its JSON.
pub fn print(printer: &Printer, s: &Shipment<'_>, extra: Map<String, Value>, trailer: &[String]) {
    printer.json(&json(s, extra));
    printer.out(text(s, trailer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_the_same_in_text_and_json() {
        let places = [("10.0.0.11".to_string(), "deployed, healthy".to_string())];
        let s = Shipment {
            stack: "fra",
            shape: "fleet",
            release: "r2",
            ok: true,
            places: &places,
            url: Some("http://lb"),
            elapsed: Duration::from_secs(3),
        };
        let j = json(&s, crate::plan::extra(json!({"dashboard": "http://lb/dashboard", "ok": "never overrides"})));
        assert_eq!((j["ok"].as_bool(), j["shape"].as_str()), (Some(true), Some("fleet")));
        assert_eq!(j["hosts"][0], json!({"host": "10.0.0.11", "result": "deployed, healthy"}));
        assert_eq!(j["dashboard"], "http://lb/dashboard");
        let t = text(&s, &["the bucket serves r2".into()]);
        assert!(t.starts_with("stack `fra` (fleet): release r2 shipped in "), "{t}");
        assert!(t.contains("\n  10.0.0.11: deployed, healthy\n  dashboard: http://lb/dashboard\n"), "{t}");
        assert!(t.ends_with("\nthe bucket serves r2"), "{t}");
    }
}
