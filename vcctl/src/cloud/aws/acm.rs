//! The load balancer's certificate (ACM) of a `scale:` stack: requested for `tls.domain`,
//! validated by DNS. vcctl prints the record to create; the load balancer serves HTTPS once
//! ACM has issued it.

use anyhow::{Context, Result};
use aws_sdk_acm::Client;
use aws_sdk_acm::types::{Tag, ValidationMethod};
use serde::Serialize;

use super::{Owner, Stamp, error};

/// A certificate of the stack, as `plan` and `up` report it.
#[derive(Debug, Clone, Serialize)]
pub struct Certificate {
    pub arn: String,
    pub domain: String,
    /// `PENDING_VALIDATION`, `ISSUED`, `FAILED`, ...
    pub status: String,
    /// The DNS record proving the domain is ours: (name, type, value).
    pub validation: Option<(String, String, String)>,
    #[serde(skip)]
    pub owner: Owner,
}

impl Certificate {
    pub fn issued(&self) -> bool {
        self.status == "ISSUED"
    }
}

/// What a certificate is for, beside its stack and domain: a load balancer's listener (no
/// tag, as vcctl always made them), or CloudFront (`cloudfront`, in us-east-1, where a
/// load balancer of a region there may have one for the same name).
pub const TAG_USE: &str = "vcctl:use";
pub const FOR_CLOUDFRONT: &str = "cloudfront";

/// The certificate for `domain` tagged with stack `stack` and use `used_by` (`None`: a load
/// balancer's), if any.
pub async fn find(acm: &Client, stack: &str, domain: &str, used_by: Option<&str>) -> Result<Option<Certificate>> {
    let mut pages = acm.list_certificates().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error("acm:ListCertificates", "listing the certificates", e))?;
        for c in page.certificate_summary_list().iter().filter(|c| c.domain_name() == Some(domain)) {
            let arn = c.certificate_arn().context("a certificate without an ARN")?;
            let tags = acm
                .list_tags_for_certificate()
                .certificate_arn(arn)
                .send()
                .await
                .map_err(|e| error("acm:ListTagsForCertificate", &format!("reading the tags of {arn}"), e))?;
            let owner = Owner::from_tags(tags.tags().iter().map(|t| (Some(t.key()), t.value())));
            let used = tags.tags().iter().find(|t| t.key() == TAG_USE).and_then(|t| t.value());
            if owner.stack.as_deref() == Some(stack) && used == used_by {
                return describe(acm, arn, owner).await.map(Some);
            }
        }
    }
    Ok(None)
}

async fn describe(acm: &Client, arn: &str, owner: Owner) -> Result<Certificate> {
    let out = acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| error("acm:DescribeCertificate", &format!("reading certificate {arn}"), e))?;
    let c = out.certificate().context("DescribeCertificate answered no certificate")?;
    let validation = c.domain_validation_options().iter().find_map(|v| {
        let r = v.resource_record()?;
        Some((r.name().to_string(), r.r#type().as_str().to_string(), r.value().to_string()))
    });
    Ok(Certificate {
        arn: arn.to_string(),
        domain: c.domain_name().unwrap_or_default().to_string(),
        status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        validation,
        owner,
    })
}

/// Requests a certificate for `domain`, validated by DNS, for `used_by` (as `find`); the
/// same request (an interrupted `up` run again) gets the same certificate back.
pub async fn request(acm: &Client, domain: &str, stamp: &Stamp, used_by: Option<&str>) -> Result<Certificate> {
    let mut tags: Vec<Tag> =
        stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
    tags.extend(used_by.map(|u| Tag::builder().key(TAG_USE).value(u).build()).transpose()?);
    let token: String = format!("{}{}{}", used_by.unwrap_or_default(), stamp.stack, stamp.id)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    let out = acm
        .request_certificate()
        .domain_name(domain)
        .validation_method(ValidationMethod::Dns)
        .idempotency_token(token)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("acm:RequestCertificate", &format!("requesting a certificate for {domain}"), e))?;
    let arn = out.certificate_arn().context("RequestCertificate answered no ARN")?;
    describe(
        acm,
        arn,
        Owner { stack: Some(stamp.stack.clone()), managed_by: Some("vcctl".into()), stack_id: Some(stamp.id.clone()) },
    )
    .await
}

pub async fn delete(acm: &Client, arn: &str) -> Result<()> {
    acm.delete_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| error("acm:DeleteCertificate", &format!("deleting certificate {arn}"), e))?;
    Ok(())
}
