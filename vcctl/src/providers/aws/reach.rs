//! How vcctl reaches a stack's instances, in either AWS shape: the stack's SSH keys
//! (checked before any AWS call), an instance's address and its host key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cloud::aws::{Aws, ec2};
use crate::context::Ctx;
use crate::error::Failure;
use crate::stack::{AwsSettings, expand_home};

pub fn public_key_path(ctx: &Ctx, a: &AwsSettings) -> PathBuf {
    ctx.root.join(expand_home(a.ssh_public_key.as_deref().unwrap_or("~/.ssh/id_ed25519.pub")))
}

/// What the stack wants; `id` is its stack id (a placeholder for `plan` before the first up).
/// The private key deploys log in with: `aws.ssh_identity`, else the public key's path
/// without `.pub`.
pub fn identity_path(ctx: &Ctx, a: &AwsSettings) -> PathBuf {
    match &a.ssh_identity {
        Some(id) => ctx.root.join(expand_home(id)),
        None => public_key_path(ctx, a).with_extension(""),
    }
}

/// The stack's SSH keys, checked here before any AWS call: the public key (a private key
/// is refused, never uploaded) and the identity deploys will log in with. `plan` never logs
/// in, so it needs the public key only: a reviewer without the private key can plan.
pub fn local_keys(ctx: &Ctx, a: &AwsSettings, logs_in: bool) -> Result<String> {
    let public_key = public_key(ctx, a)?;
    if logs_in {
        check_identity(ctx, a)?;
    }
    Ok(public_key)
}

fn public_key(ctx: &Ctx, a: &AwsSettings) -> Result<String> {
    let file = ctx.settings.stack_file.display();
    let key_path = public_key_path(ctx, a);
    let text = std::fs::read_to_string(&key_path).map_err(|e| {
        Failure::invalid(
            format!("cannot read the SSH public key `{}` (aws.ssh_public_key in `{file}`): {e}", key_path.display()),
            Some("create one with `ssh-keygen -t ed25519`, or point aws.ssh_public_key at yours".to_string()),
        )
    })?;
    crate::providers::aws::keys::parse_public_key(&text).map_err(|why| {
        let key = key_path.display().to_string();
        let hint = match (text.contains("PRIVATE KEY"), key.strip_suffix(".pub")) {
            // Never suggest a redirect onto the file that holds the private key.
            (true, Some(stem)) => format!(
                "`{key}` holds a private key under a public key's name: rename it to `{stem}`, then `ssh-keygen -y -f {stem} > {key}`"
            ),
            (true, None) => format!(
                "write its public half with `ssh-keygen -y -f {key} > {key}.pub` and point aws.ssh_public_key at `{key}.pub`"
            ),
            (false, _) => format!(
                "a public key is one line such as `ssh-ed25519 AAAAC3… you@laptop`: write it from its private key with \
                 `ssh-keygen -y -f PRIVATE_KEY > {key}`, or point aws.ssh_public_key at the `.pub` file `ssh-keygen` made"
            ),
        };
        Failure::invalid(format!("`{key}` (aws.ssh_public_key in `{file}`) is not an SSH public key: {why}"), Some(hint))
            .into()
    })
}

/// The private key deploys log in with is there and readable.
pub fn check_identity(ctx: &Ctx, a: &AwsSettings) -> Result<()> {
    let file = ctx.settings.stack_file.display();
    let identity = identity_path(ctx, a);
    std::fs::File::open(&identity).map_err(|e| {
        Failure::invalid(
            format!(
                "cannot read `{}`, the private key deploys log in with (aws.ssh_identity in `{file}`; by default the \
                 public key's path without .pub): {e}",
                identity.display()
            ),
            Some("point aws.ssh_identity at the private half of aws.ssh_public_key".to_string()),
        )
    })?;
    Ok(())
}

/// How long to wait for an instance's host key in its console output (cloud-init prints it
/// a minute or two after boot; EC2 shows the output some minutes later).
fn host_key_timeout() -> Duration {
    std::env::var("VCCTL_HOST_KEY_TIMEOUT")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(600))
}

/// The instance's ed25519 host key from its console output, read until it appears.
pub async fn console_host_key(ctx: &Ctx, aws: &Aws, instance: &str) -> Result<String> {
    let timeout = host_key_timeout();
    let step = ctx.printer.step(format!("reading the host key of {instance} from its console output"));
    let started = Instant::now();
    loop {
        let console = ec2::console_output(&aws.ec2, instance).await.unwrap_or_default();
        if let Some(key) = ec2::host_keys_from_console(&console).into_iter().find(|k| k.starts_with("ssh-ed25519")) {
            step.done("");
            return Ok(key);
        }
        if started.elapsed() >= timeout {
            step.fail("not there");
            return Err(Failure::Credentials {
                message: format!(
                    "instance {instance} has printed no SSH host key to its console output within {}: \
                     vcctl does not connect to a host it cannot identify",
                    humantime::format_duration(timeout)
                ),
                hint: Some(format!(
                    "wait a few minutes and run it again (VCCTL_HOST_KEY_TIMEOUT waits longer), or set `aws.host_key` in `{}` \
                     to the instance's /etc/ssh/ssh_host_ed25519_key.pub, read over a channel you trust",
                    ctx.settings.stack_file.display()
                )),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_secs(5).min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

/// The address to reach an instance at. An emulator's addresses are made up (and may be
/// anyone's on the internet): vcctl never contacts them; tests map the stack's host to a
/// test host of their own with `VCCTL_TEST_AWS_HOST`, honoured under an emulator only.
pub fn address(aws: &Aws, instance: &str, ip: String) -> Result<String> {
    if !aws.emulated {
        return Ok(ip);
    }
    match std::env::var("VCCTL_TEST_AWS_HOST") {
        Ok(host) if !host.is_empty() => Ok(host),
        _ => Err(Failure::invalid(
            format!(
                "AWS_ENDPOINT_URL is set (an emulator): instance {instance}'s address {ip} was made up by it, so vcctl \
                 does not contact it"
            ),
            Some(
                "unset AWS_ENDPOINT_URL to work with real AWS (tests map the stack's host with VCCTL_TEST_AWS_HOST)"
                    .into(),
            ),
        )
        .into()),
    }
}
