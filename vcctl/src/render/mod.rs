//! Files rendered onto hosts, from `templates/`: one small function with named
//! `{{placeholders}}`; a placeholder without a value is an error, never left in the output.

pub mod config;

use anyhow::{Result, bail};

pub const CLOUD_INIT: &str = include_str!("../../../templates/cloud-init.yaml");
pub const PROMETHEUS: &str = include_str!("../../../templates/prometheus.yml");
pub const BOOT: &str = include_str!("../../../templates/boot.sh");
pub const PROMETHEUS_GROUP: &str = include_str!("../../../templates/prometheus-group.yml");
/// The alert rules every shape's Prometheus loads, and where a host keeps them.
pub const PROMETHEUS_RULES: &str = include_str!("../../../templates/prometheus-rules.yml");
pub const PROMETHEUS_RULES_PATH: &str = "/etc/prometheus/vehicleconnect-rules.yml";

pub const CADDYFILE: &str = include_str!("../../../templates/caddy/Caddyfile");
pub const CADDYFILE_LB: &str = include_str!("../../../templates/caddy/Caddyfile.lb");
pub const APP_FIREWALL: &str = include_str!("../../../templates/nftables/app.nft");
pub const FIREWALL_UNIT: &str = include_str!("../../../templates/systemd/vehicleconnect-firewall.service");
/// Where Caddy finds the roots it trusts for the ACME server (`tls.trust_ca`).
pub const ACME_ROOTS: &str = "/etc/caddy/vcctl-acme-roots.pem";

pub const SERVICE_UNIT: &str = include_str!("../../../templates/systemd/vehicleconnect.service");
pub const SOCKET_UNIT: &str = include_str!("../../../templates/systemd/vehicleconnect.socket");
pub const DISK_METRIC_SERVICE: &str = include_str!("../../../templates/systemd/vehicleconnect-disk-metric.service");
pub const SHIP_LOGS_SERVICE: &str = include_str!("../../../templates/systemd/vehicleconnect-logs.service");
pub const DISK_METRIC_TIMER: &str = include_str!("../../../templates/systemd/vehicleconnect-disk-metric.timer");
pub const SSH_SWEEP_SERVICE: &str = include_str!("../../../templates/systemd/vehicleconnect-ssh-sweep.service");
pub const SSH_SWEEP_TIMER: &str = include_str!("../../../templates/systemd/vehicleconnect-ssh-sweep.timer");

/// The systemd units (without `.service` or `.socket`) of the serving release and of a
/// candidate release, which listens on its host while it is checked (loopback only).
pub const SERVING_UNIT: &str = "vehicleconnect";
pub const CANDIDATE_UNIT: &str = "vehicleconnect-candidate";
pub const CANDIDATE_PORT: u16 = 18000;

/// The units of a stack's host, as (path, content): the service and its socket, the same
/// pair for a candidate release and, on AWS, the data volume's metric and its timer.
/// `fleet_app`: an app host of a fleet, whose database is on another host and which only the
/// load balancer reaches (its own port only; port 80 is the load balancer's).
pub fn units(settings: &crate::settings::Settings, fleet_app: bool) -> Result<Vec<(String, String)>> {
    units_with_metrics(settings, fleet_app, None)
}

/// The port an Auto Scaling group's instances serve `/metrics` on, apart from the service's
/// (which admits the load balancer only): the instances' Prometheus scrape each other there.
pub const METRICS_PORT: u16 = 9464;

/// [`units`], the serving release also serving its metrics on `metrics` (`host:port`,
/// `--metrics-listen`); never the candidate, which runs beside it.
pub fn units_with_metrics(
    settings: &crate::settings::Settings,
    fleet_app: bool,
    metrics: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let port = settings.port.to_string();
    let kpi = humantime::format_duration(settings.kpi_interval).to_string().replace(' ', "");
    let retention = humantime::format_duration(settings.retention).to_string().replace(' ', "");
    // Behind Caddy (`tls:`) on loopback only; else on every address, port 80 too.
    let serving = match (&settings.tls, fleet_app) {
        (_, true) => format!("ListenStream=0.0.0.0:{port}"),
        (Some(_), false) => format!("ListenStream=127.0.0.1:{port}"),
        (None, false) => format!("ListenStream=0.0.0.0:{port}\nListenStream=0.0.0.0:80"),
    };
    let database_unit = if fleet_app { "" } else { " postgresql.service" };
    let candidate = format!("ListenStream=127.0.0.1:{CANDIDATE_PORT}");
    let environment = environment_lines(&settings.env);
    let mut out = Vec::new();
    for (unit, role, link, listen) in [
        (SERVING_UNIT, "serving", "current", serving.as_str()),
        (CANDIDATE_UNIT, "candidate", "candidate", candidate.as_str()),
    ] {
        let values = [
            ("stack", settings.stack.as_str()),
            ("service_port", &port),
            ("kpi_interval", &kpi),
            ("retention", &retention),
            ("unit", unit),
            ("role", role),
            ("candidate", if unit == CANDIDATE_UNIT { "true" } else { "false" }),
            ("link", link),
            ("listen", listen),
            ("environment", &environment),
            ("database_unit", database_unit),
            ("metrics_listen", &metrics_line(unit, metrics)),
        ];
        out.push((format!("/etc/systemd/system/{unit}.service"), render(SERVICE_UNIT, &values)?));
        out.push((format!("/etc/systemd/system/{unit}.socket"), render(SOCKET_UNIT, &values)?));
    }
    // AWS: the data volume's use to CloudWatch, for the disk-nearly-full alarm; and the
    // host closing expired on-demand SSH rules, every minute.
    if let crate::stack::Provider::Aws(aws) = &settings.provider {
        let values = [("stack", settings.stack.as_str()), ("region", &aws.region())];
        for (name, ext, template) in [
            ("disk-metric", "service", DISK_METRIC_SERVICE),
            ("disk-metric", "timer", DISK_METRIC_TIMER),
            ("ssh-sweep", "service", SSH_SWEEP_SERVICE),
            ("ssh-sweep", "timer", SSH_SWEEP_TIMER),
        ] {
            out.push((format!("/etc/systemd/system/vehicleconnect-{name}.{ext}"), render(template, &values)?));
        }
        // `scale:`: the instances' lines outlive them, in the stack's CloudWatch Logs group.
        if aws.scale.is_some() {
            out.push(("/etc/systemd/system/vehicleconnect-logs.service".into(), render(SHIP_LOGS_SERVICE, &values)?));
        }
    }
    Ok(out)
}

/// The serving unit's `--metrics-listen`, on a line of its own; nothing otherwise, so the
/// other units are as they were.
fn metrics_line(unit: &str, metrics: Option<&str>) -> String {
    match metrics {
        Some(addr) if unit == SERVING_UNIT => format!("\nEnvironment=VC_METRICS_LISTEN={addr}"),
        _ => String::new(),
    }
}

/// `service.env` as systemd `Environment=` lines: each quoted, with `\\`, `"` and `%` (a
/// specifier) escaped, so a value reaches the service exactly as written.
fn environment_lines(env: &[(String, String)]) -> String {
    if env.is_empty() {
        return "# (none)".into();
    }
    env.iter()
        .map(|(k, v)| {
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
            format!("Environment=\"{k}={v}\"")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Caddy's configuration for a stack with `tls:`; `roots`: whether the ACME server's roots
/// are shipped to [`ACME_ROOTS`].
pub fn caddyfile(settings: &crate::settings::Settings, tls: &crate::stack::TlsSettings, roots: bool) -> Result<String> {
    let root_line = if roots { format!("\tacme_ca_root {ACME_ROOTS}") } else { String::new() };
    render(
        CADDYFILE,
        &[
            ("stack", &settings.stack),
            ("domain", &tls.domain),
            ("email", &tls.email),
            ("acme_ca", &tls.acme_ca),
            ("acme_ca_root", &root_line),
            ("service_port", &settings.port.to_string()),
        ],
    )
}

/// Prometheus's configuration: it scrapes the service at each of `targets` (`host:port`).
pub fn prometheus(stack: &str, targets: &[String]) -> Result<String> {
    let targets = targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
    render(PROMETHEUS, &[("stack", stack), ("service_targets", &targets)])
}

/// Prometheus on each instance of a `scale:` stack: the replicas found by the stack's id tag
/// in `region`, scraped on [`METRICS_PORT`].
pub fn prometheus_group(stack: &str, region: &str, stack_id: &str) -> Result<String> {
    let port = METRICS_PORT.to_string();
    render(PROMETHEUS_GROUP, &[("stack", stack), ("region", region), ("metrics_port", &port), ("stack_id", stack_id)])
}

/// Prometheus's `/etc/default/prometheus`: where it listens (`listen`, `host:port`).
pub fn prometheus_defaults(stack: &str, listen: &str) -> String {
    format!("# Written by vcctl (stack {stack}).\nARGS=\"--web.listen-address={listen}\"\n")
}

/// The fleet's load balancer: Caddy on the lb host in front of `upstreams` (`host:port`), on
/// the service's port and 80, or HTTPS for `tls.domain`.
pub fn caddyfile_lb(settings: &crate::settings::Settings, upstreams: &[String], roots: bool) -> Result<String> {
    let (global, site, hsts) = match &settings.tls {
        Some(tls) => {
            let root_line = if roots { format!("\n\tacme_ca_root {ACME_ROOTS}") } else { String::new() };
            (
                format!("\temail {}\n\tacme_ca {}{root_line}", tls.email, tls.acme_ca),
                tls.domain.clone(),
                "\theader Strict-Transport-Security \"max-age=31536000; includeSubDomains\"".to_string(),
            )
        }
        None => (
            "\tauto_https off".to_string(),
            format!("http://:{}, http://:80", settings.port),
            "\t# (HTTP only: set `tls:` in the stack for HTTPS)".to_string(),
        ),
    };
    // No upstream (every app host out of rotation) is not a valid Caddyfile: answer 503.
    let upstreams = if upstreams.is_empty() { "127.0.0.1:9".to_string() } else { upstreams.join(" ") };
    render(
        CADDYFILE_LB,
        &[
            ("stack", &settings.stack),
            ("global", &global),
            ("site", &site),
            ("hsts", &hsts),
            ("upstreams", &upstreams),
            ("health_interval", "1s"),
            // Not 1 s: a host busy for a second (a deploy's checks beside it, on a small
            // machine) left the rotation, and with it, when it served alone, the service.
            ("health_timeout", "2s"),
        ],
    )
}

/// The nftables ruleset of an app host: the service's port admits only `admitted` addresses
/// (the load balancer's and Prometheus's hosts).
pub fn app_firewall(stack: &str, service_port: u16, admitted: &[String]) -> Result<String> {
    let (v6, v4): (Vec<&String>, Vec<&String>) = admitted.iter().partition(|a| a.contains(':'));
    let mut admit = Vec::new();
    for (family, list) in [("ip", v4), ("ip6", v6)] {
        if !list.is_empty() {
            let set = list.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
            admit.push(format!("\t\ttcp dport {service_port} {family} saddr {{ {set} }} accept"));
        }
    }
    render(APP_FIREWALL, &[("stack", stack), ("service_port", &service_port.to_string()), ("admit", &admit.join("\n"))])
}

/// Replaces every `{{name}}` with its value.
/// The user data of a `scale:` stack's instances (templates/boot.sh), base64 as EC2 takes it.
/// EC2 takes at most 16 KiB of it.
pub fn boot_script(values: &[(&str, &str)]) -> Result<String> {
    use base64::Engine;
    // Each value lands inside a double-quoted shell word (`: "${VC_X:={{x}}}"`): nothing
    // that could end it or expand there, whatever an AWS answer (an endpoint, an ARN) holds.
    for (name, value) in values {
        let unsafe_char = value.chars().find(|c| c.is_control() || "\"$`\\}".contains(*c));
        anyhow::ensure!(
            unsafe_char.is_none(),
            "the boot script's `{name}` holds {unsafe_char:?}, which a shell word cannot hold: {value:?}"
        );
    }
    let script = render(BOOT, values)?;
    anyhow::ensure!(script.len() <= 16 * 1024, "the boot script is {} bytes, more than EC2's 16 KiB", script.len());
    Ok(base64::engine::general_purpose::STANDARD.encode(script))
}

pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find("}}") else { bail!("unclosed `{{{{` in a template") };
        let name = rest[start + 2..start + 2 + len].trim();
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => bail!("template placeholder `{{{{{name}}}}}` has no value"),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Indents every line by `n` spaces (to embed a file in a YAML block scalar).
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
}

/// The cloud-init user data of a stack's host.
pub fn user_data(stack: &str, service_port: u16) -> Result<String> {
    let port = service_port.to_string();
    let prometheus = prometheus(stack, &[format!("127.0.0.1:{port}")])?;
    render(
        CLOUD_INIT,
        &[
            ("stack", stack),
            ("service_port", &port),
            ("prometheus_yml", &indent(&prometheus, 6)),
            ("prometheus_rules", &indent(PROMETHEUS_RULES, 6)),
        ],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_boot_script_value_that_could_end_its_shell_word_is_refused() {
        for bad in ["x\"; rm -rf /", "$(id)", "`id`", "a}b", "line\nbreak"] {
            let err = super::boot_script(&[("db_endpoint", bad)]).unwrap_err().to_string();
            assert!(err.contains("`db_endpoint`"), "{bad}: {err}");
        }
    }

    use super::*;

    #[test]
    fn placeholders_are_filled_or_refused() {
        assert_eq!(render("a {{x}} b {{ y }}", &[("x", "1"), ("y", "2")]).unwrap(), "a 1 b 2");
        assert_eq!(render("{{x}}", &[]).unwrap_err().to_string(), "template placeholder `{{x}}` has no value");
        assert!(render("{{x", &[("x", "1")]).is_err());
    }

    #[test]
    fn only_the_serving_unit_serves_a_metrics_port_and_only_when_asked() {
        let stack = crate::stack::parse(std::path::Path::new("t.yaml"), "name: fra\nprovider: local\n").unwrap();
        let settings = crate::settings::Settings::resolve(std::path::Path::new("."), stack, &Default::default());
        let line = "Environment=VC_METRICS_LISTEN=0.0.0.0:9464";
        let with = units_with_metrics(&settings, true, Some("0.0.0.0:9464")).unwrap();
        let has = |units: &[(String, String)], path: &str| {
            units.iter().find(|(p, _)| p == path).unwrap().1.lines().any(|l| l == line)
        };
        assert!(has(&with, "/etc/systemd/system/vehicleconnect.service"));
        assert!(!has(&with, "/etc/systemd/system/vehicleconnect-candidate.service"), "it would take the port twice");
        let without = units(&settings, true).unwrap();
        assert!(!has(&without, "/etc/systemd/system/vehicleconnect.service"));
    }

    #[test]
    fn systemd_units_are_hardened_and_socket_activated() {
        let stack = crate::stack::parse(std::path::Path::new("t.yaml"), "name: fra\nprovider: local\n").unwrap();
        let settings = crate::settings::Settings::resolve(std::path::Path::new("."), stack, &Default::default());
        let units = units(&settings, false).unwrap();
        let file = |path: &str| &units.iter().find(|(p, _)| p == path).unwrap().1;
        let service = file("/etc/systemd/system/vehicleconnect.service");
        for line in [
            "User=vehicleconnect",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
            "ProtectProc=invisible",
            "LimitNOFILE=16384",
            "MemoryMax=512M",
            "EnvironmentFile=/etc/vehicleconnect/env",
            "Requires=vehicleconnect.socket",
            "ExecStart=/opt/vehicleconnect/current/vehicleconnect",
            "Environment=VC_DATA_DIR=/var/lib/vehicleconnect VC_KPI_INTERVAL=1m VC_RETENTION=30days VC_LOG_FORMAT=json",
            "Environment=VC_CANDIDATE=false",
        ] {
            assert!(service.lines().any(|l| l == line), "the service unit lacks `{line}`:\n{service}");
        }
        assert!(!service.contains("DATABASE_URL="), "no secret in the unit");
        let socket = file("/etc/systemd/system/vehicleconnect.socket");
        assert!(socket.lines().any(|l| l == "ListenStream=0.0.0.0:8000"), "{socket}");
        assert!(socket.lines().any(|l| l == "ListenStream=0.0.0.0:80"));
        // The candidate: the same hardening, its own link, loopback only.
        let candidate = file("/etc/systemd/system/vehicleconnect-candidate.service");
        assert!(candidate.lines().any(|l| l == "ExecStart=/opt/vehicleconnect/candidate/vehicleconnect"));
        assert!(candidate.lines().any(|l| l == "Requires=vehicleconnect-candidate.socket"));
        assert!(candidate.lines().any(|l| l == "Environment=VC_CANDIDATE=true"), "the candidate writes no snapshots");
        assert!(candidate.lines().any(|l| l == "ProtectSystem=strict"));
        let socket = file("/etc/systemd/system/vehicleconnect-candidate.socket");
        assert_eq!(
            socket.lines().filter(|l| l.starts_with("ListenStream=")).collect::<Vec<_>>(),
            ["ListenStream=127.0.0.1:18000"]
        );
        assert!(units.iter().all(|(_, text)| !text.contains("{{")));
    }

    fn settings_of(text: &str) -> crate::settings::Settings {
        let stack = crate::stack::parse(std::path::Path::new("t.yaml"), text).unwrap();
        crate::settings::Settings::resolve(std::path::Path::new("."), stack, &Default::default())
    }

    #[test]
    fn a_fleets_load_balancer_firewall_and_prometheus_name_their_hosts() {
        let s = settings_of("name: f\nprovider: ssh\nssh:\n  host: h\nservice:\n  port: 8000\n");
        let lb = caddyfile_lb(&s, &["10.0.0.11:8000".into(), "[fd00::12]:8000".into()], false).unwrap();
        assert!(lb.contains("\nhttp://:8000, http://:80 {\n"), "{lb}");
        assert!(lb.contains("\treverse_proxy 10.0.0.11:8000 [fd00::12]:8000 {\n"), "{lb}");
        assert!(lb.contains("\t\thealth_uri /api/status\n") && lb.contains("\t\thealth_interval 1s\n"), "{lb}");
        // Every host out of rotation is still a valid configuration: nothing listens on port 9.
        assert!(caddyfile_lb(&s, &[], false).unwrap().contains("\treverse_proxy 127.0.0.1:9 {\n"));
        let fw = app_firewall("f", 8000, &["10.0.0.10".into(), "10.0.0.20".into(), "fd00::10".into()]).unwrap();
        assert!(fw.contains("\t\ttcp dport 8000 ip saddr { 10.0.0.10, 10.0.0.20 } accept\n"), "{fw}");
        assert!(fw.contains("\t\ttcp dport 8000 ip6 saddr { fd00::10 } accept\n"), "{fw}");
        assert!(
            fw.contains("\t\ttcp dport 8000 counter drop\n") && fw.contains("\ndelete table inet vehicleconnect\n"),
            "{fw}"
        );
        let prom = prometheus("f", &["10.0.0.11:8000".into(), "10.0.0.12:8000".into()]).unwrap();
        assert!(prom.contains("- targets: [\"10.0.0.11:8000\", \"10.0.0.12:8000\"]"), "{prom}");
        // A fleet's app host: its own port only (80 is the load balancer's), no local database.
        let app = units(&s, true).unwrap();
        let service = &app.iter().find(|(p, _)| p.ends_with("/vehicleconnect.service")).unwrap().1;
        assert!(service.contains("\nWants=network-online.target\n"), "{service}");
        let socket = &app.iter().find(|(p, _)| p.ends_with("/vehicleconnect.socket")).unwrap().1;
        assert_eq!(
            socket.lines().filter(|l| l.starts_with("ListenStream=")).collect::<Vec<_>>(),
            ["ListenStream=0.0.0.0:8000"]
        );
        // The single host's files render whole (Prometheus scrapes the service on loopback).
        let single = crate::render::config::HostConfig::of(&s, "127.0.0.1:9090").unwrap();
        let prom = &single.files.iter().find(|f| f.path == "/etc/prometheus/prometheus.yml").unwrap().text;
        assert!(prom.contains("- targets: [\"127.0.0.1:8000\"]"), "{prom}");
        assert_eq!(single.packages, ["postgresql", "prometheus", "curl"]);
    }

    #[test]
    fn aws_hosts_publish_the_data_volumes_use_and_other_hosts_do_not() {
        let units_of = |text: &str| {
            let stack = crate::stack::parse(std::path::Path::new("t.yaml"), text).unwrap();
            units(&crate::settings::Settings::resolve(std::path::Path::new("."), stack, &Default::default()), false)
                .unwrap()
        };
        let aws = units_of("name: fra\nprovider: aws\naws:\n  region: eu-west-1\n");
        let service = &aws.iter().find(|(p, _)| p.ends_with("vehicleconnect-disk-metric.service")).unwrap().1;
        assert!(service.contains("\nExecStart=/opt/vehicleconnect/bin/vc-host disk-metric fra\n"), "{service}");
        assert!(
            service.contains("\nEnvironment=AWS_DEFAULT_REGION=eu-west-1\n") && service.contains("\nDynamicUser=yes\n")
        );
        let timer = &aws.iter().find(|(p, _)| p.ends_with("vehicleconnect-disk-metric.timer")).unwrap().1;
        assert!(timer.contains("\nOnUnitActiveSec=5min\n"), "the alarm's period: {timer}");
        let ssh = units_of("name: edge\nprovider: ssh\nssh:\n  host: h\n");
        assert!(!ssh.iter().any(|(p, _)| p.contains("disk-metric")), "no instance role, no data volume");
    }

    #[test]
    fn with_tls_caddy_fronts_the_service_which_listens_on_loopback_only() {
        let text =
            "name: edge\nprovider: ssh\nssh:\n  host: h\ntls:\n  domain: vc.example.com\n  email: ops@example.com\n";
        let stack = crate::stack::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let settings = crate::settings::Settings::resolve(std::path::Path::new("."), stack, &Default::default());
        let units = units(&settings, false).unwrap();
        let socket = &units.iter().find(|(p, _)| p == "/etc/systemd/system/vehicleconnect.socket").unwrap().1;
        assert_eq!(
            socket.lines().filter(|l| l.starts_with("ListenStream=")).collect::<Vec<_>>(),
            ["ListenStream=127.0.0.1:8000"],
            "Caddy takes 80 and 443"
        );
        let tls = settings.tls.clone().unwrap();
        let caddy = caddyfile(&settings, &tls, false).unwrap();
        assert!(caddy.starts_with("# Written by vcctl (stack edge)"), "vc-host recognises its own file by this line");
        for line in [
            "\temail ops@example.com",
            "\tacme_ca https://acme-v02.api.letsencrypt.org/directory",
            "vc.example.com {",
            "\theader Strict-Transport-Security \"max-age=31536000; includeSubDomains\"",
            "\treverse_proxy 127.0.0.1:8000 {",
        ] {
            assert!(caddy.lines().any(|l| l == line), "the Caddyfile lacks `{line}`:\n{caddy}");
        }
        assert!(!caddy.contains("acme_ca_root") && !caddy.contains("{{"));
        let with_roots = caddyfile(&settings, &tls, true).unwrap();
        assert!(with_roots.lines().any(|l| l == format!("\tacme_ca_root {ACME_ROOTS}")), "{with_roots}");
    }

    #[test]
    fn user_data_is_cloud_config_with_prometheus_scraping_the_service() {
        let u = user_data("frankfurt", 8000).unwrap();
        assert!(u.starts_with("#cloud-config\n"));
        assert!(!u.contains("{{"));
        assert!(u.contains("      - targets: [\"127.0.0.1:8000\"]"), "{u}");
        assert!(u.contains("    scrape_interval: 15s"));
        assert!(u.contains("stack=frankfurt"));
        assert!(u.contains("name: vehicleconnect"));
        assert!(!u.to_lowercase().contains("password '") || u.contains("'$pw'"), "no literal password in user data");
    }
}
