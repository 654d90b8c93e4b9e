//! The places the service runs in, behind two traits: `Target`, the small steps a deploy
//! is made of (no order and no policy: `deploy` owns those), and `Operations`, what else a
//! place offers (status, logs, destroy, database, secrets, exec, shell, tunnel). The local
//! stack (`providers/local/target.rs`) and a host over SSH (`remote.rs`) implement both;
//! `fake.rs`, for tests, records the deploy steps it is asked for.

#[cfg(test)]
pub mod fake;
pub mod remote;

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use crate::artifact::Artifact;
use crate::health::{Status, Unhealthy};
use crate::printer::Printer;
use crate::release::Receipt;

/// Which log lines to show: the last `lines`, then new ones with `follow`; on several
/// hosts, one `host` or all.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub follow: bool,
    pub lines: usize,
    pub host: Option<String>,
    /// `scale:` only: one instance's stream, and how far back.
    pub instance: Option<String>,
    pub since: Option<std::time::Duration>,
}

/// Which process a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The release that takes the traffic.
    Serving,
    /// A release checked beside it, on loopback, before it takes any.
    Candidate,
}

/// Where a start began in the target's log (a host's clock, a log file's length): a
/// diagnosis shows only that start's lines.
pub type Mark = i64;

/// The releases of a target and what serves.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Installed releases, oldest first.
    pub releases: Vec<Receipt>,
    /// Failed releases set aside (a host's `failed/`), oldest first.
    pub failed: Vec<Receipt>,
    pub current: Option<String>,
    /// The serving process runs (it may still be unhealthy).
    pub serving: bool,
    /// A candidate left running by a deploy that was killed.
    pub candidate: Option<String>,
}

impl Snapshot {
    pub fn current(&self) -> Option<&Receipt> {
        self.releases.iter().find(|r| Some(&r.name) == self.current.as_ref())
    }
}

/// What `vcctl status` prints of a target.
pub struct StatusView {
    pub json: serde_json::Value,
    pub lines: Vec<String>,
    /// More lines for `--verbose`.
    pub details: Vec<String>,
    pub healthy: bool,
}

/// Why the local stack has no database to dump.
fn no_database() -> anyhow::Error {
    crate::error::Failure::invalid(
        "the local stack keeps its events in an embedded store, not PostgreSQL",
        Some("stop it (`vcctl destroy --keep-data`) and copy its directory under .vcctl/local/".into()),
    )
    .into()
}

/// Why a target without a host keeps no secrets.
fn no_secrets() -> anyhow::Error {
    crate::error::Failure::invalid(
        "secrets are kept on a stack's host; the local stack has none",
        Some("the local service reads this machine's environment: export the variable before `vcctl up`".into()),
    )
    .into()
}

/// The steps of a deploy, as one place carries them out.
// Not `Send`: vcctl drives one deploy on one task, and a check's polling closure borrows.
#[async_trait(?Send)]
pub trait Target {
    /// The host the service runs on; `None` for this machine.
    fn host(&self) -> Option<&str>;
    /// The service as its users reach it.
    fn url(&self) -> &str;
    /// Whether a release can be checked beside the serving one before the switch.
    fn has_candidate(&self) -> bool;
    /// The hash of the configuration a release would run with now (`deploy::config`); read
    /// by a deploy under the target's lock (a host's secrets are part of it).
    async fn config_hash(&mut self) -> Result<String>;

    /// The machine's architecture (`uname -m`), when it can differ from this one's.
    async fn arch(&mut self) -> Result<Option<String>>;
    /// Waits up to `timeout` for this target's deploy lock and holds it until `unlock`.
    async fn lock(&mut self, timeout: Duration, p: &Printer) -> Result<()>;
    async fn unlock(&mut self);
    async fn state(&mut self) -> Result<Snapshot>;
    /// Stops a candidate a killed deploy left running, and deletes `unfinished` releases.
    async fn clean_up(&mut self, unfinished: &[String]) -> Result<()>;
    /// Everything the release needs beside itself (packages, database, secrets, units).
    async fn prepare(&mut self, p: &Printer) -> Result<()>;
    /// Copies `artifact` in as the release `receipt` names (checked by hash).
    async fn install(&mut self, artifact: &Artifact, receipt: &Receipt, p: &Printer) -> Result<()>;
    async fn start_candidate(&mut self, release: &str) -> Result<Mark>;
    async fn stop_candidate(&mut self) -> Result<()>;
    /// Makes `release` the serving one, and (re)starts it.
    async fn switch(&mut self, release: &str, p: &Printer) -> Result<Mark>;
    /// Looks at `slot` until it is healthy with the version `want`ed, dies, or `timeout`
    /// passes; `outside`: it must answer at `url()` from here too.
    async fn check(
        &mut self,
        slot: Slot,
        want: Option<(&str, &str)>,
        outside: bool,
        timeout: Duration,
    ) -> Result<Status, Unhealthy>;
    /// What `url()`'s certificate is checked against, and the address its name goes to.
    fn trust(&self) -> crate::http_client::Trust {
        crate::http_client::Trust::default()
    }
    /// Whether the serving release answers, healthy, at `url()` from here.
    async fn reachable(&mut self) -> bool {
        let Ok(client) = crate::http_client::client_for(&self.trust()) else { return false };
        let answer = crate::health::status(&client, self.url()).await;
        matches!(answer, Ok((code, s)) if crate::health::is_healthy(code, &s))
    }
    /// What the target's own logs say about a start (`since`), for the diagnosis.
    async fn diagnose(&mut self, slot: Slot, since: Mark) -> String;
    /// Writes a release's receipt (its verdict, diagnosis, timings).
    async fn record(&mut self, receipt: &Receipt) -> Result<()>;
    /// Keeps a failed release apart from those a rollback can go to.
    async fn set_aside(&mut self, release: &str) -> Result<()>;
    async fn remove(&mut self, releases: &[String]) -> Result<()>;

    /// Appends `entry` to the target's audit trail.
    async fn audit(&mut self, entry: &crate::audit::Entry) -> Result<()>;
    async fn close(self: Box<Self>);

    /// Where, in messages: `on HOST` or `on this machine`.
    fn place(&self) -> String {
        format!("on {}", self.host().unwrap_or("this machine"))
    }
}

/// What a place the service runs in offers beside the deploy steps: its status, logs and
/// destruction, its database, secrets and data volume, a command, a shell, a tunnel. A
/// target implements what it supports; the rest answer why not.
#[async_trait(?Send)]
pub trait Operations: Target {
    async fn status(&mut self) -> Result<StatusView>;
    /// Prints the service's log on stdout (following it with `follow`; with `json`, one
    /// JSON object per line); the exit code.
    async fn logs(&mut self, lines: usize, follow: bool, json: bool) -> Result<u8>;
    /// Stops the service and deletes what the stack made there (its data too, unless
    /// `keep_data`); what was done, as JSON.
    async fn destroy(&mut self, keep_data: bool, p: &Printer) -> Result<serde_json::Value>;
    /// What `destroy` would delete, one line each, for its prompt.
    async fn doomed(&mut self, keep_data: bool) -> Result<Vec<String>>;
    async fn ingest_token(&mut self) -> Result<Option<String>>;
    /// The database as a `pg_dump -Fc` archive, written to `out`; its size in bytes.
    async fn db_dump(&mut self, out: &mut (dyn std::io::Write + Send), p: &Printer) -> Result<u64> {
        let _ = (out, p);
        Err(no_database())
    }
    /// Where `db_restore` keeps the database it replaces, in words.
    fn kept_database(&self) -> String {
        "as `vehicleconnect_previous`".into()
    }
    /// Refuses a file `db_restore` cannot take, naming what it is (before anything changes).
    fn check_dump(&self, file: &std::path::Path) -> Result<()> {
        let mut magic = [0u8; 5];
        let read = std::io::Read::read_exact(&mut std::fs::File::open(file)?, &mut magic);
        if read.is_err() || &magic != b"PGDMP" {
            let sqlite = magic.starts_with(b"SQLit");
            return Err(crate::error::Failure::invalid(
                format!(
                    "`{}` is not a pg_dump custom-format archive{}",
                    file.display(),
                    if sqlite { ": it is a local stack's embedded store" } else { "" }
                ),
                Some("make one with `vcctl db dump > FILE` (pg_dump -Fc) of a stack on PostgreSQL".into()),
            )
            .into());
        }
        Ok(())
    }
    /// Restores a `pg_dump -Fc` archive as the stack's database (the service stopped around
    /// the swap); the replaced database is kept as `vehicleconnect_previous`.
    async fn db_restore(&mut self, file: &std::path::Path, p: &Printer) -> Result<()> {
        let _ = (file, p);
        Err(no_database())
    }
    /// Stops the service and releases its data volume (to swap it: `vcctl restore`).
    async fn data_release(&mut self) -> Result<()> {
        anyhow::bail!("{} has no data volume to release", self.place())
    }
    /// Mounts the (new) data volume and starts the service on it.
    async fn data_mount(&mut self, volume: &str) -> Result<()> {
        anyhow::bail!("{} has no data volume {volume} to mount", self.place())
    }
    /// Stores a secret for the service (applied by the next deploy, checked as a candidate).
    async fn secret_set(&mut self, name: &str, value: &str) -> Result<()> {
        let _ = (name, value);
        Err(no_secrets())
    }
    async fn secret_unset(&mut self, name: &str) -> Result<()> {
        let _ = name;
        Err(no_secrets())
    }
    /// The secrets' names and when each was set.
    async fn secret_list(&mut self) -> Result<Vec<(String, String)>> {
        Err(no_secrets())
    }
    /// The last `n` entries of the audit trail, oldest first.
    async fn audit_log(&mut self, n: usize) -> Result<Vec<crate::audit::Entry>>;
    /// Runs `argv` on the target as the login user, with our terminal's streams; its exit code.
    async fn exec(&mut self, argv: &[String]) -> Result<u8> {
        let _ = argv;
        anyhow::bail!("the service runs {}: run the command here directly", self.place())
    }
    /// An interactive shell on the target; the shell's exit code.
    async fn shell(&mut self) -> Result<u8> {
        anyhow::bail!("the service runs {}: there is no host to log in to", self.place())
    }
    /// Forwards `local` on this machine to `remote_port` on the target's loopback, for as
    /// long as the connection lasts; `false` once it has dropped.
    async fn forward(&mut self, local: std::net::SocketAddr, remote_port: u16) -> Result<()> {
        let _ = (local, remote_port);
        anyhow::bail!("the service runs {}: there is nothing to tunnel to", self.place())
    }
    /// Whether the target's connection still works (a tunnel's).
    async fn alive(&mut self) -> bool {
        true
    }
}
