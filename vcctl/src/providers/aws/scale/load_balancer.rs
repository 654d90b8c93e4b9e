//! The load balancer tier of a `scale:` stack: the ACM certificate for `tls.domain`, the
//! target group, the Application Load Balancer and its two listeners (HTTPS on 443 to the
//! group, HTTP on 80 redirected to HTTPS). `plan` gives each change its operation;
//! `apply` carries out exactly those.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::cloud::aws::acm::{self, Certificate};
use crate::cloud::aws::elb::{self, Balancer, Does, Listener, TargetGroup};
use crate::cloud::aws::{Aws, Stamp, ec2};
use crate::plan::{Action, Change};
use crate::printer::Printer;
use crate::providers::aws::scale::tiers::owned;

/// What exists of the tier.
#[derive(Debug, Default, Serialize)]
pub struct BalancerFound {
    pub certificate: Option<Certificate>,
    pub target_group: Option<TargetGroup>,
    pub balancer: Option<Balancer>,
    pub listeners: Vec<Listener>,
}

/// How a plan names the target group before it exists; `apply` puts its ARN in its place.
pub const PENDING_TARGET_GROUP: &str = "(target group)";

/// One listener as the stack wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerWanted {
    pub port: i32,
    pub certificate: Option<String>,
    pub does: Does,
}

/// The listeners the stack wants: HTTP 80 redirected, and HTTPS 443 to the group once the
/// certificate is issued (AWS refuses a listener with a certificate still being validated).
pub fn wanted_listeners(found: &BalancerFound) -> Vec<BalancerWanted> {
    let mut out = vec![BalancerWanted { port: 80, certificate: None, does: Does::RedirectToHttps }];
    if let Some(c) = found.certificate.as_ref().filter(|c| c.issued()) {
        let tg = found.target_group.as_ref().map_or_else(|| PENDING_TARGET_GROUP.to_string(), |g| g.arn.clone());
        out.push(BalancerWanted { port: 443, certificate: Some(c.arn.clone()), does: Does::Forward(tg) });
    }
    out
}

fn describe(w: &BalancerWanted) -> String {
    match &w.does {
        Does::RedirectToHttps => format!("HTTP {}: redirect to HTTPS 443 (301)", w.port),
        Does::Forward(_) => format!("HTTPS {}: to the target group ({})", w.port, elb::SSL_POLICY),
        Does::Other(o) => format!("{}: {o}", w.port),
    }
}

/// How `up` makes one planned change of the tier.
#[derive(Debug, Clone, PartialEq)]
pub enum BalancerOp {
    RequestCertificate,
    CreateTargetGroup,
    CreateBalancer,
    SetSecurityGroup,
    /// A listener; one that forwards to `(target group)` gets the group made in this run.
    CreateListener(BalancerWanted),
    ModifyListener(String, BalancerWanted),
    DeleteListener(String),
    /// Nothing to do but wait (the certificate's validation).
    Wait,
}

pub type BalancerChange = Change<BalancerOp>;

fn change(action: Action, resource: String, detail: impl Into<String>, op: BalancerOp) -> BalancerChange {
    Change { action, resource, detail: detail.into(), op }
}

/// What `up` would change in the tier, from what exists, and how. `lb_group` is the load
/// balancer's security group (its id once it exists).
pub fn plan(
    stack: &str,
    domain: &str,
    zone: Option<&str>,
    found: &BalancerFound,
    lb_group: &str,
) -> Vec<BalancerChange> {
    let n = crate::providers::aws::names::load_balancer(stack);
    let mut out = Vec::new();
    match &found.certificate {
        None => out.push(change(
            Action::Create,
            format!("certificate for {domain}"),
            "ACM, validated by DNS",
            BalancerOp::RequestCertificate,
        )),
        Some(c) if !c.issued() => {
            out.push(change(Action::Note, format!("certificate {}", c.arn), waiting(c, zone), BalancerOp::Wait))
        }
        Some(_) => {}
    }
    if found.target_group.is_none() {
        let detail = "HTTP to the service's port; healthy on GET /api/status";
        out.push(change(Action::Create, format!("target group {n}"), detail, BalancerOp::CreateTargetGroup));
    }
    match &found.balancer {
        None => {
            let detail = "internet-facing, in every zone of the default VPC";
            out.push(change(Action::Create, format!("load balancer {n}"), detail, BalancerOp::CreateBalancer))
        }
        Some(b) if b.security_groups != [lb_group.to_string()] => out.push(change(
            Action::Update,
            format!("load balancer {n}"),
            format!("security groups {:?} -> [{lb_group}]", b.security_groups),
            BalancerOp::SetSecurityGroup,
        )),
        Some(_) => {}
    }
    out.extend(plan_listeners(found));
    out
}

fn plan_listeners(found: &BalancerFound) -> Vec<BalancerChange> {
    let mut out = Vec::new();
    let wanted = wanted_listeners(found);
    for w in &wanted {
        let what = format!("listener {}", w.port);
        match found.listeners.iter().find(|l| l.port == w.port) {
            None => out.push(change(Action::Create, what, describe(w), BalancerOp::CreateListener(w.clone()))),
            Some(l) if l.does != w.does || l.certificate != w.certificate => out.push(change(
                Action::Update,
                what,
                format!("{:?} -> {}", l.does, describe(w)),
                BalancerOp::ModifyListener(l.arn.clone(), w.clone()),
            )),
            Some(_) => {}
        }
    }
    for l in found.listeners.iter().filter(|l| !wanted.iter().any(|w| w.port == l.port) && l.port != 443) {
        let op = BalancerOp::DeleteListener(l.arn.clone());
        out.push(change(Action::Delete, format!("listener {}", l.port), "not in the stack: drift", op));
    }
    out
}

/// What to do while ACM validates: the record that proves the domain.
/// `zone`: the hosted zone vcctl keeps the record in (`tls.route53_zone`), if any.
pub fn waiting(c: &Certificate, zone: Option<&str>) -> String {
    match (&c.validation, zone) {
        (Some(_), Some(zone)) => format!(
            "{}: its DNS record is in the hosted zone {zone}; ACM issues it within minutes, and HTTPS on 443 opens at the `vcctl up` after",
            c.status
        ),
        (Some((name, kind, value)), None) => format!(
            "{}: create the DNS record `{name} {kind} {value}`; HTTPS on 443 opens at the `vcctl up` after ACM issues it",
            c.status
        ),
        (None, _) => {
            format!("{}: ACM has not given its validation record yet; run `vcctl plan` again in a minute", c.status)
        }
    }
}

/// Reads what exists; a resource tagged with another stack id is refused before any change.
pub async fn survey(aws: &Aws, stack: &str, domain: &str, stamp: &Stamp) -> Result<BalancerFound> {
    let n = crate::providers::aws::names::load_balancer(stack);
    let mut found = BalancerFound {
        certificate: acm::find(&aws.acm, stack, domain, None).await?,
        target_group: elb::find_target_group(&aws.elb, &n).await?,
        balancer: elb::find_balancer(&aws.elb, &n).await?,
        listeners: Vec::new(),
    };
    if let Some(c) = &found.certificate {
        owned(&format!("certificate {}", c.arn), c.owner.stack_id.as_deref(), stamp)?;
    }
    if let Some(g) = &found.target_group {
        owned(&format!("target group {n}"), g.owner.stack_id.as_deref(), stamp)?;
    }
    if let Some(b) = &found.balancer {
        owned(&format!("load balancer {n}"), b.owner.stack_id.as_deref(), stamp)?;
        found.listeners = elb::listeners(&aws.elb, &b.arn).await?;
    }
    Ok(found)
}

/// Makes and repairs the tier: exactly the `planned` changes, in order. `lb_group` is the
/// load balancer's security group.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    aws: &Aws,
    stack: &str,
    domain: &str,
    found: &mut BalancerFound,
    planned: &[BalancerChange],
    lb_group: &str,
    port: u16,
    stamp: &Stamp,
    p: &Printer,
) -> Result<()> {
    let n = crate::providers::aws::names::load_balancer(stack);
    for c in planned {
        let doing = format!("{}: {}", c.resource, c.detail);
        match &c.op {
            BalancerOp::Wait => {}
            BalancerOp::RequestCertificate => {
                found.certificate = Some(p.doing(&doing, acm::request(&aws.acm, domain, stamp, None)).await?);
            }
            BalancerOp::CreateTargetGroup => {
                let vpc = ec2::default_vpc(&aws.ec2).await?;
                p.doing(&doing, elb::create_target_group(&aws.elb, &n, port, &vpc, stamp)).await?;
                found.target_group = elb::find_target_group(&aws.elb, &n).await?;
                crate::providers::aws::scale::tiers::fault_point("target_group");
            }
            BalancerOp::CreateBalancer => {
                let vpc = ec2::default_vpc(&aws.ec2).await?;
                let subnets = ec2::subnets_across_zones(&aws.ec2, &vpc, "a load balancer").await?;
                p.doing(&doing, elb::create_balancer(&aws.elb, &n, &subnets, lb_group, stamp)).await?;
                found.balancer = elb::find_balancer(&aws.elb, &n).await?;
                crate::providers::aws::scale::tiers::fault_point("load_balancer");
            }
            BalancerOp::SetSecurityGroup => {
                p.doing(&doing, elb::set_security_groups(&aws.elb, &balancer_arn(found, &n)?, lb_group)).await?
            }
            BalancerOp::CreateListener(w) => {
                let (arn, w) = (balancer_arn(found, &n)?, resolved(w, found)?);
                let create = elb::create_listener(&aws.elb, &arn, w.port, w.certificate.as_deref(), &w.does);
                p.doing(&doing, create).await?
            }
            BalancerOp::ModifyListener(arn, w) => {
                let w = resolved(w, found)?;
                p.doing(&doing, elb::modify_listener(&aws.elb, arn, w.certificate.as_deref(), &w.does)).await?
            }
            BalancerOp::DeleteListener(arn) => p.doing(&doing, elb::delete_listener(&aws.elb, arn)).await?,
        }
    }
    if let Some(b) = &found.balancer {
        found.listeners = elb::listeners(&aws.elb, &b.arn).await?;
    }
    Ok(())
}

fn balancer_arn(found: &BalancerFound, n: &str) -> Result<String> {
    match &found.balancer {
        Some(b) => Ok(b.arn.clone()),
        None => bail!("load balancer {n} is not found after its creation"),
    }
}

/// `w` forwarding to the target group made in this run, when it was planned before it.
fn resolved(w: &BalancerWanted, found: &BalancerFound) -> Result<BalancerWanted> {
    let mut w = w.clone();
    if w.does == Does::Forward(PENDING_TARGET_GROUP.into()) {
        let Some(tg) = &found.target_group else { bail!("the target group is not found after its creation") };
        w.does = Does::Forward(tg.arn.clone());
    }
    Ok(w)
}

/// Removes the tier: the load balancer (its listeners with it), the target group once the
/// balancer is gone, then the certificate.
pub async fn destroy(aws: &Aws, found: &BalancerFound, p: &Printer) -> Result<()> {
    if let Some(b) = &found.balancer {
        p.doing(&format!("deleting load balancer {}", b.dns_name), elb::delete_balancer(&aws.elb, &b.arn)).await?;
    }
    if let Some(g) = &found.target_group {
        p.doing("deleting the target group", retry_in_use(|| elb::delete_target_group(&aws.elb, &g.arn))).await?;
    }
    if let Some(c) = &found.certificate {
        p.doing(&format!("deleting certificate {}", c.arn), retry_in_use(|| acm::delete(&aws.acm, &c.arn))).await?;
    }
    Ok(())
}

/// AWS lets go of a deleted load balancer's group and certificate a little after: a call
/// that finds them still in use is tried again for up to 5 minutes.
async fn retry_in_use<F, Fut>(call: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = std::time::Instant::now();
    loop {
        match call().await {
            Err(e) if format!("{e:#}").contains("InUse") && started.elapsed() < std::time::Duration::from_secs(300) => {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::Owner;

    fn cert(status: &str) -> Certificate {
        Certificate {
            arn: "arn:cert".into(),
            domain: "vc.example.com".into(),
            status: status.into(),
            validation: Some(("_x.vc.example.com.".into(), "CNAME".into(), "_y.acm-validations.aws.".into())),
            owner: Owner::default(),
        }
    }

    #[test]
    fn https_waits_for_the_certificate_and_the_redirect_is_put_back() {
        let mut found = BalancerFound { certificate: Some(cert("PENDING_VALIDATION")), ..BalancerFound::default() };
        let changes = plan("fra", "vc.example.com", None, &found, "sg-lb");
        let waiting = changes.iter().find(|c| c.action == Action::Note).expect("the wait is said");
        assert!(
            waiting.detail.contains("create the DNS record `_x.vc.example.com. CNAME _y.acm-validations.aws.`"),
            "{waiting:?}"
        );
        assert!(!changes.iter().any(|c| c.resource == "listener 443"), "no HTTPS before the certificate: {changes:?}");
        found.certificate = Some(cert("ISSUED"));
        found.target_group = Some(TargetGroup {
            arn: "arn:tg".into(),
            port: 8000,
            health_path: "/api/status".into(),
            owner: Owner::default(),
        });
        let l = |port: i32, certificate: Option<&str>, does: Does| Listener {
            arn: format!("arn:l{port}"),
            port,
            protocol: String::new(),
            certificate: certificate.map(str::to_string),
            does,
        };
        found.listeners =
            vec![l(80, None, Does::RedirectToHttps), l(443, Some("arn:cert"), Does::Forward("arn:tg".into()))];
        found.balancer = Some(Balancer {
            arn: "arn:lb".into(),
            dns_name: "x".into(),
            zone_id: "Z1".into(),
            security_groups: vec!["sg-lb".into()],
            zones: 2,
            owner: Owner::default(),
        });
        assert_eq!(plan("fra", "vc.example.com", None, &found, "sg-lb"), vec![]);
        // The redirect replaced by hand with a forward: put back.
        found.listeners[0].does = Does::Forward("arn:tg".into());
        let changes = plan("fra", "vc.example.com", None, &found, "sg-lb");
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].action, changes[0].resource.as_str()), (Action::Update, "listener 80"));
    }
}
