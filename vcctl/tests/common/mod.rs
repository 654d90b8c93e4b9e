//! Helpers every vcctl test binary uses (each `tests/*.rs` is its own crate: `mod common;`).
#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `vehicleconnect` binary built beside the tests (`cargo nextest run --workspace`).
pub fn service_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("vehicleconnect");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p vehicleconnect` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A different build of the same service at `path`: the same ELF with `suffix` appended runs
/// the same but hashes differently, as a new release would.
pub fn new_build(path: &Path, suffix: &[u8]) {
    let mut data = std::fs::read(service_bin()).unwrap();
    data.extend_from_slice(suffix);
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A command's exit code and output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An HTTP client for the tests (reqwest's TLS is built without a default crypto provider
/// in this workspace: the aws-lc-rs one is installed first).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap()
}

/// The SSH test host (scripts/test-host).
pub struct TestHost {
    pub addr: String,
    pub key: String,
    pub host_key: String,
}

/// The test host from the environment, or a loud failure saying how to get one.
pub fn test_host() -> TestHost {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: these tests need the SSH test host; run them through scripts/test, or `eval \"$(scripts/test-host start)\"` first")
        })
    };
    TestHost { addr: var("VC_TEST_SSH_HOST"), key: var("VC_TEST_SSH_KEY"), host_key: var("VC_TEST_SSH_HOST_KEY") }
}

/// Runs `script` as root on the test host (our own ssh, not vcctl's), returns stdout.
pub fn on_host(script: &str) -> String {
    let h = test_host();
    let kh = std::env::temp_dir().join(format!("vc-test-known-hosts-{}", std::process::id()));
    std::fs::write(&kh, format!("{} {}\n", h.addr, h.host_key)).unwrap();
    let out = Command::new("ssh")
        .args(["-i", &h.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg(format!("root@{}", h.addr))
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "on the host: {script}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
