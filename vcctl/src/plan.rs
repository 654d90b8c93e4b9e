//! The one shape of a plan, whatever the stack: each change is an action on a named resource
//! with a detail (and, where `up` carries it out, the operation that makes it), and every
//! plan prints the same text and the same JSON (docs/reference/cli.md, "plan").

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::printer::Printer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// What `up` would find out only when it runs (a host that does not answer).
    Unknown,
    /// Not a change: what waits on something else (a certificate, a build), said so that a
    /// plan with nothing to do still explains itself.
    Note,
}

impl Action {
    pub fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Unknown => '?',
            Action::Note => '!',
        }
    }
}

/// One change; `op` is how `up` makes it, where the plan is what `up` runs (`()` elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change<Op = ()> {
    pub action: Action,
    pub resource: String,
    pub detail: String,
    #[serde(skip)]
    pub op: Op,
}

impl Change {
    pub fn new(action: Action, resource: impl Into<String>, detail: impl Into<String>) -> Change {
        Change { action, resource: resource.into(), detail: detail.into(), op: () }
    }
}

impl<Op> Change<Op> {
    pub fn is_change(&self) -> bool {
        self.action != Action::Note
    }

    /// `+ resource: detail`, as every plan prints it.
    pub fn line(&self) -> String {
        match self.detail.is_empty() {
            true => format!("{} {}", self.action.sign(), self.resource),
            false => format!("{} {}: {}", self.action.sign(), self.resource, self.detail),
        }
    }
}

/// Where a plan is about: its stack, its shape (`local`, `ssh`, `fleet`, `aws`, `scale`) and
/// where it runs (a region, a host), for the heading.
pub struct Scope<'a> {
    pub stack: &'a str,
    pub shape: &'a str,
    pub place: Option<&'a str>,
}

/// The plan's JSON: `stack`, `shape`, `changes`, `changed`, then what the shape adds.
pub fn json<Op>(subject: &Scope<'_>, changes: &[Change<Op>], extra: Map<String, Value>) -> Value {
    let mut out = json!({
        "stack": subject.stack,
        "shape": subject.shape,
        "changes": changes.iter().map(|c| json!({"action": c.action, "resource": c.resource, "detail": c.detail})).collect::<Vec<_>>(),
        "changed": changes.iter().any(Change::is_change),
    });
    let map = out.as_object_mut().expect("an object");
    for (k, v) in extra {
        map.entry(k).or_insert(v);
    }
    out
}

/// The plan's text: a heading, one line a change, then `trailer` (cost, notes).
pub fn text<Op>(subject: &Scope<'_>, changes: &[Change<Op>], trailer: &[String]) -> String {
    let place = subject.place.map(|p| format!(" in {p}")).unwrap_or_default();
    let n = changes.iter().filter(|c| c.is_change()).count();
    let mut lines = vec![match n {
        0 => format!(
            "stack `{}` ({}{place}): no changes; everything matches the stack file",
            subject.stack, subject.shape
        ),
        n => format!("stack `{}` ({}{place}): `vcctl up` would make {n} change(s):", subject.stack, subject.shape),
    }];
    lines.extend(changes.iter().map(|c| format!("  {}", c.line())));
    lines.extend(trailer.iter().cloned());
    lines.join("\n")
}

/// Prints a plan (text on stdout, or its JSON) and answers its exit code: 2 when `up` would
/// change something, 0 when not.
pub fn print<Op>(
    printer: &Printer,
    subject: &Scope<'_>,
    changes: &[Change<Op>],
    extra: Map<String, Value>,
    trailer: &[String],
) -> u8 {
    printer.json(&json(subject, changes, extra));
    printer.out(text(subject, changes, trailer));
    match changes.iter().any(Change::is_change) {
        true => crate::error::PLAN_HAS_CHANGES,
        false => crate::error::OK,
    }
}

/// `json!({...})` as the map `print` takes.
pub fn extra(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Scope<'static> {
        Scope { stack: "fra", shape: "scale", place: Some("eu-central-1") }
    }

    #[test]
    fn a_plan_reads_the_same_in_text_and_json() {
        let changes = vec![
            Change::new(Action::Create, "security group vcctl-fra-lb", "tcp/443 from 0.0.0.0/0"),
            Change::new(Action::Note, "certificate arn:x", "PENDING_VALIDATION"),
        ];
        let text = text(&subject(), &changes, &["cost: about $1".into()]);
        assert_eq!(
            text,
            "stack `fra` (scale in eu-central-1): `vcctl up` would make 1 change(s):\n  \
             + security group vcctl-fra-lb: tcp/443 from 0.0.0.0/0\n  ! certificate arn:x: PENDING_VALIDATION\ncost: about $1"
        );
        let j = json(&subject(), &changes, extra(json!({"region": "eu-central-1", "changed": "never overrides"})));
        assert_eq!(j["changed"], true);
        assert_eq!(j["shape"], "scale");
        assert_eq!(j["region"], "eu-central-1");
        assert_eq!(
            j["changes"][1],
            json!({"action": "note", "resource": "certificate arn:x", "detail": "PENDING_VALIDATION"})
        );
    }

    #[test]
    fn notes_alone_are_no_change() {
        let notes = vec![Change::new(Action::Note, "build", "none yet")];
        assert!(text(&subject(), &notes, &[]).contains("no changes"));
        assert_eq!(json(&subject(), &notes, Map::new())["changed"], false);
        assert_eq!(Change::new(Action::Delete, "x", "").line(), "- x");
    }
}
