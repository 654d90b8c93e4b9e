//! `vcctl ci init --repo OWNER/REPO`: what GitHub Actions needs to deploy an AWS stack,
//! made and kept as it should be: the account's GitHub OIDC provider, a deploy role only
//! that repository's environment can assume, with the least privilege `vcctl deploy`
//! needs, and `.github/workflows/deploy.yml`. A second run changes nothing; drift is
//! repaired.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cloud::aws::{Aws, iam};
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::names;
use crate::stack::AwsSettings;

/// GitHub's OIDC issuer, and the audience AWS's action asks tokens for.
const GITHUB_OIDC: &str = "token.actions.githubusercontent.com";
const AUDIENCE: &str = "sts.amazonaws.com";
/// The deploy workflow, with `frankfurt` where the stack's name goes.
const WORKFLOW: &str = include_str!("../../../../templates/github/deploy.yml");

/// Who may assume the deploy role: tokens of `repo`'s `environment` only.
pub fn trust_policy(provider_arn: &str, repo: &str, environment: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{GITHUB_OIDC}:aud"): AUDIENCE,
                format!("{GITHUB_OIDC}:sub"): format!("repo:{repo}:environment:{environment}"),
            }}
        }]
    })
}

/// What `vcctl deploy` needs on AWS: find the stack's instance and its data volume, read
/// its console output (for its host key), open and close SSH on its tagged group only.
/// Recorded deploys prove it is exactly this (vcctl/tests/aws/on_demand.rs, scale.rs).
pub fn deploy_policy(region: &str, account: &str, stack: &str) -> Value {
    let arn = |kind: &str| format!("arn:aws:ec2:{region}:{account}:{kind}/*");
    let of_stack = json!({"StringEquals": {"aws:ResourceTag/vcctl:stack": stack}});
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FindTheStacksInstanceAndFirewall",
                "Effect": "Allow",
                // Describe calls cannot be limited to resources; they change nothing.
                "Action": [
                    "ec2:DescribeInstances",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSecurityGroupRules"
                ],
                "Resource": "*"
            },
            {
                "Sid": "ReadItsHostKeys",
                "Effect": "Allow",
                "Action": "ec2:GetConsoleOutput",
                "Resource": arn("instance"),
                "Condition": of_stack
            },
            {
                "Sid": "OpenAndCloseSshOnItsSecurityGroupOnly",
                "Effect": "Allow",
                "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                "Resource": arn("security-group"),
                "Condition": of_stack
            },
            {
                "Sid": "MakeTheTemporaryRuleTaggedAsItsStacks",
                "Effect": "Allow",
                "Action": "ec2:AuthorizeSecurityGroupIngress",
                "Resource": arn("security-group-rule"),
                "Condition": {"StringEquals": {"aws:RequestTag/vcctl:stack": stack}}
            },
            {
                // Tags at creation only: never a way to make another stack's rule look ours.
                "Sid": "TagItAsItIsMade",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": arn("security-group-rule"),
                "Condition": {"StringEquals": {
                    "ec2:CreateAction": "AuthorizeSecurityGroupIngress",
                    "aws:RequestTag/vcctl:stack": stack
                }}
            },
            {
                // Closing a rule by its id is authorized on the rule too.
                "Sid": "TakeEndAndCloseLeasesOnItsRules",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:RevokeSecurityGroupIngress"],
                "Resource": arn("security-group-rule"),
                "Condition": of_stack
            }
        ]
    })
}

/// What `vcctl deploy` of a `scale:` stack needs besides: put a release in the stack's
/// bucket and move its pointer, read the group and its target group, and take instances
/// out of that target group and back. SSH and host keys are the statements above (the
/// group's instances and its app security group carry the stack's tag).
pub fn group_deploy_statements(region: &str, account: &str, stack: &str, bucket: &str) -> Vec<Value> {
    let object = |key: &str| format!("arn:aws:s3:::{bucket}/{key}");
    vec![
        json!({
            "Sid": "ShipReleasesToItsBucket",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": [object("releases/*"), object(names::POINTER)]
        }),
        json!({"Sid": "ReadWhatServes", "Effect": "Allow", "Action": "s3:GetObject", "Resource": object(names::POINTER)}),
        json!({
            "Sid": "HoldTheDeployLock",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": object(names::LOCK_KEY)
        }),
        json!({
            "Sid": "FindTheGroupAndItsTargets",
            "Effect": "Allow",
            // Describe calls cannot be limited to resources; they change nothing.
            "Action": [
                "autoscaling:DescribeAutoScalingGroups",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeTags"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "RollThroughItsTargetGroupOnly",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            "Resource": format!("arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{}/*", names::load_balancer(stack))
        }),
    ]
}

/// `OWNER/REPO`, as GitHub names a repository.
fn check_repo(repo: &str) -> Result<(), Failure> {
    let ok = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    match repo.split_once('/') {
        Some((owner, name)) if ok(owner) && ok(name) => Ok(()),
        _ => Err(Failure::invalid(
            format!("--repo must be OWNER/REPO as GitHub names it, got {repo:?}"),
            Some("e.g. --repo acme/vehicleconnect".into()),
        )),
    }
}

pub async fn init(ctx: &Ctx, a: &AwsSettings, repo: &str, environment: &str) -> Result<u8> {
    check_repo(repo)?;
    let region = a.region();
    let (aws, account) = crate::providers::aws::connect(ctx, a).await?;
    let stack = &ctx.settings.stack;
    let mut changes = Vec::new();
    let provider = match iam::find_oidc_provider(&aws.iam, GITHUB_OIDC).await? {
        Some(arn) => arn,
        None => {
            changes.push(format!("created the OIDC provider for {GITHUB_OIDC}"));
            iam::create_oidc_provider(&aws.iam, GITHUB_OIDC, AUDIENCE).await?
        }
    };
    let role = names::deploy_role(stack);
    let trust = trust_policy(&provider, repo, environment);
    let mut policy = deploy_policy(&region, &account, stack);
    if a.scale.is_some() {
        let Some(id) = ctx.settings.stack_id.as_deref() else {
            return Err(Failure::invalid(
                format!("stack `{stack}` has no id yet, so its bucket has no name: CI could not deploy to it"),
                Some("`vcctl up` first, then `vcctl ci init`".into()),
            )
            .into());
        };
        let bucket = names::TierNames::of(stack, id).bucket;
        let statements = policy["Statement"].as_array_mut().expect("a list");
        statements.extend(group_deploy_statements(&region, &account, stack, &bucket));
    }
    role_and_policy(&aws, ctx, &role, &trust, &policy, &mut changes).await?;
    let workflow = write_workflow(ctx)?;
    if let Some(w) = &workflow {
        changes.push(format!("wrote `{w}`"));
    }
    let role_arn = format!("arn:aws:iam::{account}:role/{role}");
    report(ctx, environment, &provider, &role_arn, &changes);
    Ok(crate::error::OK)
}

/// The deploy role with exactly `trust` and `policy`: made, or repaired.
async fn role_and_policy(
    aws: &Aws,
    ctx: &Ctx,
    role: &str,
    trust: &Value,
    policy: &Value,
    changes: &mut Vec<String>,
) -> Result<()> {
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    match iam::get_role(&aws.iam, role).await? {
        None => {
            let about = format!("GitHub Actions deploys of stack {}, managed by vcctl", ctx.settings.stack);
            iam::create_trusted_role(&aws.iam, role, trust, &about, &stamp).await?;
            changes.push(format!("created role {role}"));
        }
        Some(found) if found.trust != *trust => {
            iam::set_trust(&aws.iam, role, trust).await?;
            changes.push(format!("restored the trust policy of role {role}"));
        }
        Some(_) => {}
    }
    if iam::get_role_policy(&aws.iam, role, "vcctl-deploy").await?.as_ref() != Some(policy) {
        iam::put_role_policy(&aws.iam, role, "vcctl-deploy", policy).await?;
        changes.push(format!("wrote the least-privilege policy vcctl-deploy of role {role}"));
    }
    Ok(())
}

/// `.github/workflows/deploy.yml` for this stack, when it differs from what is there.
fn write_workflow(ctx: &Ctx) -> Result<Option<String>> {
    let text = WORKFLOW.replace("frankfurt", &ctx.settings.stack);
    let path = ctx.root.join(".github/workflows/deploy.yml");
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(None);
    }
    std::fs::create_dir_all(path.parent().expect("a parent"))
        .with_context(|| format!("creating `{}`", path.display()))?;
    std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(Some(path.display().to_string()))
}

fn report(ctx: &Ctx, environment: &str, provider: &str, role_arn: &str, changes: &[String]) {
    let p = &ctx.printer;
    p.json(&json!({
        "stack": ctx.settings.stack, "changed": !changes.is_empty(), "changes": changes,
        "oidc_provider": provider, "role_arn": role_arn, "environment": environment,
    }));
    if changes.is_empty() {
        p.info("nothing to change: the OIDC provider, the deploy role and the workflow are as they should be");
    }
    for c in changes {
        p.info(format!("  {c}"));
    }
    p.out(format!(
        "Still to do in the repository's settings on GitHub:\n  1. variable AWS_DEPLOY_ROLE_ARN = {role_arn}\n  \
         2. environment `{environment}`: secret VCCTL_SSH_KEY, the private half of aws.ssh_public_key \
         (`gh secret set VCCTL_SSH_KEY --env {environment} < KEY`), and its protection rules"
    ));
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_owner_slash_repo_is_a_repository() {
        assert!(super::check_repo("acme/vehicleconnect").is_ok());
        for bad in ["acme", "acme/", "/x", "acme/a b", "a/b/c"] {
            assert!(super::check_repo(bad).is_err(), "{bad}");
        }
    }
}
