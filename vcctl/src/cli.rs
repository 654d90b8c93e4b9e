//! The command line: clap types only. Resolution into settings happens in `settings`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

const EXAMPLES: &str = "\
Examples:
  vcctl up --stack local                 # build the service and run it here, dashboard included
  vcctl status --stack local --json      # health, version, KPIs, for scripts
  vcctl simulate --stack local --rate 200 --duration 2m
  vcctl plan --stack frankfurt           # what `up` would change on AWS (exit 2 when something)
  vcctl deploy --stack frankfurt --artifact target/release/vehicleconnect

A stack is a YAML file: --stack NAME reads stacks/NAME.yaml (docs/reference/stack.md).";

/// The command line as clap parses it, with the examples and exit codes after `--help`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command().after_help(after_help());
    for (name, shapes) in SHAPES {
        cmd = cmd.mut_subcommand(name, |c| {
            let before = c.get_after_help().map(|h| format!("{h}\n\n")).unwrap_or_default();
            c.after_help(format!("{before}Stack shapes: {shapes}"))
        });
    }
    cmd
}

/// Which stack shapes each command works on, as its `--help` ends (and docs/reference/cli.md
/// says); where it refuses one, why.
pub const SHAPES: [(&str, &str); 19] = [
    ("up", "every shape (global: its health checks and routed records; each region is `up` on its own)"),
    ("plan", "every shape"),
    ("deploy", "every shape (global: region by region, the canary first, stopping at the first that fails)"),
    ("status", "every shape (global: each region's health check, record and share, the KPIs merged)"),
    ("logs", "local, ssh, fleet, aws, scale (CloudWatch Logs: every instance's lines, replaced ones too)"),
    ("rollback", "every shape (global: region by region, in the reverse order)"),
    ("destroy", "every shape (global: its own pieces; --regions every region's stack too)"),
    ("simulate", "every shape but global (scale: through the load balancer at tls.domain), or any URL with --target"),
    ("backup", "aws (EBS snapshots) and scale (RDS snapshots); local, ssh and fleet keep no snapshots: `db dump`"),
    ("restore", "aws (a new data volume) and scale (a new DB instance, from a snapshot or a point in time)"),
    ("db", "local, ssh (one host), aws, scale (through one instance); not a fleet yet"),
    ("secrets", "ssh, fleet, aws (a scale group's in its bucket); a local stack keeps none"),
    ("audit", "local, ssh (one host), aws, scale (kept in its bucket: instances are replaced); not a fleet yet"),
    ("exec", "ssh (one host), aws, scale (--instance, --all); not a fleet yet; a local stack is this machine"),
    ("ssh", "ssh (one host), aws, scale (--instance); not a fleet yet; a local stack is this machine"),
    ("tunnel", "ssh (one host), aws, scale (--instance); not a fleet yet; a local stack listens here already"),
    ("token", "local, ssh (one host), aws, scale (the group's, from its bucket); not a fleet yet"),
    ("ci", "aws and scale"),
    ("iam-policy", "aws, scale and global (its own pieces; each region has its own)"),
];

/// `--help`'s closing text: the examples and every exit code.
pub fn after_help() -> String {
    let codes: Vec<String> = crate::error::EXIT_CODES.iter().map(|(c, m)| format!("  {c}  {m}")).collect();
    format!("{EXAMPLES}\n\nExit codes:\n{}", codes.join("\n"))
}

#[derive(Debug, Parser)]
#[command(name = "vcctl", version, about = "Deploy and operate VehicleConnect: locally, on AWS, or on any SSH host")]
pub struct Cli {
    /// Run as if started in DIR (the project is the nearest directory with `stacks/`).
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    /// Stack name (stacks/NAME.yaml in the project) or path to a stack file.
    #[arg(long, global = true, env = "VCCTL_STACK", default_value = "local", add = ArgValueCompleter::new(complete_stacks))]
    pub stack: String,

    /// Print the result as JSON on stdout, and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// Only errors and warnings on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// On-demand SSH (AWS): admit this address or network on port 22 while the command runs,
    /// instead of asking the address detector (`aws.address_detector`).
    #[arg(long, global = true, env = "VCCTL_SSH_FROM", value_name = "CIDR", value_parser = parse_ssh_from)]
    pub ssh_from: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update everything the stack describes, then deploy the service to it.
    #[command(
        after_help = "Example:\n  vcctl up --stack local\n\nRunning it again when everything is healthy changes nothing."
    )]
    Up(ReleaseArgs),
    /// Show what `up` would change, without changing anything. Exit 2 when there are changes.
    #[command(after_help = "Example:\n  vcctl plan --stack frankfurt --json")]
    Plan(PlanArgs),
    /// Ship a new release of the service, health-check it, and roll back by itself if it is unhealthy.
    #[command(
        after_help = "Example:\n  vcctl deploy --stack local --artifact target/release/vehicleconnect\n\nExit 6: the new release was unhealthy and the previous one serves again."
    )]
    Deploy(ReleaseArgs),
    /// Health, version, uptime and a KPI summary of the running service.
    #[command(
        after_help = "Example:\n  vcctl status --stack local --json\n\nExit 0 when healthy, 1 when not running or unhealthy."
    )]
    Status(OverrideArgs),
    /// Show the service's log.
    #[command(after_help = "Example:\n  vcctl logs --stack local -f -n 50")]
    Logs(LogsArgs),
    /// Switch back to the previous release (or the one given) and health-check it. Every
    /// shape: on several hosts or a `scale:` group, one instance at a time out of rotation.
    #[command(
        after_help = "Example:\n  vcctl rollback --stack local\n  vcctl rollback --stack local --to 20261128T101500Z-1a2b3c4d5e6f\n  vcctl rollback --stack frankfurt-scale        # the release the group served before, from its bucket"
    )]
    Rollback(RollbackArgs),
    /// Stop the service and delete what the stack created, data included (asks first).
    #[command(after_help = "Example:\n  vcctl destroy --stack local --yes\n  vcctl destroy --stack local --keep-data")]
    Destroy(DestroyArgs),
    /// Send realistic connected-vehicle traffic to a service.
    #[command(
        after_help = "Examples:\n  vcctl simulate --stack local --rate 100 --duration 60s\n  vcctl simulate --target http://127.0.0.1:8000 --rate 50000 --batch 500 --duration 30s\n  vcctl simulate --stack local --incident /vehicles/unlock:x3:2m@1m"
    )]
    Simulate(SimulateArgs),
    /// Snapshot the data volume of an AWS stack (EBS), or list the snapshots with --list.
    #[command(
        after_help = "Examples:\n  vcctl backup --stack frankfurt          # prints the snapshot id when it is complete\n  vcctl backup --stack frankfurt --list"
    )]
    Backup(BackupArgs),
    /// Replace an AWS stack's data with a snapshot: on a box a new volume swapped in, on a
    /// `scale:` stack a new DB instance the group is pointed at, instance by instance; the old
    /// one is kept either way.
    #[command(after_help = "Examples:\n  \
        vcctl restore snap-0123456789abcdef0 --stack frankfurt   # a box: asks first; --yes in scripts\n  \
        vcctl restore vcctl-fra-20261207t030000z --stack fra      # scale: an RDS snapshot (`vcctl backup --list`)\n  \
        vcctl restore --time 2026-12-07T09:55:00Z --stack fra      # scale: the database as it was then\n  \
        vcctl restore --database vcctl-fra --stack fra             # scale: back to a database kept before\n  \
        vcctl restore --delete-old --stack fra                     # scale: delete the kept ones (final snapshot each)")]
    Restore(RestoreArgs),
    /// Dump the stack's database to stdout (pg_dump -Fc), or restore such a dump into it.
    #[command(
        subcommand,
        after_help = "Examples:\n  vcctl db dump --stack frankfurt > frankfurt.dump\n  vcctl db restore frankfurt.dump --stack staging     # asks first; --yes in scripts"
    )]
    Db(DbCommand),
    /// Keep the service's secrets on its host: set (value from stdin), list (names only), unset.
    #[command(
        subcommand,
        after_help = "Examples:\n  vcctl secrets set PARTNER_API_KEY --stack frankfurt < key.txt\n  vcctl secrets list --stack frankfurt\n  vcctl secrets unset PARTNER_API_KEY --stack frankfurt\n\nA change is applied by the next `vcctl deploy`, which checks the release with it as a candidate first."
    )]
    Secrets(SecretsCommand),
    /// Show the audit trail: every deploy, rollback and destroy, who ran it, from where, and how it ended.
    #[command(
        after_help = "Example:\n  vcctl audit --stack frankfurt -n 20\n  vcctl audit --stack frankfurt --json | jq '.entries[] | select(.action == \"rollback\")'"
    )]
    Audit(AuditArgs),
    /// Run one command on the stack's host (as the SSH login user) and exit with its exit code.
    #[command(
        after_help = "Examples:\n  vcctl exec --stack frankfurt -- df -h /\n  vcctl exec --stack frankfurt -- sudo journalctl -u caddy -n 50\n  vcctl exec --stack frankfurt-scale --all -- uptime     # each instance in turn\n\nThe exit code is the command's own (255 when a signal ended it, as with ssh); with --all, the first one that is not 0."
    )]
    Exec(ExecArgs),
    /// Open an interactive shell on the stack's host, over vcctl's checked SSH connection.
    #[command(
        after_help = "Example:\n  vcctl ssh --stack frankfurt\n  vcctl ssh --stack frankfurt-scale --instance i-0abc123\n\nOn an AWS stack with on-demand SSH, port 22 is open for your address while the shell is."
    )]
    Ssh(SshArgs),
    /// Forward a port of this machine to Prometheus (or the service) on the stack's host, over SSH.
    #[command(
        after_help = "Examples:\n  vcctl tunnel prometheus --stack frankfurt       # http://127.0.0.1:9090 until Ctrl-C\n  vcctl tunnel dashboard --stack frankfurt --local-port 18000\n\nOn an AWS stack with on-demand SSH, port 22 is open for your address while the tunnel is."
    )]
    Tunnel(TunnelArgs),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  vcctl completions bash > /etc/bash_completion.d/vcctl")]
    Completions { shell: clap_complete::Shell },
    /// The stack's ingest token, for scripts and other clients.
    #[command(
        subcommand,
        after_help = "Example:\n  vcctl token show --stack frankfurt > token  # asks first on a terminal"
    )]
    Token(TokenCommand),
    /// Set up GitHub Actions deploys of an AWS stack (OIDC provider, deploy role, workflow).
    #[command(
        subcommand,
        after_help = "Examples:\n  vcctl ci init --stack frankfurt --repo acme/vehicleconnect --environment production --branch main\n  \
                      vcctl ci init --stack frankfurt --repo acme/vehicleconnect --check   # exit 2 when not bound"
    )]
    Ci(CiCommand),
    /// Print the least-privilege IAM policy for running vcctl on an AWS stack (JSON on stdout).
    #[command(
        name = "iam-policy",
        after_help = "Example:\n  vcctl iam-policy --stack frankfurt > policy.json\n  \
                      aws iam put-user-policy --user-name deployer --policy-name vcctl-frankfurt --policy-document file://policy.json"
    )]
    IamPolicy(IamPolicyArgs),
    /// (Internal) Run one of a local stack's processes under vcctl's supervisor; `vcctl up`
    /// starts it.
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

impl Command {
    /// `--yes`, for the commands that ask before they act.
    pub fn yes(&self) -> bool {
        match self {
            Command::Destroy(a) => a.yes,
            Command::Token(TokenCommand::Show(a)) => a.yes,
            Command::Db(DbCommand::Restore(a)) => a.yes,
            Command::Restore(a) => a.yes,
            _ => false,
        }
    }

    /// The flags that override the stack file (none for `completions`).
    pub fn overrides(&self) -> &OverrideArgs {
        static NONE: OverrideArgs = OverrideArgs { port: None, port_from_env: false };
        match self {
            Command::Up(a) | Command::Deploy(a) => &a.overrides,
            Command::Plan(a) => &a.overrides,
            Command::Status(o) => o,
            Command::Logs(a) => &a.overrides,
            Command::Rollback(a) => &a.overrides,
            Command::Destroy(a) => &a.overrides,
            Command::Simulate(a) => &a.overrides,
            Command::Tunnel(a) => &a.overrides,
            Command::Restore(a) => &a.overrides,
            Command::Db(DbCommand::Dump(o)) => o,
            Command::Db(DbCommand::Restore(a)) => &a.overrides,
            Command::Secrets(SecretsCommand::Set(a) | SecretsCommand::Unset(a)) => &a.overrides,
            Command::Secrets(SecretsCommand::List(o)) => o,
            // Commands that never reach the service by its port.
            Command::Token(_)
            | Command::Ci(_)
            | Command::IamPolicy(_)
            | Command::Exec(_)
            | Command::Audit(_)
            | Command::Backup(_)
            | Command::Ssh(_) => &NONE,
            Command::Completions { .. } | Command::Supervise(_) => &NONE,
        }
    }
}

impl Command {
    /// The command as a user typed it, for messages and the on-demand SSH rule.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Up(_) => "vcctl up",
            Command::Plan(_) => "vcctl plan",
            Command::Deploy(_) => "vcctl deploy",
            Command::Status(_) => "vcctl status",
            Command::Logs(_) => "vcctl logs",
            Command::Rollback(_) => "vcctl rollback",
            Command::Destroy(_) => "vcctl destroy",
            Command::Simulate(_) => "vcctl simulate",
            Command::Tunnel(_) => "vcctl tunnel",
            Command::Exec(_) => "vcctl exec",
            Command::Audit(_) => "vcctl audit",
            Command::Backup(_) => "vcctl backup",
            Command::Restore(_) => "vcctl restore",
            Command::Db(DbCommand::Dump(_)) => "vcctl db dump",
            Command::Db(DbCommand::Restore(_)) => "vcctl db restore",
            Command::Secrets(SecretsCommand::Set(_)) => "vcctl secrets set",
            Command::Secrets(SecretsCommand::Unset(_)) => "vcctl secrets unset",
            Command::Secrets(SecretsCommand::List(_)) => "vcctl secrets list",
            Command::Ssh(_) => "vcctl ssh",
            Command::Token(_) => "vcctl token show",
            Command::Ci(_) => "vcctl ci init",
            Command::IamPolicy(_) => "vcctl iam-policy",
            Command::Completions { .. } => "vcctl completions",
            Command::Supervise(_) => "vcctl supervise",
        }
    }

    /// Records where each override came from, which clap knows only in `matches`.
    pub fn note_sources(&mut self, matches: &clap::ArgMatches) {
        let Some(o) = self.overrides_mut() else { return };
        // The deepest subcommand's matches hold the flags (`token show --port`).
        let mut sub = matches;
        while let Some((_, inner)) = sub.subcommand() {
            sub = inner;
        }
        let source = sub.try_get_raw("port").ok().flatten().and_then(|_| sub.value_source("port"));
        o.port_from_env = source == Some(clap::parser::ValueSource::EnvVariable);
    }

    fn overrides_mut(&mut self) -> Option<&mut OverrideArgs> {
        match self {
            Command::Up(a) | Command::Deploy(a) => Some(&mut a.overrides),
            Command::Plan(a) => Some(&mut a.overrides),
            Command::Status(o) => Some(o),
            Command::Logs(a) => Some(&mut a.overrides),
            Command::Rollback(a) => Some(&mut a.overrides),
            Command::Destroy(a) => Some(&mut a.overrides),
            Command::Simulate(a) => Some(&mut a.overrides),
            Command::Tunnel(a) => Some(&mut a.overrides),
            Command::Restore(a) => Some(&mut a.overrides),
            Command::Db(DbCommand::Dump(o)) => Some(o),
            Command::Db(DbCommand::Restore(a)) => Some(&mut a.overrides),
            Command::Secrets(SecretsCommand::Set(a) | SecretsCommand::Unset(a)) => Some(&mut a.overrides),
            Command::Secrets(SecretsCommand::List(o)) => Some(o),
            Command::Token(_)
            | Command::Ci(_)
            | Command::IamPolicy(_)
            | Command::Exec(_)
            | Command::Audit(_)
            | Command::Backup(_)
            | Command::Ssh(_) => None,
            Command::Completions { .. } | Command::Supervise(_) => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the ingest token on stdout (after a confirmation on a terminal).
    Show(TokenArgs),
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Make (or repair, or --check) the OIDC provider, the deploy role bound to one branch,
    /// GitHub's side of that binding and .github/workflows/deploy-<stack>.yml.
    Init(CiInitArgs),
}

#[derive(Debug, Clone, Args)]
pub struct IamPolicyArgs {
    /// The AWS account the policy is for (default: the account of the current credentials).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CiInitArgs {
    /// The GitHub repository that deploys: OWNER/REPO.
    #[arg(long)]
    pub repo: String,
    /// The GitHub environment the deploy job runs in (its secrets and protection rules).
    #[arg(long, default_value = "production")]
    pub environment: String,
    /// The only branch that may deploy: bound in the role's trust and the environment's
    /// deployment branches.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Replace a workflow file edited by hand (its difference is shown otherwise).
    #[arg(long)]
    pub force: bool,
    /// Change nothing: check the role, the workflow and GitHub's side; exit 2 when any is
    /// not as it should be.
    #[arg(long, conflicts_with = "force")]
    pub check: bool,
}

impl CiInitArgs {
    pub fn request(&self) -> crate::providers::aws::ci::Request {
        crate::providers::aws::ci::Request {
            binding: crate::providers::aws::github::Binding {
                repo: self.repo.clone(),
                environment: self.environment.clone(),
                branch: self.branch.clone(),
            },
            force: self.force,
            check: self.check,
            github_token: crate::providers::aws::github::token(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SuperviseArgs {
    /// The local stack's directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Which process: `service` (the default), `service-2`..., `db`, `prometheus`.
    #[arg(long, default_value = "service")]
    pub name: String,
    /// Run it as this user (PostgreSQL refuses to run as root).
    #[arg(long)]
    pub user: Option<String>,
    /// The signal that stops it cleanly (PostgreSQL's fast shutdown is INT).
    #[arg(long, default_value = "TERM")]
    pub stop_signal: String,
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
}

impl SuperviseArgs {
    pub fn spec(&self) -> crate::providers::local::supervise::Spec {
        crate::providers::local::supervise::Spec {
            dir: self.dir.clone(),
            name: self.name.clone(),
            user: self.user.clone(),
            stop_signal: self.stop_signal.clone(),
            command: self.command.clone(),
        }
    }
}

impl RestoreArgs {
    /// What a `scale:` stack's restore makes it serve from.
    pub fn source(&self) -> crate::providers::aws::scale::restore::Source {
        use crate::providers::aws::scale::restore::Source;
        match (&self.snapshot, &self.time, &self.database) {
            (Some(s), _, _) => Source::Snapshot(s.clone()),
            (_, Some(t), _) => Source::Time(t.clone()),
            (_, _, Some(d)) => Source::Kept(d.clone()),
            _ => Source::DeleteOld,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// List the stack's snapshots instead of taking one.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["snapshot", "time", "database", "delete_old"])))]
pub struct RestoreArgs {
    /// The snapshot, from `vcctl backup --list`: `snap-...` on a box, an RDS snapshot on `scale:`.
    pub snapshot: Option<String>,
    /// `scale:` only: a new DB instance with the serving one's data as it was at this UTC time
    /// (RFC 3339, within its backup days).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// `scale:` only: point the group back at a database the stack kept (`vcctl status` lists them).
    #[arg(long, value_name = "ID")]
    pub database: Option<String>,
    /// `scale:` only: delete the databases the stack kept after restores, each after a final snapshot.
    #[arg(long)]
    pub delete_old: bool,
    /// Restore without the prompt (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The database as a pg_dump custom-format archive on stdout (redirect it to a file).
    Dump(OverrideArgs),
    /// Restore such an archive as the stack's database, after a confirmation.
    Restore(DbRestoreArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbRestoreArgs {
    /// A `vcctl db dump` (pg_dump -Fc) file.
    pub file: PathBuf,
    /// Restore without the prompt (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store NAME's value, read from stdin (never from the command line); asks without echo on a terminal.
    Set(SecretArgs),
    /// The secrets' names and when each was set; never a value.
    List(OverrideArgs),
    /// Remove NAME.
    Unset(SecretArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// The environment variable the service reads it from (A-Z, 0-9, _).
    pub name: String,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// How many of the newest entries (at most 10000).
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub lines: u16,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// `scale:` stacks: run it on every instance in service, one after the other, and report
    /// each exit code.
    #[arg(long, conflicts_with = "instance")]
    pub all: bool,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
}

/// Which of a `scale:` group's instances a command runs on.
#[derive(Debug, Clone, Default, Args)]
pub struct InstanceArgs {
    /// `scale:` stacks: the instance (i-…); without it, asked on a terminal, refused in a
    /// script with the list. Other stacks have one host.
    #[arg(long, value_name = "INSTANCE_ID")]
    pub instance: Option<String>,
}

/// What `vcctl tunnel` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TunnelTo {
    /// Prometheus (port 9090 on the host), closed to the world.
    Prometheus,
    /// The service itself (its port on the host): the dashboard of a stack without `tls:`.
    Dashboard,
}

#[derive(Debug, Clone, Args)]
pub struct TunnelArgs {
    pub to: TunnelTo,
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// The port on this machine's loopback (default: the same as on the host, or any free one
    /// when that is taken; 0 for any).
    #[arg(long, value_name = "PORT")]
    pub local_port: Option<u16>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Print it on a terminal without the prompt.
    #[arg(long)]
    pub yes: bool,
}

/// Settings a flag (or its environment variable) can override over the stack file.
#[derive(Debug, Clone, Args, Default)]
pub struct OverrideArgs {
    /// Port the service listens on, 1-65535 (overrides `service.port`; the same rules apply).
    #[arg(long, env = "VCCTL_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Whether `port` came from `VCCTL_PORT` rather than `--port` (set after parsing).
    #[arg(skip)]
    pub port_from_env: bool,
}

impl OverrideArgs {
    pub fn settings(&self) -> crate::settings::Overrides {
        crate::settings::Overrides { port: self.port, port_from_env: self.port_from_env }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// The vehicleconnect binary to ship; built from this checkout (cargo build --release) when absent.
    #[arg(long, env = "VCCTL_ARTIFACT")]
    pub artifact: Option<PathBuf>,

    /// How long the new release has to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub health_timeout: Duration,

    /// How long to wait for another vcctl changing the same host or AWS stack to finish before
    /// giving up (exit 5, naming the holder).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// Stacks of several hosts: deploy to the app hosts that answer and report the others,
    /// instead of refusing before anything changes when one does not answer.
    #[arg(long)]
    pub skip_unreachable: bool,

    /// Stacks of several hosts: how many app hosts take the release at once. A batch leaves
    /// the load balancer together, so the others must carry the load meanwhile; one host
    /// serving stays in rotation whatever the number.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// `plan`: what it compares against, and nothing it would need to act.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The vehicleconnect binary `up` would ship (its architecture and version are checked);
    /// target/release/vehicleconnect when present.
    #[arg(long, env = "VCCTL_ARTIFACT")]
    pub artifact: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

impl ReleaseArgs {
    pub fn options(&self) -> crate::deploy::Options {
        crate::deploy::Options {
            artifact: self.artifact.clone(),
            health_timeout: self.health_timeout,
            lock_timeout: self.lock_timeout,
            skip_unreachable: self.skip_unreachable,
            parallel: self.parallel,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to show.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
    /// Stacks of several hosts: only this app host (its `host:` in the stack); all when absent.
    #[arg(long)]
    pub host: Option<String>,
    /// `scale:` stacks: only this instance's lines (i-…), one the group has replaced too.
    #[arg(long, value_name = "INSTANCE_ID", conflicts_with = "host")]
    pub instance: Option<String>,
    /// `scale:` stacks: lines from this long ago on (`15m`, `2h`, `3days`); without it, the
    /// last `-n` lines, looked for in the last hour, then day, then the whole retention.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Local stacks: which process's log: `service` (the default), `service-2`..., `db`
    /// (PostgreSQL) or `prometheus`.
    #[arg(long, value_parser = parse_process)]
    pub process: Option<String>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// `logs --process`: `service`, `service-N`, `db` or `prometheus`.
fn parse_process(v: &str) -> Result<String, String> {
    let replica = v.strip_prefix("service-").is_some_and(|n| n.parse::<u8>().is_ok_and(|n| (2..=8).contains(&n)));
    if matches!(v, "service" | "db" | "prometheus") || replica {
        return Ok(v.to_string());
    }
    Err(format!("expected service, service-2 to service-8, db or prometheus, got {v:?}"))
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The release to switch to (see `vcctl status`); the previous good one when absent.
    #[arg(long, add = ArgValueCompleter::new(complete_releases))]
    pub to: Option<String>,
    /// How long the release has to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub health_timeout: Duration,
    /// How long to wait for another vcctl changing the same host or AWS stack to finish before
    /// giving up (exit 5, naming the holder).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Stacks of several hosts: only this app host (its `host:` in the stack); all when absent.
    #[arg(long)]
    pub host: Option<String>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

impl LogsArgs {
    pub fn options(&self) -> crate::targets::LogOptions {
        crate::targets::LogOptions {
            follow: self.follow,
            lines: self.lines,
            host: self.host.clone(),
            instance: self.instance.clone(),
            since: self.since,
        }
    }
}

impl RollbackArgs {
    pub fn options(&self) -> crate::deploy::RollbackOptions {
        crate::deploy::RollbackOptions {
            to: self.to.clone(),
            health_timeout: self.health_timeout,
            lock_timeout: self.lock_timeout,
            host: self.host.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// Stop the service but keep the stored events.
    #[arg(long)]
    pub keep_data: bool,
    /// AWS stacks: how long to wait for another vcctl changing the stack (`up`, `deploy`,
    /// `rollback`, `destroy`) to finish before giving up (exit 5, naming the holder).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// AWS box: terminate only this instance, one of several that carry the stack's tags (a
    /// copy, or a second one); the stack and its other resources stay.
    #[arg(long, value_name = "INSTANCE_ID", conflicts_with = "keep_data")]
    pub instance: Option<String>,
    /// AWS box: delete the backup vault and its recovery points too (listed first). Without
    /// it they are kept, and a later `destroy --delete-backups` deletes them. A vault lock
    /// (`aws.backup.lock_days`) keeps a recovery point younger than its days whatever is asked.
    #[arg(long, conflicts_with_all = ["keep_data", "instance"])]
    pub delete_backups: bool,
    /// Global stack: destroy every region's stack too (listed first, confirmed once).
    /// Without it only the global pieces go: the routed records and health checks.
    #[arg(long, conflicts_with_all = ["keep_data", "instance", "delete_backups"])]
    pub regions: bool,
    /// Confirm without the prompt; needed when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

impl DestroyArgs {
    /// The whole stack, nothing kept (a region of a global `destroy --regions`).
    pub fn all_of_it() -> DestroyArgs {
        DestroyArgs {
            keep_data: false,
            lock_timeout: std::time::Duration::from_secs(60),
            instance: None,
            delete_backups: false,
            regions: false,
            yes: true,
            overrides: OverrideArgs { port: None, port_from_env: false },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Service base URL; by default the stack's service.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: a file holding the service's ingest token (never on the command line).
    #[arg(long, requires = "target", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Events per second, sent at a steady (open-loop) pace.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Number of distinct vehicles (client ids).
    #[arg(long, default_value_t = 500)]
    pub vehicles: u32,
    /// Events per request (NDJSON batches); 1 sends single events.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Requests in flight at most; past it, sends are counted as late and skipped.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Slow an endpoint down: ENDPOINT:xFACTOR:DURATION[@START], e.g. /vehicles/unlock:x3:2m@30s.
    #[arg(long)]
    pub incident: Vec<String>,
    /// Seed of the random generator, for repeatable traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::stack::yaml::parse_duration(s)
}

/// `--stack <TAB>`: the stacks of the project around the current directory.
fn complete_stacks(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let root = crate::stack::project_root(&std::env::current_dir().unwrap_or_default());
    let prefix = current.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(root.join("stacks")) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix.as_ref()))
        .collect();
    names.sort();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// `rollback --to <TAB>`: the releases this project's state knows: a local stack's, and
/// those a `scale:` stack's bucket kept when `status` or `rollback` last read it (a host's
/// are on the host: `vcctl status` lists them).
fn complete_releases(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let root = crate::stack::project_root(&std::env::current_dir().unwrap_or_default());
    let prefix = current.to_string_lossy();
    let local = std::fs::read_dir(root.join(".vcctl/local"))
        .into_iter()
        .flatten()
        .filter_map(|stack| std::fs::read_dir(stack.ok()?.path().join("releases")).ok())
        .flatten()
        .filter_map(|r| r.ok()?.file_name().to_str().map(str::to_string));
    let remembered = std::fs::read_dir(root.join(".vcctl/aws"))
        .into_iter()
        .flatten()
        .filter_map(|stack| std::fs::read_to_string(stack.ok()?.path().join("releases")).ok())
        .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>());
    let mut names: Vec<String> =
        local.chain(remembered).filter(|n| n.starts_with(prefix.as_ref()) && !n.starts_with('.')).collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// `--ssh-from`: an address or a narrow network (`lease::ssh_from`).
fn parse_ssh_from(v: &str) -> Result<String, String> {
    crate::providers::aws::on_demand::lease::ssh_from(v)
}

#[cfg(test)]
mod shapes {
    /// Every command a user runs says which shapes it works on: a new one must too.
    #[test]
    fn every_command_names_its_shapes() {
        let cmd = super::command();
        let hidden_or_shapeless = ["completions", "supervise", "help"];
        for sub in cmd.get_subcommands().filter(|s| !hidden_or_shapeless.contains(&s.get_name())) {
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("Stack shapes: "), "`vcctl {} --help` does not say its shapes", sub.get_name());
        }
        // docs/reference/cli.md's table says the same.
        let doc = include_str!("../../docs/reference/cli.md");
        for (name, shapes) in super::SHAPES {
            assert!(doc.contains(&format!("| `{name}` | {shapes} |")), "docs/reference/cli.md's row of `{name}`");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn logs_process_names_one_of_a_local_stacks_processes_and_nothing_else() {
        for ok in ["service", "service-2", "service-8", "db", "prometheus"] {
            assert_eq!(parse_process(ok).as_deref(), Ok(ok));
        }
        for bad in ["service-1", "service-9", "service-", "../db", "db\n", ""] {
            let err = parse_process(bad).unwrap_err();
            assert!(err.contains("expected service, service-2 to service-8, db or prometheus"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn parallel_takes_1_to_64_hosts_and_says_so_otherwise() {
        let parsed = Cli::try_parse_from(["vcctl", "deploy", "--parallel", "3"]).unwrap();
        assert!(matches!(parsed.command, Command::Deploy(ReleaseArgs { parallel: 3, .. })));
        for bad in ["0", "65", "two"] {
            let err = Cli::try_parse_from(["vcctl", "deploy", "--parallel", bad]).expect_err(bad).to_string();
            assert!(err.contains(&format!("invalid value '{bad}' for '--parallel <PARALLEL>'")), "{err}");
        }
    }
}
