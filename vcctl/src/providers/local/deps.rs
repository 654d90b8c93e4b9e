//! What a local stack runs beside its service when the stack file asks: a PostgreSQL cluster
//! of its own (`local.database: postgres`) and Prometheus (`local.prometheus`), from this
//! machine's binaries (vcctl installs nothing), each under the stack's supervisor.
//!
//! ```text
//! .vcctl/local/<stack>/pg/data/            the cluster (initdb; owned by `postgres` when vcctl runs as root)
//! .vcctl/local/<stack>/pg/port             the loopback port it was given, kept
//! .vcctl/local/<stack>/secrets/db_password the service's login (0600; SCRAM in the cluster)
//! .vcctl/local/<stack>/prometheus/         prometheus.yml, rules.yml, data/
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::error::Failure;

/// The role and database the service uses, as on every other shape.
pub const ROLE: &str = "vehicleconnect";
pub const DATABASE: &str = "vehicleconnect";
/// The alert rules production's Prometheus loads, loaded here too.
pub use crate::render::PROMETHEUS_RULES as RULES;

/// A binary the stack needs is not on this machine: say which package has it (exit 3).
fn missing(what: &str, debian: &str, brew: &str) -> anyhow::Error {
    Failure::invalid(
        format!("{what} is not installed on this machine, and `vcctl up` installs nothing by itself"),
        Some(format!(
            "Debian and Ubuntu: `sudo apt install {debian}`; macOS: `brew install {brew}`; then `vcctl up` again"
        )),
    )
    .into()
}

/// The directory of PostgreSQL's server programs: beside `initdb` on the PATH, else the
/// newest of Debian's `/usr/lib/postgresql/<major>/bin` or Homebrew's `postgresql@<major>`.
pub fn pg_bindir() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file());
    // Where the programs are: a PATH entry may be a link to them (the other tools are there).
    let real = on_path.and_then(|d| std::fs::canonicalize(d.join("initdb")).ok()?.parent().map(Path::to_path_buf));
    if let Some(d) = real.filter(|d| d.join("pg_isready").is_file()) {
        return Ok(d);
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for (parent, prefix) in
        [("/usr/lib/postgresql", ""), ("/opt/homebrew/opt", "postgresql@"), ("/usr/local/opt", "postgresql@")]
    {
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let major = name.strip_prefix(prefix).and_then(|m| m.parse::<u32>().ok());
            let bin = entry.path().join("bin");
            if let Some(major) = major.filter(|_| bin.join("initdb").is_file() && bin.join("postgres").is_file()) {
                found.push((major, bin));
            }
        }
    }
    found.sort();
    found.pop().map(|(_, d)| d).ok_or_else(|| missing("PostgreSQL (initdb, postgres)", "postgresql", "postgresql@15"))
}

/// Prometheus's binary, on the PATH.
pub fn prometheus_bin() -> Result<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| missing("Prometheus", "prometheus", "prometheus"))
}

/// Who runs PostgreSQL: this user, or `postgres` when vcctl runs as root (PostgreSQL refuses
/// root; Debian's package makes that user).
pub fn pg_user() -> Result<Option<String>> {
    let out = std::process::Command::new("id").arg("-u").output().context("running `id -u`")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Ok(None);
    }
    let exists = std::process::Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success());
    if !exists {
        bail!(Failure::invalid(
            "vcctl runs as root here, which PostgreSQL refuses, and there is no `postgres` user to run it as",
            Some("run vcctl as a normal user".into()),
        ));
    }
    Ok(Some("postgres".into()))
}

/// The stack's cluster: where it lives, its binaries, its port and who runs it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: PathBuf,
    pub bindir: PathBuf,
    pub port: u16,
    pub user: Option<String>,
}

impl Cluster {
    /// The cluster under `state/pg`; its port is `wanted`, else the one it was given before,
    /// else a free loopback port (kept in `pg/port`).
    pub fn of(state: &Path, wanted: Option<u16>) -> Result<Cluster> {
        let dir = state.join("pg");
        let bindir = pg_bindir()?;
        let user = pg_user()?;
        let kept = std::fs::read_to_string(dir.join("port")).ok().and_then(|p| p.trim().parse().ok());
        let port = match wanted.or(kept) {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        Ok(Cluster { dir, bindir, port, user })
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The service's URL, with `password`.
    pub fn url(&self, password: &str) -> String {
        format!("postgres://{ROLE}:{password}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// A PostgreSQL tool of the cluster's version, as the user that runs it.
    pub fn tool(&self, name: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bindir.join(name));
        if let Some(user) = &self.user {
            cmd = std::process::Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(self.bindir.join(name));
        }
        cmd
    }

    /// Makes the cluster if it does not exist: the service's role (a SCRAM password from
    /// `password`) owns it. Whether it was made now.
    pub fn ensure(&self, password: &str) -> Result<bool> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join("port"), format!("{}\n", self.port))?;
        if self.data().join("PG_VERSION").is_file() {
            return Ok(false);
        }
        let pwfile = self.dir.join(".pwfile");
        write_private(&pwfile, password)?;
        if let Some(user) = &self.user {
            chown(&self.dir, user)?;
            chown(&pwfile, user)?;
        }
        let out = self
            .tool("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", ROLE, "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .context("running initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(self.data());
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(true)
    }

    /// The server's command line: loopback only, its socket in the cluster's directory.
    pub fn command(&self) -> Vec<OsString> {
        let run = self.dir.join("run");
        let mut out: Vec<OsString> = vec![self.bindir.join("postgres").into(), "-D".into(), self.data().into()];
        for setting in [
            "listen_addresses=127.0.0.1".to_string(),
            format!("port={}", self.port),
            format!("unix_socket_directories={}", run.display()),
        ] {
            out.push("-c".into());
            out.push(setting.into());
        }
        out
    }

    /// Makes the socket directory (owned by the server's user).
    pub fn prepare_run(&self) -> Result<()> {
        let run = self.dir.join("run");
        std::fs::create_dir_all(&run)?;
        if let Some(user) = &self.user {
            chown(&run, user)?;
        }
        Ok(())
    }

    /// Whether the server takes connections now (`pg_isready`).
    pub fn is_ready(&self) -> bool {
        std::process::Command::new(self.bindir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits until the server takes connections, for at most `patience`.
    pub async fn wait_ready(&self, patience: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if started.elapsed() > patience {
                bail!("PostgreSQL did not take connections on 127.0.0.1:{} within {patience:?}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes the service's database if it does not exist.
    pub fn ensure_database(&self, password: &str) -> Result<()> {
        let out = std::process::Command::new(self.bindir.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE, "-O", ROLE, DATABASE])
            .env("PGPASSWORD", password)
            .output()
            .context("running createdb")?;
        let said = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || said.contains("already exists") {
            return Ok(());
        }
        bail!("createdb {DATABASE} failed: {}", said.trim())
    }
}

/// Writes `text` to a new file only its owner reads.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(())
}

/// Gives `path` (and, for a directory, what is in it) to `user`.
fn chown(path: &Path, user: &str) -> Result<()> {
    let status = std::process::Command::new("chown").args(["-R", user]).arg(path).status()?;
    anyhow::ensure!(status.success(), "could not give `{}` to user {user}", path.display());
    Ok(())
}

/// Prometheus's configuration for a local stack: the service's replicas scraped every 15 s
/// (`targets`, `host:port`), itself, and production's alert rules (`rules`, a path).
pub fn prometheus_config(stack: &str, targets: &[String], rules: &Path, port: u16) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "# Written by vcctl for the local stack {stack}: Prometheus beside the service, as in production.\n\
         global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n  external_labels:\n    stack: \"{stack}\"\n\
         rule_files:\n  - \"{}\"\n\
         scrape_configs:\n  - job_name: vehicleconnect\n    scrape_interval: 15s\n    static_configs:\n      - targets: [{}]\n\
         \x20 - job_name: prometheus\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n",
        rules.display(),
        targets.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_scrapes_each_replica_with_productions_rules() {
        let text = super::prometheus_config(
            "lab",
            &["127.0.0.1:8000".into(), "127.0.0.1:8001".into()],
            std::path::Path::new("/s/prometheus/rules.yml"),
            9090,
        );
        assert!(text.contains("targets: [\"127.0.0.1:8000\", \"127.0.0.1:8001\"]"), "{text}");
        assert!(text.contains("rule_files:\n  - \"/s/prometheus/rules.yml\""), "{text}");
        assert!(text.contains("  - job_name: prometheus\n"), "{text}");
        assert!(super::RULES.contains("alert:"), "production's rules");
    }
}
