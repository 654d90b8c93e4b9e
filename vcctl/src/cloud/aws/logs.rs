//! CloudWatch Logs: a `scale:` stack's log group (`/vcctl/<stack>`, one stream per
//! instance, written by the instances' `vehicleconnect-logs` shipper), and reading it back
//! merged by time, instances that are gone included.

use anyhow::Result;
use aws_sdk_cloudwatchlogs::Client;
use serde::Serialize;

use super::{Owner, Stamp, code_of, error};

#[derive(Debug, Clone, Serialize)]
pub struct LogGroup {
    pub name: String,
    pub arn: String,
    pub retention_days: Option<i32>,
    pub stored_bytes: i64,
    #[serde(skip)]
    pub owner: Owner,
}

/// One line as the shipper sent it: its time (ms since the epoch) and its instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub time_ms: i64,
    pub instance: String,
    pub message: String,
    /// CloudWatch's id: the same line read twice (`-f` overlaps its windows) is printed once.
    #[serde(skip)]
    pub id: String,
}

/// The group named `name`, if it exists.
pub async fn find(logs: &Client, name: &str) -> Result<Option<LogGroup>> {
    let out = logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| error("logs:DescribeLogGroups", &format!("looking up log group {name}"), e))?;
    let Some(g) = out.log_groups().iter().find(|g| g.log_group_name() == Some(name)) else { return Ok(None) };
    // The ARN DescribeLogGroups gives ends in `:*`; tags are read on the group's own.
    let arn = g.arn().unwrap_or_default().trim_end_matches(":*").to_string();
    let tags = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| error("logs:ListTagsForResource", &format!("reading the tags of log group {name}"), e))?;
    let tags = tags.tags().cloned().unwrap_or_default();
    Ok(Some(LogGroup {
        name: name.to_string(),
        retention_days: g.retention_in_days(),
        stored_bytes: g.stored_bytes().unwrap_or(0),
        owner: Owner::from_tags(tags.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))),
        arn,
    }))
}

pub async fn create(logs: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    let tags = stamp.pairs().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match logs.create_log_group().log_group_name(name).set_tags(Some(tags)).send().await {
        Ok(_) => Ok(()),
        // Made by an interrupted run a moment ago: found by the next survey, converged now.
        Err(e) if code_of(&e) == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(e) => Err(error("logs:CreateLogGroup", &format!("creating log group {name}"), e)),
    }
}

pub async fn set_retention(logs: &Client, name: &str, days: i32) -> Result<()> {
    logs.put_retention_policy()
        .log_group_name(name)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| error("logs:PutRetentionPolicy", &format!("setting the retention of log group {name}"), e))?;
    Ok(())
}

pub async fn delete(logs: &Client, name: &str) -> Result<()> {
    match logs.delete_log_group().log_group_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(error("logs:DeleteLogGroup", &format!("deleting log group {name}"), e)),
    }
}

/// What to read: from when (ms), which instances (all when empty), at most how many.
pub struct Query<'a> {
    pub group: &'a str,
    pub since_ms: i64,
    pub instances: &'a [String],
    pub limit: usize,
}

/// The group's lines from `q.since_ms` on, every instance's merged by time (the newest
/// `q.limit` of them); each page is bounded by CloudWatch (1 MB, 10 000 events).
pub async fn read(logs: &Client, q: &Query<'_>) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = logs
            .filter_log_events()
            .log_group_name(q.group)
            .start_time(q.since_ms)
            .set_log_stream_names((!q.instances.is_empty()).then(|| q.instances.to_vec()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| error("logs:FilterLogEvents", &format!("reading log group {}", q.group), e))?;
        for e in page.events() {
            out.push(Line {
                time_ms: e.timestamp().unwrap_or(0),
                instance: e.log_stream_name().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
                id: e.event_id().unwrap_or_default().to_string(),
            });
        }
        // Only the newest `limit` are shown: older ones are dropped as pages come.
        if out.len() > q.limit * 2 {
            out.sort_by_key(|l| l.time_ms);
            out.drain(..out.len() - q.limit);
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() || page.events().is_empty() {
            break;
        }
    }
    out.sort_by(|a, b| (a.time_ms, &a.instance).cmp(&(b.time_ms, &b.instance)));
    let skip = out.len().saturating_sub(q.limit);
    Ok(out.split_off(skip))
}
