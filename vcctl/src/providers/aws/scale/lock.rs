//! The deploy lock of a `scale:` stack: one object in the stack's bucket, written only if
//! absent (`If-None-Match: *`, atomic in S3), so one deploy at a time rolls across the group,
//! from a laptop or from CI. It carries a lease, renewed while the deploy runs: a deploy
//! that was killed leaves a lock that ends by itself, and the next deploy takes it over.

use std::time::Duration;

use anyhow::Result;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cloud::aws::s3;
use crate::error::Failure;
use crate::printer::Printer;
use crate::providers::aws::names::LOCK_KEY;
use crate::release::Origin;

/// How long a lock lasts without being renewed, and how often its holder renews it.
const LEASE: Duration = Duration::from_secs(10 * 60);
const RENEW_EVERY: Duration = Duration::from_secs(2 * 60);

/// The lock's content: who holds it, since when, until when.
fn holder(since: OffsetDateTime, now: OffsetDateTime) -> Vec<u8> {
    let origin = Origin::here();
    let at = |t: OffsetDateTime| t.format(&Rfc3339).expect("formats");
    serde_json::json!({
        "by": origin.by, "from": origin.from, "since": at(since), "until": at(now + LEASE), "pid": std::process::id(),
    })
    .to_string()
    .into_bytes()
}

pub use crate::providers::aws::lock::ended;

/// A held lock; `release` deletes it.
pub struct BucketLock {
    client: aws_sdk_s3::Client,
    bucket: String,
    renewal: tokio::task::JoinHandle<()>,
}

/// Takes the stack's deploy lock in `bucket`, waiting up to `timeout` for another deploy.
pub async fn take(client: &aws_sdk_s3::Client, bucket: &str, timeout: Duration, p: &Printer) -> Result<BucketLock> {
    let since = OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let mut step: Option<crate::printer::Step> = None;
    loop {
        if s3::put_if_absent(client, bucket, LOCK_KEY, holder(since, OffsetDateTime::now_utc())).await? {
            if let Some(s) = step.take() {
                s.done("");
            }
            return Ok(BucketLock {
                client: client.clone(),
                bucket: bucket.into(),
                renewal: renew(client, bucket, since),
            });
        }
        let text = s3::get_small(client, bucket, LOCK_KEY, 4096).await?.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).into_owned();
        let who = crate::host::protocol::describe_holder(&text);
        if ended(&text, OffsetDateTime::now_utc()) {
            p.warn(format!("the deploy lock of {who} outlived its lease (a deploy that was killed): taken over"));
            s3::delete_object(client, bucket, LOCK_KEY).await?;
            continue;
        }
        if started.elapsed() >= timeout {
            if let Some(s) = step.take() {
                s.fail("still held");
            }
            let message = format!("another deploy holds the lock of this stack (s3://{bucket}/{LOCK_KEY}): {who}");
            return Err(Failure::Locked { message }.into());
        }
        if step.is_none() {
            let wait = humantime::format_duration(timeout);
            step = Some(p.step(format!("waiting up to {wait} for the deploy lock, held by {who}")));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Renews the lease while the deploy runs.
fn renew(client: &aws_sdk_s3::Client, bucket: &str, since: OffsetDateTime) -> tokio::task::JoinHandle<()> {
    let (client, bucket) = (client.clone(), bucket.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let _ = s3::put(&client, &bucket, LOCK_KEY, holder(since, OffsetDateTime::now_utc())).await;
        }
    })
}

impl BucketLock {
    pub async fn release(self, p: &Printer) {
        self.renewal.abort();
        if let Err(e) = s3::delete_object(&self.client, &self.bucket, LOCK_KEY).await {
            p.warn(format!("could not release the deploy lock: {e:#}; it ends by itself within 10 minutes"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_ends_with_its_lease_and_an_unreadable_one_has_ended() {
        let now = OffsetDateTime::now_utc();
        let held = String::from_utf8(holder(now, now)).unwrap();
        assert!(!ended(&held, now));
        assert!(ended(&held, now + LEASE));
        assert!(ended("not json", now));
        assert!(ended(r#"{"by": "x"}"#, now));
    }
}
