//! Instance refresh, driven by vcctl: when the launch template changed (image, type, user
//! data, …), `up` replaces the group's instances of an older configuration, `--parallel` at
//! a time. For each batch the group grows by as many instances, launched from the new
//! template; once each new one is in service and healthy in the target group, as many old
//! ones are deregistered (their requests in flight finish: the deregistration delay) and
//! terminated, the group shrinking back. A new instance that is not healthy in time is
//! terminated, the group shrinks back, the old instances keep serving, and the refresh
//! stops there (exit 6). AWS's own `StartInstanceRefresh` would do the same without the
//! stack's health rules; vcctl keeps one rule for deploys and refreshes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cloud::aws::{Aws, autoscaling, elb};
use crate::error::Failure;
use crate::printer::Printer;

/// What a refresh works on.
pub struct Refresh<'a> {
    pub aws: &'a Aws,
    pub group: &'a str,
    pub launch_template: &'a str,
    pub target_group: &'a str,
    pub port: u16,
    /// The configuration the new instances run (their `vcctl:config` tag).
    pub config: &'a str,
    /// How long a new instance has to boot and become healthy.
    pub timeout: Duration,
    pub parallel: usize,
}

/// How often the group and the target group are asked.
const POLL: Duration = Duration::from_secs(5);
/// The target group's deregistration delay, and some: how long a drain may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(330);

/// Replaces `old`, batch by batch; (old instance, what replaced it), in order.
pub async fn run(r: &Refresh<'_>, old: &[String], p: &Printer) -> Result<Vec<(String, String)>> {
    let mut replaced = Vec::new();
    for (n, batch) in old.chunks(r.parallel.max(1)).enumerate() {
        p.info(format!("\nrefresh {} of {}: {}", n + 1, old.len().div_ceil(r.parallel.max(1)), batch.join(", ")));
        let (new, size) = add_healthy(r, batch.len(), p).await?;
        for id in batch {
            let step = p.step(format!("draining and terminating {id}"));
            elb::deregister(&r.aws.elb, r.target_group, std::slice::from_ref(id), r.port).await?;
            drained(r, id).await?;
            autoscaling::terminate_instance(&r.aws.autoscaling, id).await?;
            step.done("");
        }
        // Each termination took the desired count down by one: the maximum is the stack's again.
        autoscaling::set_capacity(&r.aws.autoscaling, r.group, r.launch_template, size.0, size.1).await?;
        replaced.extend(batch.iter().cloned().zip(new));
    }
    Ok(replaced)
}

/// Grows the group by `count` and waits until as many new instances are healthy behind the
/// load balancer: them, and the group's (desired, maximum) before; on failure, terminates
/// them and shrinks the group back.
async fn add_healthy(r: &Refresh<'_>, count: usize, p: &Printer) -> Result<(Vec<String>, (i32, i32))> {
    let Some(g) = autoscaling::find(&r.aws.autoscaling, r.group).await? else {
        anyhow::bail!("group {} is gone", r.group)
    };
    let before: BTreeSet<String> = g.instances.iter().map(|i| i.id.clone()).collect();
    let more = count as i32;
    autoscaling::set_capacity(
        &r.aws.autoscaling,
        r.group,
        r.launch_template,
        g.desired + more,
        g.max.max(g.desired + more),
    )
    .await?;
    let step = p.step(format!("launching {count} instance(s) of configuration {}", r.config));
    match healthy_new(r, &before, count).await {
        Ok(new) => {
            step.done(new.join(", "));
            Ok((new, (g.desired, g.max)))
        }
        Err((new, diagnosis)) => {
            step.fail("unhealthy");
            // Out of the target group first: no request reaches an instance being terminated
            // (AWS would deregister it as it goes; the emulator keeps it). Each terminated
            // instance takes the desired count down; the maximum as it was.
            if !new.is_empty() {
                let _ = elb::deregister(&r.aws.elb, r.target_group, &new, r.port).await;
            }
            for id in &new {
                let _ = autoscaling::terminate_instance(&r.aws.autoscaling, id).await;
            }
            autoscaling::set_capacity(&r.aws.autoscaling, r.group, r.launch_template, g.desired, g.max).await?;
            Err(Failure::RefreshFailed {
                config: r.config.to_string(),
                instances: if new.is_empty() { "no new instance".into() } else { new.join(", ") },
                diagnosis,
            }
            .into())
        }
    }
}

/// The new instances (not in `before`), once `count` of them are in service and healthy in
/// the target group; else those seen, and why not.
async fn healthy_new(
    r: &Refresh<'_>,
    before: &BTreeSet<String>,
    count: usize,
) -> std::result::Result<Vec<String>, (Vec<String>, String)> {
    let started = Instant::now();
    loop {
        let g = autoscaling::find(&r.aws.autoscaling, r.group).await.ok().flatten();
        let members = g.map(|g| g.instances).unwrap_or_default();
        let new: Vec<String> = members.iter().filter(|i| !before.contains(&i.id)).map(|i| i.id.clone()).collect();
        let in_service: BTreeSet<&str> =
            members.iter().filter(|i| i.lifecycle == "InService").map(|i| i.id.as_str()).collect();
        let targets = elb::targets(&r.aws.elb, r.target_group).await.unwrap_or_default();
        let healthy = new
            .iter()
            .filter(|id| in_service.contains(id.as_str()))
            .filter(|id| targets.iter().any(|t| &t.id == *id && t.state == "healthy"))
            .count();
        // Error injection for the tests: new instances that never become healthy.
        if std::env::var("VCCTL_FAULT").as_deref() == Ok("refresh-unhealthy") && !new.is_empty() {
            return Err((new, "VCCTL_FAULT=refresh-unhealthy: the new instance is taken as unhealthy".into()));
        }
        if healthy >= count {
            return Ok(new);
        }
        if started.elapsed() > r.timeout {
            let states: Vec<String> = new
                .iter()
                .map(|id| {
                    let t = targets.iter().find(|t| &t.id == id);
                    format!("{id}: {}", t.map_or("not registered", |t| t.state.as_str()))
                })
                .collect();
            let why = if states.is_empty() { "no instance launched".to_string() } else { states.join(", ") };
            return Err((new, format!("not healthy after {}: {why}", crate::printer::format_duration(r.timeout))));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Once the load balancer no longer drains `id` (its requests in flight are done).
async fn drained(r: &Refresh<'_>, id: &str) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < DRAIN_TIMEOUT {
        let targets = elb::targets(&r.aws.elb, r.target_group).await?;
        if !targets.iter().any(|t| t.id == id && t.state == "draining") {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    anyhow::bail!("instance {id} was still draining after {}", crate::printer::format_duration(DRAIN_TIMEOUT))
}
