//! vcctl against moto: `ci init`: the GitHub OIDC provider, the deploy role and the workflow.

use super::*;

/// `ci init` makes the GitHub OIDC provider, a deploy role only the repository's environment
/// may assume, with exactly the least privilege deploys need, and a valid workflow; a second
/// run changes nothing, and a changed trust policy is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_init_makes_the_oidc_provider_the_deploy_role_and_the_workflow() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (_, iam, _) = p.sdk().await;
    let first = p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    assert_eq!(first["changed"], true, "{first}");
    let providers = iam.list_open_id_connect_providers().send().await.unwrap();
    let provider = providers.open_id_connect_provider_list()[0].arn().unwrap().to_string();
    assert!(provider.ends_with(":oidc-provider/token.actions.githubusercontent.com"), "{provider}");
    let role = iam.get_role().role_name("vcctl-deploy-fra").send().await.unwrap();
    let trust = urldecode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(
        trust,
        serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": "repo:acme/vehicleconnect:environment:production:ref:refs/heads/main"}}}]})
    );
    let policy = iam.get_role_policy().role_name("vcctl-deploy-fra").policy_name("vcctl-deploy").send().await.unwrap();
    let policy = urldecode(policy.policy_document());
    // The whole document: what the role may do, and on which of the account's resources.
    let of_stack = serde_json::json!({"StringEquals": {"aws:ResourceTag/vcctl:stack": "fra"}});
    let arn = |kind: &str| format!("arn:aws:ec2:eu-central-1:123456789012:{kind}/*");
    assert_eq!(
        policy,
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "FindTheStacksInstanceAndFirewall", "Effect": "Allow", "Resource": "*",
             "Action": ["ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSecurityGroupRules", "ec2:DescribeVpcs"]},
            {"Sid": "ReadItsHostKeys", "Effect": "Allow", "Action": "ec2:GetConsoleOutput",
             "Resource": arn("instance"), "Condition": of_stack},
            {"Sid": "OpenAndCloseSshOnItsSecurityGroupOnly", "Effect": "Allow",
             "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
             "Resource": arn("security-group"), "Condition": of_stack},
            {"Sid": "MakeTheTemporaryRuleTaggedAsItsStacks", "Effect": "Allow",
             "Action": "ec2:AuthorizeSecurityGroupIngress", "Resource": arn("security-group-rule"),
             "Condition": {"StringEquals": {"aws:RequestTag/vcctl:stack": "fra"}}},
            {"Sid": "TagItAsItIsMade", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": arn("security-group-rule"),
             "Condition": {"StringEquals": {"ec2:CreateAction": "AuthorizeSecurityGroupIngress",
                                            "aws:RequestTag/vcctl:stack": "fra"}}},
            {"Sid": "TakeTheStacksLockInAVpc", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup",
             "Resource": arn("vpc")},
            {"Sid": "TakeTheStacksLockOnly", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup",
             "Resource": arn("security-group"),
             "Condition": {"StringEquals": {"aws:RequestTag/vcctl:lock-of": "fra"}}},
            {"Sid": "TagTheLockAsItIsMade", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": arn("security-group"),
             "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup",
                                            "aws:RequestTag/vcctl:lock-of": "fra"}}},
            {"Sid": "RenewAndReleaseTheStacksLock", "Effect": "Allow",
             "Action": ["ec2:CreateTags", "ec2:DeleteSecurityGroup"], "Resource": arn("security-group"),
             "Condition": {"StringEquals": {"aws:ResourceTag/vcctl:lock-of": "fra"}}},
            {"Sid": "TakeEndAndCloseLeasesOnItsRules", "Effect": "Allow",
             "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:RevokeSecurityGroupIngress"],
             "Resource": arn("security-group-rule"), "Condition": of_stack}
        ]})
    );
    assert!(first["role_arn"].as_str().unwrap().ends_with(":role/vcctl-deploy-fra"));

    let workflow = p.dir.path().join(".github/workflows/deploy-fra.yml");
    let checker = std::env::var("VC_CHECK_JSONSCHEMA").expect("VC_CHECK_JSONSCHEMA (scripts/test-services)");
    let out =
        Command::new(&checker).args(["--builtin-schema", "vendor.github-workflows"]).arg(&workflow).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(std::fs::read_to_string(&workflow).unwrap().contains("deploy --stack fra "));

    assert_eq!(
        p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0)["changed"],
        false,
        "a second run is a no-op"
    );
    iam.update_assume_role_policy()
        .role_name("vcctl-deploy-fra")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    let repaired = p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    assert_eq!(
        repaired["changes"],
        serde_json::json!([
            "~ IAM role vcctl-deploy-fra: trust policy changed outside vcctl; restore the repository's environment on its branch only"
        ]),
        "{repaired}"
    );
    p.expect(&["ci", "init", "--repo", "not-a-repo"], 3);

    // The role is the stack's: `destroy` deletes it; the account's provider stays.
    let gone = p.json(&["destroy", "--yes"], 0);
    assert_eq!(gone["deleted"], serde_json::json!(["CI deploy role vcctl-deploy-fra"]), "{gone}");
    assert!(iam.get_role().role_name("vcctl-deploy-fra").send().await.is_err(), "the role is gone");
    let providers = iam.list_open_id_connect_providers().send().await.unwrap();
    assert_eq!(providers.open_id_connect_provider_list().len(), 1, "the OIDC provider stays");
}

/// GitHub's REST API as `ci init` meets it, recorded: a loopback server that answers as
/// GitHub documents (its state changed by what it is sent) and keeps every request. No real
/// GitHub is reachable here; the requests are checked against GitHub's documented request
/// schemas (tests/fixtures/github), and the answers follow its reference.
/// A request GitHub received: method, path, headers (lower-case names) and body.
type Sent = (String, String, Vec<(String, String)>, String);

struct FakeGitHub {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Sent>>>,
    state: std::sync::Arc<std::sync::Mutex<Value>>,
}

impl FakeGitHub {
    fn start() -> FakeGitHub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = std::sync::Arc::new(std::sync::Mutex::new(
            serde_json::json!({"sub": {"use_default": true}, "environment": null, "branches": []}),
        ));
        let (r, s) = (requests.clone(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(stream, &r, &s));
            }
        });
        FakeGitHub { url, requests, state }
    }
}

type Requests = std::sync::Mutex<Vec<Sent>>;

/// Answers the requests of one connection (keep-alive) until it closes.
fn serve(stream: std::net::TcpStream, requests: &Requests, state: &std::sync::Mutex<Value>) {
    use std::io::{BufRead, Read, Write};
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let length = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8(body).unwrap();
        let (status, answer) = github_answer(&method, &path, &body, &mut state.lock().unwrap());
        requests.lock().unwrap().push((method, path, headers, body));
        let text = answer.to_string();
        let head =
            format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", text.len());
        out.write_all(head.as_bytes()).unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
}

/// What GitHub answers, and how its state changes (the repository acme/vehicleconnect).
fn github_answer(method: &str, path: &str, body: &str, state: &mut Value) -> (u16, Value) {
    let base = "/repos/acme/vehicleconnect";
    let env = format!("{base}/environments/production");
    let sent: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let path = path.split('?').next().unwrap();
    match (method, path) {
        ("GET", p) if p == format!("{base}/actions/oidc/customization/sub") => (200, state["sub"].clone()),
        ("PUT", p) if p == format!("{base}/actions/oidc/customization/sub") => {
            state["sub"] = sent;
            (201, serde_json::json!({}))
        }
        ("GET", p) if p == env && state["environment"].is_null() => (404, serde_json::json!({"message": "Not Found"})),
        ("GET", p) if p == env => (200, state["environment"].clone()),
        ("PUT", p) if p == env => {
            state["environment"] =
                serde_json::json!({"name": "production", "deployment_branch_policy": sent["deployment_branch_policy"]});
            (200, state["environment"].clone())
        }
        ("GET", p) if p == format!("{env}/deployment-branch-policies") => {
            let list = state["branches"].clone();
            (200, serde_json::json!({"total_count": list.as_array().unwrap().len(), "branch_policies": list}))
        }
        ("POST", p) if p == format!("{env}/deployment-branch-policies") => {
            let id = state["branches"].as_array().unwrap().len() as u64 + 100;
            let policy = serde_json::json!({"id": id, "name": sent["name"], "type": sent["type"]});
            state["branches"].as_array_mut().unwrap().push(policy.clone());
            (200, policy)
        }
        ("DELETE", p) if p.starts_with(&format!("{env}/deployment-branch-policies/")) => {
            let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap();
            state["branches"].as_array_mut().unwrap().retain(|b| b["id"] != id);
            (204, Value::Null)
        }
        _ => (404, serde_json::json!({"message": "Not Found"})),
    }
}

/// `ci init` with a GitHub token binds GitHub's side through its REST API, with requests
/// that match GitHub's documented schemas; a second run sends no write; `--check` exits 0
/// when bound and 2 when another branch may deploy too (which `ci init` then removes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_init_binds_the_environment_to_its_branch_through_githubs_api() {
    let p = Project::new(STACK, Moto::start(&[]));
    let gh = FakeGitHub::start();
    let run = |args: &[&str], code: i32| {
        let mut all = vec!["ci", "init", "--repo", "acme/vehicleconnect", "--json"];
        all.extend_from_slice(args);
        let out = p.command(&all).env("GH_TOKEN", "gho_test-token").env("GITHUB_API_URL", &gh.url).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert!(run(&["--check"], 2)["missing"].as_array().unwrap().len() >= 4, "nothing is bound yet");
    let first = run(&[], 0);
    let writes: Vec<Sent> = gh.requests.lock().unwrap().iter().filter(|(m, ..)| m != "GET").cloned().collect();
    let calls: Vec<(&str, &str)> = writes.iter().map(|(m, p, ..)| (m.as_str(), p.as_str())).collect();
    assert_eq!(
        calls,
        [
            ("PUT", "/repos/acme/vehicleconnect/actions/oidc/customization/sub"),
            ("PUT", "/repos/acme/vehicleconnect/environments/production"),
            ("POST", "/repos/acme/vehicleconnect/environments/production/deployment-branch-policies"),
        ],
        "{first}"
    );
    let checker = std::env::var("VC_CHECK_JSONSCHEMA").expect("VC_CHECK_JSONSCHEMA (scripts/test-services)");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/github");
    for ((_, _, headers, body), schema) in
        writes.iter().zip(["oidc-customization-sub", "environment", "deployment-branch-policy"])
    {
        let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str());
        assert_eq!(header("authorization"), Some("Bearer gho_test-token"));
        assert_eq!(header("accept"), Some("application/vnd.github+json"));
        assert_eq!(header("x-github-api-version"), Some("2022-11-28"));
        assert!(header("user-agent").is_some_and(|u| u.starts_with("vcctl/")));
        let file = p.dir.path().join(format!("{schema}.json"));
        std::fs::write(&file, body).unwrap();
        let out = Command::new(&checker)
            .arg("--schemafile")
            .arg(format!("{fixtures}/{schema}.schema.json"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{schema}: {body}\n{}", show(&out));
    }
    assert_eq!(
        gh.state.lock().unwrap()["sub"],
        serde_json::json!({"use_default": false, "include_claim_keys": ["repo", "context", "ref"]})
    );
    let before = gh.requests.lock().unwrap().len();
    assert_eq!(run(&[], 0)["changed"], false);
    assert!(gh.requests.lock().unwrap()[before..].iter().all(|(m, ..)| m == "GET"), "no write when bound");
    assert_eq!(run(&["--check"], 0)["missing"], serde_json::json!([]));
    // Someone lets every branch deploy: `--check` says so, `ci init` takes it back.
    gh.state.lock().unwrap()["branches"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": 7, "name": "*", "type": "branch"}));
    let check = run(&["--check"], 2);
    assert!(check["missing"].to_string().contains("deploys from branch `*` too"), "{check}");
    run(&[], 0);
    let names: Vec<Value> =
        gh.state.lock().unwrap()["branches"].as_array().unwrap().iter().map(|b| b["name"].clone()).collect();
    assert_eq!(names, [serde_json::json!("main")]);
}

/// One workflow per stack; one edited by hand is shown, not overwritten, until --force; a
/// deploy role of another stack's (IAM names are account-wide) is refused, and a policy
/// attached to ours by hand is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_per_stack_kept_when_edited_and_the_role_is_the_stacks_own() {
    let p = Project::new(STACK, Moto::start(&[]));
    p.json(&["up"], 0);
    let out = p.expect(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("gh variable set AWS_DEPLOY_ROLE_ARN_FRA --body arn:aws:iam::123456789012:role/vcctl-deploy-fra"),
        "{said}"
    );
    assert!(said.contains("gh secret set VCCTL_SSH_KEY --env production < keys/id_ed25519"), "{said}");
    assert!(said.contains("gh api -X PUT /repos/acme/vehicleconnect/actions/oidc/customization/sub"), "{said}");
    let file = p.dir.path().join(".github/workflows/deploy-fra.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("vars.AWS_DEPLOY_ROLE_ARN_FRA") && text.contains("release/vcctl deploy --stack fra"),
        "{text}"
    );
    // The build holds no credentials; only the deploy job may ask for a token.
    let build = text.split("\n  build:").nth(1).unwrap().split("\n  deploy:").next().unwrap();
    assert!(!build.contains("id-token") && !build.contains("secrets."), "{build}");

    std::fs::write(&file, text.replace("timeout-minutes: 30", "timeout-minutes: 45")).unwrap();
    let out = p.expect(&["ci", "init", "--repo", "acme/vehicleconnect", "--environment", "prod eu"], 3);
    let err = common::stderr(&out);
    assert!(err.contains("was edited by hand") && err.contains("- ") && err.contains("+ "), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("timeout-minutes: 45"), "kept");
    p.expect(&["ci", "init", "--repo", "acme/vehicleconnect", "--force"], 0);
    assert!(std::fs::read_to_string(&file).unwrap().contains("timeout-minutes: 30"), "replaced with --force");
    // What it prints can be pasted as it is: an environment with a space is one shell word.
    let out = p.expect(&["ci", "init", "--repo", "acme/vehicleconnect", "--environment", "prod eu", "--force"], 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("gh secret set VCCTL_SSH_KEY --env 'prod eu' < keys/id_ed25519"), "{said}");
    p.expect(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);

    // A policy attached by hand is removed; a role made for another stack is refused.
    let (_, iam, _) = p.sdk().await;
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let managed = iam.create_policy().policy_name("by-hand-managed").policy_document(everything).send().await.unwrap();
    let arn = managed.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy().role_name("vcctl-deploy-fra").policy_arn(&arn).send().await.unwrap();
    iam.put_role_policy()
        .role_name("vcctl-deploy-fra")
        .policy_name("by-hand")
        .policy_document(everything)
        .send()
        .await
        .unwrap();
    let fixed = p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let said = fixed["changes"].to_string();
    assert!(said.contains("by-hand-managed") && said.contains("policy by-hand on"), "{fixed}");
    let attached = iam.list_attached_role_policies().role_name("vcctl-deploy-fra").send().await.unwrap();
    assert!(attached.attached_policies().is_empty());
    let inline = iam.list_role_policies().role_name("vcctl-deploy-fra").send().await.unwrap();
    assert_eq!(inline.policy_names(), ["vcctl-deploy"]);
    // (A stack of the same name in another region, or another repository's.)
    let other = p.beside(&STACK.replace("region: eu-central-1", "region: eu-west-1"));
    let out = other.expect(&["ci", "init", "--repo", "acme/other"], 3);
    assert!(common::stderr(&out).contains("CI deploy role vcctl-deploy-fra carries stack id"), "{}", show(&out));
}
