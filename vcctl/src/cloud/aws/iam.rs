//! IAM: the instance's role, its one inline least-privilege policy, and the instance
//! profile that carries the role, all under the path `/vcctl/<stack>/`.

use anyhow::{Context, Result};
use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use serde_json::{Value, json};

use super::{Owner, Stamp, error};

pub fn path(stack: &str) -> String {
    format!("/vcctl/{stack}/")
}

/// Only EC2 may assume the role.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    })
}

/// The data volume's use, into the stack's own metric namespace: nothing else (the
/// least-privilege tests record what the host asks and find every statement needed).
/// Never a `*FullAccess` policy.
pub fn instance_policy(stack: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MetricsInItsStacksNamespace",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": super::cloudwatch::namespace(stack)}}
            }
        ]
    })
}

fn tags(stamp: &Stamp) -> Vec<Tag> {
    stamp
        .pairs()
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("key and value are set"))
        .collect()
}

/// IAM returns policy documents URL-encoded.
fn decode(doc: &str) -> Value {
    let mut bytes = Vec::with_capacity(doc.len());
    let raw = doc.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let Ok(b) = u8::from_str_radix(&doc[i + 1..i + 3], 16)
        {
            bytes.push(b);
            i += 3;
            continue;
        }
        bytes.push(if raw[i] == b'+' { b' ' } else { raw[i] });
        i += 1;
    }
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[derive(Debug, Clone)]
pub struct IamRole {
    pub trust: Value,
    pub owner: Owner,
}

pub async fn get_role(iam: &Client, name: &str) -> Result<Option<IamRole>> {
    match iam.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role().map(|r| IamRole {
            trust: decode(r.assume_role_policy_document().unwrap_or("")),
            owner: Owner::from_tags(r.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(None),
        Err(e) => Err(error("iam:GetRole", &format!("looking up role `{name}`"), e)),
    }
}

/// Makes role `name` under `path`, trusted as `trust` says, tagged with the stack.
pub async fn create_role(
    iam: &Client,
    name: &str,
    path: &str,
    trust: &Value,
    description: &str,
    stamp: &Stamp,
) -> Result<()> {
    iam.create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(trust.to_string())
        .description(description)
        .max_session_duration(3600)
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("iam:CreateRole", &format!("creating role `{name}`"), e))?;
    Ok(())
}

/// Replaces a role's trust policy.
pub async fn set_trust(iam: &Client, name: &str, trust: &Value) -> Result<()> {
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust.to_string())
        .send()
        .await
        .map_err(|e| error("iam:UpdateAssumeRolePolicy", &format!("restoring the trust policy of `{name}`"), e))?;
    Ok(())
}

pub async fn get_role_policy(iam: &Client, role: &str, policy: &str) -> Result<Option<Value>> {
    match iam.get_role_policy().role_name(role).policy_name(policy).send().await {
        Ok(out) => Ok(Some(decode(out.policy_document()))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(None),
        Err(e) => Err(error("iam:GetRolePolicy", &format!("reading policy `{policy}` of role `{role}`"), e)),
    }
}

pub async fn put_role_policy(iam: &Client, role: &str, policy: &str, document: &Value) -> Result<()> {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(policy)
        .policy_document(document.to_string())
        .send()
        .await
        .map_err(|e| error("iam:PutRolePolicy", &format!("writing policy `{policy}` of role `{role}`"), e))?;
    Ok(())
}

/// A role trusted as `trust` says (a CI deploy role), tagged for `stamp`'s stack.
/// The account's OIDC provider for `host` (e.g. `token.actions.githubusercontent.com`).
pub async fn find_oidc_provider(iam: &Client, host: &str) -> Result<Option<String>> {
    let out = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| error("iam:ListOpenIDConnectProviders", "looking up the OIDC providers", e))?;
    let suffix = format!("oidc-provider/{host}");
    Ok(out
        .open_id_connect_provider_list()
        .iter()
        .filter_map(|p| p.arn())
        .find(|a| a.ends_with(&suffix))
        .map(str::to_string))
}

/// Creates the OIDC provider for `host`, trusted for tokens whose audience is `audience`.
pub async fn create_oidc_provider(iam: &Client, host: &str, audience: &str) -> Result<String> {
    let out = iam
        .create_open_id_connect_provider()
        .url(format!("https://{host}"))
        .client_id_list(audience)
        .send()
        .await
        .map_err(|e| error("iam:CreateOpenIDConnectProvider", &format!("creating the OIDC provider for {host}"), e))?;
    out.open_id_connect_provider_arn().map(str::to_string).context("CreateOpenIDConnectProvider returned no ARN")
}

/// The role's inline policy names and managed policy ARNs.
async fn policies(iam: &Client, role: &str) -> Result<(Vec<String>, Vec<String>)> {
    let inline = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| error("iam:ListRolePolicies", &format!("listing the policies of role `{role}`"), e))?;
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| error("iam:ListAttachedRolePolicies", &format!("listing the policies of role `{role}`"), e))?;
    let managed = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).map(str::to_string).collect();
    Ok((inline.policy_names().to_vec(), managed))
}

/// Every policy attached to the role, inline or managed: anything but ours is drift.
pub async fn other_policies(iam: &Client, role: &str, ours: &str) -> Result<Vec<String>> {
    let (inline, managed) = policies(iam, role).await?;
    Ok(inline.into_iter().filter(|p| p != ours).chain(managed).collect())
}

/// Removes one policy from the role: detaches a managed one (an ARN), deletes an inline one.
pub async fn remove_policy(iam: &Client, role: &str, policy: &str) -> Result<()> {
    if policy.starts_with("arn:") {
        iam.detach_role_policy()
            .role_name(role)
            .policy_arn(policy)
            .send()
            .await
            .map_err(|e| error("iam:DetachRolePolicy", &format!("detaching `{policy}` from `{role}`"), e))?;
    } else {
        iam.delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| error("iam:DeleteRolePolicy", &format!("deleting policy `{policy}` of `{role}`"), e))?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct InstanceProfile {
    pub roles: Vec<String>,
    pub owner: Owner,
}

pub async fn get_instance_profile(iam: &Client, name: &str) -> Result<Option<InstanceProfile>> {
    match iam.get_instance_profile().instance_profile_name(name).send().await {
        Ok(out) => Ok(out.instance_profile().map(|p| InstanceProfile {
            roles: p.roles().iter().map(|r| r.role_name().to_string()).collect(),
            owner: Owner::from_tags(p.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(None),
        Err(e) => Err(error("iam:GetInstanceProfile", &format!("looking up instance profile `{name}`"), e)),
    }
}

pub async fn create_instance_profile(iam: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    let stack = &stamp.stack;
    iam.create_instance_profile()
        .instance_profile_name(name)
        .path(path(stack))
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("iam:CreateInstanceProfile", &format!("creating instance profile `{name}`"), e))?;
    Ok(())
}

/// Puts the stack's tags on its role.
pub async fn tag_role(iam: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    iam.tag_role()
        .role_name(name)
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("iam:TagRole", &format!("tagging role `{name}`"), e))?;
    Ok(())
}

/// Puts the stack's tags on its instance profile.
pub async fn tag_instance_profile(iam: &Client, name: &str, stamp: &Stamp) -> Result<()> {
    iam.tag_instance_profile()
        .instance_profile_name(name)
        .set_tags(Some(tags(stamp)))
        .send()
        .await
        .map_err(|e| error("iam:TagInstanceProfile", &format!("tagging instance profile `{name}`"), e))?;
    Ok(())
}

pub async fn add_role(iam: &Client, profile: &str, role: &str) -> Result<()> {
    iam.add_role_to_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .map_err(|e| error("iam:AddRoleToInstanceProfile", &format!("adding role `{role}` to `{profile}`"), e))?;
    Ok(())
}

/// Deletes the profile and the role with its inline policies; missing parts are skipped.
pub async fn delete_role_and_profile(iam: &Client, role: &str, profile: &str) -> Result<()> {
    if let Some(p) = get_instance_profile(iam, profile).await? {
        for r in &p.roles {
            iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(r).send().await.map_err(
                |e| error("iam:RemoveRoleFromInstanceProfile", &format!("detaching `{r}` from `{profile}`"), e),
            )?;
        }
        iam.delete_instance_profile()
            .instance_profile_name(profile)
            .send()
            .await
            .map_err(|e| error("iam:DeleteInstanceProfile", &format!("deleting instance profile `{profile}`"), e))?;
    }
    delete_role(iam, role).await
}

/// Deletes the role after its policies, inline and managed; a missing role is skipped.
pub async fn delete_role(iam: &Client, role: &str) -> Result<()> {
    if get_role(iam, role).await?.is_some() {
        let (inline, managed) = policies(iam, role).await?;
        for p in inline.iter().chain(&managed) {
            remove_policy(iam, role, p).await?;
        }
        iam.delete_role()
            .role_name(role)
            .send()
            .await
            .map_err(|e| error("iam:DeleteRole", &format!("deleting role `{role}`"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_decode_and_stay_least_privilege() {
        let p = instance_policy("frankfurt");
        let encoded = p.to_string().replace('{', "%7B").replace('}', "%7D").replace('"', "%22").replace(' ', "+");
        assert_eq!(decode(&encoded), p);
        assert!(!p.to_string().contains("FullAccess"));
        assert_eq!(p["Statement"][0]["Condition"]["StringEquals"]["cloudwatch:namespace"], "VehicleConnect/frankfurt");
    }
}
