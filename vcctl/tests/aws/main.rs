//! vcctl against AWS, emulated by moto (`moto_server` from PyPI; scripts/test installs it
//! and sets VC_MOTO_SERVER). Each test starts its own server on a loopback port, points
//! `AWS_ENDPOINT_URL` at it, runs the real vcctl, and checks the result with the real SDK.
//! Moto's instance addresses are fake: nothing here ever connects to them.

mod ci;
mod edge;
mod global;
mod iam_eval;
mod least_privilege;
mod on_demand;
mod recorded;
mod restore;
mod scale;
mod scheduled_backup;
mod single;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;

use common::show;

/// A real ed25519 public key (moto validates the format).
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGxCiXP+IjPa5OyTni9UJDnlOoTxrNcUrG5U7w41tVd vcctl-test";

/// Debian's official images as moto serves them here: two x86_64 releases (the newer must
/// win) and one arm64. Moto ships no Debian AMIs of its own.
const AMIS: &str = r#"[
 {"ami_id": "ami-0de0000000000old", "name": "debian-12-amd64-20250101-1980", "owner_id": "136693071363", "architecture": "x86_64", "creation_date": "2025-01-01T00:00:00.000Z", "state": "available", "public": true, "root_device_type": "ebs", "root_device_name": "/dev/xvda", "virtualization_type": "hvm", "hypervisor": "xen", "image_type": "machine", "description": "Debian 12 (20250101-1980)", "image_location": "debian/debian-12-amd64-20250101-1980", "sriov": "simple", "platform": null},
 {"ami_id": "ami-0de0000000000new", "name": "debian-12-amd64-20261101-2100", "owner_id": "136693071363", "architecture": "x86_64", "creation_date": "2026-11-01T00:00:00.000Z", "state": "available", "public": true, "root_device_type": "ebs", "root_device_name": "/dev/xvda", "virtualization_type": "hvm", "hypervisor": "xen", "image_type": "machine", "description": "Debian 12 (20261101-2100)", "image_location": "debian/debian-12-amd64-20261101-2100", "sriov": "simple", "platform": null},
 {"ami_id": "ami-0de000000000a064", "name": "debian-12-arm64-20261101-2100", "owner_id": "136693071363", "architecture": "arm64", "creation_date": "2026-11-01T00:00:00.000Z", "state": "available", "public": true, "root_device_type": "ebs", "root_device_name": "/dev/xvda", "virtualization_type": "hvm", "hypervisor": "xen", "image_type": "machine", "description": "Debian 12 arm64", "image_location": "debian/debian-12-arm64-20261101-2100", "sriov": "simple", "platform": null}
]"#;

struct Moto {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start(extra_env: &[(&str, &str)]) -> Moto {
        Moto::start_on("127.0.0.1", extra_env)
    }

    /// On `host`: the test host's peer address, for a test whose host calls AWS itself.
    fn start_on(host: &str, extra_env: &[(&str, &str)]) -> Moto {
        let server = std::env::var("VC_MOTO_SERVER").unwrap_or_else(|_| {
            panic!("VC_MOTO_SERVER is not set: these tests need moto_server (run them with scripts/test, which installs it)")
        });
        let dir = tempfile::tempdir().unwrap();
        let amis = dir.path().join("amis.json");
        std::fs::write(&amis, AMIS).unwrap();
        let port = std::net::TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(&server);
        cmd.args(["-H", host, "-p", &port.to_string()])
            .env("MOTO_AMIS_PATH", &amis)
            // Where `record` (recorded.rs) writes what was asked; nothing is written until then.
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {server}: {e}"));
        let url = format!("http://{host}:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect((host, port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start on {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url, _dir: dir }
    }
}

impl Moto {
    fn recording(&self) -> std::path::PathBuf {
        self._dir.path().join("recording.jsonl")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // A failed test shows the emulator's own errors (its tracebacks), which its answers hide.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self._dir.path().join("moto.log")).unwrap_or_default();
            let errors: Vec<&str> = log.lines().filter(|l| !l.contains("HTTP/1.1\" 200")).collect();
            eprintln!(
                "--- the emulator's log, its last lines:\n{}",
                errors[errors.len().saturating_sub(40)..].join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Project {
    dir: tempfile::TempDir,
    /// Shared by the projects of one account (`beside`).
    moto: std::sync::Arc<Moto>,
}

const STACK: &str = "name: fra
provider: aws
aws:
  region: eu-central-1
  instance_type: t2.micro
  admin_cidrs: [198.18.7.7/32]
  ssh_public_key: keys/id_ed25519.pub
  termination_protection: false
service:
  port: 8000
";

impl Project {
    fn new(stack: &str, moto: Moto) -> Project {
        Project::in_account(stack, std::sync::Arc::new(moto))
    }

    fn in_account(stack: &str, moto: std::sync::Arc<Moto>) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks")).unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/id_ed25519.pub"), PUBLIC_KEY).unwrap();
        // The identity deploys would log in with: plan checks that it is there (no test logs in).
        std::fs::write(dir.path().join("keys/id_ed25519"), "(the private half, never read by these tests)\n").unwrap();
        std::fs::write(dir.path().join("stacks/fra.yaml"), stack).unwrap();
        Project { dir, moto }
    }

    /// Another project, with its own checkout and `stack`, in the same AWS account.
    fn beside(&self, stack: &str) -> Project {
        Project::in_account(stack, self.moto.clone())
    }

    fn stack_id(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stacks/fra.yaml")).unwrap();
        text.lines().find_map(|l| l.strip_prefix("id: ")).expect("the first up wrote an id").to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_on("fra", args)
    }

    /// `vcctl ARGS --stack STACK` in this project.
    fn command_on(&self, stack: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcctl"));
        cmd.args(args)
            .args(["--stack", stack])
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", &self.moto.url)
            // vcctl signs as the operator; the tests' own SDK calls as `testing` (recorded.rs
            // tells them apart).
            .env("AWS_ACCESS_KEY_ID", recorded::OPERATOR_KEY)
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-central-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.path().join("no-aws-credentials"))
            .env_remove("AWS_PROFILE")
            // No GitHub here: `ci init` prints the `gh api` commands (ci.rs tests GitHub's
            // side against a recorded exchange).
            .env_remove("GH_TOKEN")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_API_URL")
            .env_remove("AWS_SESSION_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn expect(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "vcctl {args:?}\n{}", show(&out));
        out
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.expect(&all, code);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(&out)))
    }

    async fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url(&self.moto.url)
            .credentials_provider(creds)
            .load()
            .await
    }

    async fn sdk(&self) -> (aws_sdk_ec2::Client, aws_sdk_iam::Client, aws_sdk_cloudwatch::Client) {
        let config = self.sdk_config().await;
        (aws_sdk_ec2::Client::new(&config), aws_sdk_iam::Client::new(&config), aws_sdk_cloudwatch::Client::new(&config))
    }
}

fn stack_filter() -> Filter {
    Filter::builder().name("tag:vcctl:stack").values("fra").build()
}

/// (port, cidr, description) of every inbound rule of the stack's security group.
async fn sg_rules(ec2: &aws_sdk_ec2::Client) -> Vec<(i32, String, String)> {
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    assert_eq!(groups.security_groups().len(), 1, "exactly one security group for the stack");
    let mut rules = Vec::new();
    for p in groups.security_groups()[0].ip_permissions() {
        for r in p.ip_ranges() {
            rules.push((
                p.from_port().unwrap(),
                r.cidr_ip().unwrap().to_string(),
                r.description().unwrap_or("").to_string(),
            ));
        }
        for r in p.ipv6_ranges() {
            rules.push((
                p.from_port().unwrap(),
                r.cidr_ipv6().unwrap().to_string(),
                r.description().unwrap_or("").to_string(),
            ));
        }
    }
    rules.sort();
    rules
}

async fn live_instances(ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = ec2
        .describe_instances()
        .filters(stack_filter())
        .filters(
            Filter::builder().name("instance-state-name").values("pending").values("running").values("stopped").build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
}

fn urldecode(s: &str) -> Value {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    serde_json::from_slice(&out).unwrap_or_else(|_| serde_json::from_str(s).unwrap())
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// An on-demand stack whose instance is the SSH test host (under the emulator, tests map
/// the stack's host with VCCTL_TEST_AWS_HOST; the host key is pinned in the stack).
fn on_demand_stack() -> String {
    let h = common::test_host();
    format!(
        "name: fra\nprovider: aws\naws:\n  region: eu-central-1\n  ssh_public_key: keys/id_ed25519.pub\n  ssh_identity: {}\n  ssh_user: root\n  host_key: {}\n  termination_protection: false\nservice:\n  port: 8000\n",
        h.key, h.host_key
    )
}

/// The stack's port-22 rules as moto keeps them: (cidr, description, tags).
/// Temporary SSH rules on the stack's group as killed commands leave them: a lease ended, a
/// lease that ends too far ahead to be honest, and one still held (198.18.0.21, .22 and .23);
/// the group's id.
async fn leftover_rules(ec2: &aws_sdk_ec2::Client) -> String {
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = |offset: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(now + offset).unwrap();
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    for (cidr, until) in [("198.18.0.21/32", at(-60)), ("198.18.0.22/32", at(86_400)), ("198.18.0.23/32", at(300))] {
        let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
        let spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroupRule)
            .tags(tag("vcctl:stack", "fra"))
            .tags(tag("vcctl:temporary", "ssh"))
            .tags(tag("vcctl:lease:killed", &until))
            .build();
        let range = aws_sdk_ec2::types::IpRange::builder().cidr_ip(cidr).build();
        let permission = aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(range)
            .build();
        ec2.authorize_security_group_ingress()
            .group_id(&group)
            .ip_permissions(permission)
            .tag_specifications(spec)
            .send()
            .await
            .unwrap();
    }
    group
}

/// The stack's lock as another vcctl (a CI run) holds it until `until`: the lock's group in the
/// default VPC, tagged with its holder; its id.
async fn hold_stack_lock(ec2: &aws_sdk_ec2::Client, until: &str) -> String {
    let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_string();
    let holder = format!(
        r#"{{"by":"ci@runner","from":"https://github.com/acme/vc/actions/runs/9","command":"vcctl deploy","since":"2026-12-01T00:00:00Z","until":"{until}"}}"#
    );
    // Tagged as a vcctl killed while holding it leaves it.
    let mut tags =
        aws_sdk_ec2::types::TagSpecification::builder().resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup);
    for (k, v) in
        [("Name", "vcctl-fra.lock"), ("vcctl:lock-of", "fra"), ("vcctl:managed-by", "vcctl"), ("vcctl:lock", &holder)]
    {
        tags = tags.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
    }
    let tags = tags.build();
    let made = ec2
        .create_security_group()
        .group_name("vcctl-fra.lock")
        .description("held")
        .vpc_id(&vpc)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    made.group_id().unwrap().to_string()
}

/// The lock's group, if it exists.
async fn stack_lock(ec2: &aws_sdk_ec2::Client) -> Option<String> {
    let f = Filter::builder().name("group-name").values("vcctl-fra.lock").build();
    let groups = ec2.describe_security_groups().filters(f).send().await.unwrap();
    groups.security_groups().first().map(|g| g.group_id().unwrap().to_string())
}

async fn ssh_rules(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String, Vec<(String, String)>)> {
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_string();
    let rules = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group).build())
        .send()
        .await
        .unwrap();
    rules
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() != Some(true) && r.from_port() == Some(22))
        .map(|r| {
            let tags =
                r.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
            (r.cidr_ipv4().unwrap_or_default().to_string(), r.description().unwrap_or_default().to_string(), tags)
        })
        .collect()
}

impl Project {
    /// `vcctl tunnel prometheus` from `from`, running: its child and the URL it printed.
    fn tunnel(&self, from: &[(&str, &str)]) -> (Child, String) {
        let mut cmd = self.command(&["tunnel", "prometheus", "--local-port", "0"]);
        cmd.env("VCCTL_TEST_AWS_HOST", common::test_host().addr).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in from {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.starts_with("http://127.0.0.1:"), "the tunnel prints its URL: {line:?}");
        (child, line.trim().to_string())
    }
}

/// Runs a script on the test host when dropped, a failed test's included.
struct OnHostAtEnd(String);

impl Drop for OnHostAtEnd {
    fn drop(&mut self) {
        let script = self.0.clone();
        if std::panic::catch_unwind(move || common::on_host(&script)).is_err() {
            eprintln!("could not clean the test host up");
        }
    }
}
