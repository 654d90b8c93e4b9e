//! The deploy workflow, one for every target: settle what a killed deploy left, skip what
//! already runs, prepare, install, check the release beside the serving one (where the
//! target can), switch, check again, roll back, record and prune. The order, the rollback
//! rules and the outcome live here; a `Target` only carries out steps.

pub mod prune;
pub mod rolling;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::artifact::Artifact;
use crate::error::Failure;
use crate::health::{Status, Unhealthy};
use crate::printer::Printer;
use crate::release::{self, Receipt, Verdict};
use crate::targets::{Slot, Snapshot, Target};

/// How a release is shipped: what `up` and `deploy` take, whatever the shape.
#[derive(Debug, Clone)]
pub struct Options {
    /// The binary to ship; built from the checkout when absent.
    pub artifact: Option<std::path::PathBuf>,
    pub health_timeout: Duration,
    pub lock_timeout: Duration,
    /// Several hosts: deploy to those that answer and report the others.
    pub skip_unreachable: bool,
    /// Several hosts: how many take the release at once.
    pub parallel: u16,
}

/// Where `rollback` goes: the release (`None`: the previous good one) and on which host.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub to: Option<String>,
    pub health_timeout: Duration,
    pub lock_timeout: Duration,
    pub host: Option<String>,
}

/// How a deploy ended, when it did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The release already served, healthy, with this configuration: nothing was done.
    Unchanged,
    /// The release serves now; `replaced` served before it.
    Deployed { replaced: Option<String> },
    /// Unhealthy as a candidate, it never took traffic; `serving` serves as before.
    Refused { serving: String, diagnosis: String },
    /// Unhealthy after the switch; `to` serves again.
    RolledBack { to: String, diagnosis: String },
}

impl Ending {
    /// What happened to the place, in the report's words.
    pub fn describe(&self) -> String {
        match self {
            Ending::Unchanged => "unchanged (already serving)".into(),
            Ending::Deployed { .. } => "deployed, healthy".into(),
            Ending::Refused { serving, .. } => format!("refused as a candidate; {serving} serves"),
            Ending::RolledBack { to, .. } => format!("unhealthy after the switch; {to} serves again"),
        }
    }
}

/// A deploy's result, for the report, `--json` and the GitHub step summary.
#[derive(Debug)]
pub struct Outcome {
    /// The release deployed (or refused), with its verdict and timings.
    pub release: Receipt,
    pub ending: Ending,
    /// What the serving release reports, when it is the one deployed.
    pub status: Option<Status>,
}

impl Outcome {
    /// Whether what serves changed (a rollback changed it back, but restarted it).
    pub fn changed(&self) -> bool {
        matches!(self.ending, Ending::Deployed { .. } | Ending::RolledBack { .. })
    }

    /// The release that served before (deployed) or serves now (refused, rolled back).
    pub fn previous(&self) -> Option<&str> {
        match &self.ending {
            Ending::Unchanged => None,
            Ending::Deployed { replaced } => replaced.as_deref(),
            Ending::Refused { serving, .. } => Some(serving),
            Ending::RolledBack { to, .. } => Some(to),
        }
    }

    pub fn diagnosis(&self) -> Option<&str> {
        match &self.ending {
            Ending::Refused { diagnosis, .. } | Ending::RolledBack { diagnosis, .. } => Some(diagnosis),
            _ => None,
        }
    }

    /// Exit 6 in words, when the release was refused or rolled back.
    pub fn error(&self) -> Option<anyhow::Error> {
        let release = self.release.name.clone();
        match self.ending.clone() {
            Ending::Refused { serving, diagnosis } => Some(Failure::Refused { release, serving, diagnosis }.into()),
            Ending::RolledBack { to, diagnosis } => {
                Some(Failure::RolledBack { release, previous: to, diagnosis }.into())
            }
            _ => None,
        }
    }
}

/// Seconds each step took, for the receipt.
#[derive(Default)]
struct Timings(BTreeMap<String, f64>);

impl Timings {
    fn since(&mut self, step: &str, started: Instant) {
        self.0.insert(step.to_string(), (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    }
}

/// The state, cleaned of what a killed deploy left: its candidate still running, its
/// unfinished (pending) releases. Under the lock, so no deploy is using them.
pub async fn settle(t: &mut dyn Target, p: &Printer) -> Result<Snapshot> {
    let state = t.state().await?;
    let unfinished = prune::unfinished(&state.releases, state.current.as_deref());
    if state.candidate.is_none() && unfinished.is_empty() {
        return Ok(state);
    }
    p.warn(format!("cleaning up after an interrupted deploy {}", t.place()));
    t.clean_up(&unfinished).await?;
    for name in &unfinished {
        p.detail(format!("removed unfinished release {name}"));
    }
    t.state().await
}

/// Makes `artifact` the healthy serving release of `t`, or leaves the serving one serving.
/// The caller holds the target's lock.
pub async fn ship(t: &mut dyn Target, artifact: &Artifact, timeout: Duration, p: &Printer) -> Result<Outcome> {
    let state = settle(t, p).await?;
    let config = t.config_hash().await?;
    if let Some(unchanged) = already_serving(t, &state, artifact, &config).await {
        return Ok(unchanged);
    }
    let mut timings = Timings::default();
    let started = Instant::now();
    let step = p.step(format!("preparing {} (packages, configuration, units)", t.place()));
    t.prepare(p).await?;
    step.done("");
    timings.since("prepare", started);

    let started = Instant::now();
    let mut release = install(t, &state, artifact, p).await?;
    release.config = Some(config);
    timings.since("upload", started);
    // Where a failure goes back to: what serves now, if it is good and another release.
    let back_to = state
        .current()
        .filter(|r| r.is_good() && r.name != release.name)
        .or(release::previous_good(&state.releases, Some(&release.name)))
        .cloned();

    if t.has_candidate() {
        let started = Instant::now();
        let refused = check_candidate(t, &mut release, timeout, p).await?;
        timings.since("check", started);
        if let Some(diagnosis) = refused {
            return refuse(t, &state, release, timings, diagnosis).await;
        }
    }
    // Whether the serving release can be reached from here now: if not (a firewall, a
    // security group), a rollback can be judged only on the target.
    let reachable_before = state.serving && t.reachable().await;

    let started = Instant::now();
    let step = p.step(format!("switching to {}", release.name));
    let since = t.switch(&release.name, p).await?;
    let health = t.check(Slot::Serving, artifact.want(), true, timeout).await;
    timings.since("switch", started);
    release.timings = timings.0;
    match health {
        Ok(status) => {
            step.done(format!("healthy, v{} ({})", status.version, status.git_sha));
            release.verdict = Verdict::Healthy;
            release.diagnosis = None;
            t.record(&release).await?;
            prune(t, &release.name, p).await?;
            let replaced = state.current.clone().filter(|c| *c != release.name);
            Ok(Outcome { release, ending: Ending::Deployed { replaced }, status: Some(status) })
        }
        Err(unhealthy) => {
            step.fail("unhealthy");
            let diagnosis = failed_after_switch(t, &mut release, &unhealthy, since, p).await;
            roll_back(t, release, back_to, diagnosis, reachable_before, timeout, p).await
        }
    }
}

/// The outcome of a deploy with nothing to do: `artifact` serves already, healthy, with
/// this configuration.
async fn already_serving(t: &mut dyn Target, state: &Snapshot, artifact: &Artifact, config: &str) -> Option<Outcome> {
    let current = state.current()?;
    if current.sha256 != artifact.sha256
        || !current.is_good()
        || current.config.as_deref() != Some(config)
        || !state.serving
    {
        return None;
    }
    let status = t.check(Slot::Serving, artifact.want(), true, Duration::ZERO).await.ok()?;
    Some(Outcome { release: current.clone(), ending: Ending::Unchanged, status: Some(status) })
}

/// Whether a deploy of `artifact` to `t` would have nothing to do (a fleet does not take
/// such a host out of rotation).
pub async fn would_be_unchanged(t: &mut dyn Target, artifact: &Artifact) -> Result<bool> {
    let state = t.state().await?;
    let config = t.config_hash().await?;
    Ok(already_serving(t, &state, artifact, &config).await.is_some())
}

/// The release of `artifact`: one the target has already (not failed), or a new one sent.
async fn install(t: &mut dyn Target, state: &Snapshot, artifact: &Artifact, p: &Printer) -> Result<Receipt> {
    let existing = state.releases.iter().rev().find(|r| r.sha256 == artifact.sha256 && r.verdict != Verdict::Failed);
    if let Some(r) = existing {
        p.detail(format!("{} has this artifact already as {}: no upload", t.place(), r.name));
        return Ok(r.clone());
    }
    let receipt = Receipt::new(artifact);
    let step = p.step(format!("uploading release {} ({})", receipt.name, size(artifact)));
    t.install(artifact, &receipt, p).await?;
    step.done("sha256 verified");
    Ok(receipt)
}

/// Runs the release beside the serving one, on loopback: a release that cannot start or
/// answers badly is refused before it takes a single request. The diagnosis when it is.
async fn check_candidate(
    t: &mut dyn Target,
    release: &mut Receipt,
    timeout: Duration,
    p: &Printer,
) -> Result<Option<String>> {
    let step = p.step(format!("checking {} beside the serving release", release.name));
    let since = t.start_candidate(&release.name).await?;
    let checked = t.check(Slot::Candidate, release.want(), false, timeout).await;
    let refused = match &checked {
        Ok(_) => None,
        Err(unhealthy) => {
            release.diagnosis = Some(unhealthy.to_string());
            Some(diagnosis(unhealthy, &t.diagnose(Slot::Candidate, since).await))
        }
    };
    t.stop_candidate().await?;
    match refused {
        Some(_) => step.fail("unhealthy"),
        None => step.done("healthy"),
    }
    Ok(refused)
}

/// A release refused as a candidate: recorded as failed and set aside; what served serves.
async fn refuse(
    t: &mut dyn Target,
    state: &Snapshot,
    mut release: Receipt,
    timings: Timings,
    diagnosis: String,
) -> Result<Outcome> {
    release.verdict = Verdict::Failed;
    release.timings = timings.0;
    t.record(&release).await?;
    if state.current.as_deref() != Some(release.name.as_str()) {
        t.set_aside(&release.name).await?;
    }
    let Some(serving) = state.current.clone().filter(|_| state.serving) else {
        anyhow::bail!("release {} is unhealthy, and nothing was serving before it: {diagnosis}", release.name);
    };
    Ok(Outcome { release, ending: Ending::Refused { serving, diagnosis }, status: None })
}

/// A release unhealthy after the switch (since `since`): marked failed, and the diagnosis
/// with what its logs add, said now and returned for the rollback's report.
async fn failed_after_switch(
    t: &mut dyn Target,
    release: &mut Receipt,
    unhealthy: &Unhealthy,
    since: crate::targets::Mark,
    p: &Printer,
) -> String {
    let diagnosis = diagnosis(unhealthy, &t.diagnose(Slot::Serving, since).await);
    p.warn(format!("release {} is unhealthy: {diagnosis}", release.name));
    release.verdict = Verdict::Failed;
    release.diagnosis = Some(unhealthy.to_string());
    diagnosis
}

/// After a failed switch: back to `back_to`, checked from here when it could be reached
/// from here before, on the target only when not.
async fn roll_back(
    t: &mut dyn Target,
    release: Receipt,
    back_to: Option<Receipt>,
    diagnosis: String,
    reachable_before: bool,
    timeout: Duration,
    p: &Printer,
) -> Result<Outcome> {
    let Some(back) = back_to else {
        t.record(&release).await?;
        anyhow::bail!(
            "release {} is unhealthy and there is no previous good release {} to go back to: {diagnosis}",
            release.name,
            t.place()
        );
    };
    let step = p.step(format!("rolling back to {}", back.name));
    t.switch(&back.name, p).await?;
    if !reachable_before {
        p.warn(format!(
            "{} was not reachable from here before this deploy either: the rollback is checked {} only",
            t.url(),
            t.place()
        ));
    }
    let rollback = t.check(Slot::Serving, back.want(), reachable_before, timeout).await;
    t.record(&release).await?;
    t.set_aside(&release.name).await?;
    match rollback {
        Ok(_) => {
            step.done("healthy again");
            prune(t, &back.name, p).await?;
            Ok(Outcome { release, ending: Ending::RolledBack { to: back.name, diagnosis }, status: None })
        }
        Err(e) => {
            step.fail("unhealthy");
            Err(Failure::RollbackFailed { release: release.name, diagnosis, rollback: e.to_string() }.into())
        }
    }
}

/// Removes what the pruning policy says is too many, `current` kept.
async fn prune(t: &mut dyn Target, current: &str, p: &Printer) -> Result<()> {
    let state = t.state().await?;
    let all: Vec<Receipt> = state.releases.into_iter().chain(state.failed).collect();
    let remove = prune::keep(&all, Some(current), prune::POLICY);
    t.remove(&remove).await?;
    for name in &remove {
        p.detail(format!("removed old release {name}"));
    }
    Ok(())
}

/// `vcctl rollback [--to RELEASE]`: switch to the release named, or the newest good one
/// before the current; checked like a deploy: beside the serving release first (an older
/// release may refuse the schema a newer one migrated), and after the switch, with the
/// serving release back when it fails. The release and what served before.
pub async fn rollback(
    t: &mut dyn Target,
    to: Option<&str>,
    timeout: Duration,
    p: &Printer,
) -> Result<(Receipt, Option<String>, Status)> {
    let state = settle(t, p).await?;
    let mut target = release::rollback_target(&state.releases, state.current.as_deref(), to, &t.place())?;
    let serving = state.current().filter(|r| state.serving && r.is_good()).cloned();
    if t.has_candidate()
        && let Some(diagnosis) = check_candidate(t, &mut target, timeout, p).await?
    {
        let Some(serving) = serving else {
            return Err(release::requested_rollback_failed(target.name, diagnosis));
        };
        return Err(Failure::Refused { release: target.name, serving: serving.name, diagnosis }.into());
    }
    let reachable_before = serving.is_some() && t.reachable().await;
    let step = p.step(format!("switching to release {}", target.name));
    let since = t.switch(&target.name, p).await?;
    match t.check(Slot::Serving, target.want(), true, timeout).await {
        Ok(status) => {
            step.done("healthy");
            target.verdict = Verdict::Healthy;
            t.record(&target).await?;
            Ok((target, state.current, status))
        }
        Err(unhealthy) => {
            step.fail("unhealthy");
            let diagnosis = failed_after_switch(t, &mut target, &unhealthy, since, p).await;
            let outcome = roll_back(t, target, serving, diagnosis, reachable_before, timeout, p).await?;
            Err(outcome.error().expect("a rollback that went back is a failure"))
        }
    }
}

/// An unhealthy verdict and what the target's logs add to it.
fn diagnosis(unhealthy: &Unhealthy, logs: &str) -> String {
    let logs = logs.trim_end();
    if logs.is_empty() { unhealthy.to_string() } else { format!("{unhealthy}\n{logs}") }
}

fn size(a: &Artifact) -> String {
    let bytes = std::fs::metadata(&a.path).map(|m| m.len()).unwrap_or(0);
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// How long a restored service has to answer healthy.
pub const RESTORED_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// After a restore changed the serving release's data under it: its health, as a step
/// ("checking the service on {what}"); `Err` is why it is unhealthy.
pub async fn check_restored(
    printer: &Printer,
    target: &mut dyn Target,
    what: &str,
) -> std::result::Result<(), crate::health::Unhealthy> {
    let step = printer.step(format!("checking the service on {what}"));
    match target.check(crate::targets::Slot::Serving, None, true, RESTORED_HEALTH_TIMEOUT).await {
        Ok(s) => {
            step.done(format!("v{} ({})", s.version, s.git_sha));
            Ok(())
        }
        Err(why) => {
            step.fail("unhealthy");
            Err(why)
        }
    }
}

/// Appends to the target's audit trail; a trail that cannot be written is said, never fatal
/// (the deploy, rollback or destroy it records has happened).
pub async fn audit(printer: &Printer, target: &mut dyn Target, action: &str, (subject, result): &(String, String)) {
    let entry = crate::audit::Entry::now(action, subject, result);
    if let Err(e) = target.audit(&entry).await {
        printer.warn(format!("could not write the audit trail {}: {e:#}", target.place()));
    }
}

/// The workflow's order, step by step, on a target that records what it is asked
/// (`targets::fake`): every branch without a host.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::Verbosity;
    use crate::targets::fake::{FakeTarget, artifact};

    fn quiet() -> Printer {
        Printer::new(false, Verbosity::Quiet)
    }

    fn ship_to(t: &mut FakeTarget, release: &str) -> Result<Outcome> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(ship(t, &artifact(release), Duration::from_secs(1), &quiet()))
    }

    #[test]
    fn a_release_is_prepared_installed_checked_beside_switched_checked_recorded_then_pruned() {
        let mut t = FakeTarget::serving("r1");
        let o = ship_to(&mut t, "r2").unwrap();
        assert_eq!(o.ending, Ending::Deployed { replaced: Some("r1".into()) });
        assert_eq!(
            t.steps(),
            [
                "prepare",
                "install r2",
                "start_candidate r2",
                "check candidate r2",
                "stop_candidate",
                "switch r2",
                "check serving r2",
                "record r2 healthy",
                "remove",
            ]
        );
    }

    #[test]
    fn the_release_that_serves_healthy_already_is_no_change() {
        let mut t = FakeTarget::serving("r1");
        let o = ship_to(&mut t, "r1").unwrap();
        assert_eq!(o.ending, Ending::Unchanged);
        assert_eq!(t.steps(), ["check serving r1"], "looked at, nothing changed");
    }

    #[test]
    fn a_bad_candidate_never_takes_traffic_and_is_set_aside() {
        let mut t = FakeTarget::serving("r1");
        t.bad_candidate.insert("r2".into());
        let o = ship_to(&mut t, "r2").unwrap();
        assert!(matches!(&o.ending, Ending::Refused { serving, .. } if serving == "r1"), "{:?}", o.ending);
        assert_eq!(
            t.steps(),
            [
                "prepare",
                "install r2",
                "start_candidate r2",
                "check candidate r2",
                "diagnose",
                "stop_candidate",
                "record r2 failed",
                "set_aside r2",
            ]
        );
        assert!(!t.calls.iter().any(|c| c.starts_with("switch")), "no switch: {:?}", t.calls);
        assert_eq!(t.current.as_deref(), Some("r1"));
    }

    #[test]
    fn unhealthy_after_the_switch_goes_back_then_records_sets_aside_and_prunes() {
        let mut t = FakeTarget::serving("r1");
        t.has_candidate = false;
        t.bad_serving.insert("r2".into());
        let o = ship_to(&mut t, "r2").unwrap();
        assert!(matches!(&o.ending, Ending::RolledBack { to, .. } if to == "r1"), "{:?}", o.ending);
        assert_eq!(
            t.steps(),
            [
                "prepare",
                "install r2",
                "switch r2",
                "check serving r2",
                "diagnose",
                "switch r1",
                "check serving r1",
                "record r2 failed",
                "set_aside r2",
                "remove",
            ]
        );
    }

    #[test]
    fn a_failed_rollback_is_its_own_error_and_nothing_bad_is_recorded_good() {
        let mut t = FakeTarget::serving("r1");
        t.has_candidate = false;
        t.bad_serving.extend(["r1".to_string(), "r2".to_string()]);
        let e = ship_to(&mut t, "r2").unwrap_err();
        assert!(matches!(e.downcast_ref::<Failure>(), Some(Failure::RollbackFailed { .. })), "{e:#}");
        assert!(t.calls.contains(&"record r2 failed".to_string()), "{:?}", t.calls);
        assert!(!t.calls.iter().any(|c| c.ends_with("healthy")), "{:?}", t.calls);
    }

    #[test]
    fn what_a_killed_deploy_left_is_settled_first() {
        let mut t = FakeTarget::serving("r1");
        t.releases.push(Receipt::new(&artifact("r0-pending")));
        t.candidate = Some("r0-pending".into());
        ship_to(&mut t, "r2").unwrap();
        assert_eq!(t.steps().first(), Some(&"clean_up r0-pending"), "{:?}", t.calls);
    }

    #[test]
    fn a_first_release_with_nothing_to_go_back_to_fails_and_is_recorded_failed() {
        let mut t = FakeTarget { has_candidate: false, ..FakeTarget::default() };
        t.bad_serving.insert("r1".into());
        let e = ship_to(&mut t, "r1").unwrap_err();
        assert!(format!("{e:#}").contains("no previous good release"), "{e:#}");
        assert_eq!(t.steps().last(), Some(&"record r1 failed"));
    }
}
