//! The `ssh` provider's hosts: one host (`ssh.host`, every role on it) or a fleet (`hosts:`,
//! each with its roles, and `database:`). Checked here, with the position of every problem:
//! a host listed twice, an unknown or repeated role, a role no host has or two hosts claim.

use std::path::{Path, PathBuf};

use super::yaml::{Section, StackError};

/// What a host does in a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the service.
    App,
    /// Runs Caddy, which spreads requests over the app hosts; holds the stack's deploy lock.
    Lb,
    /// Runs PostgreSQL (`database: {host_role: db}`).
    Db,
    /// Runs Prometheus, which scrapes every app host.
    Monitoring,
}

pub const ROLES: [(&str, Role); 4] =
    [("app", Role::App), ("lb", Role::Lb), ("db", Role::Db), ("monitoring", Role::Monitoring)];

impl Role {
    pub fn name(self) -> &'static str {
        ROLES.iter().find(|(_, r)| *r == self).map(|(n, _)| *n).expect("every role has a name")
    }
}

/// One host of an `ssh` stack and how to log in to it (the stack's `ssh:` defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
    /// The host's public key (`ssh-ed25519 AAAA...`), pinned before the first contact.
    pub host_key: Option<String>,
    pub roles: Vec<Role>,
}

impl HostSpec {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Where the service's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// PostgreSQL installed and run by vcctl on the `db` host (the single host's own).
    OnHost,
    /// An external database: its URL is the app hosts' secret `name` (`vcctl secrets set`);
    /// its certificate chains to an authority of `ca_file` (a local PEM bundle), which the
    /// service then requires (TLS verified for the URL's host).
    UrlSecret { name: String, ca_file: Option<PathBuf> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    /// In file order; the single-host form is one host with every role.
    pub hosts: Vec<HostSpec>,
    pub database: Database,
    /// Let Prometheus (9090) listen on every address instead of 127.0.0.1 only.
    pub expose_prometheus: bool,
}

impl SshSettings {
    /// Several hosts (or one without every role): the fleet workflow, behind a load balancer.
    pub fn is_fleet(&self) -> bool {
        !(self.hosts.len() == 1 && ROLES.iter().all(|(_, r)| self.hosts[0].has(*r)))
    }

    pub fn with(&self, role: Role) -> impl Iterator<Item = &HostSpec> {
        self.hosts.iter().filter(move |h| h.has(role))
    }

    /// The host of a role only one host has (lb, monitoring, db).
    pub fn the(&self, role: Role) -> Option<&HostSpec> {
        self.with(role).next()
    }
}

/// Login settings every host takes unless it says otherwise (`ssh:` beside `hosts:`).
#[derive(Default)]
struct Defaults {
    user: Option<String>,
    port: Option<u16>,
    identity: Option<String>,
}

/// Reads `ssh:`, `hosts:` and `database:` of an `ssh` stack.
pub fn ssh_settings(root: &mut Section, file: &Path) -> Result<SshSettings, StackError> {
    let ssh = root.opt_section("ssh")?;
    let items = root.opt_sections("hosts")?;
    let database = root.opt_section("database")?;
    let Some(items) = items else {
        let Some(s) = ssh else {
            return Err(root.error("provider `ssh` needs an `ssh:` section with at least `host`, or a `hosts:` list"));
        };
        if let Some(d) = database {
            let mut err = d.error("`database:` goes with a `hosts:` list; a single host runs its own PostgreSQL");
            err.hint = Some("remove `database:`, or list the hosts under `hosts:` with their roles".into());
            return Err(err);
        }
        return single(s);
    };
    let (defaults, expose_prometheus) = match ssh {
        Some(s) => fleet_defaults(s)?,
        None => (Defaults::default(), false),
    };
    let hosts = items.into_iter().map(|s| host(s, &defaults)).collect::<Result<Vec<_>, _>>()?;
    let database = match database {
        Some(s) => database_settings(s, file)?,
        None => Database::OnHost,
    };
    check_fleet(root, &hosts, &database)?;
    Ok(SshSettings { hosts, database, expose_prometheus })
}

/// The single-host form: `ssh: {host, user, port, identity, host_key}`, every role.
fn single(mut s: Section) -> Result<SshSettings, StackError> {
    let host = HostSpec {
        host: s.req_str("host")?.0,
        user: s.opt_str("user")?,
        port: s.opt_port("port")?,
        identity: s.opt_str("identity")?,
        host_key: s.opt_parsed("host_key", "a public key", parse_host_key)?,
        roles: ROLES.iter().map(|(_, r)| *r).collect(),
    };
    let expose_prometheus = s.opt_bool("expose_prometheus")?.unwrap_or(false);
    s.finish()?;
    Ok(SshSettings { hosts: vec![host], database: Database::OnHost, expose_prometheus })
}

fn fleet_defaults(mut s: Section) -> Result<(Defaults, bool), StackError> {
    for (key, why) in [
        ("host", "the hosts are listed under `hosts:`"),
        ("host_key", "a host key belongs to one host: set `host_key` on its item under `hosts:`"),
    ] {
        if s.has(key) {
            return Err(s.value_error(key, format!("`ssh.{key}` cannot be used beside `hosts:`: {why}"), None));
        }
    }
    let defaults = Defaults { user: s.opt_str("user")?, port: s.opt_port("port")?, identity: s.opt_str("identity")? };
    let expose = s.opt_bool("expose_prometheus")?.unwrap_or(false);
    s.finish()?;
    Ok((defaults, expose))
}

fn host(mut s: Section, defaults: &Defaults) -> Result<HostSpec, StackError> {
    let host = HostSpec {
        host: s.req_str("host")?.0,
        user: s.opt_str("user")?.or_else(|| defaults.user.clone()),
        port: s.opt_port("port")?.or(defaults.port),
        identity: s.opt_str("identity")?.or_else(|| defaults.identity.clone()),
        host_key: s.opt_parsed("host_key", "a public key", parse_host_key)?,
        roles: s.opt_list("roles", parse_role)?.unwrap_or_default(),
    };
    if host.roles.is_empty() {
        return Err(s.error("missing `roles`: give this host at least one of app, lb, db, monitoring"));
    }
    if let Some((i, r)) = host.roles.iter().enumerate().find(|(i, r)| host.roles[..*i].contains(r)) {
        return Err(s.item_error("roles", i, format!("role `{}` is listed twice", r.name()), None));
    }
    s.finish()?;
    Ok(host)
}

fn parse_role(v: &str) -> Result<Role, String> {
    if let Some((_, r)) = ROLES.iter().find(|(n, _)| *n == v) {
        return Ok(*r);
    }
    let close = ROLES.iter().find(|(n, _)| strsim::damerau_levenshtein(v, n) <= 2);
    Err(match close {
        Some((n, _)) => format!("unknown role {v:?}: did you mean `{n}`? (roles: app, lb, db, monitoring)"),
        None => format!("unknown role {v:?} (roles: app, lb, db, monitoring)"),
    })
}

fn database_settings(mut s: Section, file: &Path) -> Result<Database, StackError> {
    let role = s.opt_parsed("host_role", "a role", |v| match v {
        "db" => Ok(()),
        other => Err(format!("`host_role` names the role of the host that runs PostgreSQL: `db`, not {other:?}")),
    })?;
    let secret = s.opt_parsed("url_secret", "a secret's name", |v| {
        super::check_env_name(v).map(|()| v.to_string()).map_err(|(m, _)| m)
    })?;
    let ca_file = s.opt_str("ca_file")?.map(|p| super::project_path(file, &p));
    let database = match (role, secret) {
        (Some(()), Some(_)) => {
            return Err(
                s.error("set `host_role` (vcctl runs PostgreSQL) or `url_secret` (an external database), not both")
            );
        }
        (_, Some(name)) => Database::UrlSecret { name, ca_file },
        (_, None) if ca_file.is_some() => {
            let mut err = s.error("`ca_file` goes with `url_secret`: the db host's certificate is pinned by vcctl");
            err.hint = Some("remove `ca_file`, or name the external database's URL with `url_secret`".into());
            return Err(err);
        }
        _ => Database::OnHost,
    };
    s.finish()?;
    Ok(database)
}

/// The checks across hosts: each listed once, every role where it must be, and only there.
fn check_fleet(root: &Section, hosts: &[HostSpec], database: &Database) -> Result<(), StackError> {
    for (i, h) in hosts.iter().enumerate() {
        if let Some(j) = hosts[..i].iter().position(|o| o.host == h.host && o.port == h.port) {
            let msg = format!("host `{}` is listed twice (also hosts[{j}])", h.host);
            return Err(root.item_error("hosts", i, msg, Some("list each host once, with all its roles".into())));
        }
        if hosts.len() > 1 && h.has(Role::App) && h.has(Role::Lb) {
            let msg = "a host cannot be both `app` and `lb` beside other hosts: the load balancer and the service both take port 80";
            return Err(root.item_error("hosts", i, msg, Some("give `lb` to a host without `app`".into())));
        }
        if h.has(Role::Db) && matches!(database, Database::UrlSecret { .. }) {
            let msg = "role `db` beside `database.url_secret`: the database is external, so no host runs it";
            return Err(root.item_error("hosts", i, msg, Some("remove `db` from this host's roles".into())));
        }
    }
    let mut needed = vec![(Role::App, false), (Role::Lb, true), (Role::Monitoring, true)];
    if *database == Database::OnHost {
        needed.push((Role::Db, true));
    }
    for (role, only_one) in needed {
        let on: Vec<usize> = hosts.iter().enumerate().filter(|(_, h)| h.has(role)).map(|(i, _)| i).collect();
        match on.as_slice() {
            [] => {
                let msg = format!("no host has the `{}` role", role.name());
                return Err(root.value_error("hosts", msg, Some(format!("add `{}` to one host's roles", role.name()))));
            }
            [first, second, ..] if only_one => {
                let msg =
                    format!("a second host with the `{}` role (also hosts[{first}]): a stack has one", role.name());
                return Err(root.item_error("hosts", *second, msg, None));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A host's public key line, `TYPE BASE64` (a comment after it dropped).
pub fn parse_host_key(k: &str) -> Result<String, String> {
    let mut w = k.split_whitespace();
    match (w.next(), w.next()) {
        (Some(kind), Some(_)) if kind.starts_with("ssh-") || kind.starts_with("ecdsa-") => {
            Ok(k.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        }
        _ => Err(format!(
            "expected a public key line such as `ssh-ed25519 AAAA...` (the host's /etc/ssh/ssh_host_ed25519_key.pub), got {k:?}"
        )),
    }
}
