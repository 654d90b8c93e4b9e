//! The release bucket of a `scale:` stack: versioned, encrypted (SSE-S3), public access
//! blocked, tagged with the stack. New instances fetch the serving release from it.

use anyhow::Result;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use serde::Serialize;

use super::{Owner, Stamp, code_of, error};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub name: String,
    pub versioned: bool,
    pub encrypted: bool,
    pub public_access_blocked: bool,
    #[serde(skip)]
    pub owner: Owner,
}

impl Bucket {
    /// What the bucket lacks of what the stack wants of it.
    pub fn lacks(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.versioned {
            out.push("versioning");
        }
        if !self.encrypted {
            out.push("encryption");
        }
        if !self.public_access_blocked {
            out.push("public access blocked");
        }
        out
    }
}

/// The bucket `name`, if it exists and is ours to see.
pub async fn find(s3: &Client, name: &str) -> Result<Option<Bucket>> {
    match s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e) if matches!(code_of(&e), Some("NotFound" | "NoSuchBucket")) || is_404(&e) => return Ok(None),
        Err(e) => return Err(error("s3:HeadBucket", &format!("looking up bucket {name}"), e)),
    }
    let versioned = match s3.get_bucket_versioning().bucket(name).send().await {
        Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
        // moto 5.2.5 names the answer's root `GetBucketVersioningResponse`, which the SDK
        // refuses to parse; its body still says the status.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
        Err(e) => return Err(error("s3:GetBucketVersioning", &format!("reading the versioning of {name}"), e)),
    };
    let encrypted = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out.server_side_encryption_configuration().is_some_and(|c| !c.rules().is_empty()),
        Err(e) if code_of(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => false,
        Err(e) => return Err(error("s3:GetBucketEncryption", &format!("reading the encryption of {name}"), e)),
    };
    let blocked = match s3.get_public_access_block().bucket(name).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                .iter()
                .all(|b| *b == Some(true))
        }),
        Err(e) if code_of(&e) == Some("NoSuchPublicAccessBlockConfiguration") => false,
        Err(e) => return Err(error("s3:GetPublicAccessBlock", &format!("reading the public access of {name}"), e)),
    };
    let owner = match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => Owner::from_tags(out.tag_set().iter().map(|t| (Some(t.key()), Some(t.value())))),
        Err(e) if code_of(&e) == Some("NoSuchTagSet") => Owner::default(),
        Err(e) => return Err(error("s3:GetBucketTagging", &format!("reading the tags of {name}"), e)),
    };
    Ok(Some(Bucket { name: name.to_string(), versioned, encrypted, public_access_blocked: blocked, owner }))
}

fn is_404<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

/// Makes the bucket in `region` (us-east-1 takes no location constraint).
pub async fn create(s3: &Client, name: &str, region: &str) -> Result<()> {
    let mut req = s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        let at =
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build();
        req = req.create_bucket_configuration(at);
    }
    req.send().await.map_err(|e| error("s3:CreateBucket", &format!("creating bucket {name}"), e))?;
    Ok(())
}

/// Versioning on, SSE-S3 encryption by default, every public access blocked, the stack's
/// tags: what the stack wants, put back whatever was changed by hand.
pub async fn secure(s3: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(versioning)
        .send()
        .await
        .map_err(|e| error("s3:PutBucketVersioning", &format!("turning on versioning of {name}"), e))?;
    let by_default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build()?;
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build();
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(ServerSideEncryptionConfiguration::builder().rules(rule).build()?)
        .send()
        .await
        .map_err(|e| error("s3:PutBucketEncryption", &format!("encrypting {name}"), e))?;
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(block)
        .send()
        .await
        .map_err(|e| error("s3:PutPublicAccessBlock", &format!("blocking public access to {name}"), e))?;
    let tags: Vec<Tag> =
        stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(Tagging::builder().set_tag_set(Some(tags)).build()?)
        .send()
        .await
        .map_err(|e| error("s3:PutBucketTagging", &format!("tagging {name}"), e))?;
    Ok(())
}

/// Deletes every version of every object (releases are rebuilt from the checkout), then
/// the bucket.
pub async fn delete(s3: &Client, name: &str) -> Result<()> {
    loop {
        let out = s3
            .list_object_versions()
            .bucket(name)
            .send()
            .await
            .map_err(|e| error("s3:ListObjectVersions", &format!("listing the releases in {name}"), e))?;
        let versions = out.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = out.delete_markers().iter().map(|m| (m.key(), m.version_id()));
        let ids: Vec<ObjectIdentifier> = versions
            .chain(markers)
            .filter_map(|(k, v)| ObjectIdentifier::builder().key(k?).set_version_id(v.map(str::to_string)).build().ok())
            .collect();
        if ids.is_empty() {
            break;
        }
        s3.delete_objects()
            .bucket(name)
            .delete(Delete::builder().set_objects(Some(ids)).build()?)
            .send()
            .await
            .map_err(|e| error("s3:DeleteObjects", &format!("emptying {name}"), e))?;
    }
    s3.delete_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(|e| error("s3:DeleteBucket", &format!("deleting {name}"), e))?;
    Ok(())
}

/// The object `key` of `bucket`, if it exists and is at most `limit` bytes: a small object
/// vcctl wrote (the serving pointer, the host kit). Larger is an error, never read whole.
pub async fn get_small(s3: &Client, bucket: &str, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if matches!(code_of(&e), Some("NoSuchKey" | "NotFound")) || is_404(&e) => return Ok(None),
        Err(e) => return Err(error("s3:GetObject", &format!("reading s3://{bucket}/{key}"), e)),
    };
    let size = usize::try_from(out.content_length().unwrap_or(0)).unwrap_or(usize::MAX);
    anyhow::ensure!(size <= limit, "s3://{bucket}/{key} is {size} bytes, more than the {limit} vcctl reads");
    let bytes = out.body.collect().await.map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {e}"))?;
    let bytes = bytes.into_bytes();
    anyhow::ensure!(bytes.len() <= limit, "s3://{bucket}/{key} is more than the {limit} bytes vcctl reads");
    Ok(Some(bytes.to_vec()))
}

/// Writes `body` as the object `key` (encrypted by the bucket's default).
pub async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| error("s3:PutObject", &format!("writing s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Uploads the file `path` as the object `key`, streamed from disk.
pub async fn put_file(s3: &Client, bucket: &str, key: &str, path: &std::path::Path) -> Result<()> {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
        .await
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .map_err(|e| error("s3:PutObject", &format!("uploading {} to s3://{bucket}/{key}", path.display()), e))?;
    Ok(())
}

/// The "directories" directly under `prefix` (`releases/` → `releases/<name>/`), at most
/// `limit` of them: a bucket vcctl fills, read a page at a time, never without bound.
pub async fn list_dirs(s3: &Client, bucket: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
    list(s3, bucket, prefix, true, limit).await
}

/// The keys under `prefix`, in S3's order (by key), refusing more than `limit`.
pub async fn list_keys(s3: &Client, bucket: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
    list(s3, bucket, prefix, false, limit).await
}

/// What is under `prefix`: the "directories" (`dirs`), or the keys; at most `limit`.
async fn list(s3: &Client, bucket: &str, prefix: &str, dirs: bool, limit: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(dirs.then(|| "/".to_string()))
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| error("s3:ListBucket", &format!("listing s3://{bucket}/{prefix}"), e))?;
        if dirs {
            out.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_string)));
        } else {
            out.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        anyhow::ensure!(out.len() <= limit, "s3://{bucket}/{prefix} holds more than the {limit} entries vcctl reads");
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Downloads the object `key` to the file `path`, streamed, refusing more than `limit` bytes.
pub async fn get_file(s3: &Client, bucket: &str, key: &str, path: &std::path::Path, limit: u64) -> Result<u64> {
    use tokio::io::AsyncWriteExt;
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| error("s3:GetObject", &format!("downloading s3://{bucket}/{key}"), e))?;
    let size = u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(u64::MAX);
    anyhow::ensure!(size <= limit, "s3://{bucket}/{key} is {size} bytes, more than the {limit} vcctl takes");
    let mut file = tokio::fs::File::create(path).await?;
    let mut body = out.body;
    let mut written = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {e}"))? {
        written += chunk.len() as u64;
        anyhow::ensure!(written <= limit, "s3://{bucket}/{key} is more than the {limit} bytes vcctl takes");
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(written)
}

/// Deletes the object `key` (its current version).
pub async fn delete_object(s3: &Client, bucket: &str, key: &str) -> Result<()> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| error("s3:DeleteObject", &format!("deleting s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Deletes every object under `prefix` (its current versions: a versioned bucket keeps the
/// older ones until its lifecycle or `destroy` removes them).
pub async fn delete_prefix(s3: &Client, bucket: &str, prefix: &str) -> Result<()> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .map_err(|e| error("s3:ListBucket", &format!("listing s3://{bucket}/{prefix}"), e))?;
    let ids: Vec<ObjectIdentifier> =
        listed.contents().iter().filter_map(|o| ObjectIdentifier::builder().key(o.key()?).build().ok()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    s3.delete_objects()
        .bucket(bucket)
        .delete(Delete::builder().set_objects(Some(ids)).build()?)
        .send()
        .await
        .map_err(|e| error("s3:DeleteObject", &format!("deleting s3://{bucket}/{prefix}"), e))?;
    Ok(())
}
