//! The alarms of a `scale:` stack and the topic they notify: the load balancer's and the
//! targets' 5xx, unhealthy targets, and RDS's CPU, free storage and connections, each
//! notifying the stack's alert topic (`alerts: {email}`), when it has one. What to change is
//! computed apart from the calls (`plan`); the topic is the one of both shapes (`alert_topic.rs`).

use anyhow::Result;

use crate::cloud::aws::cloudwatch::{self, Alarm, LESS, Watch};
use crate::cloud::aws::sns::{self, Topic};
use crate::cloud::aws::{Aws, Stamp};
use crate::plan::{Action, Change};
use crate::providers::aws::alert_topic::{self, TopicOp};
use crate::providers::aws::names;
use crate::providers::aws::scale::tiers::owned;
use crate::stack::scale::RdsSettings;

/// The names, exactly (a prefix would take the alarms of `prod-eu` for `prod`'s).
pub const ALARMS: [&str; 6] =
    ["lb-5xx", "targets-5xx", "unhealthy-targets", "db-cpu-high", "db-storage-low", "db-connections-high"];

/// More 5xx answers a minute than this, two minutes running, is an incident, not noise.
pub const FIVE_XX_PER_MINUTE: f64 = 10.0;

pub fn names(stack: &str) -> Vec<String> {
    ALARMS.iter().map(|a| format!("{}{a}", cloudwatch::prefix(stack))).collect()
}

/// What the alarms watch: the load balancer and target group as CloudWatch names them (the
/// ends of their ARNs), and the DB instance.
pub struct Watched<'a> {
    pub balancer: &'a str,
    pub target_group: &'a str,
    pub db: &'a str,
}

/// `arn:...:loadbalancer/app/name/id` is `app/name/id` to CloudWatch; a target group's,
/// `targetgroup/name/id`.
pub fn dimension_of(arn: &str) -> String {
    match arn.split_once(":loadbalancer/") {
        Some((_, rest)) => rest.to_string(),
        None => arn.rsplit(':').next().unwrap_or(arn).to_string(),
    }
}

/// PostgreSQL on RDS allows about one connection per 9.5 MB of the class's memory; past 80 %
/// of that, new replicas or a leak will soon be refused. Classes not listed: 80 connections.
fn connections_threshold(class: &str) -> f64 {
    let gib: f64 = match class.rsplit('.').next() {
        Some("micro") => 1.0,
        Some("small") => 2.0,
        Some("medium") => 4.0,
        Some("large") if class.contains(".r") => 16.0,
        Some("large") => 8.0,
        Some("xlarge") if class.contains(".r") => 32.0,
        Some("xlarge") => 16.0,
        _ => return 80.0,
    };
    (gib * 1024.0 * 1024.0 * 1024.0 / 9_531_392.0 * 0.8).floor()
}

/// The stack's alarms, each notifying `topic` when there is one.
pub fn wanted(stack: &str, w: &Watched, db: &RdsSettings, topic: Option<&str>) -> Vec<Alarm> {
    let alarm = |i: usize, namespace, metric, statistic, period_s, threshold, dims: Vec<(&str, &str)>| {
        let name = format!("{}{}", cloudwatch::prefix(stack), ALARMS[i]);
        let actions = topic.map(str::to_string).into_iter().collect();
        Alarm::above(name, Watch { namespace, metric, statistic, period_s }, threshold, &dims, actions)
    };
    let (lb, tg) = (dimension_of(w.balancer), dimension_of(w.target_group));
    let elb = "AWS/ApplicationELB";
    let on_db = vec![("DBInstanceIdentifier", w.db)];
    // 15 % of the storage left, in bytes (RDS counts GiB).
    let low = f64::from(db.storage_gb) * 1024.0 * 1024.0 * 1024.0 * 0.15;
    vec![
        alarm(0, elb, "HTTPCode_ELB_5XX_Count", "Sum", 60, FIVE_XX_PER_MINUTE, vec![("LoadBalancer", &lb)]),
        alarm(1, elb, "HTTPCode_Target_5XX_Count", "Sum", 60, FIVE_XX_PER_MINUTE, vec![("LoadBalancer", &lb)]),
        alarm(2, elb, "UnHealthyHostCount", "Maximum", 60, 0.0, vec![("TargetGroup", &tg), ("LoadBalancer", &lb)]),
        alarm(3, "AWS/RDS", "CPUUtilization", "Average", 300, 80.0, on_db.clone()),
        Alarm {
            comparison: LESS.into(),
            ..alarm(4, "AWS/RDS", "FreeStorageSpace", "Minimum", 300, low, on_db.clone())
        },
        alarm(5, "AWS/RDS", "DatabaseConnections", "Maximum", 300, connections_threshold(&db.instance_class), on_db),
    ]
}

/// The topic and the alarms as they are.
#[derive(Debug, Default)]
pub struct AlarmsFound {
    /// The topic's ARN, known before it exists.
    pub topic_arn: String,
    pub topic: Option<Topic>,
    pub alarms: Vec<Alarm>,
}

/// How `up` makes one planned change of the alarms and their topic.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertOp {
    Topic(TopicOp),
    PutAlarm(Box<Alarm>),
}

/// What `up` would change, and how: the topic and its subscription, alarms missing or
/// different.
pub fn plan(wanted: &[Alarm], found: &AlarmsFound, email: Option<&str>) -> Vec<Change<AlertOp>> {
    let topic = alert_topic::plan(&found.topic_arn, email, found.topic.as_ref());
    let mut out: Vec<Change<AlertOp>> = topic
        .into_iter()
        .map(|c| Change { action: c.action, resource: c.resource, detail: c.detail, op: AlertOp::Topic(c.op) })
        .collect();
    for w in wanted {
        let (action, detail) = match found.alarms.iter().find(|f| f.name == w.name) {
            None => (Action::Create, format!("{} {} {}", w.metric, w.comparison, w.threshold)),
            Some(f) if !f.matches(w) => (Action::Update, "put back as the stack says".to_string()),
            Some(_) => continue,
        };
        let op = AlertOp::PutAlarm(Box::new(w.clone()));
        out.push(Change { action, resource: format!("alarm {}", w.name), detail, op });
    }
    out
}

/// The topic (by its ARN, known before it exists) and the alarms as they are.
pub async fn survey(aws: &Aws, stack: &str, account: &str, stamp: &Stamp) -> Result<AlarmsFound> {
    let arn = sns::arn(&aws.region, account, &names::alerts_topic(stack));
    let topic = sns::find(&aws.sns, &arn).await?;
    if let Some(t) = &topic {
        owned(&format!("alert topic {}", t.arn), t.owner.stack_id.as_deref(), stamp)?;
    }
    let alarms = cloudwatch::find_named(&aws.cloudwatch, &names(stack)).await?;
    for a in &alarms {
        owned(&format!("alarm {}", a.name), a.owner.as_ref().and_then(|o| o.stack_id.as_deref()), stamp)?;
    }
    Ok(AlarmsFound { topic_arn: arn, topic, alarms })
}

/// Makes and repairs the topic and the alarms: exactly the `planned` changes, in order.
pub async fn apply(
    aws: &Aws,
    stack: &str,
    found: &AlarmsFound,
    planned: &[Change<AlertOp>],
    stamp: &Stamp,
    p: &crate::printer::Printer,
) -> Result<()> {
    let name = names::alerts_topic(stack);
    for c in planned {
        let doing = format!("{}: {}", c.resource, c.detail);
        match &c.op {
            AlertOp::Topic(op) => {
                p.doing(&doing, alert_topic::apply(&aws.sns, &name, &found.topic_arn, op, stamp)).await?
            }
            AlertOp::PutAlarm(alarm) => p.doing(&doing, cloudwatch::put(&aws.cloudwatch, stamp, alarm)).await?,
        }
    }
    Ok(())
}

/// Deletes the alarms and the topic.
pub async fn destroy(aws: &Aws, found: &AlarmsFound, p: &crate::printer::Printer) -> Result<()> {
    let names: Vec<String> = found.alarms.iter().map(|a| a.name.clone()).collect();
    if !names.is_empty() {
        p.doing(&format!("deleting {} alarm(s)", names.len()), cloudwatch::delete(&aws.cloudwatch, &names)).await?;
    }
    if let Some(t) = &found.topic {
        p.doing(&format!("deleting alert topic {}", t.arn), sns::delete(&aws.sns, &t.arn)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_watch_what_cloudwatch_names_and_storage_is_low_below_a_threshold() {
        assert_eq!(
            dimension_of("arn:aws:elasticloadbalancing:eu-central-1:1:loadbalancer/app/vcctl-fra/50dc6c495c0c9188"),
            "app/vcctl-fra/50dc6c495c0c9188"
        );
        assert_eq!(
            dimension_of("arn:aws:elasticloadbalancing:eu-central-1:1:targetgroup/vcctl-fra/73e2d6bc24d8a067"),
            "targetgroup/vcctl-fra/73e2d6bc24d8a067"
        );
        let db = RdsSettings {
            ca_file: None,
            instance_class: "db.t4g.micro".into(),
            storage_gb: 20,
            multi_az: false,
            backup_retention_days: 7,
        };
        let w = Watched {
            balancer: "arn:x:loadbalancer/app/vcctl-fra/1",
            target_group: "arn:x:targetgroup/vcctl-fra/2",
            db: "vcctl-fra",
        };
        let alarms = wanted("fra", &w, &db, Some("arn:topic"));
        assert_eq!(alarms.len(), 6);
        assert!(alarms.iter().all(|a| a.actions == ["arn:topic"]));
        let storage = alarms.iter().find(|a| a.name == "vcctl-fra-db-storage-low").unwrap();
        // 15 % of 20 GiB: 3 221 225 472 bytes.
        assert_eq!((storage.comparison.as_str(), storage.threshold), (LESS, 3_221_225_472.0));
        let unhealthy = alarms.iter().find(|a| a.name == "vcctl-fra-unhealthy-targets").unwrap();
        assert_eq!(unhealthy.dimensions[0], ("TargetGroup".to_string(), "targetgroup/vcctl-fra/2".to_string()));
        // db.t4g.micro: 1 GiB / 9.5 MB = 112 connections; 80 % of it.
        let conns = alarms.iter().find(|a| a.name == "vcctl-fra-db-connections-high").unwrap();
        assert_eq!(conns.threshold, 90.0);
        let all = AlarmsFound { topic_arn: String::new(), topic: None, alarms: alarms.clone() };
        assert_eq!(plan(&alarms, &all, None), vec![]);
        let one_missing = AlarmsFound { topic_arn: String::new(), topic: None, alarms: alarms[1..].to_vec() };
        assert_eq!(plan(&alarms, &one_missing, None).len(), 1);
    }
}
