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
                "token.actions.githubusercontent.com:sub": "repo:acme/vehicleconnect:environment:production"}}}]})
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
                        "ec2:DescribeSecurityGroupRules"]},
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
            {"Sid": "TakeEndAndCloseLeasesOnItsRules", "Effect": "Allow",
             "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:RevokeSecurityGroupIngress"],
             "Resource": arn("security-group-rule"), "Condition": of_stack}
        ]})
    );
    assert!(first["role_arn"].as_str().unwrap().ends_with(":role/vcctl-deploy-fra"));

    let workflow = p.dir.path().join(".github/workflows/deploy.yml");
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
        serde_json::json!(["restored the trust policy of role vcctl-deploy-fra"]),
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
