//! The monthly on-demand cost of an `aws` stack in eu-central-1, estimated from a dated table
//! in the repository (`vcctl/prices/eu-central-1.json`): vcctl cannot reach the AWS Price
//! List API from its tests, and a table that carries its date says how old its figures are.
//! What is not counted is said with the estimate: data transfer, the load balancer's
//! capacity units, backups past the free allowance, CloudWatch, S3.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::stack::scale::ScaleSettings;

/// Where the table lives, as the estimate names it.
pub const TABLE: &str = "vcctl/prices/eu-central-1.json";

/// What the estimate leaves out, as it says.
pub const NOT_COUNTED: &str =
    "data transfer, load balancer capacity units, backups past the free allowance, CloudWatch, S3";

#[derive(Deserialize)]
struct Prices {
    region: String,
    as_of: String,
    hours_per_month: f64,
    ec2_per_hour: BTreeMap<String, f64>,
    ebs_gp3_per_gb_month: f64,
    public_ipv4_per_hour: f64,
    alb_per_hour: f64,
    rds_postgres_per_hour: BTreeMap<String, f64>,
    rds_gp3_per_gb_month: f64,
    route53_health_check_https_per_month: f64,
    route53_health_check_http_per_month: f64,
    route53_latency_queries_per_million: f64,
    route53_queries_per_million: f64,
    cloudfront_out_per_gb: f64,
    cloudfront_to_origin_per_gb: f64,
    cloudfront_https_per_10k_requests: f64,
    waf_web_acl_per_month: f64,
    waf_rule_per_month: f64,
    waf_per_million_requests: f64,
}

fn prices() -> &'static Prices {
    static PRICES: OnceLock<Prices> = OnceLock::new();
    PRICES.get_or_init(|| {
        serde_json::from_str(include_str!("../../../prices/eu-central-1.json"))
            .expect("the price table parses (unit tested)")
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub item: String,
    pub monthly_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub region: String,
    pub prices_as_of: String,
    pub table: &'static str,
    pub lines: Vec<Line>,
    pub total_usd: f64,
    /// Parts the table has no price for (an instance type it does not list): not in the total.
    pub unpriced: Vec<String>,
    pub not_counted: &'static str,
}

/// Adds up lines; a part without a price is named instead of guessed.
struct Builder {
    lines: Vec<Line>,
    /// The total before rounding: lines are shown to the cent, the sum is of the figures.
    total: f64,
    unpriced: Vec<String>,
}

impl Builder {
    fn new() -> Builder {
        Builder { lines: Vec::new(), total: 0.0, unpriced: Vec::new() }
    }

    fn add(&mut self, item: String, monthly: Option<f64>) {
        match monthly {
            Some(usd) => {
                self.total += usd;
                self.lines.push(Line { item, monthly_usd: round_cents(usd) });
            }
            None => self.unpriced.push(item),
        }
    }

    /// `count` instances of `instance_type`, each with a `root_gb` gp3 root volume and a
    /// public IPv4 address (instances in the default VPC's subnets get one).
    fn instances(&mut self, count: u16, instance_type: &str, root_gb: u32, what: &str) {
        let p = prices();
        let n = f64::from(count);
        let hourly = p.ec2_per_hour.get(instance_type).map(|h| n * h * p.hours_per_month);
        self.add(format!("{count} × {instance_type} {what}"), hourly);
        self.add(
            format!("{count} × {root_gb} GB gp3 root volume"),
            Some(n * f64::from(root_gb) * p.ebs_gp3_per_gb_month),
        );
        self.add(format!("{count} × public IPv4 address"), Some(n * p.public_ipv4_per_hour * p.hours_per_month));
    }

    fn finish(self) -> Estimate {
        let p = prices();
        Estimate {
            region: p.region.clone(),
            prices_as_of: p.as_of.clone(),
            table: TABLE,
            lines: self.lines,
            total_usd: round_cents(self.total),
            unpriced: self.unpriced,
            not_counted: NOT_COUNTED,
        }
    }
}

fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// Whether the table prices `region`.
pub fn covers(region: &str) -> bool {
    prices().region == region
}

/// Today's single box: one instance, its root volume, the data volume, the Elastic IP.
pub fn single_box(instance_type: &str, root_gb: u32, data_gb: u32) -> Estimate {
    let p = prices();
    let mut b = Builder::new();
    let hourly = p.ec2_per_hour.get(instance_type).map(|h| h * p.hours_per_month);
    b.add(format!("1 × {instance_type} instance"), hourly);
    b.add(format!("{root_gb} GB gp3 root volume"), Some(f64::from(root_gb) * p.ebs_gp3_per_gb_month));
    b.add(format!("{data_gb} GB gp3 data volume"), Some(f64::from(data_gb) * p.ebs_gp3_per_gb_month));
    b.add("Elastic IP (a public IPv4 address)".into(), Some(p.public_ipv4_per_hour * p.hours_per_month));
    b.finish()
}

/// A `scale:` stack at its desired size: the group's instances, RDS (a Multi-AZ standby
/// doubles the instance and its storage), the load balancer's fixed hours.
pub fn scaled(instance_type: &str, root_gb: u32, scale: &ScaleSettings) -> Estimate {
    let p = prices();
    let mut b = Builder::new();
    b.instances(scale.replicas.desired, instance_type, root_gb, "instances (the group's desired size)");
    let db = &scale.database;
    let copies = if db.multi_az { 2.0 } else { 1.0 };
    let az = if db.multi_az { "Multi-AZ" } else { "Single-AZ" };
    let hourly = p.rds_postgres_per_hour.get(&db.instance_class).map(|h| copies * h * p.hours_per_month);
    b.add(format!("RDS for PostgreSQL {} ({az})", db.instance_class), hourly);
    let storage = copies * f64::from(db.storage_gb) * p.rds_gp3_per_gb_month;
    b.add(format!("RDS {} GB gp3 storage ({az})", db.storage_gb), Some(storage));
    b.add("Application Load Balancer (fixed hours)".into(), Some(p.alb_per_hour * p.hours_per_month));
    b.edge(&scale.edge);
    b.finish()
}

/// The traffic at the edge a month, assumed (and said): 100 000 vehicles each posting one
/// batch a minute (the requests), of about 2 KB (to the origin), answered in about 200 bytes,
/// with the dashboards' reads (out).
pub const EDGE_REQUESTS_PER_MONTH: f64 = 4.38e9;
pub const EDGE_GB_TO_ORIGIN_PER_MONTH: f64 = 8760.0;
pub const EDGE_GB_OUT_PER_MONTH: f64 = 1000.0;

impl Builder {
    /// The distribution and the web ACL, at the assumed traffic.
    fn edge(&mut self, edge: &crate::stack::edge::EdgeSettings) {
        let p = prices();
        let millions = EDGE_REQUESTS_PER_MONTH / 1e6;
        if edge.cdn {
            let requests = EDGE_REQUESTS_PER_MONTH / 1e4 * p.cloudfront_https_per_10k_requests;
            self.add(format!("CloudFront HTTPS requests ({millions:.0} million a month, assumed)"), Some(requests));
            let out = EDGE_GB_OUT_PER_MONTH * p.cloudfront_out_per_gb;
            self.add(format!("CloudFront data out ({EDGE_GB_OUT_PER_MONTH:.0} GB a month, assumed)"), Some(out));
            let origin = EDGE_GB_TO_ORIGIN_PER_MONTH * p.cloudfront_to_origin_per_gb;
            self.add(
                format!("CloudFront data to the origin ({EDGE_GB_TO_ORIGIN_PER_MONTH:.0} GB a month, assumed)"),
                Some(origin),
            );
        }
        if let Some(w) = &edge.waf {
            let rules = if w.block_countries.is_empty() { 2.0 } else { 3.0 };
            self.add("WAF web ACL".into(), Some(p.waf_web_acl_per_month));
            self.add(format!("WAF rules ({rules:.0})"), Some(rules * p.waf_rule_per_month));
            self.add(
                format!("WAF requests ({millions:.0} million a month, assumed)"),
                Some(millions * p.waf_per_million_requests),
            );
        }
    }
}

/// DNS queries of a global stack's name a month, assumed (and said): 100 000 vehicles each
/// resolving the name about three times an hour (its records live 60 s).
pub const GLOBAL_DNS_QUERIES_PER_MONTH: f64 = 200e6;
/// Behind a distribution, queries of the origin name a month, assumed (and said): CloudFront's
/// few hundred edge locations each resolving it about once a minute (its records live 60 s).
pub const ORIGIN_DNS_QUERIES_PER_MONTH: f64 = 20e6;

/// What a global stack adds to its regions' own costs: a health check per region (HTTPS or
/// HTTP, as it asks) and the queries of the routed name at [`GLOBAL_DNS_QUERIES_PER_MONTH`].
/// The regions are priced by their own `plan`.
/// `checks`: each region's name and whether its health check asks over HTTPS.
pub fn global(checks: &[(&str, bool)], latency: bool, edge: &crate::stack::edge::EdgeSettings) -> Estimate {
    let p = prices();
    let mut b = Builder::new();
    for (region, https) in checks {
        let (price, how) = match https {
            true => (p.route53_health_check_https_per_month, "HTTPS"),
            false => (p.route53_health_check_http_per_month, "HTTP"),
        };
        b.add(format!("Route 53 health check of {region} ({how})"), Some(price));
    }
    let (per_million, kind) = match latency {
        true => (p.route53_latency_queries_per_million, "latency"),
        false => (p.route53_queries_per_million, "failover"),
    };
    // Behind a distribution the vehicles resolve an alias of it, which Route 53 answers for
    // free; only CloudFront's edges resolve the routed origin name.
    let (queries, who) = match edge.cdn {
        true => (ORIGIN_DNS_QUERIES_PER_MONTH, "of the origin name, by CloudFront's edges"),
        false => (GLOBAL_DNS_QUERIES_PER_MONTH, "of the name"),
    };
    let millions = queries / 1e6;
    b.add(
        format!("Route 53 {kind} queries {who} ({millions:.0} million a month, assumed)"),
        Some(millions * per_million),
    );
    b.edge(edge);
    Estimate {
        region: "Route 53 (global)".into(),
        not_counted: "the regions (each priced by its own `vcctl plan`), the hosted zone (yours already)",
        ..b.finish()
    }
}

/// The estimate in words: a total line, then one line per part.
pub fn describe(e: &Estimate) -> Vec<String> {
    // A part the table cannot price makes the total a floor, and the headline says so.
    let how = if e.unpriced.is_empty() { "about" } else { "at least" };
    let mut out = vec![format!(
        "monthly cost, on demand in {}: {how} ${:.2} (prices of {}, {})",
        e.region, e.total_usd, e.prices_as_of, e.table
    )];
    out.extend(e.lines.iter().map(|l| format!("  {:<52} ${:>8.2}", l.item, l.monthly_usd)));
    if !e.unpriced.is_empty() {
        out.push(format!("  not in the table, so not in the total: {}", e.unpriced.join(", ")));
    }
    out.push(format!("  not counted: {}", e.not_counted));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::scale::{RdsSettings, Replicas};

    fn total(e: &Estimate) -> f64 {
        assert!(e.unpriced.is_empty(), "{:?}", e.unpriced);
        e.total_usd
    }

    #[test]
    fn the_table_parses_and_carries_its_date() {
        assert_eq!(prices().region, "eu-central-1");
        assert!(prices().as_of.len() == 10 && prices().as_of.starts_with("20"), "{}", prices().as_of);
        assert!(covers("eu-central-1") && !covers("us-east-1"));
    }

    /// Hand-computed from the table, 730 hours a month.
    #[test]
    fn a_single_box_costs_its_instance_volumes_and_address() {
        // t2.micro 0.0134 × 730 = 9.782; 16 GB × 0.0952 = 1.5232; 20 GB × 0.0952 = 1.904;
        // Elastic IP 0.005 × 730 = 3.65: 16.8592.
        let e = single_box("t2.micro", 16, 20);
        assert_eq!(total(&e), 16.86);
        assert_eq!(e.lines.len(), 4);
    }

    #[test]
    fn a_scaled_stack_costs_its_group_database_and_load_balancer() {
        let mut scale = ScaleSettings {
            replicas: Replicas { min: 2, desired: 2, max: 6 },
            cpu_target_pct: Some(60),
            database: RdsSettings {
                ca_file: None,
                instance_class: "db.t4g.micro".into(),
                storage_gb: 20,
                multi_az: false,
                backup_retention_days: 7,
            },
            log_retention_days: 30,
            edge: Default::default(),
        };
        // 2 × t3.small 0.024 × 730 = 35.04; 2 × 16 GB × 0.0952 = 3.0464; 2 × IPv4 0.005 × 730
        // = 7.30; db.t4g.micro 0.019 × 730 = 13.87; 20 GB × 0.133 = 2.66; ALB 0.027 × 730 =
        // 19.71: 81.6264.
        assert_eq!(total(&scaled("t3.small", 16, &scale)), 81.63);
        // Multi-AZ doubles the database and its storage: + 13.87 + 2.66.
        scale.database.multi_az = true;
        assert_eq!(total(&scaled("t3.small", 16, &scale)), 98.16);
        // The edge at the assumed traffic: CloudFront 4.38e9 / 1e4 × 0.012 = 5256.00 requests,
        // 1000 GB × 0.085 = 85.00 out, 8760 GB × 0.02 = 175.20 to the origin; WAF 5.00 + 3
        // rules × 1.00 + 4380 M × 0.60 = 2628.00: + 8152.20.
        scale.edge = crate::stack::edge::EdgeSettings {
            cdn: true,
            waf: Some(crate::stack::edge::WafSettings {
                ingest_per_ip_5min: 6000,
                block_countries: vec!["KP".into(), "RU".into()],
            }),
        };
        let e = scaled("t3.small", 16, &scale);
        assert_eq!(total(&e), 8250.36);
        assert!(e.lines.iter().any(|l| l.item == "WAF rules (3)" && l.monthly_usd == 3.0), "{:?}", e.lines);
    }

    #[test]
    fn a_part_the_table_does_not_price_is_named_not_guessed() {
        let e = single_box("x9.huge", 16, 20);
        assert_eq!(e.unpriced, vec!["1 × x9.huge instance".to_string()]);
        assert_eq!(e.total_usd, 7.08);
        assert!(describe(&e).iter().any(|l| l.contains("not in the table, so not in the total: 1 × x9.huge")));
        assert!(describe(&e)[0].contains(": at least $7.08 (prices of "), "{:?}", describe(&e));
    }

    /// The current generations a user picks, and RDS's classes of the same families.
    #[test]
    fn the_table_prices_every_current_generation_a_user_picks() {
        let sizes = ["large", "xlarge", "2xlarge", "4xlarge"];
        for family in
            ["t3", "t3a", "t4g", "m5", "m6i", "m6g", "m7i", "m7g", "c5", "c6i", "c7i", "c7g", "r5", "r6i", "r7i"]
        {
            for size in sizes.iter().filter(|s| !family.starts_with('t') || **s != "4xlarge") {
                let e = single_box(&format!("{family}.{size}"), 16, 20);
                assert!(e.unpriced.is_empty(), "{family}.{size}");
                assert!(describe(&e)[0].contains(": about $"), "{family}.{size}");
            }
        }
        for family in ["t3", "t4g", "m5", "m6i", "m6g", "m7g", "r5", "r6i", "r6g", "r7g"] {
            let class = format!("db.{family}.large");
            assert!(prices().rds_postgres_per_hour.contains_key(&class), "{class}");
        }
        // A larger size of a family costs more, never less (a slip of the hand shows here).
        let m5 = |s: &str| prices().ec2_per_hour[&format!("m5.{s}")];
        assert!(m5("large") < m5("xlarge") && m5("xlarge") < m5("2xlarge"));
        assert!(prices().ec2_per_hour.len() >= 70, "{}", prices().ec2_per_hour.len());
    }
}
