//! On-demand SSH around an AWS command: find this machine's address, open port 22 for it,
//! run the command, and close the port again on every way out: success, failure, Ctrl-C
//! (SIGINT) and SIGTERM (a cancelled GitHub Actions job). A SIGKILL cannot be caught: the
//! rule's lease then expires, and the next command removes it.

pub mod lease;
pub mod window;

use std::future::Future;
use std::time::Instant;

use anyhow::Result;

use crate::cloud::aws::security_group::SecurityGroup;
use crate::cloud::aws::{Aws, security_group};
use crate::context::Ctx;
use crate::error::Failure;
use crate::stack::{AwsSettings, SshAccess};
use window::{Closed, Window};

/// Where vcctl asks for this machine's public address, unless the stack says otherwise.
pub const DEFAULT_DETECTOR: &str = "https://checkip.amazonaws.com";
/// The most an address detector may answer.
const DETECTOR_LIMIT: usize = 256;

/// Runs `work` with SSH open for this machine (when the stack's access is on-demand); a
/// SIGINT or SIGTERM stops it, closes SSH, and ends in exit 130.
/// What an instance role needs to close its stack's expired temporary SSH rules itself
/// (vc-host `ssh-sweep`, every minute): find the rules, and revoke only rules tagged for the
/// stack and as temporary, on the stack's groups.
pub fn sweep_statements(region: &str, account: &str, stack: &str) -> Vec<serde_json::Value> {
    let arn = |kind: &str| format!("arn:aws:ec2:{region}:{account}:{kind}/*");
    let stack_tag = serde_json::json!({"aws:ResourceTag/vcctl:stack": stack});
    vec![
        serde_json::json!({
            "Sid": "FindItsTemporarySshRules",
            "Effect": "Allow",
            // Describe calls cannot be limited to resources; they change nothing.
            "Action": ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"],
            "Resource": "*"
        }),
        serde_json::json!({
            "Sid": "CloseExpiredSshOnItsGroups",
            "Effect": "Allow",
            "Action": "ec2:RevokeSecurityGroupIngress",
            "Resource": arn("security-group"),
            "Condition": {"StringEquals": stack_tag}
        }),
        serde_json::json!({
            "Sid": "OnlyItsTemporaryRules",
            "Effect": "Allow",
            "Action": "ec2:RevokeSecurityGroupIngress",
            "Resource": arn("security-group-rule"),
            "Condition": {"StringEquals": {"aws:ResourceTag/vcctl:stack": stack, "aws:ResourceTag/vcctl:temporary": "ssh"}}
        }),
    ]
}

pub async fn around<T, F>(ctx: &Ctx, a: &AwsSettings, aws: &Aws, command: &str, work: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    around_on(ctx, a, aws, None, command, work).await
}

/// [`around`], on the security group `group` (a `scale:` stack's app group) instead of the
/// single box's.
pub async fn around_on<T, F>(
    ctx: &Ctx,
    a: &AwsSettings,
    aws: &Aws,
    group: Option<&SecurityGroup>,
    command: &str,
    work: F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    if a.ssh_access == SshAccess::AdminCidrs {
        return work.await;
    }
    // Held from before the rule exists: a signal while it is being opened is answered here
    // too (the rule closed), not by dropping the work half-way.
    let _guard = crate::signals::Guard::new();
    let signal = crate::signals::interrupted();
    tokio::pin!(signal);
    let started = Instant::now();
    let window = tokio::select! {
        w = open(ctx, a, aws, group, command) => w?,
        why = &mut signal => {
            let message = format!("{why} while SSH was being opened: run it again (any rule left ends with its lease)");
            return Err(crate::error::Failure::Interrupted { message }.into());
        }
    };
    let opened_in = started.elapsed();
    let result = tokio::select! {
        r = work => r,
        why = &mut signal => {
            let message = format!("{why}: stopped, and SSH closed for {}", window.cidr);
            Err(crate::error::Failure::Interrupted { message }.into())
        }
    };
    close(ctx, window, opened_in).await;
    result
}

async fn open(ctx: &Ctx, a: &AwsSettings, aws: &Aws, given: Option<&SecurityGroup>, command: &str) -> Result<Window> {
    let stack = &ctx.settings.stack;
    let found = match given {
        Some(g) => Some(g.clone()),
        None => security_group::find(&aws.ec2, stack).await?,
    };
    let Some(group) = found else {
        return Err(Failure::invalid(
            format!("stack `{stack}` has no security group in {} to open SSH on", aws.region),
            Some("`vcctl up` creates it".into()),
        )
        .into());
    };
    let what = format!("security group {}", group.id);
    crate::providers::aws::owners::ensure_ours(&group.owner, &what, stack, ctx.settings.stack_id.as_deref())?;
    let cidr = address(ctx, a).await?;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let step = ctx.printer.step(format!("opening SSH (22) on {} for {cidr}", group.id));
    match window::open(&aws.ec2, &group, &stamp, &cidr, command).await {
        Ok(w) => {
            step.done(match &w.rule_id {
                Some(id) => format!("rule {id}, until this command ends"),
                None => "a permanent rule admits it already".into(),
            });
            Ok(w)
        }
        Err(e) => {
            step.fail("");
            Err(e)
        }
    }
}

async fn close(ctx: &Ctx, window: Window, opened_in: std::time::Duration) {
    let cidr = window.cidr.clone();
    let step = ctx.printer.step(format!("closing SSH (22) for {cidr}"));
    let started = Instant::now();
    let closed = window.close().await;
    let ms = |d: std::time::Duration| d.as_millis();
    let timing = format!("opening took {} ms, closing {} ms", ms(opened_in), ms(started.elapsed()));
    let line = match closed {
        Ok(Closed::Revoked) => {
            step.done("");
            format!("SSH (22) was opened for `{cidr}` during this run and is closed again ({timing}).")
        }
        Ok(Closed::KeptForOthers) => {
            step.done("another vcctl command from this address still uses it");
            format!("SSH (22) was opened for `{cidr}`; another vcctl command from that address still holds it open.")
        }
        Ok(Closed::Permanent) => {
            step.done("permanent rule left as it is");
            format!("SSH (22) for `{cidr}` came from a permanent rule of the stack.")
        }
        Err(e) => {
            step.fail("");
            // What is true of a rule left behind: its lease ends, then the stack's hosts revoke it
            // (their SSH sweep, every minute), or the next vcctl command does.
            let lease = humantime::format_duration(crate::providers::aws::on_demand::lease::LEASE);
            ctx.printer.warn(format!(
                "could not close SSH (22) for {cidr}: {e:#}; its lease ends within {lease}, and the stack's hosts \
                 revoke it at most 2 minutes later (as does the next vcctl command)"
            ));
            format!(
                "SSH (22) was opened for `{cidr}` and could **not** be closed: its lease ends within {lease}, and the \
                 stack's hosts revoke it at most 2 minutes later."
            )
        }
    };
    ctx.printer.detail(&line);
    ctx.printer.step_summary(&format!("{line}\n"));
}

/// The network to admit: `--ssh-from`, else this machine's address as the detector sees it.
async fn address(ctx: &Ctx, a: &AwsSettings) -> Result<String> {
    if let Some(cidr) = &ctx.ssh_from {
        return Ok(cidr.clone());
    }
    let url = std::env::var("VCCTL_ADDRESS_DETECTOR")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| a.address_detector.clone())
        .unwrap_or_else(|| DEFAULT_DETECTOR.to_string());
    let step = ctx.printer.step(format!("finding this machine's public address ({url})"));
    let asked = async {
        let answer = crate::http_client::client().get(&url).send().await.map_err(|e| format!("{e}"))?;
        if !answer.status().is_success() {
            return Err(format!("HTTP {}", answer.status().as_u16()));
        }
        let body = crate::http_client::bounded_text(answer, DETECTOR_LIMIT).await.map_err(|e| format!("{e:#}"))?;
        crate::providers::aws::on_demand::lease::detected(&body)
    };
    match asked.await {
        Ok(cidr) => {
            step.done(&cidr);
            Ok(cidr)
        }
        Err(why) => {
            step.fail("");
            Err(Failure::invalid(
                format!("could not learn this machine's public address from {url}: {why}"),
                Some(format!(
                    "pass --ssh-from ADDRESS (or VCCTL_SSH_FROM), or point aws.address_detector in `{}` at a service \
                     that answers with your address",
                    ctx.settings.stack_file.display()
                )),
            )
            .into())
        }
    }
}
