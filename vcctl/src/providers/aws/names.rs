//! Every name vcctl gives an AWS resource, in one place: the same on every run, so a
//! resource is found again by name as well as by its tags. Names are per stack; a bucket's
//! name is global, so it carries the stack's id too.

use serde::Serialize;

/// The single box's resources.
#[derive(Debug, Clone, Serialize)]
pub struct BoxNames {
    pub key_pair: String,
    pub security_group: String,
    pub role: String,
    pub policy: String,
    pub instance_profile: String,
    pub instance: String,
    pub address: String,
    pub data_volume: String,
    pub topic: String,
    /// The CI deploy role of `vcctl ci init`, if it was run.
    pub deploy_role: String,
    /// AWS Backup's vault and plan (`aws.backup`), and the role AWS Backup works as.
    pub backup_vault: String,
    pub backup_plan: String,
    pub backup_role: String,
    pub backup_policy: String,
}

impl BoxNames {
    pub fn of(stack: &str) -> BoxNames {
        BoxNames {
            key_pair: format!("vcctl-{stack}"),
            security_group: format!("vcctl-{stack}"),
            role: format!("vcctl-{stack}-host"),
            policy: format!("vcctl-{stack}-least-privilege"),
            instance_profile: format!("vcctl-{stack}-host"),
            instance: format!("vcctl-{stack}"),
            address: format!("vcctl-{stack}"),
            data_volume: format!("vcctl-{stack}-data"),
            topic: alerts_topic(stack),
            deploy_role: deploy_role(stack),
            backup_vault: format!("vcctl-{stack}"),
            backup_plan: format!("vcctl-{stack}"),
            backup_role: format!("vcctl-{stack}-backup"),
            backup_policy: format!("vcctl-{stack}-backup-least-privilege"),
        }
    }
}

/// A `scale:` stack's network and data tiers: the security groups, the release bucket
/// and the database.
pub struct TierNames {
    pub stack: String,
    /// The DB instance and its subnet group.
    pub db: String,
    /// The release bucket: bucket names are global, so the stack's id is in it.
    pub bucket: String,
}

impl TierNames {
    /// The names of stack `stack` with the id `id` (empty before the first `up`).
    pub fn of(stack: &str, id: &str) -> TierNames {
        let bucket = if id.is_empty() { format!("vcctl-{stack}-(id)") } else { format!("vcctl-{stack}-{id}") };
        TierNames { stack: stack.to_string(), db: format!("vcctl-{stack}"), bucket }
    }

    /// The security group of the tier named `tier` (`lb`, `app`, `db`).
    pub fn security_group(&self, tier: &str) -> String {
        format!("vcctl-{}-{tier}", self.stack)
    }
}

/// A `scale:` stack's instances: their key pair, role, launch template and group.
pub struct InstanceNames {
    pub stack: String,
    /// The key pair instances let log in with (the stack's public key).
    pub key_pair: String,
    /// The role, its instance profile, the launch template and the group.
    pub role: String,
    pub policy: String,
    pub group: String,
    pub cpu_policy: String,
    /// The CI deploy role of `vcctl ci init`, if it was run.
    pub deploy_role: String,
}

impl InstanceNames {
    pub fn of(stack: &str) -> InstanceNames {
        InstanceNames {
            stack: stack.to_string(),
            key_pair: format!("vcctl-{stack}"),
            role: format!("vcctl-{stack}-app"),
            policy: format!("vcctl-{stack}-app-least-privilege"),
            group: format!("vcctl-{stack}"),
            cpu_policy: format!("vcctl-{stack}-cpu"),
            deploy_role: deploy_role(stack),
        }
    }
}

/// The deploy role `ci init` makes for `stack`; `destroy` deletes it with the stack (the
/// account's OIDC provider stays: other stacks and repositories may use it).
pub fn deploy_role(stack: &str) -> String {
    format!("vcctl-deploy-{stack}")
}

/// The alarms' topic, of either shape.
pub fn alerts_topic(stack: &str) -> String {
    format!("vcctl-{stack}-alerts")
}

/// The load balancer and its target group: at most 32 characters, and not ending in `-`.
pub fn load_balancer(stack: &str) -> String {
    let mut n: String = format!("vcctl-{stack}").chars().take(32).collect();
    while n.ends_with('-') {
        n.pop();
    }
    n
}

/// The snapshots `backup` takes of the single box's data volume.
pub fn backup(stack: &str) -> String {
    format!("vcctl-{stack}-backup")
}

/// In a `scale:` stack's bucket: the serving release's pointer.
pub const POINTER: &str = "serving";
/// A `scale:` stack's audit trail in its bucket: one object per entry, its key starting
/// with the entry's UTC time.
pub const AUDIT: &str = "audit/";
/// The bucket's ingest token (made by `up`, read by instances and deploys).
pub const TOKEN: &str = "host/ingest-token";
/// The service's secrets (`vcctl secrets`), in the secrets file's format: what every
/// instance's boot and every deploy copy to `/etc/vehicleconnect/secrets`.
pub const SECRETS: &str = "host/secrets";
/// The password of the service's own database role, which each instance's boot sets with
/// the master's login (RDS's secret); the service never logs in as the master.
pub const DB_PASSWORD: &str = "host/db-password";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_names_fit_aws_limits() {
        assert_eq!(load_balancer("fra"), "vcctl-fra");
        assert_eq!(load_balancer("a-very-long-stack-name-of-32-char"), "vcctl-a-very-long-stack-name-of");
        assert!(load_balancer("abcdefghijklmnopqrstuvwxyz-abcde").len() <= 32);
    }

    #[test]
    fn names_are_per_stack_and_the_bucket_per_id() {
        let (a, b) = (BoxNames::of("fra"), BoxNames::of("fra-eu"));
        assert_ne!(a.key_pair, b.key_pair);
        assert_eq!(a.topic, alerts_topic("fra"));
        assert_eq!(a.deploy_role, InstanceNames::of("fra").deploy_role);
        assert_eq!(TierNames::of("fra", "k3x").bucket, "vcctl-fra-k3x");
        assert_eq!(TierNames::of("fra", "k3x").security_group("db"), "vcctl-fra-db");
    }
}
