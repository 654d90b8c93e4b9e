//! CloudFront: a stack's distribution in front of its load balancer (`cdn: true`). vcctl
//! keeps a few things of it (`Spec`) and writes the whole configuration from them; it finds
//! its distribution by the comment it writes and trusts it by its tags. CloudFront is
//! global: one endpoint, whatever the stack's region.

use anyhow::{Context, Result};
use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::types::{
    Aliases, AllowedMethods, CacheBehavior, CacheBehaviors, CachedMethods, CustomHeaders, CustomOriginConfig,
    DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, Method, MinimumProtocolVersion, Origin,
    OriginCustomHeader, OriginProtocolPolicy, OriginSslProtocols, Origins, PriceClass, SslProtocol, SslSupportMethod,
    Tag, Tags, ViewerCertificate, ViewerProtocolPolicy,
};
use serde::Serialize;

use super::{Owner, Stamp, error};

/// AWS's managed policies, by the ids CloudFront's documentation gives them.
pub mod policy {
    /// No caching; with `ALL_VIEWER` every header reaches the origin, `Authorization` too.
    pub const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
    /// Cached as long as the origin's `Cache-Control` says (`s-maxage`, `max-age`), never
    /// when it says `no-store`/`no-cache`/`private`; the cache key is the path and `Host`.
    pub const ORIGIN_CACHE_CONTROL: &str = "83da9c7e-98b4-4e11-a168-04f0df8e2c65";
    /// The same, with every query string in the key (`?window=1h&endpoint=…`).
    pub const ORIGIN_CACHE_CONTROL_QUERY: &str = "4cc15a8a-d715-48a4-82b8-cc0b614638fe";
    /// Origin request policy: every viewer header, cookie and query string, `Host` included.
    pub const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";
}

/// The hosted zone of every CloudFront distribution's name, for a Route 53 alias.
pub const ALIAS_ZONE: &str = "Z2FDTNDATAQYW2";
/// The header the origin checks (the service's `VC_ORIGIN_SECRET`).
pub const ORIGIN_SECRET_HEADER: &str = "X-VC-Origin-Secret";
const ORIGIN_ID: &str = "load-balancer";

/// One cache behaviour: the requests it takes (`None`: the default) and how they are cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Behaviour {
    pub path: Option<String>,
    pub cache_policy: String,
    pub origin_request_policy: Option<String>,
}

/// What vcctl keeps of a distribution; the rest of its configuration is written from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    /// Finds the distribution again (CloudFront has no name).
    pub comment: String,
    pub aliases: Vec<String>,
    /// The load balancer's DNS name, reached over HTTPS.
    pub origin: String,
    #[serde(skip)]
    pub origin_secret: String,
    /// The viewer certificate (ACM, us-east-1).
    pub certificate: Option<String>,
    /// A WAFv2 web ACL of scope CLOUDFRONT (its ARN).
    pub web_acl: Option<String>,
    pub behaviours: Vec<Behaviour>,
    pub enabled: bool,
}

/// A distribution of the stack, as found.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub id: String,
    pub arn: String,
    /// `dxxxx.cloudfront.net`.
    pub domain_name: String,
    /// `InProgress` while a change reaches the edge, then `Deployed`.
    pub status: String,
    #[serde(skip)]
    pub etag: String,
    #[serde(skip)]
    pub caller_reference: String,
    pub spec: Spec,
    #[serde(skip)]
    pub owner: Owner,
}

/// The distribution whose comment is `comment`, tagged as the stack's; `None` when there is
/// none (one with the comment and not the tags is another's, and left alone).
pub async fn find(cf: &Client, comment: &str, stack: &str) -> Result<Option<Distribution>> {
    let mut pages = cf.list_distributions().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error("cloudfront:ListDistributions", "listing the distributions", e))?;
        for d in page.distribution_list().map(|l| l.items()).unwrap_or_default() {
            if d.comment() != comment {
                continue;
            }
            let tags =
                cf.list_tags_for_resource().resource(d.arn()).send().await.map_err(|e| {
                    error("cloudfront:ListTagsForResource", &format!("reading the tags of {}", d.id()), e)
                })?;
            let items = tags.tags().map(|t| t.items()).unwrap_or_default();
            let owner = Owner::from_tags(items.iter().map(|t| (Some(t.key()), t.value())));
            if owner.stack.as_deref() == Some(stack) {
                return read(cf, d.id(), owner).await.map(Some);
            }
        }
    }
    Ok(None)
}

async fn read(cf: &Client, id: &str, owner: Owner) -> Result<Distribution> {
    let out = cf
        .get_distribution()
        .id(id)
        .send()
        .await
        .map_err(|e| error("cloudfront:GetDistribution", &format!("reading distribution {id}"), e))?;
    let d = out.distribution().context("GetDistribution answered no distribution")?;
    let config = d.distribution_config().context("GetDistribution answered no configuration")?;
    Ok(Distribution {
        id: d.id().to_string(),
        arn: d.arn().to_string(),
        domain_name: d.domain_name().to_string(),
        status: d.status().to_string(),
        etag: out.e_tag().unwrap_or_default().to_string(),
        caller_reference: config.caller_reference().to_string(),
        spec: spec_of(config),
        owner,
    })
}

/// What of `config` vcctl keeps.
fn spec_of(config: &DistributionConfig) -> Spec {
    let origin = config.origins().and_then(|o| o.items().first());
    let secret = origin
        .and_then(|o| o.custom_headers())
        .and_then(|h| h.items().iter().find(|i| i.header_name().eq_ignore_ascii_case(ORIGIN_SECRET_HEADER)))
        .map(|h| h.header_value().to_string());
    let default = config.default_cache_behavior().map(|b| Behaviour {
        path: None,
        cache_policy: b.cache_policy_id().unwrap_or_default().to_string(),
        origin_request_policy: b.origin_request_policy_id().filter(|p| !p.is_empty()).map(str::to_string),
    });
    let others = config.cache_behaviors().map(|b| b.items()).unwrap_or_default().iter().map(|b| Behaviour {
        path: Some(b.path_pattern().to_string()),
        cache_policy: b.cache_policy_id().unwrap_or_default().to_string(),
        origin_request_policy: b.origin_request_policy_id().filter(|p| !p.is_empty()).map(str::to_string),
    });
    let cert = config.viewer_certificate().and_then(|v| v.acm_certificate_arn()).filter(|a| !a.is_empty());
    Spec {
        comment: config.comment().to_string(),
        aliases: config.aliases().map(|a| a.items().to_vec()).unwrap_or_default(),
        origin: origin.map(|o| o.domain_name().to_string()).unwrap_or_default(),
        origin_secret: secret.unwrap_or_default(),
        certificate: cert.map(str::to_string),
        web_acl: config.web_acl_id().filter(|w| !w.is_empty()).map(str::to_string),
        behaviours: default.into_iter().chain(others).collect(),
        enabled: config.enabled(),
    }
}

/// The whole configuration of `spec`: HTTPS to the origin only (TLS 1.2), viewers redirected
/// to HTTPS with TLS 1.2 at least, the price class of North America and Europe.
fn config(spec: &Spec, caller_reference: &str) -> Result<DistributionConfig> {
    // The secret header, when the origin checks one (a global stack's regions check none of its).
    let headers = match spec.origin_secret.is_empty() {
        true => vec![],
        false => {
            let h = OriginCustomHeader::builder().header_name(ORIGIN_SECRET_HEADER).header_value(&spec.origin_secret);
            vec![h.build()?]
        }
    };
    let origin = Origin::builder()
        .id(ORIGIN_ID)
        .domain_name(&spec.origin)
        .custom_headers(CustomHeaders::builder().quantity(headers.len() as i32).set_items(Some(headers)).build()?)
        .custom_origin_config(
            CustomOriginConfig::builder()
                .http_port(80)
                .https_port(443)
                .origin_protocol_policy(OriginProtocolPolicy::HttpsOnly)
                .origin_ssl_protocols(OriginSslProtocols::builder().quantity(1).items(SslProtocol::TlSv12).build()?)
                .build()?,
        )
        .build()?;
    let viewer = match &spec.certificate {
        Some(arn) => ViewerCertificate::builder()
            .acm_certificate_arn(arn)
            .ssl_support_method(SslSupportMethod::SniOnly)
            .minimum_protocol_version(MinimumProtocolVersion::TlSv122021)
            .build(),
        None => ViewerCertificate::builder().cloud_front_default_certificate(true).build(),
    };
    let default =
        spec.behaviours.iter().find(|b| b.path.is_none()).context("a distribution needs a default behaviour")?;
    let others: Vec<CacheBehavior> =
        spec.behaviours.iter().filter(|b| b.path.is_some()).map(behaviour).collect::<Result<_>>()?;
    let aliases =
        Aliases::builder().quantity(spec.aliases.len() as i32).set_items(Some(spec.aliases.clone())).build()?;
    Ok(DistributionConfig::builder()
        .caller_reference(caller_reference)
        .comment(&spec.comment)
        .enabled(spec.enabled)
        .aliases(aliases)
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(default_behaviour(default)?)
        .cache_behaviors(CacheBehaviors::builder().quantity(others.len() as i32).set_items(Some(others)).build()?)
        .viewer_certificate(viewer)
        .web_acl_id(spec.web_acl.clone().unwrap_or_default())
        .price_class(PriceClass::PriceClass100)
        .is_ipv6_enabled(true)
        .build()?)
}

/// Every method reaches the origin (events are POSTed); GET and HEAD answers may be cached.
fn methods() -> Result<AllowedMethods> {
    let all = [Method::Get, Method::Head, Method::Options, Method::Put, Method::Post, Method::Patch, Method::Delete];
    let cached = CachedMethods::builder().quantity(2).items(Method::Get).items(Method::Head).build()?;
    Ok(AllowedMethods::builder().quantity(7).set_items(Some(all.to_vec())).cached_methods(cached).build()?)
}

fn default_behaviour(b: &Behaviour) -> Result<DefaultCacheBehavior> {
    Ok(DefaultCacheBehavior::builder()
        .target_origin_id(ORIGIN_ID)
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        .allowed_methods(methods()?)
        .cache_policy_id(&b.cache_policy)
        .set_origin_request_policy_id(b.origin_request_policy.clone())
        .compress(true)
        .build()?)
}

fn behaviour(b: &Behaviour) -> Result<CacheBehavior> {
    Ok(CacheBehavior::builder()
        .path_pattern(b.path.clone().unwrap_or_default())
        .target_origin_id(ORIGIN_ID)
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        .allowed_methods(methods()?)
        .cache_policy_id(&b.cache_policy)
        .set_origin_request_policy_id(b.origin_request_policy.clone())
        .compress(true)
        .build()?)
}

/// Makes the distribution, tagged; `caller_reference` makes a retry the same request.
pub async fn create(cf: &Client, spec: &Spec, caller_reference: &str, stamp: &Stamp) -> Result<Distribution> {
    let tags: Vec<Tag> =
        stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
    let with_tags = DistributionConfigWithTags::builder()
        .distribution_config(config(spec, caller_reference)?)
        .tags(Tags::builder().set_items(Some(tags)).build())
        .build();
    let out = cf
        .create_distribution_with_tags()
        .distribution_config_with_tags(with_tags)
        .send()
        .await
        .map_err(|e| error("cloudfront:CreateDistributionWithTags", "creating the distribution", e))?;
    let d = out.distribution().context("CreateDistributionWithTags answered no distribution")?;
    let owner =
        Owner { stack: Some(stamp.stack.clone()), managed_by: Some("vcctl".into()), stack_id: Some(stamp.id.clone()) };
    read(cf, d.id(), owner).await
}

/// Writes `spec` over the distribution found (its ETag: a change made since it was read is
/// refused by CloudFront, not overwritten).
pub async fn update(cf: &Client, found: &Distribution, spec: &Spec) -> Result<Distribution> {
    cf.update_distribution()
        .id(&found.id)
        .if_match(&found.etag)
        .distribution_config(config(spec, &found.caller_reference)?)
        .send()
        .await
        .map_err(|e| error("cloudfront:UpdateDistribution", &format!("changing distribution {}", found.id), e))?;
    read(cf, &found.id, found.owner.clone()).await
}

/// The distribution as it is now.
pub async fn reread(cf: &Client, found: &Distribution) -> Result<Distribution> {
    read(cf, &found.id, found.owner.clone()).await
}

/// Deletes a distribution that is disabled and deployed (CloudFront refuses any other).
pub async fn delete(cf: &Client, found: &Distribution) -> Result<()> {
    cf.delete_distribution()
        .id(&found.id)
        .if_match(&found.etag)
        .send()
        .await
        .map_err(|e| error("cloudfront:DeleteDistribution", &format!("deleting distribution {}", found.id), e))?;
    Ok(())
}
