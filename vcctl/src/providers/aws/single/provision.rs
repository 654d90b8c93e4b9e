//! The AWS workflow: what a stack wants (`BoxWanted`, from settings), what exists (`BoxFound`,
//! read from AWS by tags and names), the changes between them (`plan`, pure), and
//! `apply`, which makes them in dependency order. Every step looks before it creates, so
//! an interrupted `up` converges when run again.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;

use crate::cloud::aws::Stamp;
use crate::cloud::aws::address::{self, Address};
use crate::cloud::aws::cloudwatch::{self, Alarm};
use crate::cloud::aws::ec2::{self, Image, Instance, InstanceSpec, KeyPair};
use crate::cloud::aws::iam::{self, IamRole, InstanceProfile};
use crate::cloud::aws::security_group::{self, Rule, SecurityGroup};
use crate::cloud::aws::sns::{self, Topic};
use crate::cloud::aws::volume::{self, Volume};
use crate::cloud::aws::{self as aws, Aws};
use crate::error::Failure;
use crate::plan::Action;
use crate::printer::Printer;
use crate::providers::aws::alert_topic::{self, TopicOp};
use crate::providers::aws::firewall::{self, RuleOp};
use crate::providers::aws::names::BoxNames;
use crate::providers::aws::on_demand::lease;
use crate::providers::aws::owners::{self, Claim};
use crate::providers::aws::role::{self, RoleFound, RoleOp, RoleWanted};
use crate::providers::aws::single::scheduled::{self, BackupFound, BackupOp, BackupWanted};
use crate::providers::aws::{ROOT_VOLUME_GB, architecture};

#[derive(Debug, Clone)]
pub struct BoxWanted {
    pub stack: String,
    /// The tags of everything made for the stack, its id included.
    pub stamp: Stamp,
    pub region: String,
    pub names: BoxNames,
    pub instance_type: String,
    pub public_key: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub termination_protection: bool,
    pub rules: Vec<Rule>,
    pub policy: Value,
    pub user_data: String,
    /// The data volume's size (`aws.data_volume_gb`).
    pub data_volume_gb: i32,
    /// Who the alarms notify, through the stack's topic.
    pub alerts: Option<Alerts>,
    /// Scheduled backups of the data volume (`aws.backup`); `None`: off.
    pub backup: Option<BackupWanted>,
}

/// `alerts: {email}`: the stack's SNS topic (its ARN known before it exists) and its address.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub topic_arn: String,
    pub email: String,
}

/// The inbound rules at rest. With TLS, HTTPS (443) and HTTP (80, which redirects and answers
/// ACME challenges) for everyone, and the service's port for nobody: Caddy reaches it on
/// loopback. Without, HTTP and the service's port. SSH and Prometheus only for `admin_cidrs`
/// (none with on-demand SSH, whose rules are temporary and never planned).
pub fn rules(admin_cidrs: &[String], service_port: u16, tls: bool) -> Vec<Rule> {
    let mut rules = vec![Rule::tcp(80, "0.0.0.0/0", "HTTP for vehicle apps and gateways")];
    if tls {
        rules.push(Rule::tcp(443, "0.0.0.0/0", "HTTPS for vehicle apps and gateways"));
    } else {
        rules.push(Rule::tcp(service_port, "0.0.0.0/0", "vehicleconnect API"));
    }
    for cidr in admin_cidrs {
        rules.push(Rule::tcp(22, cidr, "SSH from an admin network"));
        rules.push(Rule::tcp(9090, cidr, "Prometheus from an admin network"));
    }
    rules.sort();
    rules.dedup();
    rules
}

impl BoxWanted {
    /// The host role as the shared role resource sees it.
    fn role(&self) -> RoleWanted<'_> {
        RoleWanted::instance(&self.stack, &self.names.role, &self.names.policy, &self.policy)
    }
}

#[derive(Debug, Clone, Default)]
pub struct BoxFound {
    pub key_pair: Option<KeyPair>,
    pub security_group: Option<SecurityGroup>,
    /// The host role, its policy and whatever else is attached to it.
    pub role: RoleFound,
    pub instance_profile: Option<InstanceProfile>,
    pub instance: Option<Instance>,
    pub termination_protection: Option<bool>,
    pub alarms: Vec<Alarm>,
    /// The stack's Elastic IP.
    pub address: Option<Address>,
    /// The stack's data volume (PostgreSQL's data).
    pub data_volume: Option<Volume>,
    /// The stack's alert topic.
    pub topic: Option<Topic>,
    /// The CI deploy role (`vcctl ci init`).
    pub deploy_role: Option<IamRole>,
    /// When this was read: what temporary SSH rules are judged expired at.
    pub read_at: Option<time::OffsetDateTime>,
    /// AWS Backup's vault, plan, selection and role.
    pub backup: BackupFound,
}

impl BoxFound {
    pub fn is_empty(&self) -> bool {
        self.key_pair.is_none()
            && self.security_group.is_none()
            && !self.role.exists()
            && self.instance_profile.is_none()
            && self.instance.is_none()
            && self.alarms.is_empty()
            && self.address.is_none()
            && self.data_volume.is_none()
            && self.topic.is_none()
            && self.deploy_role.is_none()
            && self.backup.is_empty()
    }

    /// Every resource found, with what its tags say and how to tag it as the stack's.
    pub fn claims(&self, n: &BoxNames) -> Vec<(Claim<'_>, Adopt)> {
        let mut out = Vec::new();
        let mut claim = |what: String, owner, adopt| out.push((Claim { what, owner }, adopt));
        if let Some(k) = &self.key_pair {
            claim(format!("key pair {}", n.key_pair), &k.owner, Adopt::Ec2(k.id.clone()));
        }
        if let Some(g) = &self.security_group {
            claim(format!("security group {}", g.id), &g.owner, Adopt::Ec2(g.id.clone()));
        }
        if let Some(r) = &self.role.role {
            claim(format!("IAM role {}", n.role), &r.owner, Adopt::Role(n.role.clone()));
        }
        if let Some(p) = &self.instance_profile {
            claim(format!("instance profile {}", n.instance_profile), &p.owner, Adopt::InstanceProfile);
        }
        if let Some(i) = &self.instance {
            claim(format!("instance {}", i.id), &i.owner, Adopt::Ec2(i.id.clone()));
        }
        if let Some(v) = &self.data_volume {
            claim(format!("data volume {} ({} GB)", v.id, v.size_gb), &v.owner, Adopt::Ec2(v.id.clone()));
        }
        if let Some(t) = &self.topic {
            claim(format!("alert topic {}", t.arn), &t.owner, Adopt::Topic(t.arn.clone()));
        }
        if let Some(a) = &self.address {
            claim(
                format!("Elastic IP {} ({})", a.public_ip, a.allocation_id),
                &a.owner,
                Adopt::Ec2(a.allocation_id.clone()),
            );
        }
        if let Some(r) = &self.deploy_role {
            claim(format!("CI deploy role {}", n.deploy_role), &r.owner, Adopt::Role(n.deploy_role.clone()));
        }
        for a in &self.alarms {
            if let (Some(owner), Some(arn)) = (&a.owner, &a.arn) {
                claim(format!("alarm {}", a.name), owner, Adopt::Alarm(arn.clone()));
            }
        }
        let b = &self.backup;
        if let Some(p) = &b.plan {
            claim(format!("backup plan {} and its selection", p.name), &p.owner, Adopt::Backup(p.arn.clone()));
        }
        if let Some(r) = &b.role.role {
            claim(format!("IAM role {} of AWS Backup", n.backup_role), &r.owner, Adopt::Role(n.backup_role.clone()));
        }
        if let Some(v) = &b.vault {
            let what = format!("backup vault {} and its {} recovery point(s)", v.name, v.recovery_points);
            claim(what, &v.owner, Adopt::Backup(v.arn.clone()));
        }
        out
    }
}

/// How a resource an older vcctl made is tagged with the stack's id.
#[derive(Debug, Clone)]
pub enum Adopt {
    /// A key pair, security group or instance, by its id.
    Ec2(String),
    /// A role, by its name.
    Role(String),
    InstanceProfile,
    /// An alarm, by its ARN.
    Alarm(String),
    /// An SNS topic, by its ARN.
    Topic(String),
    /// An AWS Backup vault or plan, by its ARN.
    Backup(String),
}

/// Checks that every resource found is this stack's (exit 3 naming those that are not),
/// and returns the changes that tag an older vcctl's resources with the stack's id.
pub fn ownership(
    names: &BoxNames,
    stack: &str,
    f: &BoxFound,
    id: Option<&str>,
    file: &std::path::Path,
) -> Result<Vec<Change>, Failure> {
    let claims = f.claims(names);
    let only: Vec<Claim> = claims.iter().map(|(c, _)| Claim { what: c.what.clone(), owner: c.owner }).collect();
    let adopt = owners::check(&only, stack, id, file)?;
    Ok(adopt
        .into_iter()
        .map(|i| {
            let (claim, how) = &claims[i];
            change(
                Action::Update,
                claim.what.clone(),
                "made by vcctl before stack ids: tag it with this stack's id",
                Op::Adopt(how.clone()),
            )
        })
        .collect())
}

pub async fn find(aws: &Aws, names: &BoxNames, stack: &str, topic_arn: &str) -> Result<BoxFound> {
    let role = role::survey(&aws.iam, &names.role, &names.policy).await?;
    let instance = ec2::find_instance(&aws.ec2, stack).await?;
    let termination_protection = match &instance {
        Some(i) => Some(ec2::termination_protection(&aws.ec2, &i.id).await?),
        None => None,
    };
    Ok(BoxFound {
        key_pair: ec2::find_key_pair(&aws.ec2, &names.key_pair).await?,
        security_group: security_group::find(&aws.ec2, stack).await?,
        role,
        instance_profile: iam::get_instance_profile(&aws.iam, &names.instance_profile).await?,
        instance,
        termination_protection,
        alarms: cloudwatch::find(&aws.cloudwatch, stack).await?,
        address: address::find(&aws.ec2, stack).await?,
        data_volume: volume::find(&aws.ec2, stack, "data").await?,
        topic: sns::find(&aws.sns, topic_arn).await?,
        deploy_role: iam::get_role(&aws.iam, &names.deploy_role).await?,
        read_at: Some(time::OffsetDateTime::now_utc()),
        backup: scheduled::find(aws, names).await?,
    })
}

/// The temporary SSH rules still held (on-demand SSH of commands running now, or killed
/// less than a lease ago), with when their last lease ends: left alone by `up`.
pub fn held_temporary_rules(f: &BoxFound) -> Vec<(Rule, String)> {
    let now = f.read_at.unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let Some(sg) = &f.security_group else { return Vec::new() };
    sg.rules
        .iter()
        .filter(|r| lease::is_temporary(&r.tags) && !lease::expired(&r.tags, now))
        .map(|r| (r.clone(), lease::held_until(&r.tags).map(crate::audit::stamp).unwrap_or_default()))
        .collect()
}

/// One change of the box and the operation that makes it.
pub type Change = crate::plan::Change<Op>;

#[derive(Debug, Clone)]
pub enum Op {
    ImportKeyPair,
    CreateSecurityGroup,
    AddRules(Vec<Rule>),
    RemoveRules(Vec<Rule>),
    Role(RoleOp),
    CreateInstanceProfile,
    AddRoleToProfile,
    RunInstance,
    AllocateAddress,
    AssociateAddress,
    CreateVolume,
    AttachVolume,
    GrowVolume(i32),
    Topic(TopicOp),
    ChangeType(String),
    StartInstance,
    RequireImdsV2,
    SetTerminationProtection(bool),
    PutAlarm(Box<Alarm>),
    DeleteAlarms(Vec<String>),
    Adopt(Adopt),
    Backup(BackupOp),
}

impl Op {
    /// A stable name, for fault injection in tests (`VCCTL_FAULT=abort-after:<name>`).
    fn name(&self) -> &'static str {
        match self {
            Op::ImportKeyPair => "key_pair",
            Op::CreateSecurityGroup => "security_group",
            Op::AddRules(_) => "add_rules",
            Op::RemoveRules(_) => "remove_rules",
            Op::Role(op) => op.name(),
            Op::CreateInstanceProfile => "instance_profile",
            Op::AddRoleToProfile => "profile_role",
            Op::RunInstance => "instance",
            Op::AllocateAddress => "address",
            Op::AssociateAddress => "associate_address",
            Op::CreateVolume => "data_volume",
            Op::AttachVolume => "attach_volume",
            Op::GrowVolume(_) => "grow_volume",
            Op::Topic(op) => op.name(),
            Op::ChangeType(_) => "instance_type",
            Op::StartInstance => "start_instance",
            Op::RequireImdsV2 => "imds",
            Op::SetTerminationProtection(_) => "termination_protection",
            Op::PutAlarm(_) => "alarm",
            Op::DeleteAlarms(_) => "delete_alarms",
            Op::Adopt(_) => "adopt",
            Op::Backup(op) => op.name(),
        }
    }
}

fn change(action: Action, resource: impl Into<String>, detail: impl Into<String>, op: Op) -> Change {
    Change { action, resource: resource.into(), detail: detail.into(), op }
}

/// The changes that turn `found` into `wanted`, in the order they must be made. Pure.
pub fn plan(w: &BoxWanted, f: &BoxFound, region: &str) -> Vec<Change> {
    let mut out = Vec::new();
    if f.key_pair.is_none() {
        out.push(change(
            Action::Create,
            format!("key pair {}", w.names.key_pair),
            "imported from the stack's ssh_public_key",
            Op::ImportKeyPair,
        ));
    }
    plan_security_group(w, f, &mut out);
    plan_role(w, f, &mut out);
    plan_instance_profile(w, f, &mut out);
    let instance_id = plan_instance(w, f, region, &mut out);
    plan_address(w, f, &mut out);
    plan_data_volume(w, f, &mut out);
    plan_alerts(w, f, &mut out);
    plan_alarms(w, f, region, &instance_id, &mut out);
    out.extend(
        scheduled::plan(w.backup.as_ref(), &f.backup, &w.names)
            .into_iter()
            .map(|c| change(c.action, c.resource, c.detail, Op::Backup(c.op))),
    );
    out
}

fn plan_security_group(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    use Action::*;
    let Some(sg) = &f.security_group else {
        out.push(change(
            Create,
            format!("security group {}", w.names.security_group),
            format!("with {} rules", w.rules.len()),
            Op::CreateSecurityGroup,
        ));
        out.push(change(
            Create,
            "security group rules",
            w.rules.iter().map(Rule::to_string).collect::<Vec<_>>().join("; "),
            Op::AddRules(w.rules.clone()),
        ));
        return;
    };
    let now = f.read_at.unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let planned = firewall::plan(&sg.id, &w.rules, &sg.rules, now);
    out.extend(planned.into_iter().map(|c| {
        let op = match c.op {
            RuleOp::Authorize(rules) => Op::AddRules(rules),
            RuleOp::Revoke(rules) => Op::RemoveRules(rules),
        };
        Change { action: c.action, resource: c.resource, detail: c.detail, op }
    }));
}

fn plan_role(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    let planned = role::plan(&w.role(), &f.role);
    out.extend(planned.into_iter().map(|c| Change {
        action: c.action,
        resource: c.resource,
        detail: c.detail,
        op: Op::Role(c.op),
    }));
}

fn plan_instance_profile(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    let n = &w.names;
    match &f.instance_profile {
        None => {
            out.push(change(
                Action::Create,
                format!("instance profile {}", n.instance_profile),
                format!("holding role {}", n.role),
                Op::CreateInstanceProfile,
            ));
            out.push(change(Action::Create, format!("role {} in profile", n.role), "", Op::AddRoleToProfile));
        }
        Some(p) if !p.roles.contains(&n.role) => {
            out.push(change(
                Action::Update,
                format!("instance profile {}", n.instance_profile),
                format!("add role {}", n.role),
                Op::AddRoleToProfile,
            ));
        }
        Some(_) => {}
    }
}

/// The instance's changes; its id (or a placeholder for one to be made), for the alarms.
fn plan_instance(w: &BoxWanted, f: &BoxFound, region: &str, out: &mut Vec<Change>) -> String {
    use Action::*;
    let Some(i) = &f.instance else {
        out.push(change(
            Create,
            format!("instance {}", w.names.instance),
            format!(
                "{} in {region}, Debian 12 ({}), IMDSv2, encrypted gp3{}",
                w.instance_type,
                architecture(&w.instance_type),
                if w.termination_protection { ", termination protection" } else { "" }
            ),
            Op::RunInstance,
        ));
        return "(new instance)".to_string();
    };
    let retype = i.instance_type != w.instance_type;
    if retype {
        out.push(change(
            Update,
            format!("instance {}", i.id),
            format!("type {} → {} (stop, modify)", i.instance_type, w.instance_type),
            Op::ChangeType(w.instance_type.clone()),
        ));
    }
    // Stopped by hand, or by a type change that was interrupted: it serves nothing.
    let stopped = matches!(i.state.as_str(), "stopped" | "stopping");
    if retype || stopped {
        let why = if retype { "after its type change" } else { "it is stopped" };
        out.push(change(Update, format!("instance {}", i.id), format!("start ({why})"), Op::StartInstance));
    }
    if !i.imds_tokens_required || i.imds_hop_limit != 1 {
        out.push(change(Update, format!("instance {}", i.id), "require IMDSv2 with hop limit 1", Op::RequireImdsV2));
    }
    if f.termination_protection != Some(w.termination_protection) {
        out.push(change(
            Update,
            format!("instance {}", i.id),
            format!("termination protection {}", if w.termination_protection { "on" } else { "off" }),
            Op::SetTerminationProtection(w.termination_protection),
        ));
    }
    i.id.clone()
}

/// The data volume: made once in the instance's zone, attached to it (a new instance too,
/// launched in the volume's zone), grown when the stack asks for more (never shrunk: `up`
/// refuses that before planning, `check_data_volume`).
fn plan_data_volume(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    let attach = |out: &mut Vec<Change>, what: String| {
        out.push(change(Action::Update, what, "attach to the instance", Op::AttachVolume));
    };
    let Some(v) = &f.data_volume else {
        let what = format!("data volume {}", w.names.data_volume);
        let detail = format!("{} GB gp3, encrypted, kept when the instance goes", w.data_volume_gb);
        out.push(change(Action::Create, what.clone(), detail, Op::CreateVolume));
        attach(out, what);
        return;
    };
    let instance = f.instance.as_ref().map(|i| i.id.as_str());
    if instance.is_none() || v.instance_id.as_deref() != instance {
        attach(out, format!("data volume {}", v.id));
    }
    if w.data_volume_gb > v.size_gb {
        let detail = format!("{} GB → {} GB (online; the filesystem grows at the deploy)", v.size_gb, w.data_volume_gb);
        out.push(change(Action::Update, format!("data volume {}", v.id), detail, Op::GrowVolume(w.data_volume_gb)));
    }
}

/// The alert topic and its one email subscription (the one topic resource of both shapes).
fn plan_alerts(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    let arn = w
        .alerts
        .as_ref()
        .map_or_else(|| f.topic.as_ref().map(|t| t.arn.clone()).unwrap_or_default(), |a| a.topic_arn.clone());
    let planned = alert_topic::plan(&arn, w.alerts.as_ref().map(|a| a.email.as_str()), f.topic.as_ref());
    out.extend(planned.into_iter().map(|c| Change {
        action: c.action,
        resource: c.resource,
        detail: c.detail,
        op: Op::Topic(c.op),
    }));
}

/// A data volume can grow, never shrink: refused, naming the setting.
pub fn check_data_volume(w: &BoxWanted, f: &BoxFound, file: &std::path::Path) -> Result<(), Failure> {
    match &f.data_volume {
        Some(v) if w.data_volume_gb < v.size_gb => Err(Failure::invalid(
            format!(
                "aws.data_volume_gb in `{}` is {} GB, but data volume {} has {} GB: EBS volumes cannot shrink",
                file.display(),
                w.data_volume_gb,
                v.id,
                v.size_gb
            ),
            Some(format!(
                "set aws.data_volume_gb: {} (or more); to move to a smaller volume, `vcctl db dump`, a new stack, `vcctl db restore`",
                v.size_gb
            )),
        )),
        _ => Ok(()),
    }
}

/// The Elastic IP: allocated once, associated with the stack's instance (a new one too).
fn plan_address(w: &BoxWanted, f: &BoxFound, out: &mut Vec<Change>) {
    let Some(a) = &f.address else {
        out.push(change(
            Action::Create,
            format!("Elastic IP {}", w.names.address),
            "a stable address",
            Op::AllocateAddress,
        ));
        out.push(change(
            Action::Update,
            format!("Elastic IP {}", w.names.address),
            "associate with the instance",
            Op::AssociateAddress,
        ));
        return;
    };
    let instance = f.instance.as_ref().map(|i| i.id.as_str());
    if instance.is_none() || a.instance_id.as_deref() != instance {
        let now = a.instance_id.as_deref().map_or("not associated".to_string(), |i| format!("associated with {i}"));
        out.push(change(
            Action::Update,
            format!("Elastic IP {} ({})", a.public_ip, a.allocation_id),
            format!("associate with the instance ({now})"),
            Op::AssociateAddress,
        ));
    }
}

fn plan_alarms(w: &BoxWanted, f: &BoxFound, region: &str, instance_id: &str, out: &mut Vec<Change>) {
    use Action::*;
    let topic = w.alerts.as_ref().map(|a| a.topic_arn.as_str());
    let wanted_alarms = cloudwatch::wanted(&w.stack, region, instance_id, topic);
    for a in &wanted_alarms {
        match f.alarms.iter().find(|x| x.name == a.name) {
            None => out.push(change(
                Create,
                format!("alarm {}", a.name),
                format!("{} > {} for {} x {}s", a.metric, a.threshold, a.evaluation_periods, a.period_s),
                Op::PutAlarm(Box::new(a.clone())),
            )),
            Some(found) if !found.matches(a) => out.push(change(
                Update,
                format!("alarm {}", a.name),
                "changed outside vcctl",
                Op::PutAlarm(Box::new(a.clone())),
            )),
            Some(_) => {}
        }
    }
    let stray: Vec<String> =
        f.alarms.iter().filter(|a| !wanted_alarms.iter().any(|w| w.name == a.name)).map(|a| a.name.clone()).collect();
    if !stray.is_empty() {
        out.push(change(Delete, "alarms", stray.join(", "), Op::DeleteAlarms(stray)));
    }
}

/// Makes the changes, in order. Needs what `find` saw for the ids it already knows.
pub async fn apply(
    aws: &Aws,
    w: &BoxWanted,
    found: &BoxFound,
    changes: &[Change],
    printer: &Printer,
) -> Result<Option<String>> {
    let mut ids = Ids {
        sg: found.security_group.as_ref().map(|g| g.id.clone()),
        instance: found.instance.as_ref().map(|i| i.id.clone()),
        allocation: found.address.as_ref().map(|a| a.allocation_id.clone()),
        data_volume: found.data_volume.as_ref().map(|v| v.id.clone()),
        backup_plan: found.backup.plan.as_ref().map(|p| p.id.clone()),
    };
    let fault = std::env::var("VCCTL_FAULT").ok();
    for c in changes {
        let step = printer.step(format!("{} {}", verb(c.action), c.resource));
        if !apply_base(aws, w, &c.op, &mut ids).await? && !apply_instance(aws, w, found, &c.op, &mut ids, &step).await?
        {
            apply_data(aws, w, &c.op, &mut ids, &step).await?;
        }
        step.done(&c.detail);
        if fault.as_deref() == Some(&format!("abort-after:{}", c.op.name())) {
            crate::printer::say(format!("VCCTL_FAULT: aborting after {}", c.op.name()));
            std::process::abort();
        }
    }
    Ok(ids.instance)
}

/// The ids `apply` learns as it makes things, for the changes after.
struct Ids {
    sg: Option<String>,
    instance: Option<String>,
    allocation: Option<String>,
    data_volume: Option<String>,
    backup_plan: Option<String>,
}

impl Ids {
    fn instance(&self) -> Result<&str> {
        self.instance.as_deref().context("no instance")
    }
}

/// The key pair, the firewall, IAM, the alarms and adoption; `false`: not one of those.
async fn apply_base(aws: &Aws, w: &BoxWanted, op: &Op, ids: &mut Ids) -> Result<bool> {
    let n = &w.names;
    match op {
        Op::ImportKeyPair => ec2::import_key_pair(&aws.ec2, &n.key_pair, &w.public_key, &w.stamp).await?,
        Op::CreateSecurityGroup => {
            let vpc = match &w.vpc_id {
                Some(v) => v.clone(),
                None => ec2::default_vpc(&aws.ec2).await?,
            };
            ids.sg = Some(security_group::create(&aws.ec2, &n.security_group, &vpc, &w.stamp).await?);
        }
        Op::AddRules(rules) => {
            security_group::authorize(&aws.ec2, ids.sg.as_deref().context("no security group")?, rules).await?
        }
        Op::RemoveRules(rules) => {
            security_group::revoke(&aws.ec2, ids.sg.as_deref().context("no security group")?, rules).await?
        }
        Op::Role(op) => role::apply(&aws.iam, &w.role(), op, &w.stamp).await?,
        Op::CreateInstanceProfile => iam::create_instance_profile(&aws.iam, &n.instance_profile, &w.stamp).await?,
        Op::AddRoleToProfile => iam::add_role(&aws.iam, &n.instance_profile, &n.role).await?,
        Op::PutAlarm(a) => {
            let mut a = (**a).clone();
            if let Some((_, value)) = a.dimensions.iter_mut().find(|(k, _)| k == "InstanceId") {
                *value = ids.instance.clone().context("no instance for the alarm")?;
            }
            cloudwatch::put(&aws.cloudwatch, &w.stamp, &a).await?;
        }
        Op::DeleteAlarms(names) => cloudwatch::delete(&aws.cloudwatch, names).await?,
        Op::Adopt(how) => adopt(aws, w, how).await?,
        Op::Backup(op) => scheduled::apply(aws, w.backup.as_ref(), op, &mut ids.backup_plan, &w.stamp).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// The instance's own changes; `false`: not one of those.
async fn apply_instance(
    aws: &Aws,
    w: &BoxWanted,
    found: &BoxFound,
    op: &Op,
    ids: &mut Ids,
    step: &crate::printer::Step,
) -> Result<bool> {
    match op {
        Op::RunInstance => ids.instance = Some(launch(aws, w, found, ids.sg.as_deref(), step).await?),
        Op::ChangeType(t) => ec2::change_instance_type(&aws.ec2, ids.instance()?, t).await?,
        Op::StartInstance => ec2::start_instance(&aws.ec2, ids.instance()?).await?,
        Op::RequireImdsV2 => ec2::require_imdsv2(&aws.ec2, ids.instance()?).await?,
        Op::SetTerminationProtection(on) => ec2::set_termination_protection(&aws.ec2, ids.instance()?, *on).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// What outlives the instance or reaches people: the address, the data volume, the alerts.
async fn apply_data(aws: &Aws, w: &BoxWanted, op: &Op, ids: &mut Ids, step: &crate::printer::Step) -> Result<()> {
    let n = &w.names;
    match op {
        Op::AllocateAddress => ids.allocation = Some(address::allocate(&aws.ec2, &n.address, &w.stamp).await?),
        Op::AssociateAddress => {
            // An instance takes an address once it runs (or is stopped), not while pending.
            ec2::wait_running(&aws.ec2, ids.instance()?, Duration::from_secs(300)).await?;
            address::associate(&aws.ec2, ids.allocation.as_deref().context("no Elastic IP")?, ids.instance()?).await?
        }
        Op::CreateVolume => {
            let zone = ec2::availability_zone(&aws.ec2, ids.instance()?).await?;
            let id = volume::create(&aws.ec2, &n.data_volume, &zone, w.data_volume_gb, &w.stamp).await?;
            step.note(&id);
            ids.data_volume = Some(id);
        }
        Op::AttachVolume => {
            ec2::wait_running(&aws.ec2, ids.instance()?, Duration::from_secs(300)).await?;
            volume::attach(&aws.ec2, ids.data_volume.as_deref().context("no data volume")?, ids.instance()?).await?
        }
        Op::GrowVolume(gb) => {
            volume::grow(&aws.ec2, ids.data_volume.as_deref().context("no data volume")?, *gb).await?
        }
        Op::Topic(op) => {
            let arn = w.alerts.as_ref().map_or("", |a| a.topic_arn.as_str());
            alert_topic::apply(&aws.sns, &n.topic, arn, op, &w.stamp).await?
        }
        other => anyhow::bail!("no way to apply `{}`", other.name()),
    }
    Ok(())
}

/// Launches the stack's instance: the pinned Debian image, in a kept data volume's zone.
async fn launch(
    aws: &Aws,
    w: &BoxWanted,
    found: &BoxFound,
    sg: Option<&str>,
    step: &crate::printer::Step,
) -> Result<String> {
    let n = &w.names;
    let image = resolve_ami(aws, &w.instance_type).await?;
    step.note(format!("{} ({})", image.id, image.name));
    let sg = sg.context("no security group")?;
    let spec = InstanceSpec {
        stamp: &w.stamp,
        name: &n.instance,
        image: &image,
        instance_type: &w.instance_type,
        key_name: &n.key_pair,
        security_group_id: sg,
        subnet_id: w.subnet_id.as_deref(),
        // A kept data volume attaches only in its own zone.
        availability_zone: found.data_volume.as_ref().map(|v| v.availability_zone.as_str()),
        instance_profile: &n.instance_profile,
        user_data_base64: base64::engine::general_purpose::STANDARD.encode(&w.user_data),
        termination_protection: w.termination_protection,
        volume_gb: ROOT_VOLUME_GB,
        client_token: client_token(&w.stamp.id, sg, time::OffsetDateTime::now_utc()),
    };
    let id = run_instance_when_profile_ready(aws, &spec).await?;
    if w.termination_protection {
        // Set again explicitly: cheap, idempotent, and not every endpoint honours
        // RunInstances' DisableApiTermination.
        ec2::set_termination_protection(&aws.ec2, &id, true).await?;
    }
    Ok(id)
}

/// Tags a resource an older vcctl made with the stack's id.
async fn adopt(aws: &Aws, w: &BoxWanted, how: &Adopt) -> Result<()> {
    match how {
        Adopt::Ec2(id) => ec2::tag(&aws.ec2, id, &w.stamp).await,
        Adopt::Role(name) => iam::tag_role(&aws.iam, name, &w.stamp).await,
        Adopt::InstanceProfile => iam::tag_instance_profile(&aws.iam, &w.names.instance_profile, &w.stamp).await,
        Adopt::Alarm(arn) => cloudwatch::tag(&aws.cloudwatch, arn, &w.stamp).await,
        Adopt::Topic(arn) => sns::tag(&aws.sns, arn, &w.stamp).await,
        Adopt::Backup(arn) => crate::cloud::aws::backup::tag(&aws.backup, arn, &w.stamp).await,
    }
}

/// The `RunInstances` idempotency token, from the stack's id, its group and the hour: the
/// SDK's retries of one call, and a re-run within the hour, can never start a second
/// instance. (A re-run also finds a started instance by its tags first, and the stack's lock
/// keeps two `up`s apart.) The hour keeps a stack whose instance was terminated by hand from
/// being answered with that dead instance for as long as AWS remembers tokens.
pub fn client_token(stack_id: &str, security_group: &str, now: time::OffsetDateTime) -> String {
    use sha2::Digest;
    let hour = format!("{:04}{:02}{:02}{:02}", now.year(), now.month() as u8, now.day(), now.hour());
    let digest = sha2::Sha256::digest(format!("{stack_id}/{security_group}/{hour}"));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    // At most 64 ASCII characters, whatever the stack's name.
    format!("vcctl-{hex}-{hour}")
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Delete => "removing",
        Action::Unknown | Action::Note => "checking",
    }
}

/// The AMI for a new instance: the newest official Debian 12 for its architecture. Pinned in
/// the instance's `vcctl:ami` tag, so later runs never replace the instance for a newer one.
async fn resolve_ami(aws: &Aws, instance_type: &str) -> Result<Image> {
    let arch = architecture(instance_type);
    match ec2::latest_debian(&aws.ec2, arch).await? {
        Some(i) => Ok(i),
        None => {
            bail!("no official Debian 12 AMI (owner {}, debian-12-*) for {arch} in {}", ec2::DEBIAN_OWNER, aws.region)
        }
    }
}

/// A new instance profile takes a few seconds to be usable by EC2 (IAM is eventually
/// consistent): retry exactly that error with backoff, up to about a minute.
async fn run_instance_when_profile_ready(aws: &Aws, spec: &InstanceSpec<'_>) -> Result<String> {
    let mut delay = Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    loop {
        match ec2::run_instance(&aws.ec2, spec).await {
            Ok(id) => return Ok(id),
            Err(e) => {
                let msg = aws_sdk_ec2::error::ProvideErrorMetadata::message(&e).unwrap_or_default().to_string();
                let not_yet = aws::code_of(&e) == Some("InvalidParameterValue") && msg.contains("iamInstanceProfile");
                if not_yet && waited < Duration::from_secs(60) {
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
                return Err(aws::error("ec2:RunInstances", &format!("launching instance {}", spec.name), e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> BoxWanted {
        BoxWanted {
            stack: "fra".into(),
            stamp: Stamp { stack: "fra".into(), id: "0123456789abcdef".into() },
            region: "eu-central-1".into(),
            names: BoxNames::of("fra"),
            instance_type: "t2.micro".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            vpc_id: None,
            subnet_id: None,
            termination_protection: false,
            rules: rules(&["203.0.113.7/32".into()], 8000, false),
            policy: iam::instance_policy("fra"),
            user_data: String::new(),
            data_volume_gb: 20,
            alerts: None,
            backup: None,
        }
    }

    #[test]
    fn an_empty_account_needs_everything_in_dependency_order() {
        let changes = plan(&wanted(), &BoxFound::default(), "eu-central-1");
        let ops: Vec<&str> = changes.iter().map(|c| c.op.name()).collect();
        assert_eq!(
            ops,
            [
                "key_pair",
                "security_group",
                "add_rules",
                "role",
                "policy",
                "instance_profile",
                "profile_role",
                "instance",
                "address",
                "associate_address",
                "data_volume",
                "attach_volume",
                "alarm",
                "alarm",
                "alarm"
            ]
        );
    }

    #[test]
    fn admin_ports_are_only_for_admin_networks() {
        let r = rules(&["203.0.113.7/32".into(), "2001:db8::/32".into()], 8000, false);
        let world = security_group::RuleSource::Cidr("0.0.0.0/0".into());
        for rule in &r {
            assert_eq!((rule.protocol.as_str(), rule.from_port), ("tcp", rule.to_port), "one TCP port: {rule}");
            match rule.from_port {
                22 | 9090 => assert_ne!(rule.source, world),
                80 | 8000 => assert_eq!(rule.source, world),
                p => panic!("unexpected port {p}"),
            }
            assert!(!rule.description.is_empty());
        }
        assert_eq!(r.len(), 6);
    }

    /// An account with only the stack's security group, holding `rules`.
    fn with_rules(rules: Vec<Rule>) -> BoxFound {
        let group =
            SecurityGroup { id: "sg-1".into(), name: "x".into(), vpc_id: "v".into(), rules, owner: Default::default() };
        BoxFound { security_group: Some(group), ..BoxFound::default() }
    }

    #[test]
    fn with_tls_the_world_gets_https_and_http_and_never_the_service_port() {
        let r = rules(&[], 8000, true);
        let ports: Vec<i32> = r.iter().map(|r| r.from_port).collect();
        assert_eq!(ports, [80, 443], "{r:?}");
        assert!(rules(&[], 8000, false).iter().any(|r| r.from_port == 8000));
    }

    #[test]
    fn temporary_ssh_rules_are_left_while_held_and_removed_once_expired() {
        let at = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        let temporary = |cidr: &str, until: &str| {
            let mut r = Rule::tcp(22, cidr, "vcctl on-demand SSH");
            r.tags.insert(lease::TAG_TEMPORARY.into(), "ssh".into());
            r.tags.insert(lease::lease_key("abcd"), until.into());
            r
        };
        let mut w = wanted();
        w.rules = rules(&[], 8000, false);
        let mut found_rules = w.rules.clone();
        found_rules.push(temporary("198.51.100.1/32", "2026-11-30T10:15:00Z"));
        found_rules.push(temporary("198.51.100.2/32", "2026-11-30T09:59:00Z"));
        let f = BoxFound { read_at: Some(at("2026-11-30T10:00:00Z")), ..with_rules(found_rules) };
        let details: Vec<String> = plan(&w, &f, "eu-central-1")
            .iter()
            .filter(|c| c.resource == "rule on sg-1")
            .map(|c| c.detail.clone())
            .collect();
        assert_eq!(
            details,
            ["tcp/22 from 198.51.100.2/32 (vcctl on-demand SSH): temporary SSH access, expired 2026-11-30T09:59:00Z"]
        );
        let held = held_temporary_rules(&f);
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].0.to_string(), held[0].1.as_str()),
            ("tcp/22 from 198.51.100.1/32 (vcctl on-demand SSH)".into(), "2026-11-30T10:15:00Z")
        );
    }

    #[test]
    fn drift_in_rules_is_planned_both_ways() {
        let w = wanted();
        let mut found_rules = w.rules.clone();
        found_rules.retain(|r| r.from_port != 9090);
        found_rules.push(Rule::tcp(22, "0.0.0.0/0", "opened by hand"));
        let changes = plan(&w, &with_rules(found_rules), "eu-central-1");
        let details: Vec<String> = changes
            .iter()
            .filter(|c| c.resource == "rule on sg-1")
            .map(|c| format!("{:?} {}", c.action, c.detail))
            .collect();
        assert_eq!(
            details,
            [
                "Delete tcp/22 from 0.0.0.0/0 (opened by hand): not in the stack file (added by hand, or no longer asked for)",
                "Create tcp/9090 from 203.0.113.7/32 (Prometheus from an admin network)",
            ]
        );
    }

    #[test]
    fn client_tokens_fit_aws_limit() {
        let t = client_token(&"a".repeat(32), "sg-0123456789abcdef0", time::macros::datetime!(2026-11-28 10:15 UTC));
        assert!(t.len() <= 64, "{t}");
        assert!(t.ends_with("-2026112810"));
    }

    #[test]
    fn architectures() {
        assert_eq!(architecture("t2.micro"), "x86_64");
        assert_eq!(architecture("t3a.small"), "x86_64");
        assert_eq!(architecture("t4g.small"), "arm64");
        assert_eq!(architecture("m7gd.large"), "arm64");
        assert_eq!(architecture("a1.medium"), "arm64");
    }
}
