//! The provisioning workflow of a `scale:` stack, so far its network and data tier: three
//! security groups that chain the load balancer to the app instances and those to RDS (each
//! admits only the one before it), the DB subnet group and the DB instance. What to change
//! is computed apart from the calls (`plan`), so `plan` and `up` say the same.

use anyhow::{Result, bail};
use serde::Serialize;

use super::database::DbPointer;
use crate::cloud::aws::rds::{self, Db, DbSpec};
use crate::cloud::aws::s3::{self, Bucket};
use crate::cloud::aws::security_group::{self as sg, Rule, SecurityGroup};
use crate::cloud::aws::{Aws, Stamp, ec2};
use crate::error::Failure;
use crate::plan::{Action, Change};
use crate::printer::Printer;
use crate::providers::aws::firewall::{self, RuleOp};
use crate::providers::aws::names::TierNames;
use crate::stack::scale::RdsSettings;

/// The tiers, in the order of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Lb,
    App,
    Db,
}

pub const TIERS: [Tier; 3] = [Tier::Lb, Tier::App, Tier::Db];

impl Tier {
    /// How a plan names the tier's group before it exists; `apply` puts its id in its place.
    fn placeholder(self) -> String {
        format!("(group {})", self.name())
    }

    fn name(self) -> &'static str {
        match self {
            Tier::Lb => "lb",
            Tier::App => "app",
            Tier::Db => "db",
        }
    }
}

impl TierNames {
    pub fn group(&self, tier: Tier) -> String {
        self.security_group(tier.name())
    }
}

/// What exists of the stack.
#[derive(Debug)]
pub struct TiersFound {
    /// By tier: lb, app, db.
    pub groups: [Option<SecurityGroup>; 3],
    pub subnet_group: bool,
    /// The database the group serves from (the bucket's `database`), and its instance.
    pub pointer: DbPointer,
    pub db: Option<Db>,
    /// The stack's other DB instances (by its id tag): kept after restores, or made by a
    /// restore that stopped before it moved the pointer.
    pub others: Vec<String>,
    pub bucket: Option<Bucket>,
    /// Behind a distribution that serves: CloudFront's origin-facing prefix list, the only
    /// source the load balancer admits (set from the edge tier, `edge.rs`).
    pub edge_only: Option<String>,
}

impl TiersFound {
    /// Nothing found yet: a stack serves from its first instance.
    pub fn nothing(names: &TierNames) -> TiersFound {
        TiersFound {
            groups: [None, None, None],
            subnet_group: false,
            pointer: DbPointer::first(&names.db),
            db: None,
            others: vec![],
            bucket: None,
            edge_only: None,
        }
    }

    pub fn group(&self, tier: Tier) -> Option<&SecurityGroup> {
        self.groups[tier as usize].as_ref()
    }
}

/// The rules a tier's group must have, exactly: its sources are the group before it.
pub fn wanted_rules(tier: Tier, port: u16, found: &TiersFound) -> Vec<Rule> {
    let id = |t: Tier| found.group(t).map_or_else(|| t.placeholder(), |g| g.id.clone());
    let mut rules = match tier {
        // HTTPS only: the distribution redirects viewers' HTTP itself. (A prefix list counts
        // as its size against the group's rule quota: one rule, not two ports.)
        Tier::Lb if let Some(list) = &found.edge_only => vec![Rule {
            source: sg::RuleSource::PrefixList(list.clone()),
            ..Rule::tcp(443, "", "HTTPS, from CloudFront only (the distribution)")
        }],
        Tier::Lb => ["0.0.0.0/0", "::/0"]
            .iter()
            .flat_map(|c| [Rule::tcp(443, c, "HTTPS"), Rule::tcp(80, c, "HTTP, redirected to HTTPS")])
            .collect(),
        Tier::App => vec![
            Rule::tcp_from_group(port, &id(Tier::Lb), "the service, from the load balancer only"),
            // The instances' Prometheus scrape each other's metrics port, never the API's.
            Rule::tcp_from_group(
                crate::render::METRICS_PORT,
                &id(Tier::App),
                "the metrics, from the stack's instances (Prometheus)",
            ),
        ],
        Tier::Db => vec![Rule::tcp_from_group(5432, &id(Tier::App), "PostgreSQL, from the app instances only")],
    };
    rules.sort();
    rules
}

/// How `up` makes one planned change of the tier.
#[derive(Debug, Clone, PartialEq)]
pub enum TierOp {
    /// The group and its rules; a rule whose source is a group made in the same run names
    /// it `(group TIER)` until then (`resolve`).
    CreateGroup(Tier, Vec<Rule>),
    Rules(Tier, RuleOp),
    CreateBucket,
    SecureBucket,
    CreateSubnetGroup,
    CreateDb,
    /// Every field that differs, in one call (several changes may name it: applied once).
    ModifyDb,
}

pub type TierChange = Change<TierOp>;

fn change(action: Action, resource: String, detail: String, op: TierOp) -> TierChange {
    Change { action, resource, detail, op }
}

/// What `up` would change, from what exists, and how; an impossible change is an error
/// naming the fix. `up` applies exactly these (`apply`).
pub fn plan(names: &TierNames, found: &TiersFound, db: &RdsSettings, port: u16) -> Result<Vec<TierChange>> {
    let mut out = Vec::new();
    let now = time::OffsetDateTime::now_utc();
    for tier in TIERS {
        let name = names.group(tier);
        let wanted = wanted_rules(tier, port, found);
        let Some(g) = found.group(tier) else {
            let rules: Vec<String> = wanted.iter().map(ToString::to_string).collect();
            let what = format!("security group {name}");
            out.push(change(Action::Create, what, rules.join("; "), TierOp::CreateGroup(tier, wanted)));
            continue;
        };
        let rules = firewall::plan(&name, &wanted, &g.rules, now);
        out.extend(rules.into_iter().map(|c| change(c.action, c.resource, c.detail, TierOp::Rules(tier, c.op))));
    }
    match &found.bucket {
        None => out.push(change(
            Action::Create,
            format!("bucket {}", names.bucket),
            "the releases: versioned, encrypted, private".into(),
            TierOp::CreateBucket,
        )),
        Some(b) if !b.lacks().is_empty() => out.push(change(
            Action::Update,
            format!("bucket {}", b.name),
            format!("put back: {}", b.lacks().join(", ")),
            TierOp::SecureBucket,
        )),
        Some(_) => {}
    }
    if !found.subnet_group {
        let detail = "one subnet per zone of the default VPC".to_string();
        out.push(change(Action::Create, format!("DB subnet group {}", names.db), detail, TierOp::CreateSubnetGroup));
    }
    match &found.db {
        None if found.pointer.serving.instance != names.db => bail!(Failure::invalid(
            format!(
                "the stack serves from DB instance {} (its bucket's `{}`), which does not exist",
                found.pointer.serving.instance,
                super::database::KEY
            ),
            Some("`vcctl restore --database ID` points it at one the stack kept, or `vcctl restore SNAPSHOT`".into()),
        )),
        None => out.push(change(Action::Create, format!("DB instance {}", names.db), describe(db), TierOp::CreateDb)),
        Some(d) => out.extend(db_changes(d, db, found.group(Tier::Db).map(|g| g.id.as_str()))?),
    }
    Ok(out)
}

fn describe(db: &RdsSettings) -> String {
    format!(
        "PostgreSQL {} on {}, {} GB gp3, {}, encrypted, not public, {} days of backups, deletion protection, password kept by RDS in Secrets Manager",
        rds::ENGINE_VERSION,
        db.instance_class,
        db.storage_gb,
        if db.multi_az { "Multi-AZ" } else { "Single-AZ" },
        db.backup_retention_days
    )
}

/// How an existing DB instance differs from the stack file.
fn db_changes(d: &Db, want: &RdsSettings, group: Option<&str>) -> Result<Vec<TierChange>> {
    if !d.encrypted {
        bail!(Failure::invalid(
            format!("DB instance {} is not encrypted, and RDS cannot encrypt one in place", d.id),
            Some("`vcctl db dump`, delete the instance, `vcctl up`, `vcctl db restore`".into()),
        ));
    }
    if (want.storage_gb as i32) < d.storage_gb {
        bail!(Failure::invalid(
            format!(
                "scale.database.storage_gb is {}, but DB instance {} has {} GB: RDS storage cannot shrink",
                want.storage_gb, d.id, d.storage_gb
            ),
            Some(format!("set scale.database.storage_gb: {} (or more)", d.storage_gb)),
        ));
    }
    let mut diffs = Vec::new();
    let mut differ = |field: &str, has: String, wants: String| {
        if has != wants {
            let (what, detail) = (format!("DB instance {}", d.id), format!("{field}: {has} -> {wants}"));
            diffs.push(change(Action::Update, what, detail, TierOp::ModifyDb));
        }
    };
    differ("class", d.instance_class.clone(), want.instance_class.clone());
    differ("storage GB", d.storage_gb.to_string(), want.storage_gb.to_string());
    differ("Multi-AZ", d.multi_az.to_string(), want.multi_az.to_string());
    differ("backup days", d.backup_retention_days.to_string(), want.backup_retention_days.to_string());
    differ("deletion protection", d.deletion_protection.to_string(), "true".into());
    differ("public", d.public.to_string(), "false".into());
    let wanted_group = group.map_or_else(|| Tier::Db.placeholder(), str::to_string);
    differ("security groups", d.security_groups.join(","), wanted_group);
    Ok(diffs)
}

/// Reads what exists; a resource tagged with another stack id is refused before any change.
pub async fn survey(aws: &Aws, names: &TierNames, stamp: &Stamp) -> Result<TiersFound> {
    let mut found = TiersFound::nothing(names);
    for tier in TIERS {
        let g = sg::find_named(&aws.ec2, &names.stack, &names.group(tier)).await?;
        if let Some(g) = &g {
            owned(&g.name, g.owner.stack_id.as_deref(), stamp)?;
        }
        found.groups[tier as usize] = g;
    }
    found.subnet_group = rds::subnet_group_exists(&aws.rds, &names.db).await?;
    if !stamp.id.is_empty() {
        found.bucket = s3::find(&aws.s3, &names.bucket).await?;
    }
    if let Some(b) = &found.bucket {
        owned(&format!("bucket {}", b.name), b.owner.stack_id.as_deref(), stamp)?;
        found.pointer = super::database::read(&aws.s3, &b.name, &names.db).await?;
    }
    found.db = rds::find(&aws.rds, &found.pointer.serving.instance).await?;
    if let Some(d) = &found.db {
        owned(&format!("DB instance {}", d.id), d.owner.stack_id.as_deref(), stamp)?;
    }
    if !stamp.id.is_empty() {
        let serving = &found.pointer.serving.instance;
        found.others = rds::owned(&aws.rds, &stamp.id).await?.into_iter().filter(|i| i != serving).collect();
    }
    Ok(found)
}

pub(crate) use crate::providers::aws::owners::owned;

/// The group ids of the chain: found, or made by this run.
struct Ids([Option<String>; 3]);

impl Ids {
    fn of(&self, tier: Tier) -> Result<&str> {
        self.0[tier as usize]
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("security group {} is not made yet", tier.name()))
    }

    /// `rule` with a `(group TIER)` source (a group not made when it was planned) given the
    /// group's id.
    fn resolve(&self, rule: &Rule) -> Result<Rule> {
        let mut r = rule.clone();
        if let sg::RuleSource::Group(g) = &r.source
            && let Some(tier) = TIERS.iter().find(|t| *g == t.placeholder())
        {
            r.source = sg::RuleSource::Group(self.of(*tier)?.to_string());
        }
        Ok(r)
    }
}

/// Makes and repairs the tier: exactly the `planned` changes, in order.
pub async fn apply(
    aws: &Aws,
    names: &TierNames,
    found: &TiersFound,
    planned: &[TierChange],
    db: &RdsSettings,
    stamp: &Stamp,
    p: &Printer,
) -> Result<()> {
    let mut ids = Ids(TIERS.map(|t| found.group(t).map(|g| g.id.clone())));
    let mut modified = false;
    for c in planned {
        let doing = format!("{}: {}", c.resource, c.detail);
        match &c.op {
            TierOp::CreateGroup(tier, rules) => {
                let vpc = ec2::default_vpc(&aws.ec2).await?;
                let id = p.doing(&doing, sg::create(&aws.ec2, &names.group(*tier), &vpc, stamp)).await?;
                ids.0[*tier as usize] = Some(id.clone());
                let rules = rules.iter().map(|r| ids.resolve(r)).collect::<Result<Vec<_>>>()?;
                sg::authorize(&aws.ec2, &id, &rules).await?;
                fault_point(&format!("{}_group", tier.name()));
            }
            TierOp::Rules(tier, op) => {
                let op = match op {
                    RuleOp::Authorize(rules) => {
                        RuleOp::Authorize(rules.iter().map(|r| ids.resolve(r)).collect::<Result<_>>()?)
                    }
                    RuleOp::Revoke(rules) => RuleOp::Revoke(rules.clone()),
                };
                p.doing(&doing, firewall::apply(&aws.ec2, ids.of(*tier)?, &op)).await?;
            }
            TierOp::CreateBucket => {
                p.doing(&doing, async {
                    s3::create(&aws.s3, &names.bucket, &aws.region).await?;
                    s3::secure(&aws.s3, &names.bucket, stamp).await
                })
                .await?;
                fault_point("bucket");
            }
            TierOp::SecureBucket => p.doing(&doing, s3::secure(&aws.s3, &names.bucket, stamp)).await?,
            TierOp::CreateSubnetGroup => {
                let vpc = ec2::default_vpc(&aws.ec2).await?;
                let subnets = ec2::subnets_across_zones(&aws.ec2, &vpc, "RDS").await?;
                p.doing(&doing, rds::create_subnet_group(&aws.rds, &names.db, &subnets, stamp)).await?;
            }
            TierOp::CreateDb => {
                let (size, group) = (size(db), ids.of(Tier::Db)?);
                let spec =
                    DbSpec { id: &names.db, settings: &size, subnet_group: &names.db, security_group: group, stamp };
                p.doing(&doing, rds::create(&aws.rds, &spec)).await?;
                fault_point("database");
            }
            TierOp::ModifyDb if modified => {}
            TierOp::ModifyDb => {
                let d = found.db.as_ref().expect("planned on a found instance");
                if d.status != "available" {
                    bail!(
                        "DB instance {} is {}; RDS changes it once it is available: run `vcctl up` again then",
                        d.id,
                        d.status
                    );
                }
                let message = format!("changing DB instance {}", d.id);
                p.doing(&message, rds::modify(&aws.rds, &d.id, &size(db), ids.of(Tier::Db)?)).await?;
                modified = true;
            }
        }
    }
    Ok(())
}

pub(crate) fn size(db: &RdsSettings) -> rds::DbSize<'_> {
    rds::DbSize {
        instance_class: &db.instance_class,
        storage_gb: db.storage_gb,
        multi_az: db.multi_az,
        backup_retention_days: db.backup_retention_days,
    }
}

/// Removes the tier: every DB instance of the stack (the serving one and those kept after
/// restores) each after a final snapshot (their names are the answer), the subnet group, the
/// groups from the last of the chain. With `keep_data`, the databases, their subnet group and
/// their group stay.
pub async fn destroy(
    aws: &Aws,
    names: &TierNames,
    found: &TiersFound,
    keep_data: bool,
    p: &Printer,
) -> Result<Vec<String>> {
    let mut snapshots = Vec::new();
    if !keep_data {
        for id in found.db.iter().map(|d| &d.id).chain(&found.others) {
            snapshots.push(delete_db(aws, id, p).await?);
        }
    }
    if let Some(b) = &found.bucket {
        p.doing(&format!("deleting bucket {} and the releases in it", b.name), s3::delete(&aws.s3, &b.name)).await?;
    }
    if found.subnet_group && !keep_data {
        p.doing(&format!("deleting DB subnet group {}", names.db), rds::delete_subnet_group(&aws.rds, &names.db))
            .await?;
    }
    for tier in TIERS.iter().rev().filter(|t| !(keep_data && **t == Tier::Db)) {
        if let Some(g) = found.group(*tier) {
            p.doing(&format!("deleting security group {}", g.name), sg::delete(&aws.ec2, &g.id)).await?;
        }
    }
    Ok(snapshots)
}

/// Deletes the DB instance `id` after a final snapshot, and waits until it is gone; the
/// snapshot's name.
pub async fn delete_db(aws: &Aws, id: &str, p: &Printer) -> Result<String> {
    let name = format!("{id}-final-{}", time::OffsetDateTime::now_utc().unix_timestamp());
    p.doing(&format!("deleting DB instance {id} after a final snapshot {name}"), rds::delete(&aws.rds, id, &name))
        .await?;
    let exists = async || Ok(rds::find(&aws.rds, id).await?.is_some());
    let what = format!("DB instance {id}");
    let wait = until_gone(&what, std::time::Duration::from_secs(30 * 60), exists);
    p.doing(&format!("waiting for DB instance {id} to be gone"), wait).await?;
    Ok(name)
}

/// Waits until `exists` says no more, looking every 10 s, for at most `patience`: AWS
/// takes minutes to delete a DB instance or a group, and what depends on it goes after it.
pub(crate) async fn until_gone(
    what: &str,
    patience: std::time::Duration,
    mut exists: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let started = std::time::Instant::now();
    while exists().await? {
        if started.elapsed() > patience {
            bail!(
                "{what} is still there after {} minutes; `vcctl destroy` again removes the rest once it is gone",
                patience.as_secs() / 60
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
    Ok(())
}

/// Fault injection for tests (`VCCTL_FAULT=abort-after:<point>`): the process stops dead
/// there, as an `up` killed at that moment would.
pub(crate) fn fault_point(point: &str) {
    if std::env::var("VCCTL_FAULT").ok().as_deref() == Some(&format!("abort-after:{point}")) {
        crate::printer::say(format!("VCCTL_FAULT: aborting after {point}"));
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::Owner;
    use crate::cloud::aws::security_group::RuleSource;

    fn group(name: &str, id: &str, rules: Vec<Rule>) -> Option<SecurityGroup> {
        Some(SecurityGroup { id: id.into(), name: name.into(), vpc_id: "vpc-1".into(), rules, owner: Owner::default() })
    }

    fn settings() -> RdsSettings {
        RdsSettings {
            ca_file: None,
            instance_class: "db.t4g.micro".into(),
            storage_gb: 20,
            multi_az: false,
            backup_retention_days: 7,
        }
    }

    #[test]
    fn each_group_admits_only_the_one_before_it() {
        let names = TierNames::of("fra", "0123456789abcdef");
        let nothing = TiersFound::nothing(&names);
        let changes = plan(&names, &nothing, &settings(), 8000).unwrap();
        let made: Vec<&str> = changes.iter().map(|c| c.resource.as_str()).collect();
        assert_eq!(
            made,
            [
                "security group vcctl-fra-lb",
                "security group vcctl-fra-app",
                "security group vcctl-fra-db",
                "bucket vcctl-fra-0123456789abcdef",
                "DB subnet group vcctl-fra",
                "DB instance vcctl-fra"
            ]
        );
        let mut found = TiersFound::nothing(&names);
        found.groups[0] = group("vcctl-fra-lb", "sg-lb", wanted_rules(Tier::Lb, 8000, &found));
        let app = wanted_rules(Tier::App, 8000, &found);
        // The service's port from the load balancer; the metrics port from the app group
        // itself (its placeholder until the group exists).
        let admitted: Vec<(i32, &RuleSource)> = app.iter().map(|r| (r.from_port, &r.source)).collect();
        assert_eq!(
            admitted,
            [(8000, &RuleSource::Group("sg-lb".into())), (9464, &RuleSource::Group("(group app)".into()))]
        );
        found.groups[1] = group("vcctl-fra-app", "sg-app", app);
        let app = wanted_rules(Tier::App, 8000, &found);
        assert_eq!((app[1].from_port, &app[1].source), (9464, &RuleSource::Group("sg-app".into())));
        found.groups[1] = group("vcctl-fra-app", "sg-app", app);
        let db = wanted_rules(Tier::Db, 8000, &found);
        assert_eq!((db[0].from_port, &db[0].source), (5432, &RuleSource::Group("sg-app".into())));
        // The app group opened to the world by hand: drift, revoked.
        let mut hand = found.groups[1].clone().unwrap();
        hand.rules.push(Rule::tcp(8000, "0.0.0.0/0", "by hand"));
        found.groups[1] = Some(hand);
        let changes = plan(&names, &found, &settings(), 8000).unwrap();
        let hand_rule = Rule::tcp(8000, "0.0.0.0/0", "by hand");
        assert!(
            changes.contains(&change(
                Action::Delete,
                "rule on vcctl-fra-app".into(),
                "tcp/8000 from 0.0.0.0/0 (by hand): not in the stack file (added by hand, or no longer asked for)"
                    .into(),
                TierOp::Rules(Tier::App, RuleOp::Revoke(vec![hand_rule])),
            )),
            "{changes:?}"
        );
    }

    #[test]
    fn a_new_chain_is_planned_with_placeholders_its_apply_resolves_in_order() {
        let names = TierNames::of("fra", "0123456789abcdef");
        let planned = plan(&names, &TiersFound::nothing(&names), &settings(), 8000).unwrap();
        let TierOp::CreateGroup(Tier::App, rules) = &planned[1].op else { panic!("{planned:?}") };
        assert_eq!(rules[0].source, RuleSource::Group("(group lb)".into()));
        let mut ids = Ids([Some("sg-lb".into()), None, None]);
        assert_eq!(ids.resolve(&rules[0]).unwrap().source, RuleSource::Group("sg-lb".into()));
        assert!(ids.resolve(&rules[1]).is_err(), "the app group is not made yet: {:?}", rules[1]);
        ids.0[1] = Some("sg-app".into());
        assert_eq!(ids.resolve(&rules[1]).unwrap().source, RuleSource::Group("sg-app".into()));
        let ops: Vec<&TierOp> = planned.iter().map(|c| &c.op).skip(3).collect();
        assert_eq!(ops, [&TierOp::CreateBucket, &TierOp::CreateSubnetGroup, &TierOp::CreateDb]);
    }

    #[test]
    fn a_database_is_changed_toward_the_file_and_never_shrunk_or_left_unencrypted() {
        let d = Db {
            id: "vcctl-fra".into(),
            status: "available".into(),
            instance_class: "db.t4g.micro".into(),
            storage_gb: 20,
            multi_az: false,
            backup_retention_days: 7,
            encrypted: true,
            public: false,
            deletion_protection: true,
            security_groups: vec!["sg-db".into()],
            endpoint: None,
            secret_arn: None,
            owner: Owner::default(),
        };
        assert!(db_changes(&d, &settings(), Some("sg-db")).unwrap().is_empty());
        let bigger = RdsSettings { instance_class: "db.t4g.small".into(), multi_az: true, ..settings() };
        let details: Vec<String> =
            db_changes(&d, &bigger, Some("sg-db")).unwrap().into_iter().map(|c| c.detail).collect();
        assert_eq!(details, ["class: db.t4g.micro -> db.t4g.small", "Multi-AZ: false -> true"]);
        let unprotected = Db { deletion_protection: false, public: true, ..d.clone() };
        assert_eq!(db_changes(&unprotected, &settings(), Some("sg-db")).unwrap().len(), 2);
        let err = db_changes(&Db { storage_gb: 50, ..d.clone() }, &settings(), Some("sg-db")).unwrap_err();
        assert!(err.to_string().contains("RDS storage cannot shrink"), "{err}");
        let err = db_changes(&Db { encrypted: false, ..d }, &settings(), Some("sg-db")).unwrap_err();
        assert!(err.to_string().contains("RDS cannot encrypt one in place"), "{err}");
    }
}
