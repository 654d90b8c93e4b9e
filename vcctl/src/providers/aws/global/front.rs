//! The global name behind one CloudFront distribution (`global.cdn: true`): the edge tier
//! every shape shares (`providers/aws/edge.rs`), its origin the name Route 53 routes to the
//! regions (`origin.<domain>`), and `domain` itself an alias of the distribution. The
//! regions' load balancers already serve `domain` (`certs.rs`), which CloudFront asks for
//! (it forwards `Host`). A single box's Caddy serves its own name only: refused.

use anyhow::Result;

use crate::cloud::aws::route53::{self, DnsRecord};
use crate::cloud::aws::{Aws, Stamp, cloudfront};
use crate::error::Failure;
use crate::providers::aws::edge::{self, EdgeFound, EdgeWanted};
use crate::stack::global::GlobalSettings;

use super::records::{Endpoint, RegionEndpoint};

/// The edge of the global stack, found: everything of it lives in us-east-1 (CloudFront's
/// certificates and web ACLs; Route 53's and CloudFront's own endpoints).
pub async fn survey(aws: &Aws, stack: &str, stamp: &Stamp, domain: &str) -> Result<EdgeFound> {
    edge::survey(edge::Clouds { here: aws, edge: aws }, stack, stamp, domain, None, None, false).await
}

/// What the global stack asks of the edge; `origin` is `g.routed_name()`.
pub fn wanted<'a>(g: &'a GlobalSettings, stack: &'a str, id: &'a str, origin: &'a str) -> EdgeWanted<'a> {
    EdgeWanted {
        stack,
        id,
        domain: &g.domain,
        zone: Some(&g.route53_zone),
        edge: &g.edge,
        origin: Some(origin),
        balancer: None,
        // The regions are their own stacks, each its own secret or none.
        secret: false,
    }
}

/// A distribution needs every region behind a load balancer: refused before anything is
/// made, naming the region.
pub fn check_regions(g: &GlobalSettings, regions: &[RegionEndpoint]) -> Result<()> {
    if !g.edge.cdn {
        return Ok(());
    }
    match regions.iter().find(|r| matches!(r.endpoint, Endpoint::Address { .. })) {
        None => Ok(()),
        Some(r) => Err(Failure::invalid(
            format!(
                "global.cdn: region {} (stack `{}`) is a single box, whose Caddy serves its own name only; the \
                 distribution reaches every region as {}",
                r.name, r.stack, g.domain
            ),
            Some(format!("make `{}` a `scale:` stack, or remove `cdn` from the global stack", r.stack)),
        )
        .into()),
    }
}

/// The name's own record behind a distribution: its alias.
pub fn wanted_alias(g: &GlobalSettings, found: &EdgeFound) -> Option<DnsRecord> {
    let d = found.distribution.as_ref().filter(|_| g.edge.cdn)?;
    Some(DnsRecord {
        name: route53::normal(&g.domain),
        kind: "A".into(),
        value: route53::normal(&d.domain_name),
        alias_zone: Some(cloudfront::ALIAS_ZONE.into()),
        routed: None,
    })
}

/// What the name's own record is to become: the alias to make (or put back), or the alias
/// of the stack's distribution to delete (the regions routed at the name again). What
/// `plan` says and `up` does, from one place.
#[derive(Debug, Default)]
pub struct AliasChange {
    pub upsert: Option<DnsRecord>,
    pub delete: Option<DnsRecord>,
}

pub fn alias_change(g: &GlobalSettings, found: &EdgeFound, records: &[DnsRecord]) -> AliasChange {
    match (wanted_alias(g, found), alias_found(g, found, records)) {
        (Some(a), f) if f != Some(&a) => AliasChange { upsert: Some(a), delete: None },
        (None, Some(f)) => AliasChange { upsert: None, delete: Some(f.clone()) },
        _ => AliasChange::default(),
    }
}

/// The alias of the stack's distribution the name has, if any: what goes when the regions
/// are routed at the name again.
pub fn alias_found<'a>(g: &GlobalSettings, found: &EdgeFound, records: &'a [DnsRecord]) -> Option<&'a DnsRecord> {
    let d = found.distribution.as_ref()?;
    records.iter().find(|r| {
        r.name == route53::normal(&g.domain)
            && r.routed.is_none()
            && r.alias_zone.as_deref() == Some(cloudfront::ALIAS_ZONE)
            && r.value == route53::normal(&d.domain_name)
    })
}
