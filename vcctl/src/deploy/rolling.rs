//! The one rolling deploy, for every stack with several hosts behind a load balancer: each
//! host (or batch of `--parallel` hosts) leaves the rotation, takes the release through the
//! one deploy workflow (`deploy::ship`: candidate check, switch, check), and comes back once
//! healthy, from the host and through the load balancer. The first batch with a failure
//! stops it, and the hosts switched before it go back to what they served. What the
//! rotation is (Caddy on a fleet's lb host, an AWS target group) is the caller's.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use crate::artifact::Artifact;
use crate::deploy::{self, Ending};
use crate::printer::Printer;
use crate::targets::Target;
use crate::targets::remote::HostTarget;

/// The load balancer's set of hosts that take requests.
#[async_trait]
pub trait Rotation: Send {
    /// Sends requests to `keys` only; returns once a host taken out has no request left in
    /// flight and one put in is healthy there.
    async fn set(&mut self, keys: &[String], p: &Printer) -> Result<()>;
    /// Whether the service answers healthy through the load balancer, within `timeout`.
    async fn healthy(&mut self, timeout: Duration, p: &Printer) -> Result<()>;
}

/// One host of a rolling deploy: its name (what is said), its key in the rotation, and its
/// deploy target.
pub struct RollingHost<T = HostTarget> {
    pub name: String,
    pub key: String,
    pub target: T,
}

/// What a rolling deploy did, host by host.
pub struct Shipped {
    pub release: String,
    /// (host, what happened there), in order.
    pub hosts: Vec<(String, String)>,
    pub failure: Option<anyhow::Error>,
}

/// The rolling deploy of `artifact` over `members`, in rotation `rotation`.
pub async fn roll<T: Target>(
    p: &Printer,
    rotation: &mut dyn Rotation,
    members: &mut [RollingHost<T>],
    artifact: &Artifact,
    args: &crate::deploy::Options,
) -> Result<Shipped> {
    let mut keys = Vec::new();
    for m in members.iter_mut() {
        if m.target.state().await?.serving {
            keys.push(m.key.clone());
        }
    }
    // Hosts out of rotation (new ones) first: they take the release without taking any
    // traffic, then relieve the others.
    members.sort_by_key(|m| keys.contains(&m.key));
    rotation.set(&keys, p).await?;
    let shipped = Shipped { release: String::new(), hosts: Vec::new(), failure: None };
    let mut r = Rolling { rotation: keys, shipped, switched: Vec::new() };
    let total = members.len();
    let mut first = 0;
    while first < total {
        let batch = &mut members[first..total.min(first + usize::from(args.parallel.max(1)))];
        let names = batch.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        let of = match batch.len() {
            1 => format!("{} of {total}", first + 1),
            n => format!("{}-{} of {total}", first + 1, first + n),
        };
        p.info(format!("\n{names} ({of})"));
        let size = batch.len();
        drain(p, rotation, batch, artifact, &mut r.rotation).await?;
        let failure = ship_batch(p, rotation, batch, first, artifact, args, &mut r).await?;
        let failure = match failure {
            None => rotation.healthy(args.health_timeout, p).await.err().map(|e| (names, e)),
            some => some,
        };
        if let Some((host, e)) = failure {
            let e = e.context(format!("the deploy stopped at {host}"));
            roll_back(p, rotation, members, args, &mut r).await;
            r.shipped.failure = Some(e);
            return Ok(r.shipped);
        }
        first += size;
    }
    Ok(r.shipped)
}

/// What a rolling deploy keeps as it goes: the rotation the load balancer has, the report,
/// and the hosts switched so far (index, the release each served before).
struct Rolling {
    rotation: Vec<String>,
    shipped: Shipped,
    switched: Vec<(usize, String)>,
}

/// Takes the hosts of `batch` that will change out of the rotation, unless nothing would
/// change on one, and never the last host serving: that one restarts in place, its socket
/// holding the requests meanwhile, as on one host.
async fn drain<T: Target>(
    p: &Printer,
    rotation: &mut dyn Rotation,
    batch: &mut [RollingHost<T>],
    artifact: &Artifact,
    keys: &mut Vec<String>,
) -> Result<()> {
    let before = keys.len();
    for m in batch.iter_mut() {
        if keys.contains(&m.key) && keys.len() > 1 && !deploy::would_be_unchanged(&mut m.target, artifact).await? {
            keys.retain(|k| *k != m.key);
        }
    }
    if keys.len() != before {
        rotation.set(keys, p).await?;
    }
    Ok(())
}

/// Ships the release to every host of `batch` at once, each checked on its own, and puts
/// those serving back in rotation. The first failure, with its host, is the answer; the
/// hosts that switched are added to `r.switched` (their index from `first`) either way.
async fn ship_batch<T: Target>(
    p: &Printer,
    rotation: &mut dyn Rotation,
    batch: &mut [RollingHost<T>],
    first: usize,
    artifact: &Artifact,
    args: &crate::deploy::Options,
    r: &mut Rolling,
) -> Result<Option<(String, anyhow::Error)>> {
    let alone = batch.len() == 1;
    let outcomes = futures_util::future::join_all(batch.iter_mut().map(|m| {
        let p = if alone { p.clone() } else { p.for_host(&m.name) };
        async move { deploy::ship(&mut m.target, artifact, args.health_timeout, &p).await }
    }))
    .await;
    let before = r.rotation.len();
    let mut failure = None;
    for (k, (m, outcome)) in batch.iter_mut().zip(outcomes).enumerate() {
        if m.target.state().await.map(|s| s.serving).unwrap_or(false) && !r.rotation.contains(&m.key) {
            r.rotation.push(m.key.clone());
        }
        let error = match outcome {
            Ok(o) => {
                r.shipped.release = o.release.name.clone();
                r.shipped.hosts.push((m.name.clone(), o.ending.describe()));
                let error = o.error();
                if let (Ending::Deployed { replaced: Some(prev) }, None) = (&o.ending, &error) {
                    r.switched.push((first + k, prev.clone()));
                }
                error
            }
            Err(e) => Some(e),
        };
        if let (None, Some(e)) = (&failure, error) {
            failure = Some((m.name.clone(), e));
        }
    }
    if r.rotation.len() != before {
        rotation.set(&r.rotation, p).await?;
    }
    Ok(failure)
}

/// The hosts switched before the one that failed go back to what they served.
async fn roll_back<T: Target>(
    p: &Printer,
    rotation: &mut dyn Rotation,
    members: &mut [RollingHost<T>],
    args: &crate::deploy::Options,
    r: &mut Rolling,
) {
    let Rolling { rotation: keys, shipped, switched } = r;
    for (i, previous) in switched.iter().rev() {
        let m = &mut members[*i];
        p.info(format!("\n{}: back to {previous}", m.name));
        if keys.iter().any(|k| *k != m.key) {
            keys.retain(|k| *k != m.key);
        }
        let back = match rotation.set(keys, p).await {
            Ok(()) => deploy::rollback(&mut m.target, Some(previous), args.health_timeout, p).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let what = match &back {
            Ok(()) => format!("rolled back to {previous}"),
            Err(e) => format!("could not roll back to {previous}: {e:#}"),
        };
        shipped.hosts.push((m.name.clone(), what));
        if m.target.state().await.map(|s| s.serving).unwrap_or(false) && !keys.contains(&m.key) {
            keys.push(m.key.clone());
            if let Err(e) = rotation.set(keys, p).await {
                p.warn(format!("could not put {} back in the load balancer: {e:#}", m.name));
            }
        }
    }
}

/// The rolling order on recording targets (`targets::fake`) behind a recording rotation.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::Verbosity;
    use crate::targets::fake::{FakeTarget, artifact};

    /// The rotation's sets and checks, in order.
    #[derive(Default)]
    struct Recorded(Vec<String>);

    #[async_trait]
    impl Rotation for Recorded {
        async fn set(&mut self, keys: &[String], _p: &Printer) -> Result<()> {
            self.0.push(format!("set [{}]", keys.join(" ")));
            Ok(())
        }
        async fn healthy(&mut self, _timeout: Duration, _p: &Printer) -> Result<()> {
            self.0.push("healthy".into());
            Ok(())
        }
    }

    fn hosts(n: usize, bad: Option<usize>) -> Vec<RollingHost<FakeTarget>> {
        (1..=n)
            .map(|i| {
                let mut target = FakeTarget::serving("r1");
                if bad == Some(i) {
                    target.bad_candidate.insert("r2".into());
                }
                RollingHost { name: format!("h{i}"), key: format!("h{i}:8000"), target }
            })
            .collect()
    }

    fn roll_out(members: &mut [RollingHost<FakeTarget>], parallel: u16) -> (Shipped, Vec<String>) {
        let options = crate::deploy::Options {
            artifact: None,
            health_timeout: Duration::from_secs(1),
            lock_timeout: Duration::from_secs(1),
            skip_unreachable: false,
            parallel,
        };
        let mut rotation = Recorded::default();
        let p = Printer::new(false, Verbosity::Quiet);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let shipped = rt.block_on(roll(&p, &mut rotation, members, &artifact("r2"), &options)).unwrap();
        (shipped, rotation.0)
    }

    #[test]
    fn one_host_at_a_time_leaves_the_rotation_takes_the_release_and_comes_back() {
        let mut members = hosts(3, None);
        let (shipped, rotation) = roll_out(&mut members, 1);
        assert!(shipped.failure.is_none());
        assert_eq!(
            rotation,
            [
                "set [h1:8000 h2:8000 h3:8000]",
                "set [h2:8000 h3:8000]",
                "set [h2:8000 h3:8000 h1:8000]",
                "healthy",
                "set [h3:8000 h1:8000]",
                "set [h3:8000 h1:8000 h2:8000]",
                "healthy",
                "set [h1:8000 h2:8000]",
                "set [h1:8000 h2:8000 h3:8000]",
                "healthy",
            ]
        );
        assert!(members.iter().all(|m| m.target.current.as_deref() == Some("r2")));
    }

    #[test]
    fn the_first_failure_stops_it_and_the_hosts_switched_before_go_back() {
        let mut members = hosts(3, Some(2));
        let (shipped, _) = roll_out(&mut members, 1);
        let failure = format!("{:#}", shipped.failure.expect("stopped"));
        assert!(failure.contains("the deploy stopped at h2"), "{failure}");
        let said: Vec<(&str, &str)> = shipped.hosts.iter().map(|(h, w)| (h.as_str(), w.as_str())).collect();
        assert_eq!(
            said,
            [("h1", "deployed, healthy"), ("h2", "refused as a candidate; r1 serves"), ("h1", "rolled back to r1"),]
        );
        let serving: Vec<_> = members.iter().map(|m| m.target.current.clone().unwrap()).collect();
        assert_eq!(serving, ["r1", "r1", "r1"], "h3 never changed, h1 went back");
        assert!(!members[2].target.calls.iter().any(|c| c.starts_with("install")));
    }

    #[test]
    fn a_batch_ships_together_and_one_host_always_serves() {
        let mut members = hosts(2, None);
        let (shipped, rotation) = roll_out(&mut members, 2);
        assert!(shipped.failure.is_none());
        // Both could leave, but the last one serving stays and restarts in place.
        assert_eq!(rotation[1], "set [h2:8000]", "{rotation:?}");
        assert!(members.iter().all(|m| m.target.current.as_deref() == Some("r2")));
    }
}
