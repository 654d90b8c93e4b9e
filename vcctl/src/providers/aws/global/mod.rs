//! `provider: global`: several region stacks behind one name. This stack owns only what is
//! global: one Route 53 health check per region (on the region's `/api/status`) and one
//! record of `global.domain` per region, routed by latency or failover and answered only
//! while the region's check passes. The regions are their own stacks, made and changed by
//! their own commands (`commands/global.rs` runs them region by region).

pub mod certs;
pub mod front;
pub mod kpis;
pub mod records;

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::route53;
use crate::cloud::aws::{Aws, elb};
use crate::context::Ctx;
use crate::error::Failure;
use crate::plan::{Action, Change};
use crate::providers::aws::edge;
use crate::settings::{Overrides, Settings};
use crate::stack::global::{GlobalSettings, Region};
use crate::stack::{AwsSettings, Provider};
use records::{Endpoint, Found, GlobalOp, RegionEndpoint};

/// Route 53 is global; its API lives in us-east-1.
const ROUTE53_REGION: &str = "us-east-1";

/// A region's own stack, as its file says, with the context its commands run in.
pub struct RegionStack {
    pub region: Region,
    pub ctx: Ctx,
}

impl RegionStack {
    pub fn aws(&self) -> &AwsSettings {
        match &self.ctx.settings.provider {
            Provider::Aws(a) => a,
            _ => unreachable!("checked when the regions are read"),
        }
    }
}

/// Reads every region's stack file, in file order: each must be an AWS stack (`scale:` or a
/// single box), and the file errors name the region that names it.
pub fn regions(ctx: &Ctx, g: &GlobalSettings) -> Result<Vec<RegionStack>> {
    regions_in(ctx, &g.regions)
}

/// The stacks of `list`, in its order (a deploy's: `GlobalSettings::deploy_order`).
pub fn regions_in<'a>(ctx: &Ctx, list: impl IntoIterator<Item = &'a Region>) -> Result<Vec<RegionStack>> {
    let mut out = Vec::new();
    for region in list {
        let file = crate::stack::locate(&ctx.root, &region.stack);
        if !file.is_file() {
            let (message, hint) = crate::stack::missing(&ctx.root, &region.stack);
            return Err(Failure::invalid(format!("global.regions.{}: {message}", region.name), Some(hint)).into());
        }
        let stack = crate::stack::load_file(&file)?;
        if !matches!(stack.provider, Provider::Aws(_)) {
            return Err(Failure::invalid(
                format!(
                    "global.regions.{}: stack `{}` is a `{}` stack; a region is an AWS stack (`scale:` or a single box)",
                    region.name,
                    region.stack,
                    stack.provider.shape()
                ),
                Some(format!("point `{}` at an AWS stack file", region.name)),
            )
            .into());
        }
        let settings = Settings::resolve(&ctx.root, stack, &Overrides::default());
        out.push(RegionStack { region: region.clone(), ctx: Ctx { settings, ..ctx.clone() } });
    }
    Ok(out)
}

/// Each region's stack file and its `service.env`, for `records::peer_notes`.
fn envs(regions: &[RegionStack]) -> Vec<(String, Vec<(String, String)>)> {
    let shown = |r: &RegionStack| {
        let file = &r.ctx.settings.stack_file;
        file.strip_prefix(&r.ctx.root).unwrap_or(file).display().to_string()
    };
    regions.iter().map(|r| (shown(r), r.ctx.settings.env.clone())).collect()
}

/// Where each region answers: its load balancer or its address, as its own stack made them.
async fn endpoints(regions: &[RegionStack]) -> Result<Vec<RegionEndpoint>> {
    let mut out = Vec::new();
    for r in regions {
        let a = r.aws();
        let aws = Aws::connect(&a.region()).await;
        let stack = &r.ctx.settings.stack;
        let endpoint = if a.scale.is_some() {
            let name = crate::providers::aws::names::load_balancer(stack);
            match elb::find_balancer(&aws.elb, &name).await? {
                Some(b) => Endpoint::Balancer {
                    domain: r.ctx.settings.tls.as_ref().map(|t| t.domain.clone()).unwrap_or_default(),
                    dns_name: b.dns_name,
                    zone_id: b.zone_id,
                    arn: b.arn,
                },
                None => {
                    Endpoint::Missing { why: format!("no load balancer {name} yet: run `vcctl up --stack {stack}`") }
                }
            }
        } else {
            match crate::cloud::aws::address::find(&aws.ec2, stack).await? {
                Some(addr) => Endpoint::Address {
                    ip: addr.public_ip,
                    domain: r.ctx.settings.tls.as_ref().map(|t| t.domain.clone()),
                    port: r.ctx.settings.port,
                },
                None => Endpoint::Missing { why: format!("no Elastic IP yet: run `vcctl up --stack {stack}`") },
            }
        };
        out.push(RegionEndpoint {
            name: r.region.name.clone(),
            stack: stack.clone(),
            aws_region: a.region(),
            endpoint,
        });
    }
    Ok(out)
}

/// The zone, the stack's health checks and the global name's records.
async fn survey(aws: &Aws, g: &GlobalSettings, stack_id: &str) -> Result<Found> {
    let Some(zone_id) = route53::zone_id(&aws.route53, &g.route53_zone).await? else {
        return Err(Failure::invalid(
            format!("this AWS account has no Route 53 hosted zone {} (global.route53_zone)", g.route53_zone),
            Some("create the zone, or name the one global.domain is in".into()),
        )
        .into());
    };
    let checks = if stack_id.is_empty() {
        Vec::new()
    } else {
        route53::health_checks(&aws.route53, &format!("vcctl:{stack_id}:")).await?
    };
    // At the name, and at the name behind a distribution: the regions may be routed at
    // either, and a change of `cdn` moves them.
    let mut records = Vec::new();
    for name in [g.domain.clone(), format!("origin.{}", g.domain)] {
        records.extend(route53::find_all(&aws.route53, &zone_id, &route53::normal(&name), "A").await?);
    }
    Ok(Found { zone_id, checks, records })
}

pub struct Survey {
    pub aws: Aws,
    pub regions: Vec<RegionEndpoint>,
    pub found: Found,
    /// The global name's certificate in each region (`certs.rs`).
    pub certs: Vec<certs::RegionCert>,
    /// The distribution in front of the regions, its certificate and web ACL (`front.rs`).
    pub edge: edge::EdgeFound,
}

pub async fn survey_all(ctx: &Ctx, g: &GlobalSettings, regions: &[RegionStack]) -> Result<Survey> {
    let aws = Aws::connect(ROUTE53_REGION).await;
    let id = ctx.settings.stack_id.clone().unwrap_or_default();
    let found = survey(&aws, g, &id).await?;
    let regions = endpoints(regions).await?;
    let certs = certs::survey(&regions, &ctx.settings.stack, &g.domain).await?;
    front::check_regions(g, &regions)?;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let edge = front::survey(&aws, &ctx.settings.stack, &stamp, &g.domain).await?;
    Ok(Survey { aws, regions, found, certs, edge })
}

/// Every change `up` would make: the routing (`records.rs`), the certificates, then the
/// edge and the name's alias of its distribution (`front.rs`; applied by their own plans).
fn changes(g: &GlobalSettings, stack: &str, id: &str, s: &Survey) -> Vec<Change<GlobalOp>> {
    let mut out = records::plan(g, id, &s.regions, &s.found);
    out.extend(certs::plan(&g.domain, &s.certs));
    let origin = g.routed_name();
    let edge = edge::plan(&front::wanted(g, stack, id, &origin), &s.edge);
    out.extend(edge.into_iter().map(|c| applied_apart(c.action, c.resource, c.detail)));
    let resource = format!("DNS record {} A", g.domain);
    match front::alias_change(g, &s.edge, &s.found.records) {
        front::AliasChange { upsert: Some(a), .. } => {
            let to = format!("alias of the distribution {}", a.value.trim_end_matches('.'));
            out.push(applied_apart(Action::Create, resource, to));
        }
        front::AliasChange { delete: Some(_), .. } => {
            out.push(applied_apart(Action::Delete, resource, "the regions are routed at the name again".into()))
        }
        _ if g.edge.cdn && front::wanted_alias(g, &s.edge).is_none() => {
            out.push(applied_apart(Action::Create, resource, "alias of the distribution, once it exists".into()))
        }
        _ => {}
    }
    out
}

/// A change `up` makes by another plan (the edge's, the name's alias), shown with the rest.
fn applied_apart(action: Action, resource: String, detail: String) -> Change<GlobalOp> {
    Change { action, resource, detail, op: GlobalOp::Nothing }
}

fn scope<'a>(ctx: &'a Ctx, g: &'a GlobalSettings) -> crate::plan::Scope<'a> {
    crate::plan::Scope { stack: &ctx.settings.stack, shape: "global", place: Some(&g.domain) }
}

pub async fn plan(ctx: &Ctx, g: &GlobalSettings) -> Result<u8> {
    let regions = regions(ctx, g)?;
    let s = survey_all(ctx, g, &regions).await?;
    let id = ctx.settings.stack_id.clone().unwrap_or_default();
    let mut changes = changes(g, &ctx.settings.stack, &id, &s);
    changes.extend(records::peer_notes(&s.regions, &envs(&regions)));
    let trailer = trailer(g, &s.regions);
    let extra =
        json!({"domain": g.domain, "routing": g.routing.name(), "regions": s.regions, "cost": cost(g, &s.regions)});
    Ok(crate::plan::print(&ctx.printer, &scope(ctx, g), &changes, crate::plan::extra(extra), &trailer))
}

fn trailer(g: &GlobalSettings, regions: &[RegionEndpoint]) -> Vec<String> {
    let mut out = vec![format!(
        "routing: {}{}; deploys go {}",
        g.routing.name(),
        match &g.routing {
            crate::stack::global::Routing::Failover { primary } => format!(" (primary {primary})"),
            crate::stack::global::Routing::Latency => String::new(),
        },
        g.deploy_order().iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(" → ")
    )];
    out.extend(crate::providers::aws::cost::describe(&cost(g, regions)));
    out
}

fn cost(g: &GlobalSettings, regions: &[RegionEndpoint]) -> crate::providers::aws::cost::Estimate {
    let latency = matches!(g.routing, crate::stack::global::Routing::Latency);
    let checks: Vec<(&str, bool)> =
        regions.iter().filter_map(|r| records::check_target(&r.endpoint).map(|t| (r.name.as_str(), t.https))).collect();
    crate::providers::aws::cost::global(&checks, latency, &g.edge)
}

/// `vcctl up` of a global stack: exactly the planned changes, health checks first (a record
/// names its check), then the records in one change, then what is no longer wanted.
pub async fn up(ctx: &Ctx, g: &GlobalSettings) -> Result<u8> {
    let id = crate::providers::aws::stack_id(ctx)?;
    let ctx = &ctx.with_current_id();
    let regions = regions(ctx, g)?;
    let mut s = survey_all(ctx, g, &regions).await?;
    let changes = changes(g, &ctx.settings.stack, &id, &s);
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let p = &ctx.printer;
    certs::apply(&mut s.certs, &changes, &g.domain, &stamp, p).await?;
    make_checks(ctx, &id, &mut s, &changes, &stamp).await?;
    make_edge(ctx, g, &id, &mut s, &stamp).await?;
    let deleted = records_in_one_change(g, &id, &s, &changes, p).await?;
    // The regions' records at the name go with the alias that replaces them, never before.
    let waiting = g.edge.cdn && front::wanted_alias(g, &s.edge).is_none();
    let later = changes.iter().map(|c| &c.op).filter(|op| match op {
        GlobalOp::DeleteRecord(r) => {
            let kept = waiting && r.name == route53::normal(&g.domain);
            !(deleted.contains(r) || kept)
        }
        _ => true,
    });
    remove(p, &s, later).await?;
    let (origin, clouds) = (g.routed_name(), edge::Clouds { here: &s.aws, edge: &s.aws });
    let w = front::wanted(g, &ctx.settings.stack, &id, &origin);
    edge::apply(clouds, &w, None, &mut s.edge, edge::Phase::Remove, &stamp, p).await?;
    // A certificate requested just now, or waiting for its validation record, may be issued
    // already: on its listener now. (Those issued before were attached above, by the plan.)
    let requested = changes.iter().any(|c| matches!(c.op, GlobalOp::Certificate { .. }));
    if requested || s.certs.iter().any(|f| f.cert.as_ref().is_some_and(|c| !c.issued())) {
        s.certs = certs::survey(&s.regions, &ctx.settings.stack, &g.domain).await?;
        let attach = certs::plan(&g.domain, &s.certs);
        certs::apply(&mut s.certs, &attach, &g.domain, &stamp, p).await?;
    }
    for note in records::peer_notes(&s.regions, &envs(&regions)) {
        p.warn(note.line().trim_start_matches("! "));
    }
    if waiting {
        p.info(format!("the regions' records at {} stay until the distribution serves it", g.domain));
    }
    let made = changes.iter().filter(|c| c.is_change()).count();
    print_up(ctx, g, &s.regions, &changes, made);
    Ok(0)
}

/// The health checks `changes` asks for, each found again by its caller reference.
async fn make_checks(
    ctx: &Ctx,
    id: &str,
    s: &mut Survey,
    changes: &[Change<GlobalOp>],
    stamp: &crate::cloud::aws::Stamp,
) -> Result<()> {
    for c in changes {
        if let GlobalOp::Check { region, target } = &c.op {
            let reference = format!(
                "{}{}",
                records::reference_prefix(id, region),
                time::OffsetDateTime::now_utc().unix_timestamp_nanos()
            );
            let name = format!("vcctl-{}-{region}", ctx.settings.stack);
            let made = ctx
                .printer
                .doing(
                    &format!("health check of region {region}"),
                    route53::create_health_check(&s.aws.route53, &reference, target, &name, &stamp.pairs()),
                )
                .await?;
            s.found.checks.push(route53::HealthCheck { id: made, reference, target: target.clone() });
        }
    }
    Ok(())
}

/// What will serve at the edge: the viewer certificate (its validation record kept in the
/// zone), the web ACL, and the distribution once ACM has issued the certificate.
async fn make_edge(
    ctx: &Ctx,
    g: &GlobalSettings,
    id: &str,
    s: &mut Survey,
    stamp: &crate::cloud::aws::Stamp,
) -> Result<()> {
    let (origin, p) = (g.routed_name(), &ctx.printer);
    let w = front::wanted(g, &ctx.settings.stack, id, &origin);
    let clouds = edge::Clouds { here: &s.aws, edge: &s.aws };
    edge::apply(clouds, &w, None, &mut s.edge, edge::Phase::Make, stamp, p).await?;
    if !g.edge.cdn || s.edge.distribution.is_some() || s.edge.certificate.is_none() {
        return Ok(());
    }
    let missing = validation_missing(s, &route53::validation_records(&s.edge.certificate)).await?;
    if !missing.is_empty() {
        let upsert = route53::change(&s.aws.route53, &s.found.zone_id, true, &missing);
        p.doing("the distribution's certificate's validation record", upsert).await?;
    }
    s.edge.certificate = edge::certificate(&s.aws, &ctx.settings.stack, &g.domain).await?;
    edge::apply(clouds, &w, None, &mut s.edge, edge::Phase::Make, stamp, p).await
}

/// The regions' records, the certificates' validation records, and the name's alias of the
/// distribution, in one change: behind a distribution, the stack's routed records at the
/// name give way to the alias in it, and back without one (Route 53 refuses a name both).
/// The records it deleted.
async fn records_in_one_change(
    g: &GlobalSettings,
    id: &str,
    s: &Survey,
    changes: &[Change<GlobalOp>],
    p: &crate::printer::Printer,
) -> Result<Vec<route53::DnsRecord>> {
    let mut upserts: Vec<_> = changes
        .iter()
        .filter_map(|c| match &c.op {
            GlobalOp::Record { region } => {
                let r = s.regions.iter().find(|e| e.name == *region)?;
                let target = records::check_target(&r.endpoint)?;
                let check = s.found.check_of(id, region, &target)?;
                records::wanted_record(g, r, &check.id)
            }
            _ => None,
        })
        .collect();
    let validation = certs::validation_records(&s.certs);
    upserts.extend(validation_missing(s, &validation).await?);
    let name = route53::normal(&g.domain);
    let alias = front::alias_change(g, &s.edge, &s.found.records);
    let mut deleted: Vec<_> = alias.delete.into_iter().collect();
    upserts.extend(alias.upsert);
    if front::wanted_alias(g, &s.edge).is_some() {
        let routed_here = changes.iter().filter_map(|c| match &c.op {
            GlobalOp::DeleteRecord(r) if r.name == name => Some(r.clone()),
            _ => None,
        });
        deleted.extend(routed_here);
    }
    if !upserts.is_empty() || !deleted.is_empty() {
        let mut names: Vec<&str> = upserts.iter().map(|r| r.name.trim_end_matches('.')).collect();
        names.dedup();
        p.doing(
            &format!("DNS records {}", names.join(", ")),
            route53::change_both(&s.aws.route53, &s.found.zone_id, &deleted, &upserts),
        )
        .await?;
    }
    Ok(deleted)
}

/// The certificates' validation records the zone lacks.
async fn validation_missing(s: &Survey, wanted: &[route53::DnsRecord]) -> Result<Vec<route53::DnsRecord>> {
    let mut out = Vec::new();
    for w in wanted {
        if route53::find(&s.aws.route53, &s.found.zone_id, &w.name, &w.kind).await?.as_ref() != Some(w) {
            out.push(w.clone());
        }
    }
    Ok(out)
}

/// Deletes the records and then the health checks among `ops`.
async fn remove<'a>(
    p: &crate::printer::Printer,
    s: &Survey,
    ops: impl Iterator<Item = &'a GlobalOp> + Clone,
) -> Result<()> {
    let stale: Vec<_> = ops
        .clone()
        .filter_map(|op| match op {
            GlobalOp::DeleteRecord(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    if !stale.is_empty() {
        p.doing(
            &format!("deleting {} DNS record(s)", stale.len()),
            route53::change(&s.aws.route53, &s.found.zone_id, false, &stale),
        )
        .await?;
    }
    for op in ops {
        if let GlobalOp::DeleteCheck(c) = op {
            p.doing(&format!("deleting health check {}", c.id), route53::delete_health_check(&s.aws.route53, &c.id))
                .await?;
        }
    }
    Ok(())
}

fn print_up(ctx: &Ctx, g: &GlobalSettings, regions: &[RegionEndpoint], changes: &[Change<GlobalOp>], made: usize) {
    let missing: Vec<&str> =
        regions.iter().filter(|r| matches!(r.endpoint, Endpoint::Missing { .. })).map(|r| r.name.as_str()).collect();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "shape": "global", "domain": g.domain, "routing": g.routing.name(),
        "changed": made > 0, "changes": changes.iter().filter(|c| c.is_change()).map(Change::line).collect::<Vec<_>>(),
        "regions": regions, "regions_not_made": missing,
    }));
    ctx.printer.out(format!(
        "stack `{}` (global): {made} change(s); https://{} routes by {} to {} region(s)",
        ctx.settings.stack,
        g.domain,
        g.routing.name(),
        regions.len() - missing.len()
    ));
    for name in missing {
        ctx.printer.out(format!("  region {name} has no endpoint yet: run its own `vcctl up`, then this one again"));
    }
}

/// What the stack made, as one survey found it: the records of the name whose health check
/// is the stack's, the stack's health checks (each with how it is named to people), and the
/// certificates (in `survey.certs`).
pub struct Owned {
    survey: Survey,
    pieces: Vec<(String, GlobalOp)>,
}

impl Owned {
    /// What `destroy` deletes, for the confirmation and the report.
    pub fn names(&self) -> Vec<String> {
        let certs = self.survey.certs.iter().filter_map(|c| c.cert.as_ref());
        let certs = certs.map(|c| format!("certificate for {} ({})", c.domain, c.arn));
        let edge = edge::doomed(&self.survey.edge);
        self.pieces.iter().map(|(what, _)| what.clone()).chain(certs).chain(edge).collect()
    }
}

/// The global pieces the stack made; none before its first `up` gave it an id.
pub async fn owned(ctx: &Ctx, g: &GlobalSettings) -> Result<Option<Owned>> {
    if ctx.settings.stack_id.is_none() {
        return Ok(None);
    }
    let regions = regions(ctx, g)?;
    let survey = survey_all(ctx, g, &regions).await?;
    let found = &survey.found;
    let mut pieces: Vec<(String, GlobalOp)> = found
        .records
        .iter()
        .filter(|r| records::is_ours(r, found))
        .map(|r| {
            let region = r.routed.as_ref().map_or("", |x| x.set_identifier.as_str());
            (format!("DNS record {} A ({region})", r.name.trim_end_matches('.')), GlobalOp::DeleteRecord(r.clone()))
        })
        .collect();
    if let Some(alias) = front::alias_found(g, &survey.edge, &found.records) {
        let what = format!("DNS record {} A (alias of the distribution)", g.domain);
        pieces.insert(0, (what, GlobalOp::DeleteRecord(alias.clone())));
    }
    pieces.extend(found.checks.iter().map(|c| {
        (format!("health check {} ({})", c.id, records::describe_check(&c.target)), GlobalOp::DeleteCheck(c.clone()))
    }));
    Ok(Some(Owned { survey, pieces }))
}

/// Deletes what `owned` found: the records, then the checks, then the certificates (off the
/// listeners first) and their validation records; answers what went.
pub async fn destroy(ctx: &Ctx, mut owned: Owned) -> Result<Vec<String>> {
    let edge_found = std::mem::take(&mut owned.survey.edge);
    let s = &owned.survey;
    remove(&ctx.printer, s, owned.pieces.iter().map(|(_, op)| op)).await?;
    let mut gone: Vec<String> = owned.pieces.iter().map(|(what, _)| what.clone()).collect();
    gone.extend(certs::destroy(&s.certs, &ctx.printer).await?);
    gone.extend(edge::doomed(&edge_found));
    // Their validation records, where still as made: read before the certificates go.
    let certificates = s.certs.iter().filter_map(|c| c.cert.as_ref()).chain(&edge_found.certificate);
    let wanted = route53::validation_records(certificates);
    edge::destroy(edge::Clouds { here: &s.aws, edge: &s.aws }, edge_found, None, &ctx.printer).await?;
    let missing = validation_missing(s, &wanted).await?;
    let ours: Vec<_> = wanted.into_iter().filter(|w| !missing.contains(w)).collect();
    if !ours.is_empty() {
        let deleting = route53::change(&s.aws.route53, &s.found.zone_id, false, &ours);
        ctx.printer.doing("deleting the certificates' validation records", deleting).await?;
        gone.extend(ours.iter().map(|r| format!("DNS record {} {} (certificate validation)", r.name, r.kind)));
    }
    Ok(gone)
}

/// One region's health check and what Route 53's checkers last saw of it.
struct Seen {
    check: Option<String>,
    /// (healthy checkers, checkers).
    seen: Option<(usize, usize)>,
}

/// Each region's health as Route 53's checkers see it, in the regions' order.
async fn check_health(s: &Survey, id: &str) -> Result<Vec<Seen>> {
    let mut out = Vec::new();
    for r in &s.regions {
        let check = records::check_target(&r.endpoint).and_then(|t| s.found.check_of(id, &r.name, &t));
        let seen = match check {
            Some(c) => Some(route53::health_check_status(&s.aws.route53, &c.id).await?),
            None => None,
        };
        out.push(Seen { check: check.map(|c| c.id.clone()), seen });
    }
    Ok(out)
}

/// `vcctl status` of a global stack: each region's health check as Route 53's checkers see
/// it, its record, and its share of the last hour's traffic; the KPIs of every region merged
/// when `VCCTL_READ_TOKEN` holds the regions' read token.
pub async fn status(ctx: &Ctx, g: &GlobalSettings) -> Result<u8> {
    let regions = regions(ctx, g)?;
    let s = survey_all(ctx, g, &regions).await?;
    let id = ctx.settings.stack_id.clone().unwrap_or_default();
    let health = check_health(&s, &id).await?;
    let merged = match std::env::var(kpis::TOKEN_VAR) {
        Ok(token) if !token.is_empty() => {
            let urls: Vec<_> = s.regions.iter().map(|r| (r.name.clone(), kpis::url_of(r))).collect();
            let client = crate::http_client::client();
            let window = vehicleconnect::kpi::Window::OneHour;
            let reads = kpis::read(&client, &urls, &token, window).await;
            Some(kpis::merge(reads, window, time::OffsetDateTime::now_utc()))
        }
        _ => None,
    };
    let views = region_views(&s, &health, merged.as_ref());
    let healthy = views.iter().all(|v| v.healthy);
    let edge = edge::view(edge::Clouds { here: &s.aws, edge: &s.aws }, &s.edge).await?;
    let mut lines = vec![format!("domain:   https://{} ({} routing)", g.domain, g.routing.name())];
    lines.extend(edge::lines(&s.edge, &edge, &g.edge));
    lines.extend(views.iter().map(RegionView::line));
    match &merged {
        Some(m) => lines.push(global_kpi_line(m)),
        None => lines.push(format!("KPIs:     set {} to the regions' read token to merge them here", kpis::TOKEN_VAR)),
    }
    let subject =
        crate::status::Subject { stack: &ctx.settings.stack, shape: "global", place: Some(&g.domain), healthy };
    let body = json!({"domain": g.domain, "routing": g.routing.name(), "regions": views, "kpis": merged, "edge": edge});
    Ok(crate::status::print(&ctx.printer, &subject, body, &lines))
}

#[derive(Debug, serde::Serialize)]
struct RegionView {
    region: String,
    stack: String,
    aws_region: String,
    health_check: Option<String>,
    /// Route 53's checkers that saw it healthy, and how many looked.
    checkers_healthy: Option<(usize, usize)>,
    record: bool,
    /// Its share of the last hour's events, in percent, when the KPIs were read.
    traffic_share_pct: Option<f64>,
    healthy: bool,
}

impl RegionView {
    fn line(&self) -> String {
        let check = match (&self.health_check, self.checkers_healthy) {
            (Some(id), Some((ok, n))) => format!("health check {id}: {ok} of {n} checkers see it healthy"),
            _ => "no health check (run `vcctl up` of the global stack)".into(),
        };
        let record = if self.record { "in DNS" } else { "NOT in DNS" };
        let share = self.traffic_share_pct.map(|p| format!(", {p:.1} % of the last hour's events")).unwrap_or_default();
        format!("region:   {} ({}, {}): {check}; {record}{share}", self.region, self.stack, self.aws_region)
    }
}

fn region_views(s: &Survey, health: &[Seen], merged: Option<&kpis::GlobalKpis>) -> Vec<RegionView> {
    let total: u64 = merged.map_or(0, |m| m.regions.iter().map(|r| r.count).sum());
    s.regions
        .iter()
        .zip(health)
        .map(|(r, Seen { check, seen })| {
            let record =
                s.found.records.iter().any(|rec| {
                    rec.routed.as_ref().is_some_and(|x| x.set_identifier == r.name && x.health_check == *check)
                });
            let share = merged.and_then(|m| m.regions.iter().find(|x| x.region == r.name)).filter(|_| total > 0);
            let healthy = record && seen.is_some_and(|(ok, n)| n > 0 && ok * 2 > n);
            RegionView {
                region: r.name.clone(),
                stack: r.stack.clone(),
                aws_region: r.aws_region.clone(),
                health_check: check.clone(),
                checkers_healthy: *seen,
                record,
                traffic_share_pct: share.map(|x| (1000.0 * x.count as f64 / total as f64).round() / 10.0),
                healthy,
            }
        })
        .collect()
}

fn global_kpi_line(m: &kpis::GlobalKpis) -> String {
    let o = &m.overall;
    let missing: Vec<String> =
        m.regions.iter().filter_map(|r| r.error.as_ref().map(|e| format!("{} ({e})", r.region))).collect();
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
    let mut line = format!(
        "KPIs:     every region, last hour: {} events, p95 {}, avg {}, errors {:.2} %",
        o.count,
        ms(o.p95_latency_ms),
        ms(o.avg_latency_ms),
        o.error_rate_pct
    );
    if !missing.is_empty() {
        line.push_str(&format!("; without {}", missing.join(", ")));
    }
    line
}
