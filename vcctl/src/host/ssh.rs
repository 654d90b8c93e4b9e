//! One SSH connection to a host for the whole run: the system `ssh` client through the
//! `openssh` crate, with one multiplexed master, so every step after the first costs a round
//! trip and not a handshake. Host keys are always checked, against the stack's own
//! `known_hosts` under `.vcctl/`: a key given in the stack is pinned before the first contact;
//! otherwise the key seen at first contact is pinned and its fingerprint printed. A changed
//! key is refused, with what to do about it. This is transport only: what runs on the host is
//! `host`'s business.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use crate::error::Failure;
use crate::printer::Printer;

/// Whom to connect to, and how to trust it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: Option<PathBuf>,
    /// The stack's own known_hosts file.
    pub known_hosts: PathBuf,
    /// A host key known before the first contact (`ssh-ed25519 AAAA...`): from the stack
    /// file, or read from the AWS console output.
    pub host_key: Option<String>,
}

impl Destination {
    /// The host as known_hosts names it.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 { self.host.clone() } else { format!("[{}]:{}", self.host, self.port) }
    }

    pub fn display(&self) -> String {
        format!(
            "{}@{}{}",
            self.user,
            self.host,
            if self.port == 22 { String::new() } else { format!(":{}", self.port) }
        )
    }

    /// Whether known_hosts already has a key for this host (hashed entries included).
    pub fn is_known(&self) -> bool {
        self.known_hosts.exists()
            && std::process::Command::new("ssh-keygen")
                .arg("-F")
                .arg(self.known_hosts_name())
                .arg("-f")
                .arg(&self.known_hosts)
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
    }

    fn pin(&self, key: &str) -> Result<()> {
        let mut text = std::fs::read_to_string(&self.known_hosts).unwrap_or_default();
        text.push_str(&format!("{} {}\n", self.known_hosts_name(), key.trim()));
        std::fs::write(&self.known_hosts, text).with_context(|| format!("writing `{}`", self.known_hosts.display()))
    }
}

/// An open connection; commands run as root (through `sudo -n` for other users). The session
/// is shared, so a long-running command (the deploy lock) can outlive the borrow that made it.
pub struct Ssh {
    session: Arc<Session>,
    pub target: Destination,
}

/// A command running on the host.
pub type Child = openssh::Child<Arc<Session>>;

impl Ssh {
    pub async fn connect(target: Destination, printer: &Printer) -> Result<Ssh> {
        if let Some(dir) = target.known_hosts.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
        }
        let first_contact = !target.is_known();
        if first_contact && let Some(key) = &target.host_key {
            target.pin(key)?;
        }
        let learn = first_contact && target.host_key.is_none();
        if learn && std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            return Err(refuse_first_use(&target));
        }
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(15))
            // An orphaned master (vcctl killed) goes away by itself.
            .control_persist(openssh::ControlPersist::IdleFor(std::num::NonZeroUsize::new(30).unwrap()))
            .user_known_hosts_file(&target.known_hosts)
            .known_hosts_check(if learn { KnownHosts::Add } else { KnownHosts::Strict });
        if let Some(id) = &target.identity {
            b.keyfile(id);
        }
        let session = b.connect(&target.host).await.map_err(|e| connect_error(&target, e))?;
        if learn {
            printer.warn(format!(
                "first contact with {}: pinned its host key {} in `{}`; compare it with the host's own \
                 (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there) if you have not yet",
                target.host,
                fingerprint(&target.known_hosts, &target.known_hosts_name()).unwrap_or_else(|| "(unknown)".into()),
                target.known_hosts.display()
            ));
        }
        Ok(Ssh { session: Arc::new(session), target })
    }

    /// `argv` as root on the host.
    fn command(&self, argv: &[&str]) -> openssh::OwningCommand<Arc<Session>> {
        let mut c = if self.target.user == "root" {
            self.session.clone().arc_command(argv[0].to_string())
        } else {
            let mut c = self.session.clone().arc_command("sudo");
            c.arg("-n").arg(argv[0]);
            c
        };
        c.args(&argv[1..]);
        c
    }

    /// Runs `argv` and returns its stdout; a non-zero exit is an error with its stderr.
    pub async fn run(&self, argv: &[&str]) -> Result<String> {
        let out = self
            .command(argv)
            .output()
            .await
            .with_context(|| format!("running {} on {}", what(argv), self.target.host))?;
        self.check(&what(argv), out)
    }

    /// Like `run`, with `input` on stdin.
    pub async fn run_with_input(&self, argv: &[&str], input: &[u8]) -> Result<String> {
        let out = feed(self.command(argv), input, None).await?;
        self.check(&what(argv), out)
    }

    /// Like `run`, streaming the file at `path` to stdin and counting bytes on `progress`.
    pub async fn run_with_file(&self, argv: &[&str], path: &Path, progress: &indicatif::ProgressBar) -> Result<String> {
        let file = tokio::fs::File::open(path).await.with_context(|| format!("reading `{}`", path.display()))?;
        let out = feed(self.command(argv), file, Some(progress)).await?;
        self.check(&what(argv), out)
    }

    /// Runs `argv` and copies its stdout to `out`, counting bytes on `progress`; the bytes.
    pub async fn run_to(
        &self,
        argv: &[&str],
        out: &mut (dyn std::io::Write + Send),
        progress: &indicatif::ProgressBar,
    ) -> Result<u64> {
        use tokio::io::AsyncReadExt;
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().await?;
        let mut stdout = child.stdout().take().context("no stdout")?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = stdout.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).context("writing the output")?;
            total += n as u64;
            progress.set_position(total);
        }
        out.flush()?;
        let output = child.wait_with_output().await?;
        self.check(&what(argv), output)?;
        Ok(total)
    }

    /// Starts `argv` and hands back the running child (stdin, stdout piped).
    pub async fn spawn(&self, argv: &[&str]) -> Result<Child> {
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        Ok(cmd.spawn().await?)
    }

    /// Starts `argv` with its output going straight to ours (for `logs -f`).
    pub async fn stream(&self, argv: &[&str]) -> Result<std::process::ExitStatus> {
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        Ok(cmd.status().await?)
    }

    fn check(&self, what: &str, out: Output) -> Result<String> {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail = crate::printer::last_lines(&stderr, 10);
        anyhow::bail!(
            "{what} failed on {} (exit {}): {}",
            self.target.host,
            out.status.code().map_or("signal".to_string(), |c| c.to_string()),
            tail.join("\n  ")
        )
    }

    /// `argv` as the login user (no sudo: `vcctl exec` is the operator's own command), its
    /// output going straight to ours; its exit code. A command ended by a signal (whose number
    /// SSH does not pass on) is 255, as `ssh` itself says.
    pub async fn exec_as_login(&self, argv: &[String]) -> Result<u8> {
        let mut cmd = self.session.clone().arc_command(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        match cmd.status().await {
            Ok(status) => Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(255)),
            Err(openssh::Error::RemoteProcessTerminated) => Ok(255),
            // openssh turns a shell's 127 into an error; the shell has said why already.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(127),
            Err(e) => Err(e.into()),
        }
    }

    /// An interactive login shell over the master connection (already authenticated, its host
    /// key checked): the system `ssh` with a terminal, until the user leaves it.
    pub async fn shell(&self) -> Result<std::process::ExitStatus> {
        let socket = self.session.control_socket();
        tokio::process::Command::new("ssh")
            .arg("-S")
            .arg(socket)
            .args(["-o", "ControlMaster=no", "-t", "-l", &self.target.user, &self.target.host])
            .status()
            .await
            .context("running ssh for the shell")
    }

    /// Forwards `local` (on this machine's loopback) to `remote_port` on the host's loopback,
    /// over the master connection, until it closes.
    pub async fn forward(&self, local: std::net::SocketAddr, remote_port: u16) -> Result<()> {
        let remote = std::net::SocketAddr::from(([127, 0, 0, 1], remote_port));
        self.session
            .request_port_forward(openssh::ForwardType::Local, local, remote)
            .await
            .with_context(|| format!("forwarding {local} to port {remote_port} on {}", self.target.host))
    }

    /// Whether the master connection still works.
    pub async fn alive(&self) -> bool {
        self.session.check().await.is_ok()
    }

    /// Closes the master connection, once nothing else holds the session.
    pub async fn close(self) {
        if let Ok(session) = Arc::try_unwrap(self.session) {
            let _ = session.close().await;
        }
    }
}

/// A command in messages: the program's file name and its first argument.
fn what(argv: &[&str]) -> String {
    let program = argv[0].rsplit('/').next().unwrap_or(argv[0]);
    match argv.get(1) {
        Some(first) => format!("{program} {first}"),
        None => program.to_string(),
    }
}

/// Runs `cmd` with `input` streamed to its stdin (counted on `progress`), and collects its output.
async fn feed(
    mut cmd: openssh::OwningCommand<Arc<Session>>,
    mut input: impl tokio::io::AsyncRead + Unpin,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Output> {
    use tokio::io::AsyncReadExt;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().await?;
    let mut stdin = child.stdin().take().expect("piped");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stdin.write_all(&buf[..n]).await.context("writing to the host")?;
        if let Some(p) = progress {
            p.inc(n as u64);
        }
    }
    stdin.shutdown().await?;
    drop(stdin);
    Ok(child.wait_with_output().await?)
}

/// `SHA256:...` of the key known_hosts has for `name`.
fn fingerprint(known_hosts: &Path, name: &str) -> Option<String> {
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(known_hosts).arg("-F").arg(name).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("SHA256:")).map(str::to_string))
}

/// Under CI nobody compares a fingerprint: a key seen for the first time is not trusted.
fn refuse_first_use(target: &Destination) -> anyhow::Error {
    Failure::Credentials {
        message: format!(
            "{} is not in `{}` and CI=true: refusing to trust its host key on first use (nobody checks a fingerprint in CI)",
            target.host,
            target.known_hosts.display()
        ),
        hint: Some(
            "set `host_key:` in the stack file to the host's /etc/ssh/ssh_host_ed25519_key.pub (an AWS stack reads it from \
             the instance's console output by itself)"
                .into(),
        ),
    }
    .into()
}

/// What a failed connection means, in words that say what to do.
fn connect_error(target: &Destination, e: openssh::Error) -> anyhow::Error {
    let detail = crate::error::chain(&e);
    let kh = target.known_hosts.display();
    if detail.contains("IDENTIFICATION HAS CHANGED") || detail.contains("Host key verification failed") {
        return Failure::Credentials {
            message: format!(
                "the host key of {} is not the one pinned in `{kh}`: refusing to connect (the host was rebuilt, \
                 or someone is in the middle)",
                target.host
            ),
            hint: Some(format!(
                "if the host was replaced on purpose, check its new key out of band, then forget the old one: \
                 ssh-keygen -R '{}' -f {kh}",
                target.known_hosts_name()
            )),
        }
        .into();
    }
    if detail.contains("Permission denied") {
        return Failure::Credentials {
            message: format!("{} refused the SSH login: {detail}", target.display()),
            hint: Some("set `identity:` to the private key this host accepts (or load it in ssh-agent)".into()),
        }
        .into();
    }
    anyhow::anyhow!("cannot connect to {} over SSH: {detail}", target.display())
}
