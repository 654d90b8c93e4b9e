//! The service's secrets file (`/etc/vehicleconnect/secrets`, a systemd `EnvironmentFile`),
//! as vc-host writes it on a host and vcctl writes it into a `scale:` stack's bucket for the
//! group's instances: per secret a comment `# NAME set TIME` and a line `NAME="value"`, the
//! value's `\`, `"`, `` ` `` and `$` escaped with a backslash (what systemd unescapes inside
//! double quotes). One format, so one list of names and times, whichever shape keeps it.

/// `name` set to `value` at `time`, every other secret kept as it was.
pub fn set(text: &str, name: &str, value: &str, time: &str) -> String {
    let mut out = others(text, name);
    let escaped: String = value
        .chars()
        .flat_map(|c| match c {
            '\\' | '"' | '`' | '$' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    out.push_str(&format!("# {name} set {time}\n{name}=\"{escaped}\"\n"));
    out
}

/// The file without `name`; `None` when it has no such secret.
pub fn unset(text: &str, name: &str) -> Option<String> {
    list(text).iter().any(|(n, _)| n == name).then(|| others(text, name))
}

/// Every secret's name and when it was set, in file order; never a value.
pub fn list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("# ")?;
            let (name, time) = rest.split_once(" set ")?;
            let named =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            named.then(|| (name.to_string(), time.to_string()))
        })
        .collect()
}

/// The lines that are not `name`'s (its comment and its assignment).
fn others(text: &str, name: &str) -> String {
    let comment = format!("# {name} set ");
    let assignment = format!("{name}=");
    text.lines().filter(|l| !l.starts_with(&comment) && !l.starts_with(&assignment)).map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_unset_removes_and_the_list_never_shows_a_value() {
        let one = set("", "VC_READ_TOKEN", "r3ad", "2026-12-08T00:00:00Z");
        assert_eq!(one, "# VC_READ_TOKEN set 2026-12-08T00:00:00Z\nVC_READ_TOKEN=\"r3ad\"\n");
        let two = set(&one, "PARTNER_KEY", r#"a"b$c`d\e"#, "2026-12-08T00:01:00Z");
        assert!(two.ends_with("PARTNER_KEY=\"a\\\"b\\$c\\`d\\\\e\"\n"), "{two}");
        let again = set(&two, "VC_READ_TOKEN", "new", "2026-12-08T00:02:00Z");
        assert_eq!(
            list(&again),
            [
                ("PARTNER_KEY".into(), "2026-12-08T00:01:00Z".into()),
                ("VC_READ_TOKEN".into(), "2026-12-08T00:02:00Z".into())
            ]
        );
        assert!(!again.contains("r3ad"), "the old value is gone: {again}");
        assert!(!format!("{:?}", list(&again)).contains("new"));
        let left = unset(&again, "PARTNER_KEY").unwrap();
        assert_eq!(list(&left).len(), 1);
        assert!(!left.contains("PARTNER_KEY"));
        assert_eq!(unset(&left, "PARTNER_KEY"), None, "no such secret");
        // A name that only begins like another's is another secret.
        let prefixed = set(&left, "VC_READ_TOKEN_OLD", "x", "t");
        assert_eq!(list(&unset(&prefixed, "VC_READ_TOKEN").unwrap()), [("VC_READ_TOKEN_OLD".into(), "t".into())]);
    }
}
