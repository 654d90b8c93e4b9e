//! Route 53: the records a `scale:` stack keeps in the hosted zone `tls.route53_zone` names,
//! the certificate's validation record and the domain's alias to the load balancer. Records
//! carry no tags: vcctl knows its own by name, type and value.

use anyhow::Result;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, ResourceRecordSetRegion, RrType, Tag, TagResourceType,
};
use serde::Serialize;

use super::error;

/// A record as vcctl makes and compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// Lower case, with the root's dot: `vc.example.com.`.
    pub name: String,
    /// `CNAME`, or `A` (an alias).
    pub kind: String,
    /// The CNAME's target, or the alias's DNS name (both with the root's dot).
    pub value: String,
    /// An alias's target zone (the load balancer's canonical hosted zone).
    pub alias_zone: Option<String>,
    /// One of several records of one name (a global stack's regions), and how Route 53
    /// chooses among them.
    pub routed: Option<Routed>,
}

/// A record among several of one name: which one it is, and when Route 53 answers with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    /// Route 53's `SetIdentifier`: the region's name in the global stack.
    pub set_identifier: String,
    /// Latency routing: the AWS region the record's target is in.
    pub region: Option<String>,
    /// Failover routing: `PRIMARY` or `SECONDARY`.
    pub failover: Option<String>,
    /// Answered only while this health check passes.
    pub health_check: Option<String>,
}

/// A record of a routed name: short-lived, so that a region's failure moves clients within
/// a minute of Route 53 seeing it.
const ROUTED_TTL: i64 = 60;

/// The DNS records that prove `certificates`' domains to ACM, each once (ACM gives one
/// record to every certificate of a name in an account, whatever its region).
pub fn validation_records<'a>(certificates: impl IntoIterator<Item = &'a super::acm::Certificate>) -> Vec<DnsRecord> {
    let mut out: Vec<DnsRecord> = Vec::new();
    for (name, kind, value) in certificates.into_iter().filter_map(|c| c.validation.as_ref()) {
        let record =
            DnsRecord { name: normal(name), kind: kind.clone(), value: normal(value), alias_zone: None, routed: None };
        if !out.contains(&record) {
            out.push(record);
        }
    }
    out
}

/// `name` as Route 53 answers it: lower case, ending in a dot.
pub fn normal(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// The id of the hosted zone named `zone`, if this account has one.
pub async fn zone_id(r53: &Client, zone: &str) -> Result<Option<String>> {
    let out = r53
        .list_hosted_zones_by_name()
        .dns_name(zone)
        .max_items(1)
        .send()
        .await
        .map_err(|e| error("route53:ListHostedZonesByName", &format!("looking up hosted zone {zone}"), e))?;
    let found = out.hosted_zones().iter().find(|z| normal(z.name()) == normal(zone));
    Ok(found.map(|z| z.id().trim_start_matches("/hostedzone/").to_string()))
}

/// The record `name` of type `kind` in zone `zone_id`, if there is one.
pub async fn find(r53: &Client, zone_id: &str, name: &str, kind: &str) -> Result<Option<DnsRecord>> {
    Ok(listed(r53, zone_id, name, kind, 1).await?.into_iter().next())
}

/// Every record of `name` and type `kind` in zone `zone_id`: the routed ones of a global
/// stack, one per region (a zone's records are listed in order, so they come together).
pub async fn find_all(r53: &Client, zone_id: &str, name: &str, kind: &str) -> Result<Vec<DnsRecord>> {
    listed(r53, zone_id, name, kind, 100).await
}

/// The records of `name` and `kind` among the `most` listed from there on.
async fn listed(r53: &Client, zone_id: &str, name: &str, kind: &str, most: i32) -> Result<Vec<DnsRecord>> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(name)
        .start_record_type(RrType::from(kind))
        .max_items(most)
        .send()
        .await
        .map_err(|e| error("route53:ListResourceRecordSets", &format!("looking up {name} {kind}"), e))?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|r| normal(r.name()) == normal(name) && r.r#type().as_str() == kind)
        .map(record_of)
        .collect())
}

fn record_of(r: &ResourceRecordSet) -> DnsRecord {
    let (value, alias_zone) = match r.alias_target() {
        Some(a) => (normal(a.dns_name()), Some(a.hosted_zone_id().to_string())),
        // An address stays as it is; a name is made normal.
        None => {
            let v = r.resource_records().first().map(|v| v.value()).unwrap_or_default();
            (if v.parse::<std::net::IpAddr>().is_ok() { v.to_string() } else { normal(v) }, None)
        }
    };
    let routed = r.set_identifier().map(|id| Routed {
        set_identifier: id.to_string(),
        region: r.region().map(|g| g.as_str().to_string()),
        failover: r.failover().map(|f| f.as_str().to_string()),
        health_check: r.health_check_id().map(str::to_string),
    });
    DnsRecord { name: normal(r.name()), kind: r.r#type().as_str().to_string(), value, alias_zone, routed }
}

fn record_set(r: &DnsRecord) -> Result<ResourceRecordSet> {
    let mut set = ResourceRecordSet::builder().name(&r.name).r#type(RrType::from(r.kind.as_str()));
    if let Some(routed) = &r.routed {
        set = set
            .set_identifier(&routed.set_identifier)
            .set_region(routed.region.as_deref().map(ResourceRecordSetRegion::from))
            .set_failover(routed.failover.as_deref().map(ResourceRecordSetFailover::from))
            .set_health_check_id(routed.health_check.clone());
    }
    let ttl = if r.routed.is_some() { ROUTED_TTL } else { 300 };
    let set = match &r.alias_zone {
        Some(zone) => set.alias_target(
            AliasTarget::builder().hosted_zone_id(zone).dns_name(&r.value).evaluate_target_health(true).build()?,
        ),
        None => set.ttl(ttl).resource_records(ResourceRecord::builder().value(&r.value).build()?),
    };
    Ok(set.build()?)
}

/// Makes or replaces (`upsert`), or deletes, `records`, in one change.
pub async fn change(r53: &Client, zone_id: &str, upsert: bool, records: &[DnsRecord]) -> Result<()> {
    match upsert {
        true => change_both(r53, zone_id, &[], records).await,
        false => change_both(r53, zone_id, records, &[]).await,
    }
}

/// Deletes `deleted` and makes or replaces `upserted` in one change, which Route 53 applies
/// whole or not at all: a name's routed records can give way to a simple one (or back)
/// without a moment where the name has neither.
pub async fn change_both(r53: &Client, zone_id: &str, deleted: &[DnsRecord], upserted: &[DnsRecord]) -> Result<()> {
    let mut batch = ChangeBatch::builder().comment("vcctl");
    let all =
        deleted.iter().map(|r| (ChangeAction::Delete, r)).chain(upserted.iter().map(|r| (ChangeAction::Upsert, r)));
    for (action, r) in all {
        batch = batch.changes(Change::builder().action(action).resource_record_set(record_set(r)?).build()?);
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch.build()?)
        .send()
        .await
        .map_err(|e| error("route53:ChangeResourceRecordSets", "changing the stack's DNS records", e))?;
    Ok(())
}

/// A Route 53 health check as vcctl makes and finds it: by its caller reference, which
/// carries the stack's id and the region (`vcctl:<stack id>:<region>:<time>`), so that an
/// interrupted `up` finds what it made even before the check had its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub id: String,
    pub reference: String,
    pub target: CheckTarget,
}

/// What a health check asks: `GET https://<fqdn><path>` (a load balancer, by its region's
/// name), or `GET http(s)://<ip>:<port><path>` (a single box).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckTarget {
    pub fqdn: Option<String>,
    pub ip: Option<String>,
    pub port: i32,
    pub https: bool,
    pub path: String,
}

/// How often Route 53's checkers ask, and after how many failures in a row a target is
/// unhealthy: 30 s × 3, so a region's failure is seen within about 90 s.
pub const CHECK_INTERVAL_S: i32 = 30;
pub const CHECK_FAILURES: i32 = 3;

/// Every health check whose caller reference starts with `prefix`.
pub async fn health_checks(r53: &Client, prefix: &str) -> Result<Vec<HealthCheck>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    // At most 100 pages of 100: more health checks than an account may have.
    for _ in 0..100 {
        let page = r53
            .list_health_checks()
            .set_marker(marker.clone())
            .max_items(100)
            .send()
            .await
            .map_err(|e| error("route53:ListHealthChecks", "listing the health checks", e))?;
        for h in page.health_checks().iter().filter(|h| h.caller_reference().starts_with(prefix)) {
            let Some(c) = h.health_check_config() else { continue };
            let https = matches!(c.r#type(), HealthCheckType::Https | HealthCheckType::HttpsStrMatch);
            let target = CheckTarget {
                fqdn: c.fully_qualified_domain_name().map(|f| f.trim_end_matches('.').to_string()),
                ip: c.ip_address().map(str::to_string),
                port: c.port().unwrap_or(if https { 443 } else { 80 }),
                https,
                path: c.resource_path().unwrap_or("/").to_string(),
            };
            out.push(HealthCheck { id: h.id().to_string(), reference: h.caller_reference().to_string(), target });
        }
        match page.next_marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
    Ok(out)
}

/// Makes a health check of `target`, named `name` (its `Name` tag, what the console shows).
pub async fn create_health_check(
    r53: &Client,
    reference: &str,
    target: &CheckTarget,
    name: &str,
    tags: &[(&str, &str)],
) -> Result<String> {
    let config = HealthCheckConfig::builder()
        .r#type(if target.https { HealthCheckType::Https } else { HealthCheckType::Http })
        .set_fully_qualified_domain_name(target.fqdn.clone())
        .set_ip_address(target.ip.clone())
        .port(target.port)
        .resource_path(&target.path)
        .request_interval(CHECK_INTERVAL_S)
        .failure_threshold(CHECK_FAILURES)
        .enable_sni(target.https && target.fqdn.is_some())
        .build()?;
    let out = r53
        .create_health_check()
        .caller_reference(reference)
        .health_check_config(config)
        .send()
        .await
        .map_err(|e| error("route53:CreateHealthCheck", &format!("making health check {name}"), e))?;
    let id = out.health_check().map(|h| h.id().to_string()).unwrap_or_default();
    let mut request = r53
        .change_tags_for_resource()
        .resource_type(TagResourceType::Healthcheck)
        .resource_id(&id)
        .add_tags(Tag::builder().key("Name").value(name).build());
    for (k, v) in tags {
        request = request.add_tags(Tag::builder().key(*k).value(*v).build());
    }
    request
        .send()
        .await
        .map_err(|e| error("route53:ChangeTagsForResource", &format!("tagging health check {name}"), e))?;
    Ok(id)
}

pub async fn delete_health_check(r53: &Client, id: &str) -> Result<()> {
    r53.delete_health_check()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| error("route53:DeleteHealthCheck", &format!("deleting health check {id}"), e))?;
    Ok(())
}

/// What Route 53's checkers last saw: how many of them saw the target healthy, of how many.
pub async fn health_check_status(r53: &Client, id: &str) -> Result<(usize, usize)> {
    let out = r53
        .get_health_check_status()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| error("route53:GetHealthCheckStatus", &format!("reading health check {id}"), e))?;
    let seen = out.health_check_observations();
    let healthy = seen
        .iter()
        .filter(|o| o.status_report().and_then(|r| r.status()).is_some_and(|s| s.starts_with("Success")))
        .count();
    Ok((healthy, seen.len()))
}
