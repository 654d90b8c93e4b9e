//! WAFv2: a stack's web ACL (`waf:`), on its load balancer (scope `REGIONAL`, in the stack's
//! region) or on its distribution (scope `CLOUDFRONT`, always in us-east-1). vcctl keeps its
//! three rules (`Spec`) and writes them whole; it finds the ACL by name and trusts it by its
//! tags.

use anyhow::{Context, Result};
use aws_sdk_wafv2::Client;
use aws_sdk_wafv2::types::{
    AllowAction, BlockAction, ByteMatchStatement, CountAction, CountryCode, DefaultAction, FieldToMatch,
    GeoMatchStatement, ManagedRuleGroupStatement, OverrideAction, PositionalConstraint, RateBasedStatement,
    RateBasedStatementAggregateKeyType, Rule, RuleAction, Scope, Statement, Tag, TextTransformation,
    TextTransformationType, UriPath, VisibilityConfig,
};
use serde::Serialize;

use super::{Owner, Stamp, error};

/// The rules' names, which are also their metrics' in CloudWatch.
pub const RULE_COUNTRIES: &str = "blocked-countries";
pub const RULE_INGEST_RATE: &str = "ingest-rate";
pub const RULE_COMMON: &str = "aws-common-rules";
/// AWS's managed common rule set, in count mode: its labels and metrics without its blocks
/// (its body-size rule alone would block every batch of events over 8 KB).
const COMMON_SET: (&str, &str) = ("AWS", "AWSManagedRulesCommonRuleSet");
/// The window the rate rule counts over, in seconds.
pub const RATE_WINDOW_S: i64 = 300;

/// What vcctl keeps of its web ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    /// Requests to `/api/events` one client address may make in five minutes.
    pub ingest_per_ip_5min: i64,
    /// ISO 3166 alpha-2 codes, sorted, blocked first.
    pub block_countries: Vec<String>,
    /// AWS's common rule set present (in count mode).
    pub common_rules: bool,
}

/// The stack's web ACL, as found.
#[derive(Debug, Clone, Serialize)]
pub struct WebAcl {
    pub name: String,
    pub id: String,
    pub arn: String,
    /// `REGIONAL` or `CLOUDFRONT`.
    pub scope: String,
    #[serde(skip)]
    pub lock_token: String,
    pub spec: Spec,
    #[serde(skip)]
    pub owner: Owner,
}

fn scope_of(cloudfront: bool) -> Scope {
    if cloudfront { Scope::Cloudfront } else { Scope::Regional }
}

/// The web ACL named `name` in the scope, tagged as stack `stack`'s.
pub async fn find(waf: &Client, name: &str, cloudfront: bool, stack: &str) -> Result<Option<WebAcl>> {
    let mut marker = None;
    loop {
        let out = waf
            .list_web_acls()
            .scope(scope_of(cloudfront))
            .set_next_marker(marker)
            .limit(100)
            .send()
            .await
            .map_err(|e| error("wafv2:ListWebACLs", "listing the web ACLs", e))?;
        if let Some(s) = out.web_acls().iter().find(|s| s.name() == Some(name)) {
            let (id, arn) = (s.id().unwrap_or_default(), s.arn().unwrap_or_default());
            let owner = owner(waf, arn).await?;
            if owner.stack.as_deref() != Some(stack) {
                return Ok(None);
            }
            return read(waf, name, id, cloudfront, owner).await.map(Some);
        }
        match out.next_marker().filter(|m| !m.is_empty() && !out.web_acls().is_empty()) {
            Some(m) => marker = Some(m.to_string()),
            None => return Ok(None),
        }
    }
}

async fn owner(waf: &Client, arn: &str) -> Result<Owner> {
    let tags = waf
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| error("wafv2:ListTagsForResource", &format!("reading the tags of {arn}"), e))?;
    let list = tags.tag_info_for_resource().map(|t| t.tag_list()).unwrap_or_default();
    Ok(Owner::from_tags(list.iter().map(|t| (Some(t.key()), Some(t.value())))))
}

async fn read(waf: &Client, name: &str, id: &str, cloudfront: bool, owner: Owner) -> Result<WebAcl> {
    let out = waf
        .get_web_acl()
        .name(name)
        .id(id)
        .scope(scope_of(cloudfront))
        .send()
        .await
        .map_err(|e| error("wafv2:GetWebACL", &format!("reading web ACL {name}"), e))?;
    let acl = out.web_acl().context("GetWebACL answered no web ACL")?;
    Ok(WebAcl {
        name: acl.name().to_string(),
        id: acl.id().to_string(),
        arn: acl.arn().to_string(),
        scope: scope_of(cloudfront).as_str().to_string(),
        lock_token: out.lock_token().unwrap_or_default().to_string(),
        spec: spec_of(acl.rules()),
        owner,
    })
}

/// What of the rules vcctl keeps: a rule changed by hand reads as a different spec.
fn spec_of(rules: &[Rule]) -> Spec {
    let named = |n: &str| rules.iter().find(|r| r.name() == n).and_then(|r| r.statement());
    let rate = named(RULE_INGEST_RATE).and_then(|s| s.rate_based_statement()).map_or(0, |r| r.limit());
    let mut countries: Vec<String> = named(RULE_COUNTRIES)
        .and_then(|s| s.geo_match_statement())
        .map(|g| g.country_codes().iter().map(|c| c.as_str().to_string()).collect())
        .unwrap_or_default();
    countries.sort();
    let common = named(RULE_COMMON)
        .and_then(|s| s.managed_rule_group_statement())
        .is_some_and(|m| (m.vendor_name(), m.name()) == COMMON_SET);
    Spec { ingest_per_ip_5min: rate, block_countries: countries, common_rules: common }
}

fn visibility(metric: &str) -> Result<VisibilityConfig> {
    Ok(VisibilityConfig::builder()
        .sampled_requests_enabled(true)
        .cloud_watch_metrics_enabled(true)
        .metric_name(metric)
        .build()?)
}

/// The rules of `spec`, in the order WAF evaluates them: countries, the rate, the common set.
fn rules(spec: &Spec) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    if !spec.block_countries.is_empty() {
        let geo = GeoMatchStatement::builder()
            .set_country_codes(Some(spec.block_countries.iter().map(|c| CountryCode::from(c.as_str())).collect()))
            .build();
        out.push(rule(RULE_COUNTRIES, Statement::builder().geo_match_statement(geo).build(), true)?);
    }
    let events = ByteMatchStatement::builder()
        .search_string(aws_smithy_types::Blob::new("/api/events"))
        .field_to_match(FieldToMatch::builder().uri_path(UriPath::builder().build()).build())
        .text_transformations(TextTransformation::builder().priority(0).r#type(TextTransformationType::None).build()?)
        .positional_constraint(PositionalConstraint::StartsWith)
        .build()?;
    let rate = RateBasedStatement::builder()
        .limit(spec.ingest_per_ip_5min)
        .evaluation_window_sec(RATE_WINDOW_S)
        .aggregate_key_type(RateBasedStatementAggregateKeyType::Ip)
        .scope_down_statement(Statement::builder().byte_match_statement(events).build())
        .build()?;
    out.push(rule(RULE_INGEST_RATE, Statement::builder().rate_based_statement(rate).build(), true)?);
    if spec.common_rules {
        let set = ManagedRuleGroupStatement::builder().vendor_name(COMMON_SET.0).name(COMMON_SET.1).build()?;
        out.push(rule(RULE_COMMON, Statement::builder().managed_rule_group_statement(set).build(), false)?);
    }
    Ok(out)
}

/// A rule that blocks what it matches, or a rule group whose own actions are counted only.
fn rule(name: &str, statement: Statement, block: bool) -> Result<Rule> {
    let r = Rule::builder().name(name).statement(statement).visibility_config(visibility(name)?);
    let r = match block {
        true => r.action(RuleAction::builder().block(BlockAction::builder().build()).build()),
        false => r.override_action(OverrideAction::builder().count(CountAction::builder().build()).build()),
    };
    let priority = [RULE_COUNTRIES, RULE_INGEST_RATE, RULE_COMMON].iter().position(|n| *n == name).unwrap_or(9);
    Ok(r.priority(priority as i32).build()?)
}

/// Makes the web ACL, tagged, letting through what no rule blocks.
pub async fn create(waf: &Client, name: &str, cloudfront: bool, spec: &Spec, stamp: &Stamp) -> Result<WebAcl> {
    let tags: Vec<Tag> =
        stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
    let out = waf
        .create_web_acl()
        .name(name)
        .scope(scope_of(cloudfront))
        .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
        .set_rules(Some(rules(spec)?))
        .visibility_config(visibility(name)?)
        .description(format!("VehicleConnect stack {}, managed by vcctl", stamp.stack))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("wafv2:CreateWebACL", &format!("creating web ACL {name}"), e))?;
    let id = out.summary().and_then(|s| s.id()).context("CreateWebACL answered no id")?;
    let owner =
        Owner { stack: Some(stamp.stack.clone()), managed_by: Some("vcctl".into()), stack_id: Some(stamp.id.clone()) };
    read(waf, name, id, cloudfront, owner).await
}

/// Writes `spec`'s rules over the ACL found (its lock token: a change since is refused).
pub async fn update(waf: &Client, found: &WebAcl, spec: &Spec) -> Result<WebAcl> {
    let cloudfront = found.scope == "CLOUDFRONT";
    waf.update_web_acl()
        .name(&found.name)
        .id(&found.id)
        .scope(scope_of(cloudfront))
        .lock_token(&found.lock_token)
        .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
        .set_rules(Some(rules(spec)?))
        .visibility_config(visibility(&found.name)?)
        .send()
        .await
        .map_err(|e| error("wafv2:UpdateWebACL", &format!("changing web ACL {}", found.name), e))?;
    read(waf, &found.name, &found.id, cloudfront, found.owner.clone()).await
}

/// The web ACL on `resource` (a load balancer's ARN), if any.
pub async fn on_resource(waf: &Client, resource: &str) -> Result<Option<String>> {
    let out = waf
        .get_web_acl_for_resource()
        .resource_arn(resource)
        .send()
        .await
        .map_err(|e| error("wafv2:GetWebACLForResource", &format!("reading the web ACL on {resource}"), e))?;
    Ok(out.web_acl().map(|a| a.arn().to_string()))
}

pub async fn associate(waf: &Client, acl: &str, resource: &str) -> Result<()> {
    waf.associate_web_acl()
        .web_acl_arn(acl)
        .resource_arn(resource)
        .send()
        .await
        .map_err(|e| error("wafv2:AssociateWebACL", &format!("putting web ACL {acl} on {resource}"), e))?;
    Ok(())
}

pub async fn disassociate(waf: &Client, resource: &str) -> Result<()> {
    waf.disassociate_web_acl()
        .resource_arn(resource)
        .send()
        .await
        .map_err(|e| error("wafv2:DisassociateWebACL", &format!("taking the web ACL off {resource}"), e))?;
    Ok(())
}

pub async fn delete(waf: &Client, found: &WebAcl) -> Result<()> {
    waf.delete_web_acl()
        .name(&found.name)
        .id(&found.id)
        .scope(scope_of(found.scope == "CLOUDFRONT"))
        .lock_token(&found.lock_token)
        .send()
        .await
        .map_err(|e| error("wafv2:DeleteWebACL", &format!("deleting web ACL {}", found.name), e))?;
    Ok(())
}
