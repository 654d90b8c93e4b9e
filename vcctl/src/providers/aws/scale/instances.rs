//! The instances tier of a `scale:` stack: the instances' role and profile (least privilege:
//! the bucket's kit and releases, the database's secret, metrics), the launch template
//! (IMDSv2 only, an encrypted gp3 root, templates/boot.sh as user data), the Auto Scaling
//! group in the target group, and its CPU target. Planned apart from the calls, as the other
//! tiers are.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cloud::aws::autoscaling::{self, Group, GroupSize, GroupSpec};
use crate::cloud::aws::ec2::{self, KeyPair};
use crate::cloud::aws::iam::{self, IamRole, InstanceProfile};
use crate::cloud::aws::launch_template::{self, Launch, Template};
use crate::cloud::aws::{Aws, Stamp};
use crate::plan::{Action, Change};
use crate::printer::Printer;
use crate::providers::aws::names;
use crate::providers::aws::names::InstanceNames;
use crate::providers::aws::role::{self, RoleFound, RoleOp, RoleWanted};
use crate::providers::aws::scale::tiers::{fault_point, owned, until_gone};

/// What exists of the tier.
#[derive(Debug, Default)]
pub struct InstancesFound {
    pub key_pair: Option<KeyPair>,
    /// The instances' role, its policy and whatever else is attached to it.
    pub role: RoleFound,
    pub profile: Option<InstanceProfile>,
    pub template: Option<Template>,
    pub group: Option<Group>,
    pub cpu_target: Option<f64>,
    /// The CI deploy role (`vcctl ci init`).
    pub deploy_role: Option<IamRole>,
    /// Each of the group's instances' configuration (its `vcctl:config` tag).
    pub configs: std::collections::BTreeMap<String, String>,
}

/// What the stack wants of the tier.
pub struct InstancesWanted {
    /// The stack's SSH public key (`aws.ssh_public_key`).
    pub public_key: String,
    pub policy: Value,
    pub launch: Launch,
    pub size: GroupSize,
    pub cpu_target: Option<u8>,
    pub target_group: String,
}

impl InstancesWanted {
    /// The instances' role as the shared role resource sees it.
    fn role<'a>(&'a self, names: &'a InstanceNames) -> RoleWanted<'a> {
        RoleWanted::instance(&names.stack, &names.role, &names.policy, &self.policy)
    }
}

/// The instances' one inline policy: read the stack's kit, releases and pointer, read the
/// database's password, find the other replicas (Prometheus). Nothing else (the
/// least-privilege tests record what an instance asks and find every statement needed), and
/// no write to the bucket: an instance cannot change what the others boot.
pub fn policy(bucket: &str, secret_arn: &str, region: &str, account: &str, stack: &str) -> Value {
    let object = |key: &str| format!("arn:aws:s3:::{bucket}/{key}");
    let mut policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTheStacksReleases",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [object("host/*"), object("releases/*"), object(names::POINTER)]
            },
            {"Sid": "ReadTheDatabasePassword", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
            // Prometheus finds the replicas by tag (ec2_sd_configs); a describe call cannot
            // be limited to resources, and changes nothing.
            // (Prometheus asks for the zones too, for its labels; without them it finds none.)
            {
                "Sid": "FindTheReplicas",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"],
                "Resource": "*"
            },
            // Its own lines to the stack's log group (vc-host ship-logs): streams in that
            // group only, never the group itself (vcctl makes it, with its retention).
            {
                "Sid": "ShipItsLines",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": format!(
                    "arn:aws:logs:{region}:{account}:log-group:{}:log-stream:*",
                    super::log_group::name(stack)
                )
            }
        ]
    });
    // The host closes the stack's expired on-demand SSH rules itself (vc-host ssh-sweep).
    let sweep = crate::providers::aws::on_demand::sweep_statements(region, account, stack);
    policy["Statement"].as_array_mut().expect("a list").extend(sweep);
    policy
}

pub async fn survey(aws: &Aws, names: &InstanceNames, stamp: &Stamp) -> Result<InstancesFound> {
    let role = role::survey(&aws.iam, &names.role, &names.policy).await?;
    let mut found = InstancesFound { role, ..InstancesFound::default() };
    found.key_pair = ec2::find_key_pair(&aws.ec2, &names.key_pair).await?;
    if let Some(k) = &found.key_pair {
        owned(&format!("key pair {}", names.key_pair), k.owner.stack_id.as_deref(), stamp)?;
    }
    if let Some(r) = &found.role.role {
        owned(&format!("IAM role {}", names.role), r.owner.stack_id.as_deref(), stamp)?;
    }
    found.profile = iam::get_instance_profile(&aws.iam, &names.role).await?;
    if !stamp.id.is_empty() {
        found.template = launch_template::find(&aws.ec2, &names.group, &stamp.id).await?;
    }
    found.deploy_role = iam::get_role(&aws.iam, &names.deploy_role).await?;
    if let Some(r) = &found.deploy_role {
        owned(&format!("CI deploy role {}", names.deploy_role), r.owner.stack_id.as_deref(), stamp)?;
    }
    found.group = autoscaling::find(&aws.autoscaling, &names.group).await?;
    if let Some(g) = &found.group {
        owned(&format!("Auto Scaling group {}", g.name), g.owner.stack_id.as_deref(), stamp)?;
        found.cpu_target = autoscaling::cpu_target(&aws.autoscaling, &g.name, &names.cpu_policy).await?;
        for i in &g.instances {
            let tags = ec2::describe_instance(&aws.ec2, &i.id).await?.map(|x| x.tags().to_vec()).unwrap_or_default();
            let config = tags.iter().find(|t| t.key() == Some(launch_template::TAG_CONFIG)).and_then(|t| t.value());
            found.configs.insert(i.id.clone(), config.unwrap_or_default().to_string());
        }
    }
    Ok(found)
}

/// How `up` makes one planned change of the tier.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceOp {
    ImportKeyPair,
    Role(RoleOp),
    /// The instance profile, made if missing, holding the role.
    Profile,
    CreateTemplate,
    NewTemplateVersion,
    CreateGroup,
    /// The group's size, health check and template (`update`), its target group (`attach`).
    UpdateGroup {
        update: bool,
        attach: bool,
    },
    PutCpuTarget(u8),
    DeleteCpuTarget,
    /// Instances of an older configuration, replaced by new ones (`refresh.rs`), once the
    /// rest of the stack is up: made by `scale::up`, not `apply`.
    Refresh(Vec<String>),
}

pub type InstanceChange = Change<InstanceOp>;

fn change(action: Action, resource: String, detail: impl Into<String>, op: InstanceOp) -> InstanceChange {
    Change { action, resource, detail: detail.into(), op }
}

/// What `up` would change in the tier, and how; `apply` carries out exactly these.
pub fn plan(names: &InstanceNames, w: &InstancesWanted, f: &InstancesFound) -> Vec<InstanceChange> {
    let mut out = Vec::new();
    if f.key_pair.is_none() {
        let detail = "the stack's SSH public key, for deploys";
        out.push(change(Action::Create, format!("key pair {}", names.key_pair), detail, InstanceOp::ImportKeyPair));
    }
    let role = role::plan(&w.role(names), &f.role);
    out.extend(role.into_iter().map(|c| change(c.action, c.resource, c.detail, InstanceOp::Role(c.op))));
    match &f.profile {
        None => out.push(change(
            Action::Create,
            format!("instance profile {}", names.role),
            format!("holding role {}", names.role),
            InstanceOp::Profile,
        )),
        Some(p) if !p.roles.contains(&names.role) => out.push(change(
            Action::Update,
            format!("instance profile {}", names.role),
            format!("holding role {}", names.role),
            InstanceOp::Profile,
        )),
        Some(_) => {}
    }
    let template = format!("launch template {}", names.group);
    match &f.template {
        None => out.push(change(Action::Create, template, describe_launch(&w.launch), InstanceOp::CreateTemplate)),
        Some(t) if t.launch != w.launch => out.push(change(
            Action::Update,
            template,
            format!("version {}: {}", t.latest_version + 1, launch_differences(&t.launch, &w.launch).join(", ")),
            InstanceOp::NewTemplateVersion,
        )),
        Some(_) => {}
    }
    out.extend(plan_group(names, w, f));
    let old = outdated(w, f);
    if let (false, Some(g)) = (old.is_empty(), &f.group) {
        let detail = format!(
            "{} of {} run an older configuration ({}): each replaced by a new one, healthy first (instance refresh)",
            old.len(),
            g.instances.len(),
            old.join(", ")
        );
        out.push(change(
            Action::Update,
            format!("instances of group {}", names.group),
            detail,
            InstanceOp::Refresh(old),
        ));
    }
    out
}

/// The group's instances in service launched from another configuration than the one
/// wanted (an instance launched before vcctl tagged configurations counts as another).
pub fn outdated(w: &InstancesWanted, f: &InstancesFound) -> Vec<String> {
    let Some(g) = &f.group else { return Vec::new() };
    g.instances
        .iter()
        .filter(|i| i.lifecycle == "InService")
        .filter(|i| f.configs.get(&i.id) != Some(&w.launch.config))
        .map(|i| i.id.clone())
        .collect()
}

fn describe_launch(l: &Launch) -> String {
    format!(
        "{} from {}, IMDSv2 only, {} GB {} encrypted root, boots the serving release",
        l.instance_type, l.image, l.root_gb, l.root_type
    )
}

fn launch_differences(found: &Launch, wanted: &Launch) -> Vec<&'static str> {
    let fields = [
        ("image", found.image != wanted.image),
        ("instance type", found.instance_type != wanted.instance_type),
        ("instance profile", found.instance_profile != wanted.instance_profile),
        ("security group", found.security_group != wanted.security_group),
        ("key pair", found.key_name != wanted.key_name),
        ("user data", found.user_data != wanted.user_data),
        ("IMDSv2", found.http_tokens != wanted.http_tokens),
        ("configuration tag", found.config != wanted.config),
        (
            "root volume",
            (&found.root_device, found.root_gb, found.root_encrypted, &found.root_type)
                != (&wanted.root_device, wanted.root_gb, wanted.root_encrypted, &wanted.root_type),
        ),
    ];
    fields.iter().filter(|(_, differs)| *differs).map(|(name, _)| *name).collect()
}

/// A group whose size a CPU target owns keeps the desired count Auto Scaling gave it: only
/// a fixed size puts it back.
fn plan_group(names: &InstanceNames, w: &InstancesWanted, f: &InstancesFound) -> Vec<InstanceChange> {
    let what = format!("Auto Scaling group {}", names.group);
    let s = w.size;
    let Some(g) = &f.group else {
        let detail = format!("{}..{} instances, {} now, replaced when unhealthy", s.min, s.max, s.desired);
        let mut out = vec![change(Action::Create, what, detail, InstanceOp::CreateGroup)];
        if let Some(t) = w.cpu_target {
            let policy = format!("scaling policy {}", names.cpu_policy);
            out.push(change(Action::Create, policy, format!("average CPU {t}%"), InstanceOp::PutCpuTarget(t)));
        }
        return out;
    };
    let mut out = Vec::new();
    let mut differs = Vec::new();
    if (g.min, g.max) != (s.min, s.max) {
        differs.push(format!("size {}..{} → {}..{}", g.min, g.max, s.min, s.max));
    }
    if w.cpu_target.is_none() && g.desired != s.desired {
        differs.push(format!("desired {} → {} (a fixed size)", g.desired, s.desired));
    }
    if g.health_check != "ELB" {
        differs.push("health from the load balancer".into());
    }
    let template = f.template.as_ref().map(|t| t.id.as_str());
    if template.is_some() && g.launch_template.as_deref() != template {
        differs.push("the stack's launch template".into());
    }
    let update = !differs.is_empty();
    let attach = !g.target_groups.contains(&w.target_group);
    if attach {
        differs.push("back in the target group".into());
    }
    if !differs.is_empty() {
        out.push(change(Action::Update, what, differs.join("; "), InstanceOp::UpdateGroup { update, attach }));
    }
    let policy = format!("scaling policy {}", names.cpu_policy);
    match (w.cpu_target, f.cpu_target) {
        (Some(t), Some(found)) if (found - f64::from(t)).abs() < 0.01 => {}
        (Some(t), _) => {
            out.push(change(Action::Update, policy, format!("average CPU {t}%"), InstanceOp::PutCpuTarget(t)))
        }
        (None, Some(_)) => {
            out.push(change(Action::Delete, policy, "the stack has a fixed size", InstanceOp::DeleteCpuTarget))
        }
        (None, None) => {}
    }
    out
}

/// Makes and repairs the tier: exactly the `planned` changes, in order.
pub async fn apply(
    aws: &Aws,
    names: &InstanceNames,
    w: &InstancesWanted,
    f: &InstancesFound,
    planned: &[InstanceChange],
    stamp: &Stamp,
    p: &Printer,
) -> Result<()> {
    let mut template_id = f.template.as_ref().map(|t| t.id.clone());
    for c in planned {
        let doing = format!("{}: {}", c.resource, c.detail);
        match &c.op {
            InstanceOp::ImportKeyPair => {
                p.doing(&doing, ec2::import_key_pair(&aws.ec2, &names.key_pair, &w.public_key, stamp)).await?
            }
            InstanceOp::Role(op) => p.doing(&doing, role::apply(&aws.iam, &w.role(names), op, stamp)).await?,
            InstanceOp::Profile => {
                if f.profile.is_none() {
                    iam::create_instance_profile(&aws.iam, &names.role, stamp).await?;
                }
                p.doing(&doing, iam::add_role(&aws.iam, &names.role, &names.role)).await?;
                fault_point("instance_role");
            }
            InstanceOp::CreateTemplate => {
                let create = launch_template::create(&aws.ec2, &names.group, &w.launch, stamp);
                template_id = Some(p.doing(&doing, create).await?);
                fault_point("launch_template");
            }
            InstanceOp::NewTemplateVersion => {
                let t = f.template.as_ref().expect("planned on a found template");
                p.doing(&doing, launch_template::add_version(&aws.ec2, t, &w.launch, stamp)).await?;
            }
            InstanceOp::CreateGroup | InstanceOp::UpdateGroup { .. } => {
                let id = template_id.as_deref().context("the launch template is not made")?;
                let vpc = ec2::default_vpc(&aws.ec2).await?;
                let subnets = ec2::subnets_across_zones(&aws.ec2, &vpc, "the Auto Scaling group").await?;
                let spec = GroupSpec {
                    name: &names.group,
                    launch_template_id: id,
                    size: w.size,
                    subnets: &subnets,
                    target_group: &w.target_group,
                };
                apply_group(aws, w, &c.op, &spec, stamp, p, &doing).await?;
            }
            InstanceOp::PutCpuTarget(t) => {
                let put = autoscaling::put_cpu_target(&aws.autoscaling, &names.group, &names.cpu_policy, f64::from(*t));
                p.doing(&doing, put).await?
            }
            InstanceOp::DeleteCpuTarget => {
                p.doing(&doing, autoscaling::delete_policy(&aws.autoscaling, &names.group, &names.cpu_policy)).await?
            }
            InstanceOp::Refresh(_) => {}
        }
    }
    Ok(())
}

async fn apply_group(
    aws: &Aws,
    w: &InstancesWanted,
    op: &InstanceOp,
    spec: &GroupSpec<'_>,
    stamp: &Stamp,
    p: &Printer,
    doing: &str,
) -> Result<()> {
    let asg = &aws.autoscaling;
    match op {
        InstanceOp::CreateGroup => {
            p.doing(doing, create_when_profile_ready(aws, spec, stamp)).await?;
            fault_point("group");
        }
        InstanceOp::UpdateGroup { update, attach } => {
            if *update {
                let desired = w.cpu_target.is_none().then_some(w.size.desired);
                p.doing(doing, autoscaling::update(asg, spec, desired)).await?;
            }
            if *attach {
                autoscaling::attach_target_group(asg, spec.name, &w.target_group).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A new instance profile takes seconds to be usable (IAM is eventually consistent): the
/// group's creation is retried on exactly that error, for up to a minute.
async fn create_when_profile_ready(aws: &Aws, spec: &GroupSpec<'_>, stamp: &Stamp) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        match autoscaling::create(&aws.autoscaling, spec, stamp).await {
            Ok(()) => return Ok(()),
            Err(e) if format!("{e:#}").contains("nstance profile") && started.elapsed().as_secs() < 60 => {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the group (its instances terminated, waited for), the template, then the role and
/// its profile, and the CI deploy role.
pub async fn destroy(aws: &Aws, names: &InstanceNames, f: &InstancesFound, p: &Printer) -> Result<()> {
    if let Some(g) = &f.group {
        p.doing(&format!("deleting Auto Scaling group {} and its {} instance(s)", g.name, g.instances.len()), async {
            autoscaling::delete(&aws.autoscaling, &g.name).await?;
            let exists = async || Ok(autoscaling::find(&aws.autoscaling, &g.name).await?.is_some());
            let what = format!("Auto Scaling group {}", g.name);
            until_gone(&what, std::time::Duration::from_secs(20 * 60), exists).await
        })
        .await?;
    }
    if let Some(t) = &f.template {
        p.doing(&format!("deleting launch template {}", t.name), launch_template::delete(&aws.ec2, &t.id)).await?;
    }
    if f.key_pair.is_some() {
        p.doing(&format!("deleting key pair {}", names.key_pair), ec2::delete_key_pair(&aws.ec2, &names.key_pair))
            .await?;
    }
    if f.role.exists() || f.profile.is_some() {
        p.doing(
            &format!("deleting IAM role {} and its profile", names.role),
            iam::delete_role_and_profile(&aws.iam, &names.role, &names.role),
        )
        .await?;
    }
    if f.deploy_role.is_some() {
        p.doing(
            &format!("deleting CI deploy role {}", names.deploy_role),
            iam::delete_role(&aws.iam, &names.deploy_role),
        )
        .await?;
    }
    Ok(())
}

/// The DB instance once it has its endpoint and secret, waited for: RDS takes minutes to make
/// a new one, and an instance cannot boot without them.
pub async fn database_ready(aws: &Aws, id: &str, p: &Printer) -> Result<crate::cloud::aws::rds::Db> {
    p.doing(&format!("waiting for DB instance {id} to be available"), async {
        let started = std::time::Instant::now();
        loop {
            let db = crate::cloud::aws::rds::find(&aws.rds, id)
                .await?
                .with_context(|| format!("DB instance {id} is gone"))?;
            if db.endpoint.is_some() && db.secret_arn.is_some() {
                return Ok(db);
            }
            if started.elapsed() > std::time::Duration::from_secs(40 * 60) {
                bail!(
                    "DB instance {id} has no endpoint after 40 minutes (status {}); `vcctl up` again goes on",
                    db.status
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(15)).await;
        }
    })
    .await
}
