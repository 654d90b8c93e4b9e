//! The box's scheduled backups (`aws.backup`) against the emulator, extended with AWS
//! Backup's selections, jobs and recovery points (scripts/moto_ext, scripts/moto-server).
//! The emulator's scheduler hook runs a plan's rule now, as AWS does when its time comes:
//! a recovery point appears only if vcctl's selection picks the stack's data volume by its
//! tags and its role is one AWS Backup can assume.

use super::*;

fn backed_up(settings: &str) -> String {
    STACK.replace(
        "  termination_protection: false\n",
        &format!("  termination_protection: false\n  backup: {settings}\n"),
    )
}

/// Runs rule `rule` of every plan now; the backup jobs it ran.
pub async fn run_schedule(moto: &Moto, rule: &str) -> Vec<Value> {
    let url = format!("{}/_vc/backup/run-schedule", moto.url);
    let answer = common::http()
        .post(&url)
        .body(serde_json::json!({"region": "eu-central-1", "rule": rule}).to_string())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    let body: Value = answer.json().await.unwrap();
    body["BackupJobs"].as_array().unwrap().clone()
}

async fn backup_client(p: &Project) -> aws_sdk_backup::Client {
    aws_sdk_backup::Client::new(&p.sdk_config().await)
}

async fn plan_of(b: &aws_sdk_backup::Client) -> Option<aws_sdk_backup::types::BackupPlan> {
    let list = b.list_backup_plans().send().await.unwrap();
    let id = list.backup_plans_list().iter().find(|p| p.backup_plan_name() == Some("vcctl-fra"))?.backup_plan_id()?;
    b.get_backup_plan().backup_plan_id(id).send().await.unwrap().backup_plan().cloned()
}

fn rules(plan: &aws_sdk_backup::types::BackupPlan) -> Vec<(String, i64)> {
    plan.rules()
        .iter()
        .map(|r| (r.rule_name().to_string(), r.lifecycle().and_then(|l| l.delete_after_days()).unwrap_or(0)))
        .collect()
}

/// `up` makes the vault (locked), the plan, the selection and AWS Backup's role; a second
/// plan finds nothing to do; the scheduled rule backs up exactly the data volume; a changed
/// retention updates the plan in place; `backup --list` shows the recovery point beside an
/// on-demand snapshot; `destroy` keeps the vault and its points, and `--delete-backups`
/// cannot delete a point the vault lock still protects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_schedules_backups_of_the_data_volume_and_destroy_keeps_them() {
    let p = Project::new(&backed_up("{daily: 10, weekly: 6, lock_days: 3}"), Moto::start(&[]));
    let planned = p.json(&["plan"], 2);
    let resources: Vec<&str> =
        planned["changes"].as_array().unwrap().iter().filter_map(|c| c["resource"].as_str()).collect();
    for want in
        ["backup vault vcctl-fra", "backup plan vcctl-fra", "backup selection data", "IAM role vcctl-fra-backup"]
    {
        assert!(resources.contains(&want), "plan names {want}: {resources:?}");
    }
    p.json(&["up"], 0);
    let again = p.json(&["plan"], 0);
    assert_eq!(again["changes"], serde_json::json!([]), "a second plan changes nothing: {again}");

    let b = backup_client(&p).await;
    let vault = b.describe_backup_vault().backup_vault_name("vcctl-fra").send().await.unwrap();
    assert_eq!((vault.locked(), vault.min_retention_days()), (Some(true), Some(3)), "locked for 3 days");
    let plan = plan_of(&b).await.expect("the plan");
    assert_eq!(rules(&plan), [("daily".to_string(), 10), ("weekly".to_string(), 42)]);
    let (ec2, iam, _) = p.sdk().await;
    let role = iam.get_role().role_name("vcctl-fra-backup").send().await.unwrap();
    let trust = urldecode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "backup.amazonaws.com", "{trust}");

    let volume = single::data_volumes(&ec2).await[0].volume_id().unwrap().to_string();
    let jobs = run_schedule(&p.moto, "daily").await;
    assert_eq!(jobs.len(), 1, "one volume picked: {jobs:?}");
    assert_eq!(jobs[0]["State"], "COMPLETED", "AWS Backup could assume the role: {jobs:?}");
    assert!(jobs[0]["ResourceArn"].as_str().unwrap().ends_with(&volume), "the data volume: {jobs:?}");

    let snap = String::from_utf8_lossy(&p.expect(&["backup"], 0).stdout).trim().to_string();
    let listed = p.json(&["backup", "--list"], 0);
    assert_eq!(listed["snapshots"][0]["id"], snap.as_str(), "{listed}");
    let point = &listed["recovery_points"][0];
    assert!(point["plan_id"].is_string(), "made by the plan: {listed}");
    let text = String::from_utf8_lossy(&p.expect(&["backup", "--list"], 0).stdout).to_string();
    assert!(text.contains("scheduled (AWS Backup plan)") && text.contains("on demand"), "{text}");

    let file = p.dir.path().join("stacks/fra.yaml");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("daily: 10", "daily: 12")).unwrap();
    let planned = p.json(&["plan"], 2);
    assert_eq!(planned["changes"].as_array().unwrap().len(), 1, "{planned}");
    assert_eq!(planned["changes"][0]["action"], "update", "{planned}");
    p.json(&["up"], 0);
    assert_eq!(rules(&plan_of(&b).await.unwrap())[0].1, 12);

    let gone = p.json(&["destroy", "--yes"], 0);
    let kept = gone["kept"].to_string();
    assert!(kept.contains("backup vault vcctl-fra and its 1 recovery point(s)"), "{gone}");
    assert!(plan_of(&b).await.is_none(), "no plan left to make backups");
    assert!(iam.get_role().role_name("vcctl-fra-backup").send().await.is_err(), "the role is gone");
    let points = b.list_recovery_points_by_backup_vault().backup_vault_name("vcctl-fra").send().await.unwrap();
    assert_eq!(points.recovery_points().len(), 1, "the recovery point is kept");

    // The lock keeps a recovery point younger than 3 days, whatever is asked.
    let out = p.expect(&["destroy", "--yes", "--delete-backups"], 1);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("FAILED") && report.contains("protected by the vault lock"), "{}", show(&out));
    assert!(b.describe_backup_vault().backup_vault_name("vcctl-fra").send().await.is_ok(), "the vault stays");
}

/// Without a lock, `destroy --delete-backups` lists the recovery points, then deletes them
/// and the vault; `aws.backup: false` makes none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_backups_deletes_the_vault_and_backup_false_makes_none() {
    let p = Project::new(STACK, Moto::start(&[]));
    p.json(&["up"], 0);
    let b = backup_client(&p).await;
    assert_eq!(
        rules(&plan_of(&b).await.expect("on by default")),
        [("daily".to_string(), 7), ("weekly".to_string(), 28)]
    );
    assert_eq!(run_schedule(&p.moto, "weekly").await[0]["State"], "COMPLETED");
    let out = p.run(&["destroy", "--delete-backups"]);
    assert_eq!(out.status.code(), Some(8), "asks first: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recovery point snap-"), "lists the points first: {err}");
    let gone = p.json(&["destroy", "--yes", "--delete-backups"], 0);
    assert!(gone["deleted"].to_string().contains("backup vault vcctl-fra"), "{gone}");
    assert!(b.describe_backup_vault().backup_vault_name("vcctl-fra").send().await.is_err());

    let off = p.beside(
        &STACK.replace("  termination_protection: false\n", "  termination_protection: false\n  backup: false\n"),
    );
    off.json(&["up"], 0);
    assert!(plan_of(&b).await.is_none(), "aws.backup: false makes no plan");
    assert!(b.describe_backup_vault().backup_vault_name("vcctl-fra").send().await.is_err(), "nor a vault");
    off.json(&["destroy", "--yes"], 0);
}
