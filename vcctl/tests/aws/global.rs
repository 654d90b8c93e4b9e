//! vcctl against moto: a global stack of two regions (two single boxes, in Frankfurt and
//! Virginia) behind one name: its health checks and routed records, made once, changed when
//! the routing changes, taken back by `destroy` (only its own); deploys region by region.

use super::*;

const WORLD: &str = "name: world
provider: global
global:
  domain: api.example.com
  route53_zone: example.com
  routing: latency
  canary: us
  regions:
    eu: fra
    us: iad
";

fn on(p: &Project, stack: &str, args: &[&str], code: i32) -> Output {
    let out = p.command_on(stack, args).output().unwrap();
    assert_eq!(out.status.code(), Some(code), "vcctl {args:?} --stack {stack}\n{}", show(&out));
    out
}

fn json_on(p: &Project, stack: &str, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = on(p, stack, &all, code);
    // `deploy` of a global stack prints each region's document, then its own: the last one.
    let docs: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(&out.stdout).into_iter().collect();
    let docs = docs.unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(&out)));
    docs.into_iter().last().unwrap_or_else(|| panic!("no JSON:\n{}", show(&out)))
}

async fn records(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<aws_sdk_route53::types::ResourceRecordSet> {
    let out = r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    out.resource_record_sets().iter().filter(|r| r.name() == "api.example.com.").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_stack_routes_one_name_to_its_healthy_regions_and_destroy_takes_back_only_its_own() {
    let p = Project::new(STACK, Moto::start(&[]));
    let iad = STACK.replace("name: fra", "name: iad").replace("region: eu-central-1", "region: us-east-1");
    std::fs::write(p.dir.path().join("stacks/iad.yaml"), iad).unwrap();
    std::fs::write(p.dir.path().join("stacks/world.yaml"), WORLD).unwrap();
    let r53 = aws_sdk_route53::Client::new(&p.sdk_config().await);

    // Before the zone and the regions: said, naming what to do.
    let err = show(&on(&p, "world", &["plan"], 3));
    assert!(err.contains("no Route 53 hosted zone example.com (global.route53_zone)"), "{err}");
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("vcctl-test").send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let plan = json_on(&p, "world", &["plan"], 0);
    let notes: Vec<&str> = plan["changes"].as_array().unwrap().iter().filter_map(|c| c["detail"].as_str()).collect();
    assert!(notes.iter().any(|n| n.contains("run `vcctl up --stack iad`")), "{plan}");

    p.json(&["up"], 0);
    json_on(&p, "iad", &["up"], 0);
    // From here to `destroy --regions`, every call the global stack's own commands make is
    // checked against `vcctl iam-policy --stack world` at the end.
    let watch = recorded::Watch::start(&p).await;
    let plan = json_on(&p, "world", &["plan"], 2);
    let changes = plan["changes"].as_array().unwrap();
    let lines: Vec<String> =
        changes.iter().filter(|c| c["action"] != "note").map(|c| c["resource"].as_str().unwrap().to_string()).collect();
    // Each region's own file is told what its service needs for the global view.
    let notes: Vec<String> = changes
        .iter()
        .filter(|c| c["action"] == "note")
        .map(|c| format!("{} {}", c["resource"], c["detail"]))
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("region eu (stacks/fra.yaml)")
            && n.contains("VC_REGION_NAME: eu and VC_PEERS: \\\"us=http://")),
        "{notes:?}"
    );
    assert_eq!(
        lines,
        [
            "health check of region eu",
            "DNS record api.example.com A (eu)",
            "health check of region us",
            "DNS record api.example.com A (us)"
        ]
    );
    common::check_schema("plan", &plan);
    // Two HTTP health checks at $0.50, 200 million latency queries at $0.60 a million.
    assert_eq!(plan["cost"]["total_usd"].as_f64(), Some(121.0), "{plan}");
    let text = String::from_utf8_lossy(&on(&p, "world", &["plan"], 2).stdout).into_owned();
    assert!(text.contains("deploys go us → eu") && text.contains("200 million a month, assumed"), "{text}");

    let up = json_on(&p, "world", &["up"], 0);
    assert_eq!((up["changed"].as_bool(), up["changes"].as_array().map(Vec::len)), (Some(true), Some(4)), "{up}");
    let (world_id, eu_ip) = the_checks_and_records_are_made_once(&p, &r53, &zone).await;
    status_shows_each_regions_check_and_record(&p);
    failover_changes_the_records_and_keeps_the_checks(&p, &r53, &zone, &world_id).await;
    within_the_global_policy(&p, watch).await;
    deploys_go_region_by_region_and_stop_at_the_first_failure(&p);
    let watch = recorded::Watch::start(&p).await;
    destroy_takes_back_only_the_stacks_own(&p, &r53, &zone, &eu_ip, watch).await;
}

/// Region fra's Elastic IP, read with the SDK (not with vcctl: its calls are being watched).
async fn fra_address(p: &Project) -> Option<String> {
    let (ec2, _, _) = p.sdk().await;
    let out = ec2.describe_addresses().filters(stack_filter()).send().await.unwrap();
    out.addresses().first().and_then(|a| a.public_ip()).map(str::to_string)
}

/// Every call the global stack's own commands made since `watch` started allowed by
/// `vcctl iam-policy --stack world` (the regions' commands have their own).
async fn within_the_global_policy(p: &Project, watch: recorded::Watch) {
    let (_, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    let out = on(p, "world", &["iam-policy"], 0);
    let policy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(asked.iter().any(|a| a.action.starts_with("route53:")), "recorded: {asked:?}");
    least_privilege::check_operator(&policy, &asked);
}

/// The health checks (found again by their caller reference) and the latency records; a
/// second plan and up have nothing to do. Answers the stack's id and region eu's address.
async fn the_checks_and_records_are_made_once(
    p: &Project,
    r53: &aws_sdk_route53::Client,
    zone: &str,
) -> (String, String) {
    let checks = r53.list_health_checks().send().await.unwrap();
    assert_eq!(checks.health_checks().len(), 2);
    let world_id = std::fs::read_to_string(p.dir.path().join("stacks/world.yaml")).unwrap();
    let world_id = world_id.lines().find_map(|l| l.strip_prefix("id: ")).expect("up wrote the stack's id").to_string();
    for h in checks.health_checks() {
        assert!(h.caller_reference().starts_with(&format!("vcctl:{world_id}:")), "{h:?}");
        let c = h.health_check_config().unwrap();
        assert_eq!((c.port(), c.resource_path(), c.r#type().as_str()), (Some(8000), Some("/api/status"), "HTTP"));
        assert_eq!((c.request_interval(), c.failure_threshold()), (Some(30), Some(3)));
    }
    let made = records(r53, zone).await;
    assert_eq!(made.len(), 2);
    let eu = made.iter().find(|r| r.set_identifier() == Some("eu")).unwrap();
    assert_eq!(eu.region().map(|r| r.as_str()), Some("eu-central-1"));
    assert_eq!(eu.ttl(), Some(60));
    assert!(checks.health_checks().iter().any(|h| Some(h.id()) == eu.health_check_id()));
    let eu_ip = eu.resource_records()[0].value().to_string();
    assert_eq!(fra_address(p).await.as_deref(), Some(eu_ip.as_str()), "the record names the region's Elastic IP");
    // Converged: nothing more to do.
    assert_eq!(json_on(p, "world", &["plan"], 0)["changed"], false);
    assert_eq!(json_on(p, "world", &["up"], 0)["changed"], false);
    (world_id, eu_ip)
}

/// Each region's check as the checkers see it (moto: one checker, healthy), its record.
fn status_shows_each_regions_check_and_record(p: &Project) {
    let status = json_on(p, "world", &["status"], 0);
    assert_eq!(status["shape"], "global");
    common::check_schema("status", &status);
    let regions = status["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0]["checkers_healthy"], serde_json::json!([1, 1]));
    assert_eq!(regions[1]["record"], true);
    assert!(status["kpis"].is_null());
    let text = String::from_utf8_lossy(&on(p, "world", &["status"], 0).stdout).into_owned();
    assert!(text.contains("set VCCTL_READ_TOKEN"), "{text}");
}

/// Failover: the same checks, the records become PRIMARY and SECONDARY.
async fn failover_changes_the_records_and_keeps_the_checks(
    p: &Project,
    r53: &aws_sdk_route53::Client,
    zone: &str,
    world_id: &str,
) {
    let failover = WORLD.replace("routing: latency", "routing: failover\n  primary: eu");
    std::fs::write(p.dir.path().join("stacks/world.yaml"), format!("{failover}id: {world_id}\n")).unwrap();
    // With each region's file naming the other, no note is left either.
    let ips: Vec<String> = json_on(p, "world", &["plan"], 2)["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"]["ip"].as_str().unwrap().to_string())
        .collect();
    for (file, name, other) in
        [("fra", "eu", format!("us=http://{}:8000", ips[1])), ("iad", "us", format!("eu=http://{}:8000", ips[0]))]
    {
        let path = p.dir.path().join(format!("stacks/{file}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let env = format!("  port: 8000\n  env:\n    VC_REGION_NAME: {name}\n    VC_PEERS: \"{other}\"\n");
        std::fs::write(&path, text.replace("  port: 8000\n", &env)).unwrap();
    }
    let plan = json_on(p, "world", &["plan"], 2);
    assert_eq!(plan["changes"].as_array().unwrap().len(), 2, "two updates, no note: {plan}");
    json_on(p, "world", &["up"], 0);
    let made = records(r53, zone).await;
    let roles: Vec<(Option<&str>, Option<&str>)> =
        made.iter().map(|r| (r.set_identifier(), r.failover().map(|f| f.as_str()))).collect();
    assert!(
        roles.contains(&(Some("eu"), Some("PRIMARY"))) && roles.contains(&(Some("us"), Some("SECONDARY"))),
        "{roles:?}"
    );
    assert_eq!(r53.list_health_checks().send().await.unwrap().health_checks().len(), 2, "the checks were kept");
}

/// The canary (us) first; a failing canary stops the rest. One region's commands are
/// refused, naming where to run them.
fn deploys_go_region_by_region_and_stop_at_the_first_failure(p: &Project) {
    let out = on(p, "world", &["deploy", "--artifact", "no-such-file"], 3);
    let err = common::stderr(&out);
    assert!(err.contains("region us (stack iad)"), "{err}");
    let summary = json_on(p, "world", &["deploy", "--artifact", "no-such-file"], 3);
    assert_eq!(summary["region_failed"], "us");
    assert_eq!(summary["regions_not_reached"], serde_json::json!(["eu"]));
    // The commands of one region are refused, naming where to run them.
    let err = common::stderr(&on(p, "world", &["logs"], 3));
    assert!(err.contains("run it with --stack fra"), "{err}");
}

/// Someone else's record at the name stays; destroy asks first, then takes only the stack's;
/// with `--regions`, every region's stack too.
async fn destroy_takes_back_only_the_stacks_own(
    p: &Project,
    r53: &aws_sdk_route53::Client,
    zone: &str,
    eu_ip: &str,
    watch: recorded::Watch,
) {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, ResourceRecordSetRegion, RrType,
    };
    let theirs = ResourceRecordSet::builder()
        .name("api.example.com.")
        .r#type(RrType::A)
        .set_identifier("theirs")
        .region(ResourceRecordSetRegion::ApSouth1)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value("203.0.113.9").build().unwrap())
        .build()
        .unwrap();
    let change = Change::builder().action(ChangeAction::Create).resource_record_set(theirs).build().unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
    let err = common::stderr(&on(p, "world", &["destroy"], 8));
    assert!(err.contains("health check") && err.contains("DNS record api.example.com A (eu)"), "{err}");
    let gone = json_on(p, "world", &["destroy", "--yes"], 0);
    common::check_schema("destroy", &gone);
    assert_eq!(gone["deleted"].as_array().unwrap().len(), 4, "{gone}");
    assert_eq!(gone["kept"].as_array().unwrap().len(), 2, "the regions stay: {gone}");
    let left = records(r53, zone).await;
    assert_eq!(left.iter().map(|r| r.set_identifier()).collect::<Vec<_>>(), [Some("theirs")]);
    assert!(r53.list_health_checks().send().await.unwrap().health_checks().is_empty());
    assert_eq!(fra_address(p).await.as_deref(), Some(eu_ip), "region fra still stands");
    within_the_global_policy(p, watch).await;

    // --regions: every region's stack goes too.
    json_on(p, "world", &["up"], 0);
    let gone = json_on(p, "world", &["destroy", "--regions", "--yes"], 0);
    assert_eq!(gone["kept"].as_array().unwrap().len(), 0, "{gone}");
    let (ec2, _, _) = p.sdk().await;
    assert!(live_instances(&ec2).await.is_empty(), "region fra's instance is gone");
}

/// A `scale:` region: the health check asks its load balancer over HTTPS at the region's own
/// name, the record is an alias of the load balancer, and the global name gets a certificate
/// of its own in the region (validated in the zone), served on the region's HTTPS listener
/// beside the region's; `destroy` takes them off and deletes them, and leaves the region's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_region_serves_the_global_name_with_a_certificate_beside_its_own() {
    let p = Project::new(&super::scale::scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let iad = STACK.replace("name: fra", "name: iad").replace("region: eu-central-1", "region: us-east-1");
    std::fs::write(p.dir.path().join("stacks/iad.yaml"), iad).unwrap();
    std::fs::write(p.dir.path().join("stacks/world.yaml"), WORLD).unwrap();
    let config = p.sdk_config().await;
    let r53 = aws_sdk_route53::Client::new(&config);
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("vcctl-test").send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let up = p.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    let lb_dns = up["load_balancer"]["dns_name"].as_str().unwrap().to_ascii_lowercase();
    json_on(&p, "iad", &["up"], 0);

    let watch = recorded::Watch::start(&p).await;
    let plan = json_on(&p, "world", &["plan"], 2);
    let text = plan["changes"].to_string();
    assert!(text.contains("certificate for api.example.com in eu-central-1 (region eu)"), "{plan}");
    assert!(text.contains("GET https://vc.example.com:443/api/status"), "{plan}");
    json_on(&p, "world", &["up"], 0);

    let acm = aws_sdk_acm::Client::new(&config);
    let certs = acm.list_certificates().send().await.unwrap();
    let global_cert = certs
        .certificate_summary_list()
        .iter()
        .find(|c| c.domain_name() == Some("api.example.com"))
        .expect("a certificate for the global name in the region")
        .certificate_arn()
        .unwrap()
        .to_string();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let lb = elb.describe_load_balancers().names("vcctl-fra").send().await.unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
    let listeners = elb.describe_listeners().load_balancer_arn(&lb_arn).send().await.unwrap();
    let https =
        listeners.listeners().iter().find(|l| l.port() == Some(443)).unwrap().listener_arn().unwrap().to_string();
    let on_listener = |certs: aws_sdk_elasticloadbalancingv2::operation::describe_listener_certificates::DescribeListenerCertificatesOutput| {
        certs.certificates().iter().map(|c| (c.certificate_arn().unwrap().to_string(), c.is_default())).collect::<Vec<_>>()
    };
    let served = on_listener(elb.describe_listener_certificates().listener_arn(&https).send().await.unwrap());
    assert!(served.contains(&(global_cert.clone(), Some(false))), "beside the region's own: {served:?}");
    assert_eq!(served.iter().filter(|(_, default)| *default == Some(true)).count(), 1, "{served:?}");
    let made = records(&r53, &zone).await;
    let eu = made.iter().find(|r| r.set_identifier() == Some("eu")).unwrap();
    assert_eq!(eu.alias_target().map(|a| a.dns_name().trim_end_matches('.').to_ascii_lowercase()), Some(lb_dns));
    let checks = r53.list_health_checks().send().await.unwrap();
    let https_check =
        checks.health_checks().iter().filter_map(|h| h.health_check_config()).find(|c| c.r#type().as_str() == "HTTPS");
    assert_eq!(https_check.and_then(|c| c.fully_qualified_domain_name()), Some("vc.example.com"));
    assert_eq!(json_on(&p, "world", &["plan"], 0)["changed"], false, "converged");
    within_the_global_policy(&p, watch).await;
    // The region's own stack does not take the global name's certificate for drift.
    assert_eq!(p.json(&["plan"], 0)["changed"], false);

    let watch = recorded::Watch::start(&p).await;
    let gone = json_on(&p, "world", &["destroy", "--yes"], 0);
    within_the_global_policy(&p, watch).await;
    assert!(gone["deleted"].to_string().contains("certificate for api.example.com"), "{gone}");
    let served = on_listener(elb.describe_listener_certificates().listener_arn(&https).send().await.unwrap());
    assert!(!served.iter().any(|(arn, _)| *arn == global_cert), "{served:?}");
    let left = acm.list_certificates().send().await.unwrap();
    let domains: Vec<_> = left.certificate_summary_list().iter().filter_map(|c| c.domain_name()).collect();
    assert_eq!(domains, ["vc.example.com"], "the region's own certificate stays");
}

/// `global.cdn: true` with `waf:`: one distribution for the global name in front of every
/// region. A single-box region is refused, naming it; over two `scale:` regions, `up` makes
/// the viewer certificate and the web ACL in us-east-1 and the distribution, its origin the
/// name Route 53 routes (`origin.api.example.com`, where the regions' records now are), and
/// the global name an alias of it, the regions' records there deleted in the same change;
/// a second plan is empty; `status` shows the edge; `cdn` off moves the records back to the
/// name and takes the distribution down; every call within `iam-policy --stack world`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_distribution_the_regions_are_routed_at_its_origin_name() {
    let p = Project::new(&super::scale::scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let single = STACK.replace("name: fra", "name: iad").replace("region: eu-central-1", "region: us-east-1");
    std::fs::write(p.dir.path().join("stacks/iad.yaml"), &single).unwrap();
    let world = format!("{WORLD}  cdn: true\n  waf: {{ingest_per_ip_5min: 3000}}\n");
    std::fs::write(p.dir.path().join("stacks/world.yaml"), &world).unwrap();
    let config = p.sdk_config().await;
    let r53 = aws_sdk_route53::Client::new(&config);
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("vcctl-test").send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let artifact = common::service_bin();
    p.json(&["up", "--artifact", artifact.to_str().unwrap()], 0);
    json_on(&p, "iad", &["up"], 0);
    let refused = show(&on(&p, "world", &["plan"], 3));
    assert!(refused.contains("global.cdn: region us (stack `iad`) is a single box"), "{refused}");

    let iad = super::scale::scaled_stack()
        .replace("name: fra", "name: iad")
        .replace("region: eu-central-1", "region: us-east-1")
        .replace("domain: vc.example.com", "domain: us.example.com");
    on(&p, "iad", &["destroy", "--yes"], 0);
    std::fs::write(p.dir.path().join("stacks/iad.yaml"), iad).unwrap();
    json_on(&p, "iad", &["up", "--artifact", artifact.to_str().unwrap()], 0);
    let watch = recorded::Watch::start(&p).await;
    let plan = json_on(&p, "world", &["plan"], 2);
    let text = plan["changes"].to_string();
    for part in [
        "distribution for api.example.com",
        "web ACL vcctl-world on the distribution",
        "DNS record origin.api.example.com A (eu)",
    ] {
        assert!(text.contains(part), "{part}: {plan}");
    }
    let lines = plan["cost"]["lines"].to_string();
    assert!(lines.contains("queries of the origin name, by CloudFront's edges (20 million"), "{lines}");
    json_on(&p, "world", &["up"], 0);

    let cf = one_distribution_fronts_the_routed_name(&p, &config, &zone).await;
    the_cdn_off_routes_the_name_again_and_destroy_takes_the_edge(&p, &cf, &r53, &zone).await;
    within_the_global_policy(&p, watch).await;
}

/// After `up` with `cdn`: the distribution for the name, its origin the routed name, its web
/// ACL; the regions' records there, the alias at the name; two certificates for the name in
/// us-east-1 (region us's listener's, CloudFront's); a second plan empty; `status` shows it.
async fn one_distribution_fronts_the_routed_name(
    p: &Project,
    config: &aws_config::SdkConfig,
    zone: &str,
) -> aws_sdk_cloudfront::Client {
    let r53 = aws_sdk_route53::Client::new(config);
    let cf = aws_sdk_cloudfront::Client::new(config);
    let list = cf.list_distributions().send().await.unwrap();
    let items = list.distribution_list().unwrap().items();
    assert_eq!(items.len(), 1, "one distribution for the global name");
    let dist = cf.get_distribution().id(items[0].id()).send().await.unwrap().distribution.unwrap();
    let dc = dist.distribution_config().unwrap();
    assert_eq!(dc.aliases().unwrap().items(), ["api.example.com"]);
    let origin = &dc.origins().unwrap().items()[0];
    assert_eq!(origin.domain_name(), "origin.api.example.com");
    assert!(
        origin.custom_headers().is_none_or(|h| h.items().is_empty()),
        "the regions check no secret of the global stack's"
    );
    assert!(dc.web_acl_id().is_some_and(|w| w.contains(":global/webacl/vcctl-world/")), "{dc:?}");
    let all = r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let at = |name: &str| {
        all.resource_record_sets()
            .iter()
            .filter(|r| r.name() == name && r.r#type().as_str() == "A")
            .cloned()
            .collect::<Vec<_>>()
    };
    let routed = at("origin.api.example.com.");
    assert_eq!(
        routed.iter().filter(|r| r.set_identifier().is_some() && r.health_check_id().is_some()).count(),
        2,
        "{routed:?}"
    );
    let front = at("api.example.com.");
    assert_eq!(front.len(), 1, "only the alias at the name: {front:?}");
    let alias = front[0].alias_target().unwrap();
    assert_eq!(
        (alias.dns_name().trim_end_matches('.'), alias.hosted_zone_id()),
        (dist.domain_name(), "Z2FDTNDATAQYW2")
    );
    assert_eq!(json_on(p, "world", &["plan"], 0)["changed"], false, "converged");
    // Region us is in us-east-1 too: its listener's certificate for the name and CloudFront's
    // are two, each deleted with what uses it.
    let acm = aws_sdk_acm::Client::new(&config.to_builder().region(aws_config::Region::new("us-east-1")).build());
    let certs = acm.list_certificates().send().await.unwrap();
    let named = certs.certificate_summary_list().iter().filter(|c| c.domain_name() == Some("api.example.com")).count();
    assert_eq!(named, 2, "{certs:?}");
    let status = json_on(p, "world", &["status"], 0);
    assert_eq!(status["edge"]["distribution"]["id"], dist.id(), "{status}");

    cf
}

/// `cdn` off: the regions' records back at the name, the alias and the origin name's records
/// gone, the distribution deleted; on again, then `destroy` takes the alias, the records, the
/// checks and the edge.
async fn the_cdn_off_routes_the_name_again_and_destroy_takes_the_edge(
    p: &Project,
    cf: &aws_sdk_cloudfront::Client,
    r53: &aws_sdk_route53::Client,
    zone: &str,
) {
    // `cdn` off, in the file `up` gave its id.
    let file = p.dir.path().join("stacks/world.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace("  cdn: true\n  waf: {ingest_per_ip_5min: 3000}\n", "");
    std::fs::write(&file, text).unwrap();
    let back = json_on(p, "world", &["plan"], 2)["changes"].to_string();
    assert!(
        back.contains("the regions are routed at the name again") && back.contains("disabled, then deleted"),
        "{back}"
    );
    json_on(p, "world", &["up"], 0);
    let all = r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let names: Vec<(&str, Option<&str>)> = all
        .resource_record_sets()
        .iter()
        .filter(|r| r.r#type().as_str() == "A")
        .map(|r| (r.name(), r.set_identifier()))
        .collect();
    assert!(
        names.contains(&("api.example.com.", Some("eu"))) && names.contains(&("api.example.com.", Some("us"))),
        "{names:?}"
    );
    assert!(!names.iter().any(|(n, _)| n.starts_with("origin.")), "{names:?}");
    assert!(!names.contains(&("api.example.com.", None)), "the alias went: {names:?}");
    assert_eq!(cf.list_distributions().send().await.unwrap().distribution_list().unwrap().items().len(), 0);
    // On again, then `destroy`: the alias, the routed records, the checks, the edge.
    let text =
        std::fs::read_to_string(&file).unwrap().replace("  routing: latency\n", "  routing: latency\n  cdn: true\n");
    std::fs::write(&file, text).unwrap();
    json_on(p, "world", &["up"], 0);
    let gone = json_on(p, "world", &["destroy", "--yes"], 0)["deleted"].to_string();
    assert!(gone.contains("alias of the distribution") && gone.contains("distribution "), "{gone}");
    let left = r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    assert!(!left.resource_record_sets().iter().any(|r| r.r#type().as_str() == "A"), "{left:?}");
    assert_eq!(cf.list_distributions().send().await.unwrap().distribution_list().unwrap().items().len(), 0);
}
