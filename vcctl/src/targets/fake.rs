//! A target that records the deploy steps it is asked for, for unit tests of the order of
//! `deploy` and `deploy::rolling`: releases live in memory, and which of them are healthy,
//! as a candidate and after the switch, is what the test says.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use super::{Mark, Slot, Snapshot, Target};
use crate::artifact::Artifact;
use crate::health::{Status, Unhealthy};
use crate::printer::Printer;
use crate::release::{Receipt, Verdict};

#[derive(Default)]
pub struct FakeTarget {
    /// Every step, in order, with its argument: `switch r2`, `check serving r2`.
    pub calls: Vec<String>,
    pub releases: Vec<Receipt>,
    pub failed: Vec<Receipt>,
    pub current: Option<String>,
    pub candidate: Option<String>,
    /// Whether it checks a release beside the serving one (a host does, the local stack not).
    pub has_candidate: bool,
    /// Releases that fail their check as a candidate, and after the switch.
    pub bad_candidate: BTreeSet<String>,
    pub bad_serving: BTreeSet<String>,
}

impl FakeTarget {
    /// The steps asked for, without the reads (`state`, `config_hash`) that carry no order.
    pub fn steps(&self) -> Vec<&str> {
        self.calls.iter().map(String::as_str).filter(|c| *c != "state" && *c != "config_hash").collect()
    }

    /// A target serving `release`, healthy, as a deploy before left it.
    pub fn serving(release: &str) -> FakeTarget {
        let mut t = FakeTarget { has_candidate: true, ..FakeTarget::default() };
        let mut r = Receipt::new(&artifact(release));
        r.verdict = Verdict::Healthy;
        r.config = Some("config".into());
        t.releases.push(r);
        t.current = Some(release.into());
        t
    }
}

/// An artifact whose release is called `name` (its hash too).
pub fn artifact(name: &str) -> Artifact {
    Artifact {
        path: format!("/builds/{name}").into(),
        sha256: format!("{name:0<64}"),
        version: Some("0.1.0".into()),
        git_sha: Some("abc".into()),
        release_name: Some(name.into()),
    }
}

fn healthy() -> Status {
    serde_json::from_value(serde_json::json!({
        "status": "ok", "version": "0.1.0", "git_sha": "abc", "uptime_s": 1, "database": "embedded"
    }))
    .expect("a status")
}

#[async_trait(?Send)]
impl Target for FakeTarget {
    fn host(&self) -> Option<&str> {
        Some("fake")
    }
    fn url(&self) -> &str {
        "http://fake.invalid"
    }
    fn has_candidate(&self) -> bool {
        self.has_candidate
    }
    async fn config_hash(&mut self) -> Result<String> {
        self.calls.push("config_hash".into());
        Ok("config".into())
    }
    async fn arch(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
    async fn lock(&mut self, _timeout: Duration, _p: &Printer) -> Result<()> {
        self.calls.push("lock".into());
        Ok(())
    }
    async fn unlock(&mut self) {
        self.calls.push("unlock".into());
    }
    async fn state(&mut self) -> Result<Snapshot> {
        self.calls.push("state".into());
        Ok(Snapshot {
            releases: self.releases.clone(),
            failed: self.failed.clone(),
            current: self.current.clone(),
            serving: self.current.is_some(),
            candidate: self.candidate.clone(),
        })
    }
    async fn clean_up(&mut self, unfinished: &[String]) -> Result<()> {
        self.calls.push(format!("clean_up {}", unfinished.join(" ")).trim_end().to_string());
        self.candidate = None;
        self.releases.retain(|r| !unfinished.contains(&r.name));
        Ok(())
    }
    async fn prepare(&mut self, _p: &Printer) -> Result<()> {
        self.calls.push("prepare".into());
        Ok(())
    }
    async fn install(&mut self, _artifact: &Artifact, receipt: &Receipt, _p: &Printer) -> Result<()> {
        self.calls.push(format!("install {}", receipt.name));
        self.releases.push(receipt.clone());
        Ok(())
    }
    async fn start_candidate(&mut self, release: &str) -> Result<Mark> {
        self.calls.push(format!("start_candidate {release}"));
        self.candidate = Some(release.into());
        Ok(0)
    }
    async fn stop_candidate(&mut self) -> Result<()> {
        self.calls.push("stop_candidate".into());
        self.candidate = None;
        Ok(())
    }
    async fn switch(&mut self, release: &str, _p: &Printer) -> Result<Mark> {
        self.calls.push(format!("switch {release}"));
        self.current = Some(release.into());
        Ok(0)
    }
    async fn check(
        &mut self,
        slot: Slot,
        _want: Option<(&str, &str)>,
        _outside: bool,
        _timeout: Duration,
    ) -> Result<Status, Unhealthy> {
        let (name, release, bad) = match slot {
            Slot::Serving => ("serving", self.current.clone(), &self.bad_serving),
            Slot::Candidate => ("candidate", self.candidate.clone(), &self.bad_candidate),
        };
        let release = release.unwrap_or_default();
        self.calls.push(format!("check {name} {release}"));
        match bad.contains(&release) {
            true => Err(Unhealthy::Exited(format!("{release} exits"))),
            false => Ok(healthy()),
        }
    }
    async fn reachable(&mut self) -> bool {
        true
    }
    async fn diagnose(&mut self, _slot: Slot, _since: Mark) -> String {
        self.calls.push("diagnose".into());
        "its log says why".into()
    }
    async fn record(&mut self, receipt: &Receipt) -> Result<()> {
        self.calls.push(format!("record {} {}", receipt.name, receipt.verdict));
        for r in self.releases.iter_mut().filter(|r| r.name == receipt.name) {
            *r = receipt.clone();
        }
        Ok(())
    }
    async fn set_aside(&mut self, release: &str) -> Result<()> {
        self.calls.push(format!("set_aside {release}"));
        let (aside, kept) = self.releases.drain(..).partition(|r| r.name == release);
        self.releases = kept;
        self.failed.extend::<Vec<Receipt>>(aside);
        Ok(())
    }
    async fn remove(&mut self, releases: &[String]) -> Result<()> {
        self.calls.push(format!("remove {}", releases.join(" ")).trim_end().to_string());
        self.releases.retain(|r| !releases.contains(&r.name));
        self.failed.retain(|r| !releases.contains(&r.name));
        Ok(())
    }
    async fn audit(&mut self, entry: &crate::audit::Entry) -> Result<()> {
        self.calls.push(format!("audit {}", entry.action));
        Ok(())
    }
    async fn close(self: Box<Self>) {}
}
