//! CloudWatch alarms named `vcctl-<stack>-…`: the EC2 system status check with the recover
//! action, CPU above 80 % for 10 minutes, and the data volume nearly full (a metric the host
//! publishes itself: `vc-host disk-metric`, every 5 minutes, with the instance role).

use anyhow::Result;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
use serde::Serialize;

use super::{Owner, Stamp, error};

/// One alarm as vcctl wants it, and as it compares what it finds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub name: String,
    /// `AWS/EC2`, or `VehicleConnect` for what the host publishes.
    pub namespace: String,
    pub metric: String,
    pub statistic: String,
    pub period_s: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    /// What it watches, every dimension in order: `InstanceId` (the value follows the
    /// instance) or `Stack` on a single box; the load balancer, its target group or the DB
    /// instance on a `scale:` stack.
    pub dimensions: Vec<(String, String)>,
    /// `GreaterThanThreshold`, or `LessThanThreshold` (space left).
    pub comparison: String,
    pub actions: Vec<String>,
    /// OK, ALARM or INSUFFICIENT_DATA (as found; ignored when comparing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// As found: its ARN, and who its tags say made it (ignored when comparing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// What an alarm watches: a metric of a namespace, as a statistic over a period.
pub struct Watch<'a> {
    pub namespace: &'a str,
    pub metric: &'a str,
    pub statistic: &'a str,
    pub period_s: i32,
}

impl Alarm {
    /// The alarm `name` on `watch` of `dimensions`, above `threshold` two periods running,
    /// notifying `actions`.
    pub fn above(
        name: String,
        watch: Watch,
        threshold: f64,
        dimensions: &[(&str, &str)],
        actions: Vec<String>,
    ) -> Alarm {
        Alarm {
            name,
            namespace: watch.namespace.into(),
            metric: watch.metric.into(),
            statistic: watch.statistic.into(),
            period_s: watch.period_s,
            evaluation_periods: 2,
            threshold,
            dimensions: dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            comparison: GREATER.into(),
            actions,
            state: None,
            arn: None,
            owner: None,
        }
    }

    pub fn matches(&self, other: &Alarm) -> bool {
        let bare = |a: &Alarm| Alarm { state: None, arn: None, owner: None, ..a.clone() };
        bare(self) == bare(other)
    }
}

pub fn prefix(stack: &str) -> String {
    format!("vcctl-{stack}-")
}

/// The names of a stack's alarms, exactly: a name prefix would also match the alarms of a
/// stack whose name starts with this one's (`prod` and `prod-eu`).
pub const ALARMS: [&str; 3] = ["system-status", "cpu-high", "data-disk-full"];

/// What the host publishes (templates/host/vc-host.sh `disk_metric`) and the alarm watches,
/// in a namespace of the stack's own: `cloudwatch:namespace` is the one condition
/// PutMetricData knows, so the instance role is pinned to it, and no other stack's host can
/// publish a value that raises or silences this stack's alarm.
pub fn namespace(stack: &str) -> String {
    format!("VehicleConnect/{stack}")
}
pub const DISK_METRIC: &str = "DataVolumeUsedPercent";
/// Room to act before PostgreSQL stops on a full disk: at 20 GB, 3 GB left.
pub const DISK_FULL_PCT: f64 = 85.0;

fn names(stack: &str) -> Vec<String> {
    ALARMS.iter().map(|a| format!("{}{a}", prefix(stack))).collect()
}

/// The stack's alarms; each also notifies `topic` (the stack's alert topic), when it has one.
pub fn wanted(stack: &str, region: &str, instance_id: &str, topic: Option<&str>) -> Vec<Alarm> {
    let notify = |mut actions: Vec<String>| {
        actions.extend(topic.map(str::to_string));
        actions
    };
    let alarm = |name: &str, namespace, metric, statistic, period_s, threshold| {
        let watch = Watch { namespace, metric, statistic, period_s };
        Alarm::above(
            format!("{}{name}", prefix(stack)),
            watch,
            threshold,
            &[("InstanceId", instance_id)],
            notify(vec![]),
        )
    };
    let status = Alarm {
        // EC2's own action: move the instance to healthy hardware, same id and disk.
        actions: notify(vec![format!("arn:aws:automate:{region}:ec2:recover")]),
        ..alarm(ALARMS[0], "AWS/EC2", "StatusCheckFailed_System", "Maximum", 60, 0.0)
    };
    let cpu = alarm(ALARMS[1], "AWS/EC2", "CPUUtilization", "Average", 300, 80.0);
    // By stack, not instance: the volume, and what is on it, outlive the instance.
    let namespace = namespace(stack);
    let disk = Alarm {
        dimensions: vec![("Stack".into(), stack.into())],
        ..alarm(ALARMS[2], &namespace, DISK_METRIC, "Maximum", 300, DISK_FULL_PCT)
    };
    vec![status, cpu, disk]
}

pub const GREATER: &str = "GreaterThanThreshold";
pub const LESS: &str = "LessThanThreshold";

/// The alarms with the stack's names, each with who its tags say made it.
pub async fn find(cw: &Client, stack: &str) -> Result<Vec<Alarm>> {
    find_named(cw, &names(stack)).await
}

/// The alarms named `names`, each with who its tags say made it.
pub async fn find_named(cw: &Client, names: &[String]) -> Result<Vec<Alarm>> {
    let out = cw
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| error("cloudwatch:DescribeAlarms", "listing the stack's alarms", e))?;
    let mut alarms: Vec<Alarm> = out
        .metric_alarms()
        .iter()
        .map(|a| Alarm {
            name: a.alarm_name().unwrap_or_default().to_string(),
            namespace: a.namespace().unwrap_or_default().to_string(),
            metric: a.metric_name().unwrap_or_default().to_string(),
            statistic: a.statistic().map(|s| s.as_str().to_string()).unwrap_or_default(),
            period_s: a.period().unwrap_or(0),
            evaluation_periods: a.evaluation_periods().unwrap_or(0),
            threshold: a.threshold().unwrap_or(0.0),
            dimensions: a
                .dimensions()
                .iter()
                .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
                .collect(),
            comparison: a.comparison_operator().map(|c| c.as_str().to_string()).unwrap_or_default(),
            actions: a.alarm_actions().to_vec(),
            state: a.state_value().map(|s| s.as_str().to_string()),
            arn: a.alarm_arn().map(str::to_string),
            owner: None,
        })
        .collect();
    for alarm in &mut alarms {
        let Some(arn) = &alarm.arn else { continue };
        let tags = cw.list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| {
            error("cloudwatch:ListTagsForResource", &format!("reading the tags of alarm `{}`", alarm.name), e)
        })?;
        alarm.owner = Some(Owner::from_tags(tags.tags().iter().map(|t| (t.key(), t.value()))));
    }
    Ok(alarms)
}

/// Puts the stack's tags on an alarm.
pub async fn tag(cw: &Client, arn: &str, stamp: &Stamp) -> Result<()> {
    cw.tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("cloudwatch:TagResource", &format!("tagging alarm {arn}"), e))?;
    Ok(())
}

fn tags(stamp: &Stamp) -> Vec<Tag> {
    stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
}

pub async fn put(cw: &Client, stamp: &Stamp, alarm: &Alarm) -> Result<()> {
    let stack = &stamp.stack;
    cw.put_metric_alarm()
        .alarm_name(&alarm.name)
        .alarm_description(format!("VehicleConnect stack {stack}, managed by vcctl"))
        .namespace(&alarm.namespace)
        .metric_name(&alarm.metric)
        .set_dimensions(Some(
            alarm.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect(),
        ))
        .statistic(Statistic::from(alarm.statistic.as_str()))
        .period(alarm.period_s)
        .evaluation_periods(alarm.evaluation_periods)
        .threshold(alarm.threshold)
        .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
        .set_alarm_actions(Some(alarm.actions.clone()))
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("cloudwatch:PutMetricAlarm", &format!("writing alarm `{}`", alarm.name), e))?;
    Ok(())
}

pub async fn delete(cw: &Client, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    cw.delete_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| error("cloudwatch:DeleteAlarms", &format!("deleting alarms {}", names.join(", ")), e))?;
    Ok(())
}

/// The newest average of `metric` over the last hour (5-minute periods), if CloudWatch has
/// one: what `status` shows of a resource AWS measures itself (RDS's free storage).
pub async fn latest_average(
    cw: &Client,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
) -> Result<Option<f64>> {
    let points = last_hour(cw, namespace, metric, dimensions, Statistic::Average).await?;
    let newest = points.iter().filter(|d| d.timestamp().is_some()).max_by_key(|d| d.timestamp().map(|t| t.secs()));
    Ok(newest.and_then(|d| d.average()))
}

/// The sum of `metric` over the last hour (WAF's blocked requests); 0 when CloudWatch has
/// no point (nothing was counted).
pub async fn last_hour_sum(cw: &Client, namespace: &str, metric: &str, dimensions: &[(&str, &str)]) -> Result<f64> {
    let points = last_hour(cw, namespace, metric, dimensions, Statistic::Sum).await?;
    Ok(points.iter().filter_map(|d| d.sum()).fold(0.0, |a, b| a + b))
}

async fn last_hour(
    cw: &Client,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    statistic: Statistic,
) -> Result<Vec<aws_sdk_cloudwatch::types::Datapoint>> {
    let now = std::time::SystemTime::now();
    let mut req = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(metric)
        .start_time(aws_smithy_types::DateTime::from(now - std::time::Duration::from_secs(3600)))
        .end_time(aws_smithy_types::DateTime::from(now))
        .period(300)
        .statistics(statistic);
    for (name, value) in dimensions {
        req = req.dimensions(Dimension::builder().name(*name).value(*value).build());
    }
    let out = req
        .send()
        .await
        .map_err(|e| error("cloudwatch:GetMetricStatistics", &format!("reading {namespace} {metric}"), e))?;
    Ok(out.datapoints().to_vec())
}
