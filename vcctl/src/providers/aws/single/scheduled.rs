//! The box's scheduled backups (`aws.backup`, on by default): an AWS Backup vault, a plan
//! with a daily and a weekly rule, a selection that picks the stack's data volume by its
//! tags (so a volume swapped in by `vcctl restore` is picked too), the role AWS Backup
//! works as, and with `lock_days` a vault lock. Planned purely like the rest of the box;
//! `destroy` deletes the plan, the selection and the role, and keeps the vault and its
//! recovery points unless asked (`--delete-backups`).

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cloud::aws::backup::{self, Plan, RecoveryPoint, Rule, Selection, Vault};
use crate::cloud::aws::iam;
use crate::cloud::aws::volume::TAG_ROLE;
use crate::cloud::aws::{Aws, Stamp, TAG_STACK_ID};
use crate::plan::{Action, Change};
use crate::providers::aws::names::BoxNames;
use crate::providers::aws::role::{self, RoleFound, RoleOp, RoleWanted};
use crate::stack::BackupSettings;

/// Days a new vault lock can still be removed (AWS's minimum cooling-off period): a lock
/// set by mistake is undone by `up` within them, never after.
pub const LOCK_CHANGEABLE_DAYS: i64 = 3;
/// When the rules run (UTC): daily at 03:00, weekly on Sundays at 04:00.
const DAILY: &str = "cron(0 3 * * ? *)";
const WEEKLY: &str = "cron(0 4 ? * SUN *)";
const SELECTION: &str = "data";

#[derive(Debug, Clone)]
pub struct BackupWanted {
    pub settings: BackupSettings,
    pub vault: String,
    pub plan: String,
    pub role: String,
    pub role_policy: String,
    pub role_arn: String,
    pub policy: Value,
    pub stack: String,
    pub stack_id: String,
}

impl BackupWanted {
    pub fn of(stack: &str, stack_id: &str, account: &str, settings: BackupSettings) -> BackupWanted {
        let n = BoxNames::of(stack);
        BackupWanted {
            role_arn: format!("arn:aws:iam::{account}:role{}{}", iam::path(stack), n.backup_role),
            policy: role_policy(stack),
            settings,
            vault: n.backup_vault,
            plan: n.backup_plan,
            role: n.backup_role,
            role_policy: n.backup_policy,
            stack: stack.to_string(),
            stack_id: stack_id.to_string(),
        }
    }

    pub fn role_wanted(&self) -> RoleWanted<'_> {
        RoleWanted::backup(&self.stack, &self.role, &self.role_policy, &self.policy)
    }

    pub fn rules(&self) -> Vec<Rule> {
        let s = &self.settings;
        vec![
            Rule { name: "daily".into(), schedule: DAILY.into(), delete_after_days: s.daily.into() },
            Rule { name: "weekly".into(), schedule: WEEKLY.into(), delete_after_days: i64::from(s.weekly) * 7 },
        ]
    }

    /// The selection: the stack's data volume, by its stack id and role tags.
    pub fn selection(&self) -> Selection {
        Selection {
            id: String::new(),
            name: SELECTION.into(),
            role_arn: self.role_arn.clone(),
            resources: vec!["arn:aws:ec2:*:*:volume/*".into()],
            tags: vec![
                (format!("aws:ResourceTag/{TAG_ROLE}"), "data".into()),
                (format!("aws:ResourceTag/{TAG_STACK_ID}"), self.stack_id.clone()),
            ],
        }
    }
}

/// What AWS Backup needs to snapshot an EBS volume and expire its snapshots: only the
/// stack's volumes and the snapshots made of them.
fn role_policy(stack: &str) -> Value {
    let of_stack = json!({"StringEquals": {"aws:ResourceTag/vcctl:stack": stack}});
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SnapshotItsVolumes", "Effect": "Allow", "Action": "ec2:CreateSnapshot",
             "Resource": "arn:aws:ec2:*:*:volume/*", "Condition": of_stack},
            {"Sid": "MakeSnapshots", "Effect": "Allow", "Action": ["ec2:CreateSnapshot", "ec2:CreateTags"],
             "Resource": "arn:aws:ec2:*::snapshot/*"},
            {"Sid": "ExpireItsSnapshots", "Effect": "Allow", "Action": "ec2:DeleteSnapshot",
             "Resource": "arn:aws:ec2:*::snapshot/*", "Condition": of_stack},
            {"Sid": "Find", "Effect": "Allow", "Resource": "*",
             "Action": ["ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:DescribeTags", "tag:GetResources"]},
            {"Sid": "ItsVault", "Effect": "Allow", "Action": ["backup:DescribeBackupVault", "backup:CopyIntoBackupVault"],
             "Resource": format!("arn:aws:backup:*:*:backup-vault:vcctl-{stack}")}
        ]
    })
}

#[derive(Debug, Clone, Default)]
pub struct BackupFound {
    pub role: RoleFound,
    pub vault: Option<Vault>,
    pub plan: Option<Plan>,
    pub selections: Vec<Selection>,
}

impl BackupFound {
    pub fn is_empty(&self) -> bool {
        !self.role.exists() && self.vault.is_none() && self.plan.is_none()
    }
}

pub async fn find(aws: &Aws, n: &BoxNames) -> Result<BackupFound> {
    let plan = backup::find_plan(&aws.backup, &n.backup_plan).await?;
    let selections = match &plan {
        Some(p) => backup::selections(&aws.backup, &p.id).await?,
        None => Vec::new(),
    };
    Ok(BackupFound {
        role: role::survey(&aws.iam, &n.backup_role, &n.backup_policy).await?,
        vault: backup::find_vault(&aws.backup, &n.backup_vault).await?,
        plan,
        selections,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackupOp {
    Role(RoleOp),
    CreateVault,
    LockVault(i64),
    UnlockVault,
    CreatePlan,
    UpdatePlan,
    CreateSelection,
    DeleteSelection(String),
    DeletePlan,
    DeleteRole,
}

impl BackupOp {
    pub fn name(&self) -> &'static str {
        match self {
            BackupOp::Role(_) => "backup_role",
            BackupOp::CreateVault => "backup_vault",
            BackupOp::LockVault(_) | BackupOp::UnlockVault => "backup_vault_lock",
            BackupOp::CreatePlan | BackupOp::UpdatePlan => "backup_plan",
            BackupOp::CreateSelection | BackupOp::DeleteSelection(_) => "backup_selection",
            BackupOp::DeletePlan => "delete_backup_plan",
            BackupOp::DeleteRole => "delete_backup_role",
        }
    }
}

fn change(action: Action, resource: String, detail: String, op: BackupOp) -> Change<BackupOp> {
    Change { action, resource, detail, op }
}

/// The changes that make the backups what the stack says (`None`: `aws.backup: false`,
/// whose plan and selection go; the vault and its recovery points stay). Pure.
pub fn plan(w: Option<&BackupWanted>, f: &BackupFound, n: &BoxNames) -> Vec<Change<BackupOp>> {
    let Some(w) = w else { return plan_off(f, n) };
    let mut out: Vec<Change<BackupOp>> = role::plan(&w.role_wanted(), &f.role)
        .into_iter()
        .map(|c| change(c.action, c.resource, c.detail, BackupOp::Role(c.op)))
        .collect();
    plan_vault(w, f, &mut out);
    let rules = w.rules();
    let describe = |r: &[Rule]| {
        r.iter().map(|r| format!("{} kept {} days", r.name, r.delete_after_days)).collect::<Vec<_>>().join(", ")
    };
    match &f.plan {
        None => {
            out.push(change(Action::Create, format!("backup plan {}", w.plan), describe(&rules), BackupOp::CreatePlan))
        }
        Some(p) if p.rules != rules || p.vault != w.vault => out.push(change(
            Action::Update,
            format!("backup plan {}", w.plan),
            format!("{} (was: {})", describe(&rules), describe(&p.rules)),
            BackupOp::UpdatePlan,
        )),
        Some(_) => {}
    }
    let wanted = w.selection();
    let same = |s: &Selection| {
        s.name == wanted.name
            && s.role_arn == wanted.role_arn
            && s.tags == wanted.tags
            && s.resources == wanted.resources
    };
    for s in f.selections.iter().filter(|s| !same(s)) {
        let detail = "not the stack's selection (AWS Backup selections cannot be changed: replaced)".to_string();
        out.push(change(
            Action::Delete,
            format!("backup selection {}", s.name),
            detail,
            BackupOp::DeleteSelection(s.id.clone()),
        ));
    }
    if !f.selections.iter().any(same) {
        let detail = format!("the data volume, by its tags {TAG_STACK_ID}={} and {TAG_ROLE}=data", w.stack_id);
        out.push(change(
            Action::Create,
            format!("backup selection {}", wanted.name),
            detail,
            BackupOp::CreateSelection,
        ));
    }
    out
}

fn plan_vault(w: &BackupWanted, f: &BackupFound, out: &mut Vec<Change<BackupOp>>) {
    let resource = format!("backup vault {}", w.vault);
    let found_lock = f.vault.as_ref().and_then(|v| v.lock_days);
    if f.vault.is_none() {
        out.push(change(
            Action::Create,
            resource.clone(),
            "where the recovery points are kept".into(),
            BackupOp::CreateVault,
        ));
    }
    match (w.settings.lock_days.map(i64::from), found_lock) {
        (Some(days), found) if found != Some(days) => out.push(change(
            Action::Update,
            resource,
            format!(
                "vault lock: no recovery point deleted before {days} days (compliance mode: removable for \
                 {LOCK_CHANGEABLE_DAYS} days, then never)"
            ),
            BackupOp::LockVault(days),
        )),
        (None, Some(days)) => out.push(change(
            Action::Update,
            resource,
            format!("remove the vault lock of {days} days (AWS refuses once its cooling-off period is over)"),
            BackupOp::UnlockVault,
        )),
        _ => {}
    }
}

fn plan_off(f: &BackupFound, n: &BoxNames) -> Vec<Change<BackupOp>> {
    let mut out = Vec::new();
    if let Some(p) = &f.plan {
        for s in &f.selections {
            let detail = "aws.backup: false".to_string();
            out.push(change(
                Action::Delete,
                format!("backup selection {}", s.name),
                detail,
                BackupOp::DeleteSelection(s.id.clone()),
            ));
        }
        let kept = f.vault.as_ref().map_or(String::new(), |v| {
            format!("; vault {} and its {} recovery point(s) are kept", v.name, v.recovery_points)
        });
        out.push(change(
            Action::Delete,
            format!("backup plan {}", p.name),
            format!("aws.backup: false{kept}"),
            BackupOp::DeletePlan,
        ));
    }
    if f.role.exists() {
        out.push(change(
            Action::Delete,
            format!("IAM role {}", n.backup_role),
            "aws.backup: false".into(),
            BackupOp::DeleteRole,
        ));
    }
    out
}

/// Carries out one planned operation; `plan_id` is the plan's id, learnt when it is made.
pub async fn apply(
    aws: &Aws,
    w: Option<&BackupWanted>,
    op: &BackupOp,
    plan_id: &mut Option<String>,
    stamp: &Stamp,
) -> Result<()> {
    let n = BoxNames::of(&stamp.stack);
    let wanted = || w.context("aws.backup is off");
    match op {
        BackupOp::Role(op) => role::apply(&aws.iam, &wanted()?.role_wanted(), op, stamp).await?,
        BackupOp::CreateVault => backup::create_vault(&aws.backup, &n.backup_vault, stamp).await?,
        BackupOp::LockVault(days) => {
            backup::lock_vault(&aws.backup, &n.backup_vault, *days, LOCK_CHANGEABLE_DAYS).await?
        }
        BackupOp::UnlockVault => backup::unlock_vault(&aws.backup, &n.backup_vault).await?,
        BackupOp::CreatePlan => {
            let w = wanted()?;
            *plan_id = Some(backup::create_plan(&aws.backup, &w.plan, &w.vault, &w.rules(), stamp).await?);
        }
        BackupOp::UpdatePlan => {
            let w = wanted()?;
            backup::update_plan(
                &aws.backup,
                plan_id.as_deref().context("no backup plan")?,
                &w.plan,
                &w.vault,
                &w.rules(),
            )
            .await?
        }
        BackupOp::CreateSelection => {
            let id = plan_id.as_deref().context("no backup plan")?;
            backup::create_selection(&aws.backup, id, &wanted()?.selection()).await?
        }
        BackupOp::DeleteSelection(sid) => {
            backup::delete_selection(&aws.backup, plan_id.as_deref().context("no backup plan")?, sid).await?
        }
        BackupOp::DeletePlan => backup::delete_plan(&aws.backup, plan_id.as_deref().context("no backup plan")?).await?,
        BackupOp::DeleteRole => iam::delete_role(&aws.iam, &n.backup_role).await?,
    }
    Ok(())
}

/// What `destroy` deletes of the backups: the selections and the plan (so nothing new is
/// made), and the role; the vault when empty, or with `--delete-backups` after its
/// recovery points.
pub(super) async fn delete(
    d: &mut super::Deletions<'_>,
    aws: &Aws,
    f: &BackupFound,
    n: &BoxNames,
    with_points: &[RecoveryPoint],
    delete_vault: bool,
) {
    if let Some(p) = &f.plan {
        for s in &f.selections {
            d.attempt(format!("backup selection {}", s.name), backup::delete_selection(&aws.backup, &p.id, &s.id))
                .await;
        }
        d.attempt(format!("backup plan {}", p.name), backup::delete_plan(&aws.backup, &p.id)).await;
    }
    if f.role.exists() {
        d.attempt(format!("IAM role {}", n.backup_role), iam::delete_role(&aws.iam, &n.backup_role)).await;
    }
    // An empty vault protects nothing: it goes with the stack, asked or not.
    let Some(v) = f.vault.as_ref().filter(|_| delete_vault || with_points.is_empty()) else { return };
    let mut all_gone = true;
    for p in with_points {
        let what = format!("recovery point {} of {}", p.snapshot.as_deref().unwrap_or(&p.arn), p.created);
        all_gone &= d.attempt(what, backup::delete_recovery_point(&aws.backup, &v.name, &p.arn)).await;
    }
    if all_gone {
        d.attempt(format!("backup vault {}", v.name), backup::delete_vault(&aws.backup, &v.name)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::{Owner, iam::IamRole};

    fn wanted(settings: BackupSettings) -> BackupWanted {
        BackupWanted::of("fra", "0123456789abcdef", "123456789012", settings)
    }

    /// What `up` left: everything as wanted.
    fn made(w: &BackupWanted) -> BackupFound {
        BackupFound {
            role: RoleFound {
                role: Some(IamRole { trust: w.role_wanted().trust, owner: Owner::default() }),
                policy: Some(w.policy.clone()),
                others: vec![],
            },
            vault: Some(Vault {
                name: w.vault.clone(),
                arn: "arn:aws:backup:eu-central-1:123456789012:backup-vault:vcctl-fra".into(),
                recovery_points: 3,
                lock_days: w.settings.lock_days.map(i64::from),
                owner: Owner::default(),
            }),
            plan: Some(Plan {
                id: "p-1".into(),
                arn: "arn:aws:backup:eu-central-1:123456789012:backup-plan:p-1".into(),
                name: w.plan.clone(),
                vault: w.vault.clone(),
                rules: w.rules(),
                owner: Owner::default(),
            }),
            selections: vec![Selection { id: "s-1".into(), ..w.selection() }],
        }
    }

    fn ops(changes: &[Change<BackupOp>]) -> Vec<BackupOp> {
        changes.iter().map(|c| c.op.clone()).collect()
    }

    #[test]
    fn an_empty_account_gets_the_role_vault_lock_plan_and_selection_in_order() {
        let w = wanted(BackupSettings { lock_days: Some(5), ..BackupSettings::default() });
        let changes = plan(Some(&w), &BackupFound::default(), &BoxNames::of("fra"));
        assert_eq!(
            ops(&changes),
            [
                BackupOp::Role(RoleOp::Create),
                BackupOp::Role(RoleOp::PutPolicy),
                BackupOp::CreateVault,
                BackupOp::LockVault(5),
                BackupOp::CreatePlan,
                BackupOp::CreateSelection
            ]
        );
        assert_eq!(changes[4].detail, "daily kept 7 days, weekly kept 28 days");
        assert!(changes[5].detail.contains("vcctl:stack-id=0123456789abcdef"), "{}", changes[5].detail);
        assert!(plan(Some(&w), &made(&w), &BoxNames::of("fra")).is_empty(), "what up made needs nothing");
    }

    #[test]
    fn drift_is_repaired_and_off_removes_the_plan_but_keeps_the_vault() {
        let w = wanted(BackupSettings::default());
        let mut found = made(&w);
        found.plan.as_mut().unwrap().rules[0].delete_after_days = 3;
        found.selections[0].role_arn = "arn:aws:iam::123456789012:role/by-hand".into();
        found.vault.as_mut().unwrap().lock_days = Some(9);
        let n = BoxNames::of("fra");
        assert_eq!(
            ops(&plan(Some(&w), &found, &n)),
            [
                BackupOp::UnlockVault,
                BackupOp::UpdatePlan,
                BackupOp::DeleteSelection("s-1".into()),
                BackupOp::CreateSelection
            ]
        );
        let off = plan(None, &made(&w), &n);
        assert_eq!(ops(&off), [BackupOp::DeleteSelection("s-1".into()), BackupOp::DeletePlan, BackupOp::DeleteRole]);
        assert!(off[1].detail.contains("vault vcctl-fra and its 3 recovery point(s) are kept"), "{}", off[1].detail);
        assert!(plan(None, &BackupFound::default(), &n).is_empty());
    }
}
