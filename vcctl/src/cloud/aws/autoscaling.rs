//! The Auto Scaling group of a `scale:` stack: its size, its launch template, its target
//! group and its one target-tracking policy on CPU. Tagged with the stack; the tags go on
//! every instance it launches.

use anyhow::Result;
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{
    LaunchTemplateSpecification, MetricType, PredefinedMetricSpecification, Tag, TargetTrackingConfiguration,
};
use serde::Serialize;

use super::{Owner, Stamp, error};

/// How long a new instance has before the load balancer's health check counts: the boot
/// script installs packages and fetches the release first (templates/boot.sh).
pub const HEALTH_GRACE_S: i32 = 300;

/// A group as vcctl compares it with the stack file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub name: String,
    pub min: i32,
    pub desired: i32,
    pub max: i32,
    pub launch_template: Option<String>,
    pub target_groups: Vec<String>,
    pub health_check: String,
    pub instances: Vec<GroupInstance>,
    #[serde(skip)]
    pub owner: Owner,
}

/// One of the group's instances, as Auto Scaling sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupInstance {
    pub id: String,
    pub lifecycle: String,
    pub health: String,
    pub zone: String,
}

/// The size the stack file asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupSize {
    pub min: i32,
    pub desired: i32,
    pub max: i32,
}

/// What a new group is made of.
pub struct GroupSpec<'a> {
    pub name: &'a str,
    pub launch_template_id: &'a str,
    pub size: GroupSize,
    pub subnets: &'a [String],
    pub target_group: &'a str,
}

/// The group `name`, if it exists (a group being deleted counts as gone).
pub async fn find(asg: &Client, name: &str) -> Result<Option<Group>> {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| error("autoscaling:DescribeAutoScalingGroups", &format!("looking up group {name}"), e))?;
    let Some(g) = out.auto_scaling_groups().iter().find(|g| g.status().is_none_or(|s| !s.starts_with("Delete"))) else {
        return Ok(None);
    };
    let instances = g
        .instances()
        .iter()
        .map(|i| GroupInstance {
            id: i.instance_id().unwrap_or_default().to_string(),
            lifecycle: i.lifecycle_state().map(|l| l.as_str().to_string()).unwrap_or_default(),
            health: i.health_status().unwrap_or_default().to_string(),
            zone: i.availability_zone().unwrap_or_default().to_string(),
        })
        .collect();
    Ok(Some(Group {
        name: name.to_string(),
        min: g.min_size().unwrap_or(0),
        desired: g.desired_capacity().unwrap_or(0),
        max: g.max_size().unwrap_or(0),
        launch_template: g.launch_template().and_then(|t| t.launch_template_id()).map(str::to_string),
        target_groups: g.target_group_arns().to_vec(),
        health_check: g.health_check_type().unwrap_or_default().to_string(),
        instances,
        owner: Owner::from_tags(g.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

fn tags(stamp: &Stamp, name: &str) -> Vec<Tag> {
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .key(k)
            .value(v)
            .propagate_at_launch(true)
            .resource_id(name)
            .resource_type("auto-scaling-group")
            .build()
    };
    let mut out = vec![tag("Name", name)];
    out.extend(stamp.pairs().iter().map(|(k, v)| tag(k, v)));
    out
}

fn template(id: &str) -> LaunchTemplateSpecification {
    // `$Latest`: a change to the template reaches every instance launched after it.
    LaunchTemplateSpecification::builder().launch_template_id(id).version("$Latest").build()
}

/// Makes the group: in every given subnet (one per zone), its instances registered with the
/// target group and replaced when the load balancer finds them unhealthy.
pub async fn create(asg: &Client, spec: &GroupSpec<'_>, stamp: &Stamp) -> Result<()> {
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(spec.name)
        .launch_template(template(spec.launch_template_id))
        .min_size(spec.size.min)
        .max_size(spec.size.max)
        .desired_capacity(spec.size.desired)
        .vpc_zone_identifier(spec.subnets.join(","))
        .target_group_arns(spec.target_group)
        .health_check_type("ELB")
        .health_check_grace_period(HEALTH_GRACE_S)
        .set_tags(Some(tags(stamp, spec.name)))
        .send()
        .await
        .map_err(|e| error("autoscaling:CreateAutoScalingGroup", &format!("making group {}", spec.name), e))?;
    Ok(())
}

/// Puts the group back as the stack says: its size (the desired count only when `desired`
/// is given: a scaling policy owns it otherwise), its template, target group and checks.
pub async fn update(asg: &Client, spec: &GroupSpec<'_>, desired: Option<i32>) -> Result<()> {
    asg.update_auto_scaling_group()
        .auto_scaling_group_name(spec.name)
        .launch_template(template(spec.launch_template_id))
        .min_size(spec.size.min)
        .max_size(spec.size.max)
        .set_desired_capacity(desired)
        .health_check_type("ELB")
        .health_check_grace_period(HEALTH_GRACE_S)
        .send()
        .await
        .map_err(|e| error("autoscaling:UpdateAutoScalingGroup", &format!("changing group {}", spec.name), e))?;
    Ok(())
}

/// The group's desired count and its maximum (an instance refresh's extra instance, and
/// back). Its launch template is named again, unchanged: the emulator the tests run
/// against fails an update without one, which AWS takes.
pub async fn set_capacity(asg: &Client, name: &str, launch_template_id: &str, desired: i32, max: i32) -> Result<()> {
    asg.update_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(template(launch_template_id))
        .desired_capacity(desired)
        .max_size(max)
        .send()
        .await
        .map_err(|e| error("autoscaling:UpdateAutoScalingGroup", &format!("sizing group {name}"), e))?;
    Ok(())
}

/// Terminates one of the group's instances, the group one smaller: it launches none for it.
pub async fn terminate_instance(asg: &Client, id: &str) -> Result<()> {
    asg.terminate_instance_in_auto_scaling_group()
        .instance_id(id)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .map_err(|e| error("autoscaling:TerminateInstanceInAutoScalingGroup", &format!("terminating {id}"), e))?;
    Ok(())
}

/// Attaches the target group (the group had another, or none).
pub async fn attach_target_group(asg: &Client, name: &str, target_group: &str) -> Result<()> {
    asg.attach_load_balancer_target_groups()
        .auto_scaling_group_name(name)
        .target_group_arns(target_group)
        .send()
        .await
        .map_err(|e| error("autoscaling:AttachLoadBalancerTargetGroups", &format!("attaching group {name}"), e))?;
    Ok(())
}

/// Deletes the group and terminates its instances (`ForceDelete`).
pub async fn delete(asg: &Client, name: &str) -> Result<()> {
    asg.delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await
        .map_err(|e| error("autoscaling:DeleteAutoScalingGroup", &format!("deleting group {name}"), e))?;
    Ok(())
}

/// The group's target-tracking policy `policy`: its CPU target, if it exists.
pub async fn cpu_target(asg: &Client, group: &str, policy: &str) -> Result<Option<f64>> {
    let out = asg
        .describe_policies()
        .auto_scaling_group_name(group)
        .policy_names(policy)
        .send()
        .await
        .map_err(|e| error("autoscaling:DescribePolicies", &format!("looking up the policies of {group}"), e))?;
    Ok(out
        .scaling_policies()
        .iter()
        .find(|p| p.policy_name() == Some(policy))
        .map(|p| p.target_tracking_configuration().and_then(|t| t.target_value()).unwrap_or(f64::NAN)))
}

/// Sets the group's average CPU target: Auto Scaling adds and removes instances to keep it.
pub async fn put_cpu_target(asg: &Client, group: &str, policy: &str, pct: f64) -> Result<()> {
    let metric =
        PredefinedMetricSpecification::builder().predefined_metric_type(MetricType::AsgAverageCpuUtilization).build();
    let config =
        TargetTrackingConfiguration::builder().predefined_metric_specification(metric).target_value(pct).build();
    asg.put_scaling_policy()
        .auto_scaling_group_name(group)
        .policy_name(policy)
        .policy_type("TargetTrackingScaling")
        .target_tracking_configuration(config)
        .send()
        .await
        .map_err(|e| error("autoscaling:PutScalingPolicy", &format!("setting the CPU target of {group}"), e))?;
    Ok(())
}

pub async fn delete_policy(asg: &Client, group: &str, policy: &str) -> Result<()> {
    asg.delete_policy()
        .auto_scaling_group_name(group)
        .policy_name(policy)
        .send()
        .await
        .map_err(|e| error("autoscaling:DeletePolicy", &format!("removing policy {policy} of {group}"), e))?;
    Ok(())
}
