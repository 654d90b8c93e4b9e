//! vcctl end to end: the real binary in a temporary project directory, driving the real
//! service binary on a free loopback port. A failure prints the command and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{show, stderr};

/// A port for a test's service. Not from the kernel's ephemeral range (32768-60999), where
/// the ports of every other test's `bind(0)` (moto, services, clients) come from and may be
/// handed out again before this test binds: from 20000-29999, spread by process id (nextest
/// runs each test in a process of its own).
fn free_port() -> u16 {
    let offset = (std::process::id() % 10_000) as u16;
    (0..10_000u16)
        .map(|i| 20_000 + (offset + i) % 10_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 20000-29999")
}

struct Project {
    dir: tempfile::TempDir,
    port: u16,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("stacks")).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/local.yaml"),
            dir.path().join("stacks/local.yaml"),
        )
        .unwrap();
        Project { dir, port: free_port() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs vcctl with `args` plus `--port`, stdin closed, no terminal, no colour.
    fn vcctl(&self, args: &[&str]) -> Output {
        self.vcctl_in(self.dir.path(), args)
    }

    /// `vcctl` started in `dir`.
    fn vcctl_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcctl"));
        cmd.args(args)
            .current_dir(dir)
            .env("VCCTL_PORT", self.port.to_string())
            .env_remove("VCCTL_STACK")
            .env_remove("VCCTL_ARTIFACT")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    }

    /// Runs vcctl with nobody reading its stdout or stderr (both pipes closed at once), as
    /// under `vcctl ... 2>&1 | head -1` once `head` has gone.
    fn unread(&self, args: &[&str]) -> std::process::ExitStatus {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vcctl"))
            .args(args)
            .current_dir(self.dir.path())
            .env("VCCTL_PORT", self.port.to_string())
            .env_remove("VCCTL_STACK")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        child.wait().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.vcctl(args);
        assert_eq!(out.status.code(), Some(0), "vcctl {args:?}\n{}", show(&out));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout of {args:?} is not JSON ({e}):\n{}", show(&out)))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Never leave a service running behind a failed test.
        let _ = self.vcctl(&["destroy", "--yes"]);
    }
}

/// A different build of the same service: the same ELF with bytes appended runs the same
/// but hashes differently, as a new release would.
fn new_build(project: &Project, name: &str) -> PathBuf {
    let path = project.path(name);
    common::new_build(&path, name.as_bytes());
    path
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let p = Project::new();
    let top = p.ok(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    for cmd in
        ["up", "plan", "deploy", "status", "logs", "rollback", "destroy", "simulate", "completions", "token", "ci"]
    {
        assert!(text.contains(cmd), "--help lists {cmd}");
        let out = p.ok(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Example"), "`vcctl {cmd} --help` has an example:\n{help}");
        // Only the flags that apply: `--yes` belongs to the commands that ask first.
        assert_eq!(help.contains("--yes"), cmd == "destroy", "`vcctl {cmd} --help`:\n{help}");
    }
    assert!(String::from_utf8_lossy(&p.ok(&["token", "show", "--help"]).stdout).contains("--yes"));
    assert!(text.contains("6  the new release failed its health check and was rolled back"));
    let out = p.ok(&["completions", "bash"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("_clap_complete_vcctl()"),
        "dynamic completion: the shell asks vcctl"
    );
    completion_works_with_vcctl_off_the_path(&p);
}

/// As the README has it: vcctl an alias (or not on PATH at all), its completion sourced.
fn completion_works_with_vcctl_off_the_path(p: &Project) {
    let script = format!(
        "source <('{}' completions bash) && COMP_WORDS=(vcctl --st) COMP_CWORD=1 COMP_TYPE=9 && \
         _clap_complete_vcctl vcctl --st vcctl && echo \"${{COMPREPLY[@]}}\"",
        env!("CARGO_BIN_EXE_vcctl")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(p.dir.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "--stack", "{}", show(&out));
}

#[test]
fn each_help_lists_only_its_own_flags() {
    let p = Project::new();
    let help = |args: &[&str]| String::from_utf8_lossy(&p.ok(args).stdout).into_owned();
    let plan = help(&["plan", "--help"]);
    for flag in ["--lock-timeout", "--parallel", "--health-timeout", "--skip-unreachable"] {
        assert!(!plan.contains(flag), "`plan` never deploys, so no {flag}:\n{plan}");
    }
    assert!(plan.contains("--artifact") && plan.contains("--port"), "{plan}");
    for cmd in [&["backup"][..], &["exec"], &["ssh"], &["audit"], &["token", "show"], &["ci", "init"]] {
        let text = help(&[cmd, &["--help"]].concat());
        assert!(!text.contains("--port"), "`{}` never reaches the service by its port:\n{text}", cmd.join(" "));
    }
    assert!(help(&["deploy", "--help"]).contains("--lock-timeout"));
}

#[test]
fn json_answers_an_error_object_even_for_a_refused_command_line() {
    let p = Project::new();
    for args in
        [&["status", "--json", "--bogus"][..], &["--json", "plan", "--parallel", "2"], &["--json", "nosuchcommand"]]
    {
        let out = p.vcctl(args);
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}):\n{}", show(&out)));
        assert_eq!(answer["exit_code"], 3, "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty() && !e.starts_with("error:")), "{answer}");
        assert!(answer["hint"].as_str().is_some_and(|h| h.contains("--help")), "{answer}");
        assert!(!stderr(&out).is_empty(), "people still read clap's message on stderr");
    }
    // Without --json, stdout stays empty.
    assert!(p.vcctl(&["status", "--bogus"]).stdout.is_empty());
}

#[test]
fn hints_name_the_stack_when_it_is_not_the_default() {
    let p = Project::new();
    std::fs::write(p.path("stacks/lab.yaml"), "name: lab\nprovider: local\n").unwrap();
    let out = p.vcctl(&["backup", "--stack", "lab"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("hint: `vcctl db dump --stack lab > FILE`"),
        "a pasted hint acts on `lab`:\n{}",
        show(&out)
    );
    let out = p.vcctl(&["backup"]);
    assert!(stderr(&out).contains("hint: `vcctl db dump > FILE`"), "the default stack needs no flag:\n{}", show(&out));
}

#[test]
fn broken_stacks_exit_3_naming_file_line_field_and_fix() {
    let p = Project::new();
    let cases = [
        (
            "name: broken\nprovider: local\nservice:\n  prot: 8000\n",
            "error: stacks/broken.yaml:4:3: service.prot: unknown field `prot`\nhint: did you mean `port`?\n",
        ),
        (
            "name: broken\nprovider: aws\naws:\n  admin_cidrs: [0.0.0.0/0]\n",
            "error: stacks/broken.yaml:4:16: aws.admin_cidrs: admin_cidrs opens SSH (22) and Prometheus (9090) to the whole internet\nhint: use your own address (e.g. 203.0.113.7/32), or set `allow_admin_from_anywhere: true` if you really mean it\n",
        ),
        (
            "name: broken\nprovider: local\nservice:\n  kpi_interval: soon\n",
            "error: stacks/broken.yaml:4:17: service.kpi_interval: expected a duration such as 60s, 5m or 30days, got \"soon\"\n",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(p.path("stacks/broken.yaml"), text).unwrap();
        let out = p.vcctl(&["plan", "--stack", "stacks/broken.yaml"]);
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        assert_eq!(stderr(&out), expected);
        assert!(out.stdout.is_empty());
    }
    every_problem_of_a_stack_file_at_once(&p);
    let out = p.vcctl(&["simulate", "--rate", "fast"]);
    assert_eq!(out.status.code(), Some(3), "argument errors exit 3\n{}", show(&out));
    let out = p.vcctl(&["simulate", "--target", "http://127.0.0.1:9", "--incident", "unlock:3"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("expected ENDPOINT:xFACTOR:DURATION[@START]"));
    let out = p.vcctl(&["status", "--stack", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("stacks/nosuch.yaml"), "{}", show(&out));
}

/// Four independent mistakes, four errors, each at its place, as a compiler says them; YAML
/// 1.2's `True` is a boolean; a name that is not the file's is refused.
fn every_problem_of_a_stack_file_at_once(p: &Project) {
    let text = "name: broken\nprovider: local\nservice:\n  port: 99999\n  kpi_interval: soon\n  ingest_token: True\n  env:\n    VC_KPI_MEMORY: 64MB\nlocall: {}\n";
    std::fs::write(p.path("stacks/broken.yaml"), text).unwrap();
    let out = p.vcctl(&["plan", "--stack", "stacks/broken.yaml"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let e = stderr(&out);
    for said in [
        "error: stacks/broken.yaml:4:9: service.port: expected a port between 1 and 65535, got \"99999\"\n",
        "error: stacks/broken.yaml:5:17: service.kpi_interval: expected a duration such as 60s, 5m or 30days, got \"soon\"\n",
        "error: stacks/broken.yaml:8:5: service.env.VC_KPI_MEMORY: the service would refuse \"64MB\": unknown unit \"MB\"",
        "error: stacks/broken.yaml:9:1: locall: unknown field `locall`\nhint: did you mean `local`?\n",
        "error: 4 problems, each above; nothing was done\n",
    ] {
        assert!(e.contains(said), "{said:?} in:\n{e}");
    }
    assert!(!e.contains("ingest_token"), "`True` is a boolean in YAML 1.2:\n{e}");
    let out = p.vcctl(&["plan", "--stack", "stacks/broken.yaml", "--json"]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["error"].as_str().unwrap().lines().count(), 4, "{j}");

    std::fs::write(p.path("stacks/t15.yaml"), "name: wrongname\nprovider: local\n").unwrap();
    let out = p.vcctl(&["plan", "--stack", "t15"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("t15.yaml:1:7: name: the stack is named `wrongname` in a file named `t15`"),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("hint: rename the file to `"), "{}", show(&out));
    std::fs::remove_file(p.path("stacks/t15.yaml")).unwrap();
}

#[test]
fn settings_resolve_flag_over_environment_over_stack_over_default() {
    let p = Project::new();
    std::fs::write(p.path("stacks/prec.yaml"), "name: prec\nprovider: local\nservice:\n  port: 8123\n").unwrap();
    std::fs::write(p.path("stacks/bare.yaml"), "name: bare\nprovider: local\n").unwrap();
    let plan = |args: &[&str], env: Option<&str>| -> Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcctl"));
        cmd.args(args).arg("--json").current_dir(p.dir.path()).env_remove("VCCTL_PORT").env_remove("VCCTL_STACK");
        if let Some(port) = env {
            cmd.env("VCCTL_PORT", port);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["settings"].clone()
    };
    let s = plan(&["plan", "--stack", "prec", "--port", "8125"], Some("8124"));
    assert_eq!((s["port"].as_u64(), s["port_source"].as_str()), (Some(8125), Some("flag")));
    let s = plan(&["plan", "--stack", "prec"], Some("8124"));
    assert_eq!((s["port"].as_u64(), s["port_source"].as_str()), (Some(8124), Some("env")));
    let s = plan(&["plan", "--stack", "prec"], None);
    assert_eq!((s["port"].as_u64(), s["port_source"].as_str()), (Some(8123), Some("stack")));
    let s = plan(&["plan", "--stack", "bare"], None);
    assert_eq!((s["port"].as_u64(), s["port_source"].as_str()), (Some(8000), Some("default")));
    assert_eq!(s["kpi_interval"], "1m");
    // VCCTL_STACK names the default stack.
    let out = Command::new(env!("CARGO_BIN_EXE_vcctl"))
        .args(["plan", "--json"])
        .current_dir(p.dir.path())
        .env("VCCTL_STACK", "bare")
        .output()
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["stack"], "bare");
}

/// `status` of the healthy stack serving `release`: the schema's fields, the same first
/// line, on stdout even under `-q` (which hides progress only).
fn status_says_healthy_on_stdout_even_quiet(p: &Project, release: &str) {
    let status = p.json(&["status"]);
    assert_eq!(status["healthy"], true);
    common::check_schema("status", &status);
    // -q hides progress, never the result: the status is on stdout, stderr is silent.
    let quiet = p.vcctl(&["status", "-q"]);
    let text = String::from_utf8_lossy(&quiet.stdout).into_owned();
    assert!(text.starts_with("stack:    local (local): healthy\n"), "{}", show(&quiet));
    assert!(quiet.stderr.is_empty(), "{}", show(&quiet));
    assert_eq!(status["status"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["release"], release);
    // The embedded store's one process: the KPI leader, one replica.
    let text = String::from_utf8(p.ok(&["status"]).stdout).unwrap();
    let replica = text.lines().find(|l| l.starts_with("replica:  ")).unwrap_or_default();
    assert!(replica.ends_with(", KPI leader, 1 replica reporting"), "{text}");
    // The KPIs lag the events by up to a KPI interval: the line says when they are from.
    let kpis = text.lines().find(|l| l.starts_with("last 1 h: ")).unwrap_or_default();
    assert!(kpis.contains(" (as of ") && kpis.contains(" UTC, "), "{text}");
    assert!(status["kpis_ready"] == true && status["kpis_as_of"].is_string(), "{status}");
}

/// Destroy: refused without a terminal or --yes (listing what goes), then done, and
/// idempotent.
fn destroy_asks_then_leaves_nothing(p: &Project) {
    let out = p.vcctl(&["destroy"]);
    assert_eq!(out.status.code(), Some(8), "not confirmed: its own exit code\n{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("1 release(s) in") || e.contains("2 release(s) in") || e.contains("3 release(s) in"),
        "the prompt lists what goes:\n{e}"
    );
    assert!(e.contains("the stored events: the embedded store") && e.contains("the running service (pid"), "{e}");
    assert!(stderr(&out).contains("hint: pass --yes"));
    let d = p.json(&["destroy", "--yes"]);
    common::check_schema("destroy", &d);
    assert_eq!((d["stopped"].as_bool(), d["destroyed"].as_bool()), (Some(true), Some(true)), "{d}");
    assert!(d["deleted"][0].as_str().unwrap().starts_with("the running service (pid"), "{d}");
    assert!(!p.path(".vcctl/local/local").exists());
    assert!(std::net::TcpListener::bind(("127.0.0.1", p.port)).is_ok(), "the port is free again");
    // A stopped service has no KPIs ready.
    let stopped = p.vcctl(&["status", "--json"]);
    let stopped: Value = serde_json::from_slice(&stopped.stdout).unwrap();
    assert_eq!(
        (stopped["kpis_ready"].as_bool(), stopped["running"].as_bool()),
        (Some(false), Some(false)),
        "{stopped}"
    );
    // Again: nothing left, said on stdout like every result.
    let again = p.ok(&["destroy", "--yes"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "stack `local` (local): nothing to destroy");
    let out = p.vcctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    // The audit trail outlives the stack's directory: the last entries are the broken
    // release's deploy, rolled back, and the two destroys.
    let audit = p.json(&["audit", "-n", "3"]);
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["deploy", "destroy", "destroy"], "{audit}");
    assert!(audit["entries"][0]["result"].as_str().unwrap().starts_with("unhealthy, rolled back to "), "{audit}");
    assert_eq!(audit["entries"][1]["subject"], "delete-data");
}

#[test]
fn local_cycle_up_status_simulate_deploy_rollback_destroy() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    let v1s = v1.to_str().unwrap();

    // plan before anything: changes, exit 2.
    let out = p.vcctl(&["plan", "--artifact", v1s]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = p.vcctl(&["plan", "--artifact", v1s, "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::check_schema("plan", &plan);
    assert_eq!((plan["shape"].as_str(), plan["changed"].as_bool()), (Some("local"), Some(true)), "{plan}");

    let up = p.json(&["up", "--artifact", v1s]);
    assert_eq!(up["changed"], true);
    let url = up["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://127.0.0.1:{}", p.port));
    let first = up["release"].as_str().unwrap().to_string();

    let again = p.json(&["up", "--artifact", v1s]);
    assert_eq!(again["changed"], false, "a second up changes nothing");
    assert_eq!(again["release"], first.as_str());
    let out = p.vcctl(&["plan", "--artifact", v1s]);
    assert_eq!(out.status.code(), Some(0), "plan after up: no changes\n{}", show(&out));

    status_says_healthy_on_stdout_even_quiet(&p, &first);

    let sim = p.json(&["simulate", "--rate", "400", "--duration", "2s", "--vehicles", "50"]);
    assert_eq!(sim["planned_events"], 800);
    assert_eq!(sim["acknowledged"], 800, "{sim}");
    let batch = p.json(&["simulate", "--rate", "5000", "--duration", "1s", "--batch", "250"]);
    assert_eq!(batch["acknowledged"], 5000, "{batch}");
    assert_eq!(batch["requests"], 20);
    // The events reached the store: the KPIs count them (at the next snapshot, every 10 s).
    wait_for_count(&url, 5800);

    // A new build deploys and keeps the data.
    let v2 = new_build(&p, "build-2");
    let dep = p.json(&["deploy", "--artifact", v2.to_str().unwrap()]);
    common::check_schema("deploy", &dep);
    assert_eq!(
        (dep["shape"].as_str(), dep["hosts"][0]["host"].as_str()),
        (Some("local"), Some("this machine")),
        "{dep}"
    );
    assert_eq!(dep["changed"], true);
    let second = dep["release"].as_str().unwrap().to_string();
    assert_ne!(second, first);

    let logs = p.ok(&["logs", "-n", "5"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("vehicleconnect"), "{}", show(&logs));
    let logs = p.ok(&["logs", "-n", "5", "--json"]);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&logs.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l["line"].is_string()), "{}", show(&logs));

    // Rollback goes back to the first release.
    let rb = p.json(&["rollback"]);
    assert_eq!(rb["release"], first.as_str());
    assert_eq!(p.json(&["status"])["release"], first.as_str());

    // A broken release: rolled back by itself, exit 6, the old one still serving.
    std::fs::write(p.path("broken"), "#!/bin/sh\n[ \"$1\" = --version ] && echo 'vehicleconnect 9.9.9 (b0rken)' && exit 0\necho 'fatal: cannot start' >&2\nexit 1\n").unwrap();
    Command::new("chmod").args(["755"]).arg(p.path("broken")).status().unwrap();
    let out = p.vcctl(&["deploy", "--artifact", "broken"]);
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("was rolled back") && err.contains("fatal: cannot start"),
        "the diagnosis names the cause:\n{err}"
    );
    assert!(!err.contains("listening addr"), "only the failed start's log lines:\n{err}");
    let status = p.json(&["status"]);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["release"], first.as_str());
    wait_for_count(&url, 5800);

    destroy_asks_then_leaves_nothing(&p);
}

/// Nobody reading vcctl's output (a closed pipe) never stops its work: a deploy that rolls
/// back finishes the rollback, and leaves the stack consistent.
#[test]
fn a_closed_pipe_never_stops_a_deploy_or_its_rollback() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    let first = p.json(&["up", "--artifact", v1.to_str().unwrap()])["release"].as_str().unwrap().to_string();
    std::fs::write(
        p.path("broken"),
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'vehicleconnect 9.9.9 (b0rken)' && exit 0\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod").args(["755"]).arg(p.path("broken")).status().unwrap();
    let status = p.unread(&["deploy", "--artifact", "broken"]);
    assert_eq!(status.code(), Some(6), "rolled back, not killed by a closed pipe: {status:?}");
    let s = p.json(&["status"]);
    assert_eq!((s["healthy"].as_bool(), s["release"].as_str()), (Some(true), Some(first.as_str())), "{s}");
    assert_eq!(p.unread(&["completions", "bash"]).code(), Some(0));
    assert_eq!(p.unread(&["status", "--json"]).code(), Some(0));
}

/// A failed start leaves no process behind, even one it started that holds the port, and
/// a rollback is healthy only when the process vcctl started answers.
#[test]
fn a_failed_start_leaves_nothing_on_the_port_and_the_rollback_is_judged_by_its_own_process() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    let first = p.json(&["up", "--artifact", v1.to_str().unwrap()])["release"].as_str().unwrap().to_string();
    // A release that starts the good binary in the background on the same port, then fails.
    let stray = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'vehicleconnect 9.9.5 (leaves a stray)' && exit 0\n{} &\nsleep 2\nexit 1\n",
        v1.display()
    );
    std::fs::write(p.path("stray"), stray).unwrap();
    Command::new("chmod").args(["755"]).arg(p.path("stray")).status().unwrap();
    let out = p.vcctl(&["deploy", "--artifact", "stray"]);
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let s = p.json(&["status"]);
    assert_eq!((s["healthy"].as_bool(), s["release"].as_str()), (Some(true), Some(first.as_str())), "{s}");
    assert_eq!(s["status"]["pid"], s["pid"], "the answer comes from the process vcctl started: {s}");
}

#[test]
fn ports_from_flags_and_the_environment_follow_the_stack_file_rules() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    p.json(&["up", "--artifact", v1.to_str().unwrap()]);
    let out = p.vcctl(&["up", "--port", "0"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("invalid value '0' for '--port <PORT>': 0 is not in 1..=65535"), "{}", show(&out));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcctl"));
    let out = cmd.args(["up"]).current_dir(p.path("")).env("VCCTL_PORT", "0").env("NO_COLOR", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(p.json(&["status"])["healthy"], true, "the serving release was not touched");
}

/// `--duration` bounds a run (plus its 5 s grace for answers), what cannot be sent in time
/// is late and never queued, the rate is over the whole run, and Ctrl-C stops it at once
/// with the partial report (exit 130).
#[test]
fn simulate_keeps_to_its_duration_and_stops_on_ctrl_c() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    p.json(&["up", "--artifact", v1.to_str().unwrap()]);
    let report =
        |out: &Output| -> Value { serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", show(out))) };

    let t = std::time::Instant::now();
    let out = p.vcctl(&["simulate", "--rate", "1e9", "--duration", "1s", "--json"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "not everything was acknowledged\n{}", show(&out));
    let r = report(&out);
    assert!(took < std::time::Duration::from_secs(8), "a 1 s run took {took:?}: {r}");
    assert!(r["skipped_late"].as_u64().unwrap() > 900_000_000, "{r}");
    let accounted: u64 = ["acknowledged", "failed", "skipped_late", "unsent", "unconfirmed"]
        .iter()
        .map(|k| r[k].as_u64().unwrap())
        .sum();
    assert_eq!(accounted, 1_000_000_000, "every planned event is accounted for: {r}");

    let r = report(&p.ok(&["simulate", "--rate", "100", "--batch", "100000", "--duration", "2s", "--json"]));
    assert_eq!(r["acknowledged"], 200, "{r}");
    let rate = r["achieved_events_per_s"].as_f64().unwrap();
    assert!((90.0..=110.0).contains(&rate), "the rate is over the whole run, not the request's 0.1 s: {r}");

    // SIGINT and SIGTERM end a long command the same way: exit 130, with what it did.
    let interrupt = |args: &[&str], signal: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_vcctl"))
            .args(args)
            .current_dir(p.path(""))
            .env("VCCTL_PORT", p.port.to_string())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let t = std::time::Instant::now();
        Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(t.elapsed() < std::time::Duration::from_millis(2500), "{signal} took {:?}", t.elapsed());
        assert_eq!(out.status.code(), Some(130), "{signal}: {}", show(&out));
        out
    };
    for signal in ["-INT", "-TERM"] {
        let out = interrupt(&["simulate", "--rate", "200", "--duration", "60s", "--json"], signal);
        let r = report(&out);
        assert_eq!(r["interrupted"], true, "{r}");
        assert!(r["acknowledged"].as_u64().unwrap() > 100, "the partial report: {r}");
        // What the stop kept from being sent is unsent, not late: the service kept up.
        assert!(r["unsent"].as_u64().unwrap() > 10_000, "{r}");
        assert_eq!(r["skipped_late"], 0, "{r}");
    }
    // A command with nothing to report says what stopped it.
    let out = interrupt(&["logs", "-f"], "-TERM");
    assert!(stderr(&out).contains("error: `vcctl logs` stopped: terminated (SIGTERM)"), "{}", show(&out));
}

/// `--stack <TAB>` lists the project's stacks and `rollback --to <TAB>` its releases: the
/// shell asks vcctl (clap's dynamic completion, registered by `vcctl completions`).
#[test]
fn completions_list_stacks_and_releases() {
    let p = Project::new();
    std::fs::write(p.path("stacks/lab.yaml"), "name: lab\nprovider: local\n").unwrap();
    let complete = |words: &[&str]| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_vcctl"))
            .args(["--", "vcctl"])
            .args(words)
            .current_dir(p.path(""))
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(['\n', '\u{b}'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["status", "--stack", ""]), ["lab", "local"]);
    assert_eq!(complete(&["status", "--stack", "la"]), ["lab"]);
    let v1 = new_build(&p, "build-1");
    let release = p.json(&["up", "--artifact", v1.to_str().unwrap()])["release"].as_str().unwrap().to_string();
    assert_eq!(complete(&["rollback", "--to", "2"]), [release]);
}

/// A local service that crashes is started again by vcctl's supervisor, with back-off, and
/// `status` counts it; `destroy` stops the supervisor with it.
#[test]
fn a_crashed_local_service_is_restarted_and_status_counts_it() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    p.json(&["up", "--artifact", v1.to_str().unwrap()]);
    let before = p.json(&["status"]);
    let pid = before["status"]["pid"].as_u64().unwrap();
    assert_eq!(before["restarts"], 0);
    Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    let started = std::time::Instant::now();
    let after = loop {
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "not restarted within 15 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let out = p.vcctl(&["status", "--json"]);
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        if s["healthy"] == true && s["status"]["pid"].as_u64() != Some(pid) {
            break s;
        }
    };
    assert_eq!((after["restarts"].as_u64(), after["last_exit"].as_str()), (Some(1), Some("signal 9")), "{after}");
    let text = String::from_utf8_lossy(&p.vcctl(&["status"]).stdout).to_string();
    assert!(text.contains("restarts: 1 by the supervisor (last: signal 9"), "{text}");
    p.ok(&["destroy", "--yes"]);
    assert!(std::net::TcpListener::bind(("127.0.0.1", p.port)).is_ok(), "the supervisor went with it");
}

/// vcctl finds its project from any directory in it, from `-C DIR`, and from a stack file's
/// path, and names the stacks there are when one is mistyped.
#[test]
fn the_project_is_found_from_anywhere_and_a_mistyped_stack_is_named() {
    let p = Project::new();
    let out = p.vcctl(&["status", "--stack", "lcoal"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("there is no stack `lcoal`") && stderr(&out).contains("did you mean `local`?"),
        "{}",
        show(&out)
    );
    assert!(!stderr(&out).contains(":0:0"), "{}", show(&out));
    // With --json, the failure is one JSON object on stdout too.
    let out = p.vcctl(&["status", "--stack", "lcoal", "--json"]);
    let e: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", show(&out)));
    assert_eq!(e["exit_code"], 3);
    assert!(e["error"].as_str().unwrap().contains("there is no stack `lcoal`") && e["hint"].is_string(), "{e}");

    // Outside any project: said as such, with the way to point at one.
    let nowhere = tempfile::tempdir().unwrap();
    let out = p.vcctl_in(nowhere.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("error: no vcctl project here: neither `"), "{}", show(&out));
    assert!(stderr(&out).contains("nor a directory above it has `stacks/`"), "{}", show(&out));
    assert!(
        stderr(&out).contains("hint: run it from inside a project, or point at one with `vcctl -C DIR"),
        "{}",
        show(&out)
    );

    let v1 = new_build(&p, "build-1");
    p.json(&["up", "--artifact", v1.to_str().unwrap()]);
    std::fs::create_dir_all(p.path("docs/deep")).unwrap();
    let elsewhere = std::env::temp_dir();
    let local = p.path("stacks/local.yaml");
    for (dir, args) in [
        (p.path("docs/deep"), vec!["status", "--json"]),
        (elsewhere.clone(), vec!["-C", p.path("docs").to_str().unwrap(), "status", "--json"]),
        (elsewhere, vec!["status", "--json", "--stack", local.to_str().unwrap()]),
    ] {
        let out = p.vcctl_in(&dir, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?} in {}\n{}", dir.display(), show(&out));
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["healthy"], true, "the same stack's state: {s}");
    }
}

#[test]
fn a_stale_pid_file_is_detected_and_replaced() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    std::fs::create_dir_all(p.path(".vcctl/local/local")).unwrap();
    // A pid that is certainly not our service: this test process's parent, or 1.
    std::fs::write(p.path(".vcctl/local/local/service.pid"), "1\n").unwrap();
    let out = p.vcctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running (stale pid file removed)"), "{}", show(&out));
    std::fs::write(p.path(".vcctl/local/local/service.pid"), "999999\n").unwrap();
    let out = p.vcctl(&["up", "--artifact", v1.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stderr(&out).contains("stale pid file"), "{}", show(&out));
    assert_eq!(p.json(&["status"])["healthy"], true);
}

#[test]
fn a_busy_port_is_refused_with_a_hint() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    let _holder = std::net::TcpListener::bind(("127.0.0.1", p.port)).unwrap();
    let out = p.vcctl(&["up", "--artifact", v1.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains(&format!("port {} on 127.0.0.1 is already in use", p.port)), "{}", show(&out));
    assert!(stderr(&out).contains("hint: stop it, or pick another port with --port"));
    // The step says it failed, and the error says why: nothing interrupted it.
    assert!(stderr(&out).contains("failed: switching to "), "{}", show(&out));
    assert!(!stderr(&out).contains("interrupted"), "{}", show(&out));
    // `--instance` is for a `scale:` group: one host here.
    let out = p.vcctl(&["exec", "--instance", "i-0123", "--", "true"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("`--instance` picks instances of a `scale:` stack's group"), "{}", show(&out));
}

/// Waits for the KPIs to count `n` events: the data survived every switch.
fn wait_for_count(url: &str, n: u64) {
    let started = std::time::Instant::now();
    loop {
        let kpis = reqwest_get(&format!("{url}/api/analytics/kpis?window=15m"));
        if kpis["overall"]["count"] == n {
            return;
        }
        assert!(started.elapsed().as_secs() < 30, "KPIs never counted {n} events: {}", kpis["overall"]);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn reqwest_get(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { common::http().get(url).send().await.unwrap().json().await.unwrap() })
}

#[test]
fn a_stack_with_an_ingest_token_requires_it_and_simulate_uses_it() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    std::fs::write(
        p.path("stacks/secure.yaml"),
        "name: secure\nprovider: local\nservice:\n  ingest_token: true\n  kpi_interval: 1s\n",
    )
    .unwrap();
    let up = p.json(&["up", "--stack", "secure", "--artifact", v1.to_str().unwrap()]);
    let url = up["url"].as_str().unwrap();
    let token_file = p.path(".vcctl/local/secure/secrets/ingest_token");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        common::http()
            .post(format!("{url}/api/events"))
            .json(&serde_json::json!({"endpoint": "/a", "response_time_ms": 1, "status_code": 200, "client_id": "c"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 401, "no token, no ingest");
    let sim = p.json(&["simulate", "--stack", "secure", "--rate", "100", "--duration", "1s"]);
    assert_eq!(sim["acknowledged"], 100, "{sim}");
    let log = std::fs::read_to_string(p.path(".vcctl/local/secure/service.log")).unwrap();
    assert!(!log.contains(token.trim()), "the token never reaches the log");

    // For scripts: `token show` prints it, and `simulate --target` takes it from a file.
    let shown = p.ok(&["token", "show", "--stack", "secure"]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), token.trim());
    let sim = p.json(&[
        "simulate",
        "--target",
        url,
        "--token-file",
        token_file.to_str().unwrap(),
        "--rate",
        "50",
        "--duration",
        "1s",
    ]);
    assert_eq!(sim["acknowledged"], 50, "{sim}");
    let out = p.vcctl(&["token", "show"]);
    assert_eq!(out.status.code(), Some(3), "the local stack has no token\n{}", show(&out));
    p.ok(&["destroy", "--stack", "secure", "--yes"]);
}

/// Every scalar value under `node`.
fn scalars(node: &marked_yaml::Node) -> Vec<String> {
    match node {
        marked_yaml::Node::Scalar(s) => vec![s.as_str().to_string()],
        marked_yaml::Node::Mapping(m) => m.values().flat_map(scalars).collect(),
        marked_yaml::Node::Sequence(q) => q.iter().flat_map(scalars).collect(),
    }
}

#[test]
fn the_github_workflow_is_a_valid_workflow_that_deploys_with_oidc_one_at_a_time() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/github/deploy.yml");
    let checker = std::env::var("VC_CHECK_JSONSCHEMA").expect(
        "VC_CHECK_JSONSCHEMA is not set: scripts/test-services installs check-jsonschema; run through scripts/test",
    );
    let out = Command::new(&checker).args(["--builtin-schema", "vendor.github-workflows"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "the workflow does not validate:\n{}", show(&out));

    // What the workflow must do, read from its YAML (not grepped from its text).
    let text = std::fs::read_to_string(&file).unwrap();
    let doc = marked_yaml::parse_yaml(0, &text).unwrap();
    let root = doc.as_mapping().unwrap();
    let push = root.get_mapping("on").and_then(|on| on.get_mapping("push")).expect("on.push");
    assert_eq!(push.get_sequence("branches").unwrap().get_scalar(0).unwrap().as_str(), "main");
    let concurrency = root.get_mapping("concurrency").expect("a concurrency group");
    assert_eq!(concurrency.get_scalar("cancel-in-progress").unwrap().as_str(), "false");
    let jobs = root.get_mapping("jobs").unwrap();
    let deploy = jobs.get_mapping("deploy").unwrap();
    assert_eq!(deploy.get_scalar("needs").unwrap().as_str(), "build", "deploys only after the tests pass");
    assert_eq!(deploy.get_mapping("permissions").unwrap().get_scalar("id-token").unwrap().as_str(), "write");
    // The build runs every dependency's build script: no token, no environment, no secret.
    let build = jobs.get_mapping("build").unwrap();
    assert!(build.get_mapping("permissions").is_none() && build.get_scalar("environment").is_none());
    let top = root.get_mapping("permissions").unwrap();
    assert_eq!((top.get_scalar("contents").unwrap().as_str(), top.get_scalar("id-token")), ("read", None));
    let steps = deploy.get_sequence("steps").unwrap();
    let step = |uses: &str| {
        steps.iter().find_map(|s| {
            let m = s.as_mapping()?;
            m.get_scalar("uses").filter(|u| u.as_str().starts_with(uses)).map(|_| m.clone())
        })
    };
    let creds = step("aws-actions/configure-aws-credentials@").expect("AWS credentials by OIDC");
    let with = creds.get_mapping("with").unwrap();
    assert!(with.get_scalar("role-to-assume").is_some());
    assert!(
        with.get_scalar("aws-access-key-id").is_none() && !text.contains("AWS_SECRET_ACCESS_KEY"),
        "no long-lived keys"
    );
    let runs: Vec<String> =
        steps.iter().filter_map(|s| s.as_mapping()?.get_scalar("run").map(|r| r.as_str().to_string())).collect();
    assert!(
        runs.iter().any(|r| r == "release/vcctl deploy --stack frankfurt --artifact release/vehicleconnect"),
        "{runs:?}"
    );
    assert!(!runs.iter().any(|r| r.contains("cargo ")), "the deploy job builds nothing: {runs:?}");
    assert!(step("actions/download-artifact@").is_some(), "it takes the build job's binaries");
    // The SSH key is the `production` environment's secret, read by the deploy job only.
    assert_eq!(deploy.get_scalar("environment").unwrap().as_str(), "production");
    let secret_users: Vec<&str> = jobs
        .iter()
        .filter(|(_, job)| scalars(job).iter().any(|v| v.contains("secrets.VCCTL_SSH_KEY")))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(secret_users, ["deploy"], "only the deploy job reads the key");
    // The job holding the key and id-token: write restores no cache, third-party or not.
    let uses: Vec<String> =
        steps.iter().filter_map(|s| s.as_mapping()?.get_scalar("uses").map(|u| u.as_str().to_string())).collect();
    assert!(uses.iter().all(|u| !u.contains("cache")), "a cache action in the deploy job: {uses:?}");
    // Every action of every job pinned by commit SHA, its tag in a comment.
    for (name, job) in jobs.iter() {
        let name = name.as_str();
        for step in job.as_mapping().unwrap().get_sequence("steps").unwrap().iter() {
            let Some(uses) = step.as_mapping().unwrap().get_scalar("uses") else { continue };
            let (action, sha) = uses.as_str().split_once('@').expect("action@ref");
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "job {name}: {action} is pinned by `{sha}`, not a commit SHA"
            );
            let line = text.lines().find(|l| l.contains(uses.as_str())).unwrap();
            assert!(line.contains(" # v"), "job {name}: `{line}` names no tag in a comment");
        }
    }

    // The stack it names exists and is an AWS stack.
    let stack =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/frankfurt.yaml")).unwrap();
    assert!(stack.contains("provider: aws"));
}

/// `db dump` of a local stack copies its embedded store while it serves, and `db restore`
/// brings that copy back whole, keeping the store it replaced; `backup` points there.
#[test]
fn a_local_stack_is_dumped_while_it_serves_and_restored_whole() {
    let p = Project::new();
    let v1 = new_build(&p, "build-1");
    p.json(&["up", "--artifact", v1.to_str().unwrap()]);
    let sent = p.json(&["simulate", "--duration", "2s", "--rate", "100"]);
    let acked = sent["acknowledged"].as_u64().unwrap();
    assert!(acked > 0, "{sent}");
    let out = p.ok(&["db", "dump"]);
    let dump = p.path("local.dump");
    std::fs::write(&dump, &out.stdout).unwrap();
    let events = |file: &Path| -> u64 {
        let conn = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.query_row("SELECT count(*) FROM api_events", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    assert_eq!(events(&dump), acked, "every acknowledged event is in the dump");
    let more = p.json(&["simulate", "--duration", "1s", "--rate", "50"])["acknowledged"].as_u64().unwrap();

    let restored = p.json(&["db", "restore", dump.to_str().unwrap(), "--yes"]);
    assert_eq!(restored["bytes"].as_u64(), Some(out.stdout.len() as u64), "{restored}");
    let data = p.path(".vcctl/local/local/data");
    assert_eq!(events(&data.join("vehicleconnect.db")), acked, "the dump's events, no more");
    assert_eq!(events(&data.join("vehicleconnect.db.previous")), acked + more, "the replaced store is kept");
    assert_eq!(p.json(&["status"])["healthy"], true);

    let out = p.vcctl(&["db", "restore", v1.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("is not a dump of a local stack's embedded store: not an SQLite file"),
        "{}",
        show(&out)
    );
    let out = p.vcctl(&["backup"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("hint: `vcctl db dump > FILE` and `vcctl db restore FILE` back up any stack's database")
    );
}

/// `simulate --target` is checked before any traffic: not a URL exits 3 at once, and a
/// target where nothing answers fails within seconds, naming it.
#[test]
fn simulate_checks_its_target_before_sending() {
    let p = Project::new();
    let started = std::time::Instant::now();
    let out = p.vcctl(&["simulate", "--target", "127.0.0.1:8123", "--duration", "30s"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("--target \"127.0.0.1:8123\" is not an http:// or https:// URL"), "{}", show(&out));
    assert!(stderr(&out).contains("hint: e.g. --target http://127.0.0.1:8123"), "{}", show(&out));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = p.vcctl(&["simulate", "--target", &format!("http://{dead}"), "--duration", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains(&format!("nothing answers at http://{dead}")), "{}", show(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}
