//! `vcctl status` on an AWS stack: the infrastructure (instance, address, firewall, alarms)
//! from the AWS APIs, then the service as the other providers show it (releases, what a
//! rollback would pick, health on the host and from here, the last hour's KPIs) from the
//! instance, over SSH (opened on demand). `--json`: docs/reference/cli.md.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::address::Address;
use crate::cloud::aws::ec2::Instance;
use crate::cloud::aws::{Aws, address, cloudwatch, ec2, security_group, snapshot, sns, volume};
use crate::context::Ctx;
use crate::providers::aws::connect;
use crate::providers::aws::names;
use crate::providers::aws::single::remote_of;
use crate::stack::AwsSettings;
use crate::targets::StatusView;

pub async fn status(ctx: &Ctx, a: &AwsSettings) -> Result<u8> {
    let (aws, account) = connect(ctx, a).await?;
    let stack = &ctx.settings.stack;
    let instance = ec2::find_instance(&aws.ec2, stack).await?;
    let sg = security_group::find(&aws.ec2, stack).await?;
    let alarms = cloudwatch::find(&aws.cloudwatch, stack).await?;
    let elastic_ip = address::find(&aws.ec2, stack).await?;
    let data_volume = volume::find(&aws.ec2, stack, "data").await?;
    let last_backup = snapshot::list(&aws.ec2, stack).await?.pop();
    let topic_arn = sns::arn(&a.region(), &account, &names::BoxNames::of(stack).topic);
    let topic = sns::find(&aws.sns, &topic_arn).await?;
    let running = instance.as_ref().is_some_and(|i| i.state == "running");
    let (service, healthy) = match on_host(ctx, a, &aws, running).await {
        Ok(view) => (ServiceView { lines: view.lines, json: view.json }, view.healthy),
        Err(why) => {
            let ip = instance.as_ref().and_then(|i| i.public_ip.as_deref());
            let (mut view, healthy) = from_here(ctx, &aws, ip).await;
            view.lines.insert(0, format!("host:     not read: {why}"));
            view.json["host_error"] = json!(why);
            (view, healthy)
        }
    };
    let body = json!({
        "region": a.region(), "instance": instance,
        "elastic_ip": elastic_ip, "data_volume": data_volume, "last_backup": last_backup, "alerts": topic, "security_group": sg, "alarms": alarms, "service": service.json,
    });
    let mut out = Vec::new();
    out.extend(infrastructure(instance.as_ref(), elastic_ip.as_ref()));
    match &data_volume {
        Some(v) => out.push(format!(
            "data:     volume {} {} GB {} ({}{}), {}",
            v.id,
            v.size_gb,
            v.volume_type,
            if v.encrypted { "encrypted" } else { "NOT encrypted" },
            v.instance_id.as_deref().map_or(", not attached".to_string(), |i| format!(", attached to {i}")),
            v.state
        )),
        None => out.push("data:     no data volume (PostgreSQL on the root volume; `vcctl up` adds one)".into()),
    }
    match &last_backup {
        Some(b) => out.push(format!("backup:   {} taken {} ({}, {})", b.id, b.started, b.state, b.progress)),
        None => out.push("backup:   none yet (`vcctl backup` takes a snapshot)".into()),
    }
    if let Some(g) = &sg {
        out.push(format!("firewall: {} ({})", g.id, g.name));
        for r in &g.rules {
            out.push(format!("  {r}"));
        }
    }
    for a in &alarms {
        out.push(format!("alarm:    {} {}", a.name, a.state.clone().unwrap_or_default()));
    }
    match &topic {
        None => out.push("alerts:   nobody is notified (add `alerts: {email: ...}` to the stack file)".into()),
        Some(t) if t.subscriptions.is_empty() => {
            out.push(format!("alerts:   {} has no subscription: run `vcctl up`", t.arn))
        }
        Some(t) => {
            for s in &t.subscriptions {
                let state = if s.confirmed() { "confirmed" } else { "NOT confirmed yet: open the link AWS mailed" };
                out.push(format!("alerts:   {} {} ({state})", s.protocol, s.endpoint));
            }
        }
    }
    out.extend(service.lines);
    // Healthy is something seen: an instance running and a service answering healthy.
    let region = a.region();
    let subject = crate::status::Subject { stack, shape: "aws", place: Some(&region), healthy: running && healthy };
    Ok(crate::status::print(&ctx.printer, &subject, body, &out))
}

/// The instance and its address, in words.
fn infrastructure(instance: Option<&Instance>, elastic_ip: Option<&Address>) -> Vec<String> {
    let Some(i) = instance else { return vec!["instance: none (run `vcctl up`)".into()] };
    let ip = i.public_ip.as_deref().unwrap_or("none");
    let stable = match elastic_ip {
        Some(e) if e.instance_id.as_deref() == Some(i.id.as_str()) => format!(" (Elastic IP {})", e.allocation_id),
        Some(e) => {
            format!(" (Elastic IP {} {} is not associated with it: run `vcctl up`)", e.public_ip, e.allocation_id)
        }
        None => " (no Elastic IP: it changes at a stop and start; `vcctl up` allocates one)".into(),
    };
    vec![
        format!(
            "instance: {} {} ({}), AMI {}, launched {}",
            i.id,
            i.state,
            i.instance_type,
            i.ami,
            i.launch_time.clone().unwrap_or_default()
        ),
        format!("address:  {ip}{stable}"),
    ]
}

/// The service as the instance shows it, over SSH (opened on demand); why not, otherwise.
async fn on_host(ctx: &Ctx, a: &AwsSettings, aws: &Aws, running: bool) -> Result<StatusView, String> {
    if !running {
        return Err("the instance is not running".into());
    }
    if aws.emulated && std::env::var("VCCTL_TEST_AWS_HOST").is_err() {
        return Err("AWS_ENDPOINT_URL is set (an emulator): its instances are not real hosts".into());
    }
    let work = async {
        let remote = remote_of(ctx, a, aws).await?;
        let mut target = crate::targets::remote::connect(ctx, remote, Duration::ZERO).await?;
        let view = target.status().await;
        target.close().await;
        view
    };
    crate::providers::aws::on_demand::around(ctx, a, aws, "vcctl status", work).await.map_err(|e| format!("{e:#}"))
}

/// How the service looks, in lines and as JSON.
struct ServiceView {
    lines: Vec<String>,
    json: serde_json::Value,
}

/// The service at the instance's address, checked from here only (no SSH).
async fn from_here(ctx: &Ctx, aws: &Aws, ip: Option<&str>) -> (ServiceView, bool) {
    let not_checked = |why: String| {
        (
            ServiceView {
                lines: vec![format!("service:  not checked: {why}")],
                json: json!({"checked": false, "reason": why}),
            },
            false,
        )
    };
    let Some(ip) = ip else { return not_checked("no instance address".into()) };
    if aws.emulated {
        return not_checked("AWS_ENDPOINT_URL is set (an emulator), its addresses are not real".into());
    }
    let (base, trust) = crate::targets::remote::public_endpoint(&ctx.settings, ip);
    let client = match crate::http_client::client_for(&trust) {
        Ok(c) => c,
        Err(e) => return not_checked(format!("{e:#}")),
    };
    match crate::health::status(&client, &base).await {
        Ok((code, s)) => {
            let healthy = crate::health::is_healthy(code, &s);
            let line = format!(
                "service:  {} (HTTP {code}) at {base}, v{} ({}), database {}",
                s.status, s.version, s.git_sha, s.database
            );
            (ServiceView { lines: vec![line], json: json!({"checked": true, "http": code, "status": s}) }, healthy)
        }
        Err(e) => {
            let line = format!("service:  unreachable at {base}: {e}");
            (ServiceView { lines: vec![line], json: json!({"checked": true, "error": e}) }, false)
        }
    }
}
