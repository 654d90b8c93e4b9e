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
pub struct Member {
    pub name: String,
    pub key: String,
    pub target: HostTarget,
}

/// What a rolling deploy did, host by host.
pub struct Shipped {
    pub release: String,
    /// (host, what happened there), in order.
    pub hosts: Vec<(String, String)>,
    pub failure: Option<anyhow::Error>,
}

/// The rolling deploy of `artifact` over `members`, in rotation `rotation`.
pub async fn roll(
    p: &Printer,
    rotation: &mut dyn Rotation,
    members: &mut [Member],
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
async fn drain(
    p: &Printer,
    rotation: &mut dyn Rotation,
    batch: &mut [Member],
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
async fn ship_batch(
    p: &Printer,
    rotation: &mut dyn Rotation,
    batch: &mut [Member],
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
                r.shipped.hosts.push((m.name.clone(), ending(&o.ending)));
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
async fn roll_back(
    p: &Printer,
    rotation: &mut dyn Rotation,
    members: &mut [Member],
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

fn ending(e: &Ending) -> String {
    match e {
        Ending::Unchanged => "unchanged (already serving)".into(),
        Ending::Deployed { .. } => "deployed, healthy".into(),
        Ending::Refused { serving, .. } => format!("refused as a candidate; {serving} serves"),
        Ending::RolledBack { to, .. } => format!("unhealthy after the switch; {to} serves again"),
    }
}
