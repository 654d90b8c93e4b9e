//! The DNS tier of a `scale:` stack whose `tls.route53_zone` names a hosted zone: the
//! certificate's validation record (ACM issues it without anyone copying a record) and
//! `tls.domain` as an alias of the load balancer. Without a zone, `up` prints the record to
//! create instead. Planned apart from the calls, as the other tiers are.

use anyhow::Result;

use crate::cloud::aws::Aws;
use crate::cloud::aws::acm::Certificate;
use crate::cloud::aws::route53::{self, DnsRecord};
use crate::error::Failure;
use crate::plan::{Action, Change};
use crate::printer::Printer;

/// The records the stack wants, from what exists: each certificate's validation record
/// (the load balancer's, and CloudFront's in us-east-1: ACM may give both one record, kept
/// once), and `domain` as an alias of what serves it (`(DNS name, its hosted zone)`: the
/// load balancer, or the distribution in front of it), none before it has its name.
pub fn wanted(domain: &str, certificates: &[&Certificate], alias: Option<(&str, &str)>) -> Vec<DnsRecord> {
    let mut out = route53::validation_records(certificates.iter().copied());
    if let Some((dns_name, zone)) = alias.filter(|(_, zone)| !zone.is_empty()) {
        out.push(DnsRecord {
            name: route53::normal(domain),
            kind: "A".into(),
            value: route53::normal(dns_name),
            alias_zone: Some(zone.to_string()),
            routed: None,
        });
    }
    out
}

/// The zone and the stack's records in it.
#[derive(Debug, Default)]
pub struct ZoneFound {
    pub zone_id: String,
    /// By the wanted record's name and type: what the zone has there.
    pub records: Vec<Option<DnsRecord>>,
}

/// The hosted zone `zone` (an error naming the field when the account has none) and what it
/// holds where the stack wants its records.
pub async fn survey(aws: &Aws, zone: &str, domain: &str, wanted: &[DnsRecord]) -> Result<ZoneFound> {
    if !route53::normal(domain).ends_with(&format!(".{}", route53::normal(zone))) {
        return Err(Failure::invalid(
            format!("tls.domain {domain} is not in the hosted zone {zone} that tls.route53_zone names"),
            Some(format!("name the zone {domain} is in, or remove tls.route53_zone to create the records by hand")),
        )
        .into());
    }
    let Some(zone_id) = route53::zone_id(&aws.route53, zone).await? else {
        return Err(Failure::invalid(
            format!("this AWS account has no Route 53 hosted zone {zone} (tls.route53_zone)"),
            Some("create the zone, or remove tls.route53_zone: `up` then prints the records to create".into()),
        )
        .into());
    };
    let mut records = Vec::new();
    for w in wanted {
        records.push(route53::find(&aws.route53, &zone_id, &w.name, &w.kind).await?);
    }
    Ok(ZoneFound { zone_id, records })
}

fn describe(r: &DnsRecord) -> String {
    match &r.alias_zone {
        Some(_) => format!("alias of the load balancer {}", r.value),
        None => format!("{} {}", r.kind, r.value),
    }
}

/// Each wanted record and what the zone has in its place.
fn pairs<'a>(
    wanted: &'a [DnsRecord],
    found: &'a ZoneFound,
) -> impl Iterator<Item = (&'a DnsRecord, Option<&'a DnsRecord>)> {
    wanted.iter().zip(found.records.iter().map(Option::as_ref))
}

/// The wanted records the zone lacks or holds otherwise, with what it holds: to make or put back.
fn differing<'a>(
    wanted: &'a [DnsRecord],
    found: &'a ZoneFound,
) -> impl Iterator<Item = (&'a DnsRecord, Option<&'a DnsRecord>)> {
    pairs(wanted, found).filter(|(w, f)| *f != Some(*w))
}

/// The stack's records as it made them, still in the zone: what `destroy` deletes.
pub fn as_made<'a>(wanted: &'a [DnsRecord], found: &'a ZoneFound) -> Vec<&'a DnsRecord> {
    pairs(wanted, found).filter(|(w, f)| *f == Some(*w)).map(|(w, _)| w).collect()
}

/// The records to make or put back; each change's operation is the record to upsert.
pub fn plan(wanted: &[DnsRecord], found: &ZoneFound) -> Vec<Change<DnsRecord>> {
    differing(wanted, found)
        .map(|(w, f)| {
            let action = if f.is_some() { Action::Update } else { Action::Create };
            Change { action, resource: format!("DNS record {} {}", w.name, w.kind), detail: describe(w), op: w.clone() }
        })
        .collect()
}

/// Makes or puts back exactly the `planned` records, in one change of the zone.
pub async fn apply(aws: &Aws, found: &ZoneFound, planned: &[Change<DnsRecord>], p: &Printer) -> Result<()> {
    let records: Vec<DnsRecord> = planned.iter().map(|c| c.op.clone()).collect();
    if records.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    let upsert = route53::change(&aws.route53, &found.zone_id, true, &records);
    p.doing(&format!("DNS records {}", names.join(", ")), upsert).await
}

/// Deletes the stack's records: only those exactly as the stack made them (a record changed
/// by hand to point elsewhere is someone's, and stays).
pub async fn destroy(aws: &Aws, wanted: &[DnsRecord], found: &ZoneFound, p: &Printer) -> Result<()> {
    let ours: Vec<DnsRecord> = as_made(wanted, found).into_iter().cloned().collect();
    if ours.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = ours.iter().map(|r| r.name.as_str()).collect();
    p.doing(
        &format!("deleting DNS records {}", names.join(", ")),
        route53::change(&aws.route53, &found.zone_id, false, &ours),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BALANCER: (&str, &str) = ("vcctl-fra-1.eu-central-1.elb.amazonaws.com", "Z215JYRZR1TBD5");

    #[test]
    fn the_validation_record_and_the_alias_once_they_exist_and_drift_is_put_back() {
        assert!(wanted("vc.example.com", &[], None).is_empty());
        let cert = Certificate {
            arn: "arn".into(),
            domain: "vc.example.com".into(),
            status: "PENDING_VALIDATION".into(),
            validation: Some(("_a.vc.example.com.".into(), "CNAME".into(), "_b.acm-validations.aws.".into())),
            owner: Default::default(),
        };
        // The same validation record of two certificates (the load balancer's and CloudFront's) once.
        let w = wanted("VC.example.com", &[&cert, &cert], Some(BALANCER));
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].name.as_str(), w[1].alias_zone.as_deref()), ("vc.example.com.", Some("Z215JYRZR1TBD5")));
        let none = ZoneFound { zone_id: "Z1".into(), records: vec![None, None] };
        assert_eq!(plan(&w, &none).iter().map(|c| c.action.sign()).collect::<String>(), "++");
        let mut elsewhere = w[1].clone();
        elsewhere.value = "other.example.net.".into();
        let found = ZoneFound { zone_id: "Z1".into(), records: vec![Some(w[0].clone()), Some(elsewhere)] };
        let changes = plan(&w, &found);
        assert_eq!((changes.len(), changes[0].action), (1, Action::Update), "{changes:?}");
    }
}
