//! The reports of a change, whatever the shape, with the same text on stdout and the same
//! JSON for local, ssh, fleet, aws and scale:
//! - the deploy report (docs/reference/schemas/deploy.schema.json): the release, each place
//!   it went to (this machine, a host, an instance) and what happened there, whether it all
//!   ended well, and how long it took;
//! - the destroy report (docs/reference/schemas/destroy.schema.json): what was deleted, what
//!   stays and what could not be deleted.

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

/// Prints the report: its text on stdout, or its JSON. It is kept as the command's last
/// report, for what tells others of it (providers/aws/notify.rs).
pub fn print(printer: &Printer, s: &Shipment<'_>, extra: Map<String, Value>, trailer: &[String]) {
    let report = json(s, extra);
    printer.json(&report);
    printer.out(text(s, trailer));
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
}

/// The deploy report this process printed last.
static LAST: std::sync::Mutex<Option<Value>> = std::sync::Mutex::new(None);

/// The deploy report this command printed, if it printed one.
pub fn last() -> Option<Value> {
    LAST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What `destroy` did.
pub struct Removal<'a> {
    pub stack: &'a str,
    pub shape: &'a str,
    pub deleted: &'a [String],
    /// What stays on purpose (`--keep-data`, a final snapshot).
    pub kept: &'a [String],
    /// (what, why) for each deletion that failed.
    pub failed: &'a [(String, String)],
}

pub fn removal_json(r: &Removal<'_>, extra: Map<String, Value>) -> Value {
    let failed: Vec<Value> = r.failed.iter().map(|(what, why)| json!({"what": what, "why": why})).collect();
    let mut out = json!({
        "stack": r.stack, "shape": r.shape, "destroyed": r.failed.is_empty(),
        "deleted": r.deleted, "kept": r.kept, "failed": failed,
    });
    let map = out.as_object_mut().expect("an object");
    for (k, v) in extra {
        map.entry(k).or_insert(v);
    }
    out
}

pub fn removal_text(r: &Removal<'_>) -> String {
    let how = match (r.failed.is_empty(), r.deleted.is_empty() && r.kept.is_empty()) {
        (false, _) => "NOT fully destroyed: run `vcctl destroy` again to finish",
        (true, true) => "nothing to destroy",
        (true, false) => "destroyed",
    };
    let mut lines = vec![format!("stack `{}` ({}): {how}", r.stack, r.shape)];
    lines.extend(r.deleted.iter().map(|d| format!("  deleted: {d}")));
    lines.extend(r.kept.iter().map(|k| format!("  kept:    {k}")));
    lines.extend(r.failed.iter().map(|(what, why)| format!("  FAILED:  {what}: {why}")));
    lines.join("\n")
}

/// Prints the destroy report: its text on stdout, or its JSON.
pub fn print_removal(printer: &Printer, r: &Removal<'_>, extra: Map<String, Value>) {
    printer.json(&removal_json(r, extra));
    printer.out(removal_text(r));
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

    #[test]
    fn a_destroy_report_says_what_went_what_stays_and_what_failed() {
        let (deleted, kept) = (["bucket b".to_string()], ["data volume v".to_string()]);
        let failed = [("role r".to_string(), "AccessDenied".to_string())];
        let r = Removal { stack: "fra", shape: "aws", deleted: &deleted, kept: &kept, failed: &failed };
        let j = removal_json(&r, crate::plan::extra(json!({"final_snapshot": "s1"})));
        assert_eq!(j["destroyed"], false);
        assert_eq!(j["failed"], json!([{"what": "role r", "why": "AccessDenied"}]));
        assert_eq!((j["final_snapshot"].as_str(), j["shape"].as_str()), (Some("s1"), Some("aws")));
        let t = removal_text(&r);
        assert!(t.starts_with("stack `fra` (aws): NOT fully destroyed"), "{t}");
        assert!(t.contains("\n  deleted: bucket b\n  kept:    data volume v\n  FAILED:  role r: AccessDenied"), "{t}");
        let none = Removal { stack: "fra", shape: "local", deleted: &[], kept: &[], failed: &[] };
        assert_eq!(removal_text(&none), "stack `fra` (local): nothing to destroy");
        assert_eq!(removal_json(&none, Map::new())["destroyed"], true);
    }
}
