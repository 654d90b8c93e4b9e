//! Test harness: runs the real `vehicleconnect` binary against a real store, and reads the
//! store directly to check what was committed.
//!
//! PostgreSQL comes from `VC_TEST_DATABASE_URL` (scripts/test starts a cluster and sets it);
//! each test gets a database of its own. A missing server fails the test: never a skip.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::NoTls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres,
}

/// Runs an async test body once per store.
#[macro_export]
macro_rules! both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::common::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    };
}

pub fn pg_admin_url() -> String {
    std::env::var("VC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "VC_TEST_DATABASE_URL is not set: these tests need a PostgreSQL server. \
             Run them with `scripts/test`, which starts one, or point VC_TEST_DATABASE_URL at a server \
             where the user may create databases (postgres://postgres@127.0.0.1:55432/postgres)"
        )
    })
}

pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!("cannot connect to PostgreSQL at {url}: {e}; is it running? (scripts/test starts it)")
    });
    tokio::spawn(conn);
    client
}

/// `url` with its database name replaced.
fn with_dbname(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("VC_TEST_DATABASE_URL has a /database part");
    format!("{base}/{db}")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty store for one test.
pub struct TestStore {
    pub backend: Backend,
    pub dir: TempDir,
    pub pg_url: Option<String>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let pg_url = match backend {
            Backend::Embedded => None,
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!(
                    "vc_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
                );
                pg_connect(&admin).await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
                Some(with_dbname(&admin, &name))
            }
        };
        TestStore { backend, dir, pg_url }
    }

    /// A store on a given PostgreSQL URL (e.g. a private cluster).
    pub fn postgres_at(url: String) -> TestStore {
        TestStore { backend: Backend::Postgres, dir: tempfile::tempdir().unwrap(), pg_url: Some(url) }
    }

    pub fn args(&self) -> Vec<String> {
        match &self.pg_url {
            Some(url) => vec!["--database".into(), url.clone()],
            None => vec!["--data-dir".into(), self.dir.path().join("data").display().to_string()],
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("data/vehicleconnect.db")).unwrap()
    }

    pub async fn count(&self, sql_where: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM api_events {sql_where}");
        match &self.pg_url {
            Some(url) => pg_connect(url).await.query_one(&sql, &[]).await.unwrap().get(0),
            None => self.sqlite().query_row(&sql, [], |r| r.get(0)).unwrap(),
        }
    }

    pub async fn event_ids(&self) -> HashSet<i64> {
        let sql = "SELECT id FROM api_events";
        match &self.pg_url {
            Some(url) => pg_connect(url).await.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect(),
            None => {
                let conn = self.sqlite();
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            }
        }
    }

    /// Each event's `response_time_ms`, by id.
    pub async fn times_by_id(&self) -> std::collections::HashMap<i64, f64> {
        let sql = "SELECT id, response_time_ms FROM api_events";
        match &self.pg_url {
            Some(url) => {
                pg_connect(url).await.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
            }
            None => {
                let conn = self.sqlite();
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
            }
        }
    }

    /// Runs one SQL statement on the store, beside the service.
    pub async fn execute(&self, sql: &str) {
        match &self.pg_url {
            Some(url) => {
                pg_connect(url).await.batch_execute(sql).await.unwrap();
            }
            None => {
                self.sqlite().execute_batch(sql).unwrap();
            }
        }
    }

    /// PostgreSQL only: one number a query returns.
    pub async fn scalar(&self, sql: &str) -> i64 {
        pg_connect(self.pg_url.as_deref().expect("a PostgreSQL store")).await.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// PostgreSQL only: the tables attached to `api_events`, by name, sorted.
    pub async fn partitions(&self) -> Vec<String> {
        let client = pg_connect(self.pg_url.as_deref().expect("a PostgreSQL store")).await;
        let sql = "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'api_events'::regclass ORDER BY 1";
        client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    }

    pub async fn snapshot_rows(&self) -> i64 {
        let sql = "SELECT count(*) FROM kpi_snapshots";
        match &self.pg_url {
            Some(url) => pg_connect(url).await.query_one(sql, &[]).await.unwrap().get(0),
            None => self.sqlite().query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }
}

/// A running `vehicleconnect` process on a free loopback port.
pub struct Service {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Service {
    pub async fn start(store: &TestStore, extra: &[&str]) -> Service {
        Service::start_with_env(store, extra, &[]).await
    }

    /// Started with these environment variables too (secrets, as production passes them).
    pub async fn start_with_env(store: &TestStore, extra: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vehicleconnect"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(store.args())
            .args(extra)
            .env_remove("DATABASE_URL")
            .env_remove("VC_INGEST_TOKEN")
            .env_remove("VC_ORIGIN_SECRET")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawning vehicleconnect");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split(" listening addr=").nth(1)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!("vehicleconnect did not start listening; its log:\n{}", log.lock().unwrap()),
        };
        Service { child, base: format!("http://{addr}"), log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("service still running")
    }

    /// SIGKILL: no chance to flush anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then the exit code once it stopped.
    pub async fn terminate(&mut self) -> Option<i32> {
        let status = std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within 30 s of SIGTERM; log:\n{}", self.log()))
            .unwrap();
        status.code()
    }
}

pub fn client() -> reqwest::Client {
    // reqwest's TLS is built without a default provider in this workspace.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

pub fn event(endpoint: &str, ms: f64, status: u16, client_id: &str) -> serde_json::Value {
    serde_json::json!({"endpoint": endpoint, "response_time_ms": ms, "status_code": status, "client_id": client_id})
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL cluster of its own, for tests that stop and start the server.
pub struct PgCluster {
    dir: TempDir,
    pub port: u16,
    bin: PathBuf,
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgCluster {
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        // PostgreSQL refuses to run as root; CI runs as root.
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}{}",
            exe.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start_new() -> PgCluster {
        let bin = PathBuf::from(std::env::var("VC_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()));
        assert!(
            bin.join("initdb").exists(),
            "no initdb in {} (set VC_PG_BIN; scripts/test installs PostgreSQL)",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("vc-pg-").tempdir().unwrap();
        if is_root() {
            std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = PgCluster { dir, port, bin };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"]);
    }

    /// `immediate`: like a crash, no clean shutdown.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// `promtool check metrics` over an exposition: panics with its complaint and the text.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package `prometheus`; scripts/test installs it)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process's resident memory now and at its peak, in bytes, from `/proc/PID/status`.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {status}"));
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub const MIB: u64 = 1024 * 1024;
