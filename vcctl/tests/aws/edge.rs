//! vcctl against moto: the edge of a `scale:` stack, a CloudFront distribution (`cdn: true`)
//! and a WAF web ACL (`waf:`), read back with the SDK in both regions they live in, and
//! every call of their life checked against `vcctl iam-policy`.

use super::*;

const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";
const ORIGIN_CACHE_CONTROL_QUERY: &str = "4cc15a8a-d715-48a4-82b8-cc0b614638fe";

fn edge_stack(edge: &str) -> String {
    super::scale::scaled_stack()
        .replace("  email: ops@example.com\nscale:", "  email: ops@example.com\n  route53_zone: example.com\nscale:")
        + edge
}

const CDN_AND_WAF: &str = "  cdn: true\n  waf:\n    ingest_per_ip_5min: 2000\n    block_countries: [ru, KP, RU]\n";

struct Clients {
    cf: aws_sdk_cloudfront::Client,
    waf: aws_sdk_wafv2::Client,
    waf_edge: aws_sdk_wafv2::Client,
    r53: aws_sdk_route53::Client,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    cw_edge: aws_sdk_cloudwatch::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
}

async fn clients(p: &Project) -> Clients {
    let config = p.sdk_config().await;
    let edge = config.to_builder().region(aws_config::Region::new("us-east-1")).build();
    Clients {
        cf: aws_sdk_cloudfront::Client::new(&config),
        waf: aws_sdk_wafv2::Client::new(&config),
        waf_edge: aws_sdk_wafv2::Client::new(&edge),
        r53: aws_sdk_route53::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
        s3: aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build()),
        cw_edge: aws_sdk_cloudwatch::Client::new(&edge),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
    }
}

/// `cdn: true` and `waf:` on a `scale:` stack, from plan to destroy: the plan names and
/// prices the edge; `up` makes the viewer certificate in us-east-1, the web ACL there (its
/// three rules), the origin secret, and the distribution as the issue asks (its cache
/// behaviours, the secret header, the ACL), points the domain at it and lets only
/// CloudFront reach the load balancer; a second plan is empty; `status` shows the blocked
/// requests of the last hour from CloudWatch; drift is put back; `cdn: false` moves the
/// ACL onto the load balancer and takes the distribution down the way CloudFront allows
/// (disabled, deployed, deleted: the emulator enforces it, scripts/moto_ext/cloudfront.py);
/// `destroy` removes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distribution_and_a_web_acl_front_the_load_balancer_and_go_when_the_file_says() {
    let p = Project::new(&edge_stack(CDN_AND_WAF), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let c = clients(&p).await;
    let zone = c.r53.create_hosted_zone().name("example.com").caller_reference("vcctl-test").send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let watch = recorded::Watch::start(&p).await;
    the_plan_names_and_prices_the_edge(&p);
    let up = p.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    let lb_dns = up["load_balancer"]["dns_name"].as_str().unwrap().to_string();
    let dist = the_distribution_is_as_the_issue_asks(&p, &c, &lb_dns).await;
    the_web_acl_has_its_three_rules(&c, &dist).await;
    the_domain_points_at_it_and_only_cloudfront_reaches_the_origin(&c, &zone, &dist).await;
    assert_eq!(p.json(&["plan"], 0)["changed"], false, "converged");
    status_counts_what_the_acl_blocked(&p, &c).await;
    drift_of_the_distribution_is_put_back(&p, &c, &dist).await;
    without_the_cdn_the_acl_moves_onto_the_load_balancer(&p, &c, &zone, &lb_dns).await;
    let policy = least_privilege::operator_policy(&p);
    let gone = p.json(&["destroy", "--yes"], 0);
    assert!(gone["deleted"].to_string().contains("web ACL vcctl-fra (REGIONAL)"), "{gone}");
    let acls = c.waf.list_web_acls().scope(aws_sdk_wafv2::types::Scope::Regional).send().await.unwrap();
    assert!(acls.web_acls().is_empty(), "{acls:?}");
    let (calls, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    least_privilege::check_operator(&policy, &asked);
    turning_the_cdn_off_refused_nobody(&calls.iter().map(|c| c.action.as_str()).collect::<Vec<_>>());
}

/// The order of `cdn: false`'s calls, as recorded: the load balancer admits everyone again
/// (after the drift repair's last change to the distribution), then the ACL goes on it, the
/// name moves back to it, and only then is the distribution disabled and deleted.
fn turning_the_cdn_off_refused_nobody(actions: &[&str]) {
    let at = |a: &str, from: usize| actions[from..].iter().position(|x| *x == a).map(|i| i + from);
    let associate = at("wafv2:AssociateWebACL", 0).expect("the ACL put on the load balancer");
    let repaired = actions[..associate].iter().rposition(|a| *a == "cloudfront:UpdateDistribution").unwrap();
    let reopened = at("ec2:AuthorizeSecurityGroupIngress", repaired).expect("the group opened again");
    let moved = at("route53:ChangeResourceRecordSets", associate).expect("the name moved back");
    let disabled = at("cloudfront:UpdateDistribution", associate).expect("the distribution disabled");
    let deleted = at("cloudfront:DeleteDistribution", associate).expect("the distribution deleted");
    assert!(reopened < associate && moved < disabled && disabled < deleted, "{actions:?}");
}

fn the_plan_names_and_prices_the_edge(p: &Project) {
    let plan = p.json(&["plan"], 2);
    let changes = plan["changes"].to_string();
    for part in [
        "certificate for vc.example.com in us-east-1",
        "origin secret",
        "web ACL vcctl-fra on the distribution (us-east-1)",
        "countries KP RU blocked, 2000 requests to /api/events per address in 5 min",
        "distribution for vc.example.com",
    ] {
        assert!(changes.contains(part), "{part}: {plan}");
    }
    let lines = plan["cost"]["lines"].to_string();
    assert!(lines.contains("CloudFront HTTPS requests (4380 million a month, assumed)"), "{lines}");
    assert!(lines.contains("WAF rules (3)"), "{lines}");
    // 81.63 of the stack (its tests in cost.rs) + 8 152.20 of the edge.
    assert_eq!(plan["cost"]["total_usd"].as_f64(), Some(81.63 + 8152.20), "{plan}");
}

async fn the_distribution_is_as_the_issue_asks(
    p: &Project,
    c: &Clients,
    lb_dns: &str,
) -> aws_sdk_cloudfront::types::Distribution {
    let list = c.cf.list_distributions().send().await.unwrap();
    let items = list.distribution_list().unwrap().items();
    assert_eq!(items.len(), 1, "{items:?}");
    let dist = c.cf.get_distribution().id(items[0].id()).send().await.unwrap().distribution.unwrap();
    let config = dist.distribution_config().unwrap();
    assert_eq!(config.aliases().unwrap().items(), ["vc.example.com"]);
    assert!(config.enabled());
    let origin = &config.origins().unwrap().items()[0];
    assert_eq!(origin.domain_name(), lb_dns);
    let custom = origin.custom_origin_config().unwrap();
    assert_eq!(custom.origin_protocol_policy().as_str(), "https-only");
    let header = &origin.custom_headers().unwrap().items()[0];
    assert_eq!(header.header_name(), "X-VC-Origin-Secret");
    let bucket = format!("vcctl-fra-{}", p.stack_id());
    let kept = c.s3.get_object().bucket(&bucket).key("host/origin-secret").send().await.unwrap();
    let kept = String::from_utf8(kept.body.collect().await.unwrap().to_vec()).unwrap();
    assert_eq!((header.header_value(), header.header_value().len()), (kept.trim(), 48), "the bucket's secret");
    let default = config.default_cache_behavior().unwrap();
    assert_eq!(
        (default.cache_policy_id(), default.origin_request_policy_id()),
        (Some(CACHING_DISABLED), Some(ALL_VIEWER)),
        "ingest, status, metrics and the aggregates never cached, every header forwarded"
    );
    let behaviours: Vec<(&str, Option<&str>)> =
        config.cache_behaviors().unwrap().items().iter().map(|b| (b.path_pattern(), b.cache_policy_id())).collect();
    assert!(behaviours.contains(&("/api/analytics/kpis", Some(ORIGIN_CACHE_CONTROL_QUERY))), "{behaviours:?}");
    assert!(behaviours.iter().any(|(path, _)| *path == "/dashboard/*"), "{behaviours:?}");
    let cert = config.viewer_certificate().unwrap().acm_certificate_arn().unwrap();
    assert!(cert.starts_with("arn:aws:acm:us-east-1:"), "CloudFront takes certificates from us-east-1: {cert}");
    assert_eq!(config.price_class().unwrap().as_str(), "PriceClass_100");
    // The instances take the secret once the distribution sends it.
    let boot = super::restore::boot_script(p).await;
    assert!(boot.contains(": \"${VC_ORIGIN_SECRET_ON:=yes}\""), "{boot}");
    dist
}

async fn the_web_acl_has_its_three_rules(c: &Clients, dist: &aws_sdk_cloudfront::types::Distribution) {
    use aws_sdk_wafv2::types::Scope;
    let acls = c.waf_edge.list_web_acls().scope(Scope::Cloudfront).send().await.unwrap();
    let summary = &acls.web_acls()[0];
    assert_eq!(summary.name(), Some("vcctl-fra"));
    let acl_arn = summary.arn().unwrap();
    assert_eq!(dist.distribution_config().unwrap().web_acl_id(), Some(acl_arn), "on the distribution");
    let regional = c.waf.list_web_acls().scope(Scope::Regional).send().await.unwrap();
    assert!(regional.web_acls().is_empty(), "none on the load balancer's side: {regional:?}");
    let got = c
        .waf_edge
        .get_web_acl()
        .name("vcctl-fra")
        .id(summary.id().unwrap())
        .scope(Scope::Cloudfront)
        .send()
        .await
        .unwrap();
    let rules = got.web_acl().unwrap().rules();
    let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["blocked-countries", "ingest-rate", "aws-common-rules"]);
    let geo = rules[0].statement().unwrap().geo_match_statement().unwrap();
    let codes: Vec<&str> = geo.country_codes().iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, ["KP", "RU"], "upper case, once each");
    let rate = rules[1].statement().unwrap().rate_based_statement().unwrap();
    assert_eq!((rate.limit(), rate.aggregate_key_type().as_str()), (2000, "IP"));
    let scope = rate.scope_down_statement().unwrap().byte_match_statement().unwrap();
    assert_eq!(scope.search_string().as_ref(), b"/api/events");
    assert!(rules[1].action().unwrap().block().is_some());
    assert!(rules[2].override_action().unwrap().count().is_some(), "the common rule set counts, blocks nothing");
}

async fn the_domain_points_at_it_and_only_cloudfront_reaches_the_origin(
    c: &Clients,
    zone: &str,
    dist: &aws_sdk_cloudfront::types::Distribution,
) {
    let records = c.r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let a = records.resource_record_sets().iter().find(|r| r.name() == "vc.example.com." && r.r#type().as_str() == "A");
    let alias = a.and_then(|r| r.alias_target()).expect("an alias record of the domain");
    assert_eq!(alias.dns_name().trim_end_matches('.'), dist.domain_name());
    assert_eq!(alias.hosted_zone_id(), "Z2FDTNDATAQYW2");
    let lists = c.ec2.describe_managed_prefix_lists().send().await.unwrap();
    let cloudfront = lists
        .prefix_lists()
        .iter()
        .find(|l| l.prefix_list_name() == Some("com.amazonaws.global.cloudfront.origin-facing"))
        .and_then(|l| l.prefix_list_id())
        .unwrap()
        .to_string();
    let lb = lb_rules(&c.ec2).await;
    assert_eq!(lb, [(443, cloudfront)], "HTTPS from CloudFront only");
}

/// The load balancer group's rules: (port, source network or prefix list).
async fn lb_rules(ec2: &aws_sdk_ec2::Client) -> Vec<(i32, String)> {
    let groups = ec2.describe_security_groups().group_names("vcctl-fra-lb").send().await.unwrap();
    let mut out = Vec::new();
    for perm in groups.security_groups()[0].ip_permissions() {
        let port = perm.from_port().unwrap_or(-1);
        out.extend(perm.ip_ranges().iter().map(|r| (port, r.cidr_ip().unwrap_or_default().to_string())));
        out.extend(perm.ipv6_ranges().iter().map(|r| (port, r.cidr_ipv6().unwrap_or_default().to_string())));
        out.extend(perm.prefix_list_ids().iter().map(|l| (port, l.prefix_list_id().unwrap_or_default().to_string())));
    }
    out.sort();
    out
}

async fn status_counts_what_the_acl_blocked(p: &Project, c: &Clients) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let dims = [("WebACL", "vcctl-fra"), ("Rule", "ALL")].map(|(k, v)| Dimension::builder().name(k).value(v).build());
    for value in [5.0, 7.0] {
        // Minutes ago: a point of this very second is past the end of the hour asked for.
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        let datum = MetricDatum::builder()
            .metric_name("BlockedRequests")
            .set_dimensions(Some(dims.to_vec()))
            .timestamp(aws_smithy_types::DateTime::from(when))
            .value(value);
        c.cw_edge.put_metric_data().namespace("AWS/WAFV2").metric_data(datum.build()).send().await.unwrap();
    }
    let status = p.json(&["status"], 0);
    assert_eq!(status["edge"]["blocked_last_hour"].as_f64(), Some(12.0), "{status}");
    assert_eq!(status["edge"]["web_acl"]["scope"], "CLOUDFRONT", "{status}");
    assert_eq!(status["edge"]["distribution"]["status"], "Deployed", "{status}");
    let text = show(&p.expect(&["status"], 0));
    assert!(
        text.contains("waf: web ACL vcctl-fra on the distribution: 12 requests blocked in the last hour"),
        "{text}"
    );
    assert!(text.contains("the load balancer admits CloudFront only"), "{text}");
    assert!(text.contains("(behind the distribution)") && !text.contains("point vc.example.com at it"), "{text}");
}

/// The web ACL taken off the distribution by hand: planned, and put back.
async fn drift_of_the_distribution_is_put_back(
    p: &Project,
    c: &Clients,
    dist: &aws_sdk_cloudfront::types::Distribution,
) {
    let got = c.cf.get_distribution_config().id(dist.id()).send().await.unwrap();
    let mut config = got.distribution_config().unwrap().clone();
    config.web_acl_id = Some(String::new());
    c.cf.update_distribution()
        .id(dist.id())
        .if_match(got.e_tag().unwrap())
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    let plan = p.json(&["plan"], 2);
    assert!(plan["changes"].to_string().contains("put back as the file says: web ACL"), "{plan}");
    p.json(&["up"], 0);
    let now = c.cf.get_distribution_config().id(dist.id()).send().await.unwrap();
    assert!(now.distribution_config().unwrap().web_acl_id().is_some_and(|w| w.contains("webacl/vcctl-fra")));
}

/// `cdn: false`, `waf:` kept: the load balancer admits everyone again, the domain points at
/// it, the distribution is disabled then deleted, the ACL is made on the load balancer's side
/// and put on it, CloudFront's ACL and certificate deleted; the instances drop the secret.
async fn without_the_cdn_the_acl_moves_onto_the_load_balancer(p: &Project, c: &Clients, zone: &str, lb_dns: &str) {
    let file = p.dir.path().join("stacks/fra.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace("  cdn: true\n", "  cdn: false\n");
    std::fs::write(&file, text).unwrap();
    let plan = p.json(&["plan"], 2);
    let changes = plan["changes"].to_string();
    assert!(changes.contains("disabled, then deleted"), "{plan}");
    assert!(changes.contains("web ACL vcctl-fra on the load balancer"), "{plan}");
    p.json(&["up"], 0);
    let list = c.cf.list_distributions().send().await.unwrap();
    assert_eq!(list.distribution_list().unwrap().items().len(), 0, "deleted");
    let lb = c.elb.describe_load_balancers().names("vcctl-fra").send().await.unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap();
    let on = c.waf.get_web_acl_for_resource().resource_arn(lb_arn).send().await.unwrap();
    assert_eq!(on.web_acl().map(|a| a.name()), Some("vcctl-fra"));
    let edge = c.waf_edge.list_web_acls().scope(aws_sdk_wafv2::types::Scope::Cloudfront).send().await.unwrap();
    assert!(edge.web_acls().is_empty(), "{edge:?}");
    let lb = lb_rules(&c.ec2).await;
    assert!(lb.contains(&(443, "0.0.0.0/0".into())) && lb.contains(&(80, "::/0".into())), "{lb:?}");
    let records = c.r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let a = records.resource_record_sets().iter().find(|r| r.name() == "vc.example.com." && r.r#type().as_str() == "A");
    let alias = a.and_then(|r| r.alias_target()).unwrap();
    assert_eq!(alias.dns_name().trim_end_matches('.').to_ascii_lowercase(), lb_dns.to_ascii_lowercase());
    let boot = super::restore::boot_script(p).await;
    assert!(boot.contains(": \"${VC_ORIGIN_SECRET_ON:=no}\""), "{boot}");
    assert_eq!(p.json(&["plan"], 0)["changed"], false, "converged");
}
