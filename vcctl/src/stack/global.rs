//! `provider: global`: several region stacks behind one name. The `global:` section names
//! the regions (each its own `scale:` or single-box stack file), the domain, and how Route 53
//! routes between them. Pure: the region files are read when a command runs.

use marked_yaml::Span;

use super::yaml::Section;
use super::{Found, StackError, is_valid_name};

/// Regions a global stack may name.
pub const MOST_REGIONS: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Each client to the region with the lowest latency from it, among the healthy ones.
    Latency,
    /// Everything to `primary` while it is healthy, else to the other region.
    Failover { primary: String },
}

impl Routing {
    pub fn name(&self) -> &'static str {
        match self {
            Routing::Latency => "latency",
            Routing::Failover { .. } => "failover",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// The region's name in this stack (Route 53's set identifier, the dashboard's label).
    pub name: String,
    /// The stack that runs it (`stacks/<stack>.yaml`).
    pub stack: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalSettings {
    /// The one name clients use.
    pub domain: String,
    /// The Route 53 hosted zone `domain` is in.
    pub route53_zone: String,
    pub routing: Routing,
    /// In file order.
    pub regions: Vec<Region>,
    /// Deployed first; the others follow in file order.
    pub canary: String,
    /// One CloudFront distribution for `domain` in front of every region (`cdn: true`), and
    /// its web ACL (`waf:`).
    pub edge: super::edge::EdgeSettings,
}

impl GlobalSettings {
    /// The order `deploy` goes through the regions: the canary, then the others as listed.
    pub fn deploy_order(&self) -> Vec<&Region> {
        let canary = self.regions.iter().filter(|r| r.name == self.canary);
        canary.chain(self.regions.iter().filter(|r| r.name != self.canary)).collect()
    }

    /// The name Route 53 routes to the regions: `domain` itself, or behind a distribution the
    /// name it reaches them at (`origin.<domain>`), `domain` then being the distribution's.
    pub fn routed_name(&self) -> String {
        if self.edge.cdn { format!("origin.{}", self.domain) } else { self.domain.clone() }
    }
}

pub fn global_settings(root: &mut Section, span: &Span) -> Result<GlobalSettings, StackError> {
    let Some(mut s) = root.opt_section("global")? else {
        let mut err = root.error_at(span, "provider".into(), "provider `global` needs a `global:` section");
        err.hint = Some(
            "add `global: {domain: ..., route53_zone: ..., routing: latency, regions: {eu: STACK, us: STACK}}`".into(),
        );
        return Err(err);
    };
    let mut found = Found::default();
    let domain = found.take(s.req_str("domain")).map(|(d, _)| d.trim_end_matches('.').to_ascii_lowercase());
    let zone = found.take(s.req_str("route53_zone")).map(|(z, _)| z.trim_end_matches('.').to_ascii_lowercase());
    if let (Some(d), Some(z)) = (&domain, &zone)
        && !d.ends_with(&format!(".{z}"))
    {
        found.add(s.value_error(
            "domain",
            format!("{d} is not in the hosted zone {z} (global.route53_zone)"),
            Some(format!("use a name under {z}, or name the zone {d} is in")),
        ));
    }
    let regions = found.take(regions(&mut s)).unwrap_or_default();
    let known = |name: &str| regions.iter().any(|r| r.name == name);
    let listed = regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    let routing = found.take(s.opt_parsed("routing", "a routing", |v| match v {
        "latency" | "failover" => Ok(v.to_string()),
        _ => Err(format!("expected `latency` (the default) or `failover`, got {v:?}")),
    }));
    let primary = found.take(s.opt_str("primary")).flatten();
    let routing = match (routing.flatten().as_deref(), primary) {
        (Some("failover"), Some(p)) if known(&p) => {
            if regions.len() != 2 {
                found.add(s.value_error(
                    "routing",
                    format!("failover routing sends traffic to one other region; {} regions are listed", regions.len()),
                    Some("list two regions, or use `routing: latency`".into()),
                ));
            }
            Some(Routing::Failover { primary: p })
        }
        (Some("failover"), Some(p)) => {
            found.add(s.value_error("primary", format!("{p:?} is not one of the regions ({listed})"), None));
            None
        }
        (Some("failover"), None) => {
            found.add(s.value_error(
                "routing",
                "failover routing needs `primary:`, the region that serves while healthy",
                None,
            ));
            None
        }
        (_, Some(_)) => {
            found.add(s.value_error(
                "primary",
                "`primary` is for `routing: failover`",
                Some("remove it, or set `routing: failover`".into()),
            ));
            None
        }
        _ => Some(Routing::Latency),
    };
    let canary = match found.take(s.opt_str("canary")).flatten() {
        Some(c) if known(&c) => Some(c),
        Some(c) => {
            found.add(s.value_error("canary", format!("{c:?} is not one of the regions ({listed})"), None));
            None
        }
        None => regions.first().map(|r| r.name.clone()),
    };
    let edge = found.take(edge(&mut s)).unwrap_or_default();
    found.take(s.check_unknown());
    found.result()?;
    let (Some(domain), Some(route53_zone), Some(routing), Some(canary)) = (domain, zone, routing, canary) else {
        unreachable!("every part is read when nothing was found wrong")
    };
    Ok(GlobalSettings { domain, route53_zone, routing, regions, canary, edge })
}

/// `cdn` and `waf`: a web ACL only on the distribution (each region guards its own).
fn edge(s: &mut Section) -> Result<super::edge::EdgeSettings, StackError> {
    let edge = super::edge::edge_settings(s)?;
    if edge.waf.is_some() && !edge.cdn {
        return Err(s.value_error(
            "waf",
            "a global stack's web ACL is its distribution's, and it has none",
            Some("add `cdn: true`, or give each region's own stack `scale.waf`".into()),
        ));
    }
    Ok(edge)
}

/// `global.regions`: NAME: STACK, two to [`MOST_REGIONS`].
fn regions(s: &mut Section) -> Result<Vec<Region>, StackError> {
    let Some(map) = s.opt_scalar_map("regions")? else {
        return Err(s.error("`global` needs `regions:`, each region's name and the stack that runs it (eu: eu-scale)"));
    };
    let mut out: Vec<Region> = Vec::new();
    for (name, stack, span) in map {
        let path = format!("global.regions.{name}");
        // The service reads the same names in `VC_PEERS`.
        let good = vehicleconnect::peers::is_region_name(&name);
        if !good {
            return Err(s.error_at(&span, path, format!("{name:?} is not a region name: use 1-32 of a-z, 0-9 and -")));
        }
        if !is_valid_name(&stack) {
            return Err(s.error_at(
                &span,
                path,
                format!("{stack:?} is not a stack name (the file stacks/<name>.yaml)"),
            ));
        }
        if let Some(other) = out.iter().find(|r| r.stack == stack) {
            return Err(s.error_at(&span, path, format!("stack {stack} already runs region {}", other.name)));
        }
        out.push(Region { name, stack });
    }
    if !(2..=MOST_REGIONS).contains(&out.len()) {
        return Err(s.value_error(
            "regions",
            format!("{} regions listed; a global stack has 2 to {MOST_REGIONS}", out.len()),
            Some("one region needs no global stack: use its own stack file".into()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::{Provider, parse};

    const WORLD: &str = "name: world\nprovider: global\nglobal:\n  domain: api.example.com\n  route53_zone: example.com\n  regions:\n    eu: fra\n    us: iad\n";

    fn global(text: &str) -> Result<GlobalSettings, String> {
        match parse(Path::new("stacks/world.yaml"), text) {
            Ok(stack) => match stack.provider {
                Provider::Global(g) => Ok(g),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(format!("{e}{}", e.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())),
        }
    }

    #[test]
    fn a_global_stack_reads_with_its_defaults() {
        let g = global(WORLD).unwrap();
        assert_eq!(g.routing, Routing::Latency);
        assert_eq!(g.canary, "eu", "the first region is the canary by default");
        assert_eq!(g.deploy_order().iter().map(|r| r.stack.as_str()).collect::<Vec<_>>(), ["fra", "iad"]);
        let g = global(&WORLD.replace("  regions:", "  canary: us\n  routing: failover\n  primary: eu\n  regions:"))
            .unwrap();
        assert_eq!(g.routing, Routing::Failover { primary: "eu".into() });
        assert_eq!(g.deploy_order().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["us", "eu"]);
    }

    #[test]
    fn bad_global_stacks_name_the_line_the_field_and_the_fix() {
        let cases = [
            (
                WORLD.replace("api.example.com", "api.example.org"),
                "global.domain",
                "not in the hosted zone example.com",
            ),
            (WORLD.replace("    us: iad\n", ""), "global.regions", "1 regions listed"),
            (
                WORLD.replace("    us: iad\n", "    us: iad\n    ap: fra\n"),
                "global.regions.ap",
                "already runs region eu",
            ),
            (WORLD.replace("    us: iad", "    US: iad"), "global.regions.US", "not a region name"),
            (WORLD.replace("  regions:", "  routing: failover\n  regions:"), "global.routing", "needs `primary:`"),
            (
                WORLD.replace("  regions:", "  routing: failover\n  primary: ap\n  regions:"),
                "global.primary",
                "not one of the regions (eu, us)",
            ),
            (WORLD.replace("  regions:", "  primary: eu\n  regions:"), "global.primary", "is for `routing: failover`"),
            (
                WORLD.replace("  regions:", "  routing: nearest\n  regions:"),
                "global.routing",
                "`latency` (the default) or `failover`",
            ),
            (WORLD.replace("  regions:", "  canary: ap\n  regions:"), "global.canary", "not one of the regions"),
            (WORLD.replace("  regions:", "  cdn: maybe\n  regions:"), "global.cdn", "expected true or false"),
            (
                WORLD.replace("  regions:", "  waf: {ingest_per_ip_5min: 100}\n  regions:"),
                "global.waf",
                "a global stack's web ACL is its distribution's",
            ),
            (
                WORLD
                    .replace("    us: iad\n", "    us: iad\n    ap: syd\n")
                    .replace("  regions:", "  routing: failover\n  primary: eu\n  regions:"),
                "global.routing",
                "3 regions are listed",
            ),
            ("name: world\nprovider: global\n".to_string(), "provider", "needs a `global:` section"),
            (WORLD.to_string() + "aws:\n  region: eu-central-1\n", "aws", "does not apply to provider `global`"),
        ];
        for (text, path, says) in cases {
            let err = global(&text).unwrap_err();
            assert!(err.contains(path) && err.contains(says), "{path}: {says}\n  got: {err}");
        }
    }
}
