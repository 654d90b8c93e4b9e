//! `vcctl ci init --repo OWNER/REPO`: what GitHub Actions needs to deploy an AWS stack,
//! made and kept as it should be: the account's GitHub OIDC provider; a deploy role that
//! only the repository's environment on one branch can assume (github.rs binds GitHub's
//! side), with the least privilege `vcctl deploy` needs; and the stack's own workflow,
//! `.github/workflows/deploy-<stack>.yml`, never overwritten once edited by hand. A second
//! run changes nothing; drift is repaired. `--check` changes nothing and exits 2 when
//! anything is not as it should be.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cloud::aws::{Aws, iam};
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::github::{self, Binding};
use crate::providers::aws::names;
use crate::providers::aws::role::{self, RoleWanted};
use crate::stack::AwsSettings;

/// GitHub's OIDC issuer, and the audience AWS's action asks tokens for.
const GITHUB_OIDC: &str = "token.actions.githubusercontent.com";
const AUDIENCE: &str = "sts.amazonaws.com";
/// The deploy workflow, with `frankfurt` where the stack's name goes.
const WORKFLOW: &str = include_str!("../../../../templates/github/deploy.yml");
/// The first line of a workflow vcctl wrote: the hash of the rest, so that a hand edit shows.
const MARK: &str = "# Written by vcctl ci init; edits are kept (vcctl asks for --force). sha256:";
const POLICY_NAME: &str = "vcctl-deploy";

/// What `ci init` is asked to do.
pub struct Request {
    pub binding: Binding,
    pub force: bool,
    pub check: bool,
    /// How GitHub's side is reached: a token, or none (print the commands).
    pub github_token: Option<String>,
}

/// Who may assume the deploy role: tokens of `b`'s environment on `b`'s branch only.
pub fn trust_policy(provider_arn: &str, b: &Binding) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{GITHUB_OIDC}:aud"): AUDIENCE,
                format!("{GITHUB_OIDC}:sub"): b.subject(),
            }}
        }]
    })
}

/// The repository variable that holds the stack's deploy role: one per stack.
pub fn role_variable(stack: &str) -> String {
    format!("AWS_DEPLOY_ROLE_ARN_{}", stack.to_ascii_uppercase().replace('-', "_"))
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
                    "ec2:DescribeSecurityGroupRules",
                    "ec2:DescribeVpcs"
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
                // The stack's lock (providers/aws/lock.rs): a group of the lock's name, made in
                // a VPC, tagged as the lock of this stack as it is made, renewed and deleted.
                "Sid": "TakeTheStacksLockInAVpc",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": arn("vpc")
            },
            {
                "Sid": "TakeTheStacksLockOnly",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": arn("security-group"),
                "Condition": {"StringEquals": {"aws:RequestTag/vcctl:lock-of": stack}}
            },
            {
                "Sid": "TagTheLockAsItIsMade",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": arn("security-group"),
                "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", "aws:RequestTag/vcctl:lock-of": stack}}
            },
            {
                "Sid": "RenewAndReleaseTheStacksLock",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags", "ec2:DeleteSecurityGroup"],
                "Resource": arn("security-group"),
                "Condition": {"StringEquals": {"aws:ResourceTag/vcctl:lock-of": stack}}
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
        // The group's audit trail: one object per deploy or rollback, never read back here.
        json!({
            "Sid": "AppendToItsAuditTrail",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": object(&format!("{}*", names::AUDIT))
        }),
        // What serves, and the ingest token and secrets a deploy gives the running instances.
        json!({
            "Sid": "ReadWhatServes",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [object(names::POINTER), object(names::TOKEN), object(names::SECRETS)]
        }),
        // `rollback` reads the releases kept (receipts and binaries); a deploy deletes those
        // past the newest few.
        json!({
            "Sid": "ListItsReleases",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": {"StringLike": {"s3:prefix": ["releases/", "releases/*"]}}
        }),
        json!({
            "Sid": "RollBackAndPruneItsReleases",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:DeleteObject"],
            "Resource": object("releases/*")
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

pub async fn init(ctx: &Ctx, a: &AwsSettings, req: &Request) -> Result<u8> {
    let b = &req.binding;
    check_repo(&b.repo)?;
    check_name("--environment", &b.environment, " ")?;
    check_name("--branch", &b.branch, "/")?;
    let (aws, account) = crate::providers::aws::connect(ctx, a).await?;
    let mut changes = Vec::new();
    let mut missing = Vec::new();
    let provider = match iam::find_oidc_provider(&aws.iam, GITHUB_OIDC).await? {
        Some(arn) => arn,
        None if req.check => {
            missing.push(format!("the account has no OIDC provider for {GITHUB_OIDC}"));
            format!("arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC}")
        }
        None => {
            changes.push(format!("created the OIDC provider for {GITHUB_OIDC}"));
            iam::create_oidc_provider(&aws.iam, GITHUB_OIDC, AUDIENCE).await?
        }
    };
    let policy = deploy_role_policy(ctx, a, &account)?;
    let trust = trust_policy(&provider, b);
    deploy_role(ctx, &aws, &trust, &policy, req.check, &mut changes, &mut missing).await?;
    let workflow = workflow(ctx, a, b, req, &mut changes, &mut missing)?;
    let github = github_side(b, req, &mut changes, &mut missing).await?;
    let role_arn = format!("arn:aws:iam::{account}:role/{}", names::deploy_role(&ctx.settings.stack));
    // The identity deploys log in with: the private half of `aws.ssh_public_key`.
    let key =
        a.ssh_identity.clone().or_else(|| a.ssh_public_key.as_deref().map(|k| k.trim_end_matches(".pub").to_string()));
    let done = Done { role_arn, workflow, changes, missing, gh_commands: github, key };
    report(ctx, req, &done);
    Ok(if req.check && !done.missing.is_empty() { crate::error::PLAN_HAS_CHANGES } else { crate::error::OK })
}

/// The deploy role's policy: the box's statements, and a `scale:` stack's besides.
fn deploy_role_policy(ctx: &Ctx, a: &AwsSettings, account: &str) -> Result<Value> {
    let (region, stack) = (a.region(), &ctx.settings.stack);
    let mut policy = deploy_policy(&region, account, stack);
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
        statements.extend(group_deploy_statements(&region, account, stack, &bucket));
    }
    // With `alerts:`, every deploy and rollback tells the stack's topic (providers/aws/notify.rs).
    if ctx.settings.alert_email.is_some() {
        let topic = crate::cloud::aws::sns::arn(&region, account, &names::alerts_topic(stack));
        let statements = policy["Statement"].as_array_mut().expect("a list");
        statements
            .push(json!({"Sid": "TellItsAlertTopic", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic}));
    }
    Ok(policy)
}

/// The deploy role, exactly `trust` and `policy`, through the one role resource; a role of
/// that name made for another stack (IAM names are account-wide) is refused.
async fn deploy_role(
    ctx: &Ctx,
    aws: &Aws,
    trust: &Value,
    policy: &Value,
    check: bool,
    changes: &mut Vec<String>,
    missing: &mut Vec<String>,
) -> Result<()> {
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let name = names::deploy_role(&ctx.settings.stack);
    let found = role::survey(&aws.iam, &name, POLICY_NAME).await?;
    match found.role.as_ref().map(|r| r.owner.stack_id.as_deref()) {
        // Made before its stack had an id (or by an older vcctl): the stack's, tagged so.
        Some(None) if !stamp.id.is_empty() && !check => {
            iam::tag_role(&aws.iam, &name, &stamp).await?;
            changes.push(format!("tagged role {name} with the stack's id"));
        }
        Some(Some(theirs)) if theirs != stamp.id => {
            crate::providers::aws::owners::owned(&format!("CI deploy role {name}"), Some(theirs), &stamp)?;
        }
        _ => {}
    }
    let wanted = RoleWanted {
        name: &name,
        policy_name: POLICY_NAME,
        policy,
        path: "/".into(),
        trust: trust.clone(),
        about: format!("GitHub Actions deploys of stack {}, managed by vcctl", ctx.settings.stack),
        trusted_by: "the repository's environment on its branch only",
    };
    for c in role::plan(&wanted, &found) {
        let said = c.line();
        if check {
            missing.push(said);
            continue;
        }
        role::apply(&aws.iam, &wanted, &c.op, &stamp).await?;
        changes.push(said);
    }
    Ok(())
}

/// What the workflow file holds: as vcctl would write it, as vcctl wrote it (an older
/// template), edited by hand, or absent.
#[derive(Debug, PartialEq)]
pub enum Workflow {
    Same,
    Absent,
    Ours,
    Edited(String),
}

/// The workflow for the stack, as vcctl writes it (its first line the hash of the rest).
pub fn workflow_text(stack: &str, region: &str, b: &Binding) -> String {
    let body = WORKFLOW
        .replace("AWS_DEPLOY_ROLE_ARN_FRANKFURT", &role_variable(stack))
        .replace("frankfurt", stack)
        .replace("aws-region: eu-central-1", &format!("aws-region: {region}"))
        .replace("branches: [main]", &format!("branches: [{}]", b.branch))
        .replace("branch `main`", &format!("branch `{}`", b.branch))
        .replace("from `main` only", &format!("from `{}` only", b.branch))
        .replace("production", &b.environment);
    format!(
        "{MARK}{}
{body}",
        sha256(&body)
    )
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Which of the four `text` (what is on disk) is, against `wanted`.
pub fn classify(text: Option<&str>, wanted: &str) -> Workflow {
    let Some(text) = text else { return Workflow::Absent };
    if text == wanted {
        return Workflow::Same;
    }
    let ours = text.split_once('\n').is_some_and(|(first, rest)| first.strip_prefix(MARK) == Some(&sha256(rest)));
    if ours { Workflow::Ours } else { Workflow::Edited(text.to_string()) }
}

/// `.github/workflows/deploy-<stack>.yml`: written when absent or vcctl's own; an edited
/// one only with `--force`, else its difference is shown and it is left alone.
fn workflow(
    ctx: &Ctx,
    a: &AwsSettings,
    b: &Binding,
    req: &Request,
    changes: &mut Vec<String>,
    missing: &mut Vec<String>,
) -> Result<String> {
    let stack = &ctx.settings.stack;
    let path = ctx.root.join(format!(".github/workflows/deploy-{stack}.yml"));
    let shown = path.strip_prefix(&ctx.root).unwrap_or(&path).display().to_string();
    let wanted = workflow_text(stack, &a.region(), b);
    let on_disk = std::fs::read_to_string(&path).ok();
    let state = classify(on_disk.as_deref(), &wanted);
    match (&state, req.check, req.force) {
        (Workflow::Same, _, _) => return Ok(shown),
        (_, true, _) => {
            missing.push(format!("`{shown}` is not what vcctl would write"));
            return Ok(shown);
        }
        (Workflow::Edited(old), false, false) => {
            ctx.printer.info(format!("`{shown}` was edited by hand; what vcctl would change:\n{}", diff(old, &wanted)));
            return Err(Failure::invalid(
                format!("`{shown}` was edited by hand: vcctl leaves it as it is"),
                Some("keep your edits, or run `vcctl ci init` again with --force to replace it".into()),
            )
            .into());
        }
        _ => {}
    }
    std::fs::create_dir_all(path.parent().expect("a parent"))
        .with_context(|| format!("creating `{}`", path.display()))?;
    std::fs::write(&path, &wanted).with_context(|| format!("writing `{}`", path.display()))?;
    changes.push(format!("wrote `{shown}`"));
    Ok(shown)
}

/// A line diff of `old` and `new` (`-` and `+` lines, common ones left out), bounded.
pub fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence, over at most 2000 lines each (a workflow is ~100).
    let (n, m) = (a.len().min(2000), b.len().min(2000));
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out.join("\n")
}

/// What GitHub's side needs: applied with a token; otherwise the commands, to run by hand.
async fn github_side(
    b: &Binding,
    req: &Request,
    changes: &mut Vec<String>,
    missing: &mut Vec<String>,
) -> Result<Vec<String>> {
    let Some(token) = &req.github_token else {
        if req.check {
            missing.push("GitHub's side could not be checked: no GH_TOKEN, GITHUB_TOKEN or `gh auth token`".into());
        }
        return Ok(github::steps(b, &github::Found::default()).iter().map(github::gh_command).collect());
    };
    let gh = github::GitHub::new(token.clone())?;
    let steps = github::steps(b, &gh.survey(b).await?);
    for step in &steps {
        if req.check {
            missing.push(format!("GitHub: {}", step.why));
            continue;
        }
        gh.apply(step).await?;
        changes.push(format!("GitHub: {}", step.why));
    }
    Ok(Vec::new())
}

/// What `init` did and found, for the report.
struct Done {
    role_arn: String,
    workflow: String,
    changes: Vec<String>,
    missing: Vec<String>,
    /// The `gh api` commands to run by hand, when no GitHub token was at hand.
    gh_commands: Vec<String>,
    key: Option<String>,
}

fn report(ctx: &Ctx, req: &Request, d: &Done) {
    let (p, b, stack) = (&ctx.printer, &req.binding, &ctx.settings.stack);
    let variable = role_variable(stack);
    p.json(&json!({
        "stack": stack, "changed": !d.changes.is_empty(), "changes": d.changes, "missing": d.missing,
        "role_arn": d.role_arn, "role_variable": variable, "workflow": d.workflow,
        "environment": b.environment, "branch": b.branch, "subject": b.subject(),
        "github_commands": d.gh_commands,
    }));
    for c in &d.changes {
        p.info(format!("  {c}"));
    }
    if req.check {
        for m in &d.missing {
            p.info(format!("  missing: {m}"));
        }
        p.out(match d.missing.len() {
            0 => "bound: the deploy role, the workflow and GitHub's side are as they should be".to_string(),
            n => format!("{n} thing(s) not as they should be; `vcctl ci init` without --check repairs them"),
        });
        return;
    }
    if d.changes.is_empty() {
        p.info("nothing to change: the OIDC provider, the deploy role, the workflow and GitHub's side are as they should be");
    }
    let env = shell_quote(&b.environment);
    let key = d.key.as_deref().map_or_else(|| "KEY".to_string(), shell_quote);
    let mut todo = vec![
        format!("variable {variable}: gh variable set {variable} --body {}", d.role_arn),
        format!("secret VCCTL_SSH_KEY of environment {env}: gh secret set VCCTL_SSH_KEY --env {env} < {key}"),
    ];
    if !d.gh_commands.is_empty() {
        todo.push(format!(
            "bind environment {env} to branch `{}` (with GH_TOKEN set, or after `gh auth login`, vcctl does it):\n{}",
            b.branch,
            d.gh_commands.join("\n")
        ));
    }
    let numbered: Vec<String> = todo.iter().enumerate().map(|(i, t)| format!("  {}. {t}", i + 1)).collect();
    p.out(format!("Still to do on GitHub:\n{}", numbered.join("\n")));
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./~".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A name GitHub accepts and that stays one word where vcctl writes it (YAML, a path, a
/// subject): no control character, and nothing of `more`'s characters but those allowed.
fn check_name(flag: &str, value: &str, allowed: &str) -> Result<(), Failure> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || allowed.contains(c))
        && !value.starts_with(['-', '.', ' ']);
    if ok {
        return Ok(());
    }
    Err(Failure::invalid(
        format!(
            "{flag} {value:?} is not a name vcctl can bind: letters, digits, `-`, `_`, `.`{}",
            if allowed.is_empty() { String::new() } else { format!(" and {allowed:?}") }
        ),
        Some(format!("e.g. {flag} {}", if flag == "--branch" { "main" } else { "production" })),
    ))
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
