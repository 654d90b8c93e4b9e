//! `vcctl secrets set|list|unset`: the service's secrets, kept on its host (0600, root) and
//! read by its units. A value comes from stdin (without echo on a terminal), goes to the host
//! over the SSH connection's stdin, and is never in argv, a log, the stack file or vcctl's
//! output. A change is applied by the next deploy, which checks the release with it first:
//! the secrets' names and times are part of the configuration hash.

use std::io::Read;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::cli::SecretsCommand;
use crate::error::Failure;
use crate::providers::ssh::fleet;
use crate::stack::{Role, SshSettings};
use crate::targets::remote::HostTarget;
use crate::targets::{Operations, Target};

/// The longest value accepted.
const VALUE_MAX: usize = 64 * 1024;

pub async fn run(ctx: &Ctx, mut target: Box<dyn Operations>, command: &SecretsCommand) -> Result<u8> {
    let result = match command {
        SecretsCommand::List(_) => list(ctx, target.as_mut()).await,
        SecretsCommand::Set(a) => change(ctx, target.as_mut(), &a.name, true).await,
        SecretsCommand::Unset(a) => change(ctx, target.as_mut(), &a.name, false).await,
    };
    target.close().await;
    result
}

async fn list(ctx: &Ctx, target: &mut dyn Operations) -> Result<u8> {
    let secrets = target.secret_list().await?;
    print_list(ctx, &secrets, &target.place());
    Ok(0)
}

/// The secrets' names and times, in JSON and in words; never a value.
fn print_list(ctx: &Ctx, secrets: &[(String, String)], place: &str) {
    let json: Vec<_> = secrets.iter().map(|(name, set)| json!({"name": name, "set": set})).collect();
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "secrets": json}));
    if secrets.is_empty() {
        ctx.printer.info(format!("stack `{}` has no secrets {place}", ctx.settings.stack));
    }
    for (name, set) in secrets {
        ctx.printer.out(format!("{name}  set {set}"));
    }
}

/// `vcctl secrets` on a `scale:` stack: kept in its bucket, for every instance the group
/// runs or will launch (`providers/aws/scale/secrets.rs`).
pub async fn scale(ctx: &Ctx, a: &crate::stack::AwsSettings, command: &SecretsCommand) -> Result<u8> {
    use crate::providers::aws::scale::secrets;
    let (name, set) = match command {
        SecretsCommand::List(_) => {
            let (list, place) = secrets::list(ctx, a).await?;
            print_list(ctx, &list, &place);
            return Ok(0);
        }
        SecretsCommand::Set(args) => (&args.name, true),
        SecretsCommand::Unset(args) => (&args.name, false),
    };
    let value = value_of(name, set)?;
    let place = secrets::change(ctx, a, name, value.as_deref()).await?;
    said(ctx, name, set, &place);
    Ok(0)
}

/// Sets (with the value from stdin) or unsets `name`, under the deploy lock, and audits it.
async fn change(ctx: &Ctx, target: &mut dyn Operations, name: &str, set: bool) -> Result<u8> {
    let value = value_of(name, set)?;
    target.lock(Duration::from_secs(60), &ctx.printer).await?;
    let done = apply(ctx, target, name, value.as_deref()).await;
    target.unlock().await;
    done?;
    said(ctx, name, set, &target.place());
    Ok(0)
}

/// The checked name's new value from stdin (`set`), or none (unset).
pub fn value_of(name: &str, set: bool) -> Result<Option<String>> {
    if let Err((message, hint)) = crate::stack::check_env_name(name) {
        return Err(Failure::invalid(format!("secret {message}"), hint).into());
    }
    if set { Ok(Some(read_value(name)?)) } else { Ok(None) }
}

/// Sets `name` to `value` (or unsets it) on `target`, and audits it there. The caller holds
/// the deploy lock (the host's, or a fleet's).
pub async fn apply(ctx: &Ctx, target: &mut dyn Operations, name: &str, value: Option<&str>) -> Result<()> {
    let done = match value {
        Some(v) => target.secret_set(name, v).await,
        None => target.secret_unset(name).await,
    };
    let (action, how) = if value.is_some() { ("secret-set", "stored") } else { ("secret-unset", "removed") };
    let result = match &done {
        Ok(()) => format!("{how}; applied by the next deploy"),
        Err(e) => format!("failed: {e:#}"),
    };
    crate::deploy::audit(&ctx.printer, target, action, &(name.to_string(), result)).await;
    done
}

/// What a change says once done, in JSON and in words.
pub fn said(ctx: &Ctx, name: &str, set: bool, place: &str) {
    let (action, how) = if set { ("secret-set", "stored") } else { ("secret-unset", "removed") };
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "name": name, "action": action}));
    ctx.printer.info(format!(
        "secret {name} {how} {place}; `vcctl deploy` applies it (the release is checked with it as a candidate first)"
    ));
}

/// The value: typed without echo on a terminal, else all of stdin (one trailing newline
/// dropped); one line, not empty, at most 64 KiB.
fn read_value(name: &str) -> Result<String> {
    let term = console::Term::stderr();
    let value = if console::user_attended_stderr() && atty_stdin() {
        term.write_str(&format!("value of {name} (not shown): "))?;
        term.read_secure_line()?
    } else {
        let mut buf = Vec::new();
        std::io::stdin().take(VALUE_MAX as u64 + 2).read_to_end(&mut buf)?;
        let text = String::from_utf8(buf).map_err(|_| Failure::invalid("a secret's value must be UTF-8 text", None))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_string()
    };
    let refuse = |why: &str| {
        Failure::invalid(format!("the value of {name} {why}"), Some(format!("vcctl secrets set {name} < file")))
    };
    if value.is_empty() {
        return Err(refuse("is empty (stdin gave nothing)").into());
    }
    if value.len() > VALUE_MAX {
        return Err(refuse("is longer than 64 KiB").into());
    }
    if value.chars().any(|c| c == '\n' || c == '\0') {
        return Err(refuse("must be one line").into());
    }
    Ok(value)
}

/// Whether stdin is a terminal.
fn atty_stdin() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// `vcctl secrets` on a fleet: every app host runs the service, so every one keeps the
/// secret (set or unset on each in turn, under the stack's lock; the value read once);
/// `list` shows the first app host's. The next deploy applies a change.
pub async fn fleet(ctx: &Ctx, s: &SshSettings, command: &SecretsCommand) -> Result<u8> {
    let (name, set) = match command {
        SecretsCommand::List(_) => {
            let first = s.with(Role::App).next().expect("checked by the stack");
            let target =
                HostTarget::connect(&ctx.settings, fleet::remote(ctx, s, first), Duration::ZERO, &ctx.printer).await?;
            return run(ctx, Box::new(target), command).await;
        }
        SecretsCommand::Set(a) => (&a.name, true),
        SecretsCommand::Unset(a) => (&a.name, false),
    };
    let value = value_of(name, set)?;
    let lb = fleet::connect(ctx, s, s.the(Role::Lb).expect("checked by the stack")).await?;
    let lock = lb.lock(Duration::from_secs(60), &ctx.printer).await?;
    let mut done = Ok(());
    for spec in s.with(Role::App) {
        let target =
            HostTarget::connect(&ctx.settings, fleet::remote(ctx, s, spec), Duration::ZERO, &ctx.printer).await;
        done = match target {
            Ok(mut t) => {
                let r = apply(ctx, &mut t, name, value.as_deref()).await;
                Box::new(t).close().await;
                r.map_err(|e| e.context(format!("on {}", spec.host)))
            }
            Err(e) => Err(e),
        };
        if done.is_err() {
            break;
        }
    }
    lock.release().await;
    lb.close().await;
    done?;
    said(ctx, name, set, &format!("on every app host of stack `{}`", ctx.settings.stack));
    Ok(crate::error::OK)
}
