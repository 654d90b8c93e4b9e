//! The Application Load Balancer of a `scale:` stack, its target group and its listeners:
//! HTTPS on 443 forwarding to the group, HTTP on 80 redirecting to HTTPS.

use anyhow::{Context, Result};
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Matcher, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum, Tag, TargetGroupAttribute, TargetTypeEnum,
};
use serde::Serialize;

use super::{Owner, Stamp, code_of, error};

/// TLS 1.3 and 1.2 only (AWS's recommended policy).
pub const SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// What the load balancer lets a deregistered instance finish: the service's own deadline
/// for the requests in flight when it stops (30 s; TimeoutStopSec is 40).
pub const DEREGISTRATION_DELAY_S: u32 = 30;

#[derive(Debug, Clone, Serialize)]
pub struct Balancer {
    pub arn: String,
    pub dns_name: String,
    /// Its canonical hosted zone: what a Route 53 alias to it names.
    pub zone_id: String,
    pub security_groups: Vec<String>,
    pub zones: usize,
    #[serde(skip)]
    pub owner: Owner,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetGroup {
    pub arn: String,
    pub port: i32,
    pub health_path: String,
    #[serde(skip)]
    pub owner: Owner,
}

/// What a listener does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Does {
    /// Forwards to this target group.
    Forward(String),
    /// Redirects to HTTPS on 443 (301).
    RedirectToHttps,
    /// Anything else (a fixed answer, a redirect elsewhere): drift.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub arn: String,
    pub port: i32,
    pub protocol: String,
    pub certificate: Option<String>,
    pub does: Does,
}

fn tags(stamp: &Stamp, name: &str) -> Vec<Tag> {
    let mut out = vec![Tag::builder().key("Name").value(name).build()];
    out.extend(stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()));
    out
}

async fn owner(elb: &Client, arn: &str) -> Result<Owner> {
    let out = elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:DescribeTags", &format!("reading the tags of {arn}"), e))?;
    let tags = out.tag_descriptions().iter().flat_map(|d| d.tags()).map(|t| (t.key(), t.value()));
    Ok(Owner::from_tags(tags))
}

pub async fn find_balancer(elb: &Client, name: &str) -> Result<Option<Balancer>> {
    let out = match elb.describe_load_balancers().names(name).send().await {
        Ok(out) => out,
        Err(e) if code_of(&e) == Some("LoadBalancerNotFound") => return Ok(None),
        Err(e) => {
            return Err(error(
                "elasticloadbalancing:DescribeLoadBalancers",
                &format!("looking up load balancer {name}"),
                e,
            ));
        }
    };
    let Some(b) = out.load_balancers().first() else { return Ok(None) };
    let arn = b.load_balancer_arn().context("a load balancer without an ARN")?.to_string();
    Ok(Some(Balancer {
        dns_name: b.dns_name().unwrap_or_default().to_string(),
        zone_id: b.canonical_hosted_zone_id().unwrap_or_default().to_string(),
        security_groups: b.security_groups().to_vec(),
        zones: b.availability_zones().len(),
        owner: owner(elb, &arn).await?,
        arn,
    }))
}

pub async fn find_target_group(elb: &Client, name: &str) -> Result<Option<TargetGroup>> {
    let out = match elb.describe_target_groups().names(name).send().await {
        Ok(out) => out,
        Err(e) if code_of(&e) == Some("TargetGroupNotFound") => return Ok(None),
        Err(e) => {
            return Err(error(
                "elasticloadbalancing:DescribeTargetGroups",
                &format!("looking up target group {name}"),
                e,
            ));
        }
    };
    let Some(g) = out.target_groups().first() else { return Ok(None) };
    let arn = g.target_group_arn().context("a target group without an ARN")?.to_string();
    Ok(Some(TargetGroup {
        port: g.port().unwrap_or(0),
        health_path: g.health_check_path().unwrap_or_default().to_string(),
        owner: owner(elb, &arn).await?,
        arn,
    }))
}

pub async fn listeners(elb: &Client, balancer: &str) -> Result<Vec<Listener>> {
    let out = elb.describe_listeners().load_balancer_arn(balancer).send().await.map_err(|e| {
        error("elasticloadbalancing:DescribeListeners", &format!("reading the listeners of {balancer}"), e)
    })?;
    let mut found: Vec<Listener> = out
        .listeners()
        .iter()
        .map(|l| Listener {
            arn: l.listener_arn().unwrap_or_default().to_string(),
            port: l.port().unwrap_or(0),
            protocol: l.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(),
            certificate: l.certificates().first().and_then(|c| c.certificate_arn()).map(str::to_string),
            does: does(l.default_actions()),
        })
        .collect();
    found.sort_by_key(|l| l.port);
    Ok(found)
}

fn does(actions: &[Action]) -> Does {
    let Some(a) = actions.first().filter(|_| actions.len() == 1) else {
        return Does::Other(format!("{} actions", actions.len()));
    };
    match (a.r#type(), a.target_group_arn(), a.redirect_config()) {
        (Some(ActionTypeEnum::Forward), Some(tg), _) => Does::Forward(tg.to_string()),
        (Some(ActionTypeEnum::Redirect), _, Some(r))
            if r.protocol() == Some("HTTPS")
                && r.port() == Some("443")
                && r.status_code() == Some(&RedirectActionStatusCodeEnum::Http301) =>
        {
            Does::RedirectToHttps
        }
        (t, _, _) => Does::Other(t.map(|t| t.as_str().to_string()).unwrap_or_default()),
    }
}

/// An internet-facing load balancer over `subnets` (two zones or more) in `security_group`.
pub async fn create_balancer(
    elb: &Client,
    name: &str,
    subnets: &[String],
    security_group: &str,
    stamp: &Stamp,
) -> Result<()> {
    elb.create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets.to_vec()))
        .security_groups(security_group)
        .set_tags(Some(tags(stamp, name)))
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:CreateLoadBalancer", &format!("creating load balancer {name}"), e))?;
    Ok(())
}

/// The instances' group: HTTP to the service's `port`, healthy on `/api/status` answering
/// 200 twice, drained for [`DEREGISTRATION_DELAY_S`].
pub async fn create_target_group(elb: &Client, name: &str, port: u16, vpc: &str, stamp: &Stamp) -> Result<String> {
    let out = elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(port))
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Instance)
        .health_check_path("/api/status")
        .health_check_interval_seconds(10)
        .health_check_timeout_seconds(5)
        .healthy_threshold_count(2)
        .unhealthy_threshold_count(2)
        .matcher(Matcher::builder().http_code("200").build())
        .set_tags(Some(tags(stamp, name)))
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:CreateTargetGroup", &format!("creating target group {name}"), e))?;
    let arn =
        out.target_groups().first().and_then(|g| g.target_group_arn()).context("CreateTargetGroup answered no ARN")?;
    elb.modify_target_group_attributes()
        .target_group_arn(arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value(DEREGISTRATION_DELAY_S.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            error("elasticloadbalancing:ModifyTargetGroupAttributes", &format!("setting the drain of {name}"), e)
        })?;
    Ok(arn.to_string())
}

/// The actions of a listener that does `does`.
fn actions(does: &Does) -> Vec<Action> {
    match does {
        Does::Forward(tg) => vec![Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(tg).build()],
        Does::RedirectToHttps | Does::Other(_) => vec![
            Action::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .protocol("HTTPS")
                        .port("443")
                        .status_code(RedirectActionStatusCodeEnum::Http301)
                        .build(),
                )
                .build(),
        ],
    }
}

/// A listener on `port`: HTTPS with `certificate` when given, else HTTP.
pub async fn create_listener(
    elb: &Client,
    balancer: &str,
    port: i32,
    certificate: Option<&str>,
    does: &Does,
) -> Result<()> {
    let mut req = elb.create_listener().load_balancer_arn(balancer).port(port).set_default_actions(Some(actions(does)));
    req = match certificate {
        Some(c) => req
            .protocol(ProtocolEnum::Https)
            .ssl_policy(SSL_POLICY)
            .certificates(Certificate::builder().certificate_arn(c).build()),
        None => req.protocol(ProtocolEnum::Http),
    };
    req.send().await.map_err(|e| {
        error("elasticloadbalancing:CreateListener", &format!("opening listener {port} on {balancer}"), e)
    })?;
    Ok(())
}

/// Sets what listener `arn` does back to `does` (and its certificate, for HTTPS).
pub async fn modify_listener(elb: &Client, arn: &str, certificate: Option<&str>, does: &Does) -> Result<()> {
    let mut req = elb.modify_listener().listener_arn(arn).set_default_actions(Some(actions(does)));
    if let Some(c) = certificate {
        req = req.certificates(Certificate::builder().certificate_arn(c).build());
    }
    req.send()
        .await
        .map_err(|e| error("elasticloadbalancing:ModifyListener", &format!("changing listener {arn}"), e))?;
    Ok(())
}

/// Puts the balancer behind exactly `group`.
pub async fn set_security_groups(elb: &Client, arn: &str, group: &str) -> Result<()> {
    elb.set_security_groups().load_balancer_arn(arn).security_groups(group).send().await.map_err(|e| {
        error("elasticloadbalancing:SetSecurityGroups", &format!("setting the security group of {arn}"), e)
    })?;
    Ok(())
}

pub async fn delete_listener(elb: &Client, arn: &str) -> Result<()> {
    elb.delete_listener()
        .listener_arn(arn)
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:DeleteListener", &format!("deleting listener {arn}"), e))?;
    Ok(())
}

pub async fn delete_balancer(elb: &Client, arn: &str) -> Result<()> {
    elb.delete_load_balancer()
        .load_balancer_arn(arn)
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:DeleteLoadBalancer", &format!("deleting load balancer {arn}"), e))?;
    Ok(())
}

pub async fn delete_target_group(elb: &Client, arn: &str) -> Result<()> {
    elb.delete_target_group()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:DeleteTargetGroup", &format!("deleting target group {arn}"), e))?;
    Ok(())
}

/// A target of a target group and what the load balancer's health check says of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetHealth {
    pub id: String,
    /// `initial`, `healthy`, `unhealthy`, `draining`, `unused`...
    pub state: String,
    pub reason: Option<String>,
}

/// The targets of the group `arn`, with their health.
pub async fn targets(elb: &Client, arn: &str) -> Result<Vec<TargetHealth>> {
    let out = elb
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| error("elasticloadbalancing:DescribeTargetHealth", "reading the targets' health", e))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| TargetHealth {
            id: d.target().and_then(|t| t.id()).unwrap_or_default().to_string(),
            state: d.target_health().and_then(|h| h.state()).map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: d.target_health().and_then(|h| h.description()).map(str::to_string),
        })
        .collect())
}

fn target(id: &str, port: u16) -> aws_sdk_elasticloadbalancingv2::types::TargetDescription {
    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(id).port(i32::from(port)).build()
}

/// Registers instances `ids` in the group `arn` on `port`: the load balancer sends them
/// requests once its health check passes.
pub async fn register(elb: &Client, arn: &str, ids: &[String], port: u16) -> Result<()> {
    let mut req = elb.register_targets().target_group_arn(arn);
    for id in ids {
        req = req.targets(target(id, port));
    }
    req.send().await.map_err(|e| error("elasticloadbalancing:RegisterTargets", "registering instances", e))?;
    Ok(())
}

/// Deregisters instances `ids`: the load balancer sends them no new request, and lets those
/// in flight finish (the deregistration delay).
pub async fn deregister(elb: &Client, arn: &str, ids: &[String], port: u16) -> Result<()> {
    let mut req = elb.deregister_targets().target_group_arn(arn);
    for id in ids {
        req = req.targets(target(id, port));
    }
    req.send().await.map_err(|e| error("elasticloadbalancing:DeregisterTargets", "deregistering instances", e))?;
    Ok(())
}

/// The certificates a listener serves beside its default one (SNI picks by name): a global
/// stack's name on a region's load balancer.
pub async fn extra_certificates(elb: &Client, listener: &str) -> Result<Vec<String>> {
    let out = elb.describe_listener_certificates().listener_arn(listener).send().await.map_err(|e| {
        error(
            "elasticloadbalancing:DescribeListenerCertificates",
            &format!("reading the certificates of {listener}"),
            e,
        )
    })?;
    Ok(out
        .certificates()
        .iter()
        .filter(|c| c.is_default() != Some(true))
        .filter_map(|c| c.certificate_arn().map(str::to_string))
        .collect())
}

/// Adds (`add`) or removes one certificate of a listener, beside its default one.
pub async fn listener_certificate(elb: &Client, listener: &str, certificate: &str, add: bool) -> Result<()> {
    let c = Certificate::builder().certificate_arn(certificate).build();
    let what = format!("the certificates of listener {listener}");
    if add {
        let sent = elb.add_listener_certificates().listener_arn(listener).certificates(c).send().await;
        sent.map_err(|e| error("elasticloadbalancing:AddListenerCertificates", &what, e))?;
    } else {
        let sent = elb.remove_listener_certificates().listener_arn(listener).certificates(c).send().await;
        sent.map_err(|e| error("elasticloadbalancing:RemoveListenerCertificates", &what, e))?;
    }
    Ok(())
}
