//! The stack's bucket as the store new instances boot from (templates/boot.sh): the host kit
//! (`host/`: vc-host, the systemd units, the ingest token), the releases
//! (`releases/<name>/{vehicleconnect,release.json}`) and the `serving` pointer, one line
//! `<name> <sha256>`. The pointer is written last, after its release is whole: an instance
//! launched at any moment finds a complete release or the one before.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::artifact::Artifact;
use crate::cloud::aws::s3;
use crate::providers::aws::names::POINTER;
use crate::release::{Receipt, Verdict};
use crate::settings::Settings;

/// The most vcctl reads of an object it wrote (the pointer, a unit, the token).
const SMALL: usize = 256 * 1024;
pub use crate::providers::aws::names::{DB_PASSWORD, SECRETS, TOKEN};
/// The authorities RDS's certificate is verified with, when the stack names them.
pub const DATABASE_CA: &str = "host/database-ca.pem";

/// `scale.database.ca_file`, if the stack names one.
pub fn database_ca(settings: &Settings) -> Option<&std::path::Path> {
    match &settings.provider {
        crate::stack::Provider::Aws(a) => a.scale.as_ref()?.database.ca_file.as_deref(),
        _ => None,
    }
}

/// The release the bucket says serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serving {
    pub release: String,
    pub sha256: String,
}

/// Parses the pointer; `None` when it is not one line of a release name and a sha256.
pub fn parse_pointer(text: &str) -> Option<Serving> {
    let mut words = text.split_whitespace();
    let (release, sha256) = (words.next()?, words.next()?);
    let named = !release.is_empty() && release.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let hashed = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (named && hashed && words.next().is_none()).then(|| Serving { release: release.into(), sha256: sha256.into() })
}

/// The release the bucket's pointer names, if there is one.
pub async fn serving(client: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<Serving>> {
    let Some(bytes) = s3::get_small(client, bucket, POINTER, SMALL).await? else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    parse_pointer(&text)
        .map(Some)
        .with_context(|| format!("s3://{bucket}/{POINTER} is not `<release> <sha256>`: {:.80}", text.trim()))
}

/// The host kit as (key, content): vc-host, the serving and candidate units, rendered for an
/// instance of the group (its database elsewhere, reached only through the load balancer),
/// Prometheus's configuration (the replicas of stack id `stack_id`), and the database's
/// authorities when the stack names them.
pub fn kit(settings: &Settings, stack_id: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![("host/vc-host".to_string(), crate::host::HELPER_SCRIPT.as_bytes().to_vec())];
    // The same units a deploy writes on an instance (HostConfig::group_instance).
    for f in crate::render::config::HostConfig::group_instance(settings)?.files {
        let name = f.path.rsplit('/').next().unwrap_or_default();
        out.push((format!("host/systemd/{name}"), f.text.into_bytes()));
    }
    if let crate::stack::Provider::Aws(a) = &settings.provider {
        let region = a.region();
        let config = crate::render::prometheus_group(&settings.stack, &region, stack_id)?;
        out.push(("host/prometheus.yml".into(), config.into_bytes()));
        out.push(("host/prometheus-rules.yml".into(), crate::render::PROMETHEUS_RULES.as_bytes().to_vec()));
        let defaults = crate::render::prometheus_defaults(&settings.stack, "127.0.0.1:9090");
        out.push(("host/prometheus.default".into(), defaults.into_bytes()));
    }
    if let Some(ca) = database_ca(settings) {
        let pem = crate::render::config::read_pem(settings, ca, "scale.database.ca_file")?;
        out.push((DATABASE_CA.to_string(), pem.into_bytes()));
    }
    Ok(out)
}

/// Writes what of the kit differs from the bucket's, and the secrets the instances read that
/// are not there yet (made here, never shown); the keys written.
pub async fn stock_kit(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    kit: Vec<(String, Vec<u8>)>,
    token: bool,
) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (key, content) in kit {
        if s3::get_small(client, bucket, &key, SMALL).await?.as_deref() != Some(content.as_slice()) {
            s3::put(client, bucket, &key, content).await?;
            written.push(key);
        }
    }
    // Made once, never shown, kept: a token when the service takes one, and the password of
    // the service's database role.
    let secrets = [(TOKEN, token), (DB_PASSWORD, true)];
    for (key, wanted) in secrets {
        if wanted && s3::get_small(client, bucket, key, SMALL).await?.is_none() {
            s3::put(client, bucket, key, crate::providers::aws::owners::random_hex(48).into_bytes()).await?;
            written.push(key.to_string());
        }
    }
    // The service's secrets (`vcctl secrets`), none at first: there, so that every boot and
    // deploy copies the file (an instance's role may read but not list the bucket, so a
    // missing object would answer it 403, not 404).
    if s3::get_small(client, bucket, SECRETS, SMALL).await?.is_none() {
        s3::put(client, bucket, SECRETS, Vec::new()).await?;
        written.push(SECRETS.to_string());
    }
    Ok(written)
}

/// Uploads `artifact` as a release, its receipt beside it; the release's name.
pub async fn upload(client: &aws_sdk_s3::Client, bucket: &str, artifact: &Artifact) -> Result<Receipt> {
    let mut receipt = Receipt::new(artifact);
    receipt.verdict = Verdict::Pending;
    let dir = format!("releases/{}", receipt.name);
    s3::put_file(client, bucket, &format!("{dir}/vehicleconnect"), &artifact.path).await?;
    s3::put(client, bucket, &format!("{dir}/release.json"), serde_json::to_vec(&receipt)?).await?;
    Ok(receipt)
}

/// Points `serving` at `receipt`'s release: what every instance launched from now on runs.
/// The receipt is marked healthy first: a release the group served is one `rollback` may
/// go back to.
pub async fn point(client: &aws_sdk_s3::Client, bucket: &str, receipt: &Receipt) -> Result<()> {
    let healthy = Receipt { verdict: Verdict::Healthy, ..receipt.clone() };
    let key = format!("releases/{}/release.json", receipt.name);
    s3::put(client, bucket, &key, serde_json::to_vec(&healthy)?).await?;
    let line = format!("{} {}\n", receipt.name, receipt.sha256);
    s3::put(client, bucket, POINTER, line.into_bytes()).await
}

/// How many releases the bucket keeps (the serving one always among them): what `rollback
/// --to` can reach.
pub const KEPT: usize = 5;
/// The most release directories vcctl reads.
const MOST: usize = 1000;
/// The largest release binary vcctl downloads back.
const LARGEST: u64 = 512 << 20;

/// The file under a stack's state directory that lists the releases its bucket keeps, as
/// last read (`status`, `rollback`): what `rollback --to <TAB>` offers without calling AWS.
pub const REMEMBERED: &str = "releases";

/// Writes the names of `kept` for completion; a file that cannot be written is no failure.
pub fn remember(state_dir: &std::path::Path, kept: &[Receipt]) {
    let names: String = kept.iter().map(|r| format!("{}\n", r.name)).collect();
    let _ = std::fs::create_dir_all(state_dir).and_then(|()| std::fs::write(state_dir.join(REMEMBERED), names));
}

/// The releases in the bucket, oldest first (names start with their UTC time). A directory
/// without a readable receipt is left out.
pub async fn releases(client: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<Receipt>> {
    let mut out = Vec::new();
    for dir in s3::list_dirs(client, bucket, "releases/", MOST).await? {
        let Some(bytes) = s3::get_small(client, bucket, &format!("{dir}release.json"), SMALL).await? else { continue };
        if let Ok(receipt) = serde_json::from_slice::<Receipt>(&bytes) {
            out.push(receipt);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Which release `rollback` goes to: `to` when the bucket keeps it, else the newest one the
/// group served before `serving`.
pub fn rollback_target<'a>(releases: &'a [Receipt], serving: &str, to: Option<&str>) -> Result<&'a Receipt, String> {
    let kept = || releases.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    match to {
        Some(name) if name == serving => Err(format!("release {name} serves already")),
        Some(name) => releases
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("the bucket keeps no release {name} (it keeps: {})", kept())),
        None => crate::release::previous_good(releases, Some(serving))
            .filter(|r| r.name.as_str() < serving)
            .ok_or_else(|| format!("no release served before {serving} is kept (the bucket keeps: {})", kept())),
    }
}

/// The release `name`'s binary, downloaded into `dir`.
pub async fn fetch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let path = dir.join("vehicleconnect");
    s3::get_file(client, bucket, &format!("releases/{name}/vehicleconnect"), &path, LARGEST).await?;
    Ok(path)
}

/// The releases past the newest [`KEPT`] (never `serving`): what `prune` deletes.
pub fn past_keeping<'a>(releases: &'a [Receipt], serving: &str) -> Vec<&'a str> {
    let newest: Vec<&str> = releases.iter().rev().take(KEPT).map(|r| r.name.as_str()).collect();
    releases.iter().map(|r| r.name.as_str()).filter(|n| *n != serving && !newest.contains(n)).collect()
}

/// Deletes the releases past the newest [`KEPT`].
pub async fn prune(client: &aws_sdk_s3::Client, bucket: &str, serving: &str) -> Result<Vec<String>> {
    let all = releases(client, bucket).await?;
    let doomed: Vec<String> = past_keeping(&all, serving).into_iter().map(str::to_string).collect();
    for name in &doomed {
        s3::delete_prefix(client, bucket, &format!("releases/{name}/")).await?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(name: &str, verdict: Verdict) -> Receipt {
        let artifact = Artifact {
            path: "/x".into(),
            sha256: "a".repeat(64),
            version: None,
            git_sha: None,
            release_name: Some(name.into()),
        };
        Receipt { verdict, ..Receipt::new(&artifact) }
    }

    #[test]
    fn rollback_goes_to_the_last_release_served_before_or_to_one_kept() {
        let all = [
            receipt("20261201T000000Z-a", Verdict::Healthy),
            receipt("20261202T000000Z-b", Verdict::Healthy),
            receipt("20261203T000000Z-c", Verdict::Pending),
            receipt("20261204T000000Z-d", Verdict::Healthy),
        ];
        let to = |serving, to| rollback_target(&all, serving, to).map(|r| r.name.clone());
        assert_eq!(to("20261204T000000Z-d", None), Ok("20261202T000000Z-b".into()), "never one that never served");
        assert_eq!(to("20261204T000000Z-d", Some("20261201T000000Z-a")), Ok("20261201T000000Z-a".into()));
        assert!(to("20261204T000000Z-d", Some("nope")).unwrap_err().contains("keeps no release nope"));
        assert!(to("20261201T000000Z-a", None).unwrap_err().contains("no release served before"));
        assert!(to("20261204T000000Z-d", Some("20261204T000000Z-d")).unwrap_err().contains("serves already"));
        let keep: Vec<Receipt> = (1..=7).map(|d| receipt(&format!("2026120{d}T000000Z-x"), Verdict::Healthy)).collect();
        assert_eq!(past_keeping(&keep, "20261201T000000Z-x"), ["20261202T000000Z-x"], "the serving one stays");
    }

    #[test]
    fn a_pointer_is_one_release_and_its_sha256() {
        let sha = "a".repeat(64);
        assert_eq!(
            parse_pointer(&format!("20261130T200000Z-aaaaaaaaaaaa {sha}\n")),
            Some(Serving { release: "20261130T200000Z-aaaaaaaaaaaa".into(), sha256: sha.clone() })
        );
        for bad in [
            String::new(),
            "only-a-name".into(),
            format!("../etc {sha}"),
            format!("name {}", "a".repeat(63)),
            format!("name {sha} extra"),
            format!("name {}", "g".repeat(64)),
        ] {
            assert_eq!(parse_pointer(&bad), None, "{bad}");
        }
    }
}
