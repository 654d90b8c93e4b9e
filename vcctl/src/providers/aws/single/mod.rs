//! The AWS provider's `up`, `plan`, `status` and `destroy`: scripts over `provision` and the
//! thin SDK wrappers in `cloud::aws`.

pub mod backup;
pub mod preflight;
pub mod provision;
pub mod scheduled;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::backup::RecoveryPoint;
use crate::cloud::aws::{Aws, Stamp, address, cloudwatch, ec2, iam, security_group, sns, volume};
use crate::context::Ctx;
use crate::error::Failure;
use crate::host::Host;
use crate::providers::aws::names::BoxNames;
use crate::providers::aws::{DEFAULT_INSTANCE_TYPE, DEFAULT_SSH_USER, connect, on_demand};
use crate::render;
use crate::stack::AwsSettings;
use crate::targets::remote::Remote;
use provision::BoxWanted;

/// How long `up` waits for its instance to run and have a public address.
const INSTANCE_READY_TIMEOUT: Duration = Duration::from_secs(600);

fn wanted(ctx: &Ctx, a: &AwsSettings, account: &str, id: &str, public_key: String) -> Result<BoxWanted> {
    let stack = &ctx.settings.stack;
    if a.admin_cidrs.iter().any(|c| c == "0.0.0.0/0" || c == "::/0") {
        ctx.printer.warn(
            "SSH (22) and Prometheus (9090) are open to the whole internet (aws.allow_admin_from_anywhere: true)",
        );
    }
    for private in a.admin_cidrs.iter().filter(|c| crate::stack::yaml::is_private(c)) {
        ctx.printer.warn(format!(
            "admin_cidrs has the private network {private} (`{}`): AWS sees your public address, so SSH from it reaches \
             the instance only through a VPN or Direct Connect into its VPC",
            ctx.settings.stack_file.display()
        ));
    }
    let region = a.region();
    Ok(BoxWanted {
        stack: stack.clone(),
        stamp: Stamp { stack: stack.clone(), id: id.to_string() },
        names: BoxNames::of(stack),
        instance_type: a.instance_type.clone().unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.into()),
        public_key,
        vpc_id: a.vpc_id.clone(),
        subnet_id: a.subnet_id.clone(),
        termination_protection: a.termination_protection,
        rules: provision::rules(&a.admin_cidrs, ctx.settings.port, ctx.settings.tls.is_some()),
        policy: with_statements(iam::instance_policy(stack), on_demand::sweep_statements(&region, account, stack)),
        user_data: render::user_data(stack, ctx.settings.port)?,
        data_volume_gb: a.data_volume_gb,
        alerts: ctx.settings.alert_email.clone().map(|email| provision::Alerts {
            topic_arn: sns::arn(&region, account, &BoxNames::of(stack).topic),
            email,
        }),
        backup: a.backup.clone().map(|b| scheduled::BackupWanted::of(stack, id, account, b)),
        region,
    })
}

/// What `plan` and `up` both start from: the clients, what the stack wants, what exists,
/// and the changes between them: tagging an older vcctl's resources with the stack id
/// first. Refused (exit 3) when anything found is not this stack's.
async fn survey(
    ctx: &Ctx,
    a: &AwsSettings,
    id: Option<&str>,
    artifact: Option<PathBuf>,
    logs_in: bool,
) -> Result<(Aws, BoxWanted, provision::BoxFound, Vec<provision::Change>)> {
    if let Some(placeholder) = &a.placeholder {
        return Err((**placeholder).clone().into());
    }
    let public_key = crate::providers::aws::reach::local_keys(ctx, a, logs_in)?;
    let (aws, account) = connect(ctx, a).await?;
    let w = wanted(ctx, a, &account, id.unwrap_or("(made by the first up)"), public_key)?;
    // Plan never builds: the artifact is --artifact, or this checkout's last release build.
    let artifact = artifact.or_else(|| Some(ctx.root.join("target/release/vehicleconnect")).filter(|p| p.is_file()));
    preflight::check(&aws, &w, artifact.as_deref(), &ctx.settings.stack_file).await?;
    let step = ctx.printer.step("reading what exists");
    let topic_arn = sns::arn(&w.region, &account, &w.names.topic);
    let found = provision::find(&aws, &w.names, &w.stack, &topic_arn).await?;
    step.done("");
    let mut changes = provision::ownership(&w.names, &w.stack, &found, id, &ctx.settings.stack_file)?;
    provision::check_data_volume(&w, &found, &ctx.settings.stack_file)?;
    if id.is_some() {
        changes.extend(provision::plan(&w, &found, &w.region));
    } else {
        changes = provision::plan(&w, &found, &w.region);
    }
    Ok((aws, w, found, changes))
}

/// Said by `plan` and `up` alike, from the first: nothing needs to exist for it to be true.
fn warn_of_plain_http(ctx: &Ctx) {
    if ctx.settings.tls.is_none() {
        ctx.printer.warn(format!(
            "stack `{}` has no `tls:` section: vehicles' tokens and VINs cross the internet unencrypted \
             (docs/aws.md, HTTPS)",
            ctx.settings.stack
        ));
    }
}

pub async fn plan(ctx: &Ctx, a: &AwsSettings, artifact: Option<&Path>) -> Result<u8> {
    warn_of_plain_http(ctx);
    let id = ctx.settings.stack_id.as_deref();
    let (_, w, found, changes) = survey(ctx, a, id, artifact.map(Path::to_path_buf), false).await?;
    let held = provision::held_temporary_rules(&found);
    for (rule, until) in &held {
        ctx.printer
            .info(format!("temporary SSH rule {rule}: held until {until}, left alone (removed once it expires)"));
    }
    if id.is_none() {
        ctx.printer.info(format!(
            "stack `{}` has no `id:` yet: `vcctl up` makes one and writes it into `{}`",
            w.stack,
            ctx.settings.stack_file.display()
        ));
    }
    let held: Vec<_> = held.iter().map(|(rule, until)| json!({"rule": rule, "held_until": until})).collect();
    let cost = crate::providers::aws::cost::covers(&w.region).then(|| {
        crate::providers::aws::cost::single_box(
            &w.instance_type,
            crate::providers::aws::ROOT_VOLUME_GB as u32,
            w.data_volume_gb as u32,
        )
    });
    let mut trailer = vec![crate::providers::aws::ingest_token_line(ctx.settings.ingest_token)];
    match &cost {
        Some(c) => trailer.extend(crate::providers::aws::cost::describe(c)),
        None => trailer.push(format!("(no cost estimate: the price table covers eu-central-1, not {})", w.region)),
    }
    let subject = crate::plan::Scope { stack: &w.stack, shape: "aws", place: Some(&w.region) };
    let extra = json!({"region": w.region, "temporary_ssh_rules": held, "cost": cost, "settings": ctx.settings});
    Ok(crate::plan::print(&ctx.printer, &subject, &changes, crate::plan::extra(extra), &trailer))
}

/// `policy` with `more` statements.
fn with_statements(mut policy: serde_json::Value, more: Vec<serde_json::Value>) -> serde_json::Value {
    policy["Statement"].as_array_mut().expect("a list").extend(more);
    policy
}

/// The provisioning half of `vcctl up`: the instance to deploy to (and the clients to reach
/// it with), or `None` on an emulator (its instances are not real hosts).
pub async fn up(ctx: &Ctx, a: &AwsSettings, artifact: Option<&Path>) -> Result<Option<(Aws, Remote)>> {
    let started = Instant::now();
    warn_of_plain_http(ctx);
    let id = crate::providers::aws::stack_id(ctx)?;
    let (aws, w, found, changes) = survey(ctx, a, Some(&id), artifact.map(Path::to_path_buf), true).await?;
    let instance_id = if changes.is_empty() {
        found.instance.as_ref().map(|i| i.id.clone())
    } else {
        provision::apply(&aws, &w, &found, &changes, &ctx.printer).await?
    };
    let step = ctx.printer.step("waiting for the instance to run, with a public address");
    let instance = match ec2::wait_ready(&aws.ec2, &w.stack, INSTANCE_READY_TIMEOUT).await {
        Ok(i) => {
            step.done(i.public_ip.as_deref().unwrap_or_default());
            Some(i)
        }
        Err(e) => {
            step.fail("not ready");
            return Err(e);
        }
    };
    ctx.printer.json(&json!({
        "stack": w.stack,
        "region": w.region,
        "changed": !changes.is_empty(),
        "changes": changes,
        "instance": instance,
        "elapsed_s": started.elapsed().as_secs_f64(),
    }));
    if changes.is_empty() {
        ctx.printer.info(format!("stack `{}`: no changes; everything matches the stack file", w.stack));
    } else {
        ctx.printer.info(format!(
            "\nstack `{}` in {}: {} change(s) made in {}",
            w.stack,
            w.region,
            changes.len(),
            crate::printer::format_duration(started.elapsed())
        ));
    }
    let ip = instance.as_ref().and_then(|i| i.public_ip.clone()).unwrap_or_else(|| "(no public address yet)".into());
    ctx.printer.out(format!("instance {} at {ip}", instance_id.unwrap_or_default()));
    if aws.emulated {
        ctx.printer
            .info("AWS_ENDPOINT_URL is set (an emulator): its instances are not real hosts, so no deploy follows");
        return Ok(None);
    }
    let remote = remote_of(ctx, a, &aws).await?;
    Ok(Some((aws, remote)))
}

/// The stack's instance as a host to deploy to: its public address, its login, and its host
/// key from the console output when cloud-init has printed it there.
pub async fn remote_of(ctx: &Ctx, a: &AwsSettings, aws: &Aws) -> Result<Remote> {
    let stack = &ctx.settings.stack;
    let instance = ec2::find_instance(&aws.ec2, stack).await?.filter(|i| i.state != "terminated");
    let Some(instance) = instance else {
        return Err(Failure::invalid(
            format!("stack `{stack}` has no instance in {}", a.region()),
            Some("`vcctl up` creates it".to_string()),
        )
        .into());
    };
    let what = format!("instance {}", instance.id);
    crate::providers::aws::owners::ensure_ours(&instance.owner, &what, stack, ctx.settings.stack_id.as_deref())?;
    let Some(ip) = instance.public_ip.clone() else {
        anyhow::bail!("instance {} ({}) has no public address yet; try again in a minute", instance.id, instance.state);
    };
    let ip = crate::providers::aws::reach::address(aws, &instance.id, ip)?;
    let identity = crate::providers::aws::reach::identity_path(ctx, a);
    let mut target = Host::target(
        &ctx.settings,
        &ip,
        a.ssh_user.as_deref().unwrap_or(DEFAULT_SSH_USER),
        22,
        Some(&identity.to_string_lossy()),
    );
    // A key known before the first contact: the stack's, else the one the instance printed
    // at boot. Once pinned, known_hosts decides.
    target.host_key = match &a.host_key {
        Some(key) => Some(key.clone()),
        None if target.is_known() => None,
        None => Some(crate::providers::aws::reach::console_host_key(ctx, aws, &instance.id).await?),
    };
    let (public_url, trust) = crate::targets::remote::public_endpoint(&ctx.settings, &ip);
    // Prometheus is reached through SSH (`vcctl tunnel prometheus`) unless the stack keeps
    // it open to admin networks.
    let prometheus_listen = match a.ssh_access {
        crate::stack::SshAccess::AdminCidrs => "0.0.0.0:9090",
        crate::stack::SshAccess::OnDemand => "127.0.0.1:9090",
    };
    let data_volume = volume::find(&aws.ec2, stack, "data").await?.map(|v| v.id);
    Ok(Remote {
        target,
        public_url,
        prometheus_listen: prometheus_listen.into(),
        trust,
        data_volume,
        check_outside: true,
    })
}

/// Refuses a protected stack (exit 9), lists what would go (and what `--keep-data` keeps),
/// and asks.
fn confirm_destroy(
    ctx: &Ctx,
    a: &AwsSettings,
    found: &provision::BoxFound,
    names: &BoxNames,
    keep: Keep,
    points: &[RecoveryPoint],
) -> Result<()> {
    let stack = &ctx.settings.stack;
    if let (Some(i), Some(true)) = (&found.instance, found.termination_protection) {
        return Err(Failure::Protected {
            message: format!("instance {} of stack `{stack}` has termination protection on; nothing was deleted", i.id),
            hint: Some(format!(
                "set `aws.termination_protection: false` in `{}` and run `vcctl up`, then destroy",
                ctx.settings.stack_file.display()
            )),
        }
        .into());
    }
    ctx.printer.info(format!("`vcctl destroy` deletes, in {}:", a.region()));
    let kept = kept(found, keep);
    for (claim, _) in found.claims(names) {
        if !kept.iter().any(|(k, _)| *k == claim.what) {
            ctx.printer.info(format!("  - {}", claim.what));
        }
    }
    if !points.is_empty() {
        ctx.printer.info("  the backup vault's recovery points:");
        for p in points {
            let id = p.snapshot.as_deref().unwrap_or(&p.arn);
            ctx.printer.info(format!("      recovery point {id} of {} ({:.1} GB, {})", p.created, p.size_gb, p.status));
        }
    }
    for (k, why) in &kept {
        ctx.printer.info(format!("and keeps ({why}): {k}"));
    }
    ctx.confirm_destruction(&format!("delete every AWS resource of stack `{stack}` in {}", a.region()))
}

/// What `destroy` keeps.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// `--keep-data`: the data volume and the Elastic IP.
    pub data: bool,
    /// Not `--delete-backups`: the backup vault and its recovery points.
    pub backups: bool,
}

/// What `destroy` keeps, as the claims name it, and why: with `--keep-data`, the data
/// volume (the events) and the Elastic IP (so the address, and the DNS records naming it,
/// survive a new instance); without `--delete-backups`, the backup vault that holds
/// recovery points.
fn kept(found: &provision::BoxFound, keep: Keep) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if let (true, Some(v)) = (keep.data, &found.data_volume) {
        out.push((format!("data volume {} ({} GB)", v.id, v.size_gb), "--keep-data"));
    }
    if let (true, Some(a)) = (keep.data, &found.address) {
        out.push((format!("Elastic IP {} ({})", a.public_ip, a.allocation_id), "--keep-data"));
    }
    // An empty vault protects nothing: it goes with the stack.
    if let (true, Some(v)) = (keep.backups, found.backup.vault.as_ref().filter(|v| v.recovery_points > 0)) {
        let what = format!("backup vault {} and its {} recovery point(s)", v.name, v.recovery_points);
        out.push((what, "`--delete-backups` deletes them"));
    }
    out
}

/// `destroy --instance ID`: terminates one instance that carries the stack's tags (one of
/// several, which stop every other command), after a confirmation naming it. The stack's
/// other resources stay; the next `up` finds the one left.
pub async fn destroy_instance(ctx: &Ctx, a: &AwsSettings, id: &str) -> Result<u8> {
    let (aws, _) = connect(ctx, a).await?;
    let stack = &ctx.settings.stack;
    let Some(instance) = ec2::describe_instance(&aws.ec2, id).await? else {
        return Err(Failure::invalid(format!("no instance {id} in {}", a.region()), None).into());
    };
    let tag = |k: &str| instance.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    if tag(crate::cloud::aws::TAG_STACK).as_deref() != Some(stack.as_str()) {
        return Err(Failure::invalid(
            format!("instance {id} does not carry the tags of stack `{stack}`: vcctl terminates only its own"),
            None,
        )
        .into());
    }
    let launched = instance.launch_time().map(|t| t.to_string()).unwrap_or_default();
    ctx.printer.info(format!(
        "`vcctl destroy --instance` terminates instance {id} of stack `{stack}` (launched {launched}, stack id {}); \
         the stack's other resources stay",
        tag(crate::cloud::aws::TAG_STACK_ID).unwrap_or_else(|| "none".into())
    ));
    ctx.confirm_destruction(&format!("terminate instance {id}"))?;
    ctx.printer.doing(&format!("terminating {id}"), ec2::terminate(&aws.ec2, id)).await?;
    ctx.printer.json(&json!({"stack": stack, "terminated": id}));
    ctx.printer.out(id);
    Ok(0)
}

pub async fn destroy(ctx: &Ctx, a: &AwsSettings, keep_data: bool, delete_backups: bool) -> Result<u8> {
    let keep = Keep { data: keep_data, backups: !delete_backups };
    let (aws, account) = connect(ctx, a).await?;
    let stack = ctx.settings.stack.clone();
    let names = BoxNames::of(&stack);
    let found = provision::find(&aws, &names, &stack, &sns::arn(&a.region(), &account, &names.topic)).await?;
    // Only what is this stack's: a refusal here deletes nothing at all.
    provision::ownership(&names, &stack, &found, ctx.settings.stack_id.as_deref(), &ctx.settings.stack_file)?;
    if found.is_empty() {
        let removal = crate::report::Removal { stack: &stack, shape: "aws", deleted: &[], kept: &[], failed: &[] };
        crate::report::print_removal(&ctx.printer, &removal, serde_json::Map::new());
        return Ok(0);
    }
    let points = match &found.backup.vault {
        Some(v) => crate::cloud::aws::backup::recovery_points(&aws.backup, &v.name).await?,
        None => Vec::new(),
    };
    confirm_destroy(ctx, a, &found, &names, keep, &points)?;
    let mut d = Deletions { ctx, deleted: Vec::new(), failed: Vec::new() };
    let instance_gone = delete_infrastructure(&mut d, &aws, &found, &names).await;
    delete_data(&mut d, &aws, &found, keep_data, instance_gone).await;
    scheduled::delete(&mut d, &aws, &found.backup, &names, &points, delete_backups).await;
    let kept: Vec<String> = kept(&found, keep)
        .into_iter()
        .map(|(k, why)| {
            ctx.printer.info(format!("kept ({why}): {k}; `vcctl up` takes it again"));
            k
        })
        .collect();
    let removal =
        crate::report::Removal { stack: &stack, shape: "aws", deleted: &d.deleted, kept: &kept, failed: &d.failed };
    crate::report::print_removal(&ctx.printer, &removal, serde_json::Map::new());
    if !d.failed.is_empty() {
        anyhow::bail!(
            "{} resource(s) of stack `{stack}` could not be deleted; run `vcctl destroy` again to finish",
            d.failed.len()
        )
    }
    Ok(0)
}

/// What `destroy` deleted and what it could not, as it goes.
struct Deletions<'a> {
    ctx: &'a Ctx,
    deleted: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Deletions<'_> {
    /// Deletes `what` with `fut`; whether it is gone.
    async fn attempt(&mut self, what: String, fut: impl std::future::Future<Output = Result<()>>) -> bool {
        let step = self.ctx.printer.step(format!("deleting {what}"));
        match fut.await {
            Ok(()) => {
                step.done("");
                self.deleted.push(what);
                true
            }
            Err(e) => {
                step.fail("failed");
                self.failed.push((what, format!("{e:#}")));
                false
            }
        }
    }
}

/// Alarms, the instance, its firewall, IAM, key pair and CI deploy role; whether the
/// instance is gone.
async fn delete_infrastructure(
    d: &mut Deletions<'_>,
    aws: &Aws,
    found: &provision::BoxFound,
    names: &BoxNames,
) -> bool {
    if !found.alarms.is_empty() {
        let names: Vec<String> = found.alarms.iter().map(|a| a.name.clone()).collect();
        d.attempt(format!("alarms {}", names.join(", ")), cloudwatch::delete(&aws.cloudwatch, &names)).await;
    }
    let mut instance_gone = true;
    if let Some(i) = &found.instance {
        let what = format!("instance {} (waiting until terminated)", i.id);
        instance_gone = d.attempt(what, ec2::terminate(&aws.ec2, &i.id)).await;
    }
    if let Some(g) = &found.security_group {
        match instance_gone {
            true => _ = d.attempt(format!("security group {}", g.id), security_group::delete(&aws.ec2, &g.id)).await,
            false => d.failed.push((format!("security group {}", g.id), "still used by the instance".into())),
        }
    }
    if found.role.exists() || found.instance_profile.is_some() {
        let what = format!("instance profile {} and role {}", names.instance_profile, names.role);
        d.attempt(what, iam::delete_role_and_profile(&aws.iam, &names.role, &names.instance_profile)).await;
    }
    if found.key_pair.is_some() {
        d.attempt(format!("key pair {}", names.key_pair), ec2::delete_key_pair(&aws.ec2, &names.key_pair)).await;
    }
    if found.deploy_role.is_some() {
        d.attempt(format!("CI deploy role {}", names.deploy_role), iam::delete_role(&aws.iam, &names.deploy_role))
            .await;
    }
    instance_gone
}

/// The alert topic, and (unless `--keep-data`) the data volume and the Elastic IP, once the
/// instance has let go of them.
async fn delete_data(
    d: &mut Deletions<'_>,
    aws: &Aws,
    found: &provision::BoxFound,
    keep_data: bool,
    instance_gone: bool,
) {
    if let Some(t) = &found.topic {
        d.attempt(format!("alert topic {} and its subscriptions", t.arn), sns::delete(&aws.sns, &t.arn)).await;
    }
    if keep_data {
        return;
    }
    if let Some(v) = &found.data_volume {
        match instance_gone {
            true => _ = d.attempt(format!("data volume {} (the events)", v.id), volume::delete(&aws.ec2, &v.id)).await,
            false => d.failed.push((format!("data volume {}", v.id), "still attached to the instance".into())),
        }
    }
    if let Some(addr) = &found.address {
        let what = format!("Elastic IP {}", addr.public_ip);
        match instance_gone {
            true => _ = d.attempt(what, address::release(&aws.ec2, &addr.allocation_id)).await,
            false => d.failed.push((what, "still associated with the instance".into())),
        }
    }
}
