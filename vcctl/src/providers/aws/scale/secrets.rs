//! `vcctl secrets` of a `scale:` stack: the service's secrets kept in the stack's bucket
//! (`host/secrets`, encrypted at rest, private, in the secrets file's one format), not on an
//! instance the group may replace at any time. Every instance's boot copies the file to
//! `/etc/vehicleconnect/secrets`; a deploy writes it on the running ones and, since the
//! secrets' names and times are part of the configuration's hash, checks the release with
//! it first. A value goes from stdin to S3 over TLS: never in argv, a log or the output.

use anyhow::Result;

use crate::cloud::aws::s3;
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::names::{SECRETS, TierNames};
use crate::stack::AwsSettings;

/// The most vcctl reads back of the file (64 secrets of 64 KiB each, and their lines).
const LARGEST: usize = 4 << 20;

/// The stack's secrets file, as the bucket holds it (empty when it holds none).
pub async fn file(client: &aws_sdk_s3::Client, bucket: &str) -> Result<String> {
    let bytes = s3::get_small(client, bucket, SECRETS, LARGEST).await?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
}

/// The bucket of the stack, where its secrets are kept, and how to name that place.
async fn bucket(ctx: &Ctx, a: &AwsSettings) -> Result<(crate::cloud::aws::Aws, String, String)> {
    let (cloud, _) = crate::providers::aws::connect(ctx, a).await?;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    if stamp.id.is_empty() {
        return Err(Failure::invalid(
            format!("stack `{}` has no bucket yet to keep secrets in", ctx.settings.stack),
            Some(format!("`vcctl up --stack {}` makes it", ctx.settings.stack)),
        )
        .into());
    }
    let bucket = TierNames::of(&ctx.settings.stack, &stamp.id).bucket;
    let place = format!("in the bucket of stack `{}` (s3://{bucket}/{SECRETS})", ctx.settings.stack);
    Ok((cloud, bucket, place))
}

/// The secrets' names and when each was set, and where they are kept.
pub async fn list(ctx: &Ctx, a: &AwsSettings) -> Result<(Vec<(String, String)>, String)> {
    let (cloud, bucket, place) = bucket(ctx, a).await?;
    Ok((crate::secrets_file::list(&file(&cloud.s3, &bucket).await?), place))
}

/// Sets `name` to `value` (or unsets it) in the bucket, under the stack's lock, and audits
/// it in the stack's trail; where it is kept.
pub async fn change(ctx: &Ctx, a: &AwsSettings, name: &str, value: Option<&str>) -> Result<String> {
    let (cloud, bucket, place) = bucket(ctx, a).await?;
    let command = if value.is_some() { "vcctl secrets set" } else { "vcctl secrets unset" };
    let wait = std::time::Duration::from_secs(60);
    let done = crate::providers::aws::lock::around(ctx, a, command, wait, async |_| {
        let text = file(&cloud.s3, &bucket).await?;
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
        let changed = match value {
            Some(v) => crate::secrets_file::set(&text, name, v, &now),
            None => crate::secrets_file::unset(&text, name).ok_or_else(|| {
                Failure::invalid(format!("stack `{}` has no secret {name}", ctx.settings.stack), None)
            })?,
        };
        s3::put(&cloud.s3, &bucket, SECRETS, changed.into_bytes()).await
    })
    .await;
    let outcome = done.as_ref().map(|()| 0).map_err(|e| format!("{name}: {e:#}"));
    super::audit::record(ctx, a, command, &outcome).await;
    done.map(|()| place)
}
