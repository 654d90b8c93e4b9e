//! `vcctl deploy` (and `up` with a new release) of a `scale:` stack: the release goes to the
//! bucket, then across the group's instances with the one rolling deploy (`deploy/rolling.rs`),
//! whose rotation is the target group: an instance is deregistered and drained, takes the
//! release through the deploy workflow over on-demand SSH, and is registered again and
//! waited for until healthy. The bucket's `serving` pointer moves only when every instance
//! is healthy on the new release: an instance launched during a failed deploy never boots
//! the bad one.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use async_trait::async_trait;
use serde_json::json;

use crate::artifact::{self, Artifact};
use crate::cloud::aws::autoscaling::{self, Group};
use crate::cloud::aws::security_group::{self as sg, SecurityGroup};
use crate::cloud::aws::{Aws, ec2, elb};
use crate::context::Ctx;
use crate::deploy::rolling::{self, RollingHost, Rotation};
use crate::error::Failure;
use crate::host::Host;
use crate::printer::Printer;
use crate::providers::aws::names;
use crate::providers::aws::scale::release_bucket;
use crate::providers::aws::scale::tiers::{self, Tier};
use crate::providers::aws::{self, DEFAULT_SSH_USER};
use crate::render::config::HostConfig;
use crate::stack::AwsSettings;
use crate::targets::Target;
use crate::targets::remote::{HostTarget, Remote};

/// How long a deregistered instance may take to drain: the target group's delay, and a margin.
const DRAIN_PATIENCE: Duration = Duration::from_secs(elb::DEREGISTRATION_DELAY_S as u64 + 60);

/// The target group as the rolling deploy's rotation: keys are instance ids.
struct TargetGroup<'a> {
    aws: &'a Aws,
    arn: String,
    port: u16,
}

#[async_trait]
impl Rotation for TargetGroup<'_> {
    async fn set(&mut self, keys: &[String], p: &Printer) -> Result<()> {
        let registered: Vec<String> = elb::targets(&self.aws.elb, &self.arn)
            .await?
            .into_iter()
            .filter(|t| t.state != "draining" && t.state != "unused")
            .map(|t| t.id)
            .collect();
        let leaving: Vec<String> = registered.iter().filter(|id| !keys.contains(id)).cloned().collect();
        let joining: Vec<String> = keys.iter().filter(|id| !registered.contains(id)).cloned().collect();
        if !leaving.is_empty() {
            let what = format!("target group: deregistering {} and waiting for it to drain", leaving.join(", "));
            p.doing(&what, async {
                elb::deregister(&self.aws.elb, &self.arn, &leaving, self.port).await?;
                self.wait(&leaving, |state| state.is_none(), DRAIN_PATIENCE, "drained").await
            })
            .await?;
        }
        if !joining.is_empty() {
            let what = format!("target group: registering {} and waiting until healthy", joining.join(", "));
            p.doing(&what, async {
                elb::register(&self.aws.elb, &self.arn, &joining, self.port).await?;
                self.wait(&joining, |state| state == Some("healthy"), Duration::from_secs(300), "healthy").await
            })
            .await?;
        }
        Ok(())
    }

    async fn healthy(&mut self, timeout: Duration, _p: &Printer) -> Result<()> {
        let targets = elb::targets(&self.aws.elb, &self.arn).await?;
        let serving: Vec<String> = targets.iter().filter(|t| t.state != "draining").map(|t| t.id.clone()).collect();
        self.wait(&serving, |state| state == Some("healthy"), timeout, "healthy").await
    }
}

impl TargetGroup<'_> {
    /// Waits until every target of `ids` is in a state `done` accepts (`None`: gone).
    async fn wait(&self, ids: &[String], done: fn(Option<&str>) -> bool, patience: Duration, what: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let targets = elb::targets(&self.aws.elb, &self.arn).await?;
            let state = |id: &String| targets.iter().find(|t| t.id == *id).map(|t| t.state.as_str());
            let waiting: Vec<String> = ids
                .iter()
                .filter(|id| !done(state(id)))
                .map(|id| format!("{id} ({})", state(id).unwrap_or("not registered")))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() > patience {
                bail!("not {what} after {}: {}", crate::printer::format_duration(patience), waiting.join(", "));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// What a deploy reads of the stack, and nothing more: the role `ci init` makes allows
/// exactly these reads.
struct GroupFound {
    group: Group,
    target_group: String,
    bucket: String,
    serving: release_bucket::Serving,
    app_group: Option<SecurityGroup>,
}

async fn find(ctx: &Ctx, cloud: &Aws) -> Result<GroupFound> {
    let stack = &ctx.settings.stack;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let names = names::TierNames::of(stack, &stamp.id);
    let missing = |what: &str| -> anyhow::Error {
        Failure::invalid(
            format!("stack `{stack}` has no {what} yet: nothing to deploy to"),
            Some("`vcctl up` makes the stack and puts its first release".into()),
        )
        .into()
    };
    let group = autoscaling::find(&cloud.autoscaling, &names::InstanceNames::of(stack).group).await?;
    let group = group.ok_or_else(|| missing("Auto Scaling group"))?;
    tiers::owned(&format!("Auto Scaling group {}", group.name), group.owner.stack_id.as_deref(), &stamp)?;
    let tg = elb::find_target_group(&cloud.elb, &names::load_balancer(stack)).await?;
    let tg = tg.ok_or_else(|| missing("target group"))?;
    tiers::owned("the target group", tg.owner.stack_id.as_deref(), &stamp)?;
    let serving = if stamp.id.is_empty() { None } else { release_bucket::serving(&cloud.s3, &names.bucket).await? };
    let serving = serving.ok_or_else(|| missing("release in its bucket"))?;
    let app_group = sg::find_named(&cloud.ec2, stack, &names.group(Tier::App)).await?;
    Ok(GroupFound { group, target_group: tg.arn, bucket: names.bucket, serving, app_group })
}

/// `vcctl deploy` of a `scale:` stack (and `up` given another release than the one serving).
pub(super) async fn deploy(ctx: &Ctx, a: &AwsSettings, args: &crate::deploy::Options) -> Result<u8> {
    let started = Instant::now();
    let (cloud, _) = aws::connect(ctx, a).await?;
    let f = find(ctx, &cloud).await?;
    // (Under the stack's lock, taken by the dispatch: providers/aws/lock.rs.)
    let mut artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    let receipt = if artifact.sha256 == f.serving.sha256 {
        ctx.printer.detail(format!("release {} in the bucket is this artifact: no upload", f.serving.release));
        artifact.release_name = Some(f.serving.release.clone());
        None
    } else {
        let upload = release_bucket::upload(&cloud.s3, &f.bucket, &artifact);
        let r = ctx.printer.doing(&format!("release {} to the bucket", artifact.short_sha()), upload).await?;
        artifact.release_name = Some(r.name.clone());
        Some(r)
    };
    let (shipped, moved) = roll_out(ctx, a, &cloud, &f, &artifact, receipt.as_ref(), args).await?;
    report(ctx, &artifact, &shipped, moved, &f.serving, started.elapsed());
    match shipped.failure {
        Some(e) => Err(e),
        None => Ok(crate::error::OK),
    }
}

/// `vcctl rollback` of a `scale:` stack: a release the bucket keeps (`--to`, else the last
/// one the group served before the serving one) rolled across the group by the same engine
/// and candidate checks as a deploy; the pointer moves back once every instance is healthy.
pub(super) async fn rollback(ctx: &Ctx, a: &AwsSettings, args: &crate::deploy::RollbackOptions) -> Result<u8> {
    let started = Instant::now();
    let (cloud, _) = aws::connect(ctx, a).await?;
    let f = find(ctx, &cloud).await?;
    let kept = release_bucket::releases(&cloud.s3, &f.bucket).await?;
    release_bucket::remember(&ctx.settings.state_dir, &kept);
    let target = release_bucket::rollback_target(&kept, &f.serving.release, args.to.as_deref()).map_err(|why| {
        Failure::invalid(
            format!("cannot roll stack `{}` back: {why}", ctx.settings.stack),
            Some("`vcctl rollback --to RELEASE` takes any release the bucket keeps (`vcctl status` names the serving one)".into()),
        )
    })?;
    let dir = tempfile::tempdir()?;
    let fetch = release_bucket::fetch(&cloud.s3, &f.bucket, &target.name, dir.path());
    let path = ctx.printer.doing(&format!("release {} from the bucket", target.name), fetch).await?;
    let mut artifact = artifact::resolve(&ctx.root, Some(&path), &ctx.printer).await?;
    if artifact.sha256 != target.sha256 {
        bail!("release {} in the bucket does not match its receipt's sha256; nothing was changed", target.name);
    }
    artifact.release_name = Some(target.name.clone());
    let options = crate::deploy::Options {
        artifact: Some(path.clone()),
        health_timeout: args.health_timeout,
        lock_timeout: args.lock_timeout,
        skip_unreachable: false,
        parallel: 1,
    };
    let (shipped, moved) = roll_out(ctx, a, &cloud, &f, &artifact, Some(target), &options).await?;
    report(ctx, &artifact, &shipped, moved, &f.serving, started.elapsed());
    match shipped.failure {
        Some(e) => Err(crate::release::requested_rollback_failed(target.name.clone(), format!("{e:#}"))),
        None => Ok(crate::error::OK),
    }
}

/// Under the lock: `artifact` rolled across the group; on success the pointer moves to
/// `receipt` (a release that does not serve yet) and the bucket keeps its newest releases.
async fn roll_out(
    ctx: &Ctx,
    a: &AwsSettings,
    cloud: &Aws,
    f: &GroupFound,
    artifact: &Artifact,
    receipt: Option<&crate::release::Receipt>,
    args: &crate::deploy::Options,
) -> Result<(rolling::Shipped, bool)> {
    let ids: Vec<String> =
        f.group.instances.iter().filter(|i| i.lifecycle == "InService").map(|i| i.id.clone()).collect();
    if ids.is_empty() {
        bail!("group {} has no instance in service to deploy to", f.group.name);
    }
    let mut rotation = TargetGroup { aws: cloud, arn: f.target_group.clone(), port: ctx.settings.port };
    let shipped =
        crate::providers::aws::on_demand::around_on(ctx, a, cloud, f.app_group.as_ref(), "vcctl deploy", async {
            let token = instance_token(ctx, cloud, &f.bucket).await?;
            let secrets = super::secrets::file(&cloud.s3, &f.bucket).await?;
            let mut members = connect(ctx, a, cloud, &ids, token, Some(secrets)).await?;
            let shipped = rolling::roll(&ctx.printer, &mut rotation, &mut members, artifact, args).await;
            for m in members {
                Box::new(m.target).close().await;
            }
            shipped
        })
        .await?;
    let moved = match (&shipped.failure, receipt) {
        (None, Some(r)) => {
            release_bucket::point(&cloud.s3, &f.bucket, r).await?;
            let pruned = release_bucket::prune(&cloud.s3, &f.bucket, &r.name).await?;
            if !pruned.is_empty() {
                ctx.printer.detail(format!("the bucket keeps its newest releases: {} deleted", pruned.join(", ")));
            }
            true
        }
        _ => false,
    };
    Ok((shipped, moved))
}

/// The group's instances in service, with the clients and the app security group (which
/// on-demand SSH opens): what `exec`, `ssh` and `tunnel` choose from.
pub async fn in_service(ctx: &Ctx, a: &AwsSettings) -> Result<(Aws, Vec<String>, Option<SecurityGroup>)> {
    let (cloud, _) = aws::connect(ctx, a).await?;
    let f = find(ctx, &cloud).await?;
    let ids = f.group.instances.iter().filter(|i| i.lifecycle == "InService").map(|i| i.id.clone()).collect();
    Ok((cloud, ids, f.app_group))
}

/// Each instance of `ids` as a target of the operations (a command, a shell, a tunnel), over
/// SSH; call it within on-demand SSH on the app group.
pub async fn operations_on(
    ctx: &Ctx,
    a: &AwsSettings,
    cloud: &Aws,
    ids: &[String],
) -> Result<Vec<(String, HostTarget)>> {
    if cloud.emulated && std::env::var("VCCTL_TEST_AWS_HOST").is_err() {
        bail!(
            "AWS_ENDPOINT_URL is set (an emulator): its instances are not real hosts, so vcctl does not contact them"
        );
    }
    Ok(connect(ctx, a, cloud, ids, None, None).await?.into_iter().map(|m| (m.name, m.target)).collect())
}

/// The group's ingest token, from its bucket (`token show`, `simulate`).
pub async fn bucket_token(ctx: &Ctx, a: &AwsSettings) -> Result<Option<String>> {
    let (cloud, _) = aws::connect(ctx, a).await?;
    let stamp = aws::stamp(&ctx.settings);
    let bucket = crate::providers::aws::names::TierNames::of(&ctx.settings.stack, &stamp.id).bucket;
    if stamp.id.is_empty() {
        return Ok(None);
    }
    instance_token(ctx, &cloud, &bucket).await
}

/// The ingest token the instances take, from the bucket (`up` made it), when the stack wants
/// one.
async fn instance_token(ctx: &Ctx, cloud: &Aws, bucket: &str) -> Result<Option<String>> {
    if !ctx.settings.ingest_token {
        return Ok(None);
    }
    let token = crate::cloud::aws::s3::get_small(&cloud.s3, bucket, release_bucket::TOKEN, 4096).await?;
    let token = token.map(|t| String::from_utf8_lossy(&t).trim().to_string()).filter(|t| !t.is_empty());
    token.map(Some).ok_or_else(|| {
        Failure::invalid(
            format!("the stack takes an ingest token and its bucket {bucket} holds none"),
            Some("`vcctl up` makes it (and the launch template that gives it to new instances); then deploy".into()),
        )
        .into()
    })
}

/// Every instance of `ids` as a deploy target over SSH: its address, the stack's login, its
/// host key (the stack's, else from its console output), the units of a group's instance and
/// the token it takes.
async fn connect(
    ctx: &Ctx,
    a: &AwsSettings,
    cloud: &Aws,
    ids: &[String],
    token: Option<String>,
    secrets: Option<String>,
) -> Result<Vec<RollingHost>> {
    let mut members = Vec::new();
    let identity = crate::providers::aws::reach::identity_path(ctx, a);
    for (id, ip) in ec2::public_addresses(&cloud.ec2, ids).await? {
        let Some(ip) = ip else { bail!("instance {id} has no public address yet; try again in a minute") };
        let ip = crate::providers::aws::reach::address(cloud, &id, ip)?;
        let user = a.ssh_user.as_deref().unwrap_or(DEFAULT_SSH_USER);
        let mut target = Host::target(&ctx.settings, &ip, user, 22, Some(&identity.to_string_lossy()));
        target.host_key = match &a.host_key {
            Some(key) => Some(key.clone()),
            None if target.is_known() => None,
            None => Some(crate::providers::aws::reach::console_host_key(ctx, cloud, &id).await?),
        };
        let (public_url, trust) = crate::targets::remote::public_endpoint(&ctx.settings, &ip);
        let remote = Remote {
            target,
            public_url,
            prometheus_listen: "127.0.0.1:9090".into(),
            trust,
            data_volume: None,
            // The service's port admits the load balancer only: checked on the instance, and
            // through the target group's own health check.
            check_outside: false,
        };
        let config = HostConfig {
            instance_token: token.clone(),
            instance_secrets: secrets.clone(),
            ..HostConfig::group_instance(&ctx.settings)?
        };
        let target = HostTarget::connect_with(&ctx.settings, remote, config, Duration::ZERO, &ctx.printer)
            .await
            .map_err(|e| e.context(format!("instance {id} ({ip}) does not answer; nothing was changed on it")))?;
        members.push(RollingHost { name: id.clone(), key: id, target });
    }
    Ok(members)
}

fn report(
    ctx: &Ctx,
    artifact: &Artifact,
    shipped: &rolling::Shipped,
    moved: bool,
    before: &release_bucket::Serving,
    elapsed: Duration,
) {
    let release = artifact.release_name.clone().unwrap_or_default();
    let serving = if shipped.failure.is_none() { release.clone() } else { before.release.clone() };
    let bucket = match (&shipped.failure, moved) {
        (None, true) => format!("  the bucket serves {release} now: new instances boot it"),
        (None, false) => format!("  the bucket serves {release}, as before"),
        (Some(_), _) => format!("  the bucket still serves {}: new instances boot it, not {release}", before.release),
    };
    // `scale:` needs `tls:` (checked by the stack).
    let url = format!("https://{}", ctx.settings.tls.as_ref().map_or("", |t| t.domain.as_str()));
    let shipment = crate::report::Shipment {
        stack: &ctx.settings.stack,
        shape: "scale",
        release: &release,
        ok: shipped.failure.is_none(),
        places: &shipped.hosts,
        url: Some(&url),
        elapsed,
    };
    let extra = crate::plan::extra(json!({"serving": serving, "pointer_moved": moved}));
    crate::report::print(&ctx.printer, &shipment, extra, &[bucket]);
}

/// What an instance runs, as it says over SSH.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct OnInstance {
    pub instance: String,
    /// The release `current` names.
    pub release: Option<String>,
    /// Whether its service runs.
    pub running: bool,
}

/// What each instance of `ids` runs, over SSH (opened on demand on the app group); why not,
/// for the whole group.
pub(super) async fn releases(
    ctx: &Ctx,
    a: &AwsSettings,
    cloud: &Aws,
    app_group: Option<&SecurityGroup>,
    ids: &[String],
) -> Result<Vec<OnInstance>, String> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if cloud.emulated && std::env::var("VCCTL_TEST_AWS_HOST").is_err() {
        return Err("AWS_ENDPOINT_URL is set (an emulator): its instances are not real hosts".into());
    }
    let work = async {
        let mut out = Vec::new();
        // (status reads; it writes nothing, the token included)
        for mut m in connect(ctx, a, cloud, ids, None, None).await? {
            let state = m.target.state().await;
            Box::new(m.target).close().await;
            let state = state?;
            out.push(OnInstance { instance: m.name, release: state.current, running: state.serving });
        }
        anyhow::Ok(out)
    };
    crate::providers::aws::on_demand::around_on(ctx, a, cloud, app_group, "vcctl status", work)
        .await
        .map_err(|e| format!("{e:#}"))
}
