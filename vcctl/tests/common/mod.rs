//! Helpers every vcctl test binary uses (each `tests/*.rs` is its own crate: `mod common;`).
#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Pebble (Debian's `pebble`), a test ACME CA, at this machine's address `peer` on the test
/// hosts' network, with pebble-challtestsrv as the DNS its validator asks: every name
/// resolves to the host `target`, so Pebble validates on its ports 80/443 as Let's Encrypt
/// would. Stopped when dropped.
pub struct Pebble {
    children: Vec<std::process::Child>,
    dir: tempfile::TempDir,
    /// Pebble's API's own CA and the root it issues under: what Caddy and vcctl trust.
    pub bundle: PathBuf,
    pub directory: String,
}

impl Pebble {
    pub fn start(peer: &str, target: &str) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sh = |script: &str| {
            let out = Command::new("sh").arg("-ec").arg(script).current_dir(d).output().unwrap();
            assert!(out.status.success(), "{script}\n{}", show(&out));
        };
        // Pebble's API is HTTPS: a listener certificate for its address, from a CA of our own.
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=pebble listener CA' 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.csr -subj '/CN={peer}' 2>/dev/null
             printf 'subjectAltName=IP:{peer}\\n' > ext.cnf
             openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null"
        ));
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("{peer}:14000"), "managementListenAddress": format!("{peer}:15000"),
            "certificate": d.join("cert.pem"), "privateKey": d.join("key.pem"), "httpPort": 80, "tlsPort": 443,
            "ocspResponderURL": "", "externalAccountBindingRequired": false}});
        std::fs::write(d.join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(d.join(name)).unwrap());
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                target,
                "-defaultIPv6",
                "",
                "-dns01",
                "127.0.0.1:8053",
                "-http01",
                "",
                "-https01",
                "",
            ])
            .args(["-tlsalpn01", "", "-management", "127.0.0.1:8055"])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv (Debian's pebble; scripts/test-services installs it)");
        let ca = Command::new("pebble")
            .args(["-config", "pebble.json", "-dnsserver", "127.0.0.1:8053"])
            .current_dir(d)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble");
        let started = Instant::now();
        while std::net::TcpStream::connect((peer, 15000)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "Pebble did not start; see {}", d.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        // Certificates are issued under a root made at Pebble's start.
        sh(&format!(
            "curl -sSf --cacert ca.pem https://{peer}:15000/roots/0 > root.pem && cat ca.pem root.pem > bundle.pem"
        ));
        Pebble {
            children: vec![dns, ca],
            bundle: d.join("bundle.pem"),
            directory: format!("https://{peer}:14000/dir"),
            dir,
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = &self.dir;
    }
}

/// A shell script's lines that make, in `dir`, a CA of its own (`ca.pem`) and a certificate
/// for `address` it signed (`server.pem`, its key `server.key`, PostgreSQL's to read): what
/// a managed database presents.
pub fn database_certificate(dir: &str, ca: &str, address: &str) -> String {
    format!(
        r#"mkdir -p {dir} && cd {dir}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={ca} -days 2 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={address} -keyout server.key -out server.csr 2>/dev/null
echo 'subjectAltName=IP:{address}' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
chown postgres: server.key server.pem && chmod 600 server.key
"#
    )
}

/// Checks `value` against the schema `docs/reference/schemas/<name>.schema.json` with
/// check-jsonschema (scripts/test-services installs it): the JSON a command prints is the
/// JSON its reference documents.
pub fn check_schema(name: &str, value: &serde_json::Value) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/reference/schemas/{name}.schema.json"));
    let checker = std::env::var("VC_CHECK_JSONSCHEMA").expect(
        "VC_CHECK_JSONSCHEMA is not set: scripts/test-services installs check-jsonschema; run through scripts/test",
    );
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join(format!("{name}.json"));
    std::fs::write(&instance, serde_json::to_vec(value).unwrap()).unwrap();
    let out = Command::new(&checker).arg("--schemafile").arg(&schema).arg(&instance).output().unwrap();
    assert!(out.status.success(), "{name} does not match {}:\n{value:#}\n{}", schema.display(), show(&out));
}
