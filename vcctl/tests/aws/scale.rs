//! vcctl against moto: the `scale:` stack: its tiers, its instances booting from the bucket, its rolling deploy, its records.

use super::*;

/// `plan` gives the monthly cost, from the dated table, for the single box and for a scaled
/// stack (hand-computed in `vcctl/src/cost.rs`'s tests). A stack running as a single box is
/// refused `scale:`, with the way to move its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prices_both_shapes_and_a_single_box_does_not_turn_into_a_group_in_place() {
    let p = Project::new(STACK, Moto::start(&[]));
    let plan = p.json(&["plan"], 2);
    // t2.micro, 16 GB root, 20 GB data, the Elastic IP: 9.782 + 1.5232 + 1.904 + 3.65.
    assert_eq!(plan["cost"]["total_usd"], 16.86, "{plan}");
    assert_eq!(plan["cost"]["prices_as_of"].as_str().map(str::len), Some(10), "{plan}");
    let text = String::from_utf8_lossy(&p.expect(&["plan"], 2).stdout).into_owned();
    assert!(text.contains("monthly cost, on demand in eu-central-1: about $16.86 (prices of 20"), "{text}");
    let s = p.beside(&scaled_stack());
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["cost"]["total_usd"].as_f64(), Some(81.63), "{plan}");

    // The single box runs; the same stack with `scale:` is refused, naming the way out.
    p.json(&["up"], 0);
    std::fs::write(s.dir.path().join("stacks/fra.yaml"), format!("{}id: {}\n", scaled_stack(), p.stack_id())).unwrap();
    let err = show(&s.expect(&["plan"], 3));
    assert!(err.contains("stack `fra` runs as a single box (instance i-"), "{err}");
    assert!(
        err.contains("vcctl db dump --stack fra > events.dump") && err.contains("docs/aws.md, Scaling out"),
        "{err}"
    );
}

pub fn scaled_stack() -> String {
    STACK
        .replace("instance_type: t2.micro", "instance_type: t3.small")
        .replace("  port: 8000\n", "  port: 8000\n  ingest_token: true\n")
        + "alerts:\n  email: ops@example.com\ntls:\n  domain: vc.example.com\n  email: ops@example.com\nscale:\n  replicas: {min: 2, desired: 2, max: 6}\n  cpu_target_pct: 60\n  database: {engine: rds, instance_class: db.t4g.micro, storage_gb: 20}\n"
}

/// The app group's rules: the service's port from the load balancer's group, the metrics
/// port from the app group itself (the instances' Prometheus).
fn app_chain() -> Vec<(i32, String)> {
    vec![(8000, "vcctl-fra-lb".to_string()), (9464, "vcctl-fra-app".to_string())]
}

/// The inbound rules of the stack's group `name`: (port, source) with the source a network or
/// another group's name.
async fn chain(ec2: &aws_sdk_ec2::Client, name: &str) -> Vec<(i32, String)> {
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let by_id = |id: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(id))
            .and_then(|g| g.group_name())
            .unwrap_or(id)
            .to_string()
    };
    let g = groups
        .security_groups()
        .iter()
        .find(|g| g.group_name() == Some(name))
        .unwrap_or_else(|| panic!("no group {name}"));
    let mut out = Vec::new();
    for perm in g.ip_permissions() {
        let port = perm.from_port().unwrap_or(-1);
        out.extend(perm.ip_ranges().iter().map(|r| (port, r.cidr_ip().unwrap_or_default().to_string())));
        out.extend(perm.ipv6_ranges().iter().map(|r| (port, r.cidr_ipv6().unwrap_or_default().to_string())));
        out.extend(perm.user_id_group_pairs().iter().map(|u| (port, by_id(u.group_id().unwrap_or_default()))));
    }
    out.sort();
    out
}

/// A `scale:` stack's network, data and load balancer tiers against moto: three groups,
/// each admitting only the one before it; RDS as the issue asks (encrypted, not public,
/// backups, deletion protection, the password RDS's own); the certificate requested with its
/// DNS record said, HTTPS opened once it is issued, HTTP redirected. A second `up` changes
/// nothing, drift is repaired, and `destroy` leaves nothing but the named final snapshot.
/// `up` exits 3: the Auto Scaling group is not built yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_stack_chains_its_groups_to_an_encrypted_private_rds_and_destroy_keeps_a_final_snapshot() {
    // ACM issues a certificate 10 s after it is requested (DNS validation, emulated): time
    // for `up`, which uploads the first release, and a `plan` before it is issued.
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "10")]));
    let watch = recorded::Watch::start(&s).await;
    let release = planned_then_made_once_the_certificate_is_issued(&s).await;
    status_says_storage_snapshot_targets_and_release(&s, &release).await;
    the_tiers_chain_to_an_encrypted_private_database(&s).await;
    drift_by_hand_is_planned_and_put_back(&s, &release).await;
    a_backup_is_an_rds_snapshot_waited_for_and_listed(&s);
    logs_merge_every_instances_lines_gone_ones_too(&s).await;
    let policy = least_privilege::operator_policy(&s);
    destroy_lists_everything_and_keeps_a_final_snapshot(&s).await;
    // Every call of that life, drift repairs included, allowed by `vcctl iam-policy`.
    let (_, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    least_privilege::check_operator(&policy, &asked);
    // A stack that never asked for an edge never looks for one: an operator's policy from
    // before `cdn` and `waf` existed keeps working.
    let edge: Vec<&str> = asked
        .iter()
        .map(|a| a.action.as_str())
        .filter(|a| a.starts_with("cloudfront:") || a.starts_with("wafv2:"))
        .collect();
    assert!(edge.is_empty(), "{edge:?}");
}

/// The log group `up` made (its retention, the stack's tags), holding lines of an instance
/// the group no longer has and of one it has (written here as their shippers would: the
/// shipper itself runs on the test host, below): `logs` merges them by time, each prefixed
/// with its instance; `--instance`, `--since` and `-n` narrow it; `--json` is NDJSON.
async fn logs_merge_every_instances_lines_gone_ones_too(s: &Project) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&s.sdk_config().await);
    let groups = logs.describe_log_groups().log_group_name_prefix("/vcctl/fra").send().await.unwrap();
    let group = &groups.log_groups()[0];
    assert_eq!((group.log_group_name(), group.retention_in_days()), (Some("/vcctl/fra"), Some(30)));
    let arn = group.arn().unwrap().trim_end_matches(":*");
    let tags = logs.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().get("vcctl:stack-id").map(String::as_str), Some(s.stack_id().as_str()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (stream, lines) in [
        (
            "i-0gone0000000000a",
            vec![(now - 7_200_000, "vcctl-boot: an old line"), (now - 3_000, "vcctl-boot: release failed")],
        ),
        (
            "i-0live0000000000b",
            vec![(now - 2_000, "vehicleconnect: listening"), (now - 1_000, "vehicleconnect: ready")],
        ),
    ] {
        logs.create_log_stream().log_group_name("/vcctl/fra").log_stream_name(stream).send().await.unwrap();
        let events = lines.into_iter().map(|(t, m)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder().timestamp(t).message(m).build().unwrap()
        });
        logs.put_log_events()
            .log_group_name("/vcctl/fra")
            .log_stream_name(stream)
            .set_log_events(Some(events.collect()))
            .send()
            .await
            .unwrap();
    }
    let text = |args: &[&str]| String::from_utf8_lossy(&s.expect(args, 0).stdout).into_owned();
    let all = text(&["logs"]);
    let order: Vec<&str> = all.lines().map(|l| l.split_once("] ").map_or(l, |(_, m)| m)).collect();
    assert_eq!(
        order,
        ["vcctl-boot: an old line", "vcctl-boot: release failed", "vehicleconnect: listening", "vehicleconnect: ready"]
    );
    assert!(all.lines().nth(1).unwrap().contains(" [i-0gone0000000000a] "), "prefixed with its instance:\n{all}");
    let gone = text(&["logs", "--instance", "i-0gone0000000000a"]);
    assert_eq!(gone.lines().count(), 2, "{gone}");
    assert_eq!(text(&["logs", "--since", "1h"]).lines().count(), 3, "the 2-hour-old line is left out");
    assert_eq!(text(&["logs", "-n", "1"]).trim_end().rsplit("] ").next(), Some("vehicleconnect: ready"));
    let json = text(&["logs", "--json", "-n", "2"]);
    let parsed: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 2, "one object per line: {json}");
    assert_eq!(
        (parsed[1]["instance"].as_str(), parsed[1]["message"].as_str()),
        (Some("i-0live0000000000b"), Some("vehicleconnect: ready"))
    );
}

/// `backup` of a `scale:` stack: a manual snapshot of its RDS instance, tagged, waited for,
/// its id on stdout; `backup --list` shows it beside the automated ones.
fn a_backup_is_an_rds_snapshot_waited_for_and_listed(s: &Project) {
    let out = s.expect(&["backup"], 0);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("vcctl-fra-2") && id.ends_with('z'), "{}", show(&out));
    let list = s.json(&["backup", "--list"], 0);
    let listed: Vec<(&str, &str, &str)> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].as_str().unwrap(), x["kind"].as_str().unwrap(), x["status"].as_str().unwrap()))
        .collect();
    assert!(listed.contains(&(id.as_str(), "manual", "available")), "{list}");
}

/// The plan of a new stack, `up`, the wait for the certificate, then the HTTPS listener.
async fn planned_then_made_once_the_certificate_is_issued(s: &Project) -> String {
    let (ec2, _, _) = s.sdk().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.sdk_config().await);
    let plan = s.json(&["plan"], 2);
    common::check_schema("plan", &plan);
    assert_eq!(plan["shape"], "scale", "{plan}");
    // 3 groups, the subnet group, RDS, the certificate, the target group, the load balancer,
    // HTTP's listener, the alert topic and its subscription (two changes, as on the box), 6
    // alarms (the bucket's name waits for the id), the first release, the key pair, the
    // instances' role, its policy and its instance profile (three, as on the box), the
    // launch template, the group and its CPU target, the log group and its retention:
    // every change `up` makes, said.
    assert_eq!(plan["changes"].as_array().map(Vec::len), Some(28), "{plan}");
    let requested = Instant::now();
    let up = s.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    assert_eq!(up["changed"], true, "{up}");
    assert_eq!(up["certificate"]["status"], "PENDING_VALIDATION", "{up}");
    let release = up["serving"]["release"].as_str().unwrap().to_string();
    // Nothing to do but wait for the certificate: exit 0, with the record to create.
    let plan = String::from_utf8_lossy(&s.expect(&["plan"], 0).stdout).into_owned();
    assert!(plan.contains("PENDING_VALIDATION: create the DNS record `"), "{plan}");
    assert!(!plan.contains("listener 443"), "{plan}");
    while s.run(&["plan"]).status.code() == Some(0) {
        assert!(requested.elapsed() < Duration::from_secs(40), "ACM has not issued the certificate");
        std::thread::sleep(Duration::from_millis(500));
    }
    let plan = s.json(&["plan"], 2);
    assert_eq!(
        plan["changes"].as_array().unwrap().iter().map(|c| c["resource"].as_str().unwrap()).collect::<Vec<_>>(),
        ["listener 443"],
        "{plan}"
    );
    s.json(&["up"], 0);
    check_load_balancer(&ec2, &elb).await;
    check_alarms(s, &elb).await;
    check_instances(s, &release).await;
    check_ci_role(s).await;
    release
}

/// What RDS measures and keeps, and the group's targets, as `status` says them.
async fn status_says_storage_snapshot_targets_and_release(s: &Project, release: &str) {
    let rds = aws_sdk_rds::Client::new(&s.sdk_config().await);
    // What RDS measures and keeps: 15 GiB of 20 free, and a snapshot.
    let (_, _, cw) = s.sdk().await;
    let free = aws_sdk_cloudwatch::types::MetricDatum::builder()
        .metric_name("FreeStorageSpace")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder().name("DBInstanceIdentifier").value("vcctl-fra").build(),
        )
        .value(15.0 * 1024.0 * 1024.0 * 1024.0)
        // A minute ago, as RDS reports: moto compares with the end of the query cut to the
        // second, which a datapoint of this very second would be past.
        .timestamp(aws_smithy_types::DateTime::from(std::time::SystemTime::now() - Duration::from_secs(60)))
        .build();
    cw.put_metric_data().namespace("AWS/RDS").metric_data(free).send().await.unwrap();
    rds.create_db_snapshot()
        .db_instance_identifier("vcctl-fra")
        .db_snapshot_identifier("before-launch")
        .send()
        .await
        .unwrap();
    let status = s.json(&["status"], 0);
    common::check_schema("status", &status);
    assert_eq!((status["shape"].as_str(), status["healthy"].as_bool()), (Some("scale"), Some(true)), "{status}");
    assert_eq!(
        (status["database_storage_used_gb"].as_f64(), status["last_snapshot"]["id"].as_str()),
        (Some(5.0), Some("before-launch")),
        "{status}"
    );
    assert_eq!(
        (status["serving"].as_bool(), status["certificate"]["status"].as_str()),
        (Some(true), Some("ISSUED")),
        "{status}"
    );
    assert_eq!(
        (status["healthy_targets"].as_u64(), status["release"]["release"].as_str()),
        (Some(2), Some(release)),
        "{status}"
    );
    assert!(status["instances_unread"].as_str().unwrap().contains("an emulator"), "{status}");
    assert_eq!(status["releases_kept"], serde_json::json!([release]), "{status}");
    // `rollback --to <TAB>` offers them, as `status` last read them, without calling AWS.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcctl"))
        .args(["--", "vcctl", "rollback", "--to", ""])
        .current_dir(s.dir.path())
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "3")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), release, "{}", show(&out));
    assert!(status["load_balancer"]["dns_name"].as_str().is_some_and(|d| !d.is_empty()), "{status}");
    assert_eq!(
        (status["database"]["instance_class"].as_str(), status["alarms"].as_array().map(Vec::len)),
        (Some("db.t4g.micro"), Some(6)),
        "{status}"
    );
}

/// The groups' chain (world → lb → app → db), the DB instance's safety, the bucket.
async fn the_tiers_chain_to_an_encrypted_private_database(s: &Project) {
    let (ec2, _, _) = s.sdk().await;
    let rds = aws_sdk_rds::Client::new(&s.sdk_config().await);
    let world = |port: i32| [(port, "0.0.0.0/0".to_string()), (port, "::/0".to_string())];
    let mut lb: Vec<(i32, String)> = world(80).into_iter().chain(world(443)).collect();
    lb.sort();
    assert_eq!(chain(&ec2, "vcctl-fra-lb").await, lb);
    assert_eq!(chain(&ec2, "vcctl-fra-app").await, app_chain());
    assert_eq!(chain(&ec2, "vcctl-fra-db").await, [(5432, "vcctl-fra-app".to_string())]);
    let dbs = rds.describe_db_instances().db_instance_identifier("vcctl-fra").send().await.unwrap();
    let d = &dbs.db_instances()[0];
    assert_eq!(
        (d.engine(), d.db_instance_class(), d.allocated_storage()),
        (Some("postgres"), Some("db.t4g.micro"), Some(20))
    );
    assert_eq!(
        (d.storage_encrypted(), d.publicly_accessible(), d.deletion_protection()),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!((d.backup_retention_period(), d.multi_az()), (Some(7), Some(false)));
    assert!(d.master_user_secret().and_then(|m| m.secret_arn()).is_some(), "no password kept by RDS: {d:?}");
    let db_group = ec2.describe_security_groups().group_names("vcctl-fra-db").send().await.unwrap();
    let db_group = db_group.security_groups()[0].group_id().unwrap().to_string();
    assert_eq!(
        d.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect::<Vec<_>>(),
        [db_group.as_str()]
    );
    assert!(d.tag_list().iter().any(|t| t.key() == Some("vcctl:stack-id") && t.value() == Some(s.stack_id().as_str())));
    check_bucket(s).await;
}

/// A second `up` changes nothing; what is changed by hand (a rule, the group's size, the
/// redirect, the bucket's versioning) is planned as drift and put back.
async fn drift_by_hand_is_planned_and_put_back(s: &Project, release: &str) {
    let again = s.json(&["up"], 0);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["serving"]["release"], release, "a second up uploads nothing: {again}");
    a_rule_opened_by_hand_is_closed(s).await;
    the_groups_size_is_put_back_unless_the_cpu_target_owns_it(s).await;
    the_listeners_are_put_back_and_one_added_by_hand_goes(s).await;
    the_buckets_versioning_is_put_back(s).await;
}

async fn a_rule_opened_by_hand_is_closed(s: &Project) {
    let (ec2, _, _) = s.sdk().await;
    // The app group opened to the world by hand: planned as drift, and closed by `up`.
    let app = ec2.describe_security_groups().group_names("vcctl-fra-app").send().await.unwrap();
    let app = app.security_groups()[0].group_id().unwrap().to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&app)
        .ip_protocol("tcp")
        .from_port(8000)
        .to_port(8000)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let plan = s.json(&["plan"], 2);
    assert!(plan["changes"].to_string().contains("not in the stack file"), "{plan}");
    s.json(&["up"], 0);
    assert_eq!(chain(&ec2, "vcctl-fra-app").await, app_chain());
}

async fn the_groups_size_is_put_back_unless_the_cpu_target_owns_it(s: &Project) {
    let config = s.sdk_config().await;
    // The group resized by hand: its bounds are put back; its desired count is the CPU
    // target's to move, so it is left, until the stack asks for a fixed size.
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let resize = |desired: i32, max: i32| {
        let asg = asg.clone();
        async move {
            let req = asg.update_auto_scaling_group().auto_scaling_group_name("vcctl-fra");
            req.desired_capacity(desired).max_size(max).send().await.unwrap();
        }
    };
    let size = || {
        let asg = asg.clone();
        async move {
            let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("vcctl-fra").send().await.unwrap();
            let g = &out.auto_scaling_groups()[0];
            (g.min_size().unwrap(), g.desired_capacity().unwrap(), g.max_size().unwrap())
        }
    };
    resize(3, 6).await;
    s.expect(&["plan"], 0);
    resize(3, 9).await;
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["changes"][0]["detail"], "size 2..9 → 2..6", "{plan}");
    s.json(&["up"], 0);
    assert_eq!(size().await, (2, 3, 6));
    let file = s.dir.path().join("stacks/fra.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("  cpu_target_pct: 60\n", "")).unwrap();
    let plan = s.json(&["plan"], 2);
    let what: Vec<&str> = plan["changes"].as_array().unwrap().iter().map(|c| c["resource"].as_str().unwrap()).collect();
    assert_eq!(what, ["Auto Scaling group vcctl-fra", "scaling policy vcctl-fra-cpu"], "{plan}");
    assert_eq!(plan["changes"][0]["detail"], "desired 3 → 2 (a fixed size)", "{plan}");
    s.json(&["up"], 0);
    assert_eq!(size().await, (2, 2, 6));
    let policies = asg.describe_policies().auto_scaling_group_name("vcctl-fra").send().await.unwrap();
    assert!(policies.scaling_policies().is_empty());
    std::fs::write(&file, text).unwrap();
    s.json(&["up"], 0);
}

async fn the_listeners_are_put_back_and_one_added_by_hand_goes(s: &Project) {
    let (ec2, _, _) = s.sdk().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.sdk_config().await);
    // The redirect removed by hand (HTTP forwarded instead): put back.
    let lbs = elb.describe_load_balancers().names("vcctl-fra").send().await.unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lbs.load_balancers()[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let http = listeners.listeners().iter().find(|l| l.port() == Some(80)).unwrap();
    let tg = elb.describe_target_groups().names("vcctl-fra").send().await.unwrap();
    let forward = aws_sdk_elasticloadbalancingv2::types::Action::builder()
        .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
        .target_group_arn(tg.target_groups()[0].target_group_arn().unwrap())
        .build();
    elb.modify_listener().listener_arn(http.listener_arn().unwrap()).default_actions(forward).send().await.unwrap();
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["changes"][0]["resource"], "listener 80", "{plan}");
    s.json(&["up"], 0);
    check_load_balancer(&ec2, &elb).await;

    // A listener added by hand (8080 to the group, around HTTPS): planned as drift, and
    // deleted by `up` (it was planned but never applied before one engine).
    let balancer = lbs.load_balancers()[0].load_balancer_arn().unwrap();
    let forward = aws_sdk_elasticloadbalancingv2::types::Action::builder()
        .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
        .target_group_arn(tg.target_groups()[0].target_group_arn().unwrap())
        .build();
    let http = aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http;
    let extra = elb.create_listener().load_balancer_arn(balancer).port(8080).protocol(http);
    extra.default_actions(forward).send().await.unwrap();
    let plan = s.json(&["plan"], 2);
    assert_eq!(
        (plan["changes"][0]["resource"].as_str(), plan["changes"][0]["action"].as_str()),
        (Some("listener 8080"), Some("delete")),
        "{plan}"
    );
    s.json(&["up"], 0);
    let ports = elb.describe_listeners().load_balancer_arn(balancer).send().await.unwrap();
    let mut ports: Vec<i32> = ports.listeners().iter().filter_map(|l| l.port()).collect();
    ports.sort();
    assert_eq!(ports, [80, 443], "the hand-made listener is gone");
    s.expect(&["plan"], 0);
}

async fn the_buckets_versioning_is_put_back(s: &Project) {
    // The bucket's versioning suspended by hand: put back.
    let s3 = s3_client(s).await;
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    let suspended = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
        .build();
    s3.put_bucket_versioning().bucket(&bucket).versioning_configuration(suspended).send().await.unwrap();
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["changes"][0]["detail"], "put back: versioning", "{plan}");
    s.json(&["up"], 0);
    check_bucket(s).await;
    s3.put_object()
        .bucket(&bucket)
        .key("releases/x/vehicleconnect")
        .body(b"a release".to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The confirmation names everything; `destroy` leaves nothing but the final snapshot.
async fn destroy_lists_everything_and_keeps_a_final_snapshot(s: &Project) {
    let (ec2, _, _) = s.sdk().await;
    let config = s.sdk_config().await;
    let (rds, elb) = (aws_sdk_rds::Client::new(&config), aws_sdk_elasticloadbalancingv2::Client::new(&config));
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let s3 = s3_client(s).await;
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    // The confirmation names everything destroy deletes, the bucket (the ingest token), the
    // key pair and the instances' role included.
    let refused = s.expect(&["destroy"], 8);
    let listed = String::from_utf8_lossy(&refused.stderr).into_owned();
    for doomed in [
        format!("bucket {bucket}: every release"),
        "key pair vcctl-fra".to_string(),
        "IAM role vcctl-fra-app of the instances".to_string(),
        "launch template vcctl-fra".to_string(),
        "security group vcctl-fra-db".to_string(),
        "log group /vcctl/fra".to_string(),
    ] {
        assert!(listed.contains(&doomed), "the confirmation lists {doomed}:\n{listed}");
    }
    let gone = s.json(&["destroy", "--yes"], 0);
    assert!(s3.list_buckets().send().await.unwrap().buckets().is_empty(), "the bucket and its releases are gone");
    assert!(elb.describe_load_balancers().send().await.unwrap().load_balancers().is_empty());
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty());
    let acm = aws_sdk_acm::Client::new(&config);
    assert!(acm.list_certificates().send().await.unwrap().certificate_summary_list().is_empty());
    let (_, _, cw) = s.sdk().await;
    assert!(cw.describe_alarms().send().await.unwrap().metric_alarms().is_empty());
    let sns = aws_sdk_sns::Client::new(&config);
    assert!(sns.list_topics().send().await.unwrap().topics().is_empty());
    common::check_schema("destroy", &gone);
    let snapshot = gone["final_snapshot"].as_str().unwrap().to_string();
    assert_eq!(gone["kept"], serde_json::json!([format!("the database's final snapshot {snapshot}")]), "{gone}");
    assert!(snapshot.starts_with("vcctl-fra-final-"), "{gone}");
    let snaps = rds.describe_db_snapshots().db_snapshot_identifier(&snapshot).send().await.unwrap();
    assert_eq!(snaps.db_snapshots().len(), 1, "the final snapshot is kept");
    assert!(rds.describe_db_instances().send().await.unwrap().db_instances().is_empty());
    assert!(
        rds.describe_db_subnet_groups()
            .send()
            .await
            .unwrap()
            .db_subnet_groups()
            .iter()
            .all(|g| g.db_subnet_group_name() != Some("vcctl-fra"))
    );
    assert!(ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap().security_groups().is_empty());
    assert!(asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups().is_empty());
    assert!(ec2.describe_launch_templates().send().await.unwrap().launch_templates().is_empty());
    assert!(live_instances(&ec2).await.is_empty(), "the group's instances are terminated");
    let (_, iam, _) = s.sdk().await;
    let roles = iam.list_roles().send().await.unwrap();
    assert!(
        roles.roles().iter().all(|r| !r.role_name().starts_with("vcctl-fra") && r.role_name() != "vcctl-deploy-fra"),
        "the app role and the CI deploy role are gone"
    );
    assert!(iam.list_instance_profiles().send().await.unwrap().instance_profiles().is_empty());
    assert!(ec2.describe_key_pairs().send().await.unwrap().key_pairs().is_empty());
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    assert!(logs.describe_log_groups().send().await.unwrap().log_groups().is_empty(), "the log group is gone");
}

/// `ci init` of a `scale:` stack: the deploy role may also write releases and the pointer in
/// the stack's bucket (nothing else there), read the pointer, and take instances out of the
/// stack's target group and back (no other).
async fn check_ci_role(s: &Project) {
    s.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let (_, iam, _) = s.sdk().await;
    let doc = iam.get_role_policy().role_name("vcctl-deploy-fra").policy_name("vcctl-deploy").send().await.unwrap();
    let doc = urldecode(doc.policy_document());
    let by_sid = |sid: &str| {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["Sid"] == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no {sid} in {doc}"))
    };
    let bucket = format!("arn:aws:s3:::vcctl-fra-{}", s.stack_id());
    let ship = by_sid("ShipReleasesToItsBucket");
    assert_eq!(ship["Action"], "s3:PutObject");
    assert_eq!(ship["Resource"], serde_json::json!([format!("{bucket}/releases/*"), format!("{bucket}/serving")]));
    assert_eq!(
        by_sid("ReadWhatServes")["Resource"],
        serde_json::json!([
            format!("{bucket}/serving"),
            format!("{bucket}/host/ingest-token"),
            format!("{bucket}/host/secrets")
        ])
    );
    let roll = by_sid("RollThroughItsTargetGroupOnly");
    assert_eq!(roll["Resource"], "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/vcctl-fra/*");
    // The single box's statements stay: SSH on the stack's tagged groups, host keys.
    by_sid("OpenAndCloseSshOnItsSecurityGroupOnly");
    by_sid("ReadItsHostKeys");
}

/// The instances' tier as the stack wants it: the group (2..6, 2 now, in the target group,
/// replaced on the load balancer's word, in two zones or more), its CPU target, the launch
/// template (IMDSv2 only, an encrypted gp3 root, the app group, the role's profile, the boot
/// script), the role's one least-privilege policy, and the bucket holding the serving release,
/// the host kit and the ingest token.
async fn check_instances(s: &Project, release: &str) {
    let config = s.sdk_config().await;
    let (ec2, iam, _) = s.sdk().await;
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("vcctl-fra").send().await.unwrap();
    let g = &groups.auto_scaling_groups()[0];
    assert_eq!((g.min_size(), g.desired_capacity(), g.max_size()), (Some(2), Some(2), Some(6)));
    assert_eq!((g.health_check_type(), g.health_check_grace_period()), (Some("ELB"), Some(300)));
    let tg = elb.describe_target_groups().names("vcctl-fra").send().await.unwrap();
    assert_eq!(g.target_group_arns(), [tg.target_groups()[0].target_group_arn().unwrap().to_string()]);
    assert!(g.vpc_zone_identifier().unwrap().split(',').count() >= 2, "{g:?}");
    assert!(
        g.tags().iter().any(|t| t.key() == Some("vcctl:stack-id")
            && t.value() == Some(s.stack_id().as_str())
            && t.propagate_at_launch() == Some(true)),
        "{g:?}"
    );
    let policies = asg.describe_policies().auto_scaling_group_name("vcctl-fra").send().await.unwrap();
    let tracking = policies.scaling_policies()[0].target_tracking_configuration().unwrap();
    assert_eq!(tracking.target_value(), Some(60.0));
    let template = g.launch_template().unwrap().launch_template_id().unwrap();
    let versions =
        ec2.describe_launch_template_versions().launch_template_id(template).versions("$Latest").send().await.unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    let imds = data.metadata_options().unwrap();
    assert_eq!(imds.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(imds.http_put_response_hop_limit(), Some(1));
    let ebs = data.block_device_mappings()[0].ebs().unwrap();
    assert_eq!(
        (ebs.volume_type().map(|t| t.as_str()), ebs.encrypted(), ebs.volume_size()),
        (Some("gp3"), Some(true), Some(16))
    );
    assert_eq!(data.iam_instance_profile().and_then(|p| p.name()), Some("vcctl-fra-app"));
    assert_eq!(data.key_name(), Some("vcctl-fra"));
    let app = ec2.describe_security_groups().group_names("vcctl-fra-app").send().await.unwrap();
    assert_eq!(data.security_group_ids(), [app.security_groups()[0].group_id().unwrap().to_string()]);
    let boot = String::from_utf8(base64_decode(data.user_data().unwrap())).unwrap();
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    assert!(boot.starts_with("#!/bin/sh") && boot.contains(&format!("VC_BUCKET:={bucket}")), "{boot}");
    let rds = aws_sdk_rds::Client::new(&config);
    let db = rds.describe_db_instances().db_instance_identifier("vcctl-fra").send().await.unwrap();
    let secret = db.db_instances()[0].master_user_secret().unwrap().secret_arn().unwrap().to_string();
    assert!(boot.contains(&format!("VC_DB_SECRET:={secret}")), "{boot}");
    assert!(boot.contains("VC_DB_CA_FROM:=trust-store"), "no ca_file: RDS's bundle from AWS's trust store");

    let role = iam.get_role().role_name("vcctl-fra-app").send().await.unwrap();
    let trust = urldecode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com");
    let names = iam.list_role_policies().role_name("vcctl-fra-app").send().await.unwrap();
    assert_eq!(names.policy_names(), ["vcctl-fra-app-least-privilege"]);
    let attached = iam.list_attached_role_policies().role_name("vcctl-fra-app").send().await.unwrap();
    assert!(attached.attached_policies().is_empty());
    let doc = iam
        .get_role_policy()
        .role_name("vcctl-fra-app")
        .policy_name("vcctl-fra-app-least-privilege")
        .send()
        .await
        .unwrap();
    let doc = urldecode(doc.policy_document());
    let statements: Vec<(String, Value)> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (st["Action"].as_str().map_or_else(|| st["Action"].to_string(), str::to_string), st["Resource"].clone())
        })
        .collect();
    let objects: Vec<String> =
        ["host/*", "releases/*", "serving"].iter().map(|k| format!("arn:aws:s3:::{bucket}/{k}")).collect();
    assert_eq!(
        statements,
        [
            ("s3:GetObject".to_string(), serde_json::json!(objects)),
            ("secretsmanager:GetSecretValue".to_string(), Value::from(secret)),
            (r#"["ec2:DescribeInstances","ec2:DescribeAvailabilityZones"]"#.to_string(), Value::from("*")),
            (
                r#"["logs:CreateLogStream","logs:PutLogEvents"]"#.to_string(),
                Value::from("arn:aws:logs:eu-central-1:123456789012:log-group:/vcctl/fra:log-stream:*")
            ),
            (r#"["ec2:DescribeSecurityGroups","ec2:DescribeSecurityGroupRules"]"#.to_string(), Value::from("*")),
            (
                "ec2:RevokeSecurityGroupIngress".to_string(),
                Value::from("arn:aws:ec2:eu-central-1:123456789012:security-group/*")
            ),
            (
                "ec2:RevokeSecurityGroupIngress".to_string(),
                Value::from("arn:aws:ec2:eu-central-1:123456789012:security-group-rule/*")
            ),
        ]
    );

    let s3 = s3_client(s).await;
    let get = |key: &str| {
        let (s3, bucket, key) = (s3.clone(), bucket.clone(), key.to_string());
        async move {
            let out = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
            out.body.collect().await.unwrap().into_bytes().to_vec()
        }
    };
    let bin = std::fs::read(common::service_bin()).unwrap();
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&bin))
    };
    assert_eq!(String::from_utf8(get("serving").await).unwrap(), format!("{release} {sha}\n"));
    assert_eq!(get(&format!("releases/{release}/vehicleconnect")).await.len(), bin.len());
    let token = String::from_utf8(get("host/ingest-token").await).unwrap();
    assert!(token.len() == 48 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert!(String::from_utf8(get("host/vc-host").await).unwrap().starts_with("#!/bin/sh"));
    let unit = String::from_utf8(get("host/systemd/vehicleconnect.socket").await).unwrap();
    assert!(unit.contains("ListenStream=0.0.0.0:8000"), "{unit}");
}

/// The load balancer as the stack wants it: internet-facing in two zones or more, in the lb
/// group; its target group on the service's port, healthy on /api/status, drained for 30 s;
/// HTTP 80 redirected to HTTPS, HTTPS 443 with the certificate to the group.
async fn check_load_balancer(ec2: &aws_sdk_ec2::Client, elb: &aws_sdk_elasticloadbalancingv2::Client) {
    use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, LoadBalancerSchemeEnum, ProtocolEnum};
    let lbs = elb.describe_load_balancers().names("vcctl-fra").send().await.unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme(), Some(&LoadBalancerSchemeEnum::InternetFacing));
    assert!(lb.availability_zones().len() >= 2, "{lb:?}");
    let groups = ec2.describe_security_groups().group_names("vcctl-fra-lb").send().await.unwrap();
    assert_eq!(lb.security_groups(), [groups.security_groups()[0].group_id().unwrap().to_string()]);
    let tgs = elb.describe_target_groups().names("vcctl-fra").send().await.unwrap();
    let tg = &tgs.target_groups()[0];
    assert_eq!(
        (tg.port(), tg.health_check_path(), tg.protocol()),
        (Some(8000), Some("/api/status"), Some(&ProtocolEnum::Http))
    );
    let attrs =
        elb.describe_target_group_attributes().target_group_arn(tg.target_group_arn().unwrap()).send().await.unwrap();
    let delay = attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value());
    assert_eq!(delay, Some("30"));
    let listeners = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
    let mut seen: Vec<(i32, String, String)> = listeners
        .listeners()
        .iter()
        .map(|l| {
            let a = &l.default_actions()[0];
            let to = match a.r#type() {
                Some(ActionTypeEnum::Redirect) => {
                    let r = a.redirect_config().unwrap();
                    format!("redirect {}:{} {:?}", r.protocol().unwrap(), r.port().unwrap(), r.status_code().unwrap())
                }
                _ => format!("forward {}", a.target_group_arn() == tg.target_group_arn()),
            };
            // (moto gives an HTTP listener a policy too; AWS keeps none there.)
            let policy =
                if l.protocol() == Some(&ProtocolEnum::Https) { l.ssl_policy().unwrap_or("none") } else { "-" };
            let tls = format!("{} {policy}", l.protocol().unwrap().as_str());
            (l.port().unwrap(), tls, to)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (80, "HTTP -".to_string(), "redirect HTTPS:443 Http301".to_string()),
            (443, "HTTPS ELBSecurityPolicy-TLS13-1-2-2021-06".to_string(), "forward true".to_string())
        ]
    );
    let https = listeners.listeners().iter().find(|l| l.port() == Some(443)).unwrap();
    assert!(https.certificates()[0].certificate_arn().unwrap().contains(":certificate/"), "{https:?}");
}

/// A `scale:` stack's `up` killed after each thing it makes converges when run again, with
/// one of each: groups, database, target group, load balancer, certificate.
/// The group's instances: (id, their `vcctl:config` tag, lifecycle), and its (desired, max).
pub async fn group_members(s: &Project) -> (Vec<(String, String, String)>, (i32, i32)) {
    let config = s.sdk_config().await;
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("vcctl-fra").send().await.unwrap();
    let g = &groups.auto_scaling_groups()[0];
    let (ec2, _, _) = s.sdk().await;
    let mut out = Vec::new();
    for i in g.instances() {
        let id = i.instance_id().unwrap().to_string();
        let d = ec2.describe_instances().instance_ids(&id).send().await.unwrap();
        let tags = d.reservations()[0].instances()[0].tags().to_vec();
        let tag = tags.iter().find(|t| t.key() == Some("vcctl:config")).and_then(|t| t.value()).unwrap_or("");
        out.push((id, tag.to_string(), i.lifecycle_state().unwrap().as_str().to_string()));
    }
    (out, (g.desired_capacity().unwrap(), g.max_size().unwrap()))
}

/// A changed launch template (here the instance type) is planned with the instances it
/// leaves on an older configuration (their `vcctl:config` tag); `up` replaces them one at a
/// time, each new one healthy in the target group before an old one is drained and
/// terminated, and the group ends at its own size. A new instance that is not healthy is
/// terminated, the old ones keep serving, and `up` exits 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_refresh_replaces_old_instances_healthy_first_and_stops_at_an_unhealthy_one() {
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let bin = common::service_bin();
    s.json(&["up", "--artifact", bin.to_str().unwrap()], 0);
    let (first, size) = group_members(&s).await;
    assert_eq!((first.len(), size), (2, (2, 6)), "{first:?}");
    let config = first[0].1.clone();
    assert!(
        config.len() == 12 && first.iter().all(|m| m.1 == config),
        "each instance says its configuration: {first:?}"
    );

    let file = s.dir.path().join("stacks/fra.yaml");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("t3.small", "t3.medium")).unwrap();
    let plan = s.json(&["plan"], 2);
    let refresh = plan["changes"].as_array().unwrap().iter().find(|c| c["resource"] == "instances of group vcctl-fra");
    let detail = refresh.map(|c| c["detail"].to_string()).unwrap_or_default();
    assert!(detail.contains("2 of 2 run an older configuration") && detail.contains(&first[0].0), "{plan}");
    let started = Instant::now();
    let out = s.expect(&["up"], 0);
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("instance refresh: 2 instance(s) replaced"), "{said}");
    let (now, size) = group_members(&s).await;
    assert_eq!(size, (2, 6), "the group's own size again");
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.iter().all(|m| !first.iter().any(|f| f.0 == m.0)), "every old instance replaced: {now:?}");
    let new_config = now[0].1.clone();
    assert!(new_config != config && now.iter().all(|m| m.1 == new_config && m.2 == "InService"), "{now:?}");
    assert_eq!(s.json(&["plan"], 0)["changes"], serde_json::json!([]), "nothing left to refresh");
    eprintln!("a rolling refresh of 2 instances (emulated, instances healthy at once) took {took:?}");

    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("t3.medium", "t3.large")).unwrap();
    let out = s.command(&["up"]).env("VCCTL_FAULT", "refresh-unhealthy").output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the old instances serve as before"), "{err}");
    let (after, size) = group_members(&s).await;
    let serving: Vec<&String> = after.iter().filter(|m| m.2 == "InService").map(|m| &m.0).collect();
    let kept: Vec<&String> = now.iter().map(|m| &m.0).collect();
    assert_eq!(serving, kept, "the old instances serve, the new one is gone: {after:?}");
    assert_eq!(size, (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_up_of_a_scaled_stack_converges_without_duplicates() {
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let (ec2, _, _) = s.sdk().await;
    let config = s.sdk_config().await;
    let (rds, elb, acm) = (
        aws_sdk_rds::Client::new(&config),
        aws_sdk_elasticloadbalancingv2::Client::new(&config),
        aws_sdk_acm::Client::new(&config),
    );
    let bin = common::service_bin();
    let up = ["up", "--artifact", bin.to_str().unwrap()];
    let points = ["lb_group", "app_group", "bucket", "database", "target_group", "load_balancer", "release"];
    for point in points.iter().chain(&["instance_role", "launch_template", "group"]) {
        let out = s.command(&up).env("VCCTL_FAULT", format!("abort-after:{point}")).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("aborting after {point}")), "{}", show(&out));
    }
    std::thread::sleep(Duration::from_secs(2));
    s.json(&up, 0);
    assert_eq!(s.json(&up, 0)["changed"], false);
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let mut names: Vec<&str> = groups.security_groups().iter().filter_map(|g| g.group_name()).collect();
    names.sort();
    assert_eq!(names, ["vcctl-fra-app", "vcctl-fra-db", "vcctl-fra-lb"]);
    assert_eq!(rds.describe_db_instances().send().await.unwrap().db_instances().len(), 1);
    assert_eq!(elb.describe_load_balancers().send().await.unwrap().load_balancers().len(), 1);
    assert_eq!(elb.describe_target_groups().send().await.unwrap().target_groups().len(), 1);
    assert_eq!(acm.list_certificates().send().await.unwrap().certificate_summary_list().len(), 1);
    assert_eq!(s3_client(&s).await.list_buckets().send().await.unwrap().buckets().len(), 1);
    check_load_balancer(&ec2, &elb).await;
    let asg = aws_sdk_autoscaling::Client::new(&config);
    assert_eq!(asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups().len(), 1);
    let templates = ec2.describe_launch_templates().send().await.unwrap();
    assert_eq!(templates.launch_templates().len(), 1);
    assert_eq!(templates.launch_templates()[0].latest_version_number(), Some(1), "no version for nothing");
    let releases = s3_client(&s)
        .await
        .list_objects_v2()
        .bucket(format!("vcctl-fra-{}", s.stack_id()))
        .prefix("releases/")
        .send()
        .await
        .unwrap();
    assert_eq!(releases.contents().len(), 2, "one release (binary and receipt), uploaded once: {releases:?}");
    s.json(&["destroy", "--yes"], 0);
    assert!(asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups().is_empty());
}

/// The six alarms, on what CloudWatch calls the load balancer, its target group and the DB
/// instance, each notifying the stack's topic, which the stack's address subscribes to; an
/// alarm changed by hand is put back.
async fn check_alarms(s: &Project, elb: &aws_sdk_elasticloadbalancingv2::Client) {
    let (_, _, cw) = s.sdk().await;
    let sns = aws_sdk_sns::Client::new(&s.sdk_config().await);
    let topics = sns.list_topics().send().await.unwrap();
    let topic = topics.topics()[0].topic_arn().unwrap().to_string();
    assert!(topic.ends_with(":vcctl-fra-alerts"), "{topic}");
    let subs = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    assert_eq!(subs.subscriptions()[0].endpoint(), Some("ops@example.com"));
    let lbs = elb.describe_load_balancers().names("vcctl-fra").send().await.unwrap();
    let lb_arn = lbs.load_balancers()[0].load_balancer_arn().unwrap();
    let lb = lb_arn.split_once(":loadbalancer/").unwrap().1;
    let alarms = cw.describe_alarms().alarm_name_prefix("vcctl-fra-").send().await.unwrap();
    let mut seen: Vec<(String, String, Vec<String>)> = alarms
        .metric_alarms()
        .iter()
        .map(|a| {
            assert_eq!(a.alarm_actions(), std::slice::from_ref(&topic), "{a:?}");
            let dims = a.dimensions().iter().map(|d| format!("{}={}", d.name().unwrap(), d.value().unwrap())).collect();
            (a.alarm_name().unwrap().to_string(), a.comparison_operator().unwrap().as_str().to_string(), dims)
        })
        .collect();
    seen.sort();
    let tg = elb.describe_target_groups().names("vcctl-fra").send().await.unwrap();
    let tg = tg.target_groups()[0].target_group_arn().unwrap().rsplit(':').next().unwrap().to_string();
    let on_lb = vec![format!("LoadBalancer={lb}")];
    let on_db = vec!["DBInstanceIdentifier=vcctl-fra".to_string()];
    let gt = "GreaterThanThreshold".to_string();
    assert_eq!(
        seen,
        [
            ("vcctl-fra-db-connections-high".to_string(), gt.clone(), on_db.clone()),
            ("vcctl-fra-db-cpu-high".to_string(), gt.clone(), on_db.clone()),
            ("vcctl-fra-db-storage-low".to_string(), "LessThanThreshold".to_string(), on_db),
            ("vcctl-fra-lb-5xx".to_string(), gt.clone(), on_lb.clone()),
            ("vcctl-fra-targets-5xx".to_string(), gt.clone(), on_lb),
            (
                "vcctl-fra-unhealthy-targets".to_string(),
                gt,
                vec![format!("TargetGroup={tg}"), format!("LoadBalancer={lb}")]
            ),
        ]
    );
    // The 5xx alarm loosened by hand: put back by `up`.
    let a = alarms.metric_alarms().iter().find(|a| a.alarm_name() == Some("vcctl-fra-lb-5xx")).unwrap().clone();
    cw.put_metric_alarm()
        .alarm_name("vcctl-fra-lb-5xx")
        .namespace(a.namespace().unwrap())
        .metric_name(a.metric_name().unwrap())
        .set_dimensions(Some(a.dimensions().to_vec()))
        .statistic(a.statistic().unwrap().clone())
        .period(60)
        .evaluation_periods(2)
        .threshold(10000.0)
        .comparison_operator(a.comparison_operator().unwrap().clone())
        .set_alarm_actions(Some(a.alarm_actions().to_vec()))
        .send()
        .await
        .unwrap();
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["changes"][0]["resource"], "alarm vcctl-fra-lb-5xx", "{plan}");
    s.json(&["up"], 0);
    let back = cw.describe_alarms().alarm_names("vcctl-fra-lb-5xx").send().await.unwrap();
    assert_eq!(back.metric_alarms()[0].threshold(), Some(10.0));
}

async fn s3_client(s: &Project) -> aws_sdk_s3::Client {
    let config = s.sdk_config().await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
}

/// The release bucket: versioned, encrypted by default, every public access blocked, tagged.
async fn check_bucket(s: &Project) {
    let s3 = s3_client(s).await;
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    // moto 5.2.5 names this answer's root so that the SDK refuses it; its body says the status.
    let enabled = match s3.get_bucket_versioning().bucket(&bucket).send().await {
        Ok(v) => v.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled),
        Err(e) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
    };
    assert!(enabled, "versioning of {bucket}");
    let e = s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
    let rule = &e.server_side_encryption_configuration().unwrap().rules()[0];
    let algorithm = rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm();
    assert_eq!(algorithm, &aws_sdk_s3::types::ServerSideEncryption::Aes256);
    let b = s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let c = b.public_access_block_configuration().unwrap();
    let all = [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()];
    assert_eq!(all, [Some(true); 4]);
    let t = s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap();
    assert!(t.tag_set().iter().any(|t| t.key() == "vcctl:stack-id" && t.value() == s.stack_id()));
}

/// The host side of a new instance of a `scale:` stack, on the systemd test host: the user
/// data of the stack's launch template, run as cloud-init runs it (a script, as root), fetches
/// the host kit and the serving release from the bucket (moto's S3, signed by curl), the
/// database's URL from the secret RDS keeps (moto's Secrets Manager), and ends serving that
/// release, taking events with the bucket's ingest token into PostgreSQL. Only what an
/// instance gets from EC2 is given here: the emulator's address and keys for the instance
/// role's, and the test host's PostgreSQL for the RDS endpoint. A pointer to a damaged
/// release is refused, and nothing is switched to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_test_host_a_new_instance_boots_the_serving_release_from_the_bucket() {
    let peer = std::env::var("VC_TEST_HOST_PEER").expect("VC_TEST_HOST_PEER (scripts/test-host)");
    // Deploys log in to the test host, which stands for the group's instances.
    let h = common::test_host();
    let login =
        format!("  ssh_identity: {}\n  ssh_user: root\n  host_key: {}\n  termination_protection", h.key, h.host_key);
    let stack =
        scaled_stack().replace("  admin_cidrs: [198.18.7.7/32]\n", "").replace("  termination_protection", &login);
    // RDS as the instances see it: PostgreSQL over TLS, its certificate from a CA of its own,
    // which the stack names (scale.database.ca_file).
    let stack = stack.replace("storage_gb: 20}", "storage_gb: 20, ca_file: certs/db-ca.pem}");
    let s = Project::new(&stack, Moto::start_on(&peer, &[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    std::fs::create_dir_all(s.dir.path().join("certs")).unwrap();
    std::fs::write(s.dir.path().join("certs/db-ca.pem"), common::on_host(&database_tls())).unwrap();
    let up = s.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    let release = up["serving"]["release"].as_str().unwrap().to_string();
    let (ec2, _, _) = s.sdk().await;
    let templates = ec2.describe_launch_templates().launch_template_names("vcctl-fra").send().await.unwrap();
    let id = templates.launch_templates()[0].launch_template_id().unwrap();
    let versions =
        ec2.describe_launch_template_versions().launch_template_id(id).versions("$Latest").send().await.unwrap();
    let user_data =
        versions.launch_template_versions()[0].launch_template_data().unwrap().user_data().unwrap().to_string();

    // The database RDS would be: the secret's user and password, on the host's PostgreSQL.
    let (user, password) = rds_login(&s, &up).await;
    let (user, password) = (user.as_str(), password.as_str());
    // The host is shared by the tests on it: whatever the tests before left there (releases,
    // units, the env file, the database) goes first, and what this one makes goes at its end.
    let leftovers = "cd / && systemctl stop prometheus; systemctl disable --now vehicleconnect.socket vehicleconnect.service \
         vehicleconnect-candidate.socket vehicleconnect-candidate.service vehicleconnect-logs.service 2>/dev/null; \
         rm -rf /opt/vehicleconnect /etc/vehicleconnect /etc/systemd/system/vehicleconnect* /var/lib/cloud \
         /var/lib/private/vehicleconnect-logs; systemctl daemon-reload";
    common::on_host(&format!(
        "{leftovers}; systemctl start postgresql \
         && for _ in $(seq 60); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done; \
         {DROP_RESTORED}; printf '%s' \"DROP DATABASE IF EXISTS vehicleconnect WITH (FORCE); DROP ROLE IF EXISTS vehicleconnect_app; \
         DROP ROLE IF EXISTS \\\"{user}\\\"; CREATE ROLE \\\"{user}\\\" LOGIN CREATEROLE CREATEDB PASSWORD '{password}'; \
         CREATE DATABASE vehicleconnect OWNER \\\"{user}\\\";\" \
         | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1"
    ));
    let boot = |extra: &str| {
        format!(
            "mkdir -p /var/lib/cloud/instance/scripts && echo {user_data} | base64 -d > /var/lib/cloud/instance/scripts/part-001 \
             && chmod 700 /var/lib/cloud/instance/scripts/part-001 && env AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} \
             AWS_SECRET_ACCESS_KEY=testing VC_DB_ENDPOINT=127.0.0.1:5432 VC_HEALTH_TIMEOUT_S=30 {extra} \
             /var/lib/cloud/instance/scripts/part-001 2>&1; echo \"exit $?\"",
            s.moto.url,
            recorded::INSTANCE_KEY
        )
    };
    let cleanup = format!(
        "{leftovers}; {DROP_RESTORED}; runuser -u postgres -- psql -qc 'DROP DATABASE IF EXISTS vehicleconnect WITH (FORCE)' \
         -c 'DROP ROLE IF EXISTS vehicleconnect_app' -c 'DROP ROLE IF EXISTS \"{user}\"' -c 'ALTER SYSTEM RESET ssl_cert_file' -c 'ALTER SYSTEM RESET ssl_key_file' \
         -c 'SELECT pg_reload_conf()'"
    );
    let _cleanup = OnHostAtEnd(cleanup);
    // A secret kept in the bucket before the instance boots: the regions' shared read token.
    let out = secret_set(&s, "VC_READ_TOKEN", "first-read-token");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // What an instance asks with its role, against the policy vcctl wrote for that role.
    let out = an_instance_asks_only_what_its_role_allows(&s, &ec2, &boot("")).await;
    the_instance_serves_and_stores_over_tls(&out, &release, password);
    assert_eq!(aggregates_with("first-read-token"), "200", "the boot gave the service the bucket's secret");
    a_rotated_master_password_changes_nothing_the_service_holds(&s, &up, &format!("{leftovers}; {}", boot(""))).await;

    // Deploys as GitHub Actions runs them, with the role `ci init` made (its own key here).
    s.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let watch = recorded::Watch::start(&s).await;
    rolls_out_through_the_target_group(&s, &ec2).await;
    rolls_back_to_the_release_served_before(&s, &ec2, &release).await;
    commands_run_on_the_instance_named_or_on_each(&s, &ec2, &release).await;
    let (_, asked) = watch.authorizations(recorded::CI_KEY).await;
    let policy = recorded::role_policy(&s, "vcctl-deploy-fra", "vcctl-deploy").await;
    // The stack pins the host key (as the box's on-demand test does; see there).
    let wrong = iam_eval::exactly_needed_but(&policy, &asked, &["ReadItsHostKeys"]);
    assert!(wrong.is_empty(), "the CI deploy role's policy against what deploys ask:\n{}", wrong.join("\n"));
    a_token_turned_off_and_on_reaches_the_running_instances(&s).await;
    a_changed_secret_is_deployed_to_the_running_instances(&s);
    a_release_not_what_it_says_is_not_switched_to(&s, &boot("")).await;
    let reboot = format!("{leftovers}; {}", boot(""));
    let behind = format!("{leftovers}; {}", boot("VC_ORIGIN_SECRET_ON=yes"));
    an_instance_behind_a_distribution_takes_its_secret(&s, &behind, &reboot).await;
    a_db_restore_goes_into_a_new_database_the_group_then_serves_from(&s, &reboot, &user_data).await;
}

/// The pointer moved to a release whose binary is not what it says: an instance booting
/// (`boot`) refuses it and switches nothing; the pointer is put back after.
async fn a_release_not_what_it_says_is_not_switched_to(s: &Project, boot: &str) {
    let release = serving(s).await;
    let s3 = s3_client(s).await;
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    let good = s3.get_object().bucket(&bucket).key("serving").send().await.unwrap();
    let good = good.body.collect().await.unwrap().into_bytes().to_vec();
    let bad = "20991231T000000Z-badbadbadbad";
    for (key, body) in [
        (format!("releases/{bad}/vehicleconnect"), b"not the release".to_vec()),
        (format!("releases/{bad}/release.json"), b"{}".to_vec()),
        ("serving".to_string(), format!("{bad} {}\n", "0".repeat(64)).into_bytes()),
    ] {
        s3.put_object().bucket(&bucket).key(key).body(body.into()).send().await.unwrap();
    }
    let out = common::on_host(boot);
    let current = common::on_host("readlink /opt/vehicleconnect/current");
    assert!(out.contains("upload damaged") && out.trim_end().ends_with("exit 1"), "{out}");
    assert_eq!(current.trim(), format!("releases/{release}"), "nothing switched to the damaged release");
    s3.put_object().bucket(&bucket).key("serving").body(good.into()).send().await.unwrap();
}

/// What an instance asks with its role (the boot script `boot`; Prometheus finding the
/// replicas; the SSH sweep closing the temporary rules whose leases ended), evaluated against
/// the policy vcctl wrote for that role: every call allowed, every statement needed. The
/// boot's output.
async fn an_instance_asks_only_what_its_role_allows(s: &Project, ec2: &aws_sdk_ec2::Client, boot: &str) -> String {
    let group = leftover_rules(ec2).await;
    let watch = recorded::Watch::start(s).await;
    let out = common::on_host(boot);
    prometheus_finds_the_replicas(s);
    let swept = common::on_host(&format!(
        "printf 'AWS_ENDPOINT_URL={}\\nAWS_ACCESS_KEY_ID={}\\nAWS_SECRET_ACCESS_KEY=testing\\n' > /etc/vehicleconnect/aws.env; \
         systemctl start vehicleconnect-ssh-sweep.service; r=$?; rm -f /etc/vehicleconnect/aws.env; \
         journalctl -u vehicleconnect-ssh-sweep -n 5 --no-pager -o cat; exit $r",
        s.moto.url,
        recorded::INSTANCE_KEY
    ));
    its_lines_reach_cloudwatch_logs_and_outlive_it(s);
    let (_, asked) = watch.authorizations(recorded::INSTANCE_KEY).await;
    let left = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(&group).build())
        .send()
        .await
        .unwrap();
    let left: Vec<&str> = left
        .security_group_rules()
        .iter()
        .filter(|r| r.from_port() == Some(22))
        .filter_map(|r| r.cidr_ipv4())
        .collect();
    assert_eq!(left, ["198.18.0.23/32"], "the sweep closed the ended and the dishonest lease: {swept}");
    let range = aws_sdk_ec2::types::IpRange::builder().cidr_ip("198.18.0.23/32").build();
    let held = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(range)
        .build();
    ec2.revoke_security_group_ingress().group_id(&group).ip_permissions(held).send().await.unwrap();
    let policy = recorded::role_policy(s, "vcctl-fra-app", "vcctl-fra-app-least-privilege").await;
    let wrong = iam_eval::exactly_needed(&policy, &asked);
    assert!(wrong.is_empty(), "the instance role's policy against what an instance asks:\n{}", wrong.join("\n"));

    out
}

/// `service.ingest_token` turned off, then on again, in the stack: each `deploy` brings the
/// running instance's env file with it (not only the instances launched later), and the
/// service takes events as it says.
/// The instance's shipper (vehicleconnect-logs, started by the boot, unprivileged) sends
/// the boot script's and the service's journal lines to the stack's log group, in a stream
/// named for the instance, with the instance role (recorded, and checked against its policy
/// by the caller); `vcctl logs` reads them back after the shipper is gone; a restarted
/// shipper resumes after the last line it sent, repeating none.
fn its_lines_reach_cloudwatch_logs_and_outlive_it(s: &Project) {
    let env = format!(
        "printf 'AWS_ENDPOINT_URL={}\\nAWS_ACCESS_KEY_ID={}\\nAWS_SECRET_ACCESS_KEY=testing\\nVC_INSTANCE_ID=i-0host000000000000\\n' \
         > /etc/vehicleconnect/aws.env",
        s.moto.url,
        recorded::INSTANCE_KEY
    );
    let unit = common::on_host(&format!(
        "{env}; systemctl restart vehicleconnect-logs.service; systemctl show -P User,DynamicUser,SupplementaryGroups vehicleconnect-logs"
    ));
    assert!(unit.contains("yes") && unit.contains("systemd-journal"), "unprivileged, in the journal's group: {unit}");
    let shipped = |want: usize| {
        let started = Instant::now();
        loop {
            let out = s.expect(&["logs", "--instance", "i-0host000000000000", "-n", "1000"], 0);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let lines = text.lines().filter(|l| l.contains(" [i-0host000000000000] ")).count();
            if (text.contains("vcctl-boot: release") && text.contains("] vehicleconnect: ") && lines >= want)
                || started.elapsed() > Duration::from_secs(30)
            {
                return text;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let first = shipped(1);
    let diagnose = || {
        let all = s.run(&["logs", "-n", "20"]);
        format!(
            "{}\n{}",
            show(&all),
            common::on_host(
                "pkill -ABRT -f '^python3 - fra'; sleep 1; journalctl -u vehicleconnect-logs --no-pager -n 40 -o cat; cut -d= -f1 /etc/vehicleconnect/aws.env; \
                 ls -la /var/lib/private/vehicleconnect-logs; systemctl cat vehicleconnect-logs | head -20"
            )
        )
    };
    assert!(first.contains("vcctl-boot: release") && first.contains("] vehicleconnect: "), "{first}\n{}", diagnose());
    let before = first.lines().count();
    common::on_host("systemctl restart vehicleconnect-logs.service; sleep 7");
    let again = shipped(before);
    let mut lines: Vec<&str> = again.lines().collect();
    let all = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), all, "a restarted shipper repeats no line:\n{again}");
    common::on_host("systemctl stop vehicleconnect-logs.service; rm -f /etc/vehicleconnect/aws.env");
    assert!(shipped(before).contains("vcctl-boot: release"), "the lines outlive the shipper");
}

async fn a_token_turned_off_and_on_reaches_the_running_instances(s: &Project) {
    let file = s.dir.path().join("stacks/fra.yaml");
    let post = "curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
         -d '{\"endpoint\":\"/v1/token\",\"response_time_ms\":5,\"status_code\":200,\"client_id\":\"c\"}' http://127.0.0.1:8000/api/events";
    for (on, without_token) in [(false, "201"), (true, "401")] {
        let artifact = s.dir.path().join(format!("token-{on}"));
        common::new_build(&artifact, format!("\ntoken {on}").as_bytes());
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.replace(&format!("ingest_token: {}", !on), &format!("ingest_token: {on}"));
        std::fs::write(&file, text).unwrap();
        deploy_on_test_host(s, &artifact);
        let env = common::on_host("cat /etc/vehicleconnect/env");
        assert_eq!(env.contains("VC_INGEST_TOKEN="), on, "token {on}: {env}");
        assert!(env.contains("DATABASE_URL=postgres://vehicleconnect_app:"), "the boot's lines stay: {env}");
        assert_eq!(common::on_host(post), without_token, "token {on}: an event without a token");
    }
}

/// `vcctl deploy` of `artifact` to the group's instances, which the test host stands for;
/// exit 0 asserted.
fn deploy_on_test_host(s: &Project, artifact: &std::path::Path) {
    let out = s
        .command(&["deploy", "--artifact", artifact.to_str().unwrap(), "--ssh-from", "198.18.0.11", "--json"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// Behind a distribution (`cdn: true`; the user data says so once one sends the secret, here
/// the boot's environment does), an instance boots with the bucket's origin secret: its
/// service refuses what did not come through the distribution, whatever the path, and its
/// status stays open for the health checks that come around it.
/// (`reboot` boots it as before, after.)
async fn an_instance_behind_a_distribution_takes_its_secret(s: &Project, behind: &str, reboot: &str) {
    let secret = "5ec7e7000000000000000000000000000000000000000042";
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    let s3 = s3_client(s).await;
    s3.put_object()
        .bucket(&bucket)
        .key("host/origin-secret")
        .body(secret.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let out = common::on_host(behind);
    assert!(out.trim_end().ends_with("exit 0"), "{out}");
    let code = |path: &str, header: &str| {
        common::on_host(&format!("curl -s -o /dev/null -w '%{{http_code}}' {header} 'http://127.0.0.1:8000{path}'"))
    };
    let through = format!("-H 'X-VC-Origin-Secret: {secret}'");
    assert_eq!(code("/api/analytics/kpis?window=1h", ""), "403", "around the distribution");
    assert_eq!(code("/dashboard", "-H 'X-VC-Origin-Secret: not-it'"), "403");
    assert_eq!(code("/api/analytics/kpis?window=1h", &through), "200", "through it");
    assert_eq!(code("/api/status", ""), "200", "the health checks'");
    assert!(common::on_host("cat /etc/vehicleconnect/env").contains(&format!("VC_ORIGIN_SECRET={secret}")));
    assert!(!out.contains(secret), "the secret in the boot's output");
    let out = common::on_host(reboot);
    assert!(out.trim_end().ends_with("exit 0"), "{out}");
    assert_eq!(code("/api/analytics/kpis?window=1h", ""), "200", "booted as before");
}

/// What the instance's service answers `GET /api/analytics/aggregates` with `token`.
fn aggregates_with(token: &str) -> String {
    common::on_host(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer {token}' 'http://127.0.0.1:8000/api/analytics/aggregates?window=1h'"
    ))
}

/// `secrets set` with a new value, then `deploy` of the release that serves already: not a
/// no-op (the secrets' names and times are in the configuration's hash), the instance's
/// secrets file rewritten from the bucket, the service reading the new value, the old refused.
fn a_changed_secret_is_deployed_to_the_running_instances(s: &Project) {
    let out = secret_set(s, "VC_READ_TOKEN", "second-read-token");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(aggregates_with("first-read-token"), "200", "a change is applied by the next deploy, not before");
    deploy_on_test_host(s, &s.dir.path().join("token-true"));
    assert_eq!(common::on_host("stat -c '%a %U' /etc/vehicleconnect/secrets").trim(), "600 root");
    assert_eq!(
        (aggregates_with("second-read-token"), aggregates_with("first-read-token")),
        ("200".into(), "401".into())
    );
}

/// The databases `db restore` made on the test host's PostgreSQL (RDS here), dropped.
const DROP_RESTORED: &str = "for d in $(runuser -u postgres -- psql -qAtc \"SELECT datname FROM pg_database WHERE datname LIKE 'vehicleconnect_r%'\"); do \
     runuser -u postgres -- psql -qc \"DROP DATABASE \\\"$d\\\" WITH (FORCE)\"; done";

/// How many events the database of `db restore`'s timing holds (the issue asks 1 M).
const RESTORED_EVENTS: u32 = 1_000_000;

/// `db restore FILE` of a `scale:` stack: the archive goes through one instance into a new
/// database beside the serving one (RDS, here the host's PostgreSQL over TLS), while the
/// service serves from the old one without a failed request; the launch template then names
/// the new database, so an instance booted from it (`boot`, a command that boots the host
/// from the user data `booted`) serves from it; `restore --delete-old` drops the old one
/// through an instance.
async fn a_db_restore_goes_into_a_new_database_the_group_then_serves_from(s: &Project, boot: &str, booted: &str) {
    let run = |args: &[&str]| {
        let mut cmd = s.command(&[]);
        cmd.args(["--ssh-from", "198.18.0.11"]).args(args);
        cmd.env("VCCTL_TEST_AWS_HOST", common::test_host().addr).output().unwrap()
    };
    let events = |db: &str| {
        let n =
            common::on_host(&format!("runuser -u postgres -- psql -d {db} -qAtc 'SELECT count(*) FROM api_events'"));
        n.trim().parse::<u64>().unwrap_or_else(|_| panic!("{db}: {n}"))
    };
    common::on_host(&format!(
        "runuser -u postgres -- psql -d vehicleconnect -qc \"INSERT INTO api_events (ts, endpoint, method, status_code, response_time_ms, client_id) \
         SELECT now() - (i % 1800) * interval '1 second', '/v1/e' || (i % 7), 'GET', CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, 5 + (i % 400), 'vin-' || (i % 300) \
         FROM generate_series(1, {RESTORED_EVENTS}) i\""
    ));
    let stored = events("vehicleconnect");
    assert!(stored >= u64::from(RESTORED_EVENTS), "{stored}");
    let file = s.dir.path().join("scale.dump");
    let mut dump = s.command(&[]);
    dump.args(["--ssh-from", "198.18.0.11", "db", "dump"]).env("VCCTL_TEST_AWS_HOST", common::test_host().addr);
    let out = dump.stdout(std::fs::File::create(&file).unwrap()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = run(&["db", "restore", s.dir.path().join("stacks/fra.yaml").to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "not an archive: {}", show(&out));
    assert!(common::stderr(&out).contains("is not a pg_dump custom-format archive"), "{}", show(&out));

    // Events keep coming to the serving instance while the archive is restored beside it.
    let load = "token=$(sed -n 's/^VC_INGEST_TOKEN=//p' /etc/vehicleconnect/env); for i in $(seq 150); do \
         curl -s -o /dev/null -w '%{http_code}\\n' -H 'content-type: application/json' -H \"Authorization: Bearer $token\" \
         -d '{\"endpoint\":\"/v1/during\",\"response_time_ms\":5,\"status_code\":200,\"client_id\":\"c\"}' \
         http://127.0.0.1:8000/api/events; sleep 0.05; done | sort | uniq -c";
    let under_load = std::thread::spawn(move || common::on_host(load));
    let started = Instant::now();
    let out = run(&["db", "restore", file.to_str().unwrap(), "--yes", "--json"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let codes = under_load.join().unwrap();
    assert_eq!(codes.split_whitespace().collect::<Vec<_>>(), ["150", "201"], "every request stored: {codes}");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = done["database"]["database"].as_str().unwrap().to_string();
    assert!(name.starts_with("vehicleconnect_r2"), "{done}");
    assert_eq!(events(&name), stored, "every event of the archive, in the new database");
    let owner = common::on_host(&format!(
        "runuser -u postgres -- psql -qAtc \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'\""
    ));
    assert_eq!(owner.trim(), "vehicleconnect_app", "the service's own role owns it");
    eprintln!(
        "db restore of {stored} events ({} MB archive) through an instance into RDS (the test host's PostgreSQL over TLS), then the group pointed at it: {took:?}",
        std::fs::metadata(&file).unwrap().len() / 1_000_000
    );

    // An instance booted now (from the launch template's new version) serves from it.
    let user_data = super::restore::latest_user_data(s).await;
    let out = common::on_host(&boot.replace(booted, &user_data));
    assert!(out.trim_end().ends_with("exit 0"), "{out}");
    assert!(common::on_host("cat /etc/vehicleconnect/env").contains(&format!("/{name}\n")), "serves from {name}");
    let before = events(&name);
    let posted = common::on_host(
        "curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H \"Authorization: Bearer $(sed -n 's/^VC_INGEST_TOKEN=//p' /etc/vehicleconnect/env)\" \
         -d '{\"endpoint\":\"/v1/after\",\"response_time_ms\":5,\"status_code\":200,\"client_id\":\"c\"}' http://127.0.0.1:8000/api/events",
    );
    assert_eq!((posted.as_str(), events(&name)), ("201", before + 1), "stored in the restored database");

    // The old database, kept until now, dropped through an instance.
    let out = run(&["restore", "--delete-old", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let left = common::on_host(
        "runuser -u postgres -- psql -qAtc \"SELECT count(*) FROM pg_database WHERE datname = 'vehicleconnect'\"",
    );
    assert_eq!(left.trim(), "0", "the old database is dropped: {}", show(&out));
}

/// The user and password of the RDS secret `up` made, as an instance reads them.
async fn rds_login(s: &Project, up: &Value) -> (String, String) {
    let secret = up["database"]["secret_arn"].as_str().unwrap();
    let answer = common::http()
        .post(format!("{}/", s.moto.url))
        .header("X-Amz-Target", "secretsmanager.GetSecretValue")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261130/eu-central-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0")
        .body(serde_json::json!({"SecretId": secret}).to_string())
        .send()
        .await
        .unwrap();
    let value: Value = answer.json().await.unwrap();
    let login: Value = serde_json::from_str(value["SecretString"].as_str().unwrap()).unwrap();
    (login["username"].as_str().unwrap().to_string(), login["password"].as_str().unwrap().to_string())
}

/// What the boot script printed (`out`) and what the instance does after: `release` serves
/// from PostgreSQL over TLS, stores an event, and the password is in no output.
fn the_instance_serves_and_stores_over_tls(out: &str, release: &str, password: &str) {
    assert!(out.trim_end().ends_with("exit 0"), "{out}");
    assert!(out.contains(&format!("release {release} healthy on port 8000")), "{out}");
    assert_eq!(common::on_host("readlink /opt/vehicleconnect/current").trim(), format!("releases/{release}"));
    let status = common::on_host("curl -s http://127.0.0.1:8000/api/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!((status["store"].as_str(), status["database"].as_str()), (Some("postgres"), Some("ok")), "{status}");
    assert_eq!(common::on_host("stat -c '%a %U' /etc/vehicleconnect/env").trim(), "600 root");
    assert!(!out.contains(password), "the password in the boot script's output");
    let event = r#"{"endpoint":"/v1/boot","response_time_ms":5,"status_code":200,"client_id":"c"}"#;
    let token = common::on_host("sed -n 's/^VC_INGEST_TOKEN=//p' /etc/vehicleconnect/env");
    let posted = common::on_host(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -H 'content-type: application/json' -H 'Authorization: Bearer {}' -d '{event}' http://127.0.0.1:8000/api/events",
        token.trim()
    ));
    assert_eq!(posted, "201");
    let stored = common::on_host(
        "runuser -u postgres -- psql -qAt -d vehicleconnect -c \"SELECT count(*) FROM api_events WHERE endpoint = '/v1/boot'\"",
    );
    assert_eq!(stored.trim(), "1");
    let tls = common::on_host(
        "runuser -u postgres -- psql -qAt -c \"SELECT count(*) > 0 AND bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE datname = 'vehicleconnect' AND backend_type = 'client backend' AND pid <> pg_backend_pid()\"",
    );
    assert_eq!(tls.trim(), "t", "every session of the service is TLS");
    // The service logs in as its own role, which owns the database; never as the master.
    let users = common::on_host(
        "runuser -u postgres -- psql -qAt -c \"SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE datname = 'vehicleconnect' AND backend_type = 'client backend' AND pid <> pg_backend_pid()\"",
    );
    assert_eq!(users.trim(), "vehicleconnect_app");
    let owner = common::on_host(
        "runuser -u postgres -- psql -qAt -c \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vehicleconnect'\"",
    );
    assert_eq!(owner.trim(), "vehicleconnect_app");
    assert!(!common::on_host("cat /etc/vehicleconnect/env").contains(password), "no master password on the instance");
}

/// RDS rotates the master's password (every 7 days by default): the secret changes, and so
/// does the database's password. The running service holds nothing of the master's, so no
/// request fails; an instance booted afterwards reads the new secret and serves.
async fn a_rotated_master_password_changes_nothing_the_service_holds(s: &Project, up: &Value, new_instance: &str) {
    let (user, _) = rds_login(s, up).await;
    let secret = up["database"]["secret_arn"].as_str().unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let rotated = format!("rotated{nanos}");
    let load = "for i in $(seq 200); do curl -s -o /dev/null -w '%{http_code}\\n' -H 'content-type: application/json' \
         -H \"Authorization: Bearer $(sed -n 's/^VC_INGEST_TOKEN=//p' /etc/vehicleconnect/env)\" \
         -d '{\"endpoint\":\"/v1/rotation\",\"response_time_ms\":5,\"status_code\":200,\"client_id\":\"c\"}' \
         http://127.0.0.1:8000/api/events; sleep 0.02; done | sort | uniq -c";
    let under_load = std::thread::spawn(move || common::on_host(load));
    std::thread::sleep(Duration::from_millis(500));
    let answer = common::http()
        .post(format!("{}/", s.moto.url))
        .header("X-Amz-Target", "secretsmanager.PutSecretValue")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261130/eu-central-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0")
        .body(serde_json::json!({"SecretId": secret, "SecretString": serde_json::json!({"username": user, "password": rotated}).to_string()}).to_string())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    common::on_host(&format!("runuser -u postgres -- psql -qc \"ALTER ROLE \\\"{user}\\\" PASSWORD '{rotated}'\""));
    let codes = under_load.join().unwrap();
    assert_eq!(codes.split_whitespace().collect::<Vec<_>>(), ["200", "201"], "every request stored: {codes}");
    // A new instance (the host emptied of the service, then booted): the new secret, the
    // role's password kept, healthy.
    let out = common::on_host(new_instance);
    assert!(out.trim_end().ends_with("exit 0"), "{out}");
}

/// Prometheus on the instance finds the group's replicas by the stack's id tag, through
/// EC2 service discovery (moto's two instances: their addresses are made up, so they are
/// down, but found), and the instance's service answers on its metrics port.
fn prometheus_finds_the_replicas(s: &Project) {
    let started = Instant::now();
    let found = loop {
        let answer = common::on_host("curl -s http://127.0.0.1:9090/api/v1/targets || true");
        let v: Value = serde_json::from_str(&answer).unwrap_or_default();
        let found: Vec<Value> = v["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["labels"]["job"] == "vehicleconnect")
            .cloned()
            .collect();
        if found.len() == 2 || started.elapsed() > Duration::from_secs(60) {
            break found;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(found.len(), 2, "Prometheus found {found:?}");
    for t in &found {
        assert_eq!(t["discoveredLabels"]["__meta_ec2_tag_vcctl_stack_id"], s.stack_id().as_str(), "{t}");
        assert!(t["scrapeUrl"].as_str().unwrap().contains(":9464/metrics"), "{t}");
        assert!(t["labels"]["instance"].as_str().unwrap().starts_with("i-"), "{t}");
    }
    let metrics = common::on_host("curl -s http://127.0.0.1:9464/metrics");
    assert!(metrics.contains("vehicleconnect_build_info"), "{metrics}");
    let events = common::on_host("curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9464/api/events");
    assert_eq!(events, "404", "the metrics port serves no events");
}

/// TLS for the test host's PostgreSQL, as RDS has it: a certificate for 127.0.0.1 from a CA
/// of its own. Prints the CA's certificate.
fn database_tls() -> String {
    let certificate = common::database_certificate("/etc/postgresql/vc-rds", "test-rds-ca", "127.0.0.1");
    format!(
        r#"set -e
{certificate}cd / && systemctl start postgresql
for _ in $(seq 60); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c 'ALTER SYSTEM SET ssl = on' \
  -c "ALTER SYSTEM SET ssl_cert_file = '/etc/postgresql/vc-rds/server.pem'" \
  -c "ALTER SYSTEM SET ssl_key_file = '/etc/postgresql/vc-rds/server.key'" -c 'SELECT pg_reload_conf()' >/dev/null
cat /etc/postgresql/vc-rds/ca.pem
"#
    )
}

/// The release the bucket's pointer names.
async fn serving(s: &Project) -> String {
    let s3 = s3_client(s).await;
    let out = s3.get_object().bucket(format!("vcctl-fra-{}", s.stack_id())).key("serving").send().await.unwrap();
    let text = String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

/// The group's targets and their states, as moto's target group has them.
async fn target_states(s: &Project) -> Vec<String> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.sdk_config().await);
    let tg = elb.describe_target_groups().names("vcctl-fra").send().await.unwrap();
    let arn = tg.target_groups()[0].target_group_arn().unwrap();
    let health = elb.describe_target_health().target_group_arn(arn).send().await.unwrap();
    let mut out: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .map(|d| d.target_health().and_then(|h| h.state()).map(|s| s.as_str().to_string()).unwrap_or_default())
        .collect();
    out.sort();
    out
}

/// `vcctl deploy` of a `scale:` stack, with moto's two instances both standing for the test
/// host (VCCTL_TEST_AWS_HOST): the first is deregistered, drained, switched over on-demand
/// SSH and registered again once healthy; the second has nothing left to do; the pointer
/// moves. Then a release that cannot start: refused on the first instance, which goes back
/// in the target group; exit 6, and the pointer stays.
async fn rolls_out_through_the_target_group(s: &Project, ec2: &aws_sdk_ec2::Client) {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("vehicleconnect-v2");
    common::new_build(&v2, b"\nv2");
    let deploy = |artifact: &std::path::Path| {
        s.command(&["deploy", "--artifact", artifact.to_str().unwrap(), "--ssh-from", "198.18.0.11", "--json"])
            .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
            .env("AWS_ACCESS_KEY_ID", recorded::CI_KEY)
            .output()
            .unwrap()
    };
    // Another deploy holds the stack's lock: this one waits, then gives up (exit 5), naming it.
    let s3 = s3_client(s).await;
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    let held = hold_stack_lock(ec2, "2099-01-01T00:00:00Z").await;
    let before = serving(s).await;
    let out = s
        .command(&["deploy", "--artifact", v2.to_str().unwrap(), "--lock-timeout", "2s"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .env("AWS_ACCESS_KEY_ID", recorded::CI_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(common::stderr(&out).contains("ci@runner since 2026-12-01T00:00:00Z"), "{}", show(&out));
    assert_eq!(serving(s).await, before, "nothing moved");
    let releases = s3.list_objects_v2().bucket(&bucket).prefix("releases/").send().await.unwrap();
    assert_eq!(releases.contents().len(), 2, "no release uploaded while another deploy holds the lock");
    // Its lease over (a deploy that was killed): taken over.
    ec2.delete_security_group().group_id(&held).send().await.unwrap();
    hold_stack_lock(ec2, "2026-01-01T00:00:00Z").await;
    let out = deploy(&v2);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(common::stderr(&out).contains("outlived its lease"), "{}", show(&out));
    assert_eq!(stack_lock(ec2).await, None, "the lock is released");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::check_schema("deploy", &report);
    let results: Vec<&str> =
        report["hosts"].as_array().unwrap().iter().map(|i| i["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["deployed, healthy", "unchanged (already serving)"], "{report}");
    let err = common::stderr(&out);
    assert!(err.contains("deregistering") && err.contains("waiting for it to drain"), "{err}");
    assert!(err.contains("registering") && err.contains("waiting until healthy"), "{err}");
    let v2_release = report["release"].as_str().unwrap().to_string();
    assert_eq!((report["pointer_moved"].as_bool(), serving(s).await), (Some(true), v2_release.clone()), "{report}");
    assert_eq!(common::on_host("readlink /opt/vehicleconnect/current").trim(), format!("releases/{v2_release}"));
    assert_eq!(target_states(s).await, ["healthy", "healthy"]);
    assert!(ssh_rules(ec2).await.is_empty(), "on-demand SSH is closed again");
    // `status` reads each instance's release over SSH.
    let out = s
        .command(&["status", "--ssh-from", "198.18.0.11", "--json"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let on: Vec<(&str, bool)> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["release"].as_str().unwrap(), i["running"].as_bool().unwrap()))
        .collect();
    assert_eq!(on, [(v2_release.as_str(), true), (v2_release.as_str(), true)], "{status}");
    assert!(ssh_rules(ec2).await.is_empty(), "on-demand SSH is closed again");

    let broken = dir.path().join("broken");
    std::fs::write(
        &broken,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'vehicleconnect 9.9.9 (b0rken)' && exit 0\necho 'fatal: cannot start' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = deploy(&broken);
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    assert_eq!(serving(s).await, v2_release, "the pointer stays on the release every instance runs");
    assert_eq!(common::on_host("readlink /opt/vehicleconnect/current").trim(), format!("releases/{v2_release}"));
    assert_eq!(target_states(s).await, ["healthy", "healthy"], "the instance is back in the target group");
    assert!(ssh_rules(ec2).await.is_empty(), "on-demand SSH is closed again");
}

/// `vcctl rollback` of a `scale:` stack, as CI runs it: the release served before `first`'s
/// successor comes back from the bucket, rolled through the target group like a deploy, and
/// the pointer moves back; a release the bucket does not keep is refused (exit 3).
async fn rolls_back_to_the_release_served_before(s: &Project, ec2: &aws_sdk_ec2::Client, first: &str) {
    let rollback = |args: &[&str]| {
        let mut all = vec!["rollback", "--ssh-from", "198.18.0.11", "--json"];
        all.extend_from_slice(args);
        s.command(&all)
            .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
            .env("AWS_ACCESS_KEY_ID", recorded::CI_KEY)
            .output()
            .unwrap()
    };
    let out = rollback(&["--to", "20200101T000000Z-nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(common::stderr(&out).contains("the bucket keeps no release 20200101T000000Z-nope"), "{}", show(&out));
    let started = Instant::now();
    let out = rollback(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::check_schema("deploy", &report);
    assert_eq!((report["release"].as_str(), report["pointer_moved"].as_bool()), (Some(first), Some(true)), "{report}");
    assert_eq!(serving(s).await, first, "the pointer is back");
    assert_eq!(common::on_host("readlink /opt/vehicleconnect/current").trim(), format!("releases/{first}"));
    assert_eq!(target_states(s).await, ["healthy", "healthy"]);
    assert!(ssh_rules(ec2).await.is_empty(), "on-demand SSH is closed again");
    eprintln!("rollback of a scale: stack across 2 instances: {:?}", started.elapsed());
}

/// `exec`, `tunnel` on a `scale:` stack: on the instance `--instance` names, or with `exec
/// --all` on each in turn with each exit code; a script that names none is refused with the
/// list; SSH is closed again after each.
async fn commands_run_on_the_instance_named_or_on_each(s: &Project, ec2: &aws_sdk_ec2::Client, serving: &str) {
    let group = aws_sdk_autoscaling::Client::new(&s.sdk_config().await);
    let groups = group.describe_auto_scaling_groups().auto_scaling_group_names("vcctl-fra").send().await.unwrap();
    let mut ids: Vec<String> =
        groups.auto_scaling_groups()[0].instances().iter().map(|i| i.instance_id().unwrap().to_string()).collect();
    ids.sort();
    // (`--stack fra` first: what follows `--` is the command's own.)
    let run = |args: &[&str]| {
        let mut cmd = s.command(&[]);
        cmd.args(["--ssh-from", "198.18.0.11"]).args(args);
        cmd.env("VCCTL_TEST_AWS_HOST", common::test_host().addr).output().unwrap()
    };
    let out = run(&["exec", "--instance", &ids[1], "--", "readlink", "/opt/vehicleconnect/current"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("releases/{serving}"));
    let out = run(&["exec", "--all", "--json", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<(String, i64)> = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap().to_string(), i["exit_code"].as_i64().unwrap()))
        .collect();
    assert_eq!(codes.len(), 2, "{report}");
    assert!(codes.iter().all(|(id, code)| ids.contains(id) && *code == 3), "{report}");
    let out = run(&["exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let said = common::stderr(&out);
    assert!(said.contains("has 2 instances in service: ") && ids.iter().all(|i| said.contains(i.as_str())), "{said}");
    assert!(common::stderr(&out).contains("hint: name one with --instance"), "{}", show(&out));
    let out = run(&["exec", "--instance", "i-0000000000nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    // What was done to the group: its trail, in its bucket (each deploy and rollback wrote one).
    let out = run(&["audit", "-n", "50", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let audit: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"deploy") && actions.contains(&"rollback"), "{audit}");
    let by = audit["entries"][0]["by"].as_str().unwrap_or_default();
    assert!(!by.is_empty() && audit["entries"][0]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{audit}");
    // The group's ingest token, from its bucket, as the instances take it.
    let out = run(&["token", "show", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let on_host = common::on_host("sed -n 's/^VC_INGEST_TOKEN=//p' /etc/vehicleconnect/env");
    assert_eq!(token["ingest_token"].as_str(), Some(on_host.trim()), "{token}");
    // The group's database (RDS, here the host's PostgreSQL over TLS), dumped through an
    // instance as the service's own role.
    let out = run(&["db", "dump"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stdout.starts_with(b"PGDMP"), "a pg_dump archive: {}", show(&out));
    let toc = String::from_utf8_lossy(&out.stdout);
    assert!(toc.contains("api_events") && toc.contains("vehicleconnect_app"), "the service's tables, its role's");
    // A tunnel to one instance's Prometheus, over the same on-demand SSH.
    let mut cmd =
        s.command(&["tunnel", "prometheus", "--local-port", "0", "--instance", &ids[0], "--ssh-from", "198.18.0.11"]);
    cmd.env("VCCTL_TEST_AWS_HOST", common::test_host().addr).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "the tunnel prints its URL: {line:?}");
    let ready = common::http().get(format!("{}/-/ready", line.trim())).send().await.unwrap();
    assert!(ready.status().is_success(), "{}", ready.status());
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    assert!(ssh_rules(ec2).await.is_empty(), "on-demand SSH is closed again");
}

/// `tls.route53_zone`: the certificate's validation record and the domain's alias of the load
/// balancer kept in the hosted zone (made, unchanged by a second `up`, put back when changed
/// by hand), and `destroy` takes back only those: the zone and its other records stay. A zone
/// the account does not have is refused before anything is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_stack_keeps_its_records_in_its_hosted_zone_and_destroy_takes_only_those_back() {
    let stack =
        scaled_stack().replace("  domain: vc.example.com\n", "  domain: vc.example.com\n  route53_zone: example.com\n");
    let s = Project::new(&stack, Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let config = s.sdk_config().await;
    let r53 = aws_sdk_route53::Client::new(&config);
    let err = show(&s.expect(&["plan"], 3));
    assert!(err.contains("no Route 53 hosted zone example.com (tls.route53_zone)"), "{err}");
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("vcctl-test").send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
    let record = |name: &str, kind: RrType, value: &str| {
        let set = ResourceRecordSet::builder().name(name).r#type(kind).ttl(60);
        set.resource_records(ResourceRecord::builder().value(value).build().unwrap()).build().unwrap()
    };
    let upsert = |set: ResourceRecordSet| {
        let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().unwrap();
        r53.change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
            .send()
    };
    upsert(record("www.example.com", RrType::A, "192.0.2.1")).await.unwrap();
    let listed = || async {
        let out = r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
        let mut all: Vec<(String, String, String)> = out
            .resource_record_sets()
            .iter()
            .map(|r| {
                let value = match r.alias_target() {
                    Some(a) => format!("alias {}", a.dns_name().to_ascii_lowercase()),
                    None => r.resource_records().iter().map(|v| v.value().to_string()).collect::<Vec<_>>().join(" "),
                };
                (r.name().to_string(), r.r#type().as_str().to_string(), value)
            })
            .filter(|(_, kind, _)| kind != "SOA" && kind != "NS")
            .collect();
        all.sort();
        all
    };

    let plan = s.json(&["plan"], 2);
    assert!(plan["changes"].to_string().contains("DNS record vc.example.com. A"), "{plan}");
    let up = s.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    let lb = format!("alias {}.", up["load_balancer"]["dns_name"].as_str().unwrap().to_ascii_lowercase());
    let (check, kind, target) = up["certificate"]["validation"]
        .as_array()
        .map(|v| {
            (v[0].as_str().unwrap().to_string(), v[1].as_str().unwrap().to_string(), v[2].as_str().unwrap().to_string())
        })
        .unwrap();
    let ours = vec![
        (check.to_ascii_lowercase(), kind, target.to_ascii_lowercase()),
        ("vc.example.com.".to_string(), "A".to_string(), lb.clone()),
        ("www.example.com.".to_string(), "A".to_string(), "192.0.2.1".to_string()),
    ];
    let mut ours = ours;
    ours.sort();
    assert_eq!(listed().await, ours);
    assert_eq!(s.json(&["up"], 0)["changed"], false);

    // The domain pointed elsewhere by hand: planned, and put back.
    upsert(record("vc.example.com", RrType::A, "198.51.100.7")).await.unwrap();
    let plan = s.json(&["plan"], 2);
    assert_eq!(plan["changes"][0]["resource"], "DNS record vc.example.com. A", "{plan}");
    s.json(&["up"], 0);
    assert_eq!(listed().await, ours);

    s.json(&["destroy", "--yes"], 0);
    assert_eq!(listed().await, [("www.example.com.".to_string(), "A".to_string(), "192.0.2.1".to_string())]);
}

/// `vcctl secrets` of a `scale:` stack: kept in its bucket (the instances' boot and deploys
/// copy it, tested on the test host above), the value from stdin and in no output, listed by
/// name and time, unset, an unknown one refused naming it; each change in the stack's audit
/// trail; every call within `vcctl iam-policy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_secrets_are_kept_in_its_bucket_never_shown() {
    let s = Project::new(&scaled_stack(), Moto::start(&[("MOTO_ACM_VALIDATION_WAIT", "0")]));
    let before = show(&s.expect(&["secrets", "list"], 3));
    assert!(
        before.contains("has no bucket yet to keep secrets in") && before.contains("vcctl up --stack fra"),
        "{before}"
    );
    s.json(&["up", "--artifact", common::service_bin().to_str().unwrap()], 0);
    let watch = recorded::Watch::start(&s).await;
    assert_eq!(s.json(&["secrets", "list"], 0)["secrets"], serde_json::json!([]));
    for (name, value) in [("VC_READ_TOKEN", "r3ad-t0ken-value"), ("PARTNER_KEY", "pa$$\"word")] {
        let out = secret_set(&s, name, value);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(!show(&out).contains(value), "the value in vcctl's output: {}", show(&out));
    }
    let list = s.json(&["secrets", "list"], 0);
    let names: Vec<&str> = list["secrets"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["VC_READ_TOKEN", "PARTNER_KEY"]);
    assert!(!list.to_string().contains("r3ad-t0ken"), "{list}");
    let bucket = format!("vcctl-fra-{}", s.stack_id());
    let kept = s3_client(&s).await.get_object().bucket(&bucket).key("host/secrets").send().await.unwrap();
    let kept = String::from_utf8(kept.body.collect().await.unwrap().to_vec()).unwrap();
    assert!(
        kept.contains("VC_READ_TOKEN=\"r3ad-t0ken-value\"\n") && kept.contains("PARTNER_KEY=\"pa\\$\\$\\\"word\"\n"),
        "{kept}"
    );
    s.json(&["secrets", "unset", "PARTNER_KEY"], 0);
    let err = show(&s.expect(&["secrets", "unset", "PARTNER_KEY"], 3));
    assert!(err.contains("stack `fra` has no secret PARTNER_KEY"), "{err}");
    let err = show(&s.expect(&["secrets", "unset", "DATABASE_URL"], 3));
    assert!(err.contains("`DATABASE_URL` is set by vcctl"), "{err}");
    let names = s.json(&["secrets", "list"], 0)["secrets"].to_string();
    assert!(names.contains("VC_READ_TOKEN") && !names.contains("PARTNER_KEY"), "{names}");
    let audit = s.json(&["audit"], 0).to_string();
    assert!(audit.contains("secrets set") && audit.contains("secrets unset"), "{audit}");
    let policy = least_privilege::operator_policy(&s);
    let (_, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    least_privilege::check_operator(&policy, &asked);
}

/// `vcctl secrets set NAME`, the value on stdin.
fn secret_set(s: &Project, name: &str, value: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = s
        .command(&["secrets", "set", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
