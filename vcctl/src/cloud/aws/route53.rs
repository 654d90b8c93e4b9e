//! Route 53: the records a `scale:` stack keeps in the hosted zone `tls.route53_zone` names,
//! the certificate's validation record and the domain's alias to the load balancer. Records
//! carry no tags: vcctl knows its own by name, type and value.

use anyhow::Result;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
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
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(name)
        .start_record_type(RrType::from(kind))
        .max_items(1)
        .send()
        .await
        .map_err(|e| error("route53:ListResourceRecordSets", &format!("looking up {name} {kind}"), e))?;
    let Some(r) = out.resource_record_sets().first() else { return Ok(None) };
    if normal(r.name()) != normal(name) || r.r#type().as_str() != kind {
        return Ok(None);
    }
    let (value, alias_zone) = match r.alias_target() {
        Some(a) => (normal(a.dns_name()), Some(a.hosted_zone_id().to_string())),
        None => (r.resource_records().first().map(|v| normal(v.value())).unwrap_or_default(), None),
    };
    Ok(Some(DnsRecord { name: normal(r.name()), kind: kind.to_string(), value, alias_zone }))
}

fn record_set(r: &DnsRecord) -> Result<ResourceRecordSet> {
    let set = ResourceRecordSet::builder().name(&r.name).r#type(RrType::from(r.kind.as_str()));
    let set = match &r.alias_zone {
        Some(zone) => set.alias_target(
            AliasTarget::builder().hosted_zone_id(zone).dns_name(&r.value).evaluate_target_health(true).build()?,
        ),
        None => set.ttl(300).resource_records(ResourceRecord::builder().value(&r.value).build()?),
    };
    Ok(set.build()?)
}

/// Makes or replaces (`upsert`), or deletes, `records`, in one change.
pub async fn change(r53: &Client, zone_id: &str, upsert: bool, records: &[DnsRecord]) -> Result<()> {
    let action = if upsert { ChangeAction::Upsert } else { ChangeAction::Delete };
    let mut batch = ChangeBatch::builder().comment("vcctl");
    for r in records {
        batch = batch.changes(Change::builder().action(action.clone()).resource_record_set(record_set(r)?).build()?);
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch.build()?)
        .send()
        .await
        .map_err(|e| error("route53:ChangeResourceRecordSets", "changing the stack's DNS records", e))?;
    Ok(())
}
