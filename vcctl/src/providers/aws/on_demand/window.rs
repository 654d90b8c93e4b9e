//! On-demand SSH, the AWS half: a temporary port-22 rule for one address, opened before a
//! command's first SSH connection, renewed while it runs and revoked on the way out. The
//! rule's lease tags (`access`) let several commands from one address share it.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_ec2::Client;
use time::OffsetDateTime;

use crate::cloud::aws::Stamp;
use crate::cloud::aws::security_group::{self, Rule, RuleSource, SecurityGroup};
use crate::providers::aws::on_demand::lease;

/// A command's SSH access while it runs.
pub struct Window {
    ec2: Client,
    group_id: String,
    pub cidr: String,
    /// The temporary rule this command holds a lease on; `None` when a permanent rule admits
    /// the address already (nothing to open, nothing to close).
    pub rule_id: Option<String>,
    lease: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

/// How a window ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The rule is gone.
    Revoked,
    /// Another command from the same address still holds the rule: it revokes it.
    KeptForOthers,
    /// A permanent rule admitted the address; it stays.
    Permanent,
}

/// Whether `r` admits `cidr` on port 22 over TCP.
fn admits_ssh(r: &Rule, cidr: &str) -> bool {
    r.protocol == "tcp" && r.from_port <= 22 && r.to_port >= 22 && r.source == RuleSource::Cidr(cidr.to_string())
}

/// Revokes the temporary rules of a group whose leases have all ended; returns them.
pub async fn sweep(ec2: &Client, group_id: &str, rules: &[Rule], now: OffsetDateTime) -> Result<Vec<Rule>> {
    let expired: Vec<Rule> =
        rules.iter().filter(|r| lease::is_temporary(&r.tags) && lease::expired(&r.tags, now)).cloned().collect();
    for r in &expired {
        revoke_if_there(ec2, group_id, r).await?;
    }
    Ok(expired)
}

/// Revokes a rule, unless another command revoked it first.
async fn revoke_if_there(ec2: &Client, group_id: &str, r: &Rule) -> Result<()> {
    if let Err(e) = security_group::revoke(ec2, group_id, std::slice::from_ref(r)).await {
        let still = security_group::inbound_rules(ec2, group_id).await?;
        if still.iter().any(|s| s.id == r.id) {
            return Err(e);
        }
    }
    Ok(())
}

/// Opens (or joins) the temporary rule for `cidr` on the stack's group, whose rules were
/// just read. `command` and who runs it go into its description. Expired temporary rules of
/// anyone go first.
pub async fn open(ec2: &Client, group: &SecurityGroup, stamp: &Stamp, cidr: &str, command: &str) -> Result<Window> {
    let group_id = group.id.as_str();
    let mut fresh = Some(group.rules.clone());
    let lease = crate::providers::aws::owners::new_id()[..8].to_string();
    let key = lease::lease_key(&lease);
    // Three rounds: a rule revoked or created by another command between our read and our
    // write sends us round once more.
    for _ in 0..3 {
        let now = OffsetDateTime::now_utc();
        let rules = match fresh.take() {
            Some(rules) => rules,
            None => security_group::inbound_rules(ec2, group_id).await?,
        };
        let swept = sweep(ec2, group_id, &rules, now).await?;
        let live = rules.iter().filter(|r| !swept.contains(r));
        if let Some(r) = live.clone().find(|r| admits_ssh(r, cidr)) {
            let id = r.id.clone().unwrap_or_default();
            if !lease::is_temporary(&r.tags) {
                return Ok(Window::new(ec2, group_id, cidr, None, lease));
            }
            security_group::tag_rule(ec2, &id, &[(&key, &lease::lease_end(now))]).await?;
            let after = security_group::inbound_rules(ec2, group_id).await?;
            if after.iter().any(|a| a.id.as_deref() == Some(&id)) {
                return Ok(Window::new(ec2, group_id, cidr, Some(id), lease));
            }
            continue;
        }
        let until = now + lease::LEASE;
        let rule = Rule::tcp(22, cidr, &lease::description(&crate::release::Origin::here().by, command, until));
        let mut tags: BTreeMap<String, String> =
            stamp.pairs().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        tags.insert(lease::TAG_TEMPORARY.into(), "ssh".into());
        tags.insert(key.clone(), crate::audit::stamp(until));
        if let Some(id) = security_group::authorize_tagged(ec2, group_id, &rule, &tags).await? {
            return Ok(Window::new(ec2, group_id, cidr, Some(id), lease));
        }
    }
    anyhow::bail!("could not open SSH for {cidr} on {group_id}: other commands kept opening and closing it; try again")
}

impl Window {
    fn new(ec2: &Client, group_id: &str, cidr: &str, rule_id: Option<String>, lease: String) -> Window {
        let renewal = rule_id.clone().map(|id| {
            let (ec2, key) = (ec2.clone(), lease::lease_key(&lease));
            // A command that runs for long (logs -f, tunnel) keeps its lease; one killed
            // stops renewing, and its rule expires.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease::RENEW_EVERY).await;
                    let end = lease::lease_end(OffsetDateTime::now_utc());
                    let _ = security_group::tag_rule(&ec2, &id, &[(&key, &end)]).await;
                }
            })
        });
        Window { ec2: ec2.clone(), group_id: group_id.into(), cidr: cidr.into(), rule_id, lease, renewal }
    }

    /// Ends this command's lease, and revokes the rule when nobody else holds it.
    pub async fn close(mut self) -> Result<Closed> {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        let Some(id) = self.rule_id.clone() else { return Ok(Closed::Permanent) };
        security_group::untag_rule(&self.ec2, &id, &lease::lease_key(&self.lease)).await?;
        let rules = security_group::inbound_rules(&self.ec2, &self.group_id).await?;
        let Some(rule) = rules.iter().find(|r| r.id.as_deref() == Some(&id)) else { return Ok(Closed::Revoked) };
        if lease::held_by_others(&rule.tags, &self.lease, OffsetDateTime::now_utc()) {
            return Ok(Closed::KeptForOthers);
        }
        revoke_if_there(&self.ec2, &self.group_id, rule).await?;
        Ok(Closed::Revoked)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
    }
}
