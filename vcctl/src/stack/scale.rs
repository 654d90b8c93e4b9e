//! `scale:` of an `aws` stack: the service past one box, on several instances of an Auto
//! Scaling group behind an Application Load Balancer, with its database on RDS.

use super::yaml::{Section, StackError};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScaleSettings {
    pub replicas: Replicas,
    /// Target tracking on the group's average CPU; a fixed size when absent.
    pub cpu_target_pct: Option<u8>,
    pub database: RdsSettings,
    /// How long CloudWatch Logs keeps the instances' lines (`log_retention_days`, default 30).
    pub log_retention_days: i32,
    /// `cdn`, `waf`: a distribution and a firewall in front of the load balancer.
    #[serde(flatten)]
    pub edge: super::edge::EdgeSettings,
}

/// The retentions CloudWatch Logs takes, in days.
pub const LOG_RETENTIONS: [i32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// The Auto Scaling group's bounds: `min <= desired <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Replicas {
    pub min: u16,
    pub desired: u16,
    pub max: u16,
}

/// RDS for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RdsSettings {
    /// The authorities the instances verify RDS's certificate with (a local PEM bundle);
    /// without, each instance fetches its region's bundle from AWS's trust store at boot.
    pub ca_file: Option<std::path::PathBuf>,
    pub instance_class: String,
    pub storage_gb: u32,
    pub multi_az: bool,
    pub backup_retention_days: u8,
}

/// A group needs two replicas to lose one; the bound keeps a typo from launching a fleet.
const MAX_REPLICAS: u16 = 100;

pub fn scale_settings(mut s: Section, file: &std::path::Path) -> Result<ScaleSettings, StackError> {
    let Some(r) = s.opt_section("replicas")? else {
        let mut err = s.error("`scale:` needs `replicas:`, the Auto Scaling group's size");
        err.hint = Some("add `replicas: {min: 2, desired: 2, max: 6}`".into());
        return Err(err);
    };
    let replicas = replicas(r)?;
    let cpu_target_pct = s.opt_parsed("cpu_target_pct", "a percentage", |v| match v.parse::<u8>() {
        Ok(n) if (10..=90).contains(&n) => Ok(n),
        _ => Err(format!("expected the average CPU % the group keeps to, from 10 to 90, got {v:?}")),
    })?;
    if cpu_target_pct.is_some() && replicas.min == replicas.max {
        return Err(s.value_error(
            "cpu_target_pct",
            "`cpu_target_pct` scales between `replicas.min` and `replicas.max`, which are equal",
            Some("raise `replicas.max`, or remove `cpu_target_pct` for a fixed size".into()),
        ));
    }
    let Some(d) = s.opt_section("database")? else {
        let mut err = s.error("`scale:` needs `database:`: the replicas share one RDS database");
        err.hint = Some("add `database: {engine: rds, instance_class: db.t4g.micro, storage_gb: 20}`".into());
        return Err(err);
    };
    let database = rds(d, file)?;
    let log_retention_days = s.opt_parsed("log_retention_days", "a number of days", |v| match v.parse::<i32>() {
        Ok(n) if LOG_RETENTIONS.contains(&n) => Ok(n),
        _ => {
            let close = v.parse::<i32>().ok().and_then(|n| LOG_RETENTIONS.iter().find(|&&r| r >= n)).copied();
            let hint = close.map(|c| format!("; the nearest above is {c}")).unwrap_or_default();
            Err(format!("expected one of CloudWatch Logs' retentions (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, … days), got {v:?}{hint}"))
        }
    })?;
    let edge = super::edge::edge_settings(&mut s)?;
    s.finish()?;
    Ok(ScaleSettings { replicas, cpu_target_pct, database, log_retention_days: log_retention_days.unwrap_or(30), edge })
}

fn replicas(mut r: Section) -> Result<Replicas, StackError> {
    let count = |v: &str| match v.parse::<u16>() {
        Ok(n) if (1..=MAX_REPLICAS).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of instances from 1 to {MAX_REPLICAS}, got {v:?}")),
    };
    let min = r.opt_parsed("min", "a number", count)?;
    let desired = r.opt_parsed("desired", "a number", count)?;
    let max = r.opt_parsed("max", "a number", count)?;
    let (Some(min), Some(max)) = (min, max) else {
        return Err(r.error("`replicas` needs `min` and `max` (and `desired`, `min` when absent)"));
    };
    let desired = desired.unwrap_or(min);
    if !(min <= desired && desired <= max) {
        let mut err = r.error(format!("expected min <= desired <= max, got min {min}, desired {desired}, max {max}"));
        err.hint = Some("the group runs `desired` instances, never fewer than `min` nor more than `max`".into());
        return Err(err);
    }
    r.finish()?;
    Ok(Replicas { min, desired, max })
}

fn rds(mut d: Section, file: &std::path::Path) -> Result<RdsSettings, StackError> {
    d.opt_parsed("engine", "a database engine", |v| match v {
        "rds" => Ok(()),
        other => Err(format!("the replicas' database is RDS for PostgreSQL: `engine: rds`, not {other:?}")),
    })?;
    let instance_class = d.opt_parsed("instance_class", "an RDS instance class", |v| {
        let ok = v.strip_prefix("db.").is_some_and(|rest| {
            rest.split_once('.').is_some_and(|(f, s)| !f.is_empty() && !s.is_empty())
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        });
        if ok {
            Ok(v.to_string())
        } else {
            Err(format!("expected an RDS instance class such as db.t4g.micro, got {v:?}"))
        }
    })?;
    let storage_gb = d.opt_parsed("storage_gb", "a size in GB", |v| match v.parse::<u32>() {
        Ok(n) if (20..=65536).contains(&n) => Ok(n),
        _ => Err(format!("expected a size in GB from 20 to 65536 (RDS gp3's limits), got {v:?}")),
    })?;
    let backup_retention_days =
        d.opt_parsed("backup_retention_days", "a number of days", |v| match v.parse::<u8>() {
            Ok(n) if (1..=35).contains(&n) => Ok(n),
            _ => Err(format!("expected from 1 to 35 days of automated backups (0 would turn them off), got {v:?}")),
        })?;
    let settings = RdsSettings {
        ca_file: d.opt_str("ca_file")?.map(|p| super::project_path(file, &p)),
        instance_class: instance_class.unwrap_or_else(|| "db.t4g.micro".into()),
        storage_gb: storage_gb.unwrap_or(20),
        multi_az: d.opt_bool("multi_az")?.unwrap_or(false),
        backup_retention_days: backup_retention_days.unwrap_or(7),
    };
    d.finish()?;
    Ok(settings)
}
