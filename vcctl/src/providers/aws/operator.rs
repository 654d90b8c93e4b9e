//! `vcctl iam-policy`: the least privilege of the person (or pipeline) that runs `plan`,
//! `up`, `deploy`, `status`, `backup`, `ci init` and `destroy` on one stack. The tests
//! record every call those commands make against the emulator and evaluate each against
//! this document (vcctl/tests/aws/least_privilege.rs).
//!
//! IAM, S3, SNS and CloudWatch alarms are limited to the stack's own names: IAM is where a
//! broad grant becomes every other grant. The other services are limited by action: EC2,
//! ELB, Auto Scaling, RDS, ACM and Route 53 name their resources by generated ids, and
//! their describe calls cannot be limited at all.

use serde_json::{Value, json};

use crate::providers::aws::names;

/// Which stack the policy is for: its name, region, account and shape.
pub struct For<'a> {
    pub stack: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub scale: bool,
    /// The release bucket's name, once the stack has an id (`vcctl-<stack>-<id>`).
    pub bucket: Option<&'a str>,
}

const EC2: &[&str] = &[
    "DescribeAddresses",
    "DescribeImages",
    "DescribeInstanceTypeOfferings",
    "DescribeInstances",
    "DescribeInstanceAttribute",
    "DescribeKeyPairs",
    "DescribeSecurityGroupRules",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSubnets",
    "DescribeVolumes",
    "DescribeVpcs",
    "AllocateAddress",
    "AssociateAddress",
    "ReleaseAddress",
    "ImportKeyPair",
    "DeleteKeyPair",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "CreateTags",
    "DeleteTags",
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
    "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions",
    "GetConsoleOutput",
    "CreateVolume",
    "AttachVolume",
    "DetachVolume",
    "ModifyVolume",
    "DeleteVolume",
    "CreateSnapshot",
    "DeleteSnapshot",
];

/// EC2 calls only a `scale:` stack makes.
const EC2_SCALE: &[&str] = &[
    "DescribeLaunchTemplates",
    "DescribeLaunchTemplateVersions",
    "CreateLaunchTemplate",
    "CreateLaunchTemplateVersion",
    "DeleteLaunchTemplate",
    // CloudFront's origin-facing prefix list, for the load balancer's group (`cdn: true`).
    "DescribeManagedPrefixLists",
];

const IAM_ROLES: &[&str] = &[
    "GetRole",
    "CreateRole",
    "TagRole",
    "UpdateAssumeRolePolicy",
    "GetRolePolicy",
    "PutRolePolicy",
    "ListRolePolicies",
    "ListAttachedRolePolicies",
    "DeleteRolePolicy",
    "DetachRolePolicy",
    "DeleteRole",
    "GetInstanceProfile",
    "CreateInstanceProfile",
    "TagInstanceProfile",
    "AddRoleToInstanceProfile",
    "RemoveRoleFromInstanceProfile",
    "DeleteInstanceProfile",
];

const SCALE: &[(&str, &[&str])] = &[
    (
        "elasticloadbalancing",
        &[
            "DescribeLoadBalancers",
            "DescribeListeners",
            "DescribeTargetGroups",
            "DescribeTargetHealth",
            "DescribeTags",
            "CreateLoadBalancer",
            "DeleteLoadBalancer",
            "SetSecurityGroups",
            "CreateListener",
            "ModifyListener",
            "DeleteListener",
            "CreateTargetGroup",
            "ModifyTargetGroupAttributes",
            "DeleteTargetGroup",
            "RegisterTargets",
            "DeregisterTargets",
            "AddTags",
        ],
    ),
    (
        "autoscaling",
        &[
            "DescribeAutoScalingGroups",
            "DescribePolicies",
            "CreateAutoScalingGroup",
            "UpdateAutoScalingGroup",
            "AttachLoadBalancerTargetGroups",
            "PutScalingPolicy",
            "DeletePolicy",
            "TerminateInstanceInAutoScalingGroup",
            "DeleteAutoScalingGroup",
        ],
    ),
    (
        "rds",
        &[
            "DescribeDBInstances",
            "DescribeDBSubnetGroups",
            "DescribeDBSnapshots",
            "CreateDBSnapshot",
            "CreateDBSubnetGroup",
            "CreateDBInstance",
            "RestoreDBInstanceFromDBSnapshot",
            "RestoreDBInstanceToPointInTime",
            "ModifyDBInstance",
            "DeleteDBInstance",
            "DeleteDBSubnetGroup",
            "AddTagsToResource",
        ],
    ),
    (
        "acm",
        &[
            "ListCertificates",
            "DescribeCertificate",
            "ListTagsForCertificate",
            "RequestCertificate",
            "DeleteCertificate",
            "AddTagsToCertificate",
        ],
    ),
    ("route53", &["ListHostedZonesByName", "ListResourceRecordSets", "ChangeResourceRecordSets", "GetChange"]),
    // Finding the group by name cannot be narrowed to it.
    ("logs", &["DescribeLogGroups"]),
    // Distributions are found by listing (`cdn: true`): it cannot be narrowed.
    ("cloudfront", &["ListDistributions"]),
    // Nor can finding the web ACL by name (`waf:`).
    ("wafv2", &["ListWebACLs"]),
];

/// What a global stack's own commands call (`plan`, `up`, `status`, `destroy`): the regions'
/// commands run with each region's own policy.
const GLOBAL: &[(&str, &str, &[&str])] = &[
    (
        // Health checks have random ids and are found by listing; records live in a zone
        // found by name: neither can be named before it exists.
        "RoutedRecordsAndHealthChecks",
        "route53",
        &[
            "ListHostedZonesByName",
            "ListResourceRecordSets",
            "ChangeResourceRecordSets",
            "GetChange",
            "ListHealthChecks",
            "CreateHealthCheck",
            "DeleteHealthCheck",
            "GetHealthCheckStatus",
            "ChangeTagsForResource",
        ],
    ),
    (
        "TheGlobalNamesCertificates",
        "acm",
        &[
            "ListCertificates",
            "DescribeCertificate",
            "ListTagsForCertificate",
            "RequestCertificate",
            "AddTagsToCertificate",
            "DeleteCertificate",
        ],
    ),
    (
        "TheCertificatesOnTheRegionsListeners",
        "elasticloadbalancing",
        &[
            "DescribeLoadBalancers",
            // Whose load balancer it is (its tags), as every finding of one asks.
            "DescribeTags",
            "DescribeListeners",
            "DescribeListenerCertificates",
            "AddListenerCertificates",
            "RemoveListenerCertificates",
        ],
    ),
    ("FindTheRegionsAddresses", "ec2", &["DescribeAddresses"]),
];

/// `vcctl iam-policy` of a global stack.
pub fn global_policy(stack: &str) -> Value {
    let mut statements: Vec<Value> = GLOBAL
        .iter()
        .map(|(sid, service, names)| json!({"Sid": sid, "Effect": "Allow", "Action": actions(service, names), "Resource": "*"}))
        .collect();
    statements.extend(edge_statements(stack, "*"));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The account's distributions: their ids are generated, and vcctl trusts its own by their
/// tags; making one with its tags is CreateDistribution and TagResource to IAM.
fn distributions(account: &str) -> Value {
    json!({
        "Sid": "TheAccountsDistributions",
        "Effect": "Allow",
        "Action": ["cloudfront:GetDistribution", "cloudfront:ListTagsForResource", "cloudfront:CreateDistribution",
                   "cloudfront:TagResource", "cloudfront:UpdateDistribution", "cloudfront:DeleteDistribution"],
        "Resource": format!("arn:aws:cloudfront::{account}:distribution/*")
    })
}

/// The distribution in front of a global stack (`global.cdn`) and its web ACL, whose
/// account the policy does not know (`*`): any account's distributions by id, the stack's
/// ACL by name, in us-east-1 (CloudFront's), and the managed rule set it counts with.
fn edge_statements(stack: &str, account: &str) -> Vec<Value> {
    vec![
        // Finding them cannot be narrowed, nor can reading what the ACL blocked (`status`).
        json!({"Sid": "FindTheEdgeAndWhatItBlocked", "Effect": "Allow",
               "Action": ["cloudfront:ListDistributions", "wafv2:ListWebACLs", "cloudwatch:GetMetricStatistics"],
               "Resource": "*"}),
        distributions(account),
        json!({
            "Sid": "ItsWebAclOnly",
            "Effect": "Allow",
            "Action": ["wafv2:CreateWebACL", "wafv2:GetWebACL", "wafv2:UpdateWebACL", "wafv2:DeleteWebACL",
                       "wafv2:ListTagsForResource", "wafv2:TagResource"],
            "Resource": [format!("arn:aws:wafv2:us-east-1:{account}:global/webacl/vcctl-{stack}/*"),
                         format!("arn:aws:wafv2:us-east-1:{account}:regional/webacl/vcctl-{stack}/*"),
                         "arn:aws:wafv2:*:*:*/managedruleset/*/*"]
        }),
    ]
}

fn actions(service: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{service}:{n}")).collect()
}

/// The policy document, its statements named for what they allow.
pub fn policy(f: &For) -> Value {
    let (stack, region, account) = (f.stack, f.region, f.account);
    let mut ec2 = actions("ec2", EC2);
    if f.scale {
        ec2.extend(actions("ec2", EC2_SCALE));
    }
    // The instance role by its name and path, and by its name alone (how IAM names one
    // asked for before it exists); the deploy role has no path.
    let instance_role = if f.scale { names::InstanceNames::of(stack).role } else { names::BoxNames::of(stack).role };
    let iam = |kind: &str, path: &str, name: &str| format!("arn:aws:iam::{account}:{kind}/{path}{name}");
    let in_path = format!("vcctl/{stack}/");
    let roles = [
        iam("role", &in_path, &instance_role),
        iam("role", "", &instance_role),
        iam("instance-profile", &in_path, &instance_role),
        iam("instance-profile", "", &instance_role),
        iam("role", "", &names::deploy_role(stack)),
        iam("role", &in_path, &format!("vcctl-{stack}-backup")),
    ];
    let mut statements = vec![
        json!({"Sid": "Ec2ByAction", "Effect": "Allow", "Action": ec2, "Resource": "*"}),
        json!({"Sid": "ItsRolesAndProfilesOnly", "Effect": "Allow", "Action": actions("iam", IAM_ROLES), "Resource": roles}),
        json!({
            "Sid": "PassItsInstanceRoleToEc2Only",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": iam("role", &in_path, &instance_role),
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
        }),
        json!({"Sid": "FindOidcProviders", "Effect": "Allow", "Action": "iam:ListOpenIDConnectProviders", "Resource": "*"}),
        json!({
            "Sid": "MakeGitHubsOidcProvider",
            "Effect": "Allow",
            "Action": "iam:CreateOpenIDConnectProvider",
            "Resource": format!("arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com")
        }),
        json!({
            "Sid": "ItsAlarmsOnly",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource", "cloudwatch:ListTagsForResource"],
            "Resource": format!("arn:aws:cloudwatch:{region}:{account}:alarm:vcctl-{stack}-*")
        }),
        json!({
            "Sid": "ReadAlarmsAndMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricStatistics"],
            "Resource": "*"
        }),
        json!({
            "Sid": "ItsAlertTopicOnly",
            "Effect": "Allow",
            "Action": ["sns:CreateTopic", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:Subscribe",
                       "sns:DeleteTopic", "sns:TagResource", "sns:ListTagsForResource", "sns:Publish"],
            "Resource": format!("arn:aws:sns:{region}:{account}:{}", names::alerts_topic(stack))
        }),
        // Unsubscribe has no resource type in IAM: it cannot be limited to the topic.
        json!({"Sid": "EndSubscriptions", "Effect": "Allow", "Action": "sns:Unsubscribe", "Resource": "*"}),
    ];
    if !f.scale {
        statements.extend(backup_statements(
            stack,
            region,
            account,
            &iam("role", &in_path, &format!("vcctl-{stack}-backup")),
        ));
    }
    if f.scale {
        let bucket = f.bucket.map_or_else(|| format!("vcctl-{stack}-*"), str::to_string);
        statements.extend(scale_statements(bucket, stack, region, account));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// `bucket`: the stack's release bucket, or a pattern before its first `up`.
/// The box's scheduled backups (`aws.backup`): its vault, its plan and selection (plans
/// have random ids, so any plan; listing them cannot be narrowed), and its role passed to
/// AWS Backup only.
fn backup_statements(stack: &str, region: &str, account: &str, role: &str) -> Vec<Value> {
    let vault = format!("arn:aws:backup:{region}:{account}:backup-vault:vcctl-{stack}");
    vec![
        json!({
            "Sid": "ItsBackupVaultOnly",
            "Effect": "Allow",
            "Action": ["backup:CreateBackupVault", "backup:DescribeBackupVault", "backup:DeleteBackupVault",
                       "backup:PutBackupVaultLockConfiguration", "backup:DeleteBackupVaultLockConfiguration",
                       "backup:ListRecoveryPointsByBackupVault", "backup:ListTags", "backup:TagResource"],
            "Resource": vault
        }),
        json!({
            "Sid": "DeleteItsRecoveryPoints",
            "Effect": "Allow",
            "Action": "backup:DeleteRecoveryPoint",
            "Resource": [format!("arn:aws:ec2:{region}::snapshot/*"), format!("arn:aws:backup:{region}:{account}:recovery-point:*")]
        }),
        json!({
            "Sid": "BackupPlans",
            "Effect": "Allow",
            "Action": ["backup:CreateBackupPlan", "backup:GetBackupPlan", "backup:UpdateBackupPlan", "backup:DeleteBackupPlan",
                       "backup:CreateBackupSelection", "backup:GetBackupSelection", "backup:ListBackupSelections",
                       "backup:DeleteBackupSelection", "backup:ListTags", "backup:TagResource"],
            "Resource": format!("arn:aws:backup:{region}:{account}:backup-plan:*")
        }),
        json!({"Sid": "ListBackupPlans", "Effect": "Allow", "Action": "backup:ListBackupPlans", "Resource": "*"}),
        json!({
            "Sid": "PassItsBackupRoleToAwsBackupOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}}
        }),
    ]
}

fn scale_statements(bucket: String, stack: &str, region: &str, account: &str) -> Vec<Value> {
    let mut out: Vec<Value> = SCALE
        .iter()
        .map(|(service, names)| {
            let sid: String = service.split(|c: char| !c.is_ascii_alphanumeric()).collect();
            json!({"Sid": format!("{sid}ByAction"), "Effect": "Allow", "Action": actions(service, names), "Resource": "*"})
        })
        .collect();
    out.push(json!({
        "Sid": "ItsBucketOnly",
        "Effect": "Allow",
        "Action": ["s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning",
                   "s3:PutBucketVersioning", "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:GetEncryptionConfiguration",
                   "s3:PutEncryptionConfiguration", "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                   "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
    }));
    out.push(distributions(account));
    // Its web ACL by name, in the stack's region (on the load balancer) and CloudFront's;
    // the managed rule set it counts with; putting it on the load balancer is ELB's too.
    let acl = |scope: &str, region: &str| format!("arn:aws:wafv2:{region}:{account}:{scope}/webacl/vcctl-{stack}/*");
    out.push(json!({
        "Sid": "ItsWebAclOnly",
        "Effect": "Allow",
        "Action": ["wafv2:CreateWebACL", "wafv2:GetWebACL", "wafv2:UpdateWebACL", "wafv2:DeleteWebACL",
                   "wafv2:ListTagsForResource", "wafv2:TagResource", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
                   "wafv2:GetWebACLForResource"],
        "Resource": [acl("regional", region), acl("global", "us-east-1"),
                     format!("arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/{}/*",
                             names::load_balancer(stack)),
                     "arn:aws:wafv2:*:*:*/managedruleset/*/*"]
    }));
    // ELB's side of putting an ACL on a load balancer names no resource type in IAM.
    out.push(json!({"Sid": "PutAWebAclOnALoadBalancer", "Effect": "Allow", "Action": "elasticloadbalancing:SetWebAcl", "Resource": "*"}));
    out.push(json!({
        "Sid": "ItsLogGroupOnly",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup", "logs:TagResource",
                   "logs:ListTagsForResource", "logs:FilterLogEvents"],
        // The group's ARN, and the form with `:*` that some of these calls are authorized on.
        "Resource": [format!("arn:aws:logs:{region}:{account}:log-group:/vcctl/{stack}"),
                     format!("arn:aws:logs:{region}:{account}:log-group:/vcctl/{stack}:*")]
    }));
    // RDS makes each DB instance's master secret (`ManageMasterUserPassword`, on create and
    // on restore) with the caller's rights, as the RDS User Guide's "Permissions required for
    // Secrets Manager integration" says: these calls are RDS's, so no recording of vcctl's
    // own requests shows them, and the emulator does not ask. RDS names its secrets `rds!…`.
    out.push(json!({
        "Sid": "LetRdsMakeTheMasterSecret",
        "Effect": "Allow",
        "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:RotateSecret"],
        "Resource": format!("arn:aws:secretsmanager:{region}:{account}:secret:rds!*")
    }));
    out.push(json!({
        "Sid": "LetRdsFindTheSecretsKey",
        "Effect": "Allow",
        "Action": "kms:DescribeKey",
        "Resource": format!("arn:aws:kms:{region}:{account}:key/*")
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_is_limited_to_the_stacks_own_names() {
        let p = policy(&For { stack: "fra", region: "eu-central-1", account: "1", scale: false, bucket: None });
        let text = p.to_string();
        assert!(!text.contains("\"iam:*\"") && !text.contains("\"*:*\""), "{text}");
        let iam = &p["Statement"][1];
        assert_eq!(iam["Resource"][0], "arn:aws:iam::1:role/vcctl/fra/vcctl-fra-host");
        assert!(!iam["Resource"].to_string().contains('*'), "{iam}");
        assert!(!text.contains("s3:"), "a single box has no bucket: {text}");
        let scaled = policy(&For { stack: "fra", region: "eu-central-1", account: "1", scale: true, bucket: None });
        assert!(scaled.to_string().contains("arn:aws:s3:::vcctl-fra-*/*"));
        let known = policy(&For {
            stack: "fra",
            region: "eu-central-1",
            account: "1",
            scale: true,
            bucket: Some("vcctl-fra-ab12"),
        });
        assert!(known.to_string().contains("\"arn:aws:s3:::vcctl-fra-ab12/*\""));
    }
}
