//! The commands: `dispatch` chooses, in one `match (provider, command)`, what runs where;
//! each command file is a short script that prints. The workflows are in `deploy`, the
//! places they run in are `targets`.

pub mod db;
pub mod deploy;
pub mod global;
pub mod instances;
pub mod secrets;
pub mod simulate;
pub mod tunnel;

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cli::{CiCommand, Command, DbCommand, DestroyArgs, LogsArgs, TokenCommand};
pub use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::single::{self as aws, backup, status as aws_status};
use crate::providers::aws::{ci, lock, on_demand, scale};
use crate::providers::local::plan;
use crate::providers::local::target::LocalTarget;
use crate::providers::ssh::fleet;
use crate::stack::{AwsSettings, Provider, SshSettings};
use crate::targets::Operations;
use crate::targets::remote::{Remote, connect as host};

/// How long `up` on AWS waits for a new instance to answer on SSH.
const BOOT_PATIENCE: Duration = Duration::from_secs(300);
/// How long a `scale:` restore waits for another command's hold on the stack's lock.
const RESTORE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Runs `command` on the stack of `ctx`: a global stack's commands are its own
/// (`global.rs`), and run the regions' through here.
pub async fn dispatch(ctx: &Ctx, command: &Command) -> Result<u8> {
    match &ctx.settings.provider {
        Provider::Global(g) => global::run(ctx, g, command).await,
        _ => on_stack(ctx, command).await,
    }
}

/// Runs `command` on the stack of `ctx`, one of the five shapes that run the service.
async fn on_stack(ctx: &Ctx, command: &Command) -> Result<u8> {
    use Provider::{Aws, Global, Local, Ssh};
    check_host_filter(ctx, command)?;
    check_instance_filter(ctx, command)?;
    check_log_filters(ctx, command)?;
    match (&ctx.settings.provider, command) {
        (Aws(a), Command::Up(r) | Command::Deploy(r)) => {
            let work = lock::around(ctx, a, command.name(), r.lock_timeout, async |c| on_aws(&c, a, command).await);
            told(ctx, a, command.name(), work).await
        }
        (Aws(a), Command::Rollback(r)) => {
            let work = lock::around(ctx, a, command.name(), r.lock_timeout, async |c| on_aws(&c, a, command).await);
            told(ctx, a, command.name(), work).await
        }
        // A `scale:` stack's restore converges as `up` does: under the stack's lock.
        (Aws(a), Command::Restore(_) | Command::Db(DbCommand::Restore(_))) if a.scale.is_some() => {
            let work = lock::around(ctx, a, command.name(), RESTORE_LOCK_WAIT, async |c| on_aws(&c, a, command).await);
            told(ctx, a, command.name(), work).await
        }
        (Aws(a), Command::Restore(_)) => told(ctx, a, command.name(), on_aws(ctx, a, command)).await,
        (Aws(a), Command::Destroy(d)) if d.delete_backups && a.scale.is_some() => Err(no_vault(ctx)),
        (_, Command::Destroy(d)) if d.delete_backups && !matches!(&ctx.settings.provider, Aws(_)) => Err(no_vault(ctx)),
        (Aws(a), Command::Destroy(d)) => {
            lock::around(ctx, a, command.name(), d.lock_timeout, async |c| on_aws(&c, a, command).await).await
        }
        (Aws(a), _) => on_aws(ctx, a, command).await,
        (_, Command::Destroy(d)) if d.instance.is_some() => Err(Failure::invalid(
            format!(
                "`destroy --instance` is for AWS stacks; stack `{}` is a `{}` stack",
                ctx.settings.stack, ctx.settings.provider_name
            ),
            Some("`vcctl destroy` removes the whole stack".into()),
        )
        .into()),
        (_, Command::Backup(_) | Command::Restore(_)) => Err(Failure::invalid(
            format!(
                "`{}` takes EBS snapshots of an AWS stack's data volume; stack `{}` is a `{}` stack",
                command.name(),
                ctx.settings.stack,
                ctx.settings.provider_name
            ),
            Some(
                "`vcctl db dump > FILE` and `vcctl db restore FILE` back up any stack's database (a local stack's \
                 embedded store too)"
                    .to_string(),
            ),
        )
        .into()),
        (_, Command::Ci(_) | Command::IamPolicy(_)) => Err(Failure::invalid(
            format!(
                "`{}` is for AWS stacks; stack `{}` is a `{}` stack",
                command.name(),
                ctx.settings.stack,
                ctx.settings.provider_name
            ),
            Some("run it with an AWS stack, e.g. --stack frankfurt".to_string()),
        )
        .into()),
        (Local(_), Command::Logs(args)) if let Some(process) = &args.process => {
            let stack = crate::providers::local::process::LocalStack::new(&ctx.settings);
            crate::providers::local::target::process_logs(&stack, process, args.lines, args.follow, ctx.printer.json)
                .await
        }
        (Local(_), Command::Plan(args)) => plan::run(ctx, args.artifact.as_deref()).await,
        (Ssh(s), Command::Plan(args)) if s.is_fleet() => fleet::plan(ctx, s, args.artifact.as_deref()).await,
        (Ssh(_), Command::Plan(_)) => Err(Failure::invalid(
            "`plan` compares cloud resources; an `ssh` stack has none (its host exists already)",
            Some("`vcctl status` shows the host, `vcctl deploy` ships a release".to_string()),
        )
        .into()),
        (_, Command::Completions { shell }) => Ok(completions(*shell)),
        (_, Command::Supervise(args)) => crate::providers::local::supervise::run(&args.spec()).await,
        (Local(_), _) => on_target(ctx, command, Ok(Box::new(LocalTarget::new(&ctx.settings)))).await,
        (Ssh(s), _) if s.is_fleet() => on_fleet(ctx, s, command).await,
        (Ssh(s), _) => {
            let remote = Remote::of_ssh(&ctx.settings, &s.hosts[0], s.expose_prometheus);
            on_target(ctx, command, host(ctx, remote, Duration::ZERO).await).await
        }
        (Global(_), _) => unreachable!("answered by `dispatch`"),
    }
}

/// `logs --instance` and `--since` read a `scale:` stack's CloudWatch Logs; `--process`
/// picks one of a local stack's processes.
fn check_log_filters(ctx: &Ctx, command: &Command) -> Result<()> {
    let Command::Logs(l) = command else { return Ok(()) };
    let scale = matches!(&ctx.settings.provider, Provider::Aws(a) if a.scale.is_some());
    let local = matches!(&ctx.settings.provider, Provider::Local(_));
    let (stack, shape) = (&ctx.settings.stack, ctx.settings.provider.shape());
    if (l.instance.is_some() || l.since.is_some()) && !scale {
        return Err(Failure::invalid(
            format!(
                "`logs --instance` and `--since` read a `scale:` stack's CloudWatch Logs; stack `{stack}` is a `{shape}` stack"
            ),
            Some("`vcctl logs -n N` shows its last N lines (`--host` one host of a fleet)".into()),
        )
        .into());
    }
    if l.process.is_some() && !local {
        return Err(Failure::invalid(
            format!("`logs --process` picks one of a local stack's processes; stack `{stack}` is a `{shape}` stack"),
            Some("leave out `--process`".into()),
        )
        .into());
    }
    Ok(())
}

/// `destroy --delete-backups` of a stack without a backup vault.
fn no_vault(ctx: &Ctx) -> anyhow::Error {
    Failure::invalid(
        format!(
            "`--delete-backups` deletes an AWS box's backup vault; stack `{}` ({}) has none",
            ctx.settings.stack, ctx.settings.provider_name
        ),
        Some("a `scale:` stack's final database snapshot is deleted in the RDS console or with the AWS CLI".into()),
    )
    .into()
}

/// Runs `work` (a deploy, rollback or restore of an AWS stack), then tells the stack's
/// alert topic how it ended, whatever that was.
async fn told(ctx: &Ctx, a: &AwsSettings, command: &str, work: impl Future<Output = Result<u8>>) -> Result<u8> {
    let started = std::time::Instant::now();
    let result = work.await;
    let outcome = result.as_ref().map(|c| *c).map_err(|e| format!("{e:#}"));
    if a.scale.is_some() {
        scale::audit::record(ctx, a, command, &outcome).await;
    }
    crate::providers::aws::notify::send(ctx, a, command, &outcome, started.elapsed()).await;
    result
}

/// The commands of an AWS stack, either shape (`up` and `destroy` under the stack's lock).
async fn on_aws(ctx: &Ctx, a: &AwsSettings, command: &Command) -> Result<u8> {
    match command {
        Command::IamPolicy(args) => iam_policy(ctx, a, args.account.as_deref()).await,
        Command::Ci(CiCommand::Init(args)) => ci::init(ctx, a, &args.request()).await,
        Command::Plan(_) if let Some(s) = &a.scale => scale::plan(ctx, a, s).await,
        Command::Up(r) if let Some(s) = &a.scale => scale::up(ctx, a, s, &r.options()).await,
        Command::Deploy(r) if a.scale.is_some() => scale::deploy(ctx, a, &r.options()).await,
        Command::Rollback(r) if a.scale.is_some() => scale::rollback(ctx, a, &r.options()).await,
        Command::Backup(args) if a.scale.is_some() => scale::backup::backup(ctx, a, args.list).await,
        Command::Audit(args) if a.scale.is_some() => scale::audit::show(ctx, a, args.lines.into()).await,
        Command::Exec(_) | Command::Ssh(_) | Command::Tunnel(_) if a.scale.is_some() => {
            instances::run(ctx, a, command).await
        }
        Command::Db(DbCommand::Dump(_)) if a.scale.is_some() => instances::run(ctx, a, command).await,
        Command::Db(DbCommand::Restore(args)) if let Some(s) = &a.scale => {
            scale::restore::db_restore(ctx, a, s, &args.file).await
        }
        Command::Restore(args) if let Some(s) = &a.scale => scale::restore::restore(ctx, a, s, &args.source()).await,
        Command::Logs(args) if a.scale.is_some() => scale::logs::logs(ctx, a, &args.options()).await,
        Command::Token(TokenCommand::Show(_)) if a.scale.is_some() => {
            token_allowed(ctx)?;
            token_print(ctx, scale::deploy::bucket_token(ctx, a).await?)
        }
        Command::Simulate(args) if a.scale.is_some() => {
            let token = if ctx.settings.ingest_token { scale::deploy::bucket_token(ctx, a).await? } else { None };
            simulate::run(&ctx.printer, args, scale::url(ctx), token, crate::http_client::Trust::default()).await
        }
        Command::Destroy(args) if args.instance.is_some() && a.scale.is_some() => Err(Failure::invalid(
            "`destroy --instance` terminates one of a single box's instances; a `scale:` stack's group owns its instances",
            Some("the group replaces an instance it finds unhealthy; `vcctl destroy` removes the whole stack".into()),
        )
        .into()),
        Command::Destroy(args) if a.scale.is_some() => scale::destroy(ctx, a, args.keep_data).await,
        Command::Secrets(sub) if a.scale.is_some() => secrets::scale(ctx, a, sub).await,
        Command::Status(_) if a.scale.is_some() => scale::status(ctx, a).await,
        _ if a.scale.is_some() => scale::refuse(ctx, a, command.name()).await,
        Command::Up(args) => match aws::up(ctx, a, args.artifact.as_deref()).await? {
            Some((cloud, remote)) => {
                let work = async { deploy::run(ctx, host(ctx, remote, BOOT_PATIENCE).await, args).await };
                on_demand::around(ctx, a, &cloud, command.name(), work).await
            }
            None => Ok(crate::error::OK),
        },
        Command::Plan(args) => aws::plan(ctx, a, args.artifact.as_deref()).await,
        Command::Status(_) => aws_status::status(ctx, a).await,
        Command::Destroy(args) if let Some(id) = &args.instance => aws::destroy_instance(ctx, a, id).await,
        Command::Destroy(args) => aws::destroy(ctx, a, args.keep_data, args.delete_backups).await,
        Command::Backup(args) => backup::backup(ctx, a, args.list).await,
        Command::Restore(args) => match &args.snapshot {
            Some(snapshot) => backup::restore(ctx, a, snapshot).await,
            None => Err(Failure::invalid(
                format!(
                    "`restore --time`, `--database` and `--delete-old` are for a `scale:` stack's RDS; stack `{}` is a single box",
                    ctx.settings.stack
                ),
                Some("`vcctl restore snap-...` replaces its data volume with a snapshot (`vcctl backup --list`)".into()),
            )
            .into()),
        },
        Command::Completions { shell } => Ok(completions(*shell)),
        Command::Supervise(args) => crate::providers::local::supervise::run(&args.spec()).await,
        // The rest run on the stack's host, through on-demand SSH.
        _ => {
            let (cloud, _) = crate::providers::aws::connect(ctx, a).await?;
            let work = async {
                let target = match aws::remote_of(ctx, a, &cloud).await {
                    Ok(remote) => host(ctx, remote, Duration::ZERO).await,
                    Err(e) => Err(e),
                };
                on_target(ctx, command, target).await
            };
            on_demand::around(ctx, a, &cloud, command.name(), work).await
        }
    }
}

/// `vcctl iam-policy`: the operator's least-privilege policy, as JSON on stdout.
async fn iam_policy(ctx: &Ctx, a: &AwsSettings, account: Option<&str>) -> Result<u8> {
    let account = match account {
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => id.to_string(),
        Some(id) => {
            return Err(Failure::invalid(
                format!("--account must be a 12-digit AWS account id, got {id:?}"),
                Some("e.g. --account 123456789012, or leave it out to use the current credentials' account".into()),
            )
            .into());
        }
        None => crate::providers::aws::connect(ctx, a).await?.1,
    };
    let region = a.region();
    let bucket = ctx
        .settings
        .stack_id
        .as_deref()
        .map(|id| crate::providers::aws::names::TierNames::of(&ctx.settings.stack, id).bucket);
    let of = crate::providers::aws::operator::For {
        stack: &ctx.settings.stack,
        region: &region,
        account: &account,
        scale: a.scale.is_some(),
        bucket: bucket.as_deref(),
    };
    let policy = crate::providers::aws::operator::policy(&of);
    ctx.printer.out(serde_json::to_string_pretty(&policy)?);
    Ok(crate::error::OK)
}

/// `--instance` and `--all` (exec, ssh, tunnel) pick instances of a `scale:` group; every
/// other stack has one host for them.
fn check_instance_filter(ctx: &Ctx, command: &Command) -> Result<()> {
    let (instance, all) = match command {
        Command::Exec(e) => (e.instance.instance.as_deref(), e.all),
        Command::Ssh(s) => (s.instance.instance.as_deref(), false),
        Command::Tunnel(t) => (t.instance.instance.as_deref(), false),
        _ => (None, false),
    };
    let scale = matches!(&ctx.settings.provider, Provider::Aws(a) if a.scale.is_some());
    if scale || (instance.is_none() && !all) {
        return Ok(());
    }
    let flag = if all { "--all" } else { "--instance" };
    Err(Failure::invalid(
        format!(
            "`{flag}` picks instances of a `scale:` stack's group; stack `{}` is a `{}` stack, with one host",
            ctx.settings.stack,
            ctx.settings.provider.shape()
        ),
        Some(format!("leave out `{flag}`")),
    )
    .into())
}

/// `--host` (logs, rollback) names an app host of a stack of several hosts; on one host it
/// may name that host only.
fn check_host_filter(ctx: &Ctx, command: &Command) -> Result<()> {
    let host = match command {
        Command::Logs(a) => a.host.as_deref(),
        Command::Rollback(a) => a.host.as_deref(),
        _ => None,
    };
    let Some(host) = host else { return Ok(()) };
    match &ctx.settings.provider {
        Provider::Ssh(s) if s.is_fleet() || s.hosts[0].host == host => Ok(()),
        _ => Err(Failure::invalid(
            format!("`--host {host}`: stack `{}` has no such host", ctx.settings.stack),
            Some("`--host` picks one app host of a stack with `hosts:`".into()),
        )
        .into()),
    }
}

/// The commands that run on the stack's host, whichever provider put it there.
async fn on_target(ctx: &Ctx, command: &Command, target: Result<Box<dyn Operations>>) -> Result<u8> {
    match command {
        Command::Up(args) | Command::Deploy(args) => deploy::run(ctx, target, args).await,
        Command::Rollback(args) => deploy::rollback(ctx, target?, args).await,
        Command::Status(_) => status(ctx, target?).await,
        Command::Logs(args) => logs(target?, args, ctx.printer.json).await,
        Command::Destroy(args) => destroy(ctx, target?, args).await,
        Command::Simulate(args) => {
            let mut t = target?;
            let token = if ctx.settings.ingest_token { t.ingest_token().await } else { Ok(None) };
            let (url, trust) = (t.url().to_string(), t.trust());
            t.close().await;
            simulate::run(&ctx.printer, args, url, token?, trust).await
        }
        Command::Token(TokenCommand::Show(_)) => token_show(ctx, target?).await,
        Command::Tunnel(args) => tunnel::run(ctx, target?, args).await,
        Command::Audit(args) => audit_log(ctx, target?, args.lines.into()).await,
        Command::Secrets(sub) => secrets::run(ctx, target?, sub).await,
        Command::Db(sub) => db::run(ctx, target?, sub).await,
        Command::Exec(args) => {
            let mut t = target?;
            let code = t.exec(&args.command).await;
            t.close().await;
            code
        }
        Command::Ssh(_) => {
            let mut t = target?;
            let code = t.shell().await;
            t.close().await;
            code
        }
        Command::Plan(_)
        | Command::Ci(_)
        | Command::IamPolicy(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Completions { .. }
        | Command::Supervise(_) => {
            anyhow::bail!("`{}` does not run on a host", command.name())
        }
    }
}

/// Prints the shell completion script.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    // The registration of clap's dynamic completion: the shell calls vcctl for each
    // completion, so `--stack <TAB>` lists the project's stacks and `--to <TAB>` releases.
    // It calls this very binary by its path: vcctl may be an alias, or not on PATH.
    let me = std::env::current_exe().ok().and_then(|p| p.to_str().map(str::to_string));
    let completer = me.unwrap_or_else(|| "vcctl".into());
    let mut script = Vec::new();
    let shells = clap_complete::env::Shells::builtins();
    let written = shells
        .completer(&shell.to_string())
        .map(|c| c.write_registration("COMPLETE", "vcctl", "vcctl", &completer, &mut script));
    if !matches!(written, Some(Ok(()))) {
        use clap::CommandFactory;
        script.clear();
        clap_complete::generate(shell, &mut crate::cli::Cli::command(), "vcctl", &mut script);
    }
    crate::printer::say_out(script);
    crate::error::OK
}

/// `vcctl audit`: the last entries of the target's audit trail, oldest first.
async fn audit_log(ctx: &Ctx, mut target: Box<dyn Operations>, n: usize) -> Result<u8> {
    let entries = target.audit_log(n).await;
    target.close().await;
    crate::audit::print(&ctx.printer, &ctx.settings.stack, &entries?);
    Ok(0)
}

/// `vcctl status` of a target: exit 0 when healthy, 1 when not.
async fn status(ctx: &Ctx, mut target: Box<dyn Operations>) -> Result<u8> {
    let view = target.status().await;
    target.close().await;
    let view = view?;
    let mut json = view.json;
    json["provider"] = json!(ctx.settings.provider_name);
    let host = json["host"].as_str().map(str::to_string);
    let shape = ctx.settings.provider.shape();
    let subject =
        crate::status::Subject { stack: &ctx.settings.stack, shape, place: host.as_deref(), healthy: view.healthy };
    let code = crate::status::print(&ctx.printer, &subject, json, &view.lines);
    for line in &view.details {
        ctx.printer.detail(line);
    }
    Ok(code)
}

/// `vcctl token show`: the ingest token on stdout, for scripts; on a terminal, only after
/// the user confirms (a token on a screen is a token in a screenshot).
async fn token_show(ctx: &Ctx, mut target: Box<dyn Operations>) -> Result<u8> {
    if let Err(e) = token_allowed(ctx) {
        target.close().await;
        return Err(e);
    }
    let token = target.ingest_token().await;
    target.close().await;
    token_print(ctx, token?)
}

/// Whether `token show` may print: the stack has a token, and a person at a terminal said so.
fn token_allowed(ctx: &Ctx) -> Result<()> {
    if !ctx.settings.ingest_token {
        return Err(Failure::invalid(
            format!("stack `{}` has no ingest token (`service.ingest_token` is not true)", ctx.settings.stack),
            Some(format!(
                "set `service.ingest_token: true` in `{}` and run `vcctl up`",
                ctx.settings.stack_file.display()
            )),
        )
        .into());
    }
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        ctx.confirm_destruction("print the ingest token on this screen")?;
    }
    Ok(())
}

fn token_print(ctx: &Ctx, token: Option<String>) -> Result<u8> {
    let Some(token) = token else { anyhow::bail!("the service has no ingest token yet: run `vcctl up` first") };
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "ingest_token": token}));
    if !ctx.printer.json {
        crate::printer::say_out(format!("{token}\n"));
    }
    Ok(0)
}

/// `vcctl logs [-f] [-n N]`: the service's log, on stdout (it is the data asked for).
async fn logs(mut target: Box<dyn Operations>, args: &LogsArgs, json: bool) -> Result<u8> {
    let code = target.logs(args.lines, args.follow, json).await;
    target.close().await;
    code
}

/// `vcctl destroy` of a target: the service, its releases and (unless `--keep-data`) its
/// data. On a host, PostgreSQL and Prometheus themselves stay installed.
async fn destroy(ctx: &Ctx, mut target: Box<dyn Operations>, args: &DestroyArgs) -> Result<u8> {
    let what = if args.keep_data { "remove the service (its data kept)" } else { "remove the service and its data" };
    let place = target.place();
    let doomed = match target.doomed(args.keep_data).await {
        Ok(lines) => lines,
        Err(e) => {
            target.close().await;
            return Err(e);
        }
    };
    ctx.printer.info(format!("`vcctl destroy` deletes {place}:"));
    for line in &doomed {
        ctx.printer.info(format!("  - {line}"));
    }
    if let Err(e) = ctx.confirm_destruction(&format!("{what} {place}")) {
        target.close().await;
        return Err(e);
    }
    let done = target.destroy(args.keep_data, &ctx.printer).await;
    let subject = if args.keep_data { "keep-data" } else { "delete-data" }.to_string();
    let result = match &done {
        Ok(_) => "service removed".to_string(),
        Err(e) => format!("failed: {e:#}"),
    };
    crate::deploy::audit(&ctx.printer, target.as_mut(), "destroy", &(subject, result)).await;
    target.close().await;
    let extra = crate::plan::extra(done?);
    // A local stack that was never started has nothing to delete.
    let deleted = if extra.get("existed") == Some(&json!(false)) { Vec::new() } else { doomed };
    let kept = match args.keep_data && !deleted.is_empty() {
        true => vec![format!(
            "the stored events and the stack's secrets {place} (--keep-data): `vcctl up` takes them again"
        )],
        false => Vec::new(),
    };
    let shape = ctx.settings.provider.shape();
    let removal =
        crate::report::Removal { stack: &ctx.settings.stack, shape, deleted: &deleted, kept: &kept, failed: &[] };
    crate::report::print_removal(&ctx.printer, &removal, extra);
    Ok(0)
}

impl Ctx {
    /// Asks before destroying; `--yes` answers for scripts, and is required without a terminal.
    pub fn confirm_destruction(&self, what: &str) -> Result<()> {
        if self.yes {
            return Ok(());
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(Failure::NotConfirmed {
                message: format!("refusing to {what} without confirmation: stdin is not a terminal"),
                hint: Some("pass --yes to confirm".to_string()),
            }
            .into());
        }
        {
            use std::io::Write;
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "This will {what}. Type the stack name (`{}`) to confirm: ", self.settings.stack);
        }
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != self.settings.stack {
            return Err(
                Failure::NotConfirmed { message: "not confirmed; nothing was changed".into(), hint: None }.into()
            );
        }
        Ok(())
    }
}

/// The commands a stack of several hosts answers; the rest say so.
async fn on_fleet(ctx: &Ctx, s: &SshSettings, command: &Command) -> Result<u8> {
    match command {
        Command::Up(args) | Command::Deploy(args) => fleet::up(ctx, s, &args.options()).await,
        Command::Status(_) => fleet::status(ctx, s).await,
        Command::Rollback(args) => fleet::rollback(ctx, s, &args.options()).await,
        Command::Logs(args) => fleet::logs(ctx, s, &args.options()).await,
        Command::Secrets(sub) => secrets::fleet(ctx, s, sub).await,
        Command::Destroy(args) => fleet::destroy(ctx, s, args.keep_data).await,
        Command::Simulate(args) => {
            let token = fleet::token(ctx, s).await?;
            let (url, trust) = fleet::lb_endpoint(ctx, s);
            simulate::run(&ctx.printer, args, url, token, trust).await
        }
        other => Err(Failure::invalid(
            format!("`{}` does not work on a stack of several hosts yet", other.name()),
            Some("`up`, `plan`, `deploy`, `rollback`, `status`, `logs`, `secrets`, `simulate` and `destroy` do; on one host, plain `ssh`".into()),
        )
        .into()),
    }
}
