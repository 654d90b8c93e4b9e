//! GitHub's side of `vcctl ci init`: the deploy role trusts one environment on one branch,
//! and GitHub must say so in the token it issues. Two settings of the repository make it:
//!
//! - its OIDC subject includes the ref (`repo:R:environment:E:ref:refs/heads/B`), which the
//!   role's trust policy checks: AWS itself refuses a token from another branch;
//! - the environment may be deployed from that branch only (a deployment branch policy):
//!   GitHub gives the environment's secret, the SSH key, to no other branch.
//!
//! With a token (`GH_TOKEN`, `GITHUB_TOKEN`, or `gh auth token`), `ci init` reads them and
//! sets what is missing through GitHub's REST API; without one it prints the `gh api`
//! commands. The steps are worked out by a pure function from what was read.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::error::Failure;

/// The claims the repository's OIDC subject is made of.
pub const CLAIM_KEYS: [&str; 3] = ["repo", "context", "ref"];
const API_VERSION: &str = "2022-11-28";

/// The binding `ci init` makes: a repository's environment, deployable from one branch.
#[derive(Debug, Clone)]
pub struct Binding {
    pub repo: String,
    pub environment: String,
    pub branch: String,
}

impl Binding {
    /// The subject of the tokens GitHub issues to the deploy job, once bound.
    pub fn subject(&self) -> String {
        format!("repo:{}:environment:{}:ref:refs/heads/{}", self.repo, self.environment, self.branch)
    }

    fn environment_path(&self) -> String {
        format!("/repos/{}/environments/{}", self.repo, percent(&self.environment))
    }
}

/// What GitHub holds of the binding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The OIDC subject's claim keys, `None` when the repository uses the default subject.
    pub claim_keys: Option<Vec<String>>,
    pub environment: bool,
    /// `custom_branch_policies` on, `protected_branches` off.
    pub custom_branches: bool,
    /// The environment's deployment branch policies: (id, name, type).
    pub branch_policies: Vec<(u64, String, String)>,
}

/// One call that makes GitHub hold the binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
    pub why: String,
}

/// The calls that bind `found` as `b` says, in order; none when it is bound.
pub fn steps(b: &Binding, found: &Found) -> Vec<Step> {
    let mut out = Vec::new();
    let keys: Vec<String> = CLAIM_KEYS.iter().map(|k| k.to_string()).collect();
    if found.claim_keys.as_ref() != Some(&keys) {
        out.push(Step {
            method: "PUT",
            path: format!("/repos/{}/actions/oidc/customization/sub", b.repo),
            body: Some(json!({"use_default": false, "include_claim_keys": CLAIM_KEYS})),
            why: "the OIDC subject names the branch, which the role's trust policy checks".into(),
        });
    }
    if !found.environment || !found.custom_branches {
        out.push(Step {
            method: "PUT",
            path: b.environment_path(),
            body: Some(
                json!({"deployment_branch_policy": {"protected_branches": false, "custom_branch_policies": true}}),
            ),
            why: format!("environment `{}` deploys from chosen branches only", b.environment),
        });
    }
    let policies = format!("{}/deployment-branch-policies", b.environment_path());
    let ours = |(_, name, kind): &&(u64, String, String)| *name == b.branch && kind == "branch";
    if !found.branch_policies.iter().any(|p| ours(&p)) {
        out.push(Step {
            method: "POST",
            path: policies.clone(),
            body: Some(json!({"name": b.branch, "type": "branch"})),
            why: format!("environment `{}` deploys from branch `{}`", b.environment, b.branch),
        });
    }
    for (id, name, kind) in found.branch_policies.iter().filter(|p| !ours(p)) {
        out.push(Step {
            method: "DELETE",
            path: format!("{policies}/{id}"),
            body: None,
            why: format!("environment `{}` deploys from {kind} `{name}` too", b.environment),
        });
    }
    out
}

/// `step` as a `gh api` command line a user can run.
pub fn gh_command(step: &Step) -> String {
    let mut line = format!("gh api -X {} {}", step.method, step.path);
    if let Some(body) = &step.body {
        line.push_str(&format!(" --input - <<'EOF'\n{body}\nEOF"));
    }
    line
}

/// `%`-encodes what a path segment cannot hold (an environment's name may have spaces).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A token for GitHub's API: `GH_TOKEN`, `GITHUB_TOKEN`, or what `gh auth token` prints.
pub fn token() -> Option<String> {
    for var in ["GH_TOKEN", "GITHUB_TOKEN"] {
        if let Ok(t) = std::env::var(var)
            && !t.trim().is_empty()
        {
            return Some(t.trim().to_string());
        }
    }
    let out =
        std::process::Command::new("gh").args(["auth", "token"]).stderr(std::process::Stdio::null()).output().ok()?;
    let t = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !t.is_empty()).then_some(t)
}

/// GitHub's REST API at `GITHUB_API_URL` (GitHub Enterprise; default api.github.com):
/// HTTPS, or HTTP on loopback only (a token never crosses a network in clear).
pub struct GitHub {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl GitHub {
    pub fn new(token: String) -> Result<GitHub> {
        let base = std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into());
        let base = base.trim_end_matches('/').to_string();
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"].iter().any(|p| base.starts_with(p));
        if !base.starts_with("https://") && !loopback {
            return Err(Failure::invalid(
                format!("GITHUB_API_URL is {base}: the token would travel in clear"),
                Some("use an https:// URL (GitHub Enterprise's API), or unset it for api.github.com".into()),
            )
            .into());
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("vcctl/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(GitHub { base, token, client })
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(b) = body {
            request = request.json(b);
        }
        let answer = request.send().await.with_context(|| format!("GitHub's API at {}: {method} {path}", self.base))?;
        let status = answer.status().as_u16();
        // Bounded: GitHub's answers to these calls are small.
        let bytes = answer.bytes().await?;
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Reads what the repository holds of binding `b`.
    pub async fn survey(&self, b: &Binding) -> Result<Found> {
        let mut found = Found::default();
        let (status, sub) =
            self.call("GET", &format!("/repos/{}/actions/oidc/customization/sub", b.repo), None).await?;
        self.check(status, "reading the repository's OIDC subject")?;
        if sub["use_default"] == false {
            let keys = sub["include_claim_keys"].as_array().cloned().unwrap_or_default();
            found.claim_keys = Some(keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect());
        }
        let (status, env) = self.call("GET", &b.environment_path(), None).await?;
        if status == 404 {
            return Ok(found);
        }
        self.check(status, "reading the environment")?;
        found.environment = true;
        let policy = &env["deployment_branch_policy"];
        found.custom_branches = policy["custom_branch_policies"] == true && policy["protected_branches"] == false;
        if found.custom_branches {
            let path = format!("{}/deployment-branch-policies?per_page=100", b.environment_path());
            let (status, list) = self.call("GET", &path, None).await?;
            self.check(status, "reading the environment's deployment branches")?;
            for p in list["branch_policies"].as_array().into_iter().flatten() {
                let (id, name) = (p["id"].as_u64().unwrap_or(0), p["name"].as_str().unwrap_or("").to_string());
                found.branch_policies.push((id, name, p["type"].as_str().unwrap_or("branch").to_string()));
            }
        }
        Ok(found)
    }

    pub async fn apply(&self, step: &Step) -> Result<()> {
        let (status, _) = self.call(step.method, &step.path, step.body.as_ref()).await?;
        self.check(status, &step.why)
    }

    fn check(&self, status: u16, doing: &str) -> Result<()> {
        match status {
            200..=299 => Ok(()),
            401 | 403 | 404 => Err(Failure::invalid(
                format!("GitHub answered {status} {doing}: the token may not administer the repository"),
                Some("use a token of a repository admin with the `repo` scope (or Administration: write), or run the `gh api` commands `ci init` prints without one".into()),
            )
            .into()),
            _ => anyhow::bail!("GitHub answered {status} {doing}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding { repo: "acme/vc".into(), environment: "production".into(), branch: "main".into() }
    }

    #[test]
    fn an_unbound_repository_gets_its_subject_environment_and_branch() {
        let s = steps(&binding(), &Found::default());
        let calls: Vec<(&str, &str)> = s.iter().map(|s| (s.method, s.path.as_str())).collect();
        assert_eq!(
            calls,
            [
                ("PUT", "/repos/acme/vc/actions/oidc/customization/sub"),
                ("PUT", "/repos/acme/vc/environments/production"),
                ("POST", "/repos/acme/vc/environments/production/deployment-branch-policies"),
            ]
        );
        assert_eq!(binding().subject(), "repo:acme/vc:environment:production:ref:refs/heads/main");
    }

    #[test]
    fn a_bound_repository_needs_nothing_and_another_branch_is_removed() {
        let bound = Found {
            claim_keys: Some(CLAIM_KEYS.iter().map(|k| k.to_string()).collect()),
            environment: true,
            custom_branches: true,
            branch_policies: vec![(7, "main".into(), "branch".into())],
        };
        assert!(steps(&binding(), &bound).is_empty());
        let wider = Found {
            branch_policies: vec![(7, "main".into(), "branch".into()), (8, "*".into(), "branch".into())],
            ..bound
        };
        let s = steps(&binding(), &wider);
        assert_eq!(
            (s.len(), s[0].method, s[0].path.as_str()),
            (1, "DELETE", "/repos/acme/vc/environments/production/deployment-branch-policies/8")
        );
    }

    #[test]
    fn names_with_spaces_are_encoded_and_commands_quoted() {
        let b = Binding { environment: "prod eu".into(), ..binding() };
        assert!(steps(&b, &Found::default())[1].path.ends_with("/environments/prod%20eu"));
        assert!(gh_command(&steps(&b, &Found::default())[0]).contains("--input - <<'EOF'\n{"));
    }
}
