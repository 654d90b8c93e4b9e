//! What a global stack wants in Route 53, from where each region answers, and the plan from
//! what exists. Pure: the calls are in `mod.rs`.

use serde::Serialize;

use crate::cloud::aws::route53::{self, CheckTarget, DnsRecord, HealthCheck, Routed};
use crate::plan::{Action, Change};
use crate::stack::global::{GlobalSettings, Routing};

/// Where one region answers, as its own stack made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Endpoint {
    /// A `scale:` stack's load balancer, checked at the region's own name (`tls.domain`).
    Balancer { domain: String, dns_name: String, zone_id: String, arn: String },
    /// A single box's Elastic IP; checked over HTTPS at its domain when it has `tls:`.
    Address { ip: String, domain: Option<String>, port: u16 },
    /// Not made yet: the region's own `up` comes first.
    Missing { why: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionEndpoint {
    pub name: String,
    pub stack: String,
    pub aws_region: String,
    pub endpoint: Endpoint,
}

/// The path every health check asks: the service's own health.
pub const HEALTH_PATH: &str = "/api/status";

/// A health check's caller reference starts with this: the stack's id and the region.
pub fn reference_prefix(stack_id: &str, region: &str) -> String {
    format!("vcctl:{stack_id}:{region}:")
}

pub fn check_target(endpoint: &Endpoint) -> Option<CheckTarget> {
    match endpoint {
        Endpoint::Balancer { domain, .. } => {
            Some(CheckTarget { fqdn: Some(domain.clone()), ip: None, port: 443, https: true, path: HEALTH_PATH.into() })
        }
        Endpoint::Address { ip, domain, port } => Some(CheckTarget {
            fqdn: domain.clone(),
            ip: Some(ip.clone()),
            port: if domain.is_some() { 443 } else { i32::from(*port) },
            https: domain.is_some(),
            path: HEALTH_PATH.into(),
        }),
        Endpoint::Missing { .. } => None,
    }
}

/// The region's record of the global name, answered while `check` passes.
pub fn wanted_record(g: &GlobalSettings, r: &RegionEndpoint, check: &str) -> Option<DnsRecord> {
    let (failover, region) = match &g.routing {
        Routing::Latency => (None, Some(r.aws_region.clone())),
        Routing::Failover { primary } => {
            (Some(if *primary == r.name { "PRIMARY" } else { "SECONDARY" }.to_string()), None)
        }
    };
    let routed = Some(Routed { set_identifier: r.name.clone(), region, failover, health_check: Some(check.into()) });
    let name = route53::normal(&g.routed_name());
    match &r.endpoint {
        Endpoint::Balancer { dns_name, zone_id, .. } => Some(DnsRecord {
            name,
            kind: "A".into(),
            value: route53::normal(dns_name),
            alias_zone: Some(zone_id.clone()),
            routed,
        }),
        Endpoint::Address { ip, .. } => {
            Some(DnsRecord { name, kind: "A".into(), value: ip.clone(), alias_zone: None, routed })
        }
        Endpoint::Missing { .. } => None,
    }
}

/// What `up` does to one piece.
#[derive(Debug, Clone, PartialEq)]
pub enum GlobalOp {
    /// A health check for the region (a new one when its target moved; the old one goes
    /// once no record names it).
    Check {
        region: String,
        target: CheckTarget,
    },
    /// The region's record, with the id of its health check filled in when it is made.
    Record {
        region: String,
    },
    /// A record of a region no longer in the file, or not reachable any more.
    DeleteRecord(DnsRecord),
    DeleteCheck(HealthCheck),
    /// The global name's certificate in a region whose load balancer serves it.
    Certificate {
        region: String,
    },
    /// That certificate, issued, on the region's HTTPS listener.
    Attach {
        region: String,
    },
    Nothing,
}

/// What exists: the stack's health checks (by caller reference) and the name's records.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub zone_id: String,
    pub checks: Vec<HealthCheck>,
    pub records: Vec<DnsRecord>,
}

impl Found {
    /// The region's health check of `target`, if one exists.
    pub fn check_of(&self, stack_id: &str, region: &str, target: &CheckTarget) -> Option<&HealthCheck> {
        let prefix = reference_prefix(stack_id, region);
        self.checks.iter().find(|c| c.reference.starts_with(&prefix) && c.target == *target)
    }

    /// The region's record at `name` (the routed name; one the stack left at another name,
    /// before or behind a distribution, is stale).
    fn record_of(&self, region: &str, name: &str) -> Option<&DnsRecord> {
        self.records.iter().find(|r| r.name == name && r.routed.as_ref().is_some_and(|x| x.set_identifier == region))
    }
}

/// The changes `up` makes, in the order it makes them: health checks, records, then what
/// no region wants any more (records first: a check goes once nothing names it).
pub fn plan(g: &GlobalSettings, stack_id: &str, regions: &[RegionEndpoint], found: &Found) -> Vec<Change<GlobalOp>> {
    let mut out = Vec::new();
    let mut kept_checks: Vec<&str> = Vec::new();
    let mut wanted_regions: Vec<&str> = Vec::new();
    let routed = route53::normal(&g.routed_name());
    for r in regions {
        let Some(target) = check_target(&r.endpoint) else {
            let why = match &r.endpoint {
                Endpoint::Missing { why } => why.clone(),
                _ => String::new(),
            };
            out.push(Change {
                action: Action::Note,
                resource: format!("region {} ({})", r.name, r.stack),
                detail: why,
                op: GlobalOp::Nothing,
            });
            continue;
        };
        wanted_regions.push(&r.name);
        let check = found.check_of(stack_id, &r.name, &target);
        let asks = describe_check(&target);
        match check {
            Some(c) => kept_checks.push(&c.id),
            None => out.push(Change {
                action: Action::Create,
                resource: format!("health check of region {}", r.name),
                detail: asks,
                op: GlobalOp::Check { region: r.name.clone(), target: target.clone() },
            }),
        }
        let wanted = wanted_record(g, r, check.map_or("(the new health check)", |c| c.id.as_str()));
        let existing = found.record_of(&r.name, &routed);
        if check.is_none() || existing != wanted.as_ref() {
            let w = wanted.expect("an endpoint that is not missing has a record");
            out.push(Change {
                action: if existing.is_some() { Action::Update } else { Action::Create },
                resource: format!("DNS record {} A ({})", g.routed_name(), r.name),
                detail: describe_record(&w),
                op: GlobalOp::Record { region: r.name.clone() },
            });
        }
    }
    for stale in found.records.iter().filter(|rec| {
        let gone = rec.routed.as_ref().is_some_and(|x| !wanted_regions.contains(&x.set_identifier.as_str()));
        (gone || rec.name != routed) && is_ours(rec, found)
    }) {
        let id = stale.routed.as_ref().map_or("", |x| x.set_identifier.as_str());
        let why = if stale.name != routed {
            format!("the regions are routed at {} now", g.routed_name())
        } else {
            "its region is no longer in the stack file".into()
        };
        out.push(Change {
            action: Action::Delete,
            resource: format!("DNS record {} A ({id})", stale.name.trim_end_matches('.')),
            detail: why,
            op: GlobalOp::DeleteRecord(stale.clone()),
        });
    }
    for c in found.checks.iter().filter(|c| !kept_checks.contains(&c.id.as_str())) {
        out.push(Change {
            action: Action::Delete,
            resource: format!("health check {}", c.id),
            detail: format!("{} (no record of the stack names it)", describe_check(&c.target)),
            op: GlobalOp::DeleteCheck(c.clone()),
        });
    }
    out
}

/// What a region's own stack file needs for the global view (the dashboard's
/// `?scope=global`): its name and every other region's address in its `service.env`. The
/// region's file is its own, so vcctl says what to write there rather than writing it.
/// `envs`: each region's file and `service.env`, in the order of `regions`.
pub fn peer_notes(regions: &[RegionEndpoint], envs: &[(String, Vec<(String, String)>)]) -> Vec<Change<GlobalOp>> {
    let url = |r: &RegionEndpoint| super::kpis::url_of(r).map(|u| format!("{}={u}", r.name));
    let mut out = Vec::new();
    for (r, (file, env)) in regions.iter().zip(envs) {
        let others: Option<Vec<String>> = regions.iter().filter(|o| o.name != r.name).map(url).collect();
        let Some(others) = others else { continue };
        let value = |k: &str| env.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
        let mut want: Vec<&str> = others.iter().map(String::as_str).collect();
        want.sort_unstable();
        let mut have: Vec<&str> = value("VC_PEERS").map(|v| v.split(',').map(str::trim).collect()).unwrap_or_default();
        have.sort_unstable();
        if have == want && value("VC_REGION_NAME") == Some(r.name.as_str()) {
            continue;
        }
        out.push(Change {
            action: Action::Note,
            resource: format!("region {} ({file})", r.name),
            detail: format!(
                "for the global view, its service.env needs VC_REGION_NAME: {} and VC_PEERS: \"{}\" (and the \
                 regions' shared read token as a secret: `vcctl secrets set VC_READ_TOKEN --stack {}`)",
                r.name,
                others.join(","),
                r.stack
            ),
            op: GlobalOp::Nothing,
        });
    }
    out
}

/// A record of the name is the stack's when its health check is one of the stack's: a
/// record someone else made there (another set identifier, no check of ours) stays.
pub fn is_ours(record: &DnsRecord, found: &Found) -> bool {
    let check = record.routed.as_ref().and_then(|r| r.health_check.as_deref());
    check.is_some_and(|id| found.checks.iter().any(|c| c.id == id))
}

pub fn describe_check(t: &CheckTarget) -> String {
    let scheme = if t.https { "https" } else { "http" };
    let host = match (&t.fqdn, &t.ip) {
        (Some(f), Some(ip)) => format!("{f} at {ip}"),
        (Some(f), None) => f.clone(),
        (None, Some(ip)) => ip.clone(),
        (None, None) => "?".into(),
    };
    format!(
        "GET {scheme}://{host}:{}{} every {} s, unhealthy after {} failures",
        t.port,
        t.path,
        route53::CHECK_INTERVAL_S,
        route53::CHECK_FAILURES
    )
}

fn describe_record(r: &DnsRecord) -> String {
    let routed = r.routed.as_ref().expect("a global record is routed");
    let how = match (&routed.region, &routed.failover) {
        (Some(region), _) => format!("latency, {region}"),
        (_, Some(f)) => format!("failover, {}", f.to_ascii_lowercase()),
        _ => "simple".into(),
    };
    let to = match &r.alias_zone {
        Some(_) => format!("alias of {}", r.value.trim_end_matches('.')),
        None => r.value.clone(),
    };
    format!("{to} ({how}), while its health check passes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::global::Region;

    fn global(routing: Routing) -> GlobalSettings {
        GlobalSettings {
            domain: "api.vc.example.com".into(),
            route53_zone: "vc.example.com".into(),
            routing,
            regions: vec![
                Region { name: "eu".into(), stack: "fra".into() },
                Region { name: "us".into(), stack: "iad".into() },
            ],
            canary: "us".into(),
            edge: Default::default(),
        }
    }

    /// Behind a distribution the regions are routed at `origin.<domain>`: their records
    /// there are made, and those the stack left at the name itself are deleted (their checks
    /// kept); back without one, the other way round.
    #[test]
    fn behind_a_distribution_the_regions_move_to_the_origin_name_and_back() {
        let plain = global(Routing::Latency);
        let found = made(&plain, &endpoints());
        let mut cdn = global(Routing::Latency);
        cdn.edge.cdn = true;
        let changes = plan(&cdn, "abc", &endpoints(), &found);
        let lines: Vec<String> = changes.iter().map(Change::line).collect();
        assert_eq!(changes.len(), 4, "{lines:#?}");
        assert!(lines[0].starts_with("+ DNS record origin.api.vc.example.com A (eu)"), "{lines:#?}");
        assert!(
            lines[2].contains(
                "- DNS record api.vc.example.com A (eu): the regions are routed at origin.api.vc.example.com now"
            ),
            "{lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("- health check")), "the checks stay: {lines:#?}");
        let behind = made(&cdn, &endpoints());
        assert!(plan(&cdn, "abc", &endpoints(), &behind).is_empty());
        let back = plan(&plain, "abc", &endpoints(), &behind);
        assert!(back.iter().any(|c| c.line().contains("- DNS record origin.api.vc.example.com A (us)")), "{back:#?}");
    }

    fn endpoints() -> Vec<RegionEndpoint> {
        vec![
            RegionEndpoint {
                name: "eu".into(),
                stack: "fra".into(),
                aws_region: "eu-central-1".into(),
                endpoint: Endpoint::Balancer {
                    domain: "eu.vc.example.com".into(),
                    dns_name: "vcctl-fra-1.eu-central-1.elb.amazonaws.com".into(),
                    zone_id: "Z215JYRZR1TBD5".into(),
                    arn: "arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/vcctl-fra/1".into(),
                },
            },
            RegionEndpoint {
                name: "us".into(),
                stack: "iad".into(),
                aws_region: "us-east-1".into(),
                endpoint: Endpoint::Address { ip: "198.51.100.7".into(), domain: None, port: 8000 },
            },
        ]
    }

    /// `found` as `up` would leave it after running `plan`.
    fn made(g: &GlobalSettings, regions: &[RegionEndpoint]) -> Found {
        let mut found = Found { zone_id: "Z1".into(), ..Found::default() };
        for (i, r) in regions.iter().enumerate() {
            let target = check_target(&r.endpoint).unwrap();
            let id = format!("check-{i}");
            found.checks.push(HealthCheck {
                id: id.clone(),
                reference: format!("{}1", reference_prefix("abc", &r.name)),
                target,
            });
            found.records.push(wanted_record(g, r, &id).unwrap());
        }
        found
    }

    #[test]
    fn a_first_plan_makes_a_check_and_a_record_per_region_and_a_second_nothing() {
        let g = global(Routing::Latency);
        let plan1 = plan(&g, "abc", &endpoints(), &Found::default());
        let lines: Vec<String> = plan1.iter().map(Change::line).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].contains("GET https://eu.vc.example.com:443/api/status"), "{}", lines[0]);
        assert!(
            lines[1].contains("alias of vcctl-fra-1") && lines[1].contains("latency, eu-central-1"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("GET http://198.51.100.7:8000/api/status"), "{}", lines[2]);
        let found = made(&g, &endpoints());
        assert!(plan(&g, "abc", &endpoints(), &found).is_empty());
        // Failover: the same checks, the records change to PRIMARY/SECONDARY.
        let g = global(Routing::Failover { primary: "eu".into() });
        let again = plan(&g, "abc", &endpoints(), &found);
        assert_eq!(again.len(), 2);
        assert!(again[0].detail.contains("failover, primary") && again[1].detail.contains("failover, secondary"));
    }

    #[test]
    fn a_region_gone_from_the_file_loses_its_record_then_its_check_and_others_records_stay() {
        let g = global(Routing::Latency);
        let mut found = made(&g, &endpoints());
        let someone_elses = DnsRecord {
            name: route53::normal(&g.domain),
            kind: "A".into(),
            value: "203.0.113.9".into(),
            alias_zone: None,
            routed: Some(Routed {
                set_identifier: "theirs".into(),
                region: Some("ap-south-1".into()),
                failover: None,
                health_check: None,
            }),
        };
        found.records.push(someone_elses);
        let changes = plan(&g, "abc", &endpoints()[..1], &found);
        let lines: Vec<String> = changes.iter().map(Change::line).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("- DNS record api.vc.example.com A (us)"), "{}", lines[0]);
        assert!(lines[1].starts_with("- health check check-1"), "{}", lines[1]);
    }

    #[test]
    fn a_region_whose_file_lacks_its_peers_is_told_what_to_write() {
        let env = |peers: &str, name: &str| {
            vec![("VC_PEERS".to_string(), peers.to_string()), ("VC_REGION_NAME".to_string(), name.to_string())]
        };
        let envs = vec![
            ("stacks/fra.yaml".to_string(), env("us=http://198.51.100.7:8000", "eu")),
            ("stacks/iad.yaml".to_string(), env("eu=https://eu.vc.example.com", "virginia")),
        ];
        let notes = peer_notes(&endpoints(), &envs);
        assert_eq!(notes.len(), 1, "{notes:#?}");
        assert!(notes[0].line().contains("region us (stacks/iad.yaml)"), "{}", notes[0].line());
        assert!(notes[0].detail.contains("VC_REGION_NAME: us and VC_PEERS: \"eu=https://eu.vc.example.com\""));
        assert_eq!(notes[0].action, Action::Note);
    }

    #[test]
    fn a_region_not_made_yet_is_a_note_and_its_target_moving_makes_a_new_check() {
        let g = global(Routing::Latency);
        let found = made(&g, &endpoints());
        let mut moved = endpoints();
        moved[1].endpoint = Endpoint::Address { ip: "198.51.100.8".into(), domain: None, port: 8000 };
        let changes = plan(&g, "abc", &moved, &found);
        let actions: Vec<Action> = changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Create, Action::Update, Action::Delete], "{changes:#?}");
        let mut missing = endpoints();
        missing[0].endpoint = Endpoint::Missing { why: "no load balancer: run `vcctl up --stack fra`".into() };
        let changes = plan(&g, "abc", &missing, &Found::default());
        assert_eq!(changes[0].action, Action::Note);
        assert!(changes[0].line().contains("vcctl up --stack fra"));
    }
}
