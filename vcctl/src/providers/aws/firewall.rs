//! A security group's rules, the same way in both AWS shapes (the box's group, a `scale:`
//! stack's three chained groups): exactly the rules the stack wants. A rule added by hand
//! is drift and goes; a missing one is added; on-demand SSH's temporary rules are left to
//! their lease while it holds and removed once it has ended. Planned into
//! `Change<RuleOp>` and applied op by op.

use time::OffsetDateTime;

use crate::cloud::aws::security_group::{Rule, RuleSource};
use crate::plan::{Action, Change};
use crate::providers::aws::on_demand::lease;

#[derive(Debug, Clone, PartialEq)]
pub enum RuleOp {
    Authorize(Vec<Rule>),
    Revoke(Vec<Rule>),
}

/// Whether `found` is the rule `wanted` is: the same rule, description included (a rule
/// someone edited is drift), except that a rule whose source is a security group and that
/// reads back without a description is the same (the emulator keeps none for those, and
/// it changes no access).
fn same(found: &Rule, wanted: &Rule) -> bool {
    let bare_group_rule = found.description.is_empty() && matches!(found.source, RuleSource::Group(_));
    match bare_group_rule {
        true => {
            (&found.protocol, found.from_port, found.to_port, &found.source)
                == (&wanted.protocol, wanted.from_port, wanted.to_port, &wanted.source)
        }
        false => found == wanted,
    }
}

/// The changes that make `found` (the rules of the group `group`, read at `now`) exactly
/// `wanted`.
pub fn plan(group: &str, wanted: &[Rule], found: &[Rule], now: OffsetDateTime) -> Vec<Change<RuleOp>> {
    let change = |action, detail: String, op| Change { action, resource: format!("rule on {group}"), detail, op };
    let mut out = Vec::new();
    for r in found.iter().filter(|r| !wanted.iter().any(|w| same(r, w))) {
        let detail = match lease::is_temporary(&r.tags) {
            true if !lease::expired(&r.tags, now) => continue,
            true => {
                let ended = lease::held_until(&r.tags)
                    .map_or("no lease left".into(), |t| format!("expired {}", crate::audit::stamp(t)));
                format!("{r}: temporary SSH access, {ended}")
            }
            false => format!("{r}: not in the stack file (added by hand, or no longer asked for)"),
        };
        out.push(change(Action::Delete, detail, RuleOp::Revoke(vec![r.clone()])));
    }
    for r in wanted.iter().filter(|w| !found.iter().any(|r| same(r, w))) {
        out.push(change(Action::Create, r.to_string(), RuleOp::Authorize(vec![r.clone()])));
    }
    out
}

/// Carries out one planned operation on the group `id`.
pub async fn apply(ec2: &aws_sdk_ec2::Client, id: &str, op: &RuleOp) -> anyhow::Result<()> {
    use crate::cloud::aws::security_group;
    match op {
        RuleOp::Authorize(rules) => security_group::authorize(ec2, id, rules).await,
        RuleOp::Revoke(rules) => security_group::revoke(ec2, id, rules).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(changes: Vec<Change<RuleOp>>) -> Vec<RuleOp> {
        changes.into_iter().map(|c| c.op).collect()
    }

    #[test]
    fn exactly_the_wanted_rules_and_a_temporary_one_only_while_its_lease_holds() {
        let now = OffsetDateTime::now_utc();
        let https = Rule::tcp(443, "0.0.0.0/0", "HTTPS");
        let ssh = Rule::tcp(22, "0.0.0.0/0", "by hand");
        assert!(plan("g", std::slice::from_ref(&https), std::slice::from_ref(&https), now).is_empty());
        // A group-sourced rule the API keeps no description for is the same rule; an address
        // rule without its description, or with another one, is an edit.
        let from_lb = Rule::tcp_from_group(8000, "sg-lb", "the service");
        let from_lb_bare = Rule::tcp_from_group(8000, "sg-lb", "");
        assert!(plan("g", std::slice::from_ref(&from_lb), &[from_lb_bare], now).is_empty());
        let bare = Rule::tcp(443, "0.0.0.0/0", "");
        assert_eq!(plan("g", std::slice::from_ref(&https), &[bare], now).len(), 2, "revoked and added back");
        let edited = Rule::tcp(443, "0.0.0.0/0", "someone's");
        assert_eq!(
            ops(plan("g", std::slice::from_ref(&https), std::slice::from_ref(&edited), now)),
            [RuleOp::Revoke(vec![edited.clone()]), RuleOp::Authorize(vec![https.clone()])]
        );
        let changes = plan("g", std::slice::from_ref(&https), &[https.clone(), ssh.clone()], now);
        assert!(changes[0].detail.ends_with("not in the stack file (added by hand, or no longer asked for)"));
        assert_eq!(ops(changes), [RuleOp::Revoke(vec![ssh.clone()])]);
        let mut leased = Rule::tcp(22, "198.51.100.7/32", "vcctl on-demand SSH");
        let until = now + time::Duration::minutes(5);
        leased.tags = [
            (lease::TAG_TEMPORARY.to_string(), "true".to_string()),
            (lease::lease_key("abc"), crate::audit::stamp(until)),
        ]
        .into();
        assert!(plan("g", &[], std::slice::from_ref(&leased), now).is_empty(), "held: left alone");
        let later = now + time::Duration::minutes(30);
        assert_eq!(ops(plan("g", &[], std::slice::from_ref(&leased), later)), [RuleOp::Revoke(vec![leased.clone()])]);
    }
}
