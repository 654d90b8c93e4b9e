//! The launch template of a `scale:` stack's group: what every instance it launches is.
//! A change is a new version; the group launches the latest.

use anyhow::Result;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData,
    ResourceType, Tag, VolumeType,
};
use serde::Serialize;

use super::ec2::{filter, tags};
use super::{Stamp, TAG_STACK_ID, error};

/// What an instance launched from the template is: every field vcctl sets, compared as a
/// whole with the latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launch {
    pub image: String,
    pub instance_type: String,
    pub instance_profile: String,
    pub security_group: String,
    /// The key pair the image lets log in (the stack's `aws.ssh_public_key`).
    pub key_name: String,
    /// Base64, as EC2 keeps it.
    #[serde(skip)]
    pub user_data: String,
    /// `required`: IMDSv2 only.
    pub http_tokens: String,
    /// The root volume: `gp3`, encrypted, this size.
    pub root_device: String,
    pub root_gb: i32,
    pub root_encrypted: bool,
    pub root_type: String,
    /// The hash of everything above, tagged `vcctl:config` on each instance it launches:
    /// which instances run an older configuration (Auto Scaling does not say which version
    /// launched an instance).
    pub config: String,
}

/// The tag that says which configuration launched an instance.
pub const TAG_CONFIG: &str = "vcctl:config";

impl Launch {
    /// This launch with its `config`: 12 hex digits of SHA-256 over every other field.
    pub fn hashed(mut self) -> Launch {
        use sha2::Digest;
        self.config = String::new();
        let text = format!("{}\n{}", serde_json::to_string(&self).expect("serialisable"), self.user_data);
        self.config = format!("{:x}", sha2::Sha256::digest(text.as_bytes()))[..12].to_string();
        self
    }
}

/// The stack's template as found: its id, latest version and what that version launches.
#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub launch: Launch,
}

/// The template `name` of the stack with id `stack_id`, if it exists (found by both: one
/// of another stack is never taken).
pub async fn find(ec2: &Client, name: &str, stack_id: &str) -> Result<Option<Template>> {
    let out = ec2
        .describe_launch_templates()
        .filters(filter("launch-template-name", name))
        .filters(filter(&format!("tag:{TAG_STACK_ID}"), stack_id))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeLaunchTemplates", &format!("looking up launch template {name}"), e))?;
    let Some(t) = out.launch_templates().first() else { return Ok(None) };
    let id = t.launch_template_id().unwrap_or_default().to_string();
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&id)
        .versions("$Latest")
        .send()
        .await
        .map_err(|e| error("ec2:DescribeLaunchTemplateVersions", &format!("reading launch template {name}"), e))?;
    let data = versions.launch_template_versions().first().and_then(|v| v.launch_template_data());
    let root = data.and_then(|d| d.block_device_mappings().first());
    let ebs = root.and_then(|r| r.ebs());
    let launch = Launch {
        image: data.and_then(|d| d.image_id()).unwrap_or_default().to_string(),
        instance_type: data.and_then(|d| d.instance_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
        instance_profile: data
            .and_then(|d| d.iam_instance_profile())
            .and_then(|p| p.name())
            .unwrap_or_default()
            .to_string(),
        security_group: data.and_then(|d| d.security_group_ids().first()).cloned().unwrap_or_default(),
        key_name: data.and_then(|d| d.key_name()).unwrap_or_default().to_string(),
        user_data: data.and_then(|d| d.user_data()).unwrap_or_default().to_string(),
        http_tokens: data
            .and_then(|d| d.metadata_options())
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        root_device: root.and_then(|r| r.device_name()).unwrap_or_default().to_string(),
        root_gb: ebs.and_then(|e| e.volume_size()).unwrap_or(0),
        root_encrypted: ebs.and_then(|e| e.encrypted()).unwrap_or(false),
        root_type: ebs.and_then(|e| e.volume_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
        config: data
            .map(|d| d.tag_specifications())
            .unwrap_or_default()
            .iter()
            .filter(|s| s.resource_type().is_some_and(|r| r.as_str() == "instance"))
            .flat_map(|s| s.tags())
            .find(|t| t.key() == Some(TAG_CONFIG))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_string(),
    };
    Ok(Some(Template { id, name: name.to_string(), latest_version: t.latest_version_number().unwrap_or(0), launch }))
}

fn data(launch: &Launch, stamp: &Stamp, name: &str) -> RequestLaunchTemplateData {
    let instance_tags = |resource: ResourceType| {
        let on_instance = resource == ResourceType::Instance;
        let mut spec = LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(resource)
            .tags(Tag::builder().key("Name").value(name).build());
        for (k, v) in stamp.pairs() {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        if on_instance {
            spec = spec.tags(Tag::builder().key(TAG_CONFIG).value(&launch.config).build());
        }
        spec.build()
    };
    RequestLaunchTemplateData::builder()
        .image_id(&launch.image)
        .instance_type(launch.instance_type.as_str().into())
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(&launch.instance_profile).build(),
        )
        .security_group_ids(&launch.security_group)
        .key_name(&launch.key_name)
        .user_data(&launch.user_data)
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::from(launch.http_tokens.as_str()))
                .http_put_response_hop_limit(1)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&launch.root_device)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_type(VolumeType::from(launch.root_type.as_str()))
                        .volume_size(launch.root_gb)
                        .encrypted(launch.root_encrypted)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(instance_tags(ResourceType::Instance))
        .tag_specifications(instance_tags(ResourceType::Volume))
        .build()
}

/// Makes the template; its id.
pub async fn create(ec2: &Client, name: &str, launch: &Launch, stamp: &Stamp) -> Result<String> {
    let out = ec2
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(data(launch, stamp, name))
        .tag_specifications(tags(ResourceType::LaunchTemplate, stamp, name, &[]))
        .send()
        .await
        .map_err(|e| error("ec2:CreateLaunchTemplate", &format!("making launch template {name}"), e))?;
    Ok(out.launch_template().and_then(|t| t.launch_template_id()).unwrap_or_default().to_string())
}

/// A new latest version: what instances launched from now on are.
pub async fn add_version(ec2: &Client, t: &Template, launch: &Launch, stamp: &Stamp) -> Result<()> {
    ec2.create_launch_template_version()
        .launch_template_id(&t.id)
        .launch_template_data(data(launch, stamp, &t.name))
        .send()
        .await
        .map_err(|e| error("ec2:CreateLaunchTemplateVersion", &format!("changing launch template {}", t.name), e))?;
    Ok(())
}

pub async fn delete(ec2: &Client, id: &str) -> Result<()> {
    ec2.delete_launch_template()
        .launch_template_id(id)
        .send()
        .await
        .map_err(|e| error("ec2:DeleteLaunchTemplate", &format!("deleting launch template {id}"), e))?;
    Ok(())
}
