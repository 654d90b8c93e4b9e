//! An `aws` stack with `scale:`: an Auto Scaling group behind an Application Load Balancer,
//! its database on RDS. Built so far, planned, made, repaired and destroyed: the network and
//! data tier (`scaled.rs`: the chained security groups, the DB subnet group, RDS) and the
//! load balancer tier (`edge.rs`: the certificate, the target group, the load balancer and
//! its listeners); `plan` also gives the monthly cost. Not built yet: the Auto Scaling group
//! and the release bucket; `up` says so after the tiers (exit 3): nothing serves the stack.

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use super::aws::{self, DEFAULT_INSTANCE_TYPE};
use crate::cloud::aws::{Aws, Stamp, ec2};
use crate::edge;
use crate::error::{self, Failure};
use crate::scaled::{self, Names};
use crate::stack::AwsSettings;
use crate::stack::scale::ScaleSettings;

/// How a single box becomes a group: its data moves, the stack does not.
const MIGRATION: &str = "`vcctl db dump > events.dump` on the single-box stack, `vcctl up` of a new stack \
     file with `scale:`, `vcctl db restore events.dump` there, then `vcctl destroy` of the single box \
     (docs/aws.md, Scaling out)";

/// What `up` does not build yet, as it says.
const NOT_BUILT: &str = "the Auto Scaling group (the instances) and the release bucket";

/// `vcctl plan` of a `scale:` stack: the changes `up` would make to the tier, what is not
/// built yet, and the monthly cost.
pub async fn plan(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    let (cloud, stamp) = connect(ctx, a).await?;
    let names = Names::of(&ctx.settings.stack);
    let found = scaled::survey(&cloud, &names, &stamp).await?;
    let mut changes = scaled::plan(&names, &found, &scale.database, ctx.settings.port)?;
    let domain = domain(ctx);
    let edge_found = edge::survey(&cloud, &ctx.settings.stack, domain, &stamp).await?;
    changes.extend(edge::plan(&ctx.settings.stack, domain, &edge_found, &lb_group(&found)));
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

fn domain(ctx: &Ctx) -> &str {
    ctx.settings.tls.as_ref().map(|t| t.domain.as_str()).expect("`scale:` needs `tls:` (checked by the stack)")
}

/// The load balancer's security group: its id, or its name before it exists.
fn lb_group(found: &scaled::Found) -> String {
    found.group(scaled::Tier::Lb).map_or_else(|| "(group lb)".into(), |g| g.id.clone())
}

/// `vcctl up` of a `scale:` stack: the tier made or repaired, then exit 3, since the rest
/// is not built and nothing serves the stack.
pub async fn up(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    let (cloud, _) = connect(ctx, a).await?;
    let stamp = Stamp { stack: ctx.settings.stack.clone(), id: aws::stack_id(ctx)? };
    let names = Names::of(&ctx.settings.stack);
    let mut found = scaled::survey(&cloud, &names, &stamp).await?;
    let (stack, domain, port) = (&ctx.settings.stack, domain(ctx), ctx.settings.port);
    let mut edge_found = edge::survey(&cloud, stack, domain, &stamp).await?;
    let mut changes = scaled::plan(&names, &found, &scale.database, port)?;
    changes.extend(edge::plan(stack, domain, &edge_found, &lb_group(&found)));
    let changed = changes.iter().any(|c| c.action != '!');
    if changed {
        scaled::apply(&cloud, &names, &mut found, &scale.database, port, &stamp, &ctx.printer).await?;
        edge::apply(&cloud, stack, domain, &mut edge_found, &lb_group(&found), port, &stamp, &ctx.printer).await?;
    }
    let db = crate::cloud::aws::rds::find(&cloud.rds, &names.db).await?;
    let url = edge_found.balancer.as_ref().map(|b| format!("https://{domain} (the load balancer: {})", b.dns_name));
    let waiting = edge_found.certificate.as_ref().filter(|c| !c.issued()).map(edge::waiting);
    ctx.printer.json(&json!({
        "stack": stack, "changed": changed, "changes": changes, "database": db, "load_balancer": edge_found.balancer,
        "certificate": edge_found.certificate, "not_built": NOT_BUILT,
    }));
    let mut said = vec![format!("stack `{stack}`: {}", url.unwrap_or_default())];
    said.extend(waiting.map(|w| format!("certificate for {domain}: {w}")));
    ctx.printer.info(said.join("\n"));
    Err(Failure::invalid(
        format!("stack `{stack}`: the load balancer, the security groups and the database are {}; vcctl does not build {NOT_BUILT} yet, so nothing serves it", if changed { "made" } else { "as the file says" }),
        Some("`vcctl destroy` removes them (the database after a final snapshot); docs/aws.md, Scaling out".into()),
    )
    .into())
}

/// `vcctl destroy` of a `scale:` stack, after confirmation: the tier, the database after a
/// final snapshot (named), unless `keep_data`.
pub async fn destroy(ctx: &Ctx, a: &AwsSettings, keep_data: bool) -> Result<u8> {
    let (cloud, stamp) = connect(ctx, a).await?;
    let names = Names::of(&ctx.settings.stack);
    let found = scaled::survey(&cloud, &names, &stamp).await?;
    let edge_found = edge::survey(&cloud, &ctx.settings.stack, domain(ctx), &stamp).await?;
    let p = &ctx.printer;
    p.info(format!("`vcctl destroy` deletes, of stack `{}`:", ctx.settings.stack));
    if let Some(b) = &edge_found.balancer {
        p.info(format!("  - load balancer {} and its listeners, the target group", b.dns_name));
    }
    if let Some(c) = &edge_found.certificate {
        p.info(format!("  - certificate {} ({})", c.arn, c.domain));
    }
    for g in found.groups.iter().flatten() {
        p.info(format!("  - security group {} ({})", g.name, g.id));
    }
    if let (Some(d), false) = (&found.db, keep_data) {
        p.info(format!(
            "  - DB instance {} and every event in it, after a final snapshot (kept), and its subnet group",
            d.id
        ));
    }
    ctx.confirm_destruction(if keep_data {
        "delete the stack (the database kept)"
    } else {
        "delete the stack and its database"
    })?;
    edge::destroy(&cloud, &edge_found, p).await?;
    let snapshot = scaled::destroy(&cloud, &names, &found, keep_data, p).await?;
    p.json(
        &json!({"stack": ctx.settings.stack, "destroyed": true, "kept_data": keep_data, "final_snapshot": snapshot}),
    );
    match &snapshot {
        Some(s) => p.out(format!("stack `{}` destroyed; the database's final snapshot: {s}", ctx.settings.stack)),
        None => p.out(format!("stack `{}` destroyed", ctx.settings.stack)),
    }
    Ok(error::OK)
}

/// The other commands on a `scale:` stack: refused, before anything is changed.
pub async fn refuse(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    connect(ctx, a).await?;
    Err(Failure::invalid(
        format!(
            "vcctl does not run `scale:` stacks yet ({NOT_BUILT} are not built); stack `{}` has nothing to run it on",
            ctx.settings.stack
        ),
        Some("`vcctl plan`, `vcctl up` and `vcctl destroy` work on it; remove `scale:` for a single box".into()),
    )
    .into())
}

/// The clients and the stamp, once a stack that runs as a single box is ruled out.
async fn connect(ctx: &Ctx, a: &AwsSettings) -> Result<(Aws, Stamp)> {
    let cloud = single_box_absent(ctx, a).await?;
    Ok((cloud, Stamp::of(&ctx.settings)))
}

/// A stack that runs as a single box does not become a group in place: refused, with the way
/// to move its data.
async fn single_box_absent(ctx: &Ctx, a: &AwsSettings) -> Result<Aws> {
    let (cloud, _) = aws::connect(ctx, a).await?;
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
    Ok(cloud)
}
