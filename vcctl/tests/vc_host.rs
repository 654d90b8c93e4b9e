//! `vc-host`'s file steps in a temporary root (VC_HOST_ROOT), without a host: receive,
//! state, finish, set-aside, remove, put and the lock. The systemd steps are tested on a
//! real host in ssh.rs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/host/vc-host.sh")
}

struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Root {
        let root = Root(tempfile::tempdir().unwrap());
        std::fs::create_dir_all(root.path("opt/vehicleconnect/releases")).unwrap();
        root
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }

    fn run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new("sh")
            .arg(script())
            .args(args)
            .env("VC_HOST_ROOT", self.0.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A step that refuses its arguments exits before reading its input: a closed pipe
        // then is its answer, which the output says.
        if let Err(e) = child.stdin.take().unwrap().write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.run(args, input);
        assert!(out.status.success(), "vc-host {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn receive(&self, name: &str, binary: &[u8]) {
        let sha = sha256(binary);
        let receipt = format!(r#"{{"name":"{name}","sha256":"{sha}","verdict":"pending"}}"#);
        self.ok(&["receive", &sha, name, &receipt], binary);
    }
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
}

#[test]
fn a_received_release_is_whole_or_absent() {
    let root = Root::new();
    root.receive("20261130T100000Z-aaaaaaaaaaaa", b"#!/bin/sh\necho v1\n");
    let state = root.ok(&["state"], b"");
    assert!(state.contains(r#"receipt {"name":"20261130T100000Z-aaaaaaaaaaaa""#), "{state}");
    assert!(state.contains("current \n"), "nothing is current yet: {state}");

    // A damaged upload leaves nothing behind, not even its partial directory.
    let out = root.run(&["receive", &"0".repeat(64), "20261130T100001Z-bbbbbbbbbbbb", "{}"], b"other bytes");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upload damaged"));
    let left: Vec<_> = std::fs::read_dir(root.path("opt/vehicleconnect/releases")).unwrap().collect();
    assert_eq!(left.len(), 1, "only the good release: {left:?}");

    // A release name is never a path.
    let out = root.run(&["receive", &"0".repeat(64), "../../etc", "{}"], b"x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad release name"), "{out:?}");
}

#[test]
fn finish_set_aside_and_remove_do_what_vcctl_decided_and_never_touch_current() {
    let root = Root::new();
    let (a, b) = ("20261130T100000Z-aaaaaaaaaaaa", "20261130T100001Z-bbbbbbbbbbbb");
    root.receive(a, b"a");
    root.receive(b, b"b");
    std::os::unix::fs::symlink(format!("releases/{a}"), root.path("opt/vehicleconnect/current")).unwrap();

    root.ok(&["finish", b], br#"{"name":"x","verdict":"failed"}"#);
    root.ok(&["set-aside", b], b"");
    let state = root.ok(&["state"], b"");
    assert!(state.contains(r#"failed {"name":"x","verdict":"failed"}"#), "{state}");
    assert!(state.contains(&format!("current {a}\n")), "{state}");
    // A receipt of a release set aside can still be written.
    root.ok(&["finish", b], br#"{"name":"y","verdict":"failed"}"#);

    for refused in [&["set-aside", a][..], &["remove", a][..]] {
        let out = root.run(refused, b"");
        assert_eq!(out.status.code(), Some(1), "{refused:?} of the current release");
        assert!(String::from_utf8_lossy(&out.stderr).contains("serves"), "{out:?}");
    }
    assert_eq!(root.ok(&["remove", b], b""), format!("removed {b}\n"));
    assert!(!root.path(&format!("opt/vehicleconnect/failed/{b}")).exists());
    assert!(root.path(&format!("opt/vehicleconnect/releases/{a}/vehicleconnect")).exists());
}

#[test]
fn put_says_whether_a_file_changed() {
    let root = Root::new();
    assert_eq!(root.ok(&["put", "/etc/prometheus/prometheus.yml", "644"], b"one"), "changed\n");
    assert_eq!(root.ok(&["put", "/etc/prometheus/prometheus.yml", "644"], b"one"), "unchanged\n");
    assert_eq!(root.ok(&["put", "/etc/prometheus/prometheus.yml", "600"], b"two"), "changed\n");
    assert_eq!(std::fs::read_to_string(root.path("etc/prometheus/prometheus.yml")).unwrap(), "two");
    let out = root.run(&["put", "relative/path", "644"], b"x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an absolute path"), "{out:?}");
    let out = root.run(&["put", "/etc/x", "u+rwx"], b"x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a mode"), "{out:?}");
}

/// `put` never loosens a directory's mode, and a secret is never readable by others, not
/// even while it is written under a caller's umask of 022 (cloud-init's).
#[test]
fn put_never_loosens_a_directory_nor_shows_a_secret_while_writing_it() {
    use std::os::unix::fs::PermissionsExt;
    let root = Root::new();
    let dir = root.path("etc/vehicleconnect");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "umask 022 && exec sh \"$0\" put /etc/vehicleconnect/env 600"])
        .arg(script())
        .env("VC_HOST_ROOT", root.0.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"DATABASE_URL=postgres://u:secret@h/db\n").unwrap();
    stdin.flush().unwrap();
    let tmp = dir.join("env.vcctl-new");
    let started = std::time::Instant::now();
    while !tmp.exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "put made no file");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mode = std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "the half-written secret is {mode:o}");
    drop(stdin);
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(std::fs::metadata(dir.join("env")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "the directory kept its mode");
    // The same content with another mode is a change, and the mode is applied.
    assert_eq!(
        root.ok(&["put", "/etc/vehicleconnect/env", "640"], b"DATABASE_URL=postgres://u:secret@h/db\n"),
        "changed\n"
    );
    assert_eq!(std::fs::metadata(dir.join("env")).unwrap().permissions().mode() & 0o777, 0o640);
}

#[test]
fn the_lock_is_held_until_stdin_closes_and_names_its_holder() {
    let root = Root::new();
    let mut first = Command::new("sh")
        .arg(script())
        .args(["lock", "5", r#"{"by":"first"}"#])
        .env("VC_HOST_ROOT", root.0.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(first.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "LOCKED\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.path("run/vehicleconnect-deploy")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the lock's directory is its owner's only");

    let second = root.run(&["lock", "0", r#"{"by":"second"}"#], b"");
    assert_eq!(second.status.code(), Some(75));
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(said.contains(r#"WAITING {"by":"first"}"#) && said.contains(r#"BUSY {"by":"first"}"#), "{said}");

    drop(first.stdin.take());
    first.wait().unwrap();
    let third = root.run(&["lock", "0", r#"{"by":"third"}"#], b"");
    assert_eq!(String::from_utf8_lossy(&third.stdout), "LOCKED\n", "released when the first one's stdin closed");
}
