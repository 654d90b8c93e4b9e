//! The global name on each region's load balancer. A client asking `https://<global.domain>`
//! reaches a region's load balancer, whose own certificate is for the region's name; so the
//! global stack keeps a certificate for `global.domain` in each such region (ACM's are
//! regional), validated by DNS in the global zone, and serves it on the region's HTTPS
//! listener beside the region's own (the load balancer picks by SNI). The region's own
//! certificate and listener stay the region's. A single box's region is reached by its
//! address, and its Caddy serves its own name only: said by `plan`.

use anyhow::Result;

use super::records::{Endpoint, GlobalOp, RegionEndpoint};
use crate::cloud::aws::acm::{self, Certificate};
use crate::cloud::aws::route53::{self, DnsRecord};
use crate::cloud::aws::{Aws, Stamp, elb};
use crate::plan::{Action, Change};

/// One region's side of it, as found.
#[derive(Debug, Clone)]
pub struct RegionCert {
    pub region: String,
    pub aws_region: String,
    /// The region is a load balancer's (a single box's is reached by its address).
    pub balancer: bool,
    /// The load balancer's HTTPS listener, once the region's `up` made it.
    pub listener: Option<String>,
    pub cert: Option<Certificate>,
    /// The certificate is on the listener.
    pub attached: bool,
}

pub async fn survey(regions: &[RegionEndpoint], stack: &str, domain: &str) -> Result<Vec<RegionCert>> {
    let mut out = Vec::new();
    for r in regions {
        let aws = Aws::connect(&r.aws_region).await;
        // Looked for in every region: a region whose load balancer is gone may still hold one.
        let cert = acm::find(&aws.acm, stack, domain, None).await?;
        let (balancer, listener) = match &r.endpoint {
            Endpoint::Balancer { arn, .. } => {
                (true, elb::listeners(&aws.elb, arn).await?.into_iter().find(|l| l.port == 443).map(|l| l.arn))
            }
            _ => (false, None),
        };
        let attached = match (&listener, &cert) {
            (Some(l), Some(c)) => elb::extra_certificates(&aws.elb, l).await?.contains(&c.arn),
            _ => false,
        };
        out.push(RegionCert {
            region: r.name.clone(),
            aws_region: r.aws_region.clone(),
            balancer,
            listener,
            cert,
            attached,
        });
    }
    Ok(out)
}

/// Request where there is none; attach where it is issued and not on the listener; say what
/// waits (ACM's validation, the region's listener).
pub fn plan(domain: &str, found: &[RegionCert]) -> Vec<Change<GlobalOp>> {
    let mut out = Vec::new();
    for f in found.iter().filter(|f| f.balancer) {
        let resource = format!("certificate for {domain} in {} (region {})", f.aws_region, f.region);
        match (&f.cert, &f.listener) {
            (None, _) => out.push(Change {
                action: Action::Create,
                resource,
                detail: "ACM, validated by DNS in the global zone; served beside the region's own".into(),
                op: GlobalOp::Certificate { region: f.region.clone() },
            }),
            (Some(c), _) if !c.issued() => out.push(Change {
                action: Action::Note,
                resource,
                detail: format!(
                    "{}: its validation record is kept in the zone; run `vcctl up` again once ACM has issued it",
                    c.status
                ),
                op: GlobalOp::Nothing,
            }),
            (Some(_), None) => out.push(Change {
                action: Action::Note,
                resource,
                detail: "the region's load balancer has no HTTPS listener yet: run the region's own `vcctl up`".into(),
                op: GlobalOp::Nothing,
            }),
            (Some(c), Some(_)) if !f.attached => out.push(Change {
                action: Action::Create,
                resource: format!("{domain} on region {}'s HTTPS listener", f.region),
                detail: format!("certificate {} beside the region's own (SNI)", c.arn),
                op: GlobalOp::Attach { region: f.region.clone() },
            }),
            _ => {}
        }
    }
    out
}

/// The validation records of the certificates found or made (one name for every region:
/// ACM gives one record per domain and account).
pub fn validation_records(found: &[RegionCert]) -> Vec<DnsRecord> {
    route53::validation_records(found.iter().filter_map(|f| f.cert.as_ref()))
}

/// Requests the certificates `changes` ask for; attaches the issued ones they ask to attach.
pub async fn apply(
    found: &mut [RegionCert],
    changes: &[Change<GlobalOp>],
    domain: &str,
    stamp: &Stamp,
    p: &crate::printer::Printer,
) -> Result<()> {
    for f in found.iter_mut() {
        let aws = Aws::connect(&f.aws_region).await;
        let wants = |op: &dyn Fn(&GlobalOp) -> bool| changes.iter().any(|c| op(&c.op));
        if wants(&|op| matches!(op, GlobalOp::Certificate { region } if *region == f.region)) {
            let what = format!("certificate for {domain} in {}", f.aws_region);
            f.cert = Some(p.doing(&what, acm::request(&aws.acm, domain, stamp, None)).await?);
        }
        if wants(&|op| matches!(op, GlobalOp::Attach { region } if *region == f.region))
            && let (Some(listener), Some(c)) = (&f.listener, &f.cert)
        {
            let what = format!("{domain} on region {}'s HTTPS listener", f.region);
            p.doing(&what, elb::listener_certificate(&aws.elb, listener, &c.arn, true)).await?;
            f.attached = true;
        }
    }
    Ok(())
}

/// Takes the certificates off the listeners and deletes them; answers what went.
pub async fn destroy(found: &[RegionCert], p: &crate::printer::Printer) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for f in found {
        let Some(c) = &f.cert else { continue };
        let aws = Aws::connect(&f.aws_region).await;
        if let (Some(listener), true) = (&f.listener, f.attached) {
            p.doing(
                &format!("taking {} off region {}'s listener", c.domain, f.region),
                elb::listener_certificate(&aws.elb, listener, &c.arn, false),
            )
            .await?;
        }
        p.doing(&format!("deleting certificate {}", c.arn), acm::delete(&aws.acm, &c.arn)).await?;
        gone.push(format!("certificate for {} in {} ({})", c.domain, f.aws_region, c.arn));
    }
    Ok(gone)
}
