//! An `aws` stack with `scale:`: an Auto Scaling group behind an Application Load Balancer,
//! its database on RDS. Planned, made, repaired and destroyed tier by tier: the network and
//! data tier (`tiers.rs`: the chained security groups, the release bucket, the DB subnet
//! group, RDS), the load balancer tier (`load_balancer.rs`: the certificate, the target
//! group, the load balancer and its listeners), the records (`dns.rs`), the alarms with
//! their topic (`alerts.rs`), the host kit and the first release in the bucket
//! (`release_bucket.rs`), and the instances (`instances.rs`: their role, the launch
//! template, the group). `plan` also gives the monthly cost; `deploy.rs` rolls a release.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod database;
pub mod deploy;
pub mod dns;
pub mod instances;
pub mod load_balancer;
pub mod log_group;
pub mod logs;
pub mod refresh;
pub mod release_bucket;
pub mod restore;
pub mod secrets;
pub mod tiers;

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::autoscaling::GroupSize;
use crate::cloud::aws::cloudwatch::Alarm;
use crate::cloud::aws::launch_template::Launch;
use crate::cloud::aws::route53::DnsRecord;
use crate::cloud::aws::{Aws, Stamp, ec2, sns};
use crate::context::Ctx;
use crate::error::{self, Failure};
use crate::plan::{Action, Change};
use crate::providers::aws::edge;
use crate::providers::aws::names;
use crate::providers::aws::names::TierNames;
use crate::providers::aws::{self, DEFAULT_INSTANCE_TYPE};
use crate::stack::AwsSettings;
use crate::stack::scale::ScaleSettings;
use alerts::Watched;

/// How a single box becomes a group: its data moves, the stack does not.
/// `{old}` is the single box's stack.
fn migration(old: &str) -> String {
    format!(
        "`vcctl db dump --stack {old} > events.dump`, `vcctl up --stack NEW` of a new stack file with `scale:`, \
         `vcctl db restore events.dump --stack NEW`, then `vcctl destroy --stack {old}` (docs/aws.md, Scaling out)"
    )
}

/// Everything of the stack that exists, read once.
struct Survey {
    cloud: Aws,
    account: String,
    stamp: Stamp,
    names: TierNames,
    data: tiers::TiersFound,
    lb: load_balancer::BalancerFound,
    /// The clients of us-east-1, where CloudFront's certificates and web ACLs live.
    edge_cloud: Aws,
    /// The distribution and the web ACL in front of the load balancer (`edge.rs`).
    edge: edge::EdgeFound,
    /// The records in `tls.route53_zone`, when the stack names one: wanted, and as found.
    dns: Option<(Vec<DnsRecord>, dns::ZoneFound)>,
    alerts: alerts::AlarmsFound,
    /// The log group the instances ship their lines to.
    logs: Option<crate::cloud::aws::logs::LogGroup>,
    instances: instances::InstancesFound,
    /// The release the bucket's pointer names.
    serving: Option<release_bucket::Serving>,
}

async fn survey(ctx: &Ctx, a: &AwsSettings, stamp: Stamp) -> Result<Survey> {
    let (cloud, account) = single_box_absent(ctx, a).await?;
    let names = TierNames::of(&ctx.settings.stack, &stamp.id);
    let data = tiers::survey(&cloud, &names, &stamp).await?;
    let lb = load_balancer::survey(&cloud, &ctx.settings.stack, domain(ctx), &stamp).await?;
    let edge_cloud = Aws::connect(edge::EDGE_REGION).await;
    let bucket = data.bucket.as_ref().map(|b| b.name.as_str());
    let balancer = lb.balancer.as_ref().map(|b| b.arn.as_str());
    let clouds = edge::Clouds { here: &cloud, edge: &edge_cloud };
    // A stack that never had an edge (no mark in its bucket, none asked) is not looked at for
    // one: its operator's policy from before the edge existed keeps working.
    let edge = match edge_settings(a).wanted() || edge::marked(&cloud.s3, bucket).await? {
        true => edge::survey(clouds, &ctx.settings.stack, &stamp, domain(ctx), bucket, balancer, true).await?,
        false => edge::EdgeFound::default(),
    };
    let mut data = data;
    data.edge_only = edge.admits_only(edge_settings(a));
    let alerts = alerts::survey(&cloud, &ctx.settings.stack, &account, &stamp).await?;
    let instances = instances::survey(&cloud, &names::InstanceNames::of(&ctx.settings.stack), &stamp).await?;
    let serving = match &data.bucket {
        Some(b) => release_bucket::serving(&cloud.s3, &b.name).await?,
        None => None,
    };
    let dns = survey_dns(ctx, &cloud, &lb, &edge, edge_settings(a)).await?;
    let logs = log_group::survey(&cloud, &ctx.settings.stack, &stamp).await?;
    Ok(Survey { cloud, account, stamp, names, data, lb, edge_cloud, edge, dns, alerts, logs, instances, serving })
}

/// `cdn` and `waf` of the stack's `scale:`.
fn edge_settings(a: &AwsSettings) -> &crate::stack::edge::EdgeSettings {
    static NONE: crate::stack::edge::EdgeSettings = crate::stack::edge::EdgeSettings { cdn: false, waf: None };
    a.scale.as_ref().map_or(&NONE, |s| &s.edge)
}

/// What the edge tier is asked for, on what exists.
fn edge_wanted<'a>(
    ctx: &'a Ctx,
    scale: &'a ScaleSettings,
    lb: &'a load_balancer::BalancerFound,
    stamp: &'a Stamp,
) -> edge::EdgeWanted<'a> {
    edge::EdgeWanted {
        stack: &ctx.settings.stack,
        id: &stamp.id,
        domain: domain(ctx),
        zone: zone(ctx),
        edge: &scale.edge,
        origin: lb.balancer.as_ref().map(|b| b.dns_name.as_str()),
        balancer: lb.balancer.as_ref().map(|b| b.arn.as_str()),
        secret: true,
    }
}

/// The records the stack keeps in its hosted zone, and what the zone has, when it names one.
async fn survey_dns(
    ctx: &Ctx,
    cloud: &Aws,
    lb: &load_balancer::BalancerFound,
    edge: &edge::EdgeFound,
    settings: &crate::stack::edge::EdgeSettings,
) -> Result<Option<(Vec<DnsRecord>, dns::ZoneFound)>> {
    let Some(zone) = zone(ctx) else { return Ok(None) };
    let certificates: Vec<&crate::cloud::aws::acm::Certificate> =
        lb.certificate.iter().chain(edge.certificate.iter()).collect();
    let alias = front(lb, edge, settings.cdn).map(|(_, name, zone)| (name, zone));
    let wanted = dns::wanted(domain(ctx), &certificates, alias);
    let found = dns::survey(cloud, zone, domain(ctx), &wanted).await?;
    Ok(Some((wanted, found)))
}

/// `tls.route53_zone`: the hosted zone vcctl keeps the stack's records in.
fn zone(ctx: &Ctx) -> Option<&str> {
    ctx.settings.tls.as_ref().and_then(|t| t.route53_zone.as_deref())
}

/// Where the stack answers: its domain, through the load balancer.
pub fn url(ctx: &Ctx) -> String {
    format!("https://{}", domain(ctx))
}

fn domain(ctx: &Ctx) -> &str {
    ctx.settings.tls.as_ref().map(|t| t.domain.as_str()).expect("`scale:` needs `tls:` (checked by the stack)")
}

/// The load balancer's security group: its id, or its name before it exists.
fn lb_group(found: &tiers::TiersFound) -> String {
    found.group(tiers::Tier::Lb).map_or_else(|| "(group lb)".into(), |g| g.id.clone())
}

/// The alarms the stack wants, on what exists (placeholders before it does).
fn wanted_alarms(ctx: &Ctx, scale: &ScaleSettings, s: &Survey) -> Vec<Alarm> {
    let balancer = s.lb.balancer.as_ref().map_or("(load balancer)", |b| b.arn.as_str());
    let target_group = s.lb.target_group.as_ref().map_or(load_balancer::PENDING_TARGET_GROUP, |g| g.arn.as_str());
    let watched = Watched { balancer, target_group, db: &s.data.pointer.serving.instance };
    let topic = ctx
        .settings
        .alert_email
        .as_ref()
        .map(|_| sns::arn(&s.cloud.region, &s.account, &names::alerts_topic(&ctx.settings.stack)));
    alerts::wanted(&ctx.settings.stack, &watched, &scale.database, topic.as_deref())
}

/// Every change `up` would make, tier by tier.
fn changes(
    ctx: &Ctx,
    scale: &ScaleSettings,
    s: &Survey,
    instances: &instances::InstancesWanted,
) -> Result<Vec<Change>> {
    let (stack, port) = (&ctx.settings.stack, ctx.settings.port);
    let tiers = tiers::plan(&s.names, &s.data, &scale.database, port)?;
    let mut out: Vec<Change> = tiers.into_iter().map(|c| Change::new(c.action, c.resource, c.detail)).collect();
    let balancer = load_balancer::plan(stack, domain(ctx), zone(ctx), &s.lb, &lb_group(&s.data));
    out.extend(balancer.into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
    let w = edge_wanted(ctx, scale, &s.lb, &s.stamp);
    out.extend(edge::plan(&w, &s.edge).into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
    if let Some((wanted, found)) = &s.dns {
        out.extend(dns::plan(wanted, found).into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
        if s.lb.balancer.is_none() {
            out.push(Change::new(
                Action::Create,
                format!("DNS record {} A", crate::cloud::aws::route53::normal(domain(ctx))),
                "alias of the load balancer, once it exists",
            ));
        }
    }
    let email = ctx.settings.alert_email.as_deref();
    let alarms = alerts::plan(&wanted_alarms(ctx, scale, s), &s.alerts, email);
    out.extend(alarms.into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
    let logs = log_group::plan(stack, scale.log_retention_days, s.logs.as_ref());
    out.extend(logs.into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
    if s.serving.is_none() {
        out.push(Change::new(
            Action::Create,
            "release",
            "the first: uploaded to the bucket, and `serving` pointed at it",
        ));
    }
    let planned = instances::plan(&names::InstanceNames::of(stack), instances, &s.instances);
    out.extend(planned.into_iter().map(|c| Change::new(c.action, c.resource, c.detail)));
    Ok(out)
}

/// What the stack wants of its instances, on what exists (placeholders before it does).
/// The image is the template's once there is one: a newer Debian image is no change.
async fn wanted_instances(
    ctx: &Ctx,
    a: &AwsSettings,
    scale: &ScaleSettings,
    s: &Survey,
) -> Result<instances::InstancesWanted> {
    let names = names::InstanceNames::of(&ctx.settings.stack);
    let instance_type = a.instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
    let (image, root_device) = match &s.instances.template {
        Some(t) => (t.launch.image.clone(), t.launch.root_device.clone()),
        None => {
            let arch = crate::providers::aws::architecture(instance_type);
            let i = ec2::latest_debian(&s.cloud.ec2, arch).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no official Debian 12 AMI (owner {}) for {arch} in {}",
                    ec2::DEBIAN_OWNER,
                    s.cloud.region
                )
            })?;
            (i.id, i.root_device)
        }
    };
    let db = s.data.db.as_ref();
    let endpoint = db.and_then(|d| d.endpoint.clone()).unwrap_or_else(|| "(the database's address)".into());
    let secret = db.and_then(|d| d.secret_arn.clone()).unwrap_or_else(|| "(the database's secret)".into());
    let user_data = crate::render::boot_script(&[
        ("stack", &ctx.settings.stack),
        ("bucket", &s.names.bucket),
        ("region", &s.cloud.region),
        ("port", &ctx.settings.port.to_string()),
        ("db_endpoint", &endpoint),
        ("db_name", &s.data.pointer.serving.database),
        ("db_secret", &secret),
        ("ingest_token", if ctx.settings.ingest_token { "yes" } else { "no" }),
        // Only once a distribution sends it: before, the load balancer's clients have none.
        ("origin_secret", if scale.edge.cdn && s.edge.distribution.is_some() { "yes" } else { "no" }),
        // The stack's bundle from the bucket, else the region's from AWS's trust store.
        ("database_ca", if release_bucket::database_ca(&ctx.settings).is_some() { "bucket" } else { "trust-store" }),
    ])?;
    let r = &scale.replicas;
    Ok(instances::InstancesWanted {
        // The group's instances boot from the bucket: only the public key is needed here.
        public_key: crate::providers::aws::reach::local_keys(ctx, a, false)?,
        policy: instances::policy(&s.names.bucket, &secret, &s.cloud.region, &s.account, &ctx.settings.stack),
        launch: Launch {
            image,
            instance_type: instance_type.to_string(),
            instance_profile: names.role.clone(),
            security_group: s.data.group(tiers::Tier::App).map_or_else(|| "(group app)".into(), |g| g.id.clone()),
            key_name: names.key_pair.clone(),
            user_data,
            http_tokens: "required".into(),
            root_device,
            root_gb: crate::providers::aws::ROOT_VOLUME_GB,
            root_encrypted: true,
            root_type: "gp3".into(),
            config: String::new(),
        }
        .hashed(),
        size: GroupSize { min: i32::from(r.min), desired: i32::from(r.desired), max: i32::from(r.max) },
        cpu_target: scale.cpu_target_pct,
        target_group: s
            .lb
            .target_group
            .as_ref()
            .map_or_else(|| load_balancer::PENDING_TARGET_GROUP.into(), |g| g.arn.clone()),
    })
}

/// `vcctl plan` of a `scale:` stack: the changes `up` would make, what is not built yet,
/// and the monthly cost.
pub async fn plan(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    let s = survey(ctx, a, crate::providers::aws::stamp(&ctx.settings)).await?;
    let instances = wanted_instances(ctx, a, scale, &s).await?;
    let changes = changes(ctx, scale, &s, &instances)?;
    let region = a.region();
    let instance_type = a.instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
    let root = crate::providers::aws::ROOT_VOLUME_GB as u32;
    let cost = crate::providers::aws::cost::covers(&region)
        .then(|| crate::providers::aws::cost::scaled(instance_type, root, scale));
    let mut trailer = vec![crate::providers::aws::ingest_token_line(ctx.settings.ingest_token)];
    match &cost {
        Some(c) => trailer.extend(crate::providers::aws::cost::describe(c)),
        None => trailer.push(format!("(no cost estimate: the price table covers eu-central-1, not {region})")),
    }
    let subject = crate::plan::Scope { stack: &ctx.settings.stack, shape: "scale", place: Some(&region) };
    let extra = json!({"region": region, "scale": scale, "cost": cost});
    Ok(crate::plan::print(&ctx.printer, &subject, &changes, crate::plan::extra(extra), &trailer))
}

/// `vcctl up` of a `scale:` stack: every tier made or repaired in order, the host kit and,
/// when nothing serves yet, the first release put in the bucket, then the group that boots
/// from it.
pub async fn up(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings, args: &crate::deploy::Options) -> Result<u8> {
    let (s, changed, changes, first) = converge(ctx, a, scale, args).await?;
    report_up(ctx, &s, scale.edge.cdn, changed, &changes);
    // Another release given while one serves: rolled out across the group, as `deploy` does.
    if let (false, Some(given), Some(serving)) = (first, args.artifact.as_deref(), &s.serving) {
        if crate::artifact::probe(given).await?.sha256 != serving.sha256 {
            return crate::providers::aws::scale::deploy::deploy(ctx, a, args).await;
        }
        ctx.printer.detail(format!("--artifact is release {}, which serves already", serving.release));
    }
    Ok(error::OK)
}

/// Brings the stack to its file: every tier, the host kit, the first release, the instances
/// (refreshed when their configuration changed, the database they serve from included).
/// What it found and did: the survey after, whether anything changed, the planned changes,
/// and whether it put the first release in.
async fn converge(
    ctx: &Ctx,
    a: &AwsSettings,
    scale: &ScaleSettings,
    args: &crate::deploy::Options,
) -> Result<(Survey, bool, Vec<Change>, bool)> {
    let stamp = Stamp { stack: ctx.settings.stack.clone(), id: crate::providers::aws::stack_id(ctx)? };
    let mut s = survey(ctx, a, stamp).await?;
    // The first release is built (or checked) before anything changes: a bad one changes nothing.
    let first = match &s.serving {
        None => Some(crate::artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?),
        Some(_) => None,
    };
    let changes = changes(ctx, scale, &s, &wanted_instances(ctx, a, scale, &s).await?)?;
    let mut changed = changes.iter().any(|c| c.is_change());
    if changed {
        apply(ctx, scale, &mut s).await?;
    }
    let bucket = s.names.bucket.clone();
    let kit = crate::providers::aws::scale::release_bucket::kit(&ctx.settings, &s.stamp.id)?;
    let token = ctx.settings.ingest_token;
    let written = ctx
        .printer
        .doing("the host kit in the bucket", release_bucket::stock_kit(&s.cloud.s3, &bucket, kit, token))
        .await?;
    changed |= !written.is_empty();
    if let Some(artifact) = &first {
        let receipt = ctx
            .printer
            .doing(
                &format!("release {} to the bucket", artifact.short_sha()),
                release_bucket::upload(&s.cloud.s3, &bucket, artifact),
            )
            .await?;
        release_bucket::point(&s.cloud.s3, &bucket, &receipt).await?;
        tiers::fault_point("release");
        s.serving = Some(release_bucket::Serving { release: receipt.name, sha256: receipt.sha256 });
    }
    s.data.db = Some(instances::database_ready(&s.cloud, &s.data.pointer.serving.instance, &ctx.printer).await?);
    let instances = wanted_instances(ctx, a, scale, &s).await?;
    let names = names::InstanceNames::of(&ctx.settings.stack);
    let planned = instances::plan(&names, &instances, &s.instances);
    instances::apply(&s.cloud, &names, &instances, &s.instances, &planned, &s.stamp, &ctx.printer).await?;
    s.instances = instances::survey(&s.cloud, &names, &s.stamp).await?;
    refresh_outdated(ctx, &s, &instances, args).await?;
    Ok((s, changed, changes, first.is_some()))
}

/// `vcctl deploy` of a `scale:` stack: the rolling deploy across the group
/// (`deploy.rs`).
pub async fn deploy(ctx: &Ctx, a: &AwsSettings, args: &crate::deploy::Options) -> Result<u8> {
    crate::providers::aws::scale::deploy::deploy(ctx, a, args).await
}

pub use deploy::{in_service, operations_on};

pub async fn rollback(ctx: &Ctx, a: &AwsSettings, args: &crate::deploy::RollbackOptions) -> Result<u8> {
    crate::providers::aws::scale::deploy::rollback(ctx, a, args).await
}

/// What `tls.domain` points at: the distribution once it serves (`cdn`), else the load
/// balancer, as (what, its DNS name, the hosted zone an alias of it names); `None` before
/// either exists.
fn front<'a>(
    lb: &'a load_balancer::BalancerFound,
    edge: &'a edge::EdgeFound,
    cdn: bool,
) -> Option<(&'static str, &'a str, &'a str)> {
    match (&edge.distribution, &lb.balancer) {
        (Some(d), _) if cdn => Some(("distribution", &d.domain_name, crate::cloud::aws::cloudfront::ALIAS_ZONE)),
        (_, Some(b)) => Some(("load balancer", &b.dns_name, &b.zone_id)),
        _ => None,
    }
}

/// What `up` says when it is done: where the stack answers, what serves, what to do next.
fn report_up(ctx: &Ctx, s: &Survey, cdn: bool, changed: bool, changes: &[Change]) {
    let domain = domain(ctx);
    let url = front(&s.lb, &s.edge, cdn)
        .map(|(what, name, _)| format!("https://{domain} (point {domain} at the {what} {name})"));
    let waiting = s.lb.certificate.as_ref().filter(|c| !c.issued()).map(|c| load_balancer::waiting(c, zone(ctx)));
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "changed": changed, "changes": changes, "database": s.data.db,
        "load_balancer": s.lb.balancer, "certificate": s.lb.certificate, "serving": s.serving,
        "group": s.instances.group,
    }));
    let mut said = vec![format!(
        "stack `{}` {}: {}",
        ctx.settings.stack,
        if changed { "is up" } else { "is as the file says" },
        url.unwrap_or_default()
    )];
    if let Some(r) = &s.serving {
        said.push(format!(
            "  release {} serves: every instance the group launches boots it from the bucket",
            r.release
        ));
    }
    if let Some(g) = &s.instances.group {
        said.push(format!(
            "  group {}: {} wanted ({}..{}), {} launched",
            g.name,
            g.desired,
            g.min,
            g.max,
            g.instances.len()
        ));
    }
    said.extend(waiting.map(|w| format!("  certificate for {domain}: {w}")));
    ctx.printer.info(said.join("\n"));
}

/// The group's instances of an older configuration replaced, once the rest is up (the new
/// ones boot the serving release from the bucket).
async fn refresh_outdated(
    ctx: &Ctx,
    s: &Survey,
    wanted: &instances::InstancesWanted,
    args: &crate::deploy::Options,
) -> Result<()> {
    let old = instances::outdated(wanted, &s.instances);
    let (Some(tg), Some(template)) = (s.lb.target_group.as_ref(), s.instances.template.as_ref()) else {
        return Ok(());
    };
    if old.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let r = refresh::Refresh {
        aws: &s.cloud,
        group: &names::InstanceNames::of(&ctx.settings.stack).group,
        launch_template: &template.id,
        target_group: &tg.arn,
        port: ctx.settings.port,
        config: &wanted.launch.config,
        // A new instance boots, installs and starts the service: minutes, not a deploy's seconds.
        timeout: args.health_timeout.max(std::time::Duration::from_secs(900)),
        parallel: usize::from(args.parallel.max(1)),
    };
    let replaced = refresh::run(&r, &old, &ctx.printer).await?;
    ctx.printer.info(format!(
        "instance refresh: {} instance(s) replaced in {} ({})",
        replaced.len(),
        crate::printer::format_duration(started.elapsed()),
        replaced.iter().map(|(o, n)| format!("{o} → {n}")).collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

/// The tiers in order: each needs what the one before made.
async fn apply(ctx: &Ctx, scale: &ScaleSettings, s: &mut Survey) -> Result<()> {
    let (stack, port, p) = (&ctx.settings.stack, ctx.settings.port, &ctx.printer);
    let planned = tiers::plan(&s.names, &s.data, &scale.database, port)?;
    if !planned.is_empty() {
        tiers::apply(&s.cloud, &s.names, &s.data, &planned, &scale.database, &s.stamp, p).await?;
        // What the next tiers name (the groups' ids), as made.
        s.data = tiers::survey(&s.cloud, &s.names, &s.stamp).await?;
    }
    let lb = lb_group(&s.data);
    // Twice at most: what the first pass makes known (a certificate ACM issues at once, for
    // a domain whose records vcctl keeps) can call for a listener the first plan could not.
    for _ in 0..2 {
        let planned = load_balancer::plan(stack, domain(ctx), zone(ctx), &s.lb, &lb);
        if !planned.iter().any(|c| c.is_change()) {
            break;
        }
        load_balancer::apply(&s.cloud, stack, domain(ctx), &mut s.lb, &planned, &lb, port, &s.stamp, p).await?;
    }
    edge_and_records(ctx, scale, s, p).await?;
    let wanted = wanted_alarms(ctx, scale, s);
    let email = ctx.settings.alert_email.as_deref();
    let planned = alerts::plan(&wanted, &s.alerts, email);
    alerts::apply(&s.cloud, stack, &s.alerts, &planned, &s.stamp, p).await?;
    // Before the instances, which ship their lines to it from their first boot.
    let planned = log_group::plan(stack, scale.log_retention_days, s.logs.as_ref());
    log_group::apply(&s.cloud, stack, &planned, &s.stamp, p).await
}

/// The edge and the records, in an order that refuses nobody: what will serve is made (the
/// distribution waits for its certificate, whose record the zone gets first), the records
/// move to it, what serves no more goes, and only then does the load balancer admit
/// CloudFront alone (with `cdn` turned off, everyone was admitted again by the tiers first).
async fn edge_and_records(ctx: &Ctx, scale: &ScaleSettings, s: &mut Survey, p: &crate::printer::Printer) -> Result<()> {
    let (stack, bucket) = (&ctx.settings.stack, s.names.bucket.clone());
    let clouds = edge::Clouds { here: &s.cloud, edge: &s.edge_cloud };
    let w = edge_wanted(ctx, scale, &s.lb, &s.stamp);
    let wanted = scale.edge.wanted();
    if wanted {
        edge::mark(&s.cloud.s3, &bucket, true, &s.edge).await?;
    }
    edge::apply(clouds, &w, Some(&bucket), &mut s.edge, edge::Phase::Make, &s.stamp, p).await?;
    // Twice at most: a certificate's record lets ACM issue it, which the distribution waits for.
    for _ in 0..2 {
        s.dns = survey_dns(ctx, &s.cloud, &s.lb, &s.edge, &scale.edge).await?;
        if let Some((wanted, found)) = &s.dns {
            dns::apply(&s.cloud, found, &dns::plan(wanted, found), p).await?;
        }
        if !scale.edge.cdn || s.edge.distribution.is_some() {
            break;
        }
        s.edge.certificate = edge::certificate(&s.edge_cloud, stack, domain(ctx)).await?;
        edge::apply(clouds, &w, Some(&bucket), &mut s.edge, edge::Phase::Make, &s.stamp, p).await?;
    }
    edge::apply(clouds, &w, Some(&bucket), &mut s.edge, edge::Phase::Remove, &s.stamp, p).await?;
    edge::mark(&s.cloud.s3, &bucket, wanted, &s.edge).await?;
    close_origin(scale, s, ctx.settings.port, p).await
}

/// Once the distribution serves and the domain points at it, the load balancer admits
/// CloudFront alone; with `cdn` turned off, everyone again (before the domain moves back).
async fn close_origin(scale: &ScaleSettings, s: &mut Survey, port: u16, p: &crate::printer::Printer) -> Result<()> {
    let only = s.edge.admits_only(&scale.edge);
    if only == s.data.edge_only {
        return Ok(());
    }
    s.data.edge_only = only;
    let planned = tiers::plan(&s.names, &s.data, &scale.database, port)?;
    tiers::apply(&s.cloud, &s.names, &s.data, &planned, &scale.database, &s.stamp, p).await?;
    s.data.groups = tiers::survey(&s.cloud, &s.names, &s.stamp).await?.groups;
    Ok(())
}

/// `vcctl destroy` of a `scale:` stack, after confirmation: the alarms and topic, the load
/// balancer tier, then the groups and the database after a final snapshot (named), unless
/// `keep_data`.
pub async fn destroy(ctx: &Ctx, a: &AwsSettings, keep_data: bool) -> Result<u8> {
    let s = survey(ctx, a, crate::providers::aws::stamp(&ctx.settings)).await?;
    let (p, group_names) = (&ctx.printer, names::InstanceNames::of(&ctx.settings.stack));
    p.info(format!("`vcctl destroy` deletes, of stack `{}`:", ctx.settings.stack));
    let doomed = doomed(&s, &group_names, keep_data);
    for line in &doomed {
        p.info(format!("  - {line}"));
    }
    let what = if keep_data { "delete the stack (the database kept)" } else { "delete the stack and its database" };
    ctx.confirm_destruction(what)?;
    alerts::destroy(&s.cloud, &s.alerts, p).await?;
    // The instances first: they hold the target group and the app security group.
    instances::destroy(&s.cloud, &group_names, &s.instances, p).await?;
    if let Some((wanted, found)) = &s.dns {
        dns::destroy(&s.cloud, wanted, found, p).await?;
    }
    let balancer = s.lb.balancer.as_ref().map(|b| b.arn.as_str());
    edge::destroy(edge::Clouds { here: &s.cloud, edge: &s.edge_cloud }, s.edge, balancer, p).await?;
    load_balancer::destroy(&s.cloud, &s.lb, p).await?;
    if let Some(g) = &s.logs {
        p.doing(&format!("deleting log group {}", g.name), crate::cloud::aws::logs::delete(&s.cloud.logs, &g.name))
            .await?;
    }
    let snapshots = tiers::destroy(&s.cloud, &s.names, &s.data, keep_data, p).await?;
    let mut kept: Vec<String> = snapshots.iter().map(|snap| format!("the database's final snapshot {snap}")).collect();
    if keep_data {
        for id in s.data.db.iter().map(|d| &d.id).chain(&s.data.others) {
            kept.push(format!("DB instance {id} and its security group (--keep-data)"));
        }
    }
    let removal = crate::report::Removal {
        stack: &ctx.settings.stack,
        shape: "scale",
        deleted: &doomed,
        kept: &kept,
        failed: &[],
    };
    crate::report::print_removal(
        p,
        &removal,
        crate::plan::extra(json!({"final_snapshot": snapshots.first(), "final_snapshots": snapshots})),
    );
    Ok(error::OK)
}

/// Everything `destroy` deletes, in words, for its confirmation: what the survey found,
/// nothing less (the bucket holds the ingest token, the role the instances' rights).
fn doomed(s: &Survey, names: &names::InstanceNames, keep_data: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = &s.instances.group {
        out.push(format!("Auto Scaling group {} and its {} instance(s)", g.name, g.instances.len()));
    }
    if let Some(t) = &s.instances.template {
        out.push(format!("launch template {}", t.name));
    }
    if s.instances.key_pair.is_some() {
        out.push(format!("key pair {}", names.key_pair));
    }
    if s.instances.role.exists() || s.instances.profile.is_some() {
        out.push(format!("IAM role {} of the instances, its instance profile and its policy", names.role));
    }
    if s.instances.deploy_role.is_some() {
        out.push(format!("CI deploy role {} (the account's GitHub OIDC provider stays)", names.deploy_role));
    }
    if let Some(b) = &s.lb.balancer {
        out.push(format!("load balancer {} and its listeners, the target group", b.dns_name));
    }
    out.extend(edge::doomed(&s.edge));
    if let Some(c) = &s.lb.certificate {
        out.push(format!("certificate {} ({})", c.arn, c.domain));
    }
    if let Some((wanted, found)) = &s.dns {
        let ours: Vec<String> = dns::as_made(wanted, found).iter().map(|w| format!("{} {}", w.name, w.kind)).collect();
        if !ours.is_empty() {
            out.push(format!("DNS records {} (the hosted zone stays)", ours.join(", ")));
        }
    }
    if let Some(b) = &s.data.bucket {
        out.push(format!("bucket {}: every release, the host kit and the ingest token", b.name));
    }
    for tier in tiers::TIERS.iter().filter(|t| !(keep_data && **t == tiers::Tier::Db)) {
        if let Some(g) = s.data.group(*tier) {
            out.push(format!("security group {} ({})", g.name, g.id));
        }
    }
    if let Some(g) = &s.logs {
        out.push(format!("log group {}: every instance's lines ({} MB)", g.name, g.stored_bytes / 1_000_000));
    }
    let topic = if s.alerts.topic.is_some() { " and the alert topic" } else { "" };
    out.push(format!("{} alarm(s){topic}", s.alerts.alarms.len()));
    if let (Some(d), false) = (&s.data.db, keep_data) {
        out.push(format!(
            "DB instance {} and every event in it, after a final snapshot (kept), and its subnet group",
            d.id
        ));
    }
    for id in s.data.others.iter().filter(|_| !keep_data) {
        out.push(format!("DB instance {id}, kept after a restore, after a final snapshot (kept)"));
    }
    out
}

/// `vcctl status` of a `scale:` stack: the load balancer and its address, the certificate,
/// the group (desired, in service, healthy targets) and each instance, the release the
/// bucket serves, the database and the alarms. Exit 0 when as many targets are healthy as
/// the group wants (at least one), else 1.
pub async fn status(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    let s = survey(ctx, a, crate::providers::aws::stamp(&ctx.settings)).await?;
    let domain = domain(ctx);
    let alarming: Vec<&str> =
        s.alerts.alarms.iter().filter(|a| a.state.as_deref() == Some("ALARM")).map(|a| a.name.as_str()).collect();
    let targets = match &s.lb.target_group {
        Some(tg) => crate::cloud::aws::elb::targets(&s.cloud.elb, &tg.arn).await?,
        None => Vec::new(),
    };
    let healthy = targets.iter().filter(|t| t.state == "healthy").count();
    let wanted = s.instances.group.as_ref().map_or(0, |g| g.desired.max(0) as usize);
    let serving = wanted > 0 && healthy >= wanted;
    let ids: Vec<String> = s.instances.group.iter().flat_map(|g| &g.instances).map(|i| i.id.clone()).collect();
    let app = s.data.group(tiers::Tier::App);
    let releases = crate::providers::aws::scale::deploy::releases(ctx, a, &s.cloud, app, &ids).await;
    let on_instances = releases.as_ref().map(Vec::as_slice).unwrap_or_default();
    let db = database_view(&s).await?;
    let edge = edge::view(edge::Clouds { here: &s.cloud, edge: &s.edge_cloud }, &s.edge).await?;
    let kept = match &s.data.bucket {
        Some(b) => release_bucket::releases(&s.cloud.s3, &b.name).await?,
        None => Vec::new(),
    };
    release_bucket::remember(&ctx.settings.state_dir, &kept);
    let kept: Vec<&str> = kept.iter().map(|r| r.name.as_str()).collect();
    let body = json!({
        "url": format!("https://{domain}"), "load_balancer": s.lb.balancer,
        "certificate": s.lb.certificate, "database": s.data.db, "alarms": s.alerts.alarms, "alarming": alarming,
        "group": s.instances.group, "targets": targets, "healthy_targets": healthy, "release": s.serving,
        "instances": on_instances, "instances_unread": releases.as_ref().err(),
        "database_storage_used_gb": db.used_gb, "last_snapshot": db.snapshot,
        "database_serving": s.data.pointer.serving, "databases_kept": s.data.pointer.kept,
        "db_instances_kept": s.data.others, "releases_kept": kept,
        "serving": serving, "edge": edge,
    });
    let mut lines = vec![format!("url:      https://{domain}")];
    lines.push(match (&s.lb.balancer, front(&s.lb, &s.edge, edge_settings(a).cdn)) {
        (Some(b), Some(("load balancer", _, _))) => format!("  load balancer: {} (point {domain} at it)", b.dns_name),
        (Some(b), _) => format!("  load balancer: {} (behind the distribution)", b.dns_name),
        (None, _) => "  load balancer: none (`vcctl up` makes it)".into(),
    });
    lines.push(match &s.lb.certificate {
        Some(c) if c.issued() => format!("  certificate: issued ({})", c.arn),
        Some(c) => format!("  certificate: {}", load_balancer::waiting(c, zone(ctx))),
        None => "  certificate: none".into(),
    });
    lines.extend(edge::lines(&s.edge, &edge, edge_settings(a)));
    lines.extend(group_lines(&s, &targets, healthy, &releases));
    lines.push(format!("  releases kept: {} (`vcctl rollback --to NAME` takes any)", kept.join(", ")));
    lines.extend(database_lines(&s, &db));
    let states: Vec<String> =
        s.alerts.alarms.iter().map(|a| format!("{} {}", a.name, a.state.as_deref().unwrap_or("?"))).collect();
    lines.push(format!("  alarms ({}): {}", states.len(), states.join(", ")));
    let region = a.region();
    let subject =
        crate::status::Subject { stack: &ctx.settings.stack, shape: "scale", place: Some(&region), healthy: serving };
    Ok(crate::status::print(&ctx.printer, &subject, body, &lines))
}

/// What `status` says of the database beside what RDS describes: the storage used (from
/// its free storage in CloudWatch) and its newest snapshot.
struct DatabaseView {
    used_gb: Option<f64>,
    snapshot: Option<crate::cloud::aws::rds::DbSnapshot>,
}

async fn database_view(s: &Survey) -> Result<DatabaseView> {
    let Some(d) = &s.data.db else { return Ok(DatabaseView { used_gb: None, snapshot: None }) };
    let dims = [("DBInstanceIdentifier", d.id.as_str())];
    let free = crate::cloud::aws::cloudwatch::latest_average(&s.cloud.cloudwatch, "AWS/RDS", "FreeStorageSpace", &dims)
        .await?;
    let gb = 1024.0 * 1024.0 * 1024.0;
    let used_gb = free.map(|free| ((f64::from(d.storage_gb) - free / gb).max(0.0) * 10.0).round() / 10.0);
    let snapshot = crate::cloud::aws::rds::latest_snapshot(&s.cloud.rds, &d.id).await?;
    Ok(DatabaseView { used_gb, snapshot })
}

fn database_lines(s: &Survey, view: &DatabaseView) -> Vec<String> {
    let Some(d) = &s.data.db else { return vec!["  database: none".into()] };
    let used = view.used_gb.map_or_else(|| " (use not measured yet)".to_string(), |u| format!(", {u} GB used"));
    let mut out = vec![format!(
        "  database: {} {} ({}), {} GB{used}, {}{}",
        d.id,
        d.status,
        d.instance_class,
        d.storage_gb,
        if d.multi_az { "Multi-AZ" } else { "Single-AZ" },
        d.endpoint.as_ref().map(|e| format!(", at {e}")).unwrap_or_default()
    )];
    out.push(match &view.snapshot {
        Some(snap) => format!("    last snapshot: {} ({}, {})", snap.id, snap.kind, snap.taken_at),
        None => "    last snapshot: none yet (RDS takes the first in its backup window)".into(),
    });
    let p = &s.data.pointer;
    if p.serving.database != crate::cloud::aws::rds::DATABASE || !p.kept.is_empty() {
        out.push(format!("    serving from database {} (restored)", p.serving));
    }
    let kept: Vec<String> = p
        .kept
        .iter()
        .map(ToString::to_string)
        .chain(s.data.others.iter().filter(|o| !p.kept.iter().any(|k| k.instance == **o)).cloned())
        .collect();
    if !kept.is_empty() {
        out.push(format!(
            "    kept: {} (`vcctl restore --database ID` goes back, `--delete-old` deletes them)",
            kept.join(", ")
        ));
    }
    out
}

/// The group, its instances with their health as the load balancer sees it, and the release
/// they boot.
fn group_lines(
    s: &Survey,
    targets: &[crate::cloud::aws::elb::TargetHealth],
    healthy: usize,
    releases: &Result<Vec<crate::providers::aws::scale::deploy::OnInstance>, String>,
) -> Vec<String> {
    let Some(g) = &s.instances.group else { return vec!["  group: none (`vcctl up` makes it)".into()] };
    let in_service = g.instances.iter().filter(|i| i.lifecycle == "InService").count();
    let mut out = vec![format!(
        "  group {}: {} wanted ({}..{}), {in_service} in service, {healthy} healthy behind the load balancer",
        g.name, g.desired, g.min, g.max
    )];
    for i in &g.instances {
        let target = targets.iter().find(|t| t.id == i.id);
        let health = target.map_or("not registered".to_string(), |t| match &t.reason {
            Some(r) => format!("{} ({r})", t.state),
            None => t.state.clone(),
        });
        let release = match releases {
            Ok(r) => match r.iter().find(|o| o.instance == i.id) {
                Some(o) => match (&o.release, o.running) {
                    (Some(name), true) => format!(", release {name}"),
                    (Some(name), false) => format!(", release {name} (its service is not running)"),
                    (None, _) => ", no release".into(),
                },
                None => String::new(),
            },
            Err(_) => String::new(),
        };
        out.push(format!("    {} {} {}: {health}{release}", i.id, i.zone, i.lifecycle));
    }
    if let Err(why) = releases {
        out.push(format!("    (the instances' releases not read: {why})"));
    }
    out.push(match &s.serving {
        Some(r) => format!("  release: {} (the bucket's `serving`: what every instance boots)", r.release),
        None => "  release: none in the bucket (`vcctl up` puts the first)".into(),
    });
    out
}

/// The other commands on a `scale:` stack: refused, before anything is changed.
pub async fn refuse(ctx: &Ctx, a: &AwsSettings, command: &str) -> Result<u8> {
    single_box_absent(ctx, a).await?;
    Err(Failure::invalid(
        format!("`{command}` does not run on a `scale:` stack (`{}`)", ctx.settings.stack),
        Some("docs/reference/cli.md says which shapes each command works on".into()),
    )
    .into())
}

/// The clients and the account, once a stack that runs as a single box is ruled out: it does
/// not become a group in place (refused, with the way to move its data).
async fn single_box_absent(ctx: &Ctx, a: &AwsSettings) -> Result<(Aws, String)> {
    let (cloud, account) = aws::connect(ctx, a).await?;
    if let Some(i) = ec2::find_instance(&cloud.ec2, &ctx.settings.stack).await? {
        return Err(Failure::invalid(
            format!(
                "stack `{}` runs as a single box (instance {}), and `scale:` in `{}` would make it a group: a stack does not change shape in place",
                ctx.settings.stack,
                i.id,
                ctx.settings.stack_file.display()
            ),
            Some(format!("remove `scale:` to keep the single box, or move its data: {}", migration(&ctx.settings.stack))),
        )
        .into());
    }
    Ok((cloud, account))
}
