//! EC2: key pairs, security groups, AMIs and instances. One function per operation; the
//! workflow that calls them is in `providers/aws`.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState,
    IamInstanceProfileSpecification, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType,
    ResourceType, Tag, TagSpecification, VolumeType,
};
use serde::Serialize;

use super::{Owner, Stamp, TAG_AMI, TAG_STACK, error};

/// The tag Auto Scaling puts on the instances it launches.
pub const AUTOSCALING_TAG: &str = "aws:autoscaling:groupName";

/// Debian's AWS account, which publishes the official Debian AMIs.
pub const DEBIAN_OWNER: &str = "136693071363";

pub fn tags(resource: ResourceType, stamp: &Stamp, name: &str, extra: &[(&str, &str)]) -> TagSpecification {
    let mut spec =
        TagSpecification::builder().resource_type(resource).tags(Tag::builder().key("Name").value(name).build());
    for (k, v) in stamp.pairs().iter().chain(extra) {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

pub(super) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

pub(super) fn stack_filter(stack: &str) -> Filter {
    filter(&format!("tag:{TAG_STACK}"), stack)
}

/// A key pair found by its name.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub id: String,
    pub owner: Owner,
}

pub async fn find_key_pair(ec2: &Client, name: &str) -> Result<Option<KeyPair>> {
    let out = ec2
        .describe_key_pairs()
        .filters(filter("key-name", name))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeKeyPairs", &format!("looking up key pair `{name}`"), e))?;
    Ok(out.key_pairs().first().map(|k| KeyPair {
        id: k.key_pair_id().unwrap_or_default().to_string(),
        owner: Owner::from_tags(k.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

/// Puts the stack's tags on an EC2 resource (a key pair, a security group, an instance).
pub async fn tag(ec2: &Client, resource_id: &str, stamp: &Stamp) -> Result<()> {
    let tags: Vec<Tag> = stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    ec2.create_tags()
        .resources(resource_id)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("ec2:CreateTags", &format!("tagging {resource_id}"), e))?;
    Ok(())
}

/// Sets tag `key` of resource `id` to `value`.
pub async fn set_tag(ec2: &Client, id: &str, key: &str, value: &str) -> Result<()> {
    ec2.create_tags()
        .resources(id)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .map_err(|e| error("ec2:CreateTags", &format!("tagging {id}"), e))?;
    Ok(())
}

pub async fn import_key_pair(ec2: &Client, name: &str, public_key: &str, stamp: &Stamp) -> Result<()> {
    ec2.import_key_pair()
        .key_name(name)
        .public_key_material(Blob::new(public_key.trim().as_bytes().to_vec()))
        .tag_specifications(tags(ResourceType::KeyPair, stamp, name, &[]))
        .send()
        .await
        .map_err(|e| error("ec2:ImportKeyPair", &format!("importing key pair `{name}`"), e))?;
    Ok(())
}

pub async fn delete_key_pair(ec2: &Client, name: &str) -> Result<()> {
    ec2.delete_key_pair()
        .key_name(name)
        .send()
        .await
        .map_err(|e| error("ec2:DeleteKeyPair", &format!("deleting key pair `{name}`"), e))?;
    Ok(())
}

/// Whether the region sells `instance_type`.
pub async fn instance_type_offered(ec2: &Client, instance_type: &str) -> Result<bool> {
    let out = ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::Region)
        .filters(filter("instance-type", instance_type))
        .send()
        .await
        .map_err(|e| {
            error("ec2:DescribeInstanceTypeOfferings", &format!("checking that {instance_type} is offered"), e)
        })?;
    Ok(!out.instance_type_offerings().is_empty())
}

pub async fn vpc_exists(ec2: &Client, vpc: &str) -> Result<bool> {
    let out = ec2
        .describe_vpcs()
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeVpcs", &format!("looking up VPC {vpc}"), e))?;
    Ok(!out.vpcs().is_empty())
}

pub async fn subnet_exists(ec2: &Client, subnet: &str) -> Result<bool> {
    let out = ec2
        .describe_subnets()
        .filters(filter("subnet-id", subnet))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeSubnets", &format!("looking up subnet {subnet}"), e))?;
    Ok(!out.subnets().is_empty())
}

/// One subnet of `vpc` per availability zone, in two zones or more: what a load balancer
/// and a DB subnet group span (`what`, for the error when the VPC has fewer zones).
pub async fn subnets_across_zones(ec2: &Client, vpc: &str, what: &str) -> Result<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let ids: Vec<String> =
        subnets(ec2, vpc).await?.into_iter().filter(|(_, z)| seen.insert(z.clone())).map(|(id, _)| id).collect();
    anyhow::ensure!(ids.len() >= 2, "{vpc} has subnets in {} zone(s); {what} needs two", ids.len());
    Ok(ids)
}

/// The subnets of `vpc`, each with its availability zone.
async fn subnets(ec2: &Client, vpc: &str) -> Result<Vec<(String, String)>> {
    let out = ec2
        .describe_subnets()
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeSubnets", &format!("listing the subnets of {vpc}"), e))?;
    let mut subnets: Vec<(String, String)> = out
        .subnets()
        .iter()
        .filter_map(|s| Some((s.subnet_id()?.to_string(), s.availability_zone()?.to_string())))
        .collect();
    subnets.sort();
    Ok(subnets)
}

pub async fn default_vpc(ec2: &Client) -> Result<String> {
    let out = ec2
        .describe_vpcs()
        .filters(filter("is-default", "true"))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeVpcs", "looking up the default VPC", e))?;
    out.vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_string)
        .context("this region has no default VPC; set `aws.vpc_id` (and `aws.subnet_id`) in the stack file")
}

/// The id of AWS's managed prefix list `name` in this region, if it has one.
pub async fn managed_prefix_list(ec2: &Client, name: &str) -> Result<Option<String>> {
    let out = ec2
        .describe_managed_prefix_lists()
        .filters(filter("prefix-list-name", name))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeManagedPrefixLists", &format!("looking up the prefix list {name}"), e))?;
    Ok(out
        .prefix_lists()
        .iter()
        .find(|p| p.prefix_list_name() == Some(name))
        .and_then(|p| p.prefix_list_id())
        .map(str::to_string))
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub root_device: String,
}

/// The newest official Debian 12 image for `arch` (`x86_64` or `arm64`).
pub async fn latest_debian(ec2: &Client, arch: &str) -> Result<Option<Image>> {
    let name = if arch == "arm64" { "debian-12-arm64-*" } else { "debian-12-amd64-*" };
    let out = ec2
        .describe_images()
        .owners(DEBIAN_OWNER)
        .filters(filter("name", name))
        .filters(filter("architecture", arch))
        .filters(filter("state", "available"))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeImages", "looking up the latest Debian 12 AMI", e))?;
    let newest = out.images().iter().max_by_key(|i| i.creation_date().unwrap_or_default().to_string());
    Ok(newest.map(|i| Image {
        id: i.image_id().unwrap_or_default().to_string(),
        name: i.name().unwrap_or_default().to_string(),
        root_device: i.root_device_name().unwrap_or("/dev/xvda").to_string(),
    }))
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub instance_type: String,
    pub ami: String,
    pub pinned_ami: Option<String>,
    pub public_ip: Option<String>,
    pub launch_time: Option<String>,
    pub imds_tokens_required: bool,
    pub imds_hop_limit: i32,
    pub security_groups: Vec<String>,
    pub instance_profile_arn: Option<String>,
    pub owner: Owner,
}

/// The refusal when several instances carry one stack's tags: each with its launch time and
/// stack id, how it can have happened, and the way out.
fn several_instances(stack: &str, all: &[&aws_sdk_ec2::types::Instance]) -> crate::error::Failure {
    let describe = |i: &&aws_sdk_ec2::types::Instance| {
        let id = i.tags().iter().find(|t| t.key() == Some(super::TAG_STACK_ID)).and_then(|t| t.value());
        let launched = i.launch_time().map(|t| t.to_string()).unwrap_or_else(|| "?".into());
        format!("{} (launched {launched}, stack id {})", i.instance_id().unwrap_or("?"), id.unwrap_or("none"))
    };
    let newest = all.iter().max_by_key(|i| i.launch_time().map(|t| t.secs())).and_then(|i| i.instance_id());
    crate::error::Failure::invalid(
        format!(
            "{} instances carry the tags of stack `{stack}`: {}. vcctl changes none of them. Two `up`s run at once \
             by a vcctl older than the stack's lock, a copy (\"launch more like this\" copies tags), or another \
             project's stack of this name can make a second one",
            all.len(),
            all.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        Some(format!(
            "`vcctl destroy --instance {}` terminates the one that is not the stack's (the newest here), after a \
             confirmation; or remove its vcctl:* tags to keep it apart from the stack",
            newest.unwrap_or("ID")
        )),
    )
}

/// One instance by id, with its tags (`None` when it does not exist or is terminated).
pub async fn describe_instance(ec2: &Client, id: &str) -> Result<Option<aws_sdk_ec2::types::Instance>> {
    let out = ec2.describe_instances().instance_ids(id).send().await;
    let out = match out {
        Ok(o) => o,
        Err(e) if super::code_of(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) => return Ok(None),
        Err(e) => return Err(error("ec2:DescribeInstances", &format!("looking up instance {id}"), e)),
    };
    let found = out.reservations().iter().flat_map(|r| r.instances()).next().cloned();
    Ok(found.filter(|i| i.state().and_then(|s| s.name()).is_some_and(|n| n.as_str() != "terminated")))
}

/// The stack's instance that is not terminated (or shutting down), if any.
pub async fn find_instance(ec2: &Client, stack: &str) -> Result<Option<Instance>> {
    let out = ec2
        .describe_instances()
        .filters(stack_filter(stack))
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .map_err(|e| error("ec2:DescribeInstances", &format!("looking up the instance of stack `{stack}`"), e))?;
    // An Auto Scaling group's instances carry the stack's tags too (a `scale:` stack's): they
    // are the group's, never the single box.
    let in_group = |i: &&aws_sdk_ec2::types::Instance| i.tags().iter().any(|t| t.key() == Some(AUTOSCALING_TAG));
    let all: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).filter(|i| !in_group(i)).collect();
    if all.len() > 1 {
        return Err(several_instances(stack, &all).into());
    }
    let Some(i) = all.first() else { return Ok(None) };
    let metadata = i.metadata_options();
    Ok(Some(Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        ami: i.image_id().unwrap_or_default().to_string(),
        pinned_ami: i.tags().iter().find(|t| t.key() == Some(TAG_AMI)).and_then(|t| t.value()).map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        launch_time: i.launch_time().map(|t| t.to_string()),
        imds_tokens_required: metadata.and_then(|m| m.http_tokens()) == Some(&HttpTokensState::Required),
        imds_hop_limit: metadata.and_then(|m| m.http_put_response_hop_limit()).unwrap_or(0),
        security_groups: i.security_groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect(),
        instance_profile_arn: i.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string),
        owner: Owner::from_tags(i.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

pub async fn termination_protection(ec2: &Client, id: &str) -> Result<bool> {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| error("ec2:DescribeInstanceAttribute", &format!("reading termination protection of {id}"), e))?;
    Ok(out.disable_api_termination().and_then(|v| v.value()).unwrap_or(false))
}

pub async fn set_termination_protection(ec2: &Client, id: &str, on: bool) -> Result<()> {
    ec2.modify_instance_attribute()
        .instance_id(id)
        .disable_api_termination(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(|e| error("ec2:ModifyInstanceAttribute", &format!("setting termination protection of {id}"), e))?;
    Ok(())
}

pub async fn require_imdsv2(ec2: &Client, id: &str) -> Result<()> {
    ec2.modify_instance_metadata_options()
        .instance_id(id)
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(1)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .send()
        .await
        .map_err(|e| error("ec2:ModifyInstanceMetadataOptions", &format!("requiring IMDSv2 on {id}"), e))?;
    Ok(())
}

/// Changes the instance type: stop, then modify (the instance keeps its disk and id). It is
/// left stopped: `start` is a step of its own, so an interrupted change is finished by the
/// next `up`, which sees a stopped instance.
pub async fn change_instance_type(ec2: &Client, id: &str, instance_type: &str) -> Result<()> {
    ec2.stop_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| error("ec2:StopInstances", &format!("stopping {id} to change its type"), e))?;
    ec2.wait_until_instance_stopped()
        .instance_ids(id)
        .wait(Duration::from_secs(600))
        .await
        .with_context(|| format!("waiting for {id} to stop (10 minutes)"))?;
    ec2.modify_instance_attribute().instance_id(id).instance_type(AttributeValue(instance_type)).send().await.map_err(
        |e| error("ec2:ModifyInstanceAttribute", &format!("changing the type of {id} to {instance_type}"), e),
    )?;
    Ok(())
}

/// Starts a stopped instance (a no-op for a running one).
pub async fn start_instance(ec2: &Client, id: &str) -> Result<()> {
    ec2.start_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| error("ec2:StartInstances", &format!("starting {id}"), e))?;
    Ok(())
}

/// The availability zone instance `id` runs in.
pub async fn availability_zone(ec2: &Client, id: &str) -> Result<String> {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| error("ec2:DescribeInstances", &format!("reading the zone of {id}"), e))?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.placement().and_then(|p| p.availability_zone()).map(str::to_string))
        .with_context(|| format!("instance {id} has no availability zone"))
}

/// Waits until instance `id` is past `pending` (running or stopped); `timeout` bounds it.
pub async fn wait_running(ec2: &Client, id: &str, timeout: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let out = ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| error("ec2:DescribeInstances", &format!("reading the state of {id}"), e))?;
        let state = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
            .unwrap_or_default();
        match state.as_str() {
            "running" | "stopped" => return Ok(()),
            _ if started.elapsed() >= timeout => {
                anyhow::bail!("instance {id} is still {state} after {}", humantime::format_duration(timeout))
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Waits until the stack's instance runs and has a public address; `timeout` bounds it.
pub async fn wait_ready(ec2: &Client, stack: &str, timeout: Duration) -> Result<Instance> {
    let started = std::time::Instant::now();
    loop {
        let instance = find_instance(ec2, stack).await?;
        match instance {
            Some(i) if i.state == "running" && i.public_ip.is_some() => return Ok(i),
            Some(i) if started.elapsed() >= timeout => anyhow::bail!(
                "instance {} is {} {} after {}; run `vcctl up` again to wait longer",
                i.id,
                i.state,
                if i.public_ip.is_some() { "(with a public address)" } else { "without a public address" },
                humantime::format_duration(timeout)
            ),
            None => anyhow::bail!("stack `{stack}` has no instance"),
            Some(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

#[allow(non_snake_case)]
fn AttributeValue(v: &str) -> aws_sdk_ec2::types::AttributeValue {
    aws_sdk_ec2::types::AttributeValue::builder().value(v).build()
}

/// What `RunInstances` needs.
pub struct InstanceSpec<'a> {
    pub stamp: &'a Stamp,
    pub name: &'a str,
    pub image: &'a Image,
    pub instance_type: &'a str,
    pub key_name: &'a str,
    pub security_group_id: &'a str,
    pub subnet_id: Option<&'a str>,
    /// The zone to launch in: a kept data volume's (a volume attaches only in its own zone).
    pub availability_zone: Option<&'a str>,
    pub instance_profile: &'a str,
    pub user_data_base64: String,
    pub termination_protection: bool,
    pub volume_gb: i32,
    /// Idempotency: a retried call with the same token never starts a second instance.
    pub client_token: String,
}

pub async fn run_instance(
    ec2: &Client,
    spec: &InstanceSpec<'_>,
) -> Result<String, aws_sdk_ec2::error::SdkError<aws_sdk_ec2::operation::run_instances::RunInstancesError>> {
    let out = ec2
        .run_instances()
        .image_id(&spec.image.id)
        .instance_type(InstanceType::from(spec.instance_type))
        .min_count(1)
        .max_count(1)
        .key_name(spec.key_name)
        .security_group_ids(spec.security_group_id)
        .set_subnet_id(spec.subnet_id.map(str::to_string))
        .set_placement(
            spec.availability_zone.map(|z| aws_sdk_ec2::types::Placement::builder().availability_zone(z).build()),
        )
        .iam_instance_profile(IamInstanceProfileSpecification::builder().name(spec.instance_profile).build())
        .user_data(&spec.user_data_base64)
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(1)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(&spec.image.root_device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_type(VolumeType::Gp3)
                        .volume_size(spec.volume_gb)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .disable_api_termination(spec.termination_protection)
        .client_token(&spec.client_token)
        .tag_specifications(tags(ResourceType::Instance, spec.stamp, spec.name, &[(TAG_AMI, &spec.image.id)]))
        .tag_specifications(tags(ResourceType::Volume, spec.stamp, spec.name, &[]))
        .send()
        .await?;
    Ok(out.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string())
}

pub async fn terminate(ec2: &Client, id: &str) -> Result<()> {
    ec2.terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| error("ec2:TerminateInstances", &format!("terminating {id}"), e))?;
    ec2.wait_until_instance_terminated()
        .instance_ids(id)
        .wait(Duration::from_secs(900))
        .await
        .with_context(|| format!("waiting for {id} to terminate (15 minutes)"))?;
    Ok(())
}

/// The instance's serial console output (base64-decoded), where cloud-init prints the
/// host's SSH keys at first boot; empty while there is none yet.
pub async fn console_output(ec2: &Client, instance_id: &str) -> Result<String> {
    let out = ec2.get_console_output().instance_id(instance_id).latest(true).send().await;
    let out = match out {
        Ok(o) => o,
        // `latest` is not offered on every instance type: ask for the plain output then.
        Err(_) => ec2.get_console_output().instance_id(instance_id).send().await?,
    };
    let encoded = out.output().unwrap_or_default();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `ssh-ed25519 AAAA...` host keys in an EC2 console output (cloud-init prints them between
/// `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`).
pub fn host_keys_from_console(console: &str) -> Vec<String> {
    let Some(start) = console.find("-----BEGIN SSH HOST KEY KEYS-----") else { return Vec::new() };
    let rest = &console[start..];
    let end = rest.find("-----END SSH HOST KEY KEYS-----").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (kind, key) = (w.next()?, w.next()?);
            kind.starts_with("ssh-")
                .then(|| format!("{kind} {key}"))
                .or_else(|| kind.starts_with("ecdsa-").then(|| format!("{kind} {key}")))
        })
        .collect()
}

/// The public address of each instance of `ids` (none while it has not one yet).
pub async fn public_addresses(ec2: &Client, ids: &[String]) -> Result<Vec<(String, Option<String>)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeInstances", "looking up the group's instances", e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| (i.instance_id().unwrap_or_default().to_string(), i.public_ip_address().map(str::to_string)))
        .collect())
}

#[cfg(test)]
mod console_tests {
    #[test]
    fn host_keys_are_read_from_the_console() {
        let console = "boot...\n-----BEGIN SSH HOST KEY KEYS-----\necdsa-sha2-nistp256 AAAAE2 root@ip\nssh-ed25519 AAAAC3 root@ip\n-----END SSH HOST KEY KEYS-----\n";
        assert_eq!(super::host_keys_from_console(console), vec!["ecdsa-sha2-nistp256 AAAAE2", "ssh-ed25519 AAAAC3"]);
        assert!(super::host_keys_from_console("nothing yet").is_empty());
    }
}
