//! On-demand SSH, the pure half: what a temporary port-22 rule says about itself, when it has
//! expired, and who still holds it. The AWS calls are in `window.rs`.
//!
//! A temporary rule is an inbound rule for one address on port 22, tagged `vcctl:temporary`.
//! Every command that uses it holds a *lease*: a tag `vcctl:lease:<id>` whose value is the
//! time the lease ends, renewed while the command runs. Leases are separate tag keys, so two
//! commands from one address (AWS allows one rule per address and port) share the rule
//! without overwriting each other, and the last one out revokes it. A command killed with
//! SIGKILL stops renewing: its lease ends within [`LEASE`], and the next command removes the
//! rule.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Marks a rule as vcctl's temporary SSH access (its value: what the rule is for).
pub const TAG_TEMPORARY: &str = "vcctl:temporary";
/// The prefix of a lease's tag key; the rest of the key is the lease's id.
pub const TAG_LEASE: &str = "vcctl:lease:";
/// How long a lease lasts without renewal: the longest a killed command's rule stays.
pub const LEASE: Duration = Duration::from_secs(15 * 60);
/// How often a running command renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5 * 60);

/// The tag key of lease `id`.
pub fn lease_key(id: &str) -> String {
    format!("{TAG_LEASE}{id}")
}

/// The end of a lease taken or renewed at `now`, as its tag value.
pub fn lease_end(now: OffsetDateTime) -> String {
    crate::audit::stamp(now + LEASE)
}

/// The leases on a rule (id → end), from its tags; an end that does not parse counts as
/// ended (a tag edited by hand must not keep port 22 open for ever).
pub fn leases(tags: &BTreeMap<String, String>) -> BTreeMap<String, OffsetDateTime> {
    tags.iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix(TAG_LEASE)?;
            Some((id.to_string(), OffsetDateTime::parse(v, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)))
        })
        .collect()
}

/// Whether a rule's tags make it vcctl's temporary SSH access.
pub fn is_temporary(tags: &BTreeMap<String, String>) -> bool {
    tags.contains_key(TAG_TEMPORARY)
}

/// When a temporary rule stops being held: the end of its last lease (`None`: no lease
/// left, so nobody holds it).
pub fn held_until(tags: &BTreeMap<String, String>) -> Option<OffsetDateTime> {
    leases(tags).into_values().max()
}

/// The furthest a lease can honestly end from `now`: one lease, plus a minute for clocks.
/// An end past that (a skewed clock, a tag written by hand or by the CI role) holds nothing:
/// it must not keep port 22 open for ever, nor keep sweeps from removing the rule.
fn holds(end: OffsetDateTime, now: OffsetDateTime) -> bool {
    end > now && end <= now + LEASE + Duration::from_secs(60)
}

/// Whether a temporary rule can go: no lease on it holds at `now`.
pub fn expired(tags: &BTreeMap<String, String>, now: OffsetDateTime) -> bool {
    !leases(tags).into_values().any(|end| holds(end, now))
}

/// Whether anyone but lease `mine` still holds the rule at `now`.
pub fn held_by_others(tags: &BTreeMap<String, String>, mine: &str, now: OffsetDateTime) -> bool {
    leases(tags).into_iter().any(|(id, end)| id != mine && holds(end, now))
}

/// The rule's description: who opened it, for which command, and until when. AWS allows
/// only `a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*` there, at most 255 characters.
pub fn description(who: &str, command: &str, until: OffsetDateTime) -> String {
    let text = format!("vcctl on-demand SSH for {who} ({command}) until {}", crate::audit::stamp(until));
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c);
    text.chars().map(|c| if allowed(c) { c } else { '_' }).take(255).collect()
}

/// The network one address is, as a rule names it: `/32` for IPv4, `/128` for IPv6.
pub fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// What an address detector answered (the body of `https://checkip.amazonaws.com`: one
/// address and a newline) as the network to admit.
pub fn detected(body: &str) -> Result<String, String> {
    let text = body.trim();
    let ip: IpAddr = text.parse().map_err(|_| {
        let shown: String = text.chars().take(60).collect();
        format!("expected one IP address, got {shown:?}")
    })?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(format!("{ip} is not an address AWS could see you at"));
    }
    Ok(host_cidr(ip))
}

/// `--ssh-from`: an address (admitted as itself) or a network no wider than a /16 (IPv4) or a
/// /48 (IPv6): enough for a NAT pool, never the internet.
pub fn ssh_from(value: &str) -> Result<String, String> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(host_cidr(ip));
    }
    let cidr = crate::stack::yaml::parse_cidr(value)?;
    let prefix: u8 = cidr.split_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
    let (v6, narrowest) = (cidr.contains(':'), if cidr.contains(':') { 48 } else { 16 });
    if prefix < narrowest {
        return Err(format!(
            "{cidr} is wider than a /{narrowest}: on-demand SSH admits your own address{}",
            if v6 { " (or a /48)" } else { " (or a NAT pool up to a /16)" }
        ));
    }
    Ok(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ending_further_than_one_lease_ahead_holds_nothing() {
        let now = OffsetDateTime::parse("2026-11-30T10:00:00Z", &Rfc3339).unwrap();
        let tags = |end: OffsetDateTime| -> BTreeMap<String, String> {
            [(TAG_TEMPORARY.to_string(), "true".to_string()), (lease_key("x"), crate::audit::stamp(end))].into()
        };
        assert!(!expired(&tags(now + LEASE), now), "a lease just taken holds");
        assert!(!expired(&tags(now + LEASE + Duration::from_secs(59)), now), "a minute of clock skew is allowed");
        assert!(expired(&tags(now + LEASE + Duration::from_secs(61)), now), "further ahead holds nothing");
        assert!(expired(&tags(now + Duration::from_secs(365 * 86_400)), now), "a year ahead: nothing");
        assert!(!held_by_others(&tags(now + Duration::from_secs(86_400)), "mine", now));
        assert!(held_by_others(&tags(now + Duration::from_secs(60)), "mine", now));
    }

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_rule_lasts_as_long_as_its_longest_lease() {
        let t = tags(&[
            (TAG_TEMPORARY, "ssh"),
            ("vcctl:lease:a", "2026-11-30T10:00:00Z"),
            ("vcctl:lease:b", "2026-11-30T10:20:00Z"),
            ("vcctl:stack", "fra"),
        ]);
        assert!(is_temporary(&t));
        assert_eq!(held_until(&t), Some(at("2026-11-30T10:20:00Z")));
        assert!(!expired(&t, at("2026-11-30T10:10:00Z")));
        assert!(expired(&t, at("2026-11-30T10:20:00Z")));
        assert!(held_by_others(&t, "a", at("2026-11-30T10:10:00Z")), "b still holds it");
        assert!(!held_by_others(&t, "b", at("2026-11-30T10:10:00Z")), "a has ended");
    }

    #[test]
    fn no_lease_or_a_garbled_one_holds_nothing() {
        let now = at("2026-11-30T10:00:00Z");
        assert!(expired(&tags(&[(TAG_TEMPORARY, "ssh")]), now));
        assert!(expired(&tags(&[(TAG_TEMPORARY, "ssh"), ("vcctl:lease:x", "for ever")]), now));
        assert!(!is_temporary(&tags(&[("vcctl:stack", "fra")])), "a permanent rule is not temporary");
    }

    #[test]
    fn descriptions_keep_to_what_aws_accepts() {
        let d = description("ana\"o'brien@laptop", "vcctl deploy", at("2026-11-30T10:00:00.5Z"));
        assert_eq!(d, "vcctl on-demand SSH for ana_o_brien@laptop (vcctl deploy) until 2026-11-30T10:00:00Z");
        assert!(description(&"x".repeat(400), "deploy", at("2026-11-30T10:00:00Z")).len() <= 255);
    }

    #[test]
    fn detector_answers_are_one_address() {
        assert_eq!(detected("198.51.100.23\n").unwrap(), "198.51.100.23/32");
        assert_eq!(detected("2001:db8::7").unwrap(), "2001:db8::7/128");
        assert!(detected("<html>captive portal</html>").unwrap_err().contains("expected one IP address"));
        assert!(detected("0.0.0.0").is_err());
        assert!(detected("127.0.0.1").is_err());
    }

    #[test]
    fn ssh_from_is_an_address_or_a_narrow_network() {
        assert_eq!(ssh_from("198.51.100.23").unwrap(), "198.51.100.23/32");
        assert_eq!(ssh_from("198.51.100.0/24").unwrap(), "198.51.100.0/24");
        assert!(ssh_from("0.0.0.0/0").unwrap_err().contains("wider than a /16"));
        assert!(ssh_from("2001:db8::/32").unwrap_err().contains("wider than a /48"));
        assert!(ssh_from("laptop").is_err());
    }

    #[test]
    fn leases_end_a_lease_after_they_start() {
        let now = at("2026-11-30T10:00:00Z");
        assert_eq!(lease_end(now), "2026-11-30T10:15:00Z");
    }
}
