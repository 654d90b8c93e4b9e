//! vcctl against moto: the single box: up, plan, drift, ownership, alarms, the data volume, backups, destroy.

use super::*;

fn expected_rules() -> Vec<(i32, String, String)> {
    let mut r = vec![
        (22, "198.18.7.7/32".to_string(), "SSH from an admin network".to_string()),
        (80, "0.0.0.0/0".into(), "HTTP for vehicle apps and gateways".into()),
        (8000, "0.0.0.0/0".into(), "vehicleconnect API".into()),
        (9090, "198.18.7.7/32".into(), "Prometheus from an admin network".into()),
    ];
    r.sort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_exactly_the_stack_converges_repairs_drift_and_destroy_leaves_nothing() {
    let p = Project::new(STACK, Moto::start(&[]));
    let watch = recorded::Watch::start(&p).await;
    let out = p.expect(&["plan"], 2);
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ instance vcctl-fra"), "{}", show(&out));
    // Every name filled in: no `<stack>`-like placeholder reaches the user.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("/vcctl/<") && !text.contains("<stack>"), "a placeholder in the plan:\n{text}");
    let up = p.json(&["up"], 0);
    assert_eq!(up["changed"], true);
    the_key_pair_group_and_role_are_exactly_the_stacks(&p).await;
    the_instance_is_pinned_metadata_v2_and_encrypted(&p).await;
    the_alarms_watch_the_instance_and_its_disk(&p).await;
    drift_by_hand_is_planned_and_repaired(&p).await;
    status_under_the_emulator_is_not_healthy(&p);
    destroy_lists_everything_then_leaves_nothing(&p).await;
    // Every call of that life, drift repairs included, allowed by `vcctl iam-policy`.
    let (_, asked) = watch.authorizations(recorded::OPERATOR_KEY).await;
    least_privilege::check_operator(&least_privilege::operator_policy(&p), &asked);
}

/// The key pair, the security group's rules, and the role with its one inline policy.
async fn the_key_pair_group_and_role_are_exactly_the_stacks(p: &Project) {
    let (ec2, iam, _) = p.sdk().await;
    // Key pair, tagged.
    let keys = ec2.describe_key_pairs().key_names("vcctl-fra").send().await.unwrap();
    let key = &keys.key_pairs()[0];
    assert!(key.tags().iter().any(|t| t.key() == Some("vcctl:stack") && t.value() == Some("fra")));

    // Security group: exactly the four rules, each described; admin ports for admins only.
    assert_eq!(sg_rules(&ec2).await, expected_rules());
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let sg = &groups.security_groups()[0];
    assert!(sg.tags().iter().any(|t| t.key() == Some("vcctl:managed-by") && t.value() == Some("vcctl")));

    // IAM: role under the stack's path, trusted by EC2 only, one inline least-privilege policy.
    let role = iam.get_role().role_name("vcctl-fra-host").send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.path(), "/vcctl/fra/");
    let trust = urldecode(role.assume_role_policy_document().unwrap());
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com");
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1);
    let policy = iam
        .get_role_policy()
        .role_name("vcctl-fra-host")
        .policy_name("vcctl-fra-least-privilege")
        .send()
        .await
        .unwrap();
    let policy = urldecode(policy.policy_document());
    assert_eq!(policy["Statement"][0]["Action"], "cloudwatch:PutMetricData");
    assert_eq!(policy["Statement"][0]["Condition"]["StringEquals"]["cloudwatch:namespace"], "VehicleConnect/fra");
    let sids: Vec<&str> = policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert_eq!(
        sids,
        [
            "MetricsInItsStacksNamespace",
            "FindItsTemporarySshRules",
            "CloseExpiredSshOnItsGroups",
            "OnlyItsTemporaryRules"
        ]
    );
    assert!(!policy.to_string().contains("FullAccess"));
    let attached = iam.list_attached_role_policies().role_name("vcctl-fra-host").send().await.unwrap();
    assert!(attached.attached_policies().is_empty(), "no managed policies");
    let profile = iam.get_instance_profile().instance_profile_name("vcctl-fra-host").send().await.unwrap();
    assert_eq!(profile.instance_profile().unwrap().roles()[0].role_name(), "vcctl-fra-host");
}

/// The newest Debian 12, pinned; IMDSv2; encrypted gp3; cloud-init user data.
async fn the_instance_is_pinned_metadata_v2_and_encrypted(p: &Project) {
    let (ec2, _, _) = p.sdk().await;
    // Instance: the newest Debian 12, pinned; IMDSv2; encrypted gp3; cloud-init user data.
    let instances = live_instances(&ec2).await;
    assert_eq!(instances.len(), 1);
    let i = &instances[0];
    assert_eq!(i.image_id(), Some("ami-0de0000000000new"));
    assert!(i.tags().iter().any(|t| t.key() == Some("vcctl:ami") && t.value() == Some("ami-0de0000000000new")));
    assert_eq!(i.instance_type().unwrap().as_str(), "t2.micro");
    let md = i.metadata_options().unwrap();
    assert_eq!(md.http_tokens().unwrap().as_str(), "required");
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    assert!(i.iam_instance_profile().unwrap().arn().unwrap().contains("vcctl-fra-host"));
    let volume_id = i.block_device_mappings()[0].ebs().unwrap().volume_id().unwrap();
    let volumes = ec2.describe_volumes().volume_ids(volume_id).send().await.unwrap();
    let v = &volumes.volumes()[0];
    assert_eq!(v.encrypted(), Some(true));
    assert_eq!(v.volume_type().unwrap().as_str(), "gp3");
    let user_data = ec2
        .describe_instance_attribute()
        .instance_id(i.instance_id().unwrap())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = user_data.user_data().unwrap().value().unwrap();
    let decoded = String::from_utf8(base64_decode(encoded)).unwrap();
    assert!(decoded.starts_with("#cloud-config") && decoded.contains("127.0.0.1:8000"), "{decoded}");
}

async fn the_alarms_watch_the_instance_and_its_disk(p: &Project) {
    let (_, _, cw) = p.sdk().await;
    // Alarms.
    let alarms = cw.describe_alarms().alarm_name_prefix("vcctl-fra-").send().await.unwrap();
    let mut names: Vec<&str> = alarms.metric_alarms().iter().filter_map(|a| a.alarm_name()).collect();
    names.sort();
    assert_eq!(names, ["vcctl-fra-cpu-high", "vcctl-fra-data-disk-full", "vcctl-fra-system-status"]);
    let status_alarm =
        alarms.metric_alarms().iter().find(|a| a.alarm_name() == Some("vcctl-fra-system-status")).unwrap();
    assert_eq!(status_alarm.alarm_actions(), ["arn:aws:automate:eu-central-1:ec2:recover"]);
    let cpu = alarms.metric_alarms().iter().find(|a| a.alarm_name() == Some("vcctl-fra-cpu-high")).unwrap();
    assert_eq!((cpu.threshold(), cpu.period(), cpu.evaluation_periods()), (Some(80.0), Some(300), Some(2)));
    // What the host publishes (checked on the test host), by stack: it outlives the instance.
    let disk = alarms.metric_alarms().iter().find(|a| a.alarm_name() == Some("vcctl-fra-data-disk-full")).unwrap();
    assert_eq!((disk.namespace(), disk.metric_name()), (Some("VehicleConnect/fra"), Some("DataVolumeUsedPercent")));
    assert_eq!((disk.threshold(), disk.period(), disk.evaluation_periods()), (Some(85.0), Some(300), Some(2)));
    assert_eq!(disk.dimensions()[0].value(), Some("fra"));
}

/// A second up changes nothing; SSH opened to the world, the Prometheus rule removed and an
/// alarm deleted by hand are planned and repaired.
async fn drift_by_hand_is_planned_and_repaired(p: &Project) {
    let (ec2, _, cw) = p.sdk().await;
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let sg = &groups.security_groups()[0];
    // A second up changes nothing; plan agrees.
    assert_eq!(p.json(&["up"], 0)["changed"], false);
    p.expect(&["plan"], 0);

    // Drift made by hand: SSH opened to the world, the Prometheus rule removed, an alarm deleted.
    let sg_id = sg.group_id().unwrap();
    let perm = |port: i32, cidr: &str, d: &str| {
        aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip(cidr).description(d).build())
            .build()
    };
    ec2.authorize_security_group_ingress()
        .group_id(sg_id)
        .ip_permissions(perm(22, "0.0.0.0/0", "by hand"))
        .send()
        .await
        .unwrap();
    ec2.revoke_security_group_ingress()
        .group_id(sg_id)
        .ip_permissions(perm(9090, "198.18.7.7/32", "Prometheus from an admin network"))
        .send()
        .await
        .unwrap();
    cw.delete_alarms().alarm_names("vcctl-fra-cpu-high").send().await.unwrap();
    let plan = p.json(&["plan"], 2);
    common::check_schema("plan", &plan);
    let changes: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}: {}", c["action"], c["resource"], c["detail"]))
        .collect();
    let text = changes.join("\n");
    assert!(text.contains("tcp/22 from 0.0.0.0/0 (by hand): not in the stack file"), "{text}");
    assert!(text.contains("tcp/9090 from 198.18.7.7/32"), "{text}");
    assert!(text.contains("alarm vcctl-fra-cpu-high"), "{text}");
    assert_eq!(changes.len(), 3, "{text}");
    assert_eq!(p.json(&["up"], 0)["changed"], true);
    assert_eq!(sg_rules(&ec2).await, expected_rules(), "up repaired the rules");
    p.expect(&["plan"], 0);
}

fn status_under_the_emulator_is_not_healthy(p: &Project) {
    // Under the emulator nothing is checked, so nothing is known healthy: exit 1.
    let status = p.json(&["status"], 1);
    common::check_schema("status", &status);
    assert_eq!((status["shape"].as_str(), status["healthy"].as_bool()), (Some("aws"), Some(false)));
    assert_eq!(status["instance"]["state"], "running");
    assert_eq!((status["service"]["checked"].as_bool(), status["healthy"].as_bool()), (Some(false), Some(false)));
    let out = p.expect(&["status"], 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("service:  not checked: AWS_ENDPOINT_URL is set"), "words, not raw JSON:\n{text}");
    let quiet = p.expect(&["status", "-q"], 1);
    assert!(quiet.stderr.is_empty() && !quiet.stdout.is_empty(), "-q hides progress, not the result");
}

/// The prompt names everything; `destroy` leaves nothing tagged for the stack; a second is
/// a no-op, and nothing is left to deploy to.
async fn destroy_lists_everything_then_leaves_nothing(p: &Project) {
    let (ec2, iam, cw) = p.sdk().await;
    // Destroy: nothing tagged for the stack remains; a second destroy is a no-op.
    let out = p.expect(&["destroy"], 8);
    let e = String::from_utf8_lossy(&out.stderr);
    for doomed in [
        "key pair vcctl-fra",
        "security group sg-",
        "IAM role vcctl-fra-host",
        "instance i-",
        "alarm vcctl-fra-cpu-high",
        "Elastic IP ",
        "data volume vol-",
    ] {
        assert!(e.contains(&format!("  - {doomed}")), "the prompt lists `{doomed}`:\n{e}");
    }
    p.json(&["destroy", "--yes"], 0);
    assert!(live_instances(&ec2).await.is_empty());
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    assert!(groups.security_groups().is_empty());
    let keys = ec2
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values("vcctl-fra").build())
        .send()
        .await
        .unwrap();
    assert!(keys.key_pairs().is_empty());
    let roles = iam.list_roles().path_prefix("/vcctl/fra/").send().await.unwrap();
    assert!(roles.roles().is_empty());
    let profiles = iam.list_instance_profiles().path_prefix("/vcctl/fra/").send().await.unwrap();
    assert!(profiles.instance_profiles().is_empty());
    let alarms = cw.describe_alarms().alarm_name_prefix("vcctl-fra-").send().await.unwrap();
    assert!(alarms.metric_alarms().is_empty());
    assert!(stack_addresses(&ec2).await.is_empty(), "the Elastic IP is released");
    assert!(data_volumes(&ec2).await.is_empty(), "the data volume is deleted");
    p.expect(&["destroy", "--yes"], 0);
    // Nothing to ship to any more: said before anything is built or uploaded.
    let out = p.expect(&["deploy"], 3);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stack `fra` has no instance in eu-central-1"),
        "{}",
        show(&out)
    );
}

/// One `up` or `destroy` of a stack at a time, held by AWS (a security group of the lock's
/// name): two `up`s started together make one instance; a held lock makes `up` and
/// `destroy` wait, then exit 5 naming the holder; a lock whose lease ended is taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_up_at_a_time_and_a_dead_holders_lock_is_taken_over() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.moto.record().await;
    let both: Vec<_> = (0..2)
        .map(|_| p.command(&["up", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<Output> = both.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    // One RunInstances between them (moto ignores its idempotency token: the lock is what
    // keeps the second away), and it carries a token.
    let runs: Vec<recorded::Call> =
        p.moto.recorded(recorded::OPERATOR_KEY).await.into_iter().filter(|c| c.action == "ec2:RunInstances").collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].params.get("ClientToken").is_some_and(|t| t.starts_with("vcctl-")), "{runs:?}");
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", show(out));
    }
    assert!(
        outs.iter().any(|o| common::stderr(o).contains("waiting up to 1m for the lock of stack `fra`")),
        "one waited"
    );
    assert_eq!(live_instances(&ec2).await.len(), 1, "one instance, not two");
    assert_eq!(stack_lock(&ec2).await, None, "released");

    // Held by another (as a CI run would hold it): each waits, then exits 5 naming it.
    let held = hold_stack_lock(&ec2, "2099-01-01T00:00:00Z").await;
    let waits = [
        &["up", "--lock-timeout", "2s"][..],
        &["destroy", "--yes", "--lock-timeout", "2s"],
        &["deploy", "--lock-timeout", "2s"],
    ];
    for args in waits {
        let out = p.expect(args, 5);
        let err = common::stderr(&out);
        assert!(
            err.contains("another vcctl holds the lock of stack `fra`")
                && err.contains("ci@runner since 2026-12-01T00:00:00Z"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(live_instances(&ec2).await.len(), 1, "destroy changed nothing");
    // Its lease over (the holder was killed): taken over, and released after.
    ec2.delete_security_group().group_id(&held).send().await.unwrap();
    hold_stack_lock(&ec2, "2026-01-01T00:00:00Z").await;
    let out = p.expect(&["up"], 0);
    assert!(common::stderr(&out).contains("outlived its lease"), "{}", show(&out));
    assert_eq!(stack_lock(&ec2).await, None, "released");
    p.json(&["destroy", "--yes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_up_converges_without_duplicates() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    for step in ["security_group", "instance"] {
        let out = p.command(&["up"]).env("VCCTL_FAULT", format!("abort-after:{step}")).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "the fault stops vcctl after {step}:\n{}", show(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("aborting after {step}")));
    }
    // The run after two interruptions finishes the job.
    p.json(&["up"], 0);
    assert_eq!(p.json(&["up"], 0)["changed"], false);
    assert_eq!(live_instances(&ec2).await.len(), 1, "one instance, not two");
    assert_eq!(sg_rules(&ec2).await, expected_rules());
    p.json(&["destroy", "--yes"], 0);
}

/// Another stack whose name starts with this one's (`fra-eu` beside `fra`) keeps its
/// alarms through this stack's `up` and `destroy`: alarms are found by exact name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_of_a_stack_with_a_longer_name_are_left_alone() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (_, _, cw) = p.sdk().await;
    p.json(&["up"], 0);
    let theirs = "vcctl-fra-eu-cpu-high";
    cw.put_metric_alarm()
        .alarm_name(theirs)
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(300)
        .evaluation_periods(2)
        .threshold(80.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let alarm_names = |cw: aws_sdk_cloudwatch::Client| async move {
        let out = cw.describe_alarms().send().await.unwrap();
        out.metric_alarms().iter().filter_map(|a| a.alarm_name().map(str::to_string)).collect::<Vec<_>>()
    };
    assert_eq!(p.json(&["up"], 0)["changed"], false, "the other stack's alarm is not this stack's drift");
    p.expect(&["plan"], 0);
    assert!(alarm_names(cw.clone()).await.contains(&theirs.to_string()));
    p.json(&["destroy", "--yes"], 0);
    assert_eq!(alarm_names(cw).await, [theirs.to_string()], "destroy removed only this stack's alarms");
}

/// An admin network written in another form than AWS reports (upper case, zeros spelled
/// out) is stored in its canonical form: the second `up` changes nothing, instead of
/// revoking and re-adding the rule every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cidrs_in_any_spelling_converge() {
    let stack = STACK.replace("admin_cidrs: [198.18.7.7/32]", "admin_cidrs: [198.18.7.7/32, \"2A00:1450:0:0::/48\"]");
    let p = Project::new(&stack, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let rules = sg_rules(&ec2).await;
    assert!(rules.iter().any(|(port, cidr, _)| *port == 22 && cidr == "2a00:1450::/48"), "{rules:?}");
    assert_eq!(p.json(&["up"], 0)["changed"], false);
    p.expect(&["plan"], 0);
    p.json(&["destroy", "--yes"], 0);
}

/// The vcctl tags of every EC2 resource of the stack (instance, security group, key pair).
async fn ec2_stack_ids(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let out = ec2
        .describe_tags()
        .filters(Filter::builder().name("key").values("vcctl:stack-id").build())
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .tags()
        .iter()
        .map(|t| format!("{} {}", t.resource_type().map(|r| r.as_str()).unwrap_or("?"), t.value().unwrap_or("?")))
        .collect();
    ids.sort();
    ids
}

/// Two projects that both call their stack `fra`, in one account: the second sees the
/// first's resources under its names and tags, and refuses to plan, change or destroy any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_with_one_stack_name_never_touch_each_others_resources() {
    let first = Project::new(STACK, Moto::start(&[]));
    let (ec2, iam, cw) = first.sdk().await;
    first.json(&["up"], 0);
    let id = first.stack_id();
    assert_eq!(
        ec2_stack_ids(&ec2).await,
        [
            format!("instance {id}"),
            format!("key-pair {id}"),
            format!("security-group {id}"),
            format!("volume {id}"),
            format!("volume {id}"),
            format!("vpc-elastic-ip {id}")
        ],
        "everything carries the stack id"
    );
    let role = iam.get_role().role_name("vcctl-fra-host").send().await.unwrap();
    assert!(role.role().unwrap().tags().iter().any(|t| t.key() == "vcctl:stack-id" && t.value() == id));
    let alarms = cw.describe_alarms().send().await.unwrap();
    for a in alarms.metric_alarms() {
        let tags = cw.list_tags_for_resource().resource_arn(a.alarm_arn().unwrap()).send().await.unwrap();
        assert!(tags.tags().iter().any(|t| t.key() == Some("vcctl:stack-id") && t.value() == Some(id.as_str())));
    }

    let second = first.beside(STACK);
    for (args, what) in [(&["plan"][..], "plan"), (&["up"][..], "up"), (&["destroy", "--yes"][..], "destroy")] {
        let out = second.expect(args, 3);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("because these are not its own"), "{what}: {e}");
        assert!(e.contains(&format!("stack id {id}")) && e.contains("security group sg-"), "{what}: {e}");
    }
    assert!(!std::fs::read_to_string(second.dir.path().join("stacks/fra.yaml")).unwrap().contains("rename"));
    // The first project's stack is untouched and converged.
    first.expect(&["plan"], 0);
    assert_eq!(live_instances(&ec2).await.len(), 1);
    first.json(&["destroy", "--yes"], 0);
}

/// "Launch more like this" copies an instance's tags, stack id included: with two instances
/// under its tags, vcctl changes nothing and names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_instance_stops_every_change_and_is_named() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let original = live_instances(&ec2).await.remove(0);
    let tags: Vec<aws_sdk_ec2::types::Tag> = original.tags().to_vec();
    let copy = ec2
        .run_instances()
        .image_id(original.image_id().unwrap())
        .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let copy_id = copy.instances()[0].instance_id().unwrap().to_string();
    for args in [&["plan"][..], &["up"][..], &["destroy", "--yes"][..]] {
        let out = p.expect(args, 3);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("2 instances carry the tags of stack `fra`"), "{args:?}: {e}");
        assert!(e.contains(original.instance_id().unwrap()) && e.contains(&copy_id), "{args:?}: {e}");
        assert!(e.contains("Two `up`s run at once") && e.contains("a copy"), "how it can happen: {e}");
        assert!(e.contains(&format!("hint: `vcctl destroy --instance {copy_id} --stack fra`")), "the way out: {e}");
    }
    assert_eq!(live_instances(&ec2).await.len(), 2, "nothing was terminated");
    // The way out: that one instance, after a confirmation; the stack goes on.
    p.expect(&["destroy", "--instance", "i-0000000000000dead", "--yes"], 3);
    let gone = p.json(&["destroy", "--instance", &copy_id, "--yes"], 0);
    assert_eq!(gone["terminated"], copy_id.as_str());
    let left: Vec<String> = live_instances(&ec2).await.iter().map(|i| i.instance_id().unwrap().to_string()).collect();
    assert_eq!(left, [original.instance_id().unwrap()]);
    assert_eq!(p.json(&["up"], 0)["changed"], false, "the stack is whole again");
    p.json(&["destroy", "--yes"], 0);
}

/// An alarm with a name vcctl gives this stack's alarms, made by hand without its tags, is
/// neither overwritten nor deleted; one an older vcctl made (tags, no stack id) is adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_are_changed_only_when_their_tags_say_they_are_the_stacks() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, cw) = p.sdk().await;
    let by_hand = |threshold: f64| {
        cw.put_metric_alarm()
            .alarm_name("vcctl-fra-cpu-high")
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
            .send()
    };
    by_hand(12.0).await.unwrap();
    let out = p.expect(&["up"], 3);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("alarm vcctl-fra-cpu-high: it has the name vcctl gives stack `fra`'s resources"), "{e}");
    let alarm = cw.describe_alarms().alarm_names("vcctl-fra-cpu-high").send().await.unwrap();
    assert_eq!(alarm.metric_alarms()[0].threshold(), Some(12.0), "the hand-made alarm is untouched");
    assert!(live_instances(&ec2).await.is_empty(), "nothing was made");
    cw.delete_alarms().alarm_names("vcctl-fra-cpu-high").send().await.unwrap();
    p.json(&["up"], 0);

    // An older vcctl's resources (its tags without a stack id) are tagged, not refused.
    let instance = live_instances(&ec2).await.remove(0).instance_id().unwrap().to_string();
    ec2.delete_tags()
        .resources(&instance)
        .tags(aws_sdk_ec2::types::Tag::builder().key("vcctl:stack-id").build())
        .send()
        .await
        .unwrap();
    let plan = p.json(&["plan"], 2);
    assert!(plan["changes"].to_string().contains("tag it with this stack's id"), "{plan}");
    p.json(&["up"], 0);
    p.expect(&["plan"], 0);
    p.json(&["destroy", "--yes"], 0);
}

/// Every inbound rule of the stack's group, as AWS lists them: protocol, ports, source.
async fn every_rule(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let id = groups.security_groups()[0].group_id().unwrap().to_string();
    let out = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(&id).build())
        .send()
        .await
        .unwrap();
    let mut rules: Vec<String> = out
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() != Some(true))
        .map(|r| {
            let source = r
                .cidr_ipv4()
                .or(r.cidr_ipv6())
                .or(r.prefix_list_id())
                .or(r.referenced_group_info().and_then(|g| g.group_id()))
                .unwrap_or("?");
            let (from, to) = (r.from_port().unwrap_or(-1), r.to_port().unwrap_or(-1));
            format!("{} {from}-{to} {source}", r.ip_protocol().unwrap_or("?"))
        })
        .collect();
    rules.sort();
    rules
}

/// Rules made by hand that open more than the stack says: all traffic, another protocol
/// on an admin port, a port range, another security group and a prefix list as sources.
/// `plan` sees every one (exit 2), `up` revokes every one by its id, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_hand_made_rule_is_drift_and_up_revokes_it() {
    use aws_sdk_ec2::types::{IpPermission, IpRange, PrefixListId, UserIdGroupPair};
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let made = every_rule(&ec2).await;
    let groups = ec2.describe_security_groups().filters(stack_filter()).send().await.unwrap();
    let (sg, vpc) = (groups.security_groups()[0].group_id().unwrap(), groups.security_groups()[0].vpc_id().unwrap());
    let other =
        ec2.create_security_group().group_name("someone-else").description("x").vpc_id(vpc).send().await.unwrap();
    let list = ec2
        .create_managed_prefix_list()
        .prefix_list_name("offices")
        .address_family("IPv4")
        .max_entries(5)
        .send()
        .await
        .unwrap();
    let list_id = list.prefix_list().unwrap().prefix_list_id().unwrap();
    let cidr = |c: &str| IpRange::builder().cidr_ip(c).description("SSH from an admin network").build();
    let by_hand = [
        IpPermission::builder().ip_protocol("-1").ip_ranges(cidr("0.0.0.0/0")).build(),
        IpPermission::builder().ip_protocol("udp").from_port(22).to_port(22).ip_ranges(cidr("198.18.7.7/32")).build(),
        IpPermission::builder().ip_protocol("tcp").from_port(20).to_port(25).ip_ranges(cidr("198.18.7.7/32")).build(),
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(8000)
            .to_port(8000)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id(other.group_id().unwrap()).build())
            .build(),
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(9090)
            .to_port(9090)
            .prefix_list_ids(PrefixListId::builder().prefix_list_id(list_id).build())
            .build(),
    ];
    for permission in by_hand {
        ec2.authorize_security_group_ingress().group_id(sg).ip_permissions(permission).send().await.unwrap();
    }
    assert_eq!(every_rule(&ec2).await.len(), made.len() + 5);

    let plan = p.json(&["plan"], 2);
    let said = plan["changes"].to_string();
    for drift in ["all traffic from 0.0.0.0/0", "udp/22 from 198.18.7.7/32", "tcp/20-25 from 198.18.7.7/32"] {
        assert!(said.contains(drift), "plan misses `{drift}`: {plan}");
    }
    assert!(said.contains(&format!("from security group {}", other.group_id().unwrap())), "{plan}");
    assert!(said.contains(&format!("from prefix list {list_id}")), "{plan}");
    let up = p.json(&["up"], 0);
    assert_eq!(up["changes"].as_array().unwrap().len(), 5, "{up}");
    assert_eq!(every_rule(&ec2).await, made, "exactly the stack's rules again");
    p.expect(&["plan"], 0);
    p.json(&["destroy", "--yes"], 0);
}

/// A private key where the public key belongs is refused before any AWS call (nothing is
/// imported), and so is a missing identity file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_given_as_the_public_key_is_refused_before_any_aws_call() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";
    std::fs::write(p.dir.path().join("keys/id_ed25519.pub"), private).unwrap();
    for args in [&["plan"][..], &["up"][..]] {
        let started = Instant::now();
        let out = p.expect(args, 3);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("keys/id_ed25519.pub` (aws.ssh_public_key in") && e.contains("this is a private key"),
            "{e}"
        );
        assert!(e.contains("hint: `") && e.contains("holds a private key under a public key's name"), "{e}");
        assert!(!e.contains("checking AWS credentials"), "refused before any AWS call: {e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let pairs = ec2.describe_key_pairs().send().await.unwrap();
    assert!(pairs.key_pairs().is_empty(), "nothing was imported");

    // The private key itself given as the public one: the hint derives the public half.
    std::fs::write(p.dir.path().join("keys/id_ed25519"), private).unwrap();
    let stack = STACK.replace("keys/id_ed25519.pub", "keys/id_ed25519");
    std::fs::write(p.dir.path().join("stacks/fra.yaml"), &stack).unwrap();
    let e = String::from_utf8_lossy(&p.expect(&["plan"], 3).stderr).to_string();
    assert!(
        e.contains("ssh-keygen -y -f ") && e.contains("keys/id_ed25519.pub` and point aws.ssh_public_key at"),
        "{e}"
    );
    std::fs::write(p.dir.path().join("stacks/fra.yaml"), STACK).unwrap();

    // Garbage is named as what it is, not as a private key.
    std::fs::write(p.dir.path().join("keys/id_ed25519.pub"), "hello world\n").unwrap();
    let e = String::from_utf8_lossy(&p.expect(&["plan"], 3).stderr).to_string();
    assert!(e.contains("is not an SSH public key: `hello` is not an SSH public key type"), "{e}");
    assert!(!e.contains("private key under a public key's name"), "{e}");
    assert!(e.contains("hint: a public key is one line such as `ssh-ed25519 AAAAC3"), "{e}");

    // Plan never logs in: a reviewer with the public key only can plan; up cannot deploy.
    std::fs::write(p.dir.path().join("keys/id_ed25519.pub"), PUBLIC_KEY).unwrap();
    std::fs::remove_file(p.dir.path().join("keys/id_ed25519")).unwrap();
    p.expect(&["plan"], 2);
    let out = p.expect(&["up"], 3);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("keys/id_ed25519`, the private key deploys log in with"), "{e}");
    assert!(!e.contains("checking AWS credentials"), "refused before any AWS call: {e}");
}

/// Under the emulator, instance addresses are made up: no command contacts one; each says
/// so and exits 3 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_contacts_an_address_the_emulator_made_up() {
    let p = Project::new(STACK, Moto::start(&[]));
    p.json(&["up"], 0);
    for args in [&["deploy"][..], &["logs"][..], &["rollback"][..], &["simulate", "--duration", "1s"][..]] {
        let started = Instant::now();
        let out = p.expect(args, 3);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("was made up by it, so vcctl does not contact it"), "{args:?}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?} waited: {:?}", started.elapsed());
    }
    p.json(&["destroy", "--yes"], 0);
}

/// An example admin network left in a stack is refused by plan and up at its line before
/// any AWS call; a private one is only warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_example_admin_network_is_refused_at_its_line_and_a_private_one_warned_about() {
    let p = Project::new(STACK, Moto::start(&[]));
    std::fs::write(p.dir.path().join("stacks/fra.yaml"), STACK.replace("198.18.7.7/32", "203.0.113.10/32")).unwrap();
    for args in [&["plan"][..], &["up"][..]] {
        let out = p.expect(args, 3);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("stacks/fra.yaml:6:17: aws.admin_cidrs[0]: 203.0.113.10/32 is in TEST-NET-3"), "{e}");
        assert!(e.contains("hint: put the public address you administer from here"), "{e}");
        assert!(!e.contains("checking AWS credentials"), "refused before any AWS call: {e}");
    }
    std::fs::write(p.dir.path().join("stacks/fra.yaml"), STACK.replace("198.18.7.7/32", "10.1.2.3/32")).unwrap();
    let out = p.expect(&["plan"], 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: admin_cidrs has the private network 10.1.2.3/32"),
        "{}",
        show(&out)
    );
}

/// `plan` checks what it can before anything is paid for: the instance type is sold in the
/// region and runs the artifact's architecture, and the subnet exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_checks_the_type_the_architecture_and_the_network_first() {
    let stack =
        STACK.replace("instance_type: t2.micro", "instance_type: t4g.micro\n  subnet_id: subnet-0123456789abcdef0");
    let p = Project::new(&stack, Moto::start(&[]));
    let artifact = common::service_bin();
    let out = p.expect(&["plan", "--artifact", artifact.to_str().unwrap()], 3);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("instance type t4g.micro runs aarch64, but") && e.contains("is built for x86_64"), "{e}");
    assert!(e.contains("subnet subnet-0123456789abcdef0 does not exist in eu-central-1 (aws.subnet_id)"), "{e}");
    std::fs::write(p.dir.path().join("stacks/fra.yaml"), STACK.replace("t2.micro", "t2.nonesuch")).unwrap();
    let out = p.expect(&["plan"], 3);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("instance type t2.nonesuch is not offered in eu-central-1"),
        "{}",
        show(&out)
    );
    let (ec2, _, _) = p.sdk().await;
    assert!(live_instances(&ec2).await.is_empty(), "nothing was made");
}

/// A type change interrupted between its stop and its start leaves the instance stopped:
/// `plan` shows the start, and the next `up` starts it and waits until it runs with a public
/// address. An instance stopped by hand is started the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_is_a_change_and_up_starts_it() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let state = |ec2: aws_sdk_ec2::Client| async move {
        let i = live_instances(&ec2).await.remove(0);
        let name = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
        (name, i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(), i.public_ip_address().is_some())
    };

    let file = p.dir.path().join("stacks/fra.yaml");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("t2.micro", "t2.small")).unwrap();
    let out = p.command(&["up"]).env("VCCTL_FAULT", "abort-after:instance_type").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("aborting after instance_type"), "{}", show(&out));
    assert_eq!(state(ec2.clone()).await, ("stopped".to_string(), "t2.small".to_string(), false));
    let plan = p.json(&["plan"], 2);
    let changes = plan["changes"].to_string();
    assert!(changes.contains("start (it is stopped)"), "{plan}");
    let up = p.json(&["up"], 0);
    assert_eq!(up["instance"]["state"], "running", "{up}");
    assert!(up["instance"]["public_ip"].is_string(), "{up}");
    assert_eq!(state(ec2.clone()).await, ("running".to_string(), "t2.small".to_string(), true));
    assert_eq!(p.json(&["up"], 0)["changed"], false);

    // Stopped by hand: the same.
    let id = live_instances(&ec2).await.remove(0).instance_id().unwrap().to_string();
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    p.expect(&["plan"], 2);
    p.json(&["up"], 0);
    assert_eq!(state(ec2.clone()).await.0, "running");
    p.json(&["destroy", "--yes"], 0);
}

/// moto's console output has no host keys, like a real instance's before cloud-init prints
/// them: vcctl waits for them, then refuses to connect to a host it cannot identify (and
/// sends nothing to the instance's address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_waits_for_the_instance_host_key_and_never_trusts_one_blindly() {
    let p = Project::new(STACK, Moto::start(&[]));
    p.json(&["up"], 0);
    p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let started = std::time::Instant::now();
    let watch = recorded::Watch::start(&p).await;
    let out = p
        .command(&["deploy", "--artifact", "no-such-file"])
        .env("VCCTL_HOST_KEY_TIMEOUT", "3s")
        // Under the emulator a test maps the stack's host; its key is looked for first.
        .env("VCCTL_TEST_AWS_HOST", "127.0.0.1")
        // As GitHub Actions runs it, with the deploy role (recorded.rs).
        .env("AWS_ACCESS_KEY_ID", recorded::CI_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    // Reading the console output is what the role's ReadItsHostKeys allows, and needs.
    let (_, asked) = watch.authorizations(recorded::CI_KEY).await;
    let policy = recorded::role_policy(&p, "vcctl-deploy-fra", "vcctl-deploy").await;
    assert_eq!(iam_eval::denials(&policy, &asked), Vec::<String>::new());
    let mut without = policy.clone();
    without["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != "ReadItsHostKeys");
    let denied = iam_eval::denials(&without, &asked);
    assert!(denied.iter().any(|d| d.contains("ec2:GetConsoleOutput")), "{denied:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("has printed no SSH host key to its console output within 3s"), "{e}");
    assert!(e.contains("hint:") && e.contains("`aws.host_key`"), "{e}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "it waited for the key");
    assert!(!p.dir.path().join(".vcctl/aws/fra/known_hosts").exists(), "nothing pinned");
    p.json(&["destroy", "--yes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_protection_blocks_destroy_and_names_the_setting() {
    let stack = STACK.replace("termination_protection: false", "termination_protection: true");
    let p = Project::new(&stack, Moto::start(&[]));
    p.json(&["up"], 0);
    let out = p.expect(&["destroy", "--yes"], 9);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("termination protection on; nothing was deleted"), "{err}");
    assert!(err.contains("hint: set `aws.termination_protection: false`"), "{err}");
    let (ec2, _, _) = p.sdk().await;
    assert_eq!(live_instances(&ec2).await.len(), 1);
    // Turning it off in the stack file (its id kept) and running up makes destroy possible.
    let file = p.dir.path().join("stacks/fra.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("termination_protection: true", "termination_protection: false")).unwrap();
    p.json(&["up"], 0);
    p.json(&["destroy", "--yes"], 0);
    assert!(live_instances(&ec2).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_refused_credentials_exit_4_with_a_clear_message() {
    // Moto checks signatures against its own IAM when asked to: unknown keys are refused.
    let p = Project::new(STACK, Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]));
    let out = p.run(&["plan"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AWS refused sts:GetCallerIdentity for the credentials from the environment (AWS_ACCESS_KEY_ID)"),
        "names where the refused credentials came from: {err}"
    );
    assert!(err.contains("hint: check `aws sts get-caller-identity`"), "{err}");

    let out =
        p.command(&["plan"]).env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // What was there is said as it was: the region is set, the metadata was not asked.
    assert!(err.contains("error: no AWS credentials: the environment has no AWS_ACCESS_KEY_ID (only "), "{err}");
    assert!(err.contains("AWS_REGION") && err.contains("~/.aws has no profiles"), "{err}");
    assert!(err.contains("the instance metadata was not asked (AWS_EC2_METADATA_DISABLED=true)"), "{err}");
    assert!(err.contains("hint: run `aws configure sso`"), "{err}");
    // (Beside plan's warning of plain HTTP, which it says first.)
    let said = err.lines().filter(|l| !l.starts_with("warning: ")).count();
    assert!(!err.contains("DispatchFailure") && said <= 4, "one or two lines, no SDK dump:\n{err}");
    let out = p
        .command(&["plan", "-v"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).lines().count() > 5, "-v shows the SDK's account:\n{}", show(&out));
    a_missing_profile_and_an_unreachable_endpoint_are_named(&p);
}

fn a_missing_profile_and_an_unreachable_endpoint_are_named(p: &Project) {
    let out = p
        .command(&["plan"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_PROFILE", "prod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AWS_PROFILE names profile `prod`, which neither ~/.aws/config nor ~/.aws/credentials has"),
        "{err}"
    );
    assert!(err.contains("hint: make it (`aws configure sso --profile prod`"), "{err}");

    // Nothing listens there: said within seconds, with the endpoint and the cause.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let started = std::time::Instant::now();
    let out = p.command(&["plan"]).env("AWS_ENDPOINT_URL", format!("http://{dead}")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(
        err.contains(&format!("error: cannot reach http://{dead} (AWS_ENDPOINT_URL) for sts:GetCallerIdentity")),
        "{err}"
    );
    let said = err.lines().filter(|l| !l.starts_with("warning: ")).count();
    assert!(err.contains("Connection refused") && !err.contains("DispatchFailure") && said <= 4, "{err}");
}

/// `tls:` on an AWS stack: 443 and 80 open to the world and the service's port closed, shown
/// by `plan` as changes and made by `up`; without it, `up` warns that traffic is unencrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_opens_https_closes_the_service_port_and_plain_http_is_warned_about() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    // Said at the first plan already, before anything exists.
    let warning = "has no `tls:` section: vehicles' tokens and VINs cross the internet unencrypted";
    assert!(common::stderr(&p.expect(&["plan"], 2)).contains(warning));
    let out = p.expect(&["up"], 0);
    assert!(common::stderr(&out).contains(warning));
    let file = p.dir.path().join("stacks/fra.yaml");
    let tls = "tls:\n  domain: vc.example.com\n  email: ops@example.com\n";
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + tls).unwrap();
    let plan = p.json(&["plan"], 2);
    let mut changes: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["action"].as_str().unwrap(), c["detail"].as_str().unwrap()))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            "create tcp/443 from 0.0.0.0/0 (HTTPS for vehicle apps and gateways)",
            "delete tcp/8000 from 0.0.0.0/0 (vehicleconnect API): not in the stack file (added by hand, or no longer asked for)",
        ]
    );
    let out = p.expect(&["up"], 0);
    assert!(!common::stderr(&out).contains("unencrypted"), "{}", show(&out));
    let ports: Vec<i32> = sg_rules(&ec2).await.iter().map(|r| r.0).collect();
    assert_eq!(ports, [22, 80, 443, 9090]);
    p.json(&["destroy", "--yes"], 0);
}

/// The stack's Elastic IPs: (allocation id, address, associated instance).
async fn stack_addresses(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String, Option<String>)> {
    let out = ec2.describe_addresses().filters(stack_filter()).send().await.unwrap();
    out.addresses()
        .iter()
        .map(|a| {
            let instance = a.instance_id().filter(|i| !i.is_empty()).map(str::to_string);
            (a.allocation_id().unwrap().to_string(), a.public_ip().unwrap().to_string(), instance)
        })
        .collect()
}

/// The Elastic IP: the instance's address, the same after a stop and start, kept by
/// `destroy --keep-data` and taken by the next instance, released by a plain `destroy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elastic_ip_outlives_a_stop_and_start_and_a_destroy_that_keeps_data() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    let up = p.json(&["up"], 0);
    let addresses = stack_addresses(&ec2).await;
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    let (allocation, ip, instance) = addresses[0].clone();
    assert_eq!(instance.as_deref(), up["instance"]["id"].as_str(), "associated with the stack's instance");
    let public_ip = |i: &aws_sdk_ec2::types::Instance| i.public_ip_address().unwrap_or_default().to_string();
    assert_eq!(public_ip(&live_instances(&ec2).await[0]), ip, "the instance's address is the Elastic IP");
    let id = instance.unwrap();
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    ec2.start_instances().instance_ids(&id).send().await.unwrap();
    // (moto makes up a new public address at a start even so; AWS keeps the Elastic IP's.)
    assert_eq!(stack_addresses(&ec2).await, [(allocation.clone(), ip.clone(), Some(id.clone()))], "still associated");
    assert_eq!(p.json(&["plan"], 0)["changes"], serde_json::json!([]), "nothing to repair");
    let status = p.json(&["status"], 1);
    assert_eq!(status["elastic_ip"]["public_ip"], ip.as_str(), "{status}");

    let gone = p.json(&["destroy", "--yes", "--keep-data"], 0);
    assert!(
        gone["kept"].as_array().unwrap().contains(&serde_json::json!(format!("Elastic IP {ip} ({allocation})"))),
        "{gone}"
    );
    assert!(live_instances(&ec2).await.is_empty());
    let kept: Vec<(String, String)> = stack_addresses(&ec2).await.into_iter().map(|(a, i, _)| (a, i)).collect();
    assert_eq!(kept, [(allocation.clone(), ip.clone())], "the address is kept");

    let up = p.json(&["up"], 0);
    assert_eq!(
        stack_addresses(&ec2).await,
        [(allocation, ip.clone(), up["instance"]["id"].as_str().map(str::to_string))],
        "the new instance takes the kept address"
    );
    p.json(&["destroy", "--yes"], 0);
    assert!(stack_addresses(&ec2).await.is_empty());
}

/// The stack's data volumes, as the SDK reads them.
pub async fn data_volumes(ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Volume> {
    let out = ec2
        .describe_volumes()
        .filters(stack_filter())
        .filters(Filter::builder().name("tag:vcctl:role").values("data").build())
        .send()
        .await
        .unwrap();
    out.volumes().iter().filter(|v| v.state().is_none_or(|s| s.as_str() != "deleting")).cloned().collect()
}

/// Sets `aws.data_volume_gb` in the project's stack file (in place: the `id:` line stays).
fn set_data_volume_gb(p: &Project, gb: u32) {
    let file = p.dir.path().join("stacks/fra.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text: String = text.lines().filter(|l| !l.contains("data_volume_gb")).map(|l| format!("{l}\n")).collect();
    let text = text.replace(
        "  termination_protection: false\n",
        &format!("  termination_protection: false\n  data_volume_gb: {gb}\n"),
    );
    std::fs::write(&file, text).unwrap();
}

/// The data volume: encrypted gp3, tagged, attached but not deleted with the instance;
/// grown online by `up`, never shrunk; kept by `destroy --keep-data` and attached to the next
/// instance (launched in its zone); deleted by a plain `destroy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_volume_outlives_the_instance_grows_and_never_shrinks() {
    let p = Project::new(STACK, Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    let up = p.json(&["up"], 0);
    let instance = up["instance"]["id"].as_str().unwrap().to_string();
    let volumes = data_volumes(&ec2).await;
    assert_eq!(volumes.len(), 1);
    let v = &volumes[0];
    let id = v.volume_id().unwrap().to_string();
    assert_eq!((v.size(), v.encrypted(), v.volume_type().map(|t| t.as_str())), (Some(20), Some(true), Some("gp3")));
    let tag = |k: &str| v.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    assert_eq!((tag("vcctl:stack"), tag("vcctl:role")), (Some("fra".into()), Some("data".into())));
    assert_eq!(tag("vcctl:stack-id"), Some(p.stack_id()));
    let attachment = &v.attachments()[0];
    assert_eq!(attachment.instance_id(), Some(instance.as_str()));
    // AWS answers false for a volume attached after launch; moto leaves the field out.
    assert_ne!(attachment.delete_on_termination(), Some(true), "kept when the instance goes");

    set_data_volume_gb(&p, 30);
    let plan = p.json(&["plan"], 2);
    assert!(plan["changes"].to_string().contains("20 GB → 30 GB"), "{plan}");
    p.json(&["up"], 0);
    assert_eq!(data_volumes(&ec2).await[0].size(), Some(30));
    set_data_volume_gb(&p, 10);
    let out = p.expect(&["plan"], 3);
    assert!(
        common::stderr(&out).contains("EBS volumes cannot shrink")
            && common::stderr(&out).contains("hint: set aws.data_volume_gb: 30"),
        "{}",
        show(&out)
    );
    set_data_volume_gb(&p, 30);

    let gone = p.json(&["destroy", "--yes", "--keep-data"], 0);
    common::check_schema("destroy", &gone);
    assert!(gone["kept"].to_string().contains(&format!("data volume {id} (30 GB)")), "{gone}");
    let kept = data_volumes(&ec2).await;
    assert_eq!((kept.len(), kept[0].volume_id()), (1, Some(id.as_str())), "kept");
    let zone = kept[0].availability_zone().unwrap().to_string();

    let up = p.json(&["up"], 0);
    let volumes = data_volumes(&ec2).await;
    assert_eq!(volumes.len(), 1, "no second volume");
    assert_eq!(volumes[0].volume_id(), Some(id.as_str()), "the same volume");
    assert_eq!(
        volumes[0].attachments()[0].instance_id(),
        up["instance"]["id"].as_str(),
        "attached to the new instance"
    );
    let new = live_instances(&ec2).await;
    assert_eq!(new[0].placement().unwrap().availability_zone(), Some(zone.as_str()), "launched in the volume's zone");
    p.json(&["destroy", "--yes"], 0);
    assert!(data_volumes(&ec2).await.is_empty());
}

/// `vcctl backup` snapshots the data volume (tagged, listed); `vcctl restore` makes a volume
/// from the snapshot and swaps it in on the instance (the test host, whose loop device stands
/// in for both volumes: the swap's orchestration is what is checked there, the data in a
/// snapshot is EBS's), keeps the old one tagged, and checks the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_test_host_backup_and_restore_swap_the_data_volume() {
    let p = Project::new(&on_demand_stack(), Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let host = common::test_host().addr;
    let on_host = |args: &[&str]| {
        p.command(args).env("VCCTL_TEST_AWS_HOST", &host).args(["--ssh-from", "198.18.0.12"]).output().unwrap()
    };
    let out = on_host(&["deploy", "--artifact", common::service_bin().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let old = data_volumes(&ec2).await[0].volume_id().unwrap().to_string();

    let out = p.expect(&["backup"], 0);
    let snap = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(snap.starts_with("snap-"), "{}", show(&out));
    let listed = p.json(&["backup", "--list"], 0);
    assert_eq!(listed["snapshots"][0]["id"], snap.as_str(), "{listed}");
    assert_eq!(listed["snapshots"][0]["volume_id"], old.as_str());
    let status = p.json(&["status"], 1);
    assert_eq!(status["last_backup"]["id"], snap.as_str(), "{status}");
    let refused = p.run(&["restore", &snap]);
    assert_eq!(refused.status.code(), Some(8), "asks first: {}", show(&refused));

    let out = on_host(&["restore", &snap, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = done["volume"].as_str().unwrap().to_string();
    assert_eq!(done["replaced"], old.as_str());
    let volumes = data_volumes(&ec2).await;
    assert_eq!(volumes.len(), 1, "one data volume serves");
    assert_eq!((volumes[0].volume_id(), volumes[0].snapshot_id()), (Some(new.as_str()), Some(snap.as_str())));
    assert_eq!(volumes[0].attachments()[0].instance_id(), live_instances(&ec2).await[0].instance_id());
    let kept = ec2.describe_volumes().volume_ids(&old).send().await.unwrap();
    let role = kept.volumes()[0].tags().iter().find(|t| t.key() == Some("vcctl:role")).and_then(|t| t.value());
    assert_eq!(role, Some("data-replaced"), "the old volume is kept, tagged");
    assert_eq!(common::on_host("findmnt -no SOURCE /var/lib/postgresql").trim(), "/dev/xvdf", "mounted again by label");
    let audit = on_host(&["audit", "-n", "1", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(
        (audit["entries"][0]["action"].as_str(), audit["entries"][0]["subject"].as_str()),
        (Some("restore"), Some(snap.as_str()))
    );
    p.json(&["destroy", "--yes"], 0);
}

/// `alerts: {email}`: an SNS topic per stack, tagged, subscribed by that address, the action
/// of every alarm; `status` says the subscription awaits confirmation; a changed address is
/// subscribed (the old one removed once it had confirmed); `destroy` deletes the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_notify_the_stacks_topic_and_its_email() {
    let p = Project::new(&format!("{STACK}alerts:\n  email: ops@example.com\n"), Moto::start(&[]));
    let (_, _, cw) = p.sdk().await;
    let sns = aws_sdk_sns::Client::new(&p.sdk_config().await);
    p.json(&["up"], 0);
    let topics = sns.list_topics().send().await.unwrap();
    let arns: Vec<&str> = topics.topics().iter().filter_map(|t| t.topic_arn()).collect();
    assert_eq!(arns, ["arn:aws:sns:eu-central-1:123456789012:vcctl-fra-alerts"]);
    let topic = arns[0].to_string();
    let tags = sns.list_tags_for_resource().resource_arn(&topic).send().await.unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == "vcctl:stack-id" && t.value() == p.stack_id()));
    let subs = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    let endpoints: Vec<(&str, &str)> =
        subs.subscriptions().iter().map(|s| (s.protocol().unwrap(), s.endpoint().unwrap())).collect();
    assert_eq!(endpoints, [("email", "ops@example.com")]);
    let alarms = cw.describe_alarms().alarm_name_prefix("vcctl-fra-").send().await.unwrap();
    assert_eq!(alarms.metric_alarms().len(), 3, "CPU, status check, disk");
    for a in alarms.metric_alarms() {
        assert!(
            a.alarm_actions().contains(&topic),
            "{} notifies the topic: {:?}",
            a.alarm_name().unwrap(),
            a.alarm_actions()
        );
    }
    assert_eq!(p.json(&["plan"], 0)["changes"], serde_json::json!([]), "converged");
    let status = p.json(&["status"], 1);
    assert_eq!(status["alerts"]["subscriptions"][0]["endpoint"], "ops@example.com", "{status}");
    a_deploy_tells_the_topic_whatever_its_outcome(&p, &sns, &topic).await;

    p.json(&["destroy", "--yes"], 0);
    assert!(sns.list_topics().send().await.unwrap().topics().is_empty(), "the topic is deleted");
}

/// Every deploy tells the stack's topic who ran it, what, the release and how it ended,
/// whatever the outcome: here a deploy the emulator's made-up address refuses (exit 3),
/// read back through an HTTP subscription, which moto delivers to.
async fn a_deploy_tells_the_topic_whatever_its_outcome(p: &Project, sns: &aws_sdk_sns::Client, topic: &str) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/sns", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(&stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let _ = std::io::Write::write_all(&mut &stream, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    sns.subscribe().topic_arn(topic).protocol("http").endpoint(&url).send().await.unwrap();
    p.expect(&["deploy"], 3);
    let sent: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).expect("a message")).unwrap();
    let subject = sent["Subject"].as_str().unwrap_or_default();
    assert_eq!(subject, "vcctl deploy of fra: FAILED (release none)", "{sent}");
    let message = sent["Message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("vcctl deploy of stack fra failed: ") && message.contains("was made up by it"),
        "{message}"
    );
    assert!(message.contains("\nby: ") && message.contains("\ntook: "), "{message}");
}
