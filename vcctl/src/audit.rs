//! The audit trail: one JSON line per deploy, rollback, destroy (and, later, restore and
//! secret change), appended where the service runs (a host's
//! `/var/log/vehicleconnect/audit.log`, the local stack's directory) so every laptop and CI
//! run sees the same history. Pure: what a line says, and how it reads back.

use serde::{Deserialize, Serialize};

use crate::release::Origin;

/// The longest a field may be: a line stays one short line whatever an error said.
const FIELD_MAX: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When, in UTC (the host's clock on a host, which writes it first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// Who (`alice@laptop`, or the GitHub actor and runner).
    pub by: String,
    /// From where: `laptop`, or the CI run's URL.
    pub from: String,
    /// `deploy`, `rollback`, `destroy`.
    pub action: String,
    /// What it acted on: a release, `keep-data`.
    pub subject: String,
    /// How it ended: `healthy`, `unchanged`, `rolled back to X`, `failed: ...`.
    pub result: String,
}

fn short(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(FIELD_MAX) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// `vcctl audit`'s answer: the entries, oldest first (`--json`: `{"stack", "entries"}`).
pub fn print(printer: &crate::printer::Printer, stack: &str, entries: &[Entry]) {
    printer.json(&serde_json::json!({"stack": stack, "entries": entries}));
    if entries.is_empty() {
        printer.info(format!("stack `{stack}` has no audit entries yet"));
    }
    for e in entries {
        printer.out(e.display());
    }
}

impl Entry {
    /// An entry for what this run did; the time is set where it is written.
    pub fn now(action: &str, subject: &str, result: &str) -> Entry {
        let origin = Origin::here();
        Entry {
            time: String::new(),
            by: short(&origin.by),
            from: short(&origin.from),
            action: short(action),
            subject: short(subject),
            result: short(result),
        }
    }

    /// One line of JSON (no newline in it: every field is one line already).
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A line read back; a line that is not an entry (edited by hand) is kept as a result.
    pub fn parse(line: &str) -> Entry {
        serde_json::from_str(line).unwrap_or_else(|_| Entry {
            time: String::new(),
            by: String::new(),
            from: String::new(),
            action: "?".into(),
            subject: String::new(),
            result: short(line),
        })
    }

    /// As `vcctl audit` prints it.
    pub fn display(&self) -> String {
        format!(
            "{}  {:<8} {}  {}  by {} from {}",
            self.time, self.action, self.subject, self.result, self.by, self.from
        )
    }
}

/// A time as the tags and descriptions write it: RFC 3339, UTC, whole seconds.
pub fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_one_bounded_line_and_reads_back() {
        let mut e =
            Entry::now("deploy", "20261130T101500Z-1a2b3c4d5e6f", &format!("failed: {}\nsecond line", "x".repeat(900)));
        assert!(e.line().starts_with("{\"by\":"), "the writer puts the time first");
        e.time = "2026-11-30T10:15:00Z".into();
        let line = e.line();
        assert!(!line.contains('\n'));
        assert!(line.len() < 1200, "{}", line.len());
        let back = Entry::parse(&line);
        assert_eq!(back, e);
        assert!(back.result.ends_with('…') && back.result.starts_with("failed: xxx"));
        assert_eq!(Entry::parse("garbage").result, "garbage");
    }
}
