//! An `ssh` stack of several hosts (`hosts:`): PostgreSQL on the `db` host, Caddy on the `lb`
//! host in front of the `app` hosts, Prometheus on the `monitoring` host scraping them, and
//! the rolling deploy (`deploy/rolling.rs`) with Caddy's upstreams as its rotation: one app host at
//! a time leaves the rotation, takes the release through the one deploy workflow, and comes
//! back once healthy, from the host and through the load balancer. The first host that fails
//! stops the deploy; the hosts switched before it go back to what they served (exit 6).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::artifact::{self, Artifact};
use crate::context::Ctx;
use crate::deploy;
use crate::deploy::rolling::{self, RollingHost};
use crate::error::Failure;
use crate::host::Host;
use crate::plan::{Action, Change, Scope};
use crate::render;
use crate::render::config::{FleetDatabase, HostConfig, read_pem};
use crate::stack::{Database, HostSpec, Role, SshSettings};
use crate::targets::remote::{HostTarget, Remote, public_endpoint};
use crate::targets::{Operations, Target};

/// The fleet's ingest token, when the service takes one: kept on the db host (or the lb
/// host, with an external database).
pub async fn token(ctx: &Ctx, s: &SshSettings) -> Result<Option<String>> {
    if !ctx.settings.ingest_token {
        return Ok(None);
    }
    let keeper = connect(ctx, s, token_keeper(s)).await?;
    let token = keeper.fleet_token().await;
    keeper.close().await;
    Ok(Some(token?))
}

/// Where users reach the fleet: the load balancer.
pub fn lb_endpoint(ctx: &Ctx, s: &SshSettings) -> (String, crate::http_client::Trust) {
    public_endpoint(&ctx.settings, &s.the(Role::Lb).expect("checked by the stack").host)
}

/// The host that keeps the fleet's ingest token: the db host, else (an external database)
/// the lb host.
fn token_keeper(s: &SshSettings) -> &HostSpec {
    s.the(Role::Db).or_else(|| s.the(Role::Lb)).expect("checked by the stack")
}

pub fn remote(ctx: &Ctx, s: &SshSettings, h: &HostSpec) -> Remote {
    Remote::of_ssh(&ctx.settings, h, s.expose_prometheus)
}

pub async fn connect(ctx: &Ctx, s: &SshSettings, h: &HostSpec) -> Result<Host> {
    Host::connect(remote(ctx, s, h).target, &ctx.printer).await
}

/// The hosts that are not app hosts, each connected once (one host may have several roles).
struct Infra {
    hosts: Vec<(String, Host)>,
}

impl Infra {
    async fn connect(ctx: &Ctx, s: &SshSettings) -> Result<Infra> {
        let mut hosts: Vec<(String, Host)> = Vec::new();
        for role in [Role::Lb, Role::Db, Role::Monitoring] {
            let Some(h) = s.the(role) else { continue };
            if !hosts.iter().any(|(name, _)| *name == h.host) {
                hosts.push((h.host.clone(), connect(ctx, s, h).await?));
            }
        }
        Ok(Infra { hosts })
    }

    fn get(&self, s: &SshSettings, role: Role) -> &Host {
        let spec = s.the(role).expect("checked by the stack");
        &self.hosts.iter().find(|(name, _)| *name == spec.host).expect("connected").1
    }

    async fn close(self) {
        for (_, h) in self.hosts {
            h.close().await;
        }
    }
}

fn upstream(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `vcctl up` and `vcctl deploy` on a fleet.
pub async fn up(ctx: &Ctx, s: &SshSettings, args: &crate::deploy::Options) -> Result<u8> {
    let started = Instant::now();
    let p = &ctx.printer;
    // Every host first: one that does not answer stops the deploy before anything changed.
    let infra = Infra::connect(ctx, s).await?;
    let lb = infra.get(s, Role::Lb);
    let lock = lb.lock(args.lock_timeout, p).await?;
    let result = async {
        let env = database(ctx, s, &infra).await?;
        let (mut apps, skipped) = connect_apps(ctx, s, &env, args.skip_unreachable).await?;
        if let Some(name) = env.1.url_secret() {
            url_secret_everywhere(ctx, &mut apps, name).await?;
        }
        let mut artifact = resolve_artifact(ctx, &mut apps[0], args).await?;
        artifact.release_name = Some(release_name(&mut apps, &artifact).await?);
        let leaving = leaving(s, ctx.settings.port, &lb.lb_upstreams().await?);
        let mut rotation = Caddy { ctx, s, lb };
        let shipped = rolling::roll(&ctx.printer, &mut rotation, &mut apps, &artifact, args).await;
        for app in apps {
            Box::new(app.target).close().await;
        }
        let mut shipped = shipped?;
        shipped.hosts.extend(skipped.into_iter().map(|h| (h, "skipped: did not answer".to_string())));
        if shipped.failure.is_none() {
            retire(ctx, s, &leaving, &mut shipped).await;
        }
        monitoring(ctx, s, &infra).await?;
        anyhow::Ok(shipped)
    }
    .await;
    lock.release().await;
    infra.close().await;
    let shipped = result?;
    report(ctx, s, &shipped, started.elapsed());
    match shipped.failure {
        Some(e) => Err(e),
        None => Ok(crate::error::OK),
    }
}

/// Serves the database on the db host (PostgreSQL, its role and database, the app hosts
/// admitted), unless it is external; then what the app hosts need of it ([`app_database`]).
async fn database(ctx: &Ctx, s: &SshSettings, infra: &Infra) -> Result<(String, FleetDatabase)> {
    match (&s.database, s.the(Role::Db)) {
        (Database::OnHost, Some(spec)) => {
            let db = infra.get(s, Role::Db);
            let apps: Vec<&str> = s.with(Role::App).map(|h| h.host.as_str()).collect();
            let what = format!("PostgreSQL on {} for {} app host(s)", db.name(), apps.len());
            ctx.printer.doing(&what, db.serve_database(&spec.host, ctx.settings.ingest_token, &apps)).await?;
        }
        (Database::UrlSecret { name, ca_file: None }, _) => ctx.printer.warn(format!(
            "the app hosts reach the external database as the secret {name} says, without TLS (the service does \
             TLS only with authorities to verify it by): name them with `database.ca_file` in {}",
            ctx.settings.stack_file.display()
        )),
        _ => {}
    }
    app_database(ctx, s, infra).await
}

/// The app hosts' env file (the database's URL unless external, what to trust it by, the
/// ingest token; secrets made on the db host, or the lb host) and the database as they see
/// it.
async fn app_database(ctx: &Ctx, s: &SshSettings, infra: &Infra) -> Result<(String, FleetDatabase)> {
    let (mut env, db, token) = match &s.database {
        Database::OnHost => {
            let db = infra.get(s, Role::Db);
            let (password, token) = db.fleet_secrets().await?;
            let address = &s.the(Role::Db).expect("checked by the stack").host;
            let host = if address.contains(':') { format!("[{address}]") } else { address.clone() };
            let env = format!(
                "DATABASE_URL=postgres://vehicleconnect:{password}@{host}:5432/vehicleconnect?sslmode=require\n"
            );
            (env, FleetDatabase::Host { host: address.clone(), cert: db.db_cert().await? }, token)
        }
        Database::UrlSecret { name, ca_file } => {
            let ca = ca_file.as_deref().map(|f| read_pem(&ctx.settings, f, "database.ca_file")).transpose()?;
            let token = match ctx.settings.ingest_token {
                true => Some(infra.get(s, Role::Lb).fleet_token().await?),
                false => None,
            };
            (String::new(), FleetDatabase::External { secret: name.clone(), ca }, token)
        }
    };
    env.extend(db.trust().map(|(_, line)| line));
    if let Some(t) = token.filter(|_| ctx.settings.ingest_token) {
        env.push_str(&format!("VC_INGEST_TOKEN={t}\n"));
    }
    Ok((env, db))
}

/// The app hosts, each connected; one that does not answer stops the deploy before anything
/// changed on the app hosts, unless `skip_unreachable` (then it is reported and left out).
async fn connect_apps(
    ctx: &Ctx,
    s: &SshSettings,
    (env, db): &(String, FleetDatabase),
    skip_unreachable: bool,
) -> Result<(Vec<RollingHost>, Vec<String>)> {
    let mut admitted: Vec<String> = Vec::new();
    for role in [Role::Lb, Role::Monitoring] {
        let h = &s.the(role).expect("checked by the stack").host;
        if !admitted.contains(h) {
            admitted.push(h.clone());
        }
    }
    let (mut apps, mut skipped) = (Vec::new(), Vec::new());
    for spec in s.with(Role::App) {
        let config = HostConfig::fleet_app(&ctx.settings, env.clone(), db, &admitted)?;
        let mut remote = remote(ctx, s, spec);
        remote.check_outside = false;
        match HostTarget::connect_with(&ctx.settings, remote, config, Duration::ZERO, &ctx.printer).await {
            Ok(target) => {
                apps.push(RollingHost { name: spec.host.clone(), key: upstream(&spec.host, ctx.settings.port), target })
            }
            Err(e) if skip_unreachable && e.downcast_ref::<Failure>().is_none() => {
                ctx.printer.warn(format!("skipping {}, which does not answer: {e:#}", spec.host));
                skipped.push(spec.host.clone());
            }
            Err(e) => {
                let hint =
                    "bring it back, or pass --skip-unreachable to deploy to the others (it stays out of rotation)";
                return Err(e.context(format!(
                    "app host {} does not answer; nothing was changed on the app hosts ({hint})",
                    spec.host
                )));
            }
        }
    }
    if apps.is_empty() {
        bail!("no app host answers: nothing to deploy to");
    }
    Ok((apps, skipped))
}

/// Every app host keeps the secret with the external database's URL; else the deploy stops
/// before anything changed on them, saying how to set it.
async fn url_secret_everywhere(ctx: &Ctx, apps: &mut [RollingHost], name: &str) -> Result<()> {
    let mut missing = Vec::new();
    for app in apps.iter_mut() {
        if !app.target.secret_list().await?.iter().any(|(n, _)| n == name) {
            missing.push(app.name.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::invalid(
        format!(
            "the secret {name} (database.url_secret in `{}`) is not set on {}: the app hosts have no database URL; nothing was changed",
            ctx.settings.stack_file.display(),
            missing.join(", ")
        ),
        Some(format!("`vcctl secrets set {name}` (the URL, postgres://USER:PASSWORD@HOST:5432/DATABASE, on stdin), then `vcctl up` again")),
    )
    .into())
}

async fn resolve_artifact(ctx: &Ctx, first: &mut RollingHost, args: &crate::deploy::Options) -> Result<Artifact> {
    let arch = first.target.arch().await?;
    let artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    if let (Some(built), Some(arch)) = (artifact::elf_machine(&artifact.path), arch)
        && built != arch
    {
        bail!(Failure::invalid(
            format!("`{}` is built for {built}, but {} runs {arch}", artifact.path.display(), first.name),
            Some(format!("build for the hosts (`--target {arch}-unknown-linux-gnu`) and pass it with --artifact")),
        ));
    }
    Ok(artifact)
}

/// The upstreams in `rotation` that are no app host of the stack any more: hosts removed
/// from the file (the first rotation change of `up` drains them). The placeholder upstream
/// of an empty rotation (127.0.0.1) is none.
fn leaving(s: &SshSettings, port: u16, rotation: &[String]) -> Vec<String> {
    let kept: Vec<String> = s.with(Role::App).map(|h| upstream(&h.host, port)).collect();
    rotation.iter().filter(|u| !kept.contains(u) && !u.starts_with("127.0.0.1:")).cloned().collect()
}

/// The upstreams the load balancer sends requests to now, read on the lb host.
async fn rotation_now(ctx: &Ctx, s: &SshSettings) -> Result<Vec<String>> {
    let lb = connect(ctx, s, s.the(Role::Lb).expect("checked by the stack")).await?;
    let rotation = lb.lb_upstreams().await;
    lb.close().await;
    rotation
}

/// Stops the service on hosts removed from the stack (out of rotation since the start of
/// this deploy), logging in with the stack's defaults; one that does not answer is said.
async fn retire(ctx: &Ctx, s: &SshSettings, leaving: &[String], shipped: &mut rolling::Shipped) {
    let port = format!(":{}", ctx.settings.port);
    for up in leaving {
        let addr = up.strip_suffix(&port).unwrap_or(up).trim_start_matches('[').trim_end_matches(']').to_string();
        let defaults = s.with(Role::App).next().expect("checked by the stack");
        let spec = HostSpec { host: addr.clone(), host_key: None, roles: vec![Role::App], ..defaults.clone() };
        let stopping = async {
            let host = connect(ctx, s, &spec).await?;
            let r = host.retire().await;
            host.close().await;
            r
        };
        let what = format!("stopping the service on {addr}, removed from the stack");
        let what = match ctx.printer.doing(&what, stopping).await {
            Ok(()) => "removed: drained, then stopped".to_string(),
            Err(e) => format!("removed from the load balancer; could not stop its service: {e:#}"),
        };
        shipped.hosts.push((addr, what));
    }
}

/// One name for the release on every host: the name a host has it under already (a host
/// joining a fleet gets the serving release under its name), else a new one.
async fn release_name(apps: &mut [RollingHost], artifact: &Artifact) -> Result<String> {
    for app in apps.iter_mut() {
        let state = app.target.state().await?;
        if let Some(r) = state.releases.iter().rev().find(|r| r.sha256 == artifact.sha256 && r.is_good()) {
            return Ok(r.name.clone());
        }
    }
    Ok(crate::release::Receipt::new(artifact).name)
}

/// A fleet's rotation: the upstreams of Caddy on the lb host.
struct Caddy<'a> {
    ctx: &'a Ctx,
    s: &'a SshSettings,
    lb: &'a Host,
}

#[async_trait::async_trait]
impl rolling::Rotation for Caddy<'_> {
    async fn set(&mut self, keys: &[String], _p: &crate::printer::Printer) -> Result<()> {
        set_rotation(self.ctx, self.lb, keys).await
    }

    async fn healthy(&mut self, timeout: Duration, _p: &crate::printer::Printer) -> Result<()> {
        through_lb(self.ctx, self.s, timeout).await
    }
}

/// The load balancer sends requests to `rotation` only (a reload: requests in flight finish).
async fn set_rotation(ctx: &Ctx, lb: &Host, rotation: &[String]) -> Result<()> {
    let roots = crate::render::config::acme_roots(&ctx.settings)?;
    let caddyfile = render::caddyfile_lb(&ctx.settings, rotation, roots.is_some())?;
    let step = ctx.printer.step(format!("load balancer: {} in rotation", rotation.len()));
    let done = lb.serve_lb(&caddyfile, roots.as_deref()).await;
    match &done {
        Ok(()) => step.done(rotation.join(" ")),
        Err(_) => step.fail(""),
    }
    done
}

/// Healthy through the load balancer: three answers in a row.
async fn through_lb(ctx: &Ctx, s: &SshSettings, timeout: Duration) -> Result<()> {
    let (url, trust) = lb_endpoint(ctx, s);
    let client = crate::http_client::client_for(&trust)?;
    let started = Instant::now();
    let mut streak = 0;
    let mut last = String::new();
    while started.elapsed() < timeout {
        match crate::health::status(&client, &url).await {
            Ok((code, st)) if crate::health::is_healthy(code, &st) => streak += 1,
            Ok((code, _)) => (streak, last) = (0, format!("HTTP {code}")),
            Err(e) => (streak, last) = (0, e),
        }
        if streak == 3 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the load balancer at {url} did not answer healthy within {timeout:?}: {last}")
}

/// Prometheus on the monitoring host scrapes every app host.
async fn monitoring(ctx: &Ctx, s: &SshSettings, infra: &Infra) -> Result<()> {
    let targets: Vec<String> = s.with(Role::App).map(|h| upstream(&h.host, ctx.settings.port)).collect();
    let config = render::prometheus(&ctx.settings.stack, &targets)?;
    let host = infra.get(s, Role::Monitoring);
    let what = format!("Prometheus on {} scraping {} app host(s)", host.name(), targets.len());
    let listen = remote(ctx, s, s.the(Role::Monitoring).expect("checked by the stack")).prometheus_listen;
    let defaults = render::prometheus_defaults(&ctx.settings.stack, &listen);
    ctx.printer.doing(&what, host.serve_prometheus(&config, &defaults)).await
}

fn report(ctx: &Ctx, s: &SshSettings, shipped: &rolling::Shipped, elapsed: Duration) {
    let (url, _) = lb_endpoint(ctx, s);
    let shipment = crate::report::Shipment {
        stack: &ctx.settings.stack,
        shape: "fleet",
        release: &shipped.release,
        ok: shipped.failure.is_none(),
        places: &shipped.hosts,
        url: Some(&url),
        elapsed,
    };
    let extra = crate::plan::extra(json!({"dashboard": format!("{url}/dashboard")}));
    crate::report::print(&ctx.printer, &shipment, extra, &[]);
}

/// `vcctl status` on a fleet: every host, its roles; an app host's release, health (from
/// the host), whether the load balancer sends it requests, and its last deploy; then the
/// service through the load balancer. Exit 1 when anything is not healthy.
pub async fn status(ctx: &Ctx, s: &SshSettings) -> Result<u8> {
    let port = ctx.settings.port;
    let rotation = rotation_now(ctx, s).await?;
    let mut hosts = Vec::new();
    let mut healthy = true;
    for spec in &s.hosts {
        let roles: Vec<&str> = spec.roles.iter().map(|r| r.name()).collect();
        let mut entry = json!({"host": spec.host, "roles": roles});
        if spec.has(Role::App) {
            let app = app_status(ctx, s, spec, rotation.contains(&upstream(&spec.host, port))).await;
            healthy &= app["healthy"] == true && app["in_rotation"] == true;
            entry.as_object_mut().expect("an object").extend(app.as_object().expect("an object").clone());
        }
        hosts.push(entry);
    }
    let (url, trust) = lb_endpoint(ctx, s);
    let client = crate::http_client::client_for(&trust)?;
    let through = crate::health::status(&client, &url).await;
    healthy &= matches!(&through, Ok((code, st)) if crate::health::is_healthy(*code, st));
    let lb_line = match &through {
        Ok((code, _)) => format!("HTTP {code} at {url}"),
        Err(e) => format!("unreachable at {url}: {e}"),
    };
    let body = json!({"url": url, "load_balancer": lb_line, "hosts": hosts});
    let mut lines = vec![format!("hosts:    {}, load balancer {lb_line}", s.hosts.len())];
    lines.extend(hosts.iter().map(host_line));
    let subject = crate::status::Subject { stack: &ctx.settings.stack, shape: "fleet", place: Some(&url), healthy };
    Ok(crate::status::print(&ctx.printer, &subject, body, &lines))
}

/// One app host's view, as JSON fields.
async fn app_status(ctx: &Ctx, s: &SshSettings, spec: &HostSpec, in_rotation: bool) -> serde_json::Value {
    let seen = async {
        let host = connect(ctx, s, spec).await?;
        let state = host.state().await;
        let probe = host.probe(ctx.settings.port, render::SERVING_UNIT).await;
        host.close().await;
        anyhow::Ok((state?, probe?))
    };
    match seen.await {
        Ok((state, probe)) => {
            let current = state.releases.iter().find(|r| Some(&r.name) == state.current.as_ref());
            json!({
                "release": state.current,
                "version": probe.status.as_ref().map(|st| st.version.clone()),
                "healthy": probe.healthy().is_some(),
                "service": probe.describe(),
                "in_rotation": in_rotation,
                "last_deploy": current.map(|r| json!({"at": r.installed_at, "by": r.by, "from": r.from})),
            })
        }
        Err(e) => json!({"healthy": false, "in_rotation": in_rotation, "error": format!("{e:#}")}),
    }
}

fn host_line(h: &serde_json::Value) -> String {
    let roles: Vec<&str> = h["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
    let mut line = format!("  {} [{}]", h["host"].as_str().unwrap_or("?"), roles.join(", "));
    if let Some(e) = h["error"].as_str() {
        line.push_str(&format!(": unreachable: {e}"));
    } else if h.get("release").is_some() {
        let rotation = if h["in_rotation"] == true { "in rotation" } else { "OUT of rotation" };
        line.push_str(&format!(
            ": {} ({}), {rotation}, release {}, deployed {} by {}",
            if h["healthy"] == true { "healthy" } else { "UNHEALTHY" },
            h["service"].as_str().unwrap_or("?"),
            h["release"].as_str().unwrap_or("none"),
            h["last_deploy"]["at"].as_str().unwrap_or("?"),
            h["last_deploy"]["by"].as_str().unwrap_or("?"),
        ));
    }
    line
}

/// The app hosts `--host` names (all when absent); an address that is no app host is refused.
fn chosen<'a>(s: &'a SshSettings, host: Option<&str>) -> Result<Vec<&'a HostSpec>> {
    let apps: Vec<&HostSpec> = s.with(Role::App).collect();
    match host {
        None => Ok(apps),
        Some(h) => match apps.iter().find(|a| a.host == h) {
            Some(a) => Ok(vec![*a]),
            None => {
                let known: Vec<&str> = apps.iter().map(|a| a.host.as_str()).collect();
                Err(Failure::invalid(
                    format!("`{h}` is no app host of this stack"),
                    Some(format!("one of: {}", known.join(", "))),
                )
                .into())
            }
        },
    }
}

/// `vcctl rollback` on a fleet: host by host, each out of rotation while it switches back,
/// all to one release (`--to`, else the one before the first host's current); the first
/// that fails stops it (exit 6, or 7 when nothing healthy serves there).
pub async fn rollback(ctx: &Ctx, s: &SshSettings, args: &crate::deploy::RollbackOptions) -> Result<u8> {
    let p = &ctx.printer;
    let specs = chosen(s, args.host.as_deref())?;
    let infra = Infra::connect(ctx, s).await?;
    let lb = infra.get(s, Role::Lb);
    let lock = lb.lock(args.lock_timeout, p).await?;
    let result = async {
        // What the app hosts' configuration holds; a rollback changes nothing on the db host.
        let env = app_database(ctx, s, &infra).await?;
        let (mut apps, _) = connect_apps(ctx, s, &env, false).await?;
        apps.retain(|a| specs.iter().any(|h| h.host == a.name));
        let state = apps[0].target.state().await?;
        let to = match &args.to {
            Some(to) => to.clone(),
            None => crate::release::previous_good(&state.releases, state.current.as_deref())
                .map(|r| r.name.clone())
                .ok_or_else(|| Failure::invalid(format!("{} has no earlier good release", apps[0].name), None))?,
        };
        let mut rotation = lb.lb_upstreams().await?;
        let mut done = Vec::new();
        for app in apps.iter_mut() {
            let up = app.key.clone();
            if rotation.iter().any(|u| *u != up) {
                rotation.retain(|u| *u != up);
                set_rotation(ctx, lb, &rotation).await?;
            }
            let back = deploy::rollback(&mut app.target, Some(&to), args.health_timeout, p).await;
            if app.target.state().await.map(|st| st.serving).unwrap_or(false) && !rotation.contains(&up) {
                rotation.push(up);
                set_rotation(ctx, lb, &rotation).await?;
            }
            back.map_err(|e| e.context(format!("the rollback stopped at {}", app.name)))?;
            done.push(app.name.clone());
        }
        for app in apps {
            Box::new(app.target).close().await;
        }
        anyhow::Ok((to, done))
    }
    .await;
    lock.release().await;
    infra.close().await;
    let (to, done) = result?;
    p.json(&json!({"stack": ctx.settings.stack, "release": to, "hosts": done}));
    p.info(format!("stack `{}`: {} now run release {to}", ctx.settings.stack, done.join(", ")));
    Ok(crate::error::OK)
}

/// `vcctl logs` on a fleet: one app host's journal (`--host`, which `--follow` needs), or the
/// last lines of each, one after the other.
pub async fn logs(ctx: &Ctx, s: &SshSettings, args: &crate::targets::LogOptions) -> Result<u8> {
    let specs = chosen(s, args.host.as_deref())?;
    if args.follow && specs.len() > 1 {
        return Err(
            Failure::invalid("`--follow` follows one host", Some("add `--host ADDRESS` (an app host)".into())).into()
        );
    }
    let mut code = crate::error::OK;
    for spec in specs {
        if args.host.is_none() {
            ctx.printer.out(format!("==> {} <==", spec.host));
        }
        let host = connect(ctx, s, spec).await?;
        let status = host.logs(args.lines, args.follow, ctx.printer.json).await;
        host.close().await;
        if !status?.success() {
            code = crate::error::ERROR;
        }
    }
    Ok(code)
}

/// `vcctl plan` on a fleet: which app hosts `up` would add to the load balancer (new, or out
/// of rotation), deploy to (another release than `--artifact`, or the last build of this
/// checkout), or drain and stop (gone from the stack file); unreachable hosts are said.
/// Changes nothing; exit 2 when `up` would change something.
pub async fn plan(ctx: &Ctx, s: &SshSettings, artifact: Option<&std::path::Path>) -> Result<u8> {
    let port = ctx.settings.port;
    let artifact = artifact::planned(&ctx.root, artifact).await?;
    let rotation = rotation_now(ctx, s).await?;
    let mut changes: Vec<Change> = Vec::new();
    for spec in s.with(Role::App) {
        let up = upstream(&spec.host, port);
        let seen = async {
            let host = connect(ctx, s, spec).await?;
            let state = host.state().await;
            host.close().await;
            state
        };
        let change = match seen.await {
            Err(e) => Some(Change::new(
                Action::Unknown,
                &spec.host,
                format!("does not answer ({e:#}); `up` refuses unless --skip-unreachable"),
            )),
            Ok(state) => {
                let current = state.releases.iter().find(|r| Some(&r.name) == state.current.as_ref());
                match (current, &artifact) {
                    (None, _) => {
                        Some(Change::new(Action::Create, &spec.host, "prepare, deploy, add to the load balancer"))
                    }
                    (Some(c), Some(a)) if c.sha256 != a.sha256 => Some(Change::new(
                        Action::Update,
                        &spec.host,
                        format!("{} -> release {} (rolling)", c.name, a.short_sha()),
                    )),
                    (Some(c), _) if !rotation.contains(&up) => Some(Change::new(
                        Action::Create,
                        &spec.host,
                        format!("runs {}; check it and add it to the load balancer", c.name),
                    )),
                    _ => None,
                }
            }
        };
        changes.extend(change);
    }
    for gone in leaving(s, port, &rotation) {
        changes.push(Change::new(Action::Delete, gone, "gone from the stack file; drain it, then stop its service"));
    }
    if artifact.is_none() {
        changes.push(Change::new(
            Action::Note,
            "release",
            "no --artifact and no release build in target/release: `up` builds one",
        ));
    }
    let subject = Scope { stack: &ctx.settings.stack, shape: "fleet", place: None };
    Ok(crate::plan::print(&ctx.printer, &subject, &changes, serde_json::Map::new(), &[]))
}

/// `vcctl destroy` on a fleet, after confirmation: the load balancer's configuration (Caddy
/// stopped), then the service on every app host (units, releases, firewall), then, unless
/// `keep_data`, the database and its role on the db host. PostgreSQL, Prometheus and Caddy
/// stay installed; nothing but what vcctl made is touched.
pub async fn destroy(ctx: &Ctx, s: &SshSettings, keep_data: bool) -> Result<u8> {
    let p = &ctx.printer;
    let lb = s.the(Role::Lb).expect("checked by the stack");
    let db = s.the(Role::Db);
    let apps: Vec<&HostSpec> = s.with(Role::App).collect();
    let (doomed, kept) = doomed(s, &apps, keep_data);
    p.info(format!("`vcctl destroy` deletes, on the hosts of stack `{}`:", ctx.settings.stack));
    for line in &doomed {
        p.info(format!("  - {line}"));
    }
    for line in &kept {
        p.info(format!("  (not {line})"));
    }
    let what = if keep_data {
        "remove the service from every host (data kept)"
    } else {
        "remove the service and its data from every host"
    };
    ctx.confirm_destruction(what)?;
    let lb_host = connect(ctx, s, lb).await?;
    let lock = lb_host.lock(Duration::from_secs(60), p).await?;
    let result = async {
        p.doing(&format!("stopping the load balancer on {}", lb.host), lb_host.destroy(true)).await?;
        for a in &apps {
            let host = connect(ctx, s, a).await?;
            let done = async {
                host.retire().await?;
                host.destroy(true).await
            };
            let done = p.doing(&format!("removing the service from {}", a.host), done).await;
            host.close().await;
            done?;
        }
        if let Some(db) = db.filter(|_| !keep_data) {
            let host = connect(ctx, s, db).await?;
            let done = p.doing(&format!("dropping the database on {}", db.host), host.destroy(false)).await;
            host.close().await;
            done?;
        }
        anyhow::Ok(())
    }
    .await;
    lock.release().await;
    lb_host.close().await;
    result?;
    let removal = crate::report::Removal {
        stack: &ctx.settings.stack,
        shape: "fleet",
        deleted: &doomed,
        kept: &kept,
        failed: &[],
    };
    crate::report::print_removal(p, &removal, serde_json::Map::new());
    Ok(crate::error::OK)
}

/// What a fleet's `destroy` deletes, and what stays: the data with `keep_data`, and an
/// external database, which vcctl did not make.
fn doomed(s: &SshSettings, apps: &[&HostSpec], keep_data: bool) -> (Vec<String>, Vec<String>) {
    let lb = s.the(Role::Lb).expect("checked by the stack");
    let mut doomed = vec![format!("the load balancer's configuration on {} (Caddy stopped)", lb.host)];
    doomed.extend(apps.iter().map(|a| format!("the service on {} (units, releases, firewall)", a.host)));
    let mut kept = Vec::new();
    match (s.the(Role::Db), &s.database) {
        (Some(db), _) if !keep_data => doomed.push(format!(
            "the PostgreSQL database `vehicleconnect` on {} (every stored event), its role and the stack's secrets",
            db.host
        )),
        (Some(db), _) => kept.push(format!("the PostgreSQL database `vehicleconnect` on {} (--keep-data)", db.host)),
        (_, Database::UrlSecret { name, .. }) => {
            kept.push(format!("the external database the secret {name} names: vcctl did not make it"))
        }
        _ => {}
    }
    (doomed, kept)
}
