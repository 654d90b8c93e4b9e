//! The local stack with production's shape (`local.database: postgres`, `local.prometheus`,
//! `local.replicas`): the machine's real PostgreSQL and Prometheus, started and supervised by
//! vcctl, the real service binary. A failure prints the command and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/mod.rs"]
mod common;

use common::show;

/// `n` free consecutive loopback ports outside the ephemeral range, in blocks of 10 spread
/// by process id (nextest runs each test in a process of its own, with pids close together).
fn free_ports(n: u16) -> u16 {
    let offset = (std::process::id() % 900) as u16 * 10;
    (0..900u16)
        .map(|i| 21_000 + (offset + i * 10) % 9_000)
        .find(|p| (0..n).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()))
        .expect("free ports in 21000-29999")
}

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// A project whose directories PostgreSQL's own user can reach (vcctl runs it as
    /// `postgres` when the tests run as root).
    fn new(stacks: &[(&str, String)]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("stacks")).unwrap();
        for (name, text) in stacks {
            std::fs::write(dir.path().join(format!("stacks/{name}.yaml")), text).unwrap();
        }
        Lab { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn vcctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vcctl"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("VCCTL_PORT")
            .env_remove("VCCTL_STACK")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn expect(&self, args: &[&str], code: i32) -> Output {
        let out = self.vcctl(args);
        assert_eq!(out.status.code(), Some(code), "vcctl {args:?}\n{}", show(&out));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.expect(&all, 0);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", show(&out)))
    }

    /// SQL on the stack's own cluster, as the service's role.
    fn sql(&self, stack: &str, query: &str) -> String {
        let state = self.path(&format!(".vcctl/local/{stack}"));
        let port = std::fs::read_to_string(state.join("pg/port")).unwrap();
        let password = std::fs::read_to_string(state.join("secrets/db_password")).unwrap();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                port.trim(),
                "-U",
                "vehicleconnect",
                "-d",
                "vehicleconnect",
                "-qAtc",
                query,
            ])
            .env("PGPASSWORD", password.trim())
            .output()
            .unwrap();
        assert!(out.status.success(), "{query}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.path("stacks")).into_iter().flatten().flatten() {
            let name = entry.path().file_stem().unwrap().to_string_lossy().into_owned();
            let _ = self.vcctl(&["destroy", "--yes", "--stack", &name]);
        }
    }
}

/// GET `url` with curl: (status, JSON body).
fn get(url: &str) -> (u16, Value) {
    let out = Command::new("curl").args(["-s", "-m", "5", "-w", "\n%{http_code}", url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The memory of process `pid` and its children, in MiB: their proportional set sizes (a
/// page shared by n processes counts 1/n to each, so PostgreSQL's shared buffers once).
fn memory_mib(pid: u64) -> f64 {
    let out = Command::new("ps").args(["-o", "pid=", "--ppid", &pid.to_string()]).output().unwrap();
    let children = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .collect::<Vec<_>>();
    let pss = |p: u64| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let kib: u64 = std::iter::once(pid).chain(children).map(pss).sum();
    kib as f64 / 1024.0
}

fn stack(port: u16, prometheus: u16) -> String {
    format!(
        "name: lab\nprovider: local\nservice:\n  port: {port}\n  kpi_interval: 2s\n  ingest_token: false\n\
         local:\n  database: postgres\n  prometheus: {{port: {prometheus}}}\n  replicas: 2\n"
    )
}

/// `up` starts PostgreSQL, Prometheus and two service processes; 10 000 events through
/// `simulate` give KPIs equal to what the table holds; Prometheus scrapes both replicas with
/// production's rules; the database killed under load restarts and loses nothing that was
/// acknowledged; `destroy` stops everything and deletes it.
#[test]
fn a_local_stack_runs_production_s_shape_and_loses_nothing_when_its_database_restarts() {
    let ports = free_ports(3);
    let (port, prometheus) = (ports, ports + 2);
    let lab = Lab::new(&[("lab", stack(port, prometheus))]);
    let bin = common::service_bin();
    let started = Instant::now();
    lab.expect(&["up", "--stack", "lab", "--artifact", bin.to_str().unwrap()], 0);
    let warm = started.elapsed();
    let status = lab.json(&["status", "--stack", "lab"]);
    let processes: Vec<(String, String)> = status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["health"].as_str().unwrap().to_string()))
        .collect();
    let names: Vec<&str> = processes.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["service", "service-2", "db", "prometheus"], "{status}");
    assert!(processes.iter().all(|p| p.1 == "healthy") && status["healthy"] == true, "{status}");
    assert_eq!(get(&format!("http://127.0.0.1:{}/api/status", port + 1)).1["store"], "postgres");
    let again = lab.json(&["plan", "--stack", "lab"]);
    assert_eq!(again["changed"], false, "a second up would change nothing: {again}");
    let at_rest: Vec<(String, f64)> = status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["name"].as_str().unwrap().to_string(), (memory_mib(p["pid"].as_u64().unwrap()) * 10.0).round() / 10.0)
        })
        .collect();
    eprintln!(
        "up to healthy (warm machine, PostgreSQL made): {warm:?}; memory at rest (MiB, proportional set size with children): {at_rest:?}"
    );

    kpis_equal_the_table(&lab, port);
    prometheus_scrapes_both_replicas(prometheus);
    nothing_acknowledged_is_lost_when_the_database_restarts(&lab, port);

    let listed = common::stderr(&lab.expect(&["destroy", "--stack", "lab"], 8));
    assert!(listed.contains("the stack's PostgreSQL cluster") && listed.contains("Prometheus"), "{listed}");
    let pids: Vec<u64> = lab.json(&["status", "--stack", "lab"])["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    lab.expect(&["destroy", "--stack", "lab", "--yes"], 0);
    assert!(pids.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists()), "every process stopped: {pids:?}");
    assert!(!lab.path(".vcctl/local/lab").exists(), "the stack's directory is gone");
}

/// 10 000 events through `simulate`; the service's KPIs over the last hour against SQL over
/// the table: the count and error rate exact, the mean to the microsecond, p95 within the
/// sketch's error.
fn kpis_equal_the_table(lab: &Lab, port: u16) {
    let out = lab.json(&["simulate", "--stack", "lab", "--rate", "2500", "--duration", "4s", "--batch", "50"]);
    assert_eq!(out["acknowledged"], 10_000, "{out}");
    let table: Vec<f64> = lab
        .sql(
            "lab",
            "SELECT count(*), avg(response_time_ms), 100.0 * count(*) FILTER (WHERE status_code >= 500) / count(*), \
             percentile_disc(0.95) WITHIN GROUP (ORDER BY response_time_ms) FROM api_events WHERE ts > now() - interval '1 hour'",
        )
        .split('|')
        .map(|v| v.parse().unwrap())
        .collect();
    let started = Instant::now();
    let kpis = loop {
        let (code, k) = get(&format!("http://127.0.0.1:{port}/api/analytics/kpis?window=1h"));
        if code == 200 && k["overall"]["count"].as_f64() == Some(table[0]) {
            break k["overall"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "KPIs never counted the table's {}: {k}", table[0]);
        std::thread::sleep(Duration::from_millis(500));
    };
    let got = |f: &str| kpis[f].as_f64().unwrap();
    assert!((got("avg_latency_ms") - table[1]).abs() < 0.001, "mean {kpis} vs {table:?}");
    assert!((got("error_rate_pct") - table[2]).abs() < 0.01, "error rate {kpis} vs {table:?}");
    assert!((got("p95_latency_ms") - table[3]).abs() <= table[3] * 0.02, "p95 {kpis} vs {table:?}");
}

/// Prometheus (15 s scrapes) finds both replicas up and counts the vehicle events, and has
/// production's rules loaded.
fn prometheus_scrapes_both_replicas(prometheus: u16) {
    let query = |q: &str| get(&format!("http://127.0.0.1:{prometheus}/api/v1/query?query={q}")).1;
    let started = Instant::now();
    loop {
        let up = query("up%7Bjob%3D%22vehicleconnect%22%7D");
        let ups: Vec<&str> =
            up["data"]["result"].as_array().into_iter().flatten().filter_map(|r| r["value"][1].as_str()).collect();
        let events = query("sum(vehicle_events_total)");
        let counted = events["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        if ups == ["1", "1"] && counted.is_some_and(|c| c >= 10_000.0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(45), "Prometheus: up {up}, events {events}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let rules = get(&format!("http://127.0.0.1:{prometheus}/api/v1/rules")).1;
    assert!(rules.to_string().contains("VehicleConnectDown"), "production's rules: {rules}");
}

/// Events posted one at a time while PostgreSQL is killed: the supervisor starts it again,
/// the service reconnects, and every event answered 201 is in the table.
fn nothing_acknowledged_is_lost_when_the_database_restarts(lab: &Lab, port: u16) {
    let load = format!(
        "for i in $(seq 600); do code=$(curl -s -m 5 -o /dev/null -w '%{{http_code}}' -H 'content-type: application/json' \
         -d \"{{\\\"endpoint\\\":\\\"/v1/restart\\\",\\\"response_time_ms\\\":5,\\\"status_code\\\":200,\\\"client_id\\\":\\\"c\\\",\\\"event_id\\\":\\\"r-$i\\\"}}\" \
         http://127.0.0.1:{port}/api/events); echo \"$i $code\"; sleep 0.01; done"
    );
    let under_load = std::thread::spawn(move || Command::new("sh").args(["-c", &load]).output().unwrap());
    std::thread::sleep(Duration::from_millis(800));
    let db = lab.json(&["status", "--stack", "lab"])["processes"][2]["pid"].as_u64().unwrap();
    assert!(Command::new("kill").args(["-KILL", &db.to_string()]).status().unwrap().success());
    let answers = String::from_utf8_lossy(&under_load.join().unwrap().stdout).into_owned();
    let acked: Vec<&str> =
        answers.lines().filter(|l| l.ends_with(" 201")).map(|l| l.split(' ').next().unwrap()).collect();
    let refused = answers.lines().filter(|l| !l.ends_with(" 201")).count();
    let stored =
        lab.sql("lab", "SELECT string_agg(substr(event_id, 3), ' ') FROM api_events WHERE event_id LIKE 'r-%'");
    let stored: std::collections::BTreeSet<&str> = stored.split(' ').collect();
    let lost: Vec<&&str> = acked.iter().filter(|i| !stored.contains(**i)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert!(refused > 0 && acked.len() > 300, "the restart was seen ({refused} refused), then it served: {answers}");
    let status = lab.json(&["status", "--stack", "lab"]);
    assert_eq!(
        (status["processes"][2]["restarts"].as_u64(), status["healthy"].as_bool()),
        (Some(1), Some(true)),
        "{status}"
    );
    eprintln!(
        "database killed under load: {} acknowledged, all stored; {refused} refused while it restarted",
        acked.len()
    );
}

/// What `up` refuses: a stack that would change its database in place (with the way to
/// move the events, which works), and a Prometheus this machine does not have.
#[test]
fn a_stack_does_not_change_its_database_in_place_and_its_events_move_to_a_new_one() {
    let a = free_ports(2);
    let b = a + 1;
    let embedded = format!("name: emb\nprovider: local\nservice:\n  port: {a}\n  ingest_token: false\n");
    let pg = format!(
        "name: moved\nprovider: local\nservice:\n  port: {b}\n  ingest_token: false\nlocal:\n  database: postgres\n"
    );
    let lab = Lab::new(&[("emb", embedded.clone()), ("moved", pg)]);
    let bin = common::service_bin();
    lab.expect(&["up", "--stack", "emb", "--artifact", bin.to_str().unwrap()], 0);
    lab.json(&["simulate", "--stack", "emb", "--rate", "500", "--duration", "2s", "--batch", "10"]);
    std::fs::write(lab.path("stacks/emb.yaml"), format!("{embedded}local:\n  database: postgres\n")).unwrap();
    let out = lab.expect(&["up", "--stack", "emb", "--artifact", bin.to_str().unwrap()], 3);
    let said = common::stderr(&out);
    assert!(
        said.contains("a stack does not change its database in place") && said.contains("vcctl db dump --stack emb"),
        "{said}"
    );
    std::fs::write(lab.path("stacks/emb.yaml"), &embedded).unwrap();
    let file = lab.path("emb.dump");
    let dump = Command::new(env!("CARGO_BIN_EXE_vcctl"))
        .args(["db", "dump", "--stack", "emb"])
        .current_dir(lab.dir.path())
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", show(&dump));
    lab.expect(&["up", "--stack", "moved", "--artifact", bin.to_str().unwrap()], 0);
    let out = lab.expect(&["db", "restore", file.to_str().unwrap(), "--stack", "moved", "--yes"], 0);
    assert!(common::stderr(&out).contains("moved 1000 events in"), "{}", show(&out));
    assert_eq!(lab.sql("moved", "SELECT count(*) FROM api_events"), "1000");
    // Moved twice: refused, not doubled.
    let again = common::stderr(&lab.expect(&["db", "restore", file.to_str().unwrap(), "--stack", "moved", "--yes"], 3));
    assert!(again.contains("holds 1000 events already"), "{again}");

    // A machine without Prometheus: named, with the package that has it.
    std::fs::write(
        lab.path("stacks/moved.yaml"),
        std::fs::read_to_string(lab.path("stacks/moved.yaml")).unwrap() + "  prometheus: true\n",
    )
    .unwrap();
    let tools = lab.path("bin");
    std::fs::create_dir(&tools).unwrap();
    for tool in ["id", "chown", "runuser", "curl"] {
        if let Ok(real) = which(tool) {
            std::os::unix::fs::symlink(real, tools.join(tool)).unwrap();
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vcctl"))
        .args(["up", "--stack", "moved", "--artifact", bin.to_str().unwrap()])
        .current_dir(lab.dir.path())
        .env("PATH", &tools)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let said = common::stderr(&out);
    assert!(said.contains("Prometheus is not installed") && said.contains("sudo apt install prometheus"), "{said}");
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|p| p.is_file()))
        .ok_or(())
}
