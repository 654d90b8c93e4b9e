//! The edge: a CloudFront distribution in front of a `scale:` stack's load balancer, or of a
//! global stack's regions (`cdn: true`), and a WAF web ACL (`waf:`), on the distribution when
//! there is one, else on the load balancer. One tier for both shapes: what differs is the
//! origin (the load balancer's name, or the regions' routed origin name) and whether the
//! origin checks a secret header (a `scale:` stack's instances).
//!
//! With a distribution, the load balancer admits only CloudFront's origin-facing addresses
//! (AWS's managed prefix list, on its security group, once the distribution is deployed and
//! the domain points at it), and the service answers only requests that carry the origin
//! secret the distribution adds (`VC_ORIGIN_SECRET`, made once and kept in the bucket):
//! CloudFront's addresses are every customer's. The viewer certificate is ACM's in
//! us-east-1, where CloudFront takes them from, validated by DNS like the load balancer's.
//!
//! Cached: the dashboard's files as the service says (its hashed files for a year), the KPI
//! answers for their `s-maxage` (a few seconds), per query string. Everything else, ingest,
//! status, metrics and the aggregates (which need `Authorization`) never.

use anyhow::Result;
use serde::Serialize;

use crate::cloud::aws::acm::{self, Certificate};
use crate::cloud::aws::cloudfront::{self, Behaviour, Distribution, policy};
use crate::cloud::aws::waf::{self, WebAcl};
use crate::cloud::aws::{Aws, Stamp, ec2, s3};
use crate::plan::{Action, Change};
use crate::printer::Printer;
use crate::stack::edge::EdgeSettings;

/// Where CloudFront takes viewer certificates and keeps its web ACLs.
pub const EDGE_REGION: &str = "us-east-1";
/// The origin secret in the stack's bucket (made once, read by instances and `up`).
pub const ORIGIN_SECRET: &str = "host/origin-secret";
/// The mark in a `scale:` stack's bucket that it has, or had, an edge: written before the
/// first piece is made, deleted once none is left; a stack without it is not surveyed for
/// one (nor asks its operator for CloudFront's and WAF's rights).
pub const MARK: &str = "host/edge";
/// AWS's managed prefix list of CloudFront's addresses that reach origins.
pub const CLOUDFRONT_PREFIX_LIST: &str = "com.amazonaws.global.cloudfront.origin-facing";
/// How long `up` and `destroy` wait for CloudFront to deploy a change (minutes on AWS).
const DEPLOY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Whether the stack's bucket holds the mark (`None`: no bucket yet, so no edge either).
pub async fn marked(client: &aws_sdk_s3::Client, bucket: Option<&str>) -> Result<bool> {
    match bucket {
        Some(b) => Ok(s3::get_small(client, b, MARK, 1024).await?.is_some()),
        None => Ok(false),
    }
}

/// The mark as the tier is: there while the edge is asked for or any of it is left.
pub async fn mark(client: &aws_sdk_s3::Client, bucket: &str, wanted: bool, found: &EdgeFound) -> Result<()> {
    let left = found.distribution.is_some() || found.regional_acl.is_some() || found.cloudfront_acl.is_some();
    match (wanted || left, marked(client, Some(bucket)).await?) {
        (true, false) => s3::put(client, bucket, MARK, b"cdn or waf\n".to_vec()).await,
        (false, true) => s3::delete_object(client, bucket, MARK).await,
        _ => Ok(()),
    }
}

/// What the tier holds, as found.
#[derive(Debug, Default)]
pub struct EdgeFound {
    pub distribution: Option<Distribution>,
    /// The viewer certificate, in us-east-1.
    pub certificate: Option<Certificate>,
    /// The stack's web ACL on the load balancer's side (its region) and CloudFront's.
    pub regional_acl: Option<WebAcl>,
    pub cloudfront_acl: Option<WebAcl>,
    /// The web ACL now on the load balancer, by ARN.
    pub on_balancer: Option<String>,
    pub origin_secret: Option<String>,
    /// CloudFront's origin-facing prefix list in the stack's region.
    pub prefix_list: Option<String>,
}

impl EdgeFound {
    /// The prefix list the load balancer's group admits alone: once the distribution serves
    /// (deployed, enabled), so that the switch refuses nobody who still reaches the origin.
    pub fn admits_only(&self, edge: &EdgeSettings) -> Option<String> {
        let serving = self.distribution.as_ref().is_some_and(|d| d.spec.enabled && d.status == "Deployed");
        (edge.cdn && serving).then(|| self.prefix_list.clone()).flatten()
    }
}

/// The names: the web ACL's, and the comment that finds the distribution.
pub fn acl_name(stack: &str) -> String {
    format!("vcctl-{stack}")
}

fn comment(stack: &str, id: &str) -> String {
    format!("vcctl stack {stack} ({id})")
}

/// The whole tier, in the stack's region and us-east-1. Looked for whatever the file says:
/// what a file no longer asks for is planned away.
pub async fn survey(
    clouds: Clouds<'_>,
    stack: &str,
    stamp: &Stamp,
    domain: &str,
    bucket: Option<&str>,
    balancer: Option<&str>,
    for_group: bool,
) -> Result<EdgeFound> {
    let (cloud, edge_cloud) = (clouds.here, clouds.edge);
    let mut found = EdgeFound {
        distribution: cloudfront::find(&cloud.cloudfront, &comment(stack, &stamp.id), stack).await?,
        certificate: certificate(edge_cloud, stack, domain).await?,
        regional_acl: waf::find(&cloud.waf, &acl_name(stack), false, stack).await?,
        cloudfront_acl: waf::find(&edge_cloud.waf, &acl_name(stack), true, stack).await?,
        ..EdgeFound::default()
    };
    if let Some(arn) = balancer {
        found.on_balancer = waf::on_resource(&cloud.waf, arn).await?;
    }
    if let Some(b) = bucket {
        let secret = s3::get_small(&cloud.s3, b, ORIGIN_SECRET, 4096).await?;
        found.origin_secret = secret.map(|s| String::from_utf8_lossy(&s).trim().to_string()).filter(|s| !s.is_empty());
    }
    // Only a load balancer's group admits it: a `scale:` stack's.
    if for_group {
        found.prefix_list = ec2::managed_prefix_list(&cloud.ec2, CLOUDFRONT_PREFIX_LIST).await?;
    }
    Ok(found)
}

/// The viewer certificate for `domain`, in us-east-1 (read again once its validation
/// record is in the zone: ACM may have issued it since).
pub async fn certificate(edge_cloud: &Aws, stack: &str, domain: &str) -> Result<Option<Certificate>> {
    acm::find(&edge_cloud.acm, stack, domain, Some(acm::FOR_CLOUDFRONT)).await
}

/// How `up` makes one planned change of the tier.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeOp {
    RequestCertificate,
    MakeSecret,
    CreateDistribution,
    UpdateDistribution,
    /// Disabled, deployed, then deleted (CloudFront deletes nothing else).
    DeleteDistribution,
    CreateAcl {
        cloudfront: bool,
    },
    UpdateAcl {
        cloudfront: bool,
    },
    DeleteAcl {
        cloudfront: bool,
    },
    /// The regional ACL onto the load balancer (or off it: `false`).
    Associate(bool),
    Nothing,
}

pub type EdgeChange = Change<EdgeOp>;

fn change(action: Action, resource: impl Into<String>, detail: impl Into<String>, op: EdgeOp) -> EdgeChange {
    Change { action, resource: resource.into(), detail: detail.into(), op }
}

/// What the stack asks of the tier, as the rest of the stack is.
pub struct EdgeWanted<'a> {
    pub stack: &'a str,
    pub id: &'a str,
    pub domain: &'a str,
    pub zone: Option<&'a str>,
    pub edge: &'a EdgeSettings,
    /// The name CloudFront reaches the origin at over HTTPS, once it exists.
    pub origin: Option<&'a str>,
    /// The load balancer a regional web ACL goes on (a `scale:` stack's, once it exists).
    pub balancer: Option<&'a str>,
    /// The origin checks the secret header (a `scale:` stack's instances).
    pub secret: bool,
}

/// The clients of the stack's own region (its bucket, its load balancer's ACL, CloudFront's
/// global endpoint) and of us-east-1 (viewer certificates, CloudFront's web ACLs).
#[derive(Clone, Copy)]
pub struct Clouds<'a> {
    pub here: &'a Aws,
    pub edge: &'a Aws,
}

/// What a pass of `apply` does: what will serve, before the records move to it, or what
/// serves no more, after they moved away from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Make,
    Remove,
}

impl EdgeOp {
    fn phase(&self) -> Phase {
        match self {
            EdgeOp::DeleteDistribution | EdgeOp::DeleteAcl { .. } => Phase::Remove,
            _ => Phase::Make,
        }
    }
}

/// The distribution the stack wants, on what exists (`None` before it can be made).
pub fn wanted_distribution(w: &EdgeWanted, found: &EdgeFound) -> Option<cloudfront::Spec> {
    let origin = w.origin?;
    let cached = |path: &str, policy: &str| Behaviour {
        path: Some(path.into()),
        cache_policy: policy.into(),
        origin_request_policy: None,
    };
    let web_acl = w
        .edge
        .waf
        .as_ref()
        .map(|_| found.cloudfront_acl.as_ref().map_or_else(|| "(web ACL)".to_string(), |a| a.arn.clone()));
    Some(cloudfront::Spec {
        comment: comment(w.stack, w.id),
        aliases: vec![w.domain.to_string()],
        origin: origin.to_string(),
        origin_secret: found.origin_secret.clone().unwrap_or_default(),
        certificate: found.certificate.as_ref().map(|c| c.arn.clone()),
        web_acl,
        behaviours: vec![
            // Ingest, status, metrics, the aggregates: never cached, every header forwarded
            // (Host, so that the load balancer's certificate matches; Authorization).
            Behaviour {
                path: None,
                cache_policy: policy::CACHING_DISABLED.into(),
                origin_request_policy: Some(policy::ALL_VIEWER.into()),
            },
            cached("/api/analytics/kpis", policy::ORIGIN_CACHE_CONTROL_QUERY),
            cached("/dashboard/*", policy::ORIGIN_CACHE_CONTROL),
        ],
        enabled: true,
    })
}

/// The web ACL the stack wants.
pub fn wanted_acl(edge: &EdgeSettings) -> Option<waf::Spec> {
    edge.waf.as_ref().map(|w| waf::Spec {
        ingest_per_ip_5min: w.ingest_per_ip_5min,
        block_countries: w.block_countries.clone(),
        common_rules: true,
    })
}

/// What `up` would change in the tier, in the order it changes it: what the distribution
/// names first, the distribution, then what it no longer names.
pub fn plan(w: &EdgeWanted, found: &EdgeFound) -> Vec<EdgeChange> {
    let mut out = Vec::new();
    let cdn = w.edge.cdn;
    if cdn {
        out.extend(plan_certificate(w, found));
        if w.secret && found.origin_secret.is_none() {
            let detail = "the header only the distribution sends the service: random, in the bucket, never shown";
            out.push(change(Action::Create, "origin secret", detail, EdgeOp::MakeSecret));
        }
    }
    out.extend(plan_acls(w, found));
    out.extend(plan_distribution(w, found));
    out.sort_by_key(|c| rank(&c.op));
    out
}

/// The order `up` applies the ops in.
fn rank(op: &EdgeOp) -> u8 {
    match op {
        EdgeOp::RequestCertificate | EdgeOp::MakeSecret | EdgeOp::Nothing => 0,
        EdgeOp::CreateAcl { .. } | EdgeOp::UpdateAcl { .. } => 1,
        EdgeOp::Associate(false) => 2,
        EdgeOp::CreateDistribution | EdgeOp::UpdateDistribution | EdgeOp::DeleteDistribution => 3,
        EdgeOp::Associate(true) => 4,
        EdgeOp::DeleteAcl { .. } => 5,
    }
}

fn plan_certificate(w: &EdgeWanted, found: &EdgeFound) -> Option<EdgeChange> {
    let resource = format!("certificate for {} in {EDGE_REGION}", w.domain);
    match &found.certificate {
        None => Some(change(
            Action::Create,
            resource,
            "ACM, validated by DNS: CloudFront's viewer certificate",
            EdgeOp::RequestCertificate,
        )),
        Some(c) if !c.issued() => Some(change(Action::Note, resource, waiting(c, w.zone), EdgeOp::Nothing)),
        Some(_) => None,
    }
}

/// What the distribution waits for while ACM validates its certificate.
fn waiting(c: &Certificate, zone: Option<&str>) -> String {
    let after = "the distribution is made at the `vcctl up` after ACM issues it";
    match (&c.validation, zone) {
        (Some(_), Some(zone)) => format!("{}: its DNS record is in the hosted zone {zone}; {after}", c.status),
        (Some((name, kind, value)), None) => {
            format!("{}: create the DNS record `{name} {kind} {value}`; {after}", c.status)
        }
        (None, _) => format!("{}: ACM has not given its validation record yet", c.status),
    }
}

fn plan_distribution(w: &EdgeWanted, found: &EdgeFound) -> Vec<EdgeChange> {
    let resource = |d: Option<&Distribution>| match d {
        Some(d) => format!("distribution {} ({})", d.id, d.domain_name),
        None => format!("distribution for {}", w.domain),
    };
    let Some(d) = &found.distribution else {
        if !w.edge.cdn {
            return vec![];
        }
        let ready = found.certificate.as_ref().is_some_and(Certificate::issued)
            && (!w.secret || found.origin_secret.is_some())
            && w.origin.is_some()
            && (w.edge.waf.is_none() || found.cloudfront_acl.is_some());
        let (op, when) = match ready {
            true => (EdgeOp::CreateDistribution, ""),
            false => (EdgeOp::Nothing, ", once its origin and its certificate exist"),
        };
        let detail = format!(
            "CloudFront in front of the load balancer{when}: hashed files a year, KPIs for seconds, the rest never cached"
        );
        return vec![change(Action::Create, resource(None), detail, op)];
    };
    if !w.edge.cdn {
        let detail = "`cdn` is off: disabled, then deleted once CloudFront has deployed that (minutes)";
        return vec![change(Action::Delete, resource(Some(d)), detail, EdgeOp::DeleteDistribution)];
    }
    match wanted_distribution(w, found) {
        Some(spec) if spec != d.spec => {
            let detail = format!("put back as the file says: {}", differences(&d.spec, &spec).join(", "));
            vec![change(Action::Update, resource(Some(d)), detail, EdgeOp::UpdateDistribution)]
        }
        _ => vec![],
    }
}

/// What differs between the distribution found and the one wanted, in words (never the secret).
fn differences(found: &cloudfront::Spec, wanted: &cloudfront::Spec) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 7] = [
        ("aliases", found.aliases != wanted.aliases),
        ("origin", found.origin != wanted.origin),
        ("origin secret", found.origin_secret != wanted.origin_secret),
        ("certificate", found.certificate != wanted.certificate),
        ("web ACL", found.web_acl != wanted.web_acl),
        ("cache behaviours", found.behaviours != wanted.behaviours),
        ("enabled", found.enabled != wanted.enabled),
    ];
    checks.iter().filter(|(_, differs)| *differs).map(|(what, _)| *what).collect()
}

fn plan_acls(w: &EdgeWanted, found: &EdgeFound) -> Vec<EdgeChange> {
    let mut out = Vec::new();
    let wanted = wanted_acl(w.edge);
    let name = acl_name(w.stack);
    for (cloudfront, acl) in [(false, &found.regional_acl), (true, &found.cloudfront_acl)] {
        let scope = if cloudfront { "on the distribution (us-east-1)" } else { "on the load balancer" };
        let resource = format!("web ACL {name} {scope}");
        let here = wanted.as_ref().filter(|_| w.edge.cdn == cloudfront);
        match (acl, here) {
            (None, Some(spec)) => {
                out.push(change(Action::Create, resource, describe_acl(spec), EdgeOp::CreateAcl { cloudfront }))
            }
            (Some(a), Some(spec)) if a.spec != *spec => {
                let detail = format!("{} -> {}", describe_acl(&a.spec), describe_acl(spec));
                out.push(change(Action::Update, resource, detail, EdgeOp::UpdateAcl { cloudfront }));
            }
            (Some(a), None) => {
                if !cloudfront && found.on_balancer.as_deref() == Some(a.arn.as_str()) {
                    out.push(change(
                        Action::Update,
                        "load balancer",
                        format!("web ACL {name} taken off"),
                        EdgeOp::Associate(false),
                    ));
                }
                out.push(change(Action::Delete, resource, "not in the stack file", EdgeOp::DeleteAcl { cloudfront }));
            }
            _ => {}
        }
        if !cloudfront && here.is_some() && w.balancer.is_some() {
            let on = acl.as_ref().is_some_and(|a| found.on_balancer.as_deref() == Some(a.arn.as_str()));
            if !on {
                out.push(change(
                    Action::Update,
                    "load balancer",
                    format!("web ACL {name} put on it"),
                    EdgeOp::Associate(true),
                ));
            }
        }
    }
    out
}

fn describe_acl(spec: &waf::Spec) -> String {
    let countries = match spec.block_countries.is_empty() {
        true => String::new(),
        false => format!("countries {} blocked, ", spec.block_countries.join(" ")),
    };
    let common = if spec.common_rules { ", AWS's common rule set counting" } else { "" };
    format!("{countries}{} requests to /api/events per address in 5 min{common}", spec.ingest_per_ip_5min)
}

/// Makes and repairs the tier: passes of the plan until nothing is left to do (what one
/// pass makes, a certificate ACM issues at once, lets the next make the distribution).
/// `found` is kept as made.
/// `bucket`: where the origin secret is kept (a `scale:` stack's).
pub async fn apply(
    clouds: Clouds<'_>,
    w: &EdgeWanted<'_>,
    bucket: Option<&str>,
    found: &mut EdgeFound,
    phase: Phase,
    stamp: &Stamp,
    p: &Printer,
) -> Result<()> {
    for _ in 0..3 {
        let planned = plan(w, found);
        let todo: Vec<&EdgeChange> =
            planned.iter().filter(|c| c.op != EdgeOp::Nothing && c.op.phase() == phase).collect();
        if todo.is_empty() {
            break;
        }
        for c in todo {
            let doing = format!("{}: {}", c.resource, c.detail);
            p.doing(&doing, apply_one(clouds, w, bucket, found, &c.op, stamp, p)).await?;
        }
    }
    Ok(())
}

async fn apply_one(
    clouds: Clouds<'_>,
    w: &EdgeWanted<'_>,
    bucket: Option<&str>,
    found: &mut EdgeFound,
    op: &EdgeOp,
    stamp: &Stamp,
    p: &Printer,
) -> Result<()> {
    let (cloud, edge_cloud) = (clouds.here, clouds.edge);
    let acl_client = |cloudfront: bool| if cloudfront { &edge_cloud.waf } else { &cloud.waf };
    let name = acl_name(w.stack);
    match op {
        EdgeOp::RequestCertificate => {
            found.certificate = Some(acm::request(&edge_cloud.acm, w.domain, stamp, Some(acm::FOR_CLOUDFRONT)).await?)
        }
        EdgeOp::MakeSecret => {
            let secret = crate::providers::aws::owners::random_hex(48);
            let bucket = bucket.expect("planned only for an origin with a bucket");
            s3::put(&cloud.s3, bucket, ORIGIN_SECRET, secret.clone().into_bytes()).await?;
            found.origin_secret = Some(secret);
        }
        EdgeOp::CreateAcl { cloudfront } | EdgeOp::UpdateAcl { cloudfront } => {
            let spec = wanted_acl(w.edge).expect("planned only with `waf:`");
            let slot = if *cloudfront { &mut found.cloudfront_acl } else { &mut found.regional_acl };
            *slot = Some(match slot.as_ref() {
                None => waf::create(acl_client(*cloudfront), &name, *cloudfront, &spec, stamp).await?,
                Some(a) => waf::update(acl_client(*cloudfront), a, &spec).await?,
            });
        }
        EdgeOp::Associate(on) => {
            let arn = w.balancer.expect("planned only with a load balancer");
            match (on, &found.regional_acl) {
                (true, Some(acl)) => waf::associate(&cloud.waf, &acl.arn, arn).await?,
                _ => waf::disassociate(&cloud.waf, arn).await?,
            }
            found.on_balancer = found.regional_acl.as_ref().filter(|_| *on).map(|a| a.arn.clone());
        }
        EdgeOp::CreateDistribution | EdgeOp::UpdateDistribution => {
            let spec = wanted_distribution(w, found).expect("planned only with an origin");
            let made = match &found.distribution {
                None => cloudfront::create(&cloud.cloudfront, &spec, &comment(w.stack, w.id), stamp).await?,
                Some(d) => cloudfront::update(&cloud.cloudfront, d, &spec).await?,
            };
            found.distribution = Some(deployed(&cloud.cloudfront, made, p).await?);
        }
        EdgeOp::DeleteDistribution => {
            let d = found.distribution.take().expect("planned only for a distribution found");
            delete_distribution(&cloud.cloudfront, d, p).await?;
        }
        EdgeOp::DeleteAcl { cloudfront } => {
            let slot = if *cloudfront { &mut found.cloudfront_acl } else { &mut found.regional_acl };
            if let Some(a) = slot.take() {
                waf::delete(acl_client(*cloudfront), &a).await?;
            }
        }
        EdgeOp::Nothing => {}
    }
    Ok(())
}

/// The distribution once CloudFront has deployed its last change to the edge.
async fn deployed(cf: &aws_sdk_cloudfront::Client, mut d: Distribution, p: &Printer) -> Result<Distribution> {
    let started = std::time::Instant::now();
    while d.status != "Deployed" {
        if started.elapsed() > DEPLOY_TIMEOUT {
            anyhow::bail!(
                "distribution {} is still {} after {} min; `vcctl up` again carries on from there",
                d.id,
                d.status,
                DEPLOY_TIMEOUT.as_secs() / 60
            );
        }
        p.detail(format!("distribution {}: {} (CloudFront takes minutes to reach every edge)", d.id, d.status));
        tokio::time::sleep(poll_interval()).await;
        d = cloudfront::reread(cf, &d).await?;
    }
    Ok(d)
}

/// 15 s against AWS; `VCCTL_POLL_MS` in tests, against an emulator's state machine.
fn poll_interval() -> std::time::Duration {
    let ms = std::env::var("VCCTL_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(15_000);
    std::time::Duration::from_millis(ms)
}

/// Disables the distribution, waits for that to deploy, and deletes it: CloudFront deletes
/// no distribution that still serves.
async fn delete_distribution(cf: &aws_sdk_cloudfront::Client, d: Distribution, p: &Printer) -> Result<()> {
    let d = match d.spec.enabled {
        true => cloudfront::update(cf, &d, &cloudfront::Spec { enabled: false, ..d.spec.clone() }).await?,
        false => d,
    };
    let d = deployed(cf, d, p).await?;
    cloudfront::delete(cf, &d).await
}

/// Everything of the tier, for `destroy`: the distribution first (it names the ACL and the
/// certificate), then the ACLs and the certificate.
pub async fn destroy(clouds: Clouds<'_>, found: EdgeFound, balancer: Option<&str>, p: &Printer) -> Result<()> {
    let (cloud, edge_cloud) = (clouds.here, clouds.edge);
    if let Some(d) = found.distribution {
        let what = format!("disabling and deleting distribution {} (minutes on AWS)", d.id);
        p.doing(&what, delete_distribution(&cloud.cloudfront, d, p)).await?;
    }
    if let (Some(_), Some(arn)) = (&found.on_balancer, balancer) {
        p.doing("taking the web ACL off the load balancer", waf::disassociate(&cloud.waf, arn)).await?;
    }
    for (client, acl) in [(&cloud.waf, found.regional_acl), (&edge_cloud.waf, found.cloudfront_acl)] {
        if let Some(a) = acl {
            p.doing(&format!("deleting web ACL {} ({})", a.name, a.scope), waf::delete(client, &a)).await?;
        }
    }
    if let Some(c) = found.certificate {
        p.doing(&format!("deleting certificate {} (us-east-1)", c.arn), acm::delete(&edge_cloud.acm, &c.arn)).await?;
    }
    Ok(())
}

/// What `destroy` deletes of the tier, in words.
pub fn doomed(found: &EdgeFound) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = &found.distribution {
        out.push(format!("distribution {} ({}), disabled first", d.id, d.domain_name));
    }
    for a in [&found.regional_acl, &found.cloudfront_acl].into_iter().flatten() {
        out.push(format!("web ACL {} ({})", a.name, a.scope));
    }
    if let Some(c) = &found.certificate {
        out.push(format!("certificate {} ({}, us-east-1)", c.arn, c.domain));
    }
    out
}

/// What `status` shows of the tier beside what it found: the web ACL's blocked requests in
/// the last hour, from CloudWatch (WAF counts per ACL, `Rule=ALL`).
#[derive(Debug, Serialize)]
pub struct EdgeView<'a> {
    pub distribution: Option<&'a Distribution>,
    pub web_acl: Option<&'a WebAcl>,
    pub blocked_last_hour: Option<f64>,
}

pub async fn view<'a>(clouds: Clouds<'_>, found: &'a EdgeFound) -> Result<EdgeView<'a>> {
    let (cloud, edge_cloud) = (clouds.here, clouds.edge);
    let (acl, cw, region) = match (&found.cloudfront_acl, &found.regional_acl) {
        (Some(a), _) => (Some(a), &edge_cloud.cloudwatch, None),
        (None, Some(a)) => (Some(a), &cloud.cloudwatch, Some(cloud.region.as_str())),
        (None, None) => (None, &cloud.cloudwatch, None),
    };
    let blocked = match acl {
        Some(a) => {
            let mut dims = vec![("WebACL", a.name.as_str()), ("Rule", "ALL")];
            dims.extend(region.map(|r| ("Region", r)));
            Some(crate::cloud::aws::cloudwatch::last_hour_sum(cw, "AWS/WAFV2", "BlockedRequests", &dims).await?)
        }
        None => None,
    };
    Ok(EdgeView { distribution: found.distribution.as_ref(), web_acl: acl, blocked_last_hour: blocked })
}

/// The tier in `status`'s words.
pub fn lines(found: &EdgeFound, view: &EdgeView, edge: &EdgeSettings) -> Vec<String> {
    let mut out = Vec::new();
    match (&found.distribution, edge.cdn) {
        (Some(d), _) => out.push(format!(
            "  cdn: distribution {} ({}), {}{}",
            d.id,
            d.domain_name,
            d.status,
            if found.admits_only(edge).is_some() { "; the load balancer admits CloudFront only" } else { "" }
        )),
        (None, true) => out.push("  cdn: no distribution yet (`vcctl up` makes it)".into()),
        (None, false) => {}
    }
    if let Some(a) = view.web_acl {
        let on = if a.scope == "CLOUDFRONT" { "on the distribution" } else { "on the load balancer" };
        let blocked =
            view.blocked_last_hour.map_or_else(String::new, |b| format!(": {b:.0} requests blocked in the last hour"));
        out.push(format!("  waf: web ACL {} {on}{blocked}", a.name));
        out.push(format!("    {}", describe_acl(&a.spec)));
    } else if edge.waf.is_some() {
        out.push("  waf: no web ACL yet (`vcctl up` makes it)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::edge::WafSettings;

    fn cert(status: &str) -> Certificate {
        let owner = Default::default();
        Certificate {
            arn: "arn:cert".into(),
            domain: "vc.example.com".into(),
            status: status.into(),
            validation: None,
            owner,
        }
    }

    fn wanted<'a>(edge: &'a EdgeSettings, balancer: bool) -> EdgeWanted<'a> {
        EdgeWanted {
            stack: "fra",
            id: "k3x",
            domain: "vc.example.com",
            zone: Some("example.com"),
            edge,
            origin: balancer.then_some("lb.elb.amazonaws.com"),
            balancer: balancer.then_some("arn:lb"),
            secret: true,
        }
    }

    fn ops(w: &EdgeWanted, found: &EdgeFound) -> Vec<(Action, EdgeOp)> {
        plan(w, found).into_iter().map(|c| (c.action, c.op)).collect()
    }

    /// What the distribution names comes first; it is made only once all of it exists, and
    /// the load balancer admits CloudFront alone only once it serves.
    #[test]
    fn the_distribution_waits_for_what_it_names_and_the_origin_closes_only_once_it_serves() {
        let waf = WafSettings { ingest_per_ip_5min: 100, block_countries: vec![] };
        let edge = EdgeSettings { cdn: true, waf: Some(waf) };
        let mut found = EdgeFound { prefix_list: Some("pl-cf".into()), ..EdgeFound::default() };
        assert_eq!(
            ops(&wanted(&edge, false), &found),
            [
                (Action::Create, EdgeOp::RequestCertificate),
                (Action::Create, EdgeOp::MakeSecret),
                (Action::Create, EdgeOp::Nothing),
                (Action::Create, EdgeOp::CreateAcl { cloudfront: true }),
            ]
        );
        found.certificate = Some(cert("PENDING_VALIDATION"));
        found.origin_secret = Some("s".into());
        let acl = WebAcl {
            name: "vcctl-fra".into(),
            id: "1".into(),
            arn: "arn:acl".into(),
            scope: "CLOUDFRONT".into(),
            lock_token: "t".into(),
            spec: wanted_acl(&edge).unwrap(),
            owner: Default::default(),
        };
        found.cloudfront_acl = Some(acl);
        let waiting = ops(&wanted(&edge, true), &found);
        assert_eq!(waiting, [(Action::Note, EdgeOp::Nothing), (Action::Create, EdgeOp::Nothing)], "the certificate");
        found.certificate = Some(cert("ISSUED"));
        assert_eq!(ops(&wanted(&edge, true), &found), [(Action::Create, EdgeOp::CreateDistribution)]);
        let spec = wanted_distribution(&wanted(&edge, true), &found).unwrap();
        assert_eq!(spec.web_acl.as_deref(), Some("arn:acl"));
        let mut d = Distribution {
            id: "E1".into(),
            arn: "arn:d".into(),
            domain_name: "d1.cloudfront.net".into(),
            status: "InProgress".into(),
            etag: "e".into(),
            caller_reference: "c".into(),
            spec,
            owner: Default::default(),
        };
        found.distribution = Some(d.clone());
        assert!(ops(&wanted(&edge, true), &found).is_empty(), "as wanted");
        assert_eq!(found.admits_only(&edge), None, "not while CloudFront deploys it");
        d.status = "Deployed".into();
        found.distribution = Some(d);
        assert_eq!(found.admits_only(&edge).as_deref(), Some("pl-cf"));
        // Off: everyone again first, then the distribution and its ACL go; the certificate stays
        // (free; `destroy` deletes it), so that `cdn` on again needs no new one.
        let off = EdgeSettings { cdn: false, waf: None };
        assert_eq!(found.admits_only(&off), None);
        assert_eq!(
            ops(&wanted(&off, true), &found),
            [(Action::Delete, EdgeOp::DeleteDistribution), (Action::Delete, EdgeOp::DeleteAcl { cloudfront: true }),]
        );
    }
}
