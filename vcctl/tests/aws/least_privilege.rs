//! Least privilege, proven against the emulator, which enforces none: every request a
//! command makes is recorded and evaluated against the policy vcctl wrote or prints for
//! whoever makes it (recorded.rs, iam_eval.rs). The CI deploy role and the instance roles
//! are checked where their commands run on the test host (on_demand.rs, scale.rs); the
//! operator's policy (`vcctl iam-policy`) here and in the scale stack's life; parliament
//! lints every document.

use super::*;

/// The operator's policy for stack `fra` of `p`, as `vcctl iam-policy` prints it.
pub fn operator_policy(p: &Project) -> Value {
    let out = p.expect(&["iam-policy"], 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(&out)))
}

/// Fails with each call the operator's policy would deny, and says which of its actions
/// the recording never used (an action-level hint; statements are checked by the caller).
pub fn check_operator(policy: &Value, asked: &[iam_eval::Authz]) {
    let mut denied = iam_eval::denials(policy, asked);
    denied.sort();
    denied.dedup();
    assert!(
        denied.is_empty(),
        "the operator's policy (vcctl iam-policy) against what vcctl asked:\n{}",
        denied.join("\n")
    );
    let used: std::collections::BTreeSet<&str> = asked.iter().map(|a| a.action.as_str()).collect();
    let unused: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            v => vec![v.as_str().unwrap_or_default().to_string()],
        })
        .filter(|a| !used.contains(a.as_str()))
        .collect();
    eprintln!("operator actions this recording did not use: {unused:?}");
}

/// A box's whole life as its operator lives it, with its alerts and CI: every call allowed
/// by `vcctl iam-policy`, and every statement of it needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_policy_allows_a_boxs_whole_life_and_each_statement_is_needed() {
    let p = Project::new(&format!("{STACK}alerts:\n  email: ops@example.com\n"), Moto::start(&[]));
    let watch = recorded::Watch::start(&p).await;
    p.expect(&["plan"], 2);
    p.json(&["up"], 0);
    // A new alert address: the old subscription ends, a new one starts.
    let file = p.dir.path().join("stacks/fra.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace("ops@example.com", "oncall@example.com");
    std::fs::write(&file, text).unwrap();
    p.json(&["up"], 0);
    p.json(&["status"], 1);
    p.json(&["backup"], 0);
    p.json(&["backup", "--list"], 0);
    // AWS Backup's scheduler makes a recovery point (its own calls, not the operator's).
    assert_eq!(super::scheduled_backup::run_schedule(&p.moto, "daily").await.len(), 1);
    p.json(&["backup", "--list"], 0);
    p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    p.json(&["destroy", "--yes"], 0);
    p.json(&["destroy", "--yes", "--delete-backups"], 0);
    let (calls, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    assert!(calls.len() > 50, "the recording holds the commands' calls: {}", calls.len());
    let policy = operator_policy(&p);
    check_operator(&policy, &asked);
    let wrong = iam_eval::exactly_needed(&policy, &asked);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The proof can fail: the policy without IAM's statement denies the role's creation.
    let mut without = policy.clone();
    without["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != "ItsRolesAndProfilesOnly");
    let denied = iam_eval::denials(&without, &asked);
    assert!(denied.iter().any(|d| d.contains("iam:CreateRole")), "{denied:?}");
}

/// Every policy document vcctl writes or prints passes parliament (PyPI) with no finding,
/// or with one docs/security.md explains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parliament_finds_nothing_in_any_policy_vcctl_writes() {
    let parliament = std::env::var("VC_PARLIAMENT").expect("VC_PARLIAMENT (scripts/test-services installs parliament)");
    let p = Project::new(STACK, Moto::start(&[]));
    p.json(&["up"], 0);
    p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let mut documents = vec![
        ("operator (box)".to_string(), operator_policy(&p)),
        (
            "instance role (box)".to_string(),
            recorded::role_policy(&p, "vcctl-fra-host", "vcctl-fra-least-privilege").await,
        ),
        ("CI deploy role (box)".to_string(), recorded::role_policy(&p, "vcctl-deploy-fra", "vcctl-deploy").await),
        (
            "AWS Backup's role (box)".to_string(),
            recorded::role_policy(&p, "vcctl-fra-backup", "vcctl-fra-backup-least-privilege").await,
        ),
    ];
    // (Trust policies are resource policies, which parliament does not read: the tests
    // compare them whole, ci.rs and single.rs.)
    let scaled = Project::new(&super::scale::scaled_stack(), Moto::start(&[]));
    documents.push(("operator (scale:)".to_string(), operator_policy(&scaled)));
    let mut findings = Vec::new();
    for (name, doc) in &documents {
        // (--string: with --file, parliament refuses a stdin that is not a terminal.)
        let out = Command::new(&parliament).arg("--string").arg(doc.to_string()).arg("--json").output().unwrap();
        assert!(out.status.success() || !out.stdout.is_empty(), "parliament on {name}: {}", show(&out));
        for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
            let finding: Value = serde_json::from_str(line).unwrap_or_else(|_| Value::from(line));
            if !explained(&finding) {
                findings.push(format!("{name}: {finding}"));
            }
        }
    }
    assert!(findings.is_empty(), "parliament's findings, not explained in docs/security.md:\n{}", findings.join("\n"));
}

/// A finding docs/security.md explains: one item of its parliament section names the issue
/// code and the service of every action the finding lists (`ec2`, `rds`, …).
fn explained(finding: &Value) -> bool {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md")).unwrap();
    let section = doc.split("## parliament").nth(1).unwrap_or("").split("\n## ").next().unwrap_or("");
    let Some(issue) = finding["issue"].as_str() else { return false };
    let services: Vec<String> = finding["detail"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().or_else(|| d["action"].as_str()))
        .map(|a| format!("`{}`", a.split(':').next().unwrap_or(a)))
        .collect();
    section
        .split("\n- ")
        .skip(1)
        .any(|item| item.contains(&format!("`{issue}`")) && services.iter().all(|s| item.contains(s.as_str())))
}

/// docs/aws.md's copy of the operator's policy for stacks/frankfurt.yaml is what
/// `vcctl iam-policy` prints for it.
#[test]
fn the_policy_in_docs_aws_md_is_what_vcctl_prints() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(env!("CARGO_BIN_EXE_vcctl"))
        .args(["iam-policy", "--stack", "frankfurt", "--account", "123456789012"])
        .current_dir(root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = std::fs::read_to_string(format!("{root}/docs/aws.md")).unwrap();
    let copy = doc
        .split("<!-- vcctl iam-policy --stack frankfurt --account 123456789012 -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/aws.md holds the policy after its marker");
    assert_eq!(copy, String::from_utf8_lossy(&out.stdout).trim_end(), "update docs/aws.md from the command's output");
}
