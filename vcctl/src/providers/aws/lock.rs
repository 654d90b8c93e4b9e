//! One `up` or `destroy` of an AWS stack at a time, from any laptop or CI runner: a lock
//! that AWS itself holds. It is a security group named `vcctl-<stack>-lock` in the stack's
//! VPC, which EC2 makes for one caller only (a second `CreateSecurityGroup` of that name
//! answers `InvalidGroup.Duplicate`). Its tags name the holder and the end of its lease,
//! renewed while the command runs: a killed command's lock ends by itself, and the next one
//! deletes it (by its id, so a lock taken meanwhile by a third is never deleted) and takes
//! it. Free, and nothing reaches it: a group with no rules, attached to nothing.

use std::time::Duration;

use anyhow::Result;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cloud::aws::{Aws, Stamp, ec2, security_group};
use crate::error::Failure;
use crate::printer::Printer;
use crate::release::Origin;

/// How long a lock lasts without being renewed, and how often its holder renews it.
const LEASE: Duration = Duration::from_secs(10 * 60);
const RENEW_EVERY: Duration = Duration::from_secs(2 * 60);
/// The tag that holds the holder (JSON, within a tag value's 256 characters).
pub const HOLDER_TAG: &str = "vcctl:lock";

/// `.` is in no stack's name nor in any group vcctl makes for one: no clash.
pub fn name(stack: &str) -> String {
    format!("vcctl-{stack}.lock")
}

/// The holder's tag value: who, which command, since and until when.
fn holder(command: &str, since: OffsetDateTime, now: OffsetDateTime) -> String {
    let origin = Origin::here();
    let at = |t: OffsetDateTime| t.format(&Rfc3339).expect("formats");
    let mut by = origin.by;
    by.truncate(60);
    let mut from = origin.from;
    from.truncate(90);
    let pid = std::process::id();
    serde_json::json!({"by": by, "from": from, "command": command, "since": at(since), "until": at(now + LEASE), "pid": pid})
        .to_string()
}

/// Whether a holder's lease has ended at `now` (an unreadable one has: nobody renews it),
/// or its holder was a process of this machine's user that is gone (a crash, `kill -9`):
/// then nobody need wait for its lease.
pub fn ended(text: &str, now: OffsetDateTime) -> bool {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let lease_over =
        v["until"].as_str().and_then(|u| OffsetDateTime::parse(u, &Rfc3339).ok()).is_none_or(|until| until <= now);
    let gone_here = v["by"].as_str() == Some(Origin::here().by.as_str())
        && v["pid"].as_u64().is_some_and(|pid| pid != u64::from(std::process::id()) && !alive(pid));
    lease_over || gone_here
}

/// Whether process `pid` of this machine runs (`kill -0`, which signals nothing).
fn alive(pid: u64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `work` holding the lock of the stack of `ctx`; released however `work` ends, a
/// signal included (vcctl's own; a killed vcctl's lock ends with its lease). `work` gets the
/// context as it is once the lock is held: the stack's id read again, which the holder it
/// waited for may have just written (a first `up`).
pub async fn around<T, F, Fut>(
    ctx: &crate::context::Ctx,
    a: &crate::stack::AwsSettings,
    command: &str,
    timeout: Duration,
    work: F,
) -> Result<T>
where
    F: FnOnce(crate::context::Ctx) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let aws = Aws::connect(&a.region()).await;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let _guard = crate::signals::Guard::new();
    let signal = crate::signals::interrupted();
    tokio::pin!(signal);
    let lock = tokio::select! {
        l = take(&aws, a.vpc_id.as_deref(), &stamp, command, timeout, &ctx.printer) => l?,
        why = &mut signal => {
            let message = format!("{why} while taking the stack's lock: nothing was changed");
            return Err(Failure::Interrupted { message }.into());
        }
    };
    let result = tokio::select! {
        r = work(ctx.with_current_id()) => r,
        why = &mut signal => Err(Failure::Interrupted { message: crate::signals::stopped(command, why) }.into()),
    };
    lock.release(&ctx.printer).await;
    result
}

/// A held stack lock; `release` deletes it.
pub struct StackLock {
    ec2: aws_sdk_ec2::Client,
    group_id: String,
    renewal: tokio::task::JoinHandle<()>,
}

/// Takes the lock of the stack `stamp` names for `command`, waiting up to `timeout` for a
/// holder; exit 5 naming it after that.
pub async fn take(
    aws: &Aws,
    vpc: Option<&str>,
    stamp: &Stamp,
    command: &str,
    timeout: Duration,
    p: &Printer,
) -> Result<StackLock> {
    let vpc = match vpc {
        Some(v) => v.to_string(),
        None => ec2::default_vpc(&aws.ec2).await?,
    };
    let lock = name(&stamp.stack);
    let since = OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let mut step: Option<crate::printer::Step> = None;
    loop {
        let tag = holder(command, since, OffsetDateTime::now_utc());
        if let Some(id) = security_group::create_exclusive(&aws.ec2, &lock, &vpc, stamp, (HOLDER_TAG, &tag)).await? {
            if let Some(s) = step.take() {
                s.done("");
            }
            let renewal = renew(&aws.ec2, &id, command, since);
            return Ok(StackLock { ec2: aws.ec2.clone(), group_id: id, renewal });
        }
        let Some((id, text)) = security_group::holder(&aws.ec2, &lock, HOLDER_TAG).await? else { continue };
        let who = crate::host::protocol::describe_holder(&text);
        if ended(&text, OffsetDateTime::now_utc()) {
            p.warn(format!(
                "the lock of stack `{}` held by {who} outlived its lease or its process (a command that was killed): taken over",
                stamp.stack
            ));
            security_group::delete_if_there(&aws.ec2, &id).await?;
            continue;
        }
        if started.elapsed() >= timeout {
            if let Some(s) = step.take() {
                s.fail("still held");
            }
            let message =
                format!("another vcctl holds the lock of stack `{}` (security group {lock}, {id}): {who}", stamp.stack);
            return Err(Failure::Locked { message }.into());
        }
        if step.is_none() {
            let wait = humantime::format_duration(timeout);
            step = Some(p.step(format!("waiting up to {wait} for the lock of stack `{}`, held by {who}", stamp.stack)));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Renews the lease while the command runs.
fn renew(client: &aws_sdk_ec2::Client, id: &str, command: &str, since: OffsetDateTime) -> tokio::task::JoinHandle<()> {
    let (client, id, command) = (client.clone(), id.to_string(), command.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let tag = holder(&command, since, OffsetDateTime::now_utc());
            let _ = ec2::set_tag(&client, &id, HOLDER_TAG, &tag).await;
        }
    })
}

impl StackLock {
    pub async fn release(self, p: &Printer) {
        self.renewal.abort();
        if let Err(e) = security_group::delete_if_there(&self.ec2, &self.group_id).await {
            p.warn(format!(
                "could not release the stack's lock ({}): {e:#}; it ends by itself within 10 minutes",
                self.group_id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_fits_a_tag_and_ends_with_its_lease() {
        let now = OffsetDateTime::now_utc();
        let tag = holder("vcctl up", now, now);
        assert!(tag.len() <= 256, "{tag}");
        assert!(!ended(&tag, now) && ended(&tag, now + LEASE));
        assert!(tag.contains("\"command\":\"vcctl up\""), "{tag}");
    }
}
