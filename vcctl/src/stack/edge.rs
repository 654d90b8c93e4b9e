//! The edge in front of a `scale:` stack's load balancer: a CloudFront distribution
//! (`cdn: true`) and a WAF web ACL (`waf:`), on the distribution when there is one, else on
//! the load balancer.

use super::yaml::{Section, StackError};

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct EdgeSettings {
    /// A CloudFront distribution in front of the load balancer, which then admits only it.
    pub cdn: bool,
    pub waf: Option<WafSettings>,
}

impl EdgeSettings {
    /// Whether the file asks for a distribution or a web ACL.
    pub fn wanted(&self) -> bool {
        self.cdn || self.waf.is_some()
    }
}

/// `waf:`: what the web ACL blocks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WafSettings {
    /// Requests to `/api/events` one client address may make in five minutes.
    pub ingest_per_ip_5min: i64,
    /// ISO 3166 alpha-2 codes (upper case, sorted, once each).
    pub block_countries: Vec<String>,
}

/// WAF's bounds on a rate-based rule's limit.
const RATE_LIMITS: std::ops::RangeInclusive<i64> = 10..=2_000_000_000;
/// The default: a vehicle reporting once a second makes 300 requests in five minutes, and a
/// fleet behind one NAT address many times that.
const DEFAULT_RATE: i64 = 6000;

/// `cdn` and `waf` of a `scale:` or `global:` section (read before its `finish`).
pub fn edge_settings(s: &mut Section) -> Result<EdgeSettings, StackError> {
    let cdn = s.opt_bool("cdn")?.unwrap_or(false);
    let Some(mut w) = s.opt_section("waf")? else { return Ok(EdgeSettings { cdn, waf: None }) };
    let rate = w.opt_parsed("ingest_per_ip_5min", "a number of requests", |v| match v.parse::<i64>() {
        Ok(n) if RATE_LIMITS.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected the requests to /api/events one address may make in 5 minutes, from {} to {} (WAF's bounds), got {v:?}",
            RATE_LIMITS.start(),
            RATE_LIMITS.end()
        )),
    })?;
    let countries = w.opt_list("block_countries", |v| {
        let code = v.trim().to_ascii_uppercase();
        if is_country(&code) {
            Ok(code)
        } else {
            Err(format!("{v:?} is not a country WAF knows: give ISO 3166 alpha-2 codes, such as RU or KP"))
        }
    })?;
    w.finish()?;
    let mut block_countries = countries.unwrap_or_default();
    block_countries.sort();
    block_countries.dedup();
    let waf = WafSettings { ingest_per_ip_5min: rate.unwrap_or(DEFAULT_RATE), block_countries };
    Ok(EdgeSettings { cdn, waf: Some(waf) })
}

/// Whether WAF's geo match takes `code` (its model's list of countries).
fn is_country(code: &str) -> bool {
    aws_sdk_wafv2::types::CountryCode::values().contains(&code)
}
