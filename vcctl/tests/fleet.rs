//! `vcctl up` and `vcctl deploy` of a stack of several hosts, against real hosts: Debian
//! booted by systemd-nspawn from the SSH test host's rootfs, each in its own network
//! namespace on one bridge (`scripts/test-fleet`): one host is the load balancer, the
//! database and the monitoring, the others are app hosts. Each test boots its own fresh
//! hosts (a few seconds) and stops them at the end; the tests run one at a time
//! (.config/nextest.toml: they share the addresses).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{Pebble, service_bin, show};

const NET: &str = "10.233.0";
const LB: u8 = 10;

/// Fresh hosts 10.233.0.N, powered off when dropped.
struct Fleet {
    ids: Vec<u8>,
    /// The hosts' keys (`hostN/ssh_host_ed25519_key.pub`).
    keys: PathBuf,
    /// The key root logs in with on every host.
    client_key: String,
}

impl Fleet {
    fn boot(ids: &[u8]) -> Fleet {
        let out = Command::new(script("test-fleet")).arg("start").args(ids.iter().map(u8::to_string)).output().unwrap();
        assert!(out.status.success(), "scripts/test-fleet start\n{}", show(&out));
        let env = String::from_utf8_lossy(&out.stdout);
        let var = |k: &str| {
            let prefix = format!("export {k}=");
            env.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {k} in\n{env}")).to_string()
        };
        Fleet {
            ids: ids.to_vec(),
            keys: PathBuf::from(var("VC_TEST_FLEET_KEYS")),
            client_key: var("VC_TEST_FLEET_CLIENT_KEY"),
        }
    }

    fn host_key(&self, id: u8) -> String {
        let key = std::fs::read_to_string(self.keys.join(format!("host{id}/ssh_host_ed25519_key.pub"))).unwrap();
        key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// Runs `script` as root on host `id`; its output, whatever its exit.
    fn on(&self, id: u8, script: &str) -> Output {
        let kh = std::env::temp_dir().join(format!("vc-fleet-known-hosts-{}-{id}", std::process::id()));
        std::fs::write(&kh, format!("{NET}.{id} {}\n", self.host_key(id))).unwrap();
        Command::new("ssh")
            .args(["-i", &self.client_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o"])
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg(format!("root@{NET}.{id}"))
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, id: u8, script: &str) -> String {
        let out = self.on(id, script);
        assert!(out.status.success(), "on {NET}.{id}: {script}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stored_events(&self) -> u64 {
        let sql = "runuser -u postgres -- psql -d vehicleconnect -tAc 'SELECT count(*) FROM api_events'";
        self.ok(LB, sql).trim().parse().unwrap()
    }

    fn current(&self, id: u8) -> String {
        self.ok(id, "readlink /opt/vehicleconnect/current").trim().trim_start_matches("releases/").to_string()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(script("test-fleet")).arg("stop").args(self.ids.iter().map(u8::to_string)).output();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// `stacks/fleet.yaml`: host 10 is lb, db and monitoring; `apps` are app hosts.
    fn new(fleet: &Fleet, apps: &[u8]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("stacks")).unwrap();
        let p = Project { dir };
        p.write_stack(fleet, apps);
        p
    }

    fn write_stack(&self, fleet: &Fleet, apps: &[u8]) {
        self.write_stack_with(fleet, apps, "lb, db, monitoring", "host_role: db");
    }

    /// Host 10 with `lb_roles`, `apps` as app hosts, and `database:` holding `database`.
    fn write_stack_with(&self, fleet: &Fleet, apps: &[u8], lb_roles: &str, database: &str) {
        let item = |id: u8, roles: &str| {
            format!("  - {{host: {NET}.{id}, roles: [{roles}], host_key: {}}}\n", fleet.host_key(id))
        };
        let mut hosts = item(LB, lb_roles);
        for id in apps {
            hosts.push_str(&item(*id, "app"));
        }
        let database = database.replace('\n', "\n  ");
        let stack = format!(
            "name: fleet\nprovider: ssh\nssh:\n  user: root\n  identity: {}\nhosts:\n{hosts}database:\n  {database}\nservice:\n  port: 8000\n  ingest_token: true\n",
            fleet.client_key
        );
        std::fs::write(self.dir.path().join("stacks/fleet.yaml"), stack).unwrap();
    }

    /// `vcctl secrets set NAME`, the value on stdin; vcctl's output.
    fn set_secret(&self, name: &str, value: &str) -> Output {
        let mut set = self
            .command(&["secrets", "set", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut set.stdin.take().unwrap(), format!("{value}\n").as_bytes()).unwrap();
        let out = set.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(!show(&out).contains(value), "the value is shown:\n{}", show(&out));
        out
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcctl"));
        cmd.args(["--stack", "fleet"])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("VCCTL_STACK")
            .env_remove("VCCTL_ARTIFACT")
            .env_remove("VCCTL_PORT")
            .env_remove("CI")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let out = self.command(args).arg("--json").output().unwrap();
        assert_eq!(out.status.code(), Some(code), "vcctl {args:?}\n{}", show(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} is not JSON ({e}):\n{}", show(&out)))
    }

    /// The real service with `n` bytes appended: runs the same, hashes differently.
    fn new_build(&self, name: &str, n: usize) -> String {
        common::new_build(&self.path(name), &vec![b'\n'; n]);
        self.path(name).to_string_lossy().into_owned()
    }

    /// `vcctl simulate` through the load balancer, in the background.
    fn simulate(&self, rate: u32, secs: u32) -> std::process::Child {
        let (rate, duration) = (rate.to_string(), format!("{secs}s"));
        self.command(&["simulate", "--rate", &rate, "--duration", &duration, "--concurrency", "256", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The simulator's report over a rolling deploy of two app hosts, where each serves alone
/// while the other is deployed: every planned event sent, and acknowledged or failed with
/// the lone host's 503 (a slow health check of the one host in rotation leaves Caddy 2.6
/// none until the next, about a second: docs/deploy.md, "A host serving alone"), at most 5.
/// Seen: 2 of 6 000 once in CI, in the HTTPS test, and 2 and 3 in two of about ten runs of
/// a host joining beside a dead one; none in most runs. A request of that window near the
/// run's end, which Caddy holds for up to `lb_try_duration` (5 s) waiting for a host, can
/// outlast the simulator's 5 s of grace: it is unconfirmed (seen once in CI, 1 of 6 000),
/// may or may not be stored, and counts within the same 5. Returns how many of the events
/// may be stored: the acknowledged ones, and up to all the unconfirmed.
fn few_lone_host_503s(sim: std::process::Child) -> std::ops::RangeInclusive<u64> {
    let out = sim.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    eprintln!("simulate: {report}");
    let (failed, unconfirmed) = (report["failed"].as_u64().unwrap(), report["unconfirmed"].as_u64().unwrap());
    assert!(
        failed + unconfirmed <= 5 && report["errors"].as_array().unwrap().iter().all(|e| e[0] == "HTTP 503: "),
        "{report}"
    );
    assert_eq!(report["skipped_late"], 0, "{report}");
    let acked = report["acknowledged"].as_u64().unwrap();
    assert_eq!(acked + failed + unconfirmed, report["planned_events"].as_u64().unwrap(), "{report}");
    acked..=acked + unconfirmed
}

/// The simulator's report: every planned event acknowledged, none failed.
fn no_failed_request(sim: std::process::Child) -> u64 {
    let out = sim.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "simulate\n{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("simulate: {report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["skipped_late"], 0, "{report}");
    assert_eq!(report["acknowledged"], report["planned_events"], "{report}");
    report["acknowledged"].as_u64().unwrap()
}

fn curl_status(url: &str) -> Option<u16> {
    let out =
        Command::new("curl").args(["-s", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}", url]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|c| *c != 0)
}

/// Waits until Prometheus on the monitoring host has scraped every app host (`up == 1`).
fn prometheus_sees(fleet: &Fleet, apps: &[u8]) {
    let started = Instant::now();
    loop {
        let q = fleet.ok(LB, "curl -s 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22vehicleconnect%22%7D'");
        let v: Value = serde_json::from_str(&q).unwrap();
        let mut up: Vec<String> = v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["value"][1] == "1")
            .map(|r| r["metric"]["instance"].as_str().unwrap_or("").to_string())
            .collect();
        up.sort();
        let want: Vec<String> = apps.iter().map(|id| format!("{NET}.{id}:8000")).collect();
        if up == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "Prometheus does not see {want:?} up in 60 s: {q}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_fleet_comes_up_behind_its_load_balancer_and_rolls_a_release_without_a_failed_request() {
    let fleet = Fleet::boot(&[LB, 11, 12, 13]);
    let p = Project::new(&fleet, &[11, 12]);
    let bin = service_bin();
    let started = Instant::now();
    let up = p.json(&["up", "--artifact", bin.to_str().unwrap()], 0);
    eprintln!("fresh up of 1 + 2 hosts: {:?}", started.elapsed());
    let v1 = up["release"].as_str().unwrap().to_string();
    assert_eq!(up["hosts"].as_array().unwrap().len(), 2, "{up}");
    assert!(up["hosts"].as_array().unwrap().iter().all(|h| h["result"] == "deployed, healthy"), "{up}");
    assert_eq!((fleet.current(11), fleet.current(12)), (v1.clone(), v1.clone()));
    only_the_load_balancer_is_public_and_only_app_hosts_reach_the_database(&fleet);
    let v2 = a_release_rolls_and_a_broken_one_stops_and_goes_back(&fleet, &p);
    let v4 = a_third_host_joins_then_a_release_rolls_over_three(&fleet, &p, &v2);
    a_release_that_expands_the_schema_rolls_two_at_a_time_beside_the_old(&fleet, &p, &bin, &v4);
    rollback_logs_and_secrets_act_on_every_host(&fleet, &p, &v2);
}

/// Users reach the service through the load balancer only; the app hosts admit it (and
/// Prometheus), never this machine; one database on the db host, over TLS, by SCRAM.
fn only_the_load_balancer_is_public_and_only_app_hosts_reach_the_database(fleet: &Fleet) {
    // Users reach the service through the load balancer only; the app hosts admit the
    // load balancer (and Prometheus), never this machine.
    let lb = format!("http://{NET}.{LB}:8000");
    assert_eq!(curl_status(&format!("{lb}/api/status")), Some(200));
    assert_eq!(curl_status(&format!("http://{NET}.{LB}:80/api/status")), Some(200));
    assert_eq!(curl_status(&format!("http://{NET}.11:8000/api/status")), None, "an app host answers this machine");
    assert!(fleet.ok(LB, &format!("curl -s -m 3 http://{NET}.11:8000/api/status")).contains("\"database\":\"ok\""));
    // One database, on the db host, with the password and token made there.
    let env = fleet.ok(11, "cat /etc/vehicleconnect/env");
    assert!(env.contains(&format!("@{NET}.{LB}:5432/vehicleconnect")), "{env}");
    let clients = "runuser -u postgres -- psql -tAc \"SELECT string_agg(DISTINCT host(client_addr), ' ' ORDER BY host(client_addr)) FROM pg_stat_activity WHERE datname = 'vehicleconnect'\"";
    assert_eq!(fleet.ok(LB, clients).trim(), format!("{NET}.11 {NET}.12"));
    // Only the app hosts may log in, over TLS, by SCRAM; they do, with the db host's
    // certificate pinned, and a service given another certificate refuses to connect.
    let listen = fleet.ok(LB, "runuser -u postgres -- psql -tAc 'show listen_addresses'");
    assert_eq!(listen.trim(), format!("localhost,{NET}.{LB}"), "PostgreSQL listens on the private address only");
    let hba = fleet.ok(LB, "grep '^hostssl vehicleconnect' /etc/postgresql/*/main/pg_hba.conf");
    let line = |id: u8| format!("hostssl vehicleconnect vehicleconnect {NET}.{id}/32 scram-sha-256");
    assert_eq!(hba.trim(), format!("{}\n{}", line(11), line(12)));
    let ssl = "runuser -u postgres -- psql -tAc \"SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'vehicleconnect' AND a.client_addr IS NOT NULL\"";
    let sessions = fleet.ok(LB, ssl);
    let (n, all_tls) = sessions.trim().split_once('|').unwrap();
    assert!(n.parse::<u32>().unwrap() >= 2 && all_tls == "t", "app host sessions: {n}, all over TLS: {all_tls}");
    let other = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other -keyout /tmp/k.pem -out /tmp/other.pem -days 1 2>/dev/null && set -a && . /etc/vehicleconnect/env && set +a && timeout 30 /opt/vehicleconnect/current/vehicleconnect --listen 127.0.0.1:18999 --database-cert /tmp/other.pem --db-connect-timeout 2s 2>&1; echo \"exit $?\"";
    let refused = fleet.ok(11, other);
    assert!(refused.contains("certificate") && !refused.contains("exit 0"), "{refused}");
}

/// A rolling deploy under load fails no request; a release that refuses to start on the
/// second host stops there (exit 6) and the first goes back. The release that serves.
fn a_release_rolls_and_a_broken_one_stops_and_goes_back(fleet: &Fleet, p: &Project) -> String {
    // A rolling deploy under load: no failed request, every acknowledged event stored.
    let before = fleet.stored_events();
    let sim = p.simulate(300, 20);
    std::thread::sleep(Duration::from_secs(2));
    let v2 = p.new_build("v2", 1);
    let started = Instant::now();
    let d = p.json(&["deploy", "--artifact", &v2], 0);
    eprintln!("rolling deploy of 2 app hosts: {:?}", started.elapsed());
    common::check_schema("deploy", &d);
    assert_eq!((d["shape"].as_str(), d["ok"].as_bool()), (Some("fleet"), Some(true)), "{d}");
    let v2 = d["release"].as_str().unwrap().to_string();
    assert_eq!((fleet.current(11), fleet.current(12)), (v2.clone(), v2.clone()));
    let may_be_stored = few_lone_host_503s(sim);
    let stored = fleet.stored_events() - before;
    assert!(may_be_stored.contains(&stored), "{stored} stored, {may_be_stored:?} may be");
    // Checked here rather than right after `up`: Prometheus has scraped a few times by now.
    prometheus_sees(fleet, &[11, 12]);

    // A release that refuses to start on the second host only: the deploy stops there (exit
    // 6, naming it), the first host goes back to v2, and no request fails meanwhile.
    let broken = p.path("v3");
    let text = format!(
        "#!/bin/sh\n# Refuses to start on fleet12 only.\n[ \"$(uname -n)\" = fleet12 ] && {{ echo 'fleet12: refusing' >&2; exit 1; }}\nexec /opt/vehicleconnect/releases/{v2}/vehicleconnect \"$@\"\n"
    );
    std::fs::write(&broken, text).unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = fleet.stored_events();
    let sim = p.simulate(300, 20);
    std::thread::sleep(Duration::from_secs(2));
    let out = p.command(&["deploy", "--artifact", broken.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("the deploy stopped at {NET}.12")), "{err}");
    assert_eq!((fleet.current(11), fleet.current(12)), (v2.clone(), v2.clone()));
    let may_be_stored = few_lone_host_503s(sim);
    let stored = fleet.stored_events() - before;
    assert!(may_be_stored.contains(&stored), "{stored} stored, {may_be_stored:?} may be");

    let status = p.json(&["status"], 0);
    common::check_schema("status", &status);
    assert_eq!(status["shape"], "fleet", "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    // Load spread over both hosts: the KPIs from either equal the database's within seconds.
    let waited = kpis_match(fleet, Duration::from_secs(10));
    eprintln!("the KPIs matched the database {waited:?} after the load");

    v2
}

/// A third app host joins with the serving release, then a new release rolls over three.
fn a_third_host_joins_then_a_release_rolls_over_three(fleet: &Fleet, p: &Project, v2: &str) -> String {
    // A third app host joins (with the serving release, under its name), then a new release
    // rolls over the three, under load.
    p.write_stack(fleet, &[11, 12, 13]);
    let v2_path = p.path("v2");
    let up = p.json(&["up", "--artifact", v2_path.to_str().unwrap()], 0);
    assert_eq!(up["hosts"][0]["host"], format!("{NET}.13"), "{up}");
    assert_eq!(fleet.current(13), v2);
    let before = fleet.stored_events();
    let sim = p.simulate(300, 30);
    std::thread::sleep(Duration::from_secs(2));
    let v4 = p.new_build("v4", 4);
    let started = Instant::now();
    let d = p.json(&["deploy", "--artifact", &v4], 0);
    eprintln!("rolling deploy of 3 app hosts: {:?}", started.elapsed());
    let v4 = d["release"].as_str().unwrap().to_string();
    assert_eq!((fleet.current(11), fleet.current(12), fleet.current(13)), (v4.clone(), v4.clone(), v4.clone()));
    let acked = no_failed_request(sim);
    assert_eq!(fleet.stored_events() - before, acked);

    v4
}

/// Release N+1 expands the schema, two hosts at a time, under load; then N and N+1 at once.
fn a_release_that_expands_the_schema_rolls_two_at_a_time_beside_the_old(
    fleet: &Fleet,
    p: &Project,
    bin: &std::path::Path,
    v4: &str,
) {
    // Release N+1, which first expands the schema as a newer release would (a column, a
    // table, a schema version past any this tree has), two hosts at a time, under load.
    // Like the service's own migrations (store/postgres.rs MIGRATION_LOCK), it holds the
    // migration lock in one transaction: two candidates expanding at once otherwise race on
    // CREATE TABLE IF NOT EXISTS (a duplicate pg_type row), which CI once hit.
    let next = p.path("next");
    let text = format!(
        r#"#!/bin/sh
if [ "${{1:-}}" = --version ]; then exec {local} --version; fi
PGPASSWORD=$(printf '%s' "$DATABASE_URL" | sed 's|^postgres://[^:]*:\([^@]*\)@.*|\1|')
export PGPASSWORD PGHOST={NET}.{LB} PGSSLMODE=require PGUSER=vehicleconnect PGDATABASE=vehicleconnect
psql -q -1 -v ON_ERROR_STOP=1 -c 'SELECT pg_advisory_xact_lock(130169409464178)' \
  -c 'ALTER TABLE api_events ADD COLUMN IF NOT EXISTS firmware TEXT' \
  -c 'CREATE TABLE IF NOT EXISTS vehicles (id BIGSERIAL PRIMARY KEY)' \
  -c 'INSERT INTO schema_migrations (version) VALUES (1000) ON CONFLICT DO NOTHING' || exit 1
exec /opt/vehicleconnect/releases/{v4}/vehicleconnect "$@"
"#,
        local = bin.display()
    );
    std::fs::write(&next, text).unwrap();
    std::fs::set_permissions(&next, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = fleet.stored_events();
    let sim = p.simulate(300, 30);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let d = p.json(&["deploy", "--artifact", next.to_str().unwrap(), "--parallel", "2"], 0);
    eprintln!("rolling deploy of 3 app hosts, 2 at a time: {:?}", started.elapsed());
    let n1 = d["release"].as_str().unwrap().to_string();
    assert_eq!((fleet.current(11), fleet.current(12), fleet.current(13)), (n1.clone(), n1.clone(), n1.clone()));
    let acked = no_failed_request(sim);
    assert_eq!(fleet.stored_events() - before, acked);
    let schema = "runuser -u postgres -- psql -d vehicleconnect -tAc 'SELECT max(version) FROM schema_migrations'";
    assert_eq!(fleet.ok(LB, schema).trim(), "1000");

    // N and N+1 at once: one host back on N, on the schema N+1 expanded, beside two on N+1;
    // load spread over the three loses nothing.
    let r = p.json(&["rollback", "--host", &format!("{NET}.12")], 0);
    assert_eq!(r["hosts"], serde_json::json!([format!("{NET}.12")]), "{r}");
    assert_eq!((fleet.current(11), fleet.current(12), fleet.current(13)), (n1.clone(), v4.to_string(), n1.clone()));
    let before = fleet.stored_events();
    let acked = no_failed_request(p.simulate(300, 10));
    assert_eq!(fleet.stored_events() - before, acked);
    let journal = fleet.ok(12, "journalctl -u vehicleconnect.service --no-pager -n 300 -o cat");
    assert!(journal.contains("schema is newer than this release knows"), "{journal}");
}

/// Rollback of every host, logs of each, and a secret on every app host.
fn rollback_logs_and_secrets_act_on_every_host(fleet: &Fleet, p: &Project, v2: &str) {
    // Rollback of every host, each out of rotation while it switches.
    p.json(&["rollback", "--to", v2], 0);
    assert_eq!(
        (fleet.current(11), fleet.current(12), fleet.current(13)),
        (v2.to_string(), v2.to_string(), v2.to_string())
    );
    let out = p.command(&["rollback", "--host", "10.9.9.9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    // Logs: one host's journal, or each host's in turn.
    let out = p.command(&["logs", "-n", "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for id in [11, 12, 13] {
        assert!(text.contains(&format!("==> {NET}.{id} <==")), "{text}");
    }
    // A secret reaches every app host (from stdin, never shown).
    p.set_secret("PARTNER_KEY", "s3cr3t-value");
    for id in [11, 12, 13] {
        assert_eq!(fleet.ok(id, "grep -c '^PARTNER_KEY=\"s3cr3t-value\"$' /etc/vehicleconnect/secrets").trim(), "1");
    }
    let list = p.json(&["secrets", "list"], 0);
    assert_eq!(list["secrets"][0]["name"], "PARTNER_KEY", "{list}");
}

/// `tls:` on a fleet: Caddy on the lb host gets its certificate from an ACME CA (Pebble, on
/// this machine's side of the bridge) and terminates HTTPS in front of the app hosts, with
/// HSTS and http:// redirected; a rolling deploy over HTTPS fails no request.
#[test]
fn the_load_balancer_terminates_https_from_an_acme_ca_and_rolls_a_release_without_a_failed_request() {
    let fleet = Fleet::boot(&[LB, 11, 12]);
    let pebble = Pebble::start(&format!("{NET}.1"), &format!("{NET}.{LB}"));
    let p = Project::new(&fleet, &[11, 12]);
    let file = p.path("stacks/fleet.yaml");
    let tls = format!(
        "tls:\n  domain: vc.test\n  email: ops@example.com\n  acme_ca: {}\n  trust_ca: {}\n",
        pebble.directory,
        pebble.bundle.display()
    );
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + &tls).unwrap();
    let bin = service_bin();
    let up = p.json(&["up", "--artifact", bin.to_str().unwrap()], 0);
    assert_eq!(up["url"], "https://vc.test", "{up}");

    let curl = |args: &[&str]| {
        let out =
            Command::new("curl").args(["-sS", "-m", "10", "--cacert"]).arg(&pebble.bundle).args(args).output().unwrap();
        assert!(out.status.success(), "curl {args:?}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let resolve = |port: u16| format!("vc.test:{port}:{NET}.{LB}");
    let headers = curl(&["-D", "-", "-o", "/dev/null", "--resolve", &resolve(443), "https://vc.test/api/status"]);
    assert!(headers.starts_with("http/2 200") || headers.starts_with("http/1.1 200"), "{headers}");
    assert!(headers.contains("strict-transport-security: max-age=31536000"), "{headers}");
    let redirect = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--resolve",
        &resolve(80),
        "http://vc.test/api/status",
    ]);
    assert_eq!(redirect, "308 https://vc.test/api/status");

    let before = fleet.stored_events();
    let sim = p.simulate(300, 20);
    std::thread::sleep(Duration::from_secs(2));
    let v2 = p.new_build("v2", 1);
    let d = p.json(&["deploy", "--artifact", &v2], 0);
    let v2 = d["release"].as_str().unwrap().to_string();
    assert_eq!((fleet.current(11), fleet.current(12)), (v2.clone(), v2));
    let may_be_stored = few_lone_host_503s(sim);
    let stored = fleet.stored_events() - before;
    assert!(may_be_stored.contains(&stored), "{stored} stored, {may_be_stored:?} may be");
}

/// Makes host 12 an external database server, as a managed one is: PostgreSQL over TLS with
/// a certificate for its address from a CA of its own, a role and a database, host 11 (the
/// app host) admitted by SCRAM. Prints the CA's certificate.
fn external_database() -> String {
    let certificate = common::database_certificate("/etc/postgresql/ext", "test-db-ca", "10.233.0.12");
    format!(
        r#"set -e
systemctl enable --now postgresql >/dev/null 2>&1
for _ in $(seq 60); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
{certificate}runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
ALTER SYSTEM SET listen_addresses = '*';
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '/etc/postgresql/ext/server.pem';
ALTER SYSTEM SET ssl_key_file = '/etc/postgresql/ext/server.key';
CREATE ROLE ext LOGIN PASSWORD 'ext-Pa55-w0rd';
CREATE DATABASE extdb OWNER ext;
SQL
echo 'hostssl extdb ext 10.233.0.11/32 scram-sha-256' >> "$(ls /etc/postgresql/*/main/pg_hba.conf)"
systemctl restart postgresql
cat ca.pem
"#
    )
}

/// A fleet whose database is not vcctl's: its URL a secret, its certificate verified against
/// the CA the stack names. `up` refuses until the secret is set, then the app hosts store
/// there over verified TLS; `destroy` leaves it and its events alone.
#[test]
fn an_external_database_named_by_a_secret_serves_the_fleet_and_outlives_destroy() {
    let fleet = Fleet::boot(&[LB, 11, 12]);
    let ca = fleet.ok(12, &external_database());
    let p = Project::new(&fleet, &[11]);
    std::fs::write(p.path("db-ca.pem"), &ca).unwrap();
    p.write_stack_with(&fleet, &[11], "lb, monitoring", "url_secret: EXT_DB_URL\nca_file: db-ca.pem");
    let bin = service_bin();
    let bin = bin.to_str().unwrap();

    let out = p.command(&["up", "--artifact", bin]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the secret EXT_DB_URL (database.url_secret in `"), "{err}");
    assert!(err.contains(&format!("stacks/fleet.yaml`) is not set on {NET}.11")), "{err}");
    assert!(err.contains("vcctl secrets set EXT_DB_URL"), "{err}");
    assert!(fleet.on(11, "test -e /opt/vehicleconnect/current").status.code() == Some(1), "something was deployed");

    let url = format!("postgres://ext:ext-Pa55-w0rd@{NET}.12:5432/extdb?sslmode=require");
    p.set_secret("EXT_DB_URL", &url);
    let out = p.command(&["up", "--artifact", bin, "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!show(&out).contains("ext-Pa55-w0rd"), "the password is shown:\n{}", show(&out));
    let env = fleet.ok(11, "cat /etc/vehicleconnect/env");
    assert!(env.contains(&format!("DATABASE_URL=\"{url}\"")) && env.contains("VC_DATABASE_CA="), "{env}");
    assert!(!env.contains("VC_DATABASE_CERT"), "{env}");

    let acked = no_failed_request(p.simulate(300, 5));
    let count = "PGPASSWORD=ext-Pa55-w0rd psql -h 127.0.0.1 -U ext -d extdb -tAc 'SELECT count(*) FROM api_events'";
    let stored = || fleet.ok(12, count).trim().parse::<u64>().unwrap();
    assert_eq!(stored(), acked);
    let ssl = "runuser -u postgres -- psql -tAc \"SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'extdb' AND a.client_addr IS NOT NULL\"";
    let sessions = fleet.ok(12, ssl);
    let (n, all_tls) = sessions.trim().split_once('|').unwrap();
    assert!(n.parse::<u32>().unwrap() >= 1 && all_tls == "t", "app host sessions: {n}, all over TLS: {all_tls}");
    // Another CA than the one that signed the server's certificate: the service refuses.
    let other = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other -keyout /tmp/k.pem -out /tmp/other.pem -days 1 2>/dev/null && set -a && . /etc/vehicleconnect/env && set +a && timeout 30 /opt/vehicleconnect/current/vehicleconnect --listen 127.0.0.1:18999 --database-ca /tmp/other.pem --db-connect-timeout 2s 2>&1; echo \"exit $?\"";
    let refused = fleet.ok(11, other);
    assert!(refused.contains("certificate") && !refused.contains("exit 0"), "{refused}");

    let destroyed = p.json(&["destroy", "--yes"], 0);
    common::check_schema("destroy", &destroyed);
    assert_eq!(destroyed["destroyed"], true, "{destroyed}");
    assert!(destroyed["kept"][0].as_str().unwrap().starts_with("the external database"), "{destroyed}");
    assert_eq!(stored(), acked, "destroy touched the external database");
}

/// The fleet's KPIs through the load balancer: (events, error rate %) over the last hour.
fn kpis_through_lb() -> (u64, f64) {
    let out = Command::new("curl")
        .args(["-sf", "-m", "5", &format!("http://{NET}.{LB}:8000/api/analytics/kpis?window=1h")])
        .output()
        .unwrap();
    let k: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("KPIs ({e}): {}", show(&out)));
    (k["overall"]["count"].as_u64().unwrap(), k["overall"]["error_rate_pct"].as_f64().unwrap())
}

/// The same, computed over the database's rows.
fn kpis_in_database(fleet: &Fleet) -> (u64, f64) {
    let sql = "runuser -u postgres -- psql -d vehicleconnect -tAc \"SELECT count(*), 100.0 * count(*) FILTER (WHERE status_code >= 500) / greatest(count(*), 1) FROM api_events WHERE ts > now() - interval '1 hour'\"";
    let out = fleet.ok(LB, sql);
    let (n, rate) = out.trim().split_once('|').unwrap();
    (n.parse().unwrap(), rate.parse().unwrap())
}

#[test]
fn a_dead_app_host_is_routed_around_and_app_hosts_join_and_leave_under_load() {
    let fleet = Fleet::boot(&[LB, 11, 12, 13]);
    let p = Project::new(&fleet, &[11, 12]);
    let bin = service_bin();
    let bin = bin.to_str().unwrap();
    p.json(&["up", "--artifact", bin], 0);
    a_power_cut_on_an_app_host_fails_only_what_it_held(&p);
    a_new_host_joins_beside_the_dead_one_when_it_is_skipped(&fleet, &p, bin);
    a_host_that_leaves_is_drained_then_stopped(&fleet, &p, bin);
}

/// A power cut on an app host mid-load: the load balancer routes around it; what fails is
/// at most what was in flight on that host (docs/deploy.md states the bound).
fn a_power_cut_on_an_app_host_fails_only_what_it_held(p: &Project) {
    // A power cut on an app host mid-load: the load balancer routes around it; what fails is
    // at most what was in flight on that host (docs/deploy.md states the bound).
    let sim = p.simulate(300, 25);
    std::thread::sleep(Duration::from_secs(3));
    let out = Command::new(script("test-fleet")).args(["cut", "12"]).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let out = sim.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("power cut on one of 2 app hosts at 300 events/s: {report}");
    // The bound (docs/deploy.md): what the load balancer sends the dead host until a health
    // check fails (interval 1 s + timeout 2 s), at 150 requests/s per host, and what was in
    // flight there.
    let failed = report["failed"].as_u64().unwrap();
    assert!(failed <= 3 * 150 + 50, "{failed} failed requests: {report}");
    // Every request sent is acknowledged or failed. While requests to the dead host wait for
    // their timeout, the simulator's connections are taken and it may fall behind its
    // schedule: what it skips as too late was never sent (27 in one CI run), bounded to half
    // a second of load.
    let (requests, skipped) = (report["requests"].as_u64().unwrap(), report["skipped_late"].as_u64().unwrap());
    assert_eq!(report["acknowledged"].as_u64().unwrap() + failed, requests, "{report}");
    assert_eq!(requests + skipped, report["planned_events"].as_u64().unwrap(), "{report}");
    assert!(skipped <= 150, "{report}");
}

/// A new host beside the dead one: refused before anything changes, unless the dead one is
/// skipped; then the new host serves the release and joins the rotation, under load.
fn a_new_host_joins_beside_the_dead_one_when_it_is_skipped(fleet: &Fleet, p: &Project, bin: &str) {
    // A new host beside the dead one: refused before anything changes, unless the dead one is
    // skipped; then the new host serves the release and joins the rotation, under load.
    p.write_stack(fleet, &[11, 12, 13]);
    let plan = p.json(&["plan", "--artifact", bin], 2);
    common::check_schema("plan", &plan);
    let changes = plan_lines(&plan);
    assert!(changes.iter().any(|c| c.starts_with(&format!("? {NET}.12: does not answer"))), "{plan}");
    assert!(changes.contains(&format!("+ {NET}.13: prepare, deploy, add to the load balancer")), "{plan}");
    assert_eq!(changes.len(), 2, "{plan}");
    let out = p.command(&["up", "--artifact", bin]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("app host {NET}.12 does not answer; nothing was changed")),
        "{}",
        show(&out)
    );
    assert!(fleet.on(13, "test -e /opt/vehicleconnect/current").status.code() == Some(1), "the new host was changed");
    let before = fleet.stored_events();
    let sim = p.simulate(300, 20);
    std::thread::sleep(Duration::from_secs(2));
    let up = p.json(&["up", "--artifact", bin, "--skip-unreachable"], 0);
    let results: Vec<(String, String)> = up["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap().into(), h["result"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        results,
        [
            (format!("{NET}.13"), "deployed, healthy".to_string()),
            (format!("{NET}.11"), "unchanged (already serving)".to_string()),
            (format!("{NET}.12"), "skipped: did not answer".to_string()),
        ]
    );
    assert_eq!(fleet.current(13), fleet.current(11));
    // One host serves alone here (the other is dead): seen 2 and 3 of 6 000 in two of about
    // ten runs; bounded, as every step where one host serves alone.
    let may_be_stored = few_lone_host_503s(sim);
    let stored = fleet.stored_events() - before;
    assert!(may_be_stored.contains(&stored), "{stored} stored, {may_be_stored:?} may be");
}

/// Host 11 leaves the stack (and 12, dead): drained, then stopped, under load.
fn a_host_that_leaves_is_drained_then_stopped(fleet: &Fleet, p: &Project, bin: &str) {
    // Host 11 leaves the stack (and 12, dead): drained, then stopped, under load.
    p.write_stack(fleet, &[13]);
    let plan = p.json(&["plan", "--artifact", bin], 2);
    assert_eq!(
        plan_lines(&plan),
        [format!("- {NET}.11:8000: gone from the stack file; drain it, then stop its service")]
    );
    let before = fleet.stored_events();
    let sim = p.simulate(300, 15);
    std::thread::sleep(Duration::from_secs(2));
    let up = p.json(&["up", "--artifact", bin], 0);
    let removed: Vec<&str> = up["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["result"] == "removed: drained, then stopped")
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [format!("{NET}.11")], "{up}");
    let acked = no_failed_request(sim);
    assert_eq!(fleet.stored_events() - before, acked);
    assert_eq!(
        fleet.on(11, "systemctl is-active vehicleconnect.socket").status.code(),
        Some(3),
        "host 11 still listens"
    );
    let status = p.json(&["status"], 0);
    assert_eq!(status["hosts"].as_array().unwrap().iter().filter(|h| h["in_rotation"] == true).count(), 1, "{status}");

    // The fleet's KPIs equal the database's own figures, the dead host's events included:
    // what it had not shared yet is counted when its minute closes (90 s after the minute,
    // by a leader; the dead host's sessions, and its leadership, end within ~25 s).
    let waited = kpis_match(fleet, Duration::from_secs(240));
    eprintln!("the KPIs matched the database {waited:?} after the last load (a host died mid-load)");

    // Destroy: only with confirmation; then nothing serves and the data is gone.
    let out = p.command(&["destroy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", show(&out));
    assert_eq!(curl_status(&format!("http://{NET}.{LB}:8000/api/status")), Some(200), "destroyed without confirmation");
    p.json(&["destroy", "--yes"], 0);
    assert_eq!(curl_status(&format!("http://{NET}.{LB}:8000/api/status")), None, "the load balancer still answers");
    assert_eq!(fleet.on(13, "systemctl is-active vehicleconnect.socket").status.code(), Some(3));
    let dbs = fleet.ok(
        LB,
        "runuser -u postgres -- psql -tAc \"SELECT count(*) FROM pg_database WHERE datname = 'vehicleconnect'\"",
    );
    assert_eq!(dbs.trim(), "0");
}

/// Waits until the KPIs through the load balancer equal the database's; how long it took.
fn kpis_match(fleet: &Fleet, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (count, rate) = kpis_through_lb();
        let (db_count, db_rate) = kpis_in_database(fleet);
        // The API rounds the rate to three decimals.
        if count == db_count && (rate - db_rate).abs() <= 0.0005 + 1e-9 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "KPIs through the load balancer: {count} events, {rate} % errors; the database: {db_count}, {db_rate} %"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A plan's changes as its text shows them (`+ host: detail`).
fn plan_lines(plan: &serde_json::Value) -> Vec<String> {
    let sign = |a: &str| match a {
        "create" => '+',
        "update" => '~',
        "delete" => '-',
        "unknown" => '?',
        _ => '!',
    };
    let changes = plan["changes"].as_array().expect("a plan's changes");
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}",
                sign(c["action"].as_str().unwrap()),
                c["resource"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}
