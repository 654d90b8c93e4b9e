//! What vcctl records about a release, wherever it is installed: the receipt
//! (`release.json` beside the binary), its name, and who shipped it from where.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::error::Failure;

/// What a deploy found out about a release. Written into its receipt as `pending`,
/// `healthy` or `failed`; the host side never reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Installed, not checked yet (or its deploy was killed).
    Pending,
    Healthy,
    Failed,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pending => "pending",
            Verdict::Healthy => "healthy",
            Verdict::Failed => "failed",
        })
    }
}

/// What vcctl knows about one release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub name: String,
    pub sha256: String,
    pub version: Option<String>,
    pub git_sha: Option<String>,
    pub installed_at: String,
    /// The artifact's path on the machine that shipped it.
    pub source: String,
    /// `user@machine` that shipped it.
    #[serde(default)]
    pub by: String,
    /// `laptop`, or the URL of the CI run that shipped it.
    #[serde(default)]
    pub from: String,
    pub verdict: Verdict,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// The hash of the configuration it was checked with (`deploy::config`): the same binary
    /// with another configuration is a change to deploy, not a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Seconds each step of its deploy took.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings: BTreeMap<String, f64>,
}

impl Receipt {
    /// A new, pending release of `artifact`, named `<UTC time>-<sha12>` (or
    /// `artifact.release_name`).
    pub fn new(artifact: &Artifact) -> Receipt {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .expect("formats");
        let origin = Origin::here();
        Receipt {
            name: artifact.release_name.clone().unwrap_or_else(|| format!("{stamp}-{}", artifact.short_sha())),
            sha256: artifact.sha256.clone(),
            version: artifact.version.clone(),
            git_sha: artifact.git_sha.clone(),
            installed_at: now.format(&time::format_description::well_known::Rfc3339).expect("formats"),
            source: artifact.path.display().to_string(),
            by: origin.by,
            from: origin.from,
            verdict: Verdict::Pending,
            diagnosis: None,
            config: None,
            timings: BTreeMap::new(),
        }
    }

    pub fn is_good(&self) -> bool {
        self.verdict == Verdict::Healthy
    }

    /// The version and commit this release must report when healthy, when it said.
    pub fn want(&self) -> Option<(&str, &str)> {
        self.version.as_deref().zip(self.git_sha.as_deref())
    }
}

/// The release `vcctl rollback [--to NAME]` goes to: the one named, or the newest good one
/// that is not `current`. `place` names where the releases are, for the error.
pub fn rollback_target(
    releases: &[Receipt],
    current: Option<&str>,
    to: Option<&str>,
    place: &str,
) -> Result<Receipt, Failure> {
    match to {
        Some(name) => releases.iter().find(|r| r.name == name).cloned().ok_or_else(|| {
            let known: Vec<String> = releases.iter().map(|r| format!("{} ({})", r.name, r.verdict)).collect();
            Failure::invalid(format!("no release `{name}` {place}"), Some(format!("releases: {}", known.join(", "))))
        }),
        None => previous_good(releases, current).cloned().ok_or_else(|| {
            Failure::invalid(
                format!("there is no previous healthy release {place} to roll back to"),
                Some("`vcctl status` lists the releases".into()),
            )
        }),
    }
}

/// The newest good release that is not `current` (releases oldest first).
pub fn previous_good<'a>(releases: &'a [Receipt], current: Option<&str>) -> Option<&'a Receipt> {
    releases.iter().rev().find(|r| r.is_good() && Some(r.name.as_str()) != current)
}

/// The error of a rollback asked for by `vcctl rollback` whose release is unhealthy too.
pub fn requested_rollback_failed(release: String, why: impl std::fmt::Display) -> anyhow::Error {
    Failure::RollbackFailed { release, diagnosis: "rollback requested".into(), rollback: why.to_string() }.into()
}

/// Who runs vcctl, and from where: a person's machine or a CI run.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub by: String,
    pub from: String,
}

impl Origin {
    pub fn here() -> Origin {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(|| {
                let out = std::process::Command::new("id").arg("-un").output().ok()?;
                Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| "unknown".into());
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let from = match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
            (Some(server), Some(repo), Some(run)) => format!("{server}/{repo}/actions/runs/{run}"),
            _ if env("CI").is_some() => "ci".to_string(),
            _ => "laptop".to_string(),
        };
        let by = match env("GITHUB_ACTOR") {
            Some(actor) => format!("{actor} (GitHub Actions on {machine})"),
            None => format!("{user}@{machine}"),
        };
        Origin { by, from }
    }
}
