//! An `aws` stack with `scale:`: an Auto Scaling group behind an Application Load Balancer,
//! its database on RDS. Built so far, planned, made, repaired and destroyed: the network and
//! data tier (`scaled.rs`: the chained security groups, the DB subnet group, RDS), the load
//! balancer tier (`edge.rs`: the certificate, the target group, the load balancer and its
//! listeners) and the alarms with their topic (`alerts.rs`); `plan` also gives the monthly
//! cost. Not built yet: the Auto Scaling group and the release bucket; `up` says so after
//! the tiers (exit 3): nothing serves the stack.

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use super::aws::{self, DEFAULT_INSTANCE_TYPE};
use crate::alerts::{self, Watched};
use crate::cloud::aws::cloudwatch::Alarm;
use crate::cloud::aws::{Aws, Stamp, ec2, sns};
use crate::edge;
use crate::error::{self, Failure};
use crate::scaled::{self, Change, Names};
use crate::stack::AwsSettings;
use crate::stack::scale::ScaleSettings;

/// How a single box becomes a group: its data moves, the stack does not.
const MIGRATION: &str = "`vcctl db dump > events.dump` on the single-box stack, `vcctl up` of a new stack \
     file with `scale:`, `vcctl db restore events.dump` there, then `vcctl destroy` of the single box \
     (docs/aws.md, Scaling out)";

/// What `up` does not build yet, as it says.
const NOT_BUILT: &str = "the Auto Scaling group (the instances) and the releases in the bucket";

/// Everything of the stack that exists, read once.
struct Survey {
    cloud: Aws,
    account: String,
    stamp: Stamp,
    names: Names,
    data: scaled::Found,
    edge: edge::Found,
    alerts: alerts::Found,
}

async fn survey(ctx: &Ctx, a: &AwsSettings, stamp: Stamp) -> Result<Survey> {
    let (cloud, account) = single_box_absent(ctx, a).await?;
    let names = Names::of(&ctx.settings.stack, &stamp.id);
    let data = scaled::survey(&cloud, &names, &stamp).await?;
    let edge = edge::survey(&cloud, &ctx.settings.stack, domain(ctx), &stamp).await?;
    let alerts = alerts::survey(&cloud, &ctx.settings.stack, &account, &stamp).await?;
    Ok(Survey { cloud, account, stamp, names, data, edge, alerts })
}

fn domain(ctx: &Ctx) -> &str {
    ctx.settings.tls.as_ref().map(|t| t.domain.as_str()).expect("`scale:` needs `tls:` (checked by the stack)")
}

/// The load balancer's security group: its id, or its name before it exists.
fn lb_group(found: &scaled::Found) -> String {
    found.group(scaled::Tier::Lb).map_or_else(|| "(group lb)".into(), |g| g.id.clone())
}

/// The alarms the stack wants, on what exists (placeholders before it does).
fn wanted_alarms(ctx: &Ctx, scale: &ScaleSettings, s: &Survey) -> Vec<Alarm> {
    let balancer = s.edge.balancer.as_ref().map_or("(load balancer)", |b| b.arn.as_str());
    let target_group = s.edge.target_group.as_ref().map_or("(target group)", |g| g.arn.as_str());
    let watched = Watched { balancer, target_group, db: &s.names.db };
    let topic = ctx
        .settings
        .alert_email
        .as_ref()
        .map(|_| sns::arn(&s.cloud.region, &s.account, &alerts::topic_name(&ctx.settings.stack)));
    alerts::wanted(&ctx.settings.stack, &watched, &scale.database, topic.as_deref())
}

/// Every change `up` would make, tier by tier.
fn changes(ctx: &Ctx, scale: &ScaleSettings, s: &Survey) -> Result<Vec<Change>> {
    let (stack, port) = (&ctx.settings.stack, ctx.settings.port);
    let mut out = scaled::plan(&s.names, &s.data, &scale.database, port)?;
    out.extend(edge::plan(stack, domain(ctx), &s.edge, &lb_group(&s.data)));
    let email = ctx.settings.alert_email.as_deref();
    out.extend(alerts::plan(&wanted_alarms(ctx, scale, s), &s.alerts, email));
    Ok(out)
}

/// `vcctl plan` of a `scale:` stack: the changes `up` would make, what is not built yet,
/// and the monthly cost.
pub async fn plan(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    let s = survey(ctx, a, Stamp::of(&ctx.settings)).await?;
    let changes = changes(ctx, scale, &s)?;
    let region = aws::region(a);
    let instance_type = a.instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
    let root = crate::provision::ROOT_VOLUME_GB as u32;
    let cost = crate::cost::covers(&region).then(|| crate::cost::scaled(instance_type, root, scale));
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "region": region, "scale": scale, "changes": changes, "cost": cost,
        "not_built": NOT_BUILT,
    }));
    let real = changes.iter().filter(|c| c.action != '!').count();
    let mut lines = match real {
        0 => vec![format!("stack `{}`: what vcctl builds matches the stack file", ctx.settings.stack)],
        n => vec![format!("stack `{}` in {region}: `vcctl up` would make {n} change(s):", ctx.settings.stack)],
    };
    lines.extend(changes.iter().map(|c| format!("  {} {}: {}", c.action, c.what, c.detail)));
    lines.push(format!("not built by vcctl yet: {NOT_BUILT}"));
    match &cost {
        Some(c) => lines.extend(crate::cost::describe(c)),
        None => lines.push(format!("(no cost estimate: the price table covers eu-central-1, not {region})")),
    }
    ctx.printer.out(lines.join("\n"));
    Ok(if real == 0 { error::OK } else { error::PLAN_HAS_CHANGES })
}

/// `vcctl up` of a `scale:` stack: the tiers made or repaired, then exit 3, since the rest
/// is not built and nothing serves the stack.
pub async fn up(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    let stamp = Stamp { stack: ctx.settings.stack.clone(), id: aws::stack_id(ctx)? };
    let mut s = survey(ctx, a, stamp).await?;
    let changes = changes(ctx, scale, &s)?;
    let changed = changes.iter().any(|c| c.action != '!');
    if changed {
        apply(ctx, scale, &mut s).await?;
    }
    let domain = domain(ctx);
    let db = crate::cloud::aws::rds::find(&s.cloud.rds, &s.names.db).await?;
    let url = s.edge.balancer.as_ref().map(|b| format!("https://{domain} (the load balancer: {})", b.dns_name));
    let waiting = s.edge.certificate.as_ref().filter(|c| !c.issued()).map(edge::waiting);
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "changed": changed, "changes": changes, "database": db,
        "load_balancer": s.edge.balancer, "certificate": s.edge.certificate, "not_built": NOT_BUILT,
    }));
    let mut said = vec![format!("stack `{}`: {}", ctx.settings.stack, url.unwrap_or_default())];
    said.extend(waiting.map(|w| format!("certificate for {domain}: {w}")));
    ctx.printer.info(said.join("\n"));
    Err(Failure::invalid(
        format!(
            "stack `{}`: the load balancer, the security groups, the database and the alarms are {}; vcctl does not build {NOT_BUILT} yet, so nothing serves it",
            ctx.settings.stack,
            if changed { "made" } else { "as the file says" }
        ),
        Some("`vcctl destroy` removes them (the database after a final snapshot); docs/aws.md, Scaling out".into()),
    )
    .into())
}

/// The tiers in order: each needs what the one before made.
async fn apply(ctx: &Ctx, scale: &ScaleSettings, s: &mut Survey) -> Result<()> {
    let (stack, port, p) = (&ctx.settings.stack, ctx.settings.port, &ctx.printer);
    scaled::apply(&s.cloud, &s.names, &mut s.data, &scale.database, port, &s.stamp, p).await?;
    let lb = lb_group(&s.data);
    edge::apply(&s.cloud, stack, domain(ctx), &mut s.edge, &lb, port, &s.stamp, p).await?;
    let wanted = wanted_alarms(ctx, scale, s);
    let email = ctx.settings.alert_email.as_deref();
    alerts::apply(&s.cloud, stack, email, &wanted, &s.alerts, &s.stamp, p).await
}

/// `vcctl destroy` of a `scale:` stack, after confirmation: the alarms and topic, the load
/// balancer tier, then the groups and the database after a final snapshot (named), unless
/// `keep_data`.
pub async fn destroy(ctx: &Ctx, a: &AwsSettings, keep_data: bool) -> Result<u8> {
    let s = survey(ctx, a, Stamp::of(&ctx.settings)).await?;
    let p = &ctx.printer;
    p.info(format!("`vcctl destroy` deletes, of stack `{}`:", ctx.settings.stack));
    if let Some(b) = &s.edge.balancer {
        p.info(format!("  - load balancer {} and its listeners, the target group", b.dns_name));
    }
    if let Some(c) = &s.edge.certificate {
        p.info(format!("  - certificate {} ({})", c.arn, c.domain));
    }
    for g in s.data.groups.iter().flatten() {
        p.info(format!("  - security group {} ({})", g.name, g.id));
    }
    let topic = if s.alerts.topic.is_some() { " and the alert topic" } else { "" };
    p.info(format!("  - {} alarm(s){topic}", s.alerts.alarms.len()));
    if let (Some(d), false) = (&s.data.db, keep_data) {
        p.info(format!(
            "  - DB instance {} and every event in it, after a final snapshot (kept), and its subnet group",
            d.id
        ));
    }
    let what = if keep_data { "delete the stack (the database kept)" } else { "delete the stack and its database" };
    ctx.confirm_destruction(what)?;
    alerts::destroy(&s.cloud, &s.alerts, p).await?;
    edge::destroy(&s.cloud, &s.edge, p).await?;
    let snapshot = scaled::destroy(&s.cloud, &s.names, &s.data, keep_data, p).await?;
    p.json(
        &json!({"stack": ctx.settings.stack, "destroyed": true, "kept_data": keep_data, "final_snapshot": snapshot}),
    );
    match &snapshot {
        Some(snap) => p.out(format!("stack `{}` destroyed; the database's final snapshot: {snap}", ctx.settings.stack)),
        None => p.out(format!("stack `{}` destroyed", ctx.settings.stack)),
    }
    Ok(error::OK)
}

/// `vcctl status` of a `scale:` stack: the load balancer and its address, the certificate,
/// the database, the alarms and their states, and what is not built. Exit 1: nothing serves
/// the stack while vcctl does not build its group.
pub async fn status(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    let s = survey(ctx, a, Stamp::of(&ctx.settings)).await?;
    let domain = domain(ctx);
    let alarming: Vec<&str> =
        s.alerts.alarms.iter().filter(|a| a.state.as_deref() == Some("ALARM")).map(|a| a.name.as_str()).collect();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "url": format!("https://{domain}"), "load_balancer": s.edge.balancer,
        "certificate": s.edge.certificate, "database": s.data.db, "alarms": s.alerts.alarms, "alarming": alarming,
        "serving": false, "not_built": NOT_BUILT,
    }));
    let mut lines = vec![format!("stack `{}`: https://{domain}", ctx.settings.stack)];
    lines.push(match &s.edge.balancer {
        Some(b) => format!("  load balancer: {} (point {domain} at it)", b.dns_name),
        None => "  load balancer: none (`vcctl up` makes it)".into(),
    });
    lines.push(match &s.edge.certificate {
        Some(c) if c.issued() => format!("  certificate: issued ({})", c.arn),
        Some(c) => format!("  certificate: {}", edge::waiting(c)),
        None => "  certificate: none".into(),
    });
    lines.push(match &s.data.db {
        Some(d) => format!(
            "  database: {} {} ({}), {} GB, {}{}",
            d.id,
            d.status,
            d.instance_class,
            d.storage_gb,
            if d.multi_az { "Multi-AZ" } else { "Single-AZ" },
            d.endpoint.as_ref().map(|e| format!(", at {e}")).unwrap_or_default()
        ),
        None => "  database: none".into(),
    });
    let states: Vec<String> =
        s.alerts.alarms.iter().map(|a| format!("{} {}", a.name, a.state.as_deref().unwrap_or("?"))).collect();
    lines.push(format!("  alarms ({}): {}", states.len(), states.join(", ")));
    lines.push(format!("  not built by vcctl yet: {NOT_BUILT}; nothing serves the stack"));
    ctx.printer.info(lines.join("\n"));
    Ok(error::ERROR)
}

/// The other commands on a `scale:` stack: refused, before anything is changed.
pub async fn refuse(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    single_box_absent(ctx, a).await?;
    Err(Failure::invalid(
        format!(
            "vcctl does not run `scale:` stacks yet ({NOT_BUILT} are not built); stack `{}` has nothing to run it on",
            ctx.settings.stack
        ),
        Some("`vcctl plan`, `up`, `status` and `destroy` work on it; remove `scale:` for a single box".into()),
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
            Some(format!("remove `scale:` to keep the single box, or move its data: {MIGRATION}")),
        )
        .into());
    }
    Ok((cloud, account))
}
