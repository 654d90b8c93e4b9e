//! AWS Backup: the box's vault, its plan (daily and weekly rules), the selection that
//! picks the data volume by its tags, the vault lock, and the recovery points the plan
//! makes. An EBS recovery point is an EBS snapshot carrying the volume's tags, so
//! `vcctl restore snap-…` restores a scheduled backup as it does an on-demand one.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupPlanInput, BackupRuleInput, BackupSelection, ConditionParameter, Conditions, Lifecycle,
};
use serde::Serialize;

use super::{Owner, Stamp, code_of, error};

#[derive(Debug, Clone, Serialize)]
pub struct Vault {
    pub name: String,
    pub arn: String,
    pub recovery_points: i64,
    /// The vault lock's minimum retention, when locked.
    pub lock_days: Option<i64>,
    #[serde(skip)]
    pub owner: Owner,
}

/// One rule of a plan as vcctl writes it: a schedule and how long its points are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub name: String,
    pub schedule: String,
    pub delete_after_days: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub vault: String,
    pub rules: Vec<Rule>,
    #[serde(skip)]
    pub owner: Owner,
}

/// A selection as vcctl reads it back: its role and the tag conditions it picks by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub id: String,
    pub name: String,
    pub role_arn: String,
    pub resources: Vec<String>,
    /// `StringEquals` conditions, `(tag key, value)`, sorted.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPoint {
    pub arn: String,
    /// The EBS snapshot it is (`snap-…`), for `vcctl restore`.
    pub snapshot: Option<String>,
    pub created: String,
    pub status: String,
    pub size_gb: f64,
    /// The plan that made it; `None`: an on-demand job.
    pub plan_id: Option<String>,
    /// When AWS Backup deletes it.
    pub delete_at: Option<String>,
}

/// As the EC2 wrappers write times (RFC 3339), so snapshots and recovery points sort together.
fn ts(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.map(|t| t.to_string())
}

fn not_found<E, R>(e: &aws_sdk_backup::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_backup::error::ProvideErrorMetadata,
{
    code_of(e) == Some("ResourceNotFoundException")
}

async fn owner(backup: &Client, arn: &str) -> Result<Owner> {
    let out = backup
        .list_tags()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| error("backup:ListTags", &format!("reading the tags of {arn}"), e))?;
    let tags = out.tags().cloned().unwrap_or_default();
    Ok(Owner::from_tags(tags.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))))
}

fn tag_map(stamp: &Stamp) -> HashMap<String, String> {
    stamp.pairs().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Tags a vault or plan an older vcctl made with the stack's id.
pub async fn tag(backup: &Client, arn: &str, stamp: &Stamp) -> Result<()> {
    backup
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tag_map(stamp)))
        .send()
        .await
        .map_err(|e| error("backup:TagResource", &format!("tagging {arn}"), e))?;
    Ok(())
}

pub async fn find_vault(backup: &Client, name: &str) -> Result<Option<Vault>> {
    let out = match backup.describe_backup_vault().backup_vault_name(name).send().await {
        Ok(out) => out,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(error("backup:DescribeBackupVault", &format!("looking up backup vault {name}"), e)),
    };
    let arn = out.backup_vault_arn().unwrap_or_default().to_string();
    Ok(Some(Vault {
        name: name.to_string(),
        recovery_points: out.number_of_recovery_points(),
        lock_days: out.locked().unwrap_or(false).then(|| out.min_retention_days()).flatten(),
        owner: owner(backup, &arn).await?,
        arn,
    }))
}

pub async fn create_vault(backup: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    backup
        .create_backup_vault()
        .backup_vault_name(name)
        .set_backup_vault_tags(Some(tag_map(stamp)))
        .send()
        .await
        .map_err(|e| error("backup:CreateBackupVault", &format!("creating backup vault {name}"), e))?;
    Ok(())
}

/// Compliance mode: the lock can be removed for `changeable_days`, then never.
pub async fn lock_vault(backup: &Client, name: &str, days: i64, changeable_days: i64) -> Result<()> {
    backup
        .put_backup_vault_lock_configuration()
        .backup_vault_name(name)
        .min_retention_days(days)
        .changeable_for_days(changeable_days)
        .send()
        .await
        .map_err(|e| error("backup:PutBackupVaultLockConfiguration", &format!("locking backup vault {name}"), e))?;
    Ok(())
}

pub async fn unlock_vault(backup: &Client, name: &str) -> Result<()> {
    backup.delete_backup_vault_lock_configuration().backup_vault_name(name).send().await.map_err(|e| {
        error("backup:DeleteBackupVaultLockConfiguration", &format!("removing the lock of backup vault {name}"), e)
    })?;
    Ok(())
}

pub async fn delete_vault(backup: &Client, name: &str) -> Result<()> {
    backup
        .delete_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .map_err(|e| error("backup:DeleteBackupVault", &format!("deleting backup vault {name}"), e))?;
    Ok(())
}

/// The live plan named `name`, with its rules.
pub async fn find_plan(backup: &Client, name: &str) -> Result<Option<Plan>> {
    let list = backup
        .list_backup_plans()
        .send()
        .await
        .map_err(|e| error("backup:ListBackupPlans", "listing backup plans", e))?;
    let Some(id) = list
        .backup_plans_list()
        .iter()
        .find(|p| p.backup_plan_name() == Some(name) && p.deletion_date().is_none())
        .and_then(|p| p.backup_plan_id())
    else {
        return Ok(None);
    };
    let out = backup
        .get_backup_plan()
        .backup_plan_id(id)
        .send()
        .await
        .map_err(|e| error("backup:GetBackupPlan", &format!("reading backup plan {name}"), e))?;
    let rules = out.backup_plan().map(|p| p.rules()).unwrap_or_default();
    let arn = out.backup_plan_arn().unwrap_or_default().to_string();
    Ok(Some(Plan {
        id: id.to_string(),
        name: name.to_string(),
        vault: rules.first().map(|r| r.target_backup_vault_name().to_string()).unwrap_or_default(),
        rules: rules
            .iter()
            .map(|r| Rule {
                name: r.rule_name().to_string(),
                schedule: r.schedule_expression().unwrap_or_default().to_string(),
                delete_after_days: r.lifecycle().and_then(|l| l.delete_after_days()).unwrap_or(0),
            })
            .collect(),
        owner: owner(backup, &arn).await?,
        arn,
    }))
}

fn plan_input(name: &str, vault: &str, rules: &[Rule]) -> Result<BackupPlanInput> {
    let rules = rules
        .iter()
        .map(|r| {
            BackupRuleInput::builder()
                .rule_name(&r.name)
                .target_backup_vault_name(vault)
                .schedule_expression(&r.schedule)
                .lifecycle(Lifecycle::builder().delete_after_days(r.delete_after_days).build())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BackupPlanInput::builder().backup_plan_name(name).set_rules(Some(rules)).build()?)
}

pub async fn create_plan(backup: &Client, name: &str, vault: &str, rules: &[Rule], stamp: &Stamp) -> Result<String> {
    let out = backup
        .create_backup_plan()
        .backup_plan(plan_input(name, vault, rules)?)
        .set_backup_plan_tags(Some(tag_map(stamp)))
        .send()
        .await
        .map_err(|e| error("backup:CreateBackupPlan", &format!("creating backup plan {name}"), e))?;
    Ok(out.backup_plan_id().unwrap_or_default().to_string())
}

pub async fn update_plan(backup: &Client, id: &str, name: &str, vault: &str, rules: &[Rule]) -> Result<()> {
    backup
        .update_backup_plan()
        .backup_plan_id(id)
        .backup_plan(plan_input(name, vault, rules)?)
        .send()
        .await
        .map_err(|e| error("backup:UpdateBackupPlan", &format!("updating backup plan {name}"), e))?;
    Ok(())
}

pub async fn delete_plan(backup: &Client, id: &str) -> Result<()> {
    backup
        .delete_backup_plan()
        .backup_plan_id(id)
        .send()
        .await
        .map_err(|e| error("backup:DeleteBackupPlan", &format!("deleting backup plan {id}"), e))?;
    Ok(())
}

pub async fn selections(backup: &Client, plan_id: &str) -> Result<Vec<Selection>> {
    let list = backup
        .list_backup_selections()
        .backup_plan_id(plan_id)
        .send()
        .await
        .map_err(|e| error("backup:ListBackupSelections", "listing the plan's selections", e))?;
    let mut out = Vec::new();
    for s in list.backup_selections_list() {
        let id = s.selection_id().unwrap_or_default();
        let got = backup
            .get_backup_selection()
            .backup_plan_id(plan_id)
            .selection_id(id)
            .send()
            .await
            .map_err(|e| error("backup:GetBackupSelection", &format!("reading backup selection {id}"), e))?;
        let Some(sel) = got.backup_selection() else { continue };
        let mut tags: Vec<(String, String)> = sel
            .conditions()
            .map(|c| c.string_equals())
            .unwrap_or_default()
            .iter()
            .map(|c| (c.condition_key().unwrap_or_default().into(), c.condition_value().unwrap_or_default().into()))
            .collect();
        tags.sort();
        out.push(Selection {
            id: id.to_string(),
            name: sel.selection_name().to_string(),
            role_arn: sel.iam_role_arn().to_string(),
            resources: sel.resources().to_vec(),
            tags,
        });
    }
    Ok(out)
}

pub async fn create_selection(backup: &Client, plan_id: &str, s: &Selection) -> Result<()> {
    let conditions = Conditions::builder()
        .set_string_equals(Some(
            s.tags
                .iter()
                .map(|(k, v)| ConditionParameter::builder().condition_key(k).condition_value(v).build())
                .collect(),
        ))
        .build();
    let selection = BackupSelection::builder()
        .selection_name(&s.name)
        .iam_role_arn(&s.role_arn)
        .set_resources(Some(s.resources.clone()))
        .conditions(conditions)
        .build()?;
    // IAM is eventually consistent: a role made a moment ago may not be usable yet, which
    // AWS Backup says as an invalid parameter naming the role.
    let (mut delay, mut waited) = (Duration::from_secs(1), Duration::ZERO);
    loop {
        match backup.create_backup_selection().backup_plan_id(plan_id).backup_selection(selection.clone()).send().await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                let msg = aws_sdk_backup::error::ProvideErrorMetadata::message(&e).unwrap_or_default().to_lowercase();
                let not_yet = code_of(&e) == Some("InvalidParameterValueException") && msg.contains("role");
                if not_yet && waited < Duration::from_secs(60) {
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
                let doing = format!("creating backup selection {}", s.name);
                return Err(error("backup:CreateBackupSelection", &doing, e));
            }
        }
    }
}

pub async fn delete_selection(backup: &Client, plan_id: &str, id: &str) -> Result<()> {
    backup
        .delete_backup_selection()
        .backup_plan_id(plan_id)
        .selection_id(id)
        .send()
        .await
        .map_err(|e| error("backup:DeleteBackupSelection", &format!("deleting backup selection {id}"), e))?;
    Ok(())
}

pub async fn recovery_points(backup: &Client, vault: &str) -> Result<Vec<RecoveryPoint>> {
    let mut out = Vec::new();
    let mut pages = backup.list_recovery_points_by_backup_vault().backup_vault_name(vault).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            error("backup:ListRecoveryPointsByBackupVault", &format!("listing the recovery points in {vault}"), e)
        })?;
        for p in page.recovery_points() {
            let arn = p.recovery_point_arn().unwrap_or_default().to_string();
            out.push(RecoveryPoint {
                snapshot: arn.rsplit_once(":snapshot/").map(|(_, id)| id.to_string()),
                created: ts(p.creation_date()).unwrap_or_default(),
                status: p.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                size_gb: p.backup_size_in_bytes().unwrap_or(0) as f64 / (1u64 << 30) as f64,
                plan_id: p.created_by().and_then(|c| c.backup_plan_id()).map(str::to_string),
                delete_at: ts(p.calculated_lifecycle().and_then(|l| l.delete_at())),
                arn,
            });
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

pub async fn delete_recovery_point(backup: &Client, vault: &str, arn: &str) -> Result<()> {
    backup
        .delete_recovery_point()
        .backup_vault_name(vault)
        .recovery_point_arn(arn)
        .send()
        .await
        .map_err(|e| error("backup:DeleteRecoveryPoint", &format!("deleting recovery point {arn}"), e))?;
    Ok(())
}
