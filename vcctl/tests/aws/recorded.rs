//! What a command asked of AWS, from moto's recorder (`MOTO_RECORDER_FILEPATH`, switched on
//! and off through `/moto-api/recorder/`), turned into the authorizations AWS would make
//! for it (iam_eval.rs). Each command under test signs with an access key of its own, so
//! the test's own SDK calls in the same window are told apart.
//!
//! An action vcctl's policies scope to resources or conditions needs a line in
//! `authorizations`; one that is not there is authorized as `*` with no condition keys,
//! which a scoped statement then denies: the test fails and names it, never passes.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use super::iam_eval::Authz;
use super::{Moto, Project};

pub const REGION: &str = "eu-central-1";
/// The keys commands sign with, by the role they stand for: the deploy role GitHub Actions
/// assumes, an instance's role, and the operator.
pub const CI_KEY: &str = "AKIAVCCTLTESTCIROLE0";
pub const INSTANCE_KEY: &str = "AKIAVCCTLTESTINSTANC";
/// The person running vcctl (every command of the tests, unless one says otherwise).
pub const OPERATOR_KEY: &str = "AKIAVCCTLTESTOPERATR";
/// Moto's account for keys it does not know.
pub const ACCOUNT: &str = "123456789012";

/// One request, as AWS would name it: `service:Action` and its parameters (query or JSON
/// body, flattened to `Name.1.Key` form), with the S3 bucket and key when it is S3.
#[derive(Debug, Clone)]
pub struct Call {
    pub key_id: String,
    pub action: String,
    pub params: BTreeMap<String, String>,
    pub bucket: String,
    pub object: String,
    /// The objects of an S3 DeleteObjects: (key, whether a version is named).
    pub deleted: Vec<(String, bool)>,
}

impl Moto {
    async fn recorder(&self, what: &str) {
        let url = format!("{}/moto-api/recorder/{what}", self.url);
        let answer = super::common::http().post(&url).send().await.unwrap();
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
    }

    /// Starts recording every request, from now on.
    pub async fn record(&self) {
        self.recorder("reset-recording").await;
        self.recorder("start-recording").await;
    }

    /// Stops recording; what was asked since `record`, signed with `key_id`.
    pub async fn recorded(&self, key_id: &str) -> Vec<Call> {
        self.recorder("stop-recording").await;
        let text = std::fs::read_to_string(self.recording()).unwrap_or_default();
        // A stream, not lines: moto's server threads append an entry and its newline in two
        // writes, so two entries may share a line.
        let entries = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
        let calls: Vec<Call> = entries.map(|e| e.expect("a recorded request")).filter_map(|e| parse(&e)).collect();
        calls.into_iter().filter(|c| c.key_id == key_id).collect()
    }
}

fn header<'a>(entry: &'a Value, name: &str) -> &'a str {
    let headers = entry["headers"].as_object().expect("headers");
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str()).unwrap_or("")
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&join(prefix, k), v, out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| flatten(&join(prefix, &(i + 1).to_string()), v, out)),
        Value::String(s) => drop(out.insert(prefix.to_string(), s.clone())),
        other => drop(out.insert(prefix.to_string(), other.to_string())),
    }
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") }
}

/// SigV4's service name, as IAM prefixes its actions.
fn prefix(signing: &str) -> &str {
    match signing {
        "monitoring" => "cloudwatch",
        other => other,
    }
}

fn parse(entry: &Value) -> Option<Call> {
    let auth = header(entry, "Authorization");
    let credential = auth.split("Credential=").nth(1)?.split(',').next()?;
    let parts: Vec<&str> = credential.split('/').collect();
    let (key_id, service) = (parts[0].to_string(), prefix(parts[3]).to_string());
    let mut body = entry["body"].as_str().unwrap_or("").to_string();
    if entry["body_encoded"] == true {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&body).unwrap_or_default();
        body = String::from_utf8_lossy(&bytes).into_owned();
    }
    let url = entry["url"].as_str().unwrap_or("");
    let (path, query) = url.split_once("://").map_or(url, |(_, r)| r).split_once('/').map_or(("", ""), |(_, p)| {
        let (path, query) = p.split_once('?').unwrap_or((p, ""));
        (path, query)
    });
    let method = entry["method"].as_str().unwrap_or("GET");
    let mut call = Call {
        key_id,
        action: String::new(),
        params: BTreeMap::new(),
        bucket: String::new(),
        object: String::new(),
        deleted: Vec::new(),
    };
    let target = header(entry, "X-Amz-Target");
    if service == "s3" {
        let (bucket, object) = path.split_once('/').unwrap_or((path, ""));
        (call.bucket, call.object) = (bucket.to_string(), decode(object));
        call.action = format!("s3:{}", s3_action(method, query, !object.is_empty()));
        // The query's parameters: a listing's `prefix` is a condition key (s3:prefix).
        for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
            call.params.insert(decode(k), decode(v));
        }
        for o in body.split("<Object>").skip(1) {
            let key = o.split("<Key>").nth(1).and_then(|k| k.split("</Key>").next()).unwrap_or("");
            call.deleted.push((key.to_string(), o.contains("<VersionId>")));
        }
    } else if !target.is_empty() {
        call.action = format!("{service}:{}", target.rsplit('.').next().unwrap_or(""));
        flatten("", &serde_json::from_str(&body).unwrap_or(Value::Null), &mut call.params);
    } else if header(entry, "Content-Type").starts_with("application/x-www-form-urlencoded") {
        for (k, v) in body.split('&').filter_map(|p| p.split_once('=')) {
            call.params.insert(decode(k), decode(v));
        }
        call.action = format!("{service}:{}", call.params.get("Action")?);
    } else if service == "backup" {
        flatten("", &serde_json::from_str(&body).unwrap_or(Value::Null), &mut call.params);
        let (action, resource) = backup_route(method, path);
        call.action = format!("backup:{action}");
        call.params.insert("Resource".into(), resource);
    } else if service == "route53" {
        call.action = format!("route53:{}", route53_action(method, path));
    } else if service == "cloudfront" {
        call.action = format!("cloudfront:{}", cloudfront_action(method, path, query));
        // The distribution in the path, the tagged resource in the query.
        if let ["2020-05-31", "distribution", id, ..] = path.split('/').collect::<Vec<_>>().as_slice() {
            call.params.insert("Id".into(), id.to_string());
        }
        for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
            call.params.insert(decode(k), decode(v));
        }
    } else {
        // Another REST API: named by its path, which no policy allows.
        call.action = format!("{service}:{method} /{path}");
    }
    Some(call)
}

/// The IAM action of a Route 53 REST request, by botocore's routes for the calls vcctl
/// makes (an unknown route is named so, and no policy allows it). Route 53's statements are
/// by action: its resources have ids made when they are.
fn route53_action(method: &str, path: &str) -> String {
    let seg: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let action = match (method, seg.as_slice()) {
        ("GET", ["2013-04-01", "hostedzonesbyname"]) => "ListHostedZonesByName",
        ("POST", ["2013-04-01", "hostedzone"]) => "CreateHostedZone",
        ("GET", ["2013-04-01", "hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("POST", ["2013-04-01", "hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", ["2013-04-01", "change", _]) => "GetChange",
        ("GET", ["2013-04-01", "healthcheck"]) => "ListHealthChecks",
        ("POST", ["2013-04-01", "healthcheck"]) => "CreateHealthCheck",
        ("DELETE", ["2013-04-01", "healthcheck", _]) => "DeleteHealthCheck",
        ("GET", ["2013-04-01", "healthcheck", _, "status"]) => "GetHealthCheckStatus",
        ("POST", ["2013-04-01", "tags", _, _]) => "ChangeTagsForResource",
        _ => return format!("UnknownRoute({method} /{path})"),
    };
    action.to_string()
}

/// The operation of a CloudFront REST request, by botocore's routes (2020-05-31) for the
/// calls vcctl makes (an unknown route is named so, and no policy allows it).
fn cloudfront_action(method: &str, path: &str, query: &str) -> String {
    let seg: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let action = match (method, seg.as_slice()) {
        ("GET", ["2020-05-31", "distribution"]) => "ListDistributions",
        ("POST", ["2020-05-31", "distribution"]) if query.contains("WithTags") => "CreateDistributionWithTags",
        ("POST", ["2020-05-31", "distribution"]) => "CreateDistribution",
        ("GET", ["2020-05-31", "distribution", _]) => "GetDistribution",
        ("GET", ["2020-05-31", "distribution", _, "config"]) => "GetDistributionConfig",
        ("PUT", ["2020-05-31", "distribution", _, "config"]) => "UpdateDistribution",
        ("DELETE", ["2020-05-31", "distribution", _]) => "DeleteDistribution",
        ("GET", ["2020-05-31", "tagging"]) => "ListTagsForResource",
        ("POST", ["2020-05-31", "tagging"]) if query.contains("Operation=Tag") => "TagResource",
        _ => return format!("UnknownRoute({method} /{path})"),
    };
    action.to_string()
}

/// WAFv2's web ACLs by their ARNs: named by `Name` and `Scope` (CloudFront's live in
/// us-east-1, `global/`), or given whole; the load balancer it goes on is ELB's `SetWebAcl`.
fn wafv2(call: &Call) -> Vec<Authz> {
    let param = |k: &str| call.params.get(k).cloned().unwrap_or_default();
    let (region, scope) = match param("Scope").as_str() {
        "CLOUDFRONT" => ("us-east-1", "global"),
        _ => (REGION, "regional"),
    };
    let acl = match param("Id").as_str() {
        "" => format!("arn:aws:wafv2:{region}:{ACCOUNT}:{scope}/webacl/{}/*", param("Name")),
        id => format!("arn:aws:wafv2:{region}:{ACCOUNT}:{scope}/webacl/{}/{id}", param("Name")),
    };
    let rules = format!("arn:aws:wafv2:{region}:{ACCOUNT}:{scope}/managedruleset/AWS/AWSManagedRulesCommonRuleSet");
    match call.action.as_str() {
        "wafv2:ListWebACLs" => vec![Authz::new(&call.action, "*")],
        "wafv2:GetWebACLForResource" => vec![Authz::new(&call.action, &param("ResourceArn"))],
        "wafv2:CreateWebACL" => vec![
            Authz::new(&call.action, &acl),
            Authz::new(&call.action, &rules),
            Authz::new("wafv2:TagResource", &acl),
        ],
        "wafv2:UpdateWebACL" => vec![Authz::new(&call.action, &acl), Authz::new(&call.action, &rules)],
        "wafv2:ListTagsForResource" => vec![Authz::new(&call.action, &param("ResourceARN"))],
        "wafv2:AssociateWebACL" | "wafv2:DisassociateWebACL" => {
            let mut all = vec![
                Authz::new(&call.action, &param("ResourceArn")),
                Authz::new("elasticloadbalancing:SetWebAcl", "*"),
            ];
            all.extend(call.params.get("WebACLArn").map(|a| Authz::new(&call.action, a)));
            all
        }
        _ => vec![Authz::new(&call.action, &acl)],
    }
}

/// CloudFront's distributions by their ARNs: the id in the path, or the tagged resource.
fn cloudfront(call: &Call) -> Vec<Authz> {
    let dist = |id: &str| format!("arn:aws:cloudfront::{ACCOUNT}:distribution/{id}");
    match call.action.as_str() {
        "cloudfront:ListDistributions" => vec![Authz::new(&call.action, "*")],
        // One call, two rights: the distribution and its tags (CloudFront's API reference).
        "cloudfront:CreateDistributionWithTags" => vec![
            Authz::new("cloudfront:CreateDistribution", &dist("*")),
            Authz::new("cloudfront:TagResource", &dist("*")),
        ],
        "cloudfront:CreateDistribution" => vec![Authz::new(&call.action, &dist("*"))],
        "cloudfront:ListTagsForResource" | "cloudfront:TagResource" => {
            vec![Authz::new(&call.action, call.params.get("Resource").map_or("*", String::as_str))]
        }
        a => vec![Authz::new(a, &dist(call.params.get("Id").map_or("*", String::as_str)))],
    }
}

/// The IAM action and resource of an AWS Backup REST request, by botocore's routes for the
/// calls vcctl makes (an unknown route is named so, and no policy allows it).
fn backup_route(method: &str, path: &str) -> (String, String) {
    let seg: Vec<String> = path.trim_end_matches('/').split('/').map(decode).collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let vault = |n: &str| format!("arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{n}");
    let plan = |id: &str| format!("arn:aws:backup:{REGION}:{ACCOUNT}:backup-plan:{id}");
    let (action, resource) = match (method, seg.as_slice()) {
        ("PUT", ["backup-vaults", n]) => ("CreateBackupVault", vault(n)),
        ("GET", ["backup-vaults", n]) => ("DescribeBackupVault", vault(n)),
        ("DELETE", ["backup-vaults", n]) => ("DeleteBackupVault", vault(n)),
        ("PUT", ["backup-vaults", n, "vault-lock"]) => ("PutBackupVaultLockConfiguration", vault(n)),
        ("DELETE", ["backup-vaults", n, "vault-lock"]) => ("DeleteBackupVaultLockConfiguration", vault(n)),
        ("GET", ["backup-vaults", n, "recovery-points"]) => ("ListRecoveryPointsByBackupVault", vault(n)),
        ("DELETE", ["backup-vaults", _, "recovery-points", arn]) => ("DeleteRecoveryPoint", arn.to_string()),
        ("PUT", ["backup", "plans"]) => ("CreateBackupPlan", plan("*")),
        ("GET", ["backup", "plans"]) => ("ListBackupPlans", "*".into()),
        ("GET", ["backup", "plans", id]) => ("GetBackupPlan", plan(id)),
        ("POST", ["backup", "plans", id]) => ("UpdateBackupPlan", plan(id)),
        ("DELETE", ["backup", "plans", id]) => ("DeleteBackupPlan", plan(id)),
        ("PUT", ["backup", "plans", id, "selections"]) => ("CreateBackupSelection", plan(id)),
        ("GET", ["backup", "plans", id, "selections"]) => ("ListBackupSelections", plan(id)),
        ("GET", ["backup", "plans", id, "selections", _]) => ("GetBackupSelection", plan(id)),
        ("DELETE", ["backup", "plans", id, "selections", _]) => ("DeleteBackupSelection", plan(id)),
        ("GET", ["tags", arn]) => ("ListTags", arn.to_string()),
        ("POST", ["tags", arn]) => ("TagResource", arn.to_string()),
        _ => return (format!("UnknownRoute({method} /{path})"), "*".into()),
    };
    (action.to_string(), resource)
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Ok(b) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..(i + 3).min(bytes.len())]).unwrap_or(""), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The IAM action of an S3 REST request (the SDK names its operation in `x-id`).
fn s3_action(method: &str, query: &str, on_object: bool) -> String {
    let sub: Vec<&str> = query.split('&').map(|p| p.split('=').next().unwrap_or("")).collect();
    if let Some(op) = query.split('&').find_map(|p| p.strip_prefix("x-id=")) {
        return match op {
            "HeadObject" => "GetObject",
            "ListObjectsV2" | "HeadBucket" => "ListBucket",
            other => other,
        }
        .to_string();
    }
    if sub.contains(&"versions") {
        return "ListBucketVersions".into();
    }
    if method == "POST" && sub.contains(&"delete") {
        // Several objects (or versions: each needs s3:DeleteObjectVersion, see `authorizations`).
        return "DeleteObjects".into();
    }
    let known =
        ["versioning", "tagging", "lifecycle", "encryption", "publicAccessBlock", "policy", "ownershipControls"];
    if let Some(s) = sub.iter().find(|s| known.contains(s)) {
        let verb = if method == "GET" { "Get" } else { "Put" };
        let name = match *s {
            "versioning" => "BucketVersioning",
            "tagging" if on_object => "ObjectTagging",
            "tagging" => "BucketTagging",
            "lifecycle" => "LifecycleConfiguration",
            "encryption" => "EncryptionConfiguration",
            "publicAccessBlock" => "BucketPublicAccessBlock",
            "ownershipControls" => "BucketOwnershipControls",
            _ => "BucketPolicy",
        };
        return format!("{verb}{name}");
    }
    match (method, on_object) {
        ("GET" | "HEAD", true) => "GetObject",
        ("PUT", true) => "PutObject",
        ("DELETE", true) => "DeleteObject",
        ("GET" | "HEAD", false) => "ListBucket",
        ("PUT", false) => "CreateBucket",
        ("DELETE", false) => "DeleteBucket",
        _ => return format!("UnknownOperation({method} ?{query})"),
    }
    .to_string()
}

fn ec2_arn(id: &str) -> String {
    let kind = match id.split('-').next().unwrap_or("") {
        "i" => "instance",
        "sg" => "security-group",
        "sgr" => "security-group-rule",
        "vol" => "volume",
        "snap" => "snapshot",
        "eipalloc" => "elastic-ip",
        "key" => "key-pair",
        "lt" => "launch-template",
        _ => "unknown",
    };
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{id}")
}

/// `Name.N.Key` / `Name.N.Value` pairs of a query request (tags).
fn pairs(params: &BTreeMap<String, String>, prefix: &str) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = params.get(&format!("{prefix}.{i}.Key"))?;
            Some((key.clone(), params.get(&format!("{prefix}.{i}.Value")).cloned().unwrap_or_default()))
        })
        .collect()
}

fn numbered(params: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    (1..).map_while(|i| params.get(&format!("{prefix}.{i}")).cloned()).collect()
}

fn request_tags(mut a: Authz, tags: &[(String, String)]) -> Authz {
    for (k, v) in tags {
        a = a.with(&format!("aws:RequestTag/{k}"), v).with("aws:TagKeys", k);
    }
    a
}

/// What the emulator held while a command ran, for resources a request names by id or name
/// only: EC2 tags by resource id (a rule the command made and revoked is gone when it ends,
/// and its tags with it), and IAM ARNs by name (`role:NAME`, `instance-profile:NAME`, and
/// `profile-role:NAME` for the role an instance profile holds).
pub type Tags = BTreeMap<String, BTreeMap<String, String>>;

/// Adds the account's IAM roles and instance profiles to `seen`, under `iam`.
pub async fn add_iam(iam: &aws_sdk_iam::Client, seen: &mut Tags) {
    let names = seen.entry("iam".to_string()).or_default();
    for r in iam.list_roles().send().await.unwrap().roles() {
        names.insert(format!("role:{}", r.role_name()), r.arn().to_string());
    }
    for p in iam.list_instance_profiles().send().await.unwrap().instance_profiles() {
        names.insert(format!("instance-profile:{}", p.instance_profile_name()), p.arn().to_string());
        if let Some(role) = p.roles().first() {
            names.insert(format!("profile-role:{}", p.instance_profile_name()), role.arn().to_string());
        }
    }
}

/// Adds every EC2 tag the emulator holds now to `seen`; called while a command runs.
pub async fn add_tags(ec2: &aws_sdk_ec2::Client, seen: &mut Tags) {
    let mut pages = ec2.describe_tags().into_paginator().send();
    while let Some(page) = pages.next().await {
        for t in page.unwrap().tags() {
            let (id, k, v) = (t.resource_id().unwrap_or(""), t.key().unwrap_or(""), t.value().unwrap_or(""));
            seen.entry(id.to_string()).or_default().insert(k.to_string(), v.to_string());
        }
    }
}

/// The authorizations AWS makes for `call`, with the resource tags in `tags`.
pub fn authorizations(call: &Call, tags: &Tags) -> Vec<Authz> {
    let param = |k: &str| call.params.get(k).cloned().unwrap_or_default();
    let on = |id: &str| tagged(Authz::new(&call.action, &ec2_arn(id)), tags, id);
    match call.action.as_str() {
        "ec2:GetConsoleOutput" => vec![on(&param("InstanceId"))],
        "ec2:AuthorizeSecurityGroupIngress" | "ec2:RevokeSecurityGroupIngress" => {
            let mut all = vec![on(&param("GroupId"))];
            all.extend(numbered(&call.params, "SecurityGroupRuleId").iter().map(|r| on(r)));
            if param("TagSpecification.1.ResourceType") == "security-group-rule" {
                // The rule it makes, tagged as it is made: the rule, and the tagging.
                let tags = pairs(&call.params, "TagSpecification.1.Tag");
                let rule = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group-rule/*");
                all.push(request_tags(Authz::new(&call.action, &rule), &tags));
                let create = Authz::new("ec2:CreateTags", &rule).with("ec2:CreateAction", &call.action[4..]);
                all.push(request_tags(create, &tags));
            }
            all
        }
        "ec2:CreateSecurityGroup" => {
            // In a VPC, and the group it makes, tagged as it is made.
            let tags = pairs(&call.params, "TagSpecification.1.Tag");
            let group = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/*");
            let create = Authz::new("ec2:CreateTags", &group).with("ec2:CreateAction", "CreateSecurityGroup");
            vec![
                Authz::new(&call.action, &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{}", param("VpcId"))),
                request_tags(Authz::new(&call.action, &group), &tags),
                request_tags(create, &tags),
            ]
        }
        "ec2:DeleteSecurityGroup" => vec![on(&param("GroupId"))],
        "ec2:CreateTags" | "ec2:DeleteTags" => {
            let tags = pairs(&call.params, "Tag");
            numbered(&call.params, "ResourceId").iter().map(|id| request_tags(on(id), &tags)).collect()
        }
        "elasticloadbalancing:RegisterTargets" | "elasticloadbalancing:DeregisterTargets" => {
            vec![Authz::new(&call.action, &param("TargetGroupArn"))]
        }
        "cloudwatch:PutMetricData" => {
            vec![Authz::new(&call.action, "*").with("cloudwatch:namespace", &param("Namespace"))]
        }
        "secretsmanager:GetSecretValue" => vec![Authz::new(&call.action, &param("SecretId"))],
        "s3:DeleteObjects" => {
            // Each object is authorized on its own; a named version needs DeleteObjectVersion.
            let arn = |k: &str| format!("arn:aws:s3:::{}/{k}", call.bucket);
            let each = call.deleted.iter().map(|(k, version)| {
                Authz::new(if *version { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" }, &arn(k))
            });
            each.collect()
        }
        "s3:ListBucket" => {
            let on = Authz::new(&call.action, &format!("arn:aws:s3:::{}", call.bucket));
            match call.params.get("prefix") {
                Some(prefix) => vec![on.with("s3:prefix", prefix)],
                None => vec![on],
            }
        }
        a if a.starts_with("s3:") => {
            let arn = if call.object.is_empty() {
                format!("arn:aws:s3:::{}", call.bucket)
            } else {
                format!("arn:aws:s3:::{}/{}", call.bucket, call.object)
            };
            vec![Authz::new(a, &arn)]
        }
        // GetCallerIdentity needs no permission at all.
        "sts:GetCallerIdentity" => Vec::new(),
        "ec2:RunInstances" => {
            // The instance profile's role is passed to EC2: iam:PassRole on it.
            let profile = param("IamInstanceProfile.Name");
            let mut all = vec![Authz::new(&call.action, "*")];
            if !profile.is_empty() {
                let role = iam_arn(tags, "profile-role", &profile);
                all.push(Authz::new("iam:PassRole", &role).with("iam:PassedToService", "ec2.amazonaws.com"));
            }
            all
        }
        "iam:CreateOpenIDConnectProvider" => {
            let host = param("Url").trim_start_matches("https://").to_string();
            vec![Authz::new(&call.action, &format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"))]
        }
        a if a.starts_with("iam:") && call.params.contains_key("InstanceProfileName") => {
            vec![Authz::new(a, &iam_arn(tags, "instance-profile", &param("InstanceProfileName")))]
        }
        a if a.starts_with("iam:") && call.params.contains_key("RoleName") => {
            vec![Authz::new(a, &iam_arn(tags, "role", &param("RoleName")))]
        }
        a if a.starts_with("cloudwatch:") => cloudwatch(call),
        a if a.starts_with("wafv2:") => wafv2(call),
        a if a.starts_with("cloudfront:") => cloudfront(call),
        // Unsubscribe names no resource type: it is authorized on `*`.
        "sns:Unsubscribe" => vec![Authz::new(&call.action, "*")],
        a if a.starts_with("sns:") => {
            let topic = ["TopicArn", "ResourceArn"].iter().find_map(|k| call.params.get(*k).cloned());
            let topic = topic
                .or_else(|| {
                    call.params
                        .get("SubscriptionArn")
                        .map(|s| s.rsplit_once(':').map_or(s.as_str(), |(t, _)| t).to_string())
                })
                .or_else(|| call.params.get("Name").map(|n| format!("arn:aws:sns:{REGION}:{ACCOUNT}:{n}")))
                .unwrap_or_else(|| "*".into());
            vec![Authz::new(a, &topic)]
        }
        "backup:CreateBackupSelection" => vec![
            Authz::new(&call.action, &param("Resource")),
            Authz::new("iam:PassRole", &param("BackupSelection.IamRoleArn"))
                .with("iam:PassedToService", "backup.amazonaws.com"),
        ],
        a if a.starts_with("backup:") => vec![Authz::new(a, &param("Resource"))],
        "logs:DescribeLogGroups" => vec![Authz::new(&call.action, "*")],
        a if a.starts_with("logs:") => {
            let group = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{}", param("logGroupName"));
            let arn = match a {
                "logs:CreateLogStream" | "logs:PutLogEvents" => {
                    format!("{group}:log-stream:{}", param("logStreamName"))
                }
                "logs:TagResource" | "logs:ListTagsForResource" => param("resourceArn"),
                _ => group,
            };
            vec![Authz::new(a, &arn)]
        }
        _ => vec![Authz::new(&call.action, "*")],
    }
}

/// The ARN of IAM entity `name` of `kind`, as the emulator held it while the command ran.
fn iam_arn(tags: &Tags, kind: &str, name: &str) -> String {
    let found = tags.get("iam").and_then(|m| m.get(&format!("{kind}:{name}")));
    // One that does not exist (yet) is asked for by its name alone, without a path.
    let kind = kind.trim_start_matches("profile-");
    found.cloned().unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}"))
}

/// CloudWatch alarms, by their ARNs (query or JSON protocol); metrics and reads are `*`.
fn cloudwatch(call: &Call) -> Vec<Authz> {
    let alarm = |name: &str| format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}");
    let mut names = numbered(&call.params, "AlarmNames.member");
    names.extend(numbered(&call.params, "AlarmNames"));
    names.extend(call.params.get("AlarmName").cloned());
    let mut arns: Vec<String> = names.iter().map(|n| alarm(n)).collect();
    arns.extend(call.params.get("ResourceARN").cloned());
    match call.action.as_str() {
        "cloudwatch:DescribeAlarms" | "cloudwatch:GetMetricStatistics" => vec![Authz::new(&call.action, "*")],
        _ if arns.is_empty() => vec![Authz::new(&call.action, "*")],
        _ => arns.iter().map(|a| Authz::new(&call.action, a)).collect(),
    }
}

fn tagged(mut a: Authz, tags: &Tags, id: &str) -> Authz {
    for (k, v) in tags.get(id).into_iter().flatten() {
        a = a.with(&format!("aws:ResourceTag/{k}"), v);
    }
    a
}

/// Every authorization of `calls`.
pub fn all_authorizations(calls: &[Call], tags: &Tags) -> Vec<Authz> {
    calls.iter().flat_map(|c| authorizations(c, tags)).collect()
}

/// Records every request from `start` on, and keeps every EC2 tag seen meanwhile (read
/// every 100 ms on a task of its own, so a command run blocking on the test's thread is
/// watched too).
pub struct Watch {
    moto: std::sync::Arc<Moto>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tags: tokio::task::JoinHandle<Tags>,
}

impl Watch {
    pub async fn start(p: &Project) -> Watch {
        p.moto.record().await;
        let (ec2, iam, _) = p.sdk().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let tags = tokio::spawn(async move {
            let mut seen = Tags::new();
            loop {
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                add_tags(&ec2, &mut seen).await;
                add_iam(&iam, &mut seen).await;
                if last {
                    return seen;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Watch { moto: p.moto.clone(), stop, tags }
    }

    /// What was asked with `key_id` since `start`, and its authorizations.
    pub async fn authorizations(self, key_id: &str) -> (Vec<Call>, Vec<Authz>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let tags = self.tags.await.unwrap();
        let calls = self.moto.recorded(key_id).await;
        let all = all_authorizations(&calls, &tags);
        (calls, all)
    }
}

/// The inline policy `policy` of IAM role `role`, as vcctl wrote it.
pub async fn role_policy(p: &Project, role: &str, policy: &str) -> Value {
    let (_, iam, _) = p.sdk().await;
    let doc = iam.get_role_policy().role_name(role).policy_name(policy).send().await.unwrap();
    serde_json::from_str(&decode(doc.policy_document())).unwrap()
}
