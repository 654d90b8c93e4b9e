//! `vcctl restore` of a `scale:` stack against the emulator: a new DB instance from an RDS
//! snapshot or a point in time, the group moved to it by the instance refresh (its launch
//! template names the new database), the old one kept, a way back, `--delete-old`, a failed
//! refresh pointed back, and `destroy` taking every DB instance of the stack. What the
//! instances do on the database (`db restore` through one) is tested on the test host
//! (scale.rs).

use aws_sdk_rds::Client as Rds;
use base64::Engine;
use serde_json::Value;

use super::scale::{group_members, scaled_stack};
use super::{Moto, Project, least_privilege, recorded};
use crate::common::show;

async fn rds(s: &Project) -> Rds {
    Rds::new(&s.sdk_config().await)
}

/// The DB instances there are, sorted.
async fn instances(rds: &Rds) -> Vec<String> {
    let out = rds.describe_db_instances().send().await.unwrap();
    let mut ids: Vec<String> =
        out.db_instances().iter().map(|d| d.db_instance_identifier().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The user data of the launch template's latest version, as EC2 keeps it (base64).
pub async fn latest_user_data(s: &Project) -> String {
    let (ec2, _, _) = s.sdk().await;
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_name("vcctl-fra")
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    versions.launch_template_versions()[0].launch_template_data().unwrap().user_data().unwrap().to_string()
}

/// That user data decoded: the boot script.
pub async fn boot_script(s: &Project) -> String {
    let data = latest_user_data(s).await;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap()
}

async fn endpoint(rds: &Rds, id: &str) -> String {
    let out = rds.describe_db_instances().db_instance_identifier(id).send().await.unwrap();
    let e = out.db_instances()[0].endpoint().unwrap();
    format!("{}:{}", e.address().unwrap(), e.port().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_moves_the_group_to_a_new_database_keeps_the_old_and_finds_its_way_back() {
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    s.json(&["up", "--artifact", crate::common::service_bin().to_str().unwrap()], 0);
    let rds = rds(&s).await;
    let watch = recorded::Watch::start(&s).await;
    let snapshot = String::from_utf8_lossy(&s.expect(&["backup"], 0).stdout).trim().to_string();
    let (before, _) = group_members(&s).await;

    // Refused before anything is made: no confirmation, a snapshot not the stack's, a bad time.
    let out = s.expect(&["restore", &snapshot], 8);
    assert!(crate::common::stderr(&out).contains("a new DB instance vcctl-fra-r"), "{}", show(&out));
    let out = s.expect(&["restore", "rds:nope-0", "--yes"], 3);
    assert!(crate::common::stderr(&out).contains("there is no RDS snapshot rds:nope-0"), "{}", show(&out));
    let out = s.expect(&["restore", "--time", "yesterday", "--yes"], 3);
    assert!(crate::common::stderr(&out).contains("not an RFC 3339 UTC time"), "{}", show(&out));
    assert_eq!(instances(&rds).await, ["vcctl-fra"], "nothing made");

    // From the snapshot: a new instance, the group refreshed onto it, the old one kept.
    let done = s.json(&["restore", &snapshot, "--yes"], 0);
    let new = done["database"]["instance"].as_str().unwrap().to_string();
    assert!(new.starts_with("vcctl-fra-r2"), "{done}");
    assert_eq!(done["kept"], serde_json::json!([{"instance": "vcctl-fra", "database": "vehicleconnect"}]), "{done}");
    assert_eq!(instances(&rds).await, ["vcctl-fra".to_string(), new.clone()]);
    let made = rds.describe_db_instances().db_instance_identifier(&new).send().await.unwrap();
    let d = &made.db_instances()[0];
    assert_eq!(
        (d.deletion_protection(), d.publicly_accessible(), d.db_subnet_group().and_then(|g| g.db_subnet_group_name())),
        (Some(true), Some(false), Some("vcctl-fra")),
        "{d:?}"
    );
    assert!(d.master_user_secret().and_then(|m| m.secret_arn()).is_some(), "RDS keeps its password: {d:?}");
    assert!(d.tag_list().iter().any(|t| t.key() == Some("vcctl:stack-id") && t.value() == Some(s.stack_id().as_str())));
    let script = boot_script(&s).await;
    assert!(script.contains(&endpoint(&rds, &new).await), "the launch template names the new database");
    let (after, _) = group_members(&s).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|m| !before.iter().any(|b| b.0 == m.0)), "every instance replaced: {before:?} {after:?}");
    assert_eq!(s.json(&["plan"], 0)["changes"], serde_json::json!([]), "alarms, role and template converged");
    let status = s.json(&["status"], 0);
    assert_eq!(status["database_serving"]["instance"], new.as_str(), "{status}");
    let said = String::from_utf8_lossy(&s.expect(&["status"], 0).stdout).into_owned();
    assert!(said.contains("kept: vcctl-fra/vehicleconnect"), "{said}");

    // To a point in time of the one now serving; then back to the first, which makes nothing.
    let time = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let pitr = s.json(&["restore", "--time", &time, "--yes"], 0);
    let third = pitr["database"]["instance"].as_str().unwrap().to_string();
    assert!(third != new && third.starts_with("vcctl-fra-r"), "{pitr}");
    let back = s.json(&["restore", "--database", "vcctl-fra", "--yes"], 0);
    assert_eq!(back["database"]["instance"], "vcctl-fra");
    assert_eq!(instances(&rds).await.len(), 3, "a way back makes no instance");
    assert!(boot_script(&s).await.contains(&endpoint(&rds, "vcctl-fra").await));
    let out = s.expect(&["restore", "--database", "vcctl-nope", "--yes"], 3);
    let said = crate::common::stderr(&out);
    assert!(
        said.contains("vcctl-nope is not a database the stack kept (kept: ") && said.contains(&new),
        "{}",
        show(&out)
    );

    // A refresh that fails on the new database: the group is pointed back, serving as before.
    let out =
        s.command(&["restore", "--database", &new, "--yes"]).env("VCCTL_FAULT", "refresh-unhealthy").output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    assert!(
        crate::common::stderr(&out).contains("the group serves from vcctl-fra/vehicleconnect as before"),
        "{}",
        show(&out)
    );
    assert_eq!(s.json(&["status"], 0)["database_serving"]["instance"], "vcctl-fra");
    assert!(boot_script(&s).await.contains(&endpoint(&rds, "vcctl-fra").await));

    // The kept ones deleted, each after a final snapshot.
    let gone = s.json(&["restore", "--delete-old", "--yes"], 0);
    assert_eq!(gone["final_snapshots"].as_array().unwrap().len(), 2, "{gone}");
    assert_eq!(instances(&rds).await, ["vcctl-fra"]);
    let status = s.json(&["status"], 0);
    assert_eq!(
        (status["databases_kept"].as_array().map(Vec::len), status["db_instances_kept"].as_array().map(Vec::len)),
        (Some(0), Some(0)),
        "{status}"
    );
    assert_eq!(status["healthy_targets"], 2, "the failed refresh's instance left the target group: {status}");
    let (_, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    let policy = least_privilege::operator_policy(&s);
    let denied = super::iam_eval::denials(&policy, &asked);
    assert!(denied.is_empty(), "restores ask only what `vcctl iam-policy` allows:\n{}", denied.join("\n"));
    let used: Vec<&str> = asked.iter().map(|a| a.action.as_str()).collect();
    assert!(
        used.contains(&"rds:RestoreDBInstanceFromDBSnapshot") && used.contains(&"rds:RestoreDBInstanceToPointInTime")
    );
}

/// `destroy` deletes every DB instance of the stack, a kept one too, each after a final
/// snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_takes_every_database_the_stack_kept() {
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    s.json(&["up", "--artifact", crate::common::service_bin().to_str().unwrap()], 0);
    let snapshot = String::from_utf8_lossy(&s.expect(&["backup"], 0).stdout).trim().to_string();
    let done: Value = s.json(&["restore", &snapshot, "--yes"], 0);
    let new = done["database"]["instance"].as_str().unwrap().to_string();
    let listed = crate::common::stderr(&s.expect(&["destroy"], 8));
    assert!(listed.contains("DB instance vcctl-fra, kept after a restore"), "{listed}");
    let gone = s.json(&["destroy", "--yes"], 0);
    let snaps = gone["final_snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2, "{gone}");
    assert!(snaps[0].as_str().unwrap().starts_with(&format!("{new}-final-")), "{gone}");
    assert!(instances(&rds(&s).await).await.is_empty());
}
