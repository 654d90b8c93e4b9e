//! An `aws` stack with `scale:`: an Auto Scaling group behind an Application Load Balancer,
//! its database on RDS. Built so far: the schema, `plan`'s list of what the stack is made of
//! and its monthly cost, and the refusal to turn a running single box into a group in place.
//! `up` (and every other command) does not build or run them yet, and says so before
//! touching anything.

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use super::aws::{self, DEFAULT_INSTANCE_TYPE};
use crate::cloud::aws::ec2;
use crate::error::{self, Failure};
use crate::stack::AwsSettings;
use crate::stack::scale::ScaleSettings;

/// How a single box becomes a group: its data moves, the stack does not.
const MIGRATION: &str = "`vcctl db dump > events.dump` on the single-box stack, `vcctl up` of a new stack \
     file with `scale:`, `vcctl db restore events.dump` there, then `vcctl destroy` of the single box \
     (docs/aws.md, Scaling out)";

/// `vcctl plan` of a `scale:` stack: what it is made of, and what it costs a month.
pub async fn plan(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings) -> Result<u8> {
    single_box_absent(ctx, a).await?;
    let region = aws::region(a);
    let instance_type = a.instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
    let root = crate::provision::ROOT_VOLUME_GB as u32;
    let cost = crate::cost::covers(&region).then(|| crate::cost::scaled(instance_type, root, scale));
    let parts = parts(scale, instance_type, ctx.settings.tls.as_ref().map(|t| t.domain.as_str()).unwrap_or("?"));
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "region": region, "scale": scale, "parts": parts, "cost": cost, "built": false,
    }));
    let mut lines = vec![format!("stack `{}` in {region}, scaled out, is made of:", ctx.settings.stack)];
    lines.extend(parts.iter().map(|p| format!("  + {p}")));
    match &cost {
        Some(c) => lines.extend(crate::cost::describe(c)),
        None => lines.push(format!("(no cost estimate: the price table covers eu-central-1, not {region})")),
    }
    lines.push("vcctl does not build these yet: `vcctl up` refuses this stack and changes nothing".into());
    ctx.printer.out(lines.join("\n"));
    Ok(error::PLAN_HAS_CHANGES)
}

/// `vcctl up`, and every command but `plan`, on a `scale:` stack: refused, before anything
/// is made or changed.
pub async fn refuse(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    single_box_absent(ctx, a).await?;
    Err(Failure::invalid(
        format!(
            "vcctl does not build `scale:` stacks yet (the load balancer, the Auto Scaling group and RDS); nothing was made for stack `{}`",
            ctx.settings.stack
        ),
        Some("remove `scale:` for a single box; `vcctl plan` shows what a scaled stack is made of and its monthly cost".into()),
    )
    .into())
}

/// A stack that runs as a single box does not become a group in place: refused, with the way
/// to move its data.
async fn single_box_absent(ctx: &Ctx, a: &AwsSettings) -> Result<()> {
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
    Ok(())
}

/// What a scaled stack is made of, one line each.
fn parts(scale: &ScaleSettings, instance_type: &str, domain: &str) -> Vec<String> {
    let r = scale.replicas;
    let db = &scale.database;
    let sizing = match scale.cpu_target_pct {
        Some(pct) => format!("target tracking at {pct} % average CPU"),
        None => "a fixed size".into(),
    };
    vec![
        format!("Application Load Balancer in two or more zones: HTTPS (ACM certificate for {domain}), HTTP redirected"),
        "target group: health check GET /api/status, deregistration delay sized to the service's drain".into(),
        format!("Auto Scaling group of {instance_type}: min {}, desired {}, max {}, {sizing}", r.min, r.desired, r.max),
        "launch template: IMDSv2, encrypted gp3, the instance profile, user data fetching the serving release".into(),
        format!(
            "RDS for PostgreSQL {}: {} GB, {}, encrypted, not public, {} days of backups, deletion protection",
            db.instance_class,
            db.storage_gb,
            if db.multi_az { "Multi-AZ" } else { "Single-AZ" },
            db.backup_retention_days
        ),
        "security groups: load balancer 443 and 80 from anywhere; app port from the load balancer only; RDS 5432 from the app only".into(),
        "S3 bucket for releases: versioned, encrypted, public access blocked".into(),
    ]
}
