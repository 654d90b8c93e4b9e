//! The stack's log group, `/vcctl/<stack>`: every instance's service and boot lines, one
//! stream per instance id, shipped by the instance itself (`vehicleconnect-logs`, with the
//! instance role, which may write this group only). It outlives the instances, so the
//! lines of one the group replaced are still there; AWS deletes them after
//! `scale.log_retention_days`.

use anyhow::Result;

use crate::cloud::aws::logs::{self, LogGroup};
use crate::cloud::aws::{Aws, Stamp};
use crate::plan::{Action, Change};
use crate::providers::aws::owners::owned;

/// The group's name: CloudWatch Logs names are per region and account, like the stack's.
pub fn name(stack: &str) -> String {
    format!("/vcctl/{stack}")
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogOp {
    Create,
    Retention(i32),
}

/// The group made, or its retention put back. Pure.
pub fn plan(stack: &str, retention_days: i32, found: Option<&LogGroup>) -> Vec<Change<LogOp>> {
    let resource = format!("log group {}", name(stack));
    match found {
        None => vec![
            Change {
                action: Action::Create,
                resource: resource.clone(),
                detail: "every instance's service and boot lines, one stream per instance".into(),
                op: LogOp::Create,
            },
            Change {
                action: Action::Update,
                resource,
                detail: format!("kept {retention_days} days"),
                op: LogOp::Retention(retention_days),
            },
        ],
        Some(g) if g.retention_days != Some(retention_days) => vec![Change {
            action: Action::Update,
            resource,
            detail: match g.retention_days {
                Some(d) => format!("kept {retention_days} days (was {d})"),
                None => format!("kept {retention_days} days (was forever)"),
            },
            op: LogOp::Retention(retention_days),
        }],
        Some(_) => Vec::new(),
    }
}

pub async fn survey(aws: &Aws, stack: &str, stamp: &Stamp) -> Result<Option<LogGroup>> {
    let group = logs::find(&aws.logs, &name(stack)).await?;
    if let Some(g) = &group {
        owned(&format!("log group {}", g.name), g.owner.stack_id.as_deref(), stamp)?;
    }
    Ok(group)
}

pub async fn apply(
    aws: &Aws,
    stack: &str,
    planned: &[Change<LogOp>],
    stamp: &Stamp,
    p: &crate::printer::Printer,
) -> Result<()> {
    let group = name(stack);
    for c in planned {
        let doing = format!("{}: {}", c.resource, c.detail);
        match &c.op {
            LogOp::Create => p.doing(&doing, logs::create(&aws.logs, &group, stamp)).await?,
            LogOp::Retention(days) => p.doing(&doing, logs::set_retention(&aws.logs, &group, *days)).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_group_is_made_with_its_retention_and_a_changed_retention_put_back() {
        let ops = |c: Vec<Change<LogOp>>| c.into_iter().map(|c| c.op).collect::<Vec<_>>();
        assert_eq!(ops(plan("fra", 30, None)), [LogOp::Create, LogOp::Retention(30)]);
        let group = |days| LogGroup {
            name: "/vcctl/fra".into(),
            arn: "arn:aws:logs:eu-central-1:1:log-group:/vcctl/fra".into(),
            retention_days: days,
            stored_bytes: 0,
            owner: Default::default(),
        };
        assert!(plan("fra", 30, Some(&group(Some(30)))).is_empty());
        let changed = plan("fra", 30, Some(&group(None)));
        assert_eq!(changed[0].detail, "kept 30 days (was forever)");
        assert_eq!(ops(changed), [LogOp::Retention(30)]);
    }
}
