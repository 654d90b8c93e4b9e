//! A role vcctl makes, the same way for every role (the box's host role, a group's app
//! role, the CI deploy role): exactly its trust policy, one inline least-privilege policy,
//! nothing else attached. Planned into `Change<RoleOp>` and applied op by op, so drift is
//! repaired alike everywhere: a trust policy changed by hand, our policy changed or gone,
//! and any policy attached by hand, inline or managed. The caller checks the role's owner
//! (its stack-id tag) before it plans.

use anyhow::Result;
use serde_json::Value;

use crate::cloud::aws::Stamp;
use crate::cloud::aws::iam::{self, IamRole};
use crate::plan::{Action, Change};

/// What the stack wants of a role.
pub struct RoleWanted<'a> {
    pub name: &'a str,
    pub policy_name: &'a str,
    pub policy: &'a Value,
    /// The IAM path (`/vcctl/<stack>/` for instance roles, `/` for the CI deploy role).
    pub path: String,
    /// Who may assume it.
    pub trust: Value,
    /// Its description, and who trusts it, in a few words.
    pub about: String,
    pub trusted_by: &'static str,
}

impl<'a> RoleWanted<'a> {
    /// An instance role: trusted by EC2 only, under the stack's path.
    pub fn instance(stack: &str, name: &'a str, policy_name: &'a str, policy: &'a Value) -> RoleWanted<'a> {
        RoleWanted {
            name,
            policy_name,
            policy,
            path: iam::path(stack),
            trust: iam::trust_policy(),
            about: format!("VehicleConnect host of stack {stack}, managed by vcctl"),
            trusted_by: "ec2.amazonaws.com only",
        }
    }
}

impl<'a> RoleWanted<'a> {
    /// The role AWS Backup works as (`aws.backup`): trusted by AWS Backup only.
    pub fn backup(stack: &str, name: &'a str, policy_name: &'a str, policy: &'a Value) -> RoleWanted<'a> {
        RoleWanted {
            name,
            policy_name,
            policy,
            path: iam::path(stack),
            trust: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]
            }),
            about: format!("AWS Backup of stack {stack}'s data volume, managed by vcctl"),
            trusted_by: "backup.amazonaws.com only",
        }
    }
}

/// What exists of a role: itself, our inline policy, and every other policy on it.
#[derive(Debug, Clone, Default)]
pub struct RoleFound {
    pub role: Option<IamRole>,
    pub policy: Option<Value>,
    pub others: Vec<String>,
}

impl RoleFound {
    pub fn exists(&self) -> bool {
        self.role.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleOp {
    Create,
    RestoreTrust,
    PutPolicy,
    RemovePolicy(String),
}

impl RoleOp {
    /// A stable name, for fault injection in tests.
    pub fn name(&self) -> &'static str {
        match self {
            RoleOp::Create => "role",
            RoleOp::RestoreTrust => "trust",
            RoleOp::PutPolicy => "policy",
            RoleOp::RemovePolicy(_) => "remove_policy",
        }
    }
}

pub async fn survey(iam: &aws_sdk_iam::Client, name: &str, policy_name: &str) -> Result<RoleFound> {
    let Some(role) = iam::get_role(iam, name).await? else { return Ok(RoleFound::default()) };
    Ok(RoleFound {
        role: Some(role),
        policy: iam::get_role_policy(iam, name, policy_name).await?,
        others: iam::other_policies(iam, name, policy_name).await?,
    })
}

/// What the policy allows, in a few words: its statements' ids.
fn summary(policy: &Value) -> String {
    let statements = policy["Statement"].as_array().map(Vec::as_slice).unwrap_or_default();
    let sids: Vec<&str> = statements.iter().filter_map(|s| s["Sid"].as_str()).collect();
    match sids.is_empty() {
        true => format!("{} statement(s)", statements.len()),
        false => sids.join(", "),
    }
}

/// The changes that make the role what `w` says, in the order they apply.
pub fn plan(w: &RoleWanted<'_>, f: &RoleFound) -> Vec<Change<RoleOp>> {
    let change = |action, resource: String, detail: String, op| Change { action, resource, detail, op };
    let (role, policy) = (format!("IAM role {}", w.name), format!("inline policy {}", w.policy_name));
    let Some(found) = &f.role else {
        return vec![
            change(Action::Create, role, format!("path {}, trusted by {}", w.path, w.trusted_by), RoleOp::Create),
            change(Action::Create, policy, format!("least privilege: {}", summary(w.policy)), RoleOp::PutPolicy),
        ];
    };
    let mut out = Vec::new();
    if found.trust != w.trust {
        let detail = format!("trust policy changed outside vcctl; restore {}", w.trusted_by);
        out.push(change(Action::Update, role, detail, RoleOp::RestoreTrust));
    }
    if f.policy.as_ref() != Some(w.policy) {
        let what = if f.policy.is_none() { "missing" } else { "changed outside vcctl" };
        out.push(change(Action::Update, policy, format!("{what}; restore least privilege"), RoleOp::PutPolicy));
    }
    for p in &f.others {
        let detail = "not vcctl's: the role stays least-privilege".to_string();
        out.push(change(Action::Delete, format!("policy {p} on {}", w.name), detail, RoleOp::RemovePolicy(p.clone())));
    }
    out
}

/// Carries out one planned operation.
pub async fn apply(iam: &aws_sdk_iam::Client, w: &RoleWanted<'_>, op: &RoleOp, stamp: &Stamp) -> Result<()> {
    match op {
        RoleOp::Create => iam::create_role(iam, w.name, &w.path, &w.trust, &w.about, stamp).await,
        RoleOp::RestoreTrust => iam::set_trust(iam, w.name, &w.trust).await,
        RoleOp::PutPolicy => iam::put_role_policy(iam, w.name, w.policy_name, w.policy).await,
        RoleOp::RemovePolicy(p) => iam::remove_policy(iam, w.name, p).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted(policy: &Value) -> RoleWanted<'_> {
        RoleWanted::instance("fra", "vcctl-fra-app", "vcctl-fra-app-least-privilege", policy)
    }

    fn ops(changes: &[Change<RoleOp>]) -> Vec<RoleOp> {
        changes.iter().map(|c| c.op.clone()).collect()
    }

    #[test]
    fn a_role_is_made_with_its_policy_and_drift_of_every_kind_is_repaired() {
        let policy = json!({"Statement": [{"Sid": "ReadTheBucket"}, {"Sid": "Metrics"}]});
        let none = RoleFound::default();
        let made = plan(&wanted(&policy), &none);
        assert_eq!(ops(&made), [RoleOp::Create, RoleOp::PutPolicy]);
        assert_eq!(made[1].detail, "least privilege: ReadTheBucket, Metrics");
        let owner = crate::cloud::aws::Owner::default();
        let fine = RoleFound {
            role: Some(IamRole { trust: iam::trust_policy(), owner: owner.clone() }),
            policy: Some(policy.clone()),
            others: vec![],
        };
        assert!(plan(&wanted(&policy), &fine).is_empty());
        let drifted = RoleFound {
            role: Some(IamRole { trust: json!({"Statement": []}), owner }),
            policy: None,
            others: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into(), "by-hand".into()],
        };
        assert_eq!(
            ops(&plan(&wanted(&policy), &drifted)),
            [
                RoleOp::RestoreTrust,
                RoleOp::PutPolicy,
                RoleOp::RemovePolicy("arn:aws:iam::aws:policy/AdministratorAccess".into()),
                RoleOp::RemovePolicy("by-hand".into()),
            ]
        );
    }
}
