//! vcctl against moto: on-demand SSH: a port-22 rule per command, its lease, closed on every way out.

use super::*;

fn leases(tags: &[(String, String)]) -> Vec<&(String, String)> {
    tags.iter().filter(|(k, _)| k.starts_with("vcctl:lease:")).collect()
}

/// Sends `signal` to `child` and returns its exit code.
fn signal(child: &mut Child, signal: &str) -> Option<i32> {
    Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    child.wait().unwrap().code()
}

/// A one-answer HTTP server on loopback, as an address detector: it says `address`.
fn detector(address: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = format!("{address}\n");
            let _ = std::io::Write::write_all(
                &mut stream,
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                    .as_bytes(),
            );
        }
    });
    url
}

/// On-demand SSH against moto and the real SSH test host: no port 22 at rest; one tagged
/// /32 rule while commands run, shared by two from one address; SIGINT closes it at once;
/// SIGKILL leaves it until its lease ends, which `plan` reports and `up` then removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_test_host_ssh_opens_per_command_and_closes_on_every_way_out() {
    let p = Project::new(&on_demand_stack(), Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let ports: Vec<i32> = sg_rules(&ec2).await.iter().map(|r| r.0).collect();
    assert_eq!(ports, [80, 8000], "no SSH and no Prometheus at rest");
    common::on_host("systemctl start prometheus");

    let from = [("VCCTL_SSH_FROM", "198.18.0.9")];
    let (mut a, url) = p.tunnel(&from);
    let rules = ssh_rules(&ec2).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].0, "198.18.0.9/32");
    assert!(
        rules[0].1.starts_with("vcctl on-demand SSH for ") && rules[0].1.contains("(vcctl tunnel) until 20"),
        "{}",
        rules[0].1
    );
    assert!(rules[0].2.contains(&("vcctl:temporary".into(), "ssh".into())), "{:?}", rules[0].2);
    assert!(rules[0].2.iter().any(|(k, v)| k == "vcctl:stack-id" && *v == p.stack_id()));
    let answer = common::http().get(format!("{url}-/healthy")).send().await.expect("Prometheus through the tunnel");
    assert_eq!(answer.status(), 200);

    // A second command from the same address shares the rule (AWS keeps one per address).
    let (mut b, _) = p.tunnel(&from);
    let rules = ssh_rules(&ec2).await;
    assert_eq!((rules.len(), leases(&rules[0].2).len()), (1, 2), "{rules:?}");
    assert_eq!(signal(&mut a, "INT"), Some(130));
    let rules = ssh_rules(&ec2).await;
    assert_eq!((rules.len(), leases(&rules[0].2).len()), (1, 1), "the other command still holds it: {rules:?}");
    assert_eq!(signal(&mut b, "INT"), Some(130));
    assert_eq!(ssh_rules(&ec2).await.len(), 0, "the last one out closed it");

    // SIGKILL: nothing closes the rule; its lease ends, then `up` removes it.
    let (mut c, _) = p.tunnel(&[("VCCTL_ADDRESS_DETECTOR", &detector("198.18.0.10"))]);
    assert_eq!(signal(&mut c, "KILL"), None);
    let rules = ssh_rules(&ec2).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].0, "198.18.0.10/32", "the detector's answer was admitted");
    let plan = p.json(&["plan"], 0);
    assert_eq!(plan["temporary_ssh_rules"].as_array().unwrap().len(), 1, "{plan}");
    // Fifteen minutes later, as far as the lease says.
    let rule_id = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("tag:vcctl:temporary").values("ssh").build())
        .send()
        .await
        .unwrap()
        .security_group_rules()[0]
        .security_group_rule_id()
        .unwrap()
        .to_string();
    let (key, _) = leases(&rules[0].2)[0].clone();
    let ended = aws_sdk_ec2::types::Tag::builder().key(key).value("2026-01-01T00:00:00Z").build();
    ec2.create_tags().resources(&rule_id).tags(ended).send().await.unwrap();
    let plan = p.json(&["plan"], 2);
    let detail = plan["changes"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("temporary SSH access, expired 2026-01-01T00:00:00Z"), "{plan}");
    p.json(&["up"], 0);
    assert_eq!(ssh_rules(&ec2).await.len(), 0, "up removed the expired rule");
    p.json(&["destroy", "--yes"], 0);
}

/// A deploy through on-demand SSH: exactly one rule while it runs, none after, and the
/// GitHub step summary says which address was admitted and that it was closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_test_host_a_deploy_opens_ssh_for_its_address_and_closes_it() {
    // Where the host reaches it: the host publishes the data volume's use to CloudWatch.
    let peer = std::env::var("VC_TEST_HOST_PEER").expect("VC_TEST_HOST_PEER (scripts/test-host)");
    let p = Project::new(&on_demand_stack(), Moto::start_on(&peer, &[]));
    let (ec2, _, cw) = p.sdk().await;
    p.json(&["up"], 0);
    p.json(&["ci", "init", "--repo", "acme/vehicleconnect"], 0);
    let summary = p.dir.path().join("summary.md");
    let watch = recorded::Watch::start(&p).await;
    // As GitHub Actions runs it: with the deploy role's credentials (its own key here).
    let mut deploy = p
        .command(&["deploy", "--artifact", common::service_bin().to_str().unwrap(), "--ssh-from", "198.18.0.11"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("AWS_ACCESS_KEY_ID", recorded::CI_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let status = loop {
        for (cidr, description, _) in ssh_rules(&ec2).await {
            seen.insert((cidr, description.split(" until ").next().unwrap().to_string()));
        }
        if let Some(status) = deploy.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = deploy.wait_with_output().unwrap();
    let (_, asked) = watch.authorizations(recorded::CI_KEY).await;
    let policy = recorded::role_policy(&p, "vcctl-deploy-fra", "vcctl-deploy").await;
    // The stack pins the host key, so its console output is not read here: ReadItsHostKeys
    // is shown needed by single::a_deploy_waits_for_the_instance_host_key_and_never_trusts_one_blindly.
    let wrong = iam_eval::exactly_needed_but(&policy, &asked, &["ReadItsHostKeys"]);
    assert!(wrong.is_empty(), "the CI deploy role's policy against what a deploy asks:\n{}", wrong.join("\n"));
    assert_eq!(status.code(), Some(0), "{}", show(&out));
    let who = seen.iter().next().map(|(_, d)| d.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 1, "one rule during the deploy: {seen:?}");
    assert_eq!(seen.iter().next().unwrap().0, "198.18.0.11/32");
    assert!(who.starts_with("vcctl on-demand SSH for ") && who.ends_with("(vcctl deploy)"), "{who}");
    assert_eq!(ssh_rules(&ec2).await.len(), 0, "closed after the deploy");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("SSH (22) was opened for `198.18.0.11/32` during this run and is closed again"), "{md}");
    eprintln!("on-demand SSH timings: {}", md.lines().find(|l| l.contains("opening took")).unwrap_or_default());

    // `status` as on the other providers: the infrastructure, then the host's view (over
    // SSH opened for the command): releases, what a rollback would pick, KPIs.
    let out = p
        .command(&["status", "--json", "--ssh-from", "198.18.0.11"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "healthy: {}", show(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["instance", "elastic_ip", "security_group", "alarms", "service"] {
        assert!(!status[key].is_null(), "status has `{key}`: {status}");
    }
    assert!(status["service"]["release"].is_string() && status["service"]["releases"].is_array(), "{status}");
    assert!(status["service"]["kpis_ready"].is_boolean() && status["service"].get("rollback_to").is_some(), "{status}");
    assert_eq!(status["service"]["healthy"], true);
    assert_eq!(ssh_rules(&ec2).await.len(), 0, "status closed SSH again");

    // PostgreSQL's data on the data volume (a loop device standing in for it as /dev/xvdf),
    // mounted by its label; a new instance with the kept volume finds the events there.
    assert_eq!(common::on_host("findmnt -no SOURCE /var/lib/postgresql").trim(), "/dev/xvdf");
    assert!(common::on_host("cat /etc/fstab").contains("LABEL=vcdata /var/lib/postgresql ext4"));
    assert!(status["service"]["data_volume_usage"]["size_bytes"].as_u64().unwrap() > 0, "{status}");
    the_host_publishes_the_data_volumes_use(&p, &cw).await;
    let psql = "runuser -u postgres -- psql -d vehicleconnect -tAc";
    common::on_host(&format!(
        "{psql} \"INSERT INTO api_events (ts, endpoint, status_code, response_time_ms, client_id) VALUES (now(), '/kept-marker', 200, 1, 'c')\""
    ));
    let marker =
        format!("{psql} \"SELECT count(*) FROM api_events WHERE endpoint = '/kept-marker'\" 2>/dev/null || echo 0");
    // (The loop device outlives the test host's resets, as a kept volume does: count, not 1.)
    let on_volume = common::on_host(&marker).trim().to_string();
    assert_ne!(on_volume, "0");
    // As a new instance sees it: its own empty cluster, no mount, no fstab line.
    common::on_host(
        "systemctl stop postgresql 'postgresql@*' && umount /var/lib/postgresql && sed -i '/vcdata/d' /etc/fstab && systemctl start postgresql",
    );
    assert_eq!(common::on_host(&marker).trim(), "0", "not on the root volume");
    let v2 = p.dir.path().join("v2");
    common::new_build(&v2, b"v2");
    let out = p
        .command(&["deploy", "--artifact", v2.to_str().unwrap(), "--ssh-from", "198.18.0.11"])
        .env("VCCTL_TEST_AWS_HOST", common::test_host().addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(common::on_host(&marker).trim(), on_volume, "the kept volume's events are there");
    p.json(&["destroy", "--yes"], 0);
}

/// The host's two timers, their services run now (with the emulator's endpoint and keys
/// instead of the instance role): the disk-nearly-full alarm's metric, the volume's use as df
/// counts it under the dimension the alarm watches; and the SSH sweep, which closes the
/// temporary rules whose leases ended (or end too far ahead) and keeps the one still held.
/// Every call is one the instance role's policy allows, and each of its statements is needed.
async fn the_host_publishes_the_data_volumes_use(p: &Project, cw: &aws_sdk_cloudwatch::Client) {
    assert_eq!(common::on_host("systemctl is-enabled vehicleconnect-disk-metric.timer").trim(), "enabled");
    assert_eq!(common::on_host("systemctl is-enabled vehicleconnect-ssh-sweep.timer").trim(), "enabled");
    let (ec2, _, _) = p.sdk().await;
    leftover_rules(&ec2).await;
    let alarms = cw.describe_alarms().alarm_names("vcctl-fra-data-disk-full").send().await.unwrap();
    let alarm = &alarms.metric_alarms()[0];
    assert_eq!((alarm.namespace(), alarm.metric_name()), (Some("VehicleConnect/fra"), Some("DataVolumeUsedPercent")));
    let dimension = &alarm.dimensions()[0];
    assert_eq!((dimension.name(), dimension.value()), (Some("Stack"), Some("fra")));
    common::on_host(&format!(
        "printf 'AWS_ENDPOINT_URL={}\\nAWS_ACCESS_KEY_ID={}\\nAWS_SECRET_ACCESS_KEY=testing\\n' > /etc/vehicleconnect/aws.env",
        p.moto.url,
        recorded::INSTANCE_KEY
    ));
    let watch = recorded::Watch::start(p).await;
    let ran = common::on_host(
        "systemctl start vehicleconnect-disk-metric.service vehicleconnect-ssh-sweep.service; r=$?; rm -f /etc/vehicleconnect/aws.env; \
         journalctl -u vehicleconnect-disk-metric -u vehicleconnect-ssh-sweep -n 10 --no-pager -o cat; exit $r",
    );
    // What the host asked, against the instance role's policy as vcctl wrote it.
    let (calls, asked) = watch.authorizations(recorded::INSTANCE_KEY).await;
    assert!(!calls.is_empty(), "the host called AWS: {ran}");
    let policy = recorded::role_policy(p, "vcctl-fra-host", "vcctl-fra-least-privilege").await;
    let wrong = iam_eval::exactly_needed(&policy, &asked);
    assert!(wrong.is_empty(), "the instance role's policy against what the host asks:\n{}", wrong.join("\n"));
    let left: Vec<String> = ssh_rules(&ec2).await.into_iter().map(|(cidr, ..)| cidr).collect();
    assert_eq!(left, ["198.18.0.23/32"], "the sweep closed the ended and the dishonest lease: {ran}");
    let df = common::on_host("df --output=pcent /var/lib/postgresql | tail -n 1");
    let df: f64 = df.trim().trim_end_matches('%').parse().unwrap();
    let now = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
    let stats = cw
        .get_metric_statistics()
        .namespace("VehicleConnect/fra")
        .metric_name("DataVolumeUsedPercent")
        .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("Stack").value("fra").build())
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now.secs() - 600))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now.secs() + 60))
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .unwrap();
    let published: Vec<f64> = stats.datapoints().iter().filter_map(|d| d.maximum()).collect();
    assert_eq!(published.len(), 1, "one datapoint: {ran}");
    // df rounds its percentage up.
    assert!((published[0] - df).abs() <= 1.0, "published {} %, df says {df} %: {ran}", published[0]);
}

/// An address detector that answers nonsense, or far too much, is refused with what it said
/// and the way around it, before any rule is opened (its answer is read up to 256 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_answering_nonsense_or_too_much_opens_nothing() {
    let p = Project::new(&STACK.replace("  admin_cidrs: [198.18.7.7/32]\n", ""), Moto::start(&[]));
    let (ec2, _, _) = p.sdk().await;
    p.json(&["up"], 0);
    let long: &'static str = Box::leak("9".repeat(100_000).into_boxed_str());
    for (answer, said) in [("<html>captive portal</html>", "expected one IP address"), (long, "longer than 256 bytes")]
    {
        let out = p.command(&["logs", "-n", "1"]).env("VCCTL_ADDRESS_DETECTOR", detector(answer)).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        let e = common::stderr(&out);
        assert!(e.contains("could not learn this machine's public address") && e.contains(said), "{e}");
        assert!(e.contains("hint: pass --ssh-from ADDRESS"), "{e}");
        assert!(ssh_rules(&ec2).await.is_empty(), "nothing opened");
    }
    p.json(&["destroy", "--yes"], 0);
}
