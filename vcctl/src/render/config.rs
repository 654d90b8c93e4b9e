//! The configuration a release runs with, rendered here and hashed. The hash goes into the
//! release's receipt: a redeploy of the same binary with another configuration (an ingest
//! token turned on, another retention) is a change, checked and switched like a new binary.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::render;
use crate::settings::Settings;

/// Where an app host of a fleet keeps the db host's certificate, which its service pins, or
/// an external database's authorities. Read by the service itself (not root): outside
/// /etc/vehicleconnect (0700).
pub const DATABASE_CERT: &str = "/opt/vehicleconnect/database.pem";
pub const DATABASE_CA: &str = "/opt/vehicleconnect/database-ca.pem";

/// A fleet's database as its app hosts see it.
#[derive(Debug, Clone)]
pub enum FleetDatabase {
    /// PostgreSQL on the stack's db host: its address, and the certificate it presents
    /// (pinned by the service: `VC_DATABASE_CERT`).
    Host { host: String, cert: String },
    /// An external database: its URL is the app hosts' secret `secret`, copied into their
    /// env file on each host; `ca`, the authorities its certificate chains to
    /// (`VC_DATABASE_CA`: TLS verified), when the stack names them.
    External { secret: String, ca: Option<String> },
}

impl FleetDatabase {
    /// The file the service reads to trust the database, and the env line naming it.
    pub fn trust(&self) -> Option<(File, String)> {
        let (path, text, var) = match self {
            FleetDatabase::Host { cert, .. } => (DATABASE_CERT, cert, "VC_DATABASE_CERT"),
            FleetDatabase::External { ca: Some(ca), .. } => (DATABASE_CA, ca, "VC_DATABASE_CA"),
            FleetDatabase::External { ca: None, .. } => return None,
        };
        let file = File { path: path.into(), mode: "644", text: text.clone(), kind: FileKind::Unit };
        Some((file, format!("{var}={path}\n")))
    }

    /// The secret holding an external database's URL.
    pub fn url_secret(&self) -> Option<&str> {
        match self {
            FleetDatabase::Host { .. } => None,
            FleetDatabase::External { secret, .. } => Some(secret),
        }
    }

    /// What the configuration hash takes of it (the files are hashed as files).
    fn describe(&self) -> String {
        match self {
            FleetDatabase::Host { host, .. } => format!("database {host}"),
            FleetDatabase::External { secret, .. } => format!("database from secret {secret}"),
        }
    }
}

/// What a file on a host configures: a changed one restarts that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Prometheus,
    Unit,
    /// Caddy's configuration: a change reloads Caddy, never restarts it.
    Caddy,
    /// An app host's nftables ruleset (and its unit): a change loads it at once.
    Firewall,
}

#[derive(Debug, Clone)]
pub struct File {
    pub path: String,
    pub mode: &'static str,
    pub text: String,
    pub kind: FileKind,
}

/// Everything of a host's configuration that vcctl decides: its files, and whether the
/// service takes an ingest token (the token itself is made on the host).
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub files: Vec<File>,
    pub ingest_token: bool,
    /// Caddy serves HTTPS in front of the service (`tls:`).
    pub tls: bool,
    /// The Debian packages the host needs: PostgreSQL, Prometheus and curl on a single host,
    /// Caddy for `tls:`, botocore on AWS (the data volume's metric); curl and nftables on a
    /// fleet's app host.
    pub packages: Vec<&'static str>,
    /// An app host of a fleet: its env file as vcctl writes it (the database on the db host,
    /// the fleet's ingest token; secrets the db host made, never shown), instead of the
    /// single host's own database and Prometheus.
    pub fleet_env: Option<String>,
    /// The secret an app host copies its `DATABASE_URL` from (an external database).
    pub database_url_secret: Option<String>,
    /// Where the fleet's database is, hashed (the env file is not: it holds secrets).
    pub fleet_database: Option<String>,
    /// An instance of a `scale:` stack's group: its env file is its boot's (templates/boot.sh:
    /// its database role, the bucket's token); vcctl writes the units, and the token line.
    pub group_instance: bool,
    /// A group instance's ingest token, as the bucket holds it (`None`: the service takes
    /// none), written into its env file by every deploy, so that turning the token on or off
    /// reaches the running instances. A secret: never hashed.
    pub instance_token: Option<String>,
    /// A group instance's secrets file, as the bucket holds it (`vcctl secrets`), written by
    /// every deploy; its names and times, never its values, are in the hash.
    pub instance_secrets: Option<String>,
}

impl HostConfig {
    pub fn of(settings: &Settings, prometheus_listen: &str) -> Result<HostConfig> {
        let prometheus = render::prometheus(&settings.stack, &[format!("127.0.0.1:{}", settings.port)])?;
        let defaults = render::prometheus_defaults(&settings.stack, prometheus_listen);
        let mut files = vec![
            File {
                path: "/etc/prometheus/prometheus.yml".into(),
                mode: "644",
                text: prometheus,
                kind: FileKind::Prometheus,
            },
            File { path: "/etc/default/prometheus".into(), mode: "644", text: defaults, kind: FileKind::Prometheus },
            File {
                path: render::PROMETHEUS_RULES_PATH.into(),
                mode: "644",
                text: render::PROMETHEUS_RULES.into(),
                kind: FileKind::Prometheus,
            },
        ];
        for (path, text) in render::units(settings, false)? {
            files.push(File { path, mode: "644", text, kind: FileKind::Unit });
        }
        if let Some(tls) = &settings.tls {
            if let Some(text) = acme_roots(settings)? {
                files.push(File { path: render::ACME_ROOTS.into(), mode: "644", text, kind: FileKind::Caddy });
            }
            let text = render::caddyfile(settings, tls, tls.trust_ca.is_some())?;
            files.push(File { path: "/etc/caddy/Caddyfile".into(), mode: "644", text, kind: FileKind::Caddy });
        }
        let mut packages = vec!["postgresql", "prometheus", "curl"];
        if settings.tls.is_some() {
            packages.push("caddy");
        }
        if matches!(settings.provider, crate::stack::Provider::Aws(_)) {
            packages.push("python3-botocore");
        }
        Ok(HostConfig {
            files,
            ingest_token: settings.ingest_token,
            tls: settings.tls.is_some(),
            packages,
            fleet_env: None,
            database_url_secret: None,
            fleet_database: None,
            group_instance: false,
            instance_token: None,
            instance_secrets: None,
        })
    }

    /// An app host of a fleet: the service and its firewall (its port admits `admitted`
    /// only: the load balancer's and Prometheus's hosts); `env` is its env file.
    pub fn fleet_app(settings: &Settings, env: String, db: &FleetDatabase, admitted: &[String]) -> Result<HostConfig> {
        let mut files: Vec<File> = render::units(settings, true)?
            .into_iter()
            .map(|(path, text)| File { path, mode: "644", text, kind: FileKind::Unit })
            .collect();
        files.extend(db.trust().map(|(file, _)| file));
        files.push(File {
            path: "/etc/vehicleconnect/firewall.nft".into(),
            mode: "644",
            text: render::app_firewall(&settings.stack, settings.port, admitted)?,
            kind: FileKind::Firewall,
        });
        files.push(File {
            path: "/etc/systemd/system/vehicleconnect-firewall.service".into(),
            mode: "644",
            text: render::render(render::FIREWALL_UNIT, &[("stack", &settings.stack)])?,
            kind: FileKind::Firewall,
        });
        Ok(HostConfig {
            files,
            ingest_token: settings.ingest_token,
            tls: false,
            packages: vec!["curl", "nftables"],
            fleet_env: Some(env),
            database_url_secret: db.url_secret().map(str::to_string),
            fleet_database: Some(db.describe()),
            group_instance: false,
            instance_token: None,
            instance_secrets: None,
        })
    }

    /// An instance of a `scale:` stack's group: the service's units as its boot wrote them
    /// (the bucket's kit); its database (RDS) and token came with its boot.
    pub fn group_instance(settings: &Settings) -> Result<HostConfig> {
        let metrics = format!("0.0.0.0:{}", render::METRICS_PORT);
        let files = render::units_with_metrics(settings, true, Some(&metrics))?
            .into_iter()
            .filter(|(path, _)| !path.contains("disk-metric"))
            .map(|(path, text)| File { path, mode: "644", text, kind: FileKind::Unit })
            .collect();
        Ok(HostConfig {
            files,
            ingest_token: settings.ingest_token,
            tls: false,
            // python3-botocore: the SSH sweep signs its calls with it.
            packages: vec!["curl", "python3-botocore"],
            fleet_env: None,
            database_url_secret: None,
            fleet_database: Some("RDS, from the instance's boot".into()),
            group_instance: true,
            instance_token: None,
            instance_secrets: None,
        })
    }

    /// The hash with the host's secrets (their names and when each was set, never a value):
    /// the plain hash when there are none, so hosts without secrets keep theirs.
    pub fn hash_with_secrets(&self, secrets: &[(String, String)]) -> String {
        if secrets.is_empty() {
            return self.hash();
        }
        let mut h = Sha256::new();
        h.update(self.hash().as_bytes());
        for (name, set) in secrets {
            h.update(format!("\n{name} {set}").as_bytes());
        }
        short(h)
    }

    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            for part in [f.path.as_str(), f.mode, f.text.as_str()] {
                h.update(part.len().to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        h.update([u8::from(self.ingest_token)]);
        h.update([u8::from(self.tls)]);
        if let Some(db) = &self.fleet_database {
            h.update(format!("\n{db}").as_bytes());
        }
        short(h)
    }
}

/// The roots Caddy trusts for a private ACME CA (`tls.trust_ca`), read from the project.
pub fn acme_roots(settings: &Settings) -> Result<Option<String>> {
    let Some(ca) = settings.tls.as_ref().and_then(|t| t.trust_ca.as_ref()) else { return Ok(None) };
    read_pem(settings, ca, "tls.trust_ca").map(Some)
}

/// What a PEM file a stack names may weigh: RDS's bundle of every region is about 150 KiB.
const PEM_LIMIT: u64 = 1024 * 1024;

/// The certificates (PEM) in `path`, named by the stack's `field`: bounded, and refused
/// (exit 3, naming the file and the field) when missing, too large or holding none.
pub fn read_pem(settings: &Settings, path: &std::path::Path, field: &str) -> Result<String> {
    use std::io::Read;
    let field = format!("{field} in `{}`", settings.stack_file.display());
    let file = std::fs::File::open(path).with_context(|| format!("reading `{}` ({field})", path.display()))?;
    let mut text = String::new();
    file.take(PEM_LIMIT + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading `{}` ({field})", path.display()))?;
    if text.len() as u64 > PEM_LIMIT || !text.contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!(crate::error::Failure::invalid(
            format!("`{}` ({field}) holds no PEM certificate, or more than {PEM_LIMIT} bytes", path.display()),
            Some("name a PEM file of the certificates (`-----BEGIN CERTIFICATE-----`)".into()),
        ));
    }
    Ok(text)
}

/// The hash of what a local stack's process is started with (its environment, `local.rs`).
pub fn local_hash(settings: &Settings, listen: &str) -> String {
    let mut h = Sha256::new();
    let env = format!(
        "listen={listen}\nkpi_interval={:?}\nretention={:?}\ningest_token={}\n",
        settings.kpi_interval, settings.retention, settings.ingest_token
    );
    h.update(env.as_bytes());
    // What the stack runs beyond the embedded store's one process (absent for it, so that
    // such a stack's hash stays what it was).
    // A change of them goes through `up`'s deploy, whose preparation starts what is missing.
    if let crate::stack::Provider::Local(l) = &settings.provider
        && (l.database != crate::stack::LocalDatabase::Embedded || l.replicas > 1 || l.prometheus.is_some())
    {
        let line = format!("database={:?}\nreplicas={}\nprometheus={:?}\n", l.database, l.replicas, l.prometheus);
        h.update(line.as_bytes());
    }
    for (k, v) in &settings.env {
        h.update(format!("{k}={v}\n").as_bytes());
    }
    short(h)
}

fn short(h: Sha256) -> String {
    format!("{:x}", h.finalize())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file the stack names as certificates that is none, too large or missing: refused,
    /// naming the file and the field, after reading at most the limit.
    #[test]
    fn a_pem_file_that_is_junk_too_large_or_missing_is_refused_naming_it() {
        let text = "name: s\nprovider: local\n";
        let stack = crate::stack::parse(std::path::Path::new("stacks/s.yaml"), text).unwrap();
        let settings = Settings::resolve(std::path::Path::new("."), stack, &Default::default());
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = format!("{:#}", read_pem(&settings, &junk, "database.ca_file").unwrap_err());
        assert!(
            err.contains(&format!(
                "`{}` (database.ca_file in `stacks/s.yaml`) holds no PEM certificate",
                junk.display()
            )),
            "{err}"
        );
        let huge = dir.path().join("huge.pem");
        let mut big = "-----BEGIN CERTIFICATE-----\n".to_string();
        big.push_str(&"A".repeat(PEM_LIMIT as usize));
        std::fs::write(&huge, big).unwrap();
        let err = format!("{:#}", read_pem(&settings, &huge, "tls.trust_ca").unwrap_err());
        assert!(err.contains("or more than 1048576 bytes"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = format!("{:#}", read_pem(&settings, &missing, "tls.trust_ca").unwrap_err());
        assert!(err.contains(&format!("reading `{}` (tls.trust_ca in `stacks/s.yaml`)", missing.display())), "{err}");
        let good = dir.path().join("good.pem");
        std::fs::write(&good, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        assert!(read_pem(&settings, &good, "tls.trust_ca").unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
