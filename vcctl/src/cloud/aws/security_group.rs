//! The stack's security group and its inbound rules, read as AWS keeps them: one rule per
//! protocol, port range and source (a network, another security group or a prefix list),
//! each with its `sgr-` id. Drift is whatever differs in any of those; it is revoked by id.

use anyhow::{Context, Result};
use aws_sdk_ec2::Client;
use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use serde::Serialize;

use super::ec2::{filter, stack_filter, tags};
use super::{Owner, Stamp, error};

/// Where an inbound rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    /// An IPv4 or IPv6 network.
    Cidr(String),
    /// Members of another security group.
    Group(String),
    /// A managed prefix list.
    PrefixList(String),
}

/// One inbound rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, a protocol number, or `-1`: every protocol.
    pub protocol: String,
    /// The port range; `-1` for "every port" (all traffic, ICMP).
    pub from_port: i32,
    pub to_port: i32,
    pub source: RuleSource,
    pub description: String,
    /// AWS's id of a rule read back (`sgr-...`): what revoking names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The rule's own tags (on-demand SSH marks its temporary rules with them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Rule {
    /// An inbound TCP port from the members of security group `group`.
    pub fn tcp_from_group(port: u16, group: &str, description: &str) -> Rule {
        Rule { source: RuleSource::Group(group.into()), ..Rule::tcp(port, "", description) }
    }

    /// An inbound TCP port from a network.
    pub fn tcp(port: u16, cidr: &str, description: &str) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: port.into(),
            to_port: port.into(),
            source: RuleSource::Cidr(cidr.into()),
            description: description.into(),
            id: None,
            tags: BTreeMap::new(),
        }
    }

    /// What makes two rules the same rule (not the id AWS gave one of them).
    fn key(&self) -> (&str, i32, i32, &RuleSource, &str) {
        (&self.protocol, self.from_port, self.to_port, &self.source, &self.description)
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Rule {}

impl PartialOrd for Rule {
    fn partial_cmp(&self, other: &Rule) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rule {
    fn cmp(&self, other: &Rule) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.protocol.as_str(), self.from_port, self.to_port) {
            ("-1", _, _) => "all traffic".to_string(),
            (p, -1, _) => format!("{p}/all ports"),
            (p, from, to) if from == to => format!("{p}/{from}"),
            (p, from, to) => format!("{p}/{from}-{to}"),
        };
        let from = match &self.source {
            RuleSource::Cidr(c) => c.clone(),
            RuleSource::Group(g) => format!("security group {g}"),
            RuleSource::PrefixList(p) => format!("prefix list {p}"),
        };
        write!(f, "{what} from {from} ({})", self.description)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    /// Inbound rules, every kind.
    pub rules: Vec<Rule>,
    pub owner: Owner,
}

pub async fn find(ec2: &Client, stack: &str) -> Result<Option<SecurityGroup>> {
    find_by(ec2, vec![stack_filter(stack)], &format!("the security group of stack `{stack}`")).await
}

/// The group of stack `stack` named `name` (a `scale:` stack has several).
pub async fn find_named(ec2: &Client, stack: &str, name: &str) -> Result<Option<SecurityGroup>> {
    find_by(ec2, vec![stack_filter(stack), filter("group-name", name)], &format!("security group `{name}`")).await
}

async fn find_by(ec2: &Client, filters: Vec<aws_sdk_ec2::types::Filter>, what: &str) -> Result<Option<SecurityGroup>> {
    let out = ec2
        .describe_security_groups()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeSecurityGroups", &format!("looking up {what}"), e))?;
    let Some(g) = out.security_groups().first() else { return Ok(None) };
    let id = g.group_id().unwrap_or_default().to_string();
    Ok(Some(SecurityGroup {
        rules: inbound_rules(ec2, &id).await?,
        id,
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
        owner: Owner::from_tags(g.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

/// Every inbound rule of a group, by `DescribeSecurityGroupRules` (page by page).
pub async fn inbound_rules(ec2: &Client, group_id: &str) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    let mut pages = ec2.describe_security_group_rules().filters(filter("group-id", group_id)).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            error("ec2:DescribeSecurityGroupRules", &format!("reading the rules of security group {group_id}"), e)
        })?;
        for r in page.security_group_rules().iter().filter(|r| r.is_egress() != Some(true)) {
            let source = match (r.cidr_ipv4(), r.cidr_ipv6(), r.referenced_group_info(), r.prefix_list_id()) {
                (Some(c), _, _, _) | (None, Some(c), _, _) => RuleSource::Cidr(c.to_string()),
                (None, None, Some(g), _) => RuleSource::Group(g.group_id().unwrap_or_default().to_string()),
                (None, None, None, Some(p)) => RuleSource::PrefixList(p.to_string()),
                (None, None, None, None) => RuleSource::Cidr(String::new()),
            };
            rules.push(Rule {
                protocol: protocol(r.ip_protocol().unwrap_or("-1")),
                from_port: r.from_port().unwrap_or(-1),
                to_port: r.to_port().unwrap_or(-1),
                source,
                description: r.description().unwrap_or_default().to_string(),
                id: r.security_group_rule_id().map(str::to_string),
                tags: r
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
                    .collect(),
            });
        }
    }
    rules.sort();
    Ok(rules)
}

/// A protocol by its name, whichever way it was given (`6` is `tcp`, `all` is `-1`).
fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

pub async fn create(ec2: &Client, name: &str, vpc_id: &str, stamp: &Stamp) -> Result<String> {
    let stack = &stamp.stack;
    let out = ec2
        .create_security_group()
        .group_name(name)
        .description(format!("VehicleConnect stack {stack}, managed by vcctl"))
        .vpc_id(vpc_id)
        .tag_specifications(tags(ResourceType::SecurityGroup, stamp, name, &[]))
        .send()
        .await
        .map_err(|e| error("ec2:CreateSecurityGroup", &format!("creating security group `{name}`"), e))?;
    out.group_id().map(str::to_string).context("CreateSecurityGroup returned no group id")
}

fn permission(r: &Rule) -> IpPermission {
    let p = IpPermission::builder().ip_protocol(&r.protocol).from_port(r.from_port).to_port(r.to_port);
    let p = match &r.source {
        RuleSource::Cidr(c) if c.contains(':') => {
            p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).description(&r.description).build())
        }
        RuleSource::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).description(&r.description).build()),
        RuleSource::Group(g) => {
            p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).description(&r.description).build())
        }
        RuleSource::PrefixList(l) => {
            p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).description(&r.description).build())
        }
    };
    p.build()
}

pub async fn authorize(ec2: &Client, group_id: &str, rules: &[Rule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    ec2.authorize_security_group_ingress()
        .group_id(group_id)
        .set_ip_permissions(Some(rules.iter().map(permission).collect()))
        .send()
        .await
        .map_err(|e| {
            error("ec2:AuthorizeSecurityGroupIngress", &format!("opening {} rule(s) on {group_id}", rules.len()), e)
        })?;
    Ok(())
}

/// Opens one rule tagged with `tags`: its id, or `None` when AWS has a rule for that
/// protocol, port and source already (another command may have opened it a moment ago).
pub async fn authorize_tagged(
    ec2: &Client,
    group_id: &str,
    rule: &Rule,
    tags: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroupRule);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    let sent = ec2
        .authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(permission(rule))
        .tag_specifications(spec.build())
        .send()
        .await;
    match sent {
        Ok(out) => Ok(out.security_group_rules().first().and_then(|r| r.security_group_rule_id()).map(str::to_string)),
        Err(e) if super::code_of(&e) == Some("InvalidPermission.Duplicate") => Ok(None),
        Err(e) => Err(error("ec2:AuthorizeSecurityGroupIngress", &format!("opening `{rule}` on {group_id}"), e)),
    }
}

/// Sets tags on a rule (by its `sgr-` id), leaving its other tags as they are.
pub async fn tag_rule(ec2: &Client, rule_id: &str, tags: &[(&str, &str)]) -> Result<()> {
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    ec2.create_tags()
        .resources(rule_id)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("ec2:CreateTags", &format!("tagging security group rule {rule_id}"), e))?;
    Ok(())
}

/// Removes one tag (by key) from a rule.
pub async fn untag_rule(ec2: &Client, rule_id: &str, key: &str) -> Result<()> {
    ec2.delete_tags()
        .resources(rule_id)
        .tags(Tag::builder().key(key).build())
        .send()
        .await
        .map_err(|e| error("ec2:DeleteTags", &format!("untagging security group rule {rule_id}"), e))?;
    Ok(())
}

/// Revokes rules read back from AWS, by their ids, and checks that AWS says it did: a
/// revoke that matched nothing is an error, not a silent success.
pub async fn revoke(ec2: &Client, group_id: &str, rules: &[Rule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rules
        .iter()
        .map(|r| r.id.clone().with_context(|| format!("rule `{r}` on {group_id} has no rule id to revoke it by")))
        .collect::<Result<_>>()?;
    let out = ec2
        .revoke_security_group_ingress()
        .group_id(group_id)
        .set_security_group_rule_ids(Some(ids.clone()))
        .send()
        .await
        .map_err(|e| {
            error("ec2:RevokeSecurityGroupIngress", &format!("closing rule(s) {} on {group_id}", ids.join(", ")), e)
        })?;
    let unknown = out.unknown_ip_permissions();
    if out.r#return() == Some(false) || !unknown.is_empty() {
        anyhow::bail!(
            "AWS did not revoke every rule of {} on {group_id} ({} unknown to it); run `vcctl plan` to see what is left",
            ids.join(", "),
            unknown.len()
        );
    }
    Ok(())
}

/// Makes group `name` only if no group of that name exists in `vpc` (EC2 makes it for one
/// caller only): its id, or `None` when another has it. Tagged `tag`, not with the stack's
/// tag, so that nothing that finds the stack's groups by their tag ever finds it.
pub async fn create_exclusive(
    ec2: &Client,
    name: &str,
    vpc_id: &str,
    stamp: &Stamp,
    tag: (&str, &str),
) -> Result<Option<String>> {
    let mut spec = aws_sdk_ec2::types::TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
    for (k, v) in [("Name", name), ("vcctl:lock-of", stamp.stack.as_str()), ("vcctl:managed-by", "vcctl"), tag] {
        spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
    }
    let made = ec2
        .create_security_group()
        .group_name(name)
        .description(format!("The lock of VehicleConnect stack {}, held while one vcctl changes it", stamp.stack))
        .vpc_id(vpc_id)
        .tag_specifications(spec.build())
        .send()
        .await;
    match made {
        Ok(out) => out.group_id().map(|id| Some(id.to_string())).context("CreateSecurityGroup returned no group id"),
        Err(e) if super::code_of(&e) == Some("InvalidGroup.Duplicate") => Ok(None),
        Err(e) => Err(error("ec2:CreateSecurityGroup", &format!("taking the lock `{name}`"), e)),
    }
}

/// The id of group `name` and the value of its tag `key` (empty when it has none), if the
/// group exists.
pub async fn holder(ec2: &Client, name: &str, key: &str) -> Result<Option<(String, String)>> {
    let out = ec2
        .describe_security_groups()
        .filters(filter("group-name", name))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeSecurityGroups", &format!("reading the lock `{name}`"), e))?;
    Ok(out.security_groups().first().map(|g| {
        let value = g.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).unwrap_or_default();
        (g.group_id().unwrap_or_default().to_string(), value.to_string())
    }))
}

/// Deletes group `group_id`; one already gone is no error.
pub async fn delete_if_there(ec2: &Client, group_id: &str) -> Result<()> {
    match ec2.delete_security_group().group_id(group_id).send().await {
        Ok(_) => Ok(()),
        Err(e) if super::code_of(&e) == Some("InvalidGroup.NotFound") => Ok(()),
        Err(e) => Err(error("ec2:DeleteSecurityGroup", &format!("deleting security group {group_id}"), e)),
    }
}

pub async fn delete(ec2: &Client, group_id: &str) -> Result<()> {
    ec2.delete_security_group()
        .group_id(group_id)
        .send()
        .await
        .map_err(|e| error("ec2:DeleteSecurityGroup", &format!("deleting security group {group_id}"), e))?;
    Ok(())
}
