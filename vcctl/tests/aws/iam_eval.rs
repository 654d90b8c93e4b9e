//! An IAM policy evaluator for the tests, because moto enforces no IAM: each request a
//! command made (moto's recorder) becomes the authorizations AWS would check (an action on
//! a resource, with the request's and the resource's condition keys), and each must be
//! allowed by the policy document vcctl wrote. Allow statements only (vcctl writes no
//! Deny); an operator or condition key it does not know is an error, never a pass.

use std::collections::BTreeMap;

use serde_json::Value;

/// One authorization AWS makes for a request: `action` on `resource`, with `context`
/// (condition keys such as `aws:ResourceTag/vcctl:stack`, `aws:RequestTag/…`,
/// `cloudwatch:namespace`; a multi-valued key such as `aws:TagKeys` holds several values).
#[derive(Debug, Clone, PartialEq)]
pub struct Authz {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

impl Authz {
    pub fn new(action: &str, resource: &str) -> Authz {
        Authz { action: action.to_string(), resource: resource.to_string(), context: BTreeMap::new() }
    }

    pub fn with(mut self, key: &str, value: &str) -> Authz {
        self.context.entry(key.to_string()).or_default().push(value.to_string());
        self
    }
}

/// `*` and `?` as IAM matches them in actions and resources (actions case-insensitively).
pub fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Whether one condition block holds for `a`; an unknown operator is an error.
fn condition_holds(condition: &Value, a: &Authz) -> Result<bool, String> {
    let Some(operators) = condition.as_object() else { return Ok(true) };
    for (operator, keys) in operators {
        for (key, wanted) in keys.as_object().ok_or(format!("condition {operator} is not an object"))? {
            let wanted = list(wanted);
            let have = a.context.get(key);
            let any =
                |f: &dyn Fn(&str, &str) -> bool| have.is_some_and(|h| h.iter().any(|v| wanted.iter().any(|w| f(w, v))));
            let ok = match operator.as_str() {
                "StringEquals" | "ArnEquals" => any(&|w, v| w == v),
                "StringLike" | "ArnLike" => any(&|w, v| like(w, v)),
                "StringNotEquals" => have.is_some_and(|h| h.iter().all(|v| !wanted.iter().any(|w| w == v))),
                "ForAllValues:StringEquals" => have.is_none_or(|h| h.iter().all(|v| wanted.contains(v))),
                "ForAllValues:StringLike" => have.is_none_or(|h| h.iter().all(|v| wanted.iter().any(|w| like(w, v)))),
                "ForAnyValue:StringEquals" => any(&|w, v| w == v),
                "Bool" => any(&|w, v| w.eq_ignore_ascii_case(v)),
                "Null" => wanted.iter().all(|w| (w == "true") == have.is_none()),
                other => return Err(format!("the evaluator does not know the condition operator {other}")),
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The statement of `policy` that allows `a`, by its Sid (or index), or why none does.
pub fn allowed_by(policy: &Value, a: &Authz) -> Result<String, String> {
    let statements = match &policy["Statement"] {
        Value::Array(s) => s.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => return Err("the policy has no Statement".into()),
    };
    for (i, s) in statements.iter().enumerate() {
        if s["Effect"] != "Allow" {
            return Err(format!("statement {i} is not an Allow; the evaluator knows no Deny"));
        }
        let action = list(&s["Action"]).iter().any(|p| like(&p.to_ascii_lowercase(), &a.action.to_ascii_lowercase()));
        let resource = list(&s["Resource"]).iter().any(|p| like(p, &a.resource));
        if action && resource && condition_holds(&s["Condition"], a)? {
            return Ok(s["Sid"].as_str().map_or_else(|| i.to_string(), str::to_string));
        }
    }
    Err(format!("denied: {} on {} with {:?}", a.action, a.resource, a.context))
}

/// Every authorization `policy` denies, one line each.
pub fn denials(policy: &Value, all: &[Authz]) -> Vec<String> {
    all.iter().filter_map(|a| allowed_by(policy, a).err()).collect()
}

/// Least privilege, shown: `all` is allowed, and without any one statement it is not.
/// Returns what is wrong, empty when the policy is exactly what `all` needs.
pub fn exactly_needed(policy: &Value, all: &[Authz]) -> Vec<String> {
    exactly_needed_but(policy, all, &[])
}

/// As `exactly_needed`, for a recording that does not exercise the statements `elsewhere`
/// names (by Sid): each is shown needed by another recording, which the caller names.
pub fn exactly_needed_but(policy: &Value, all: &[Authz], elsewhere: &[&str]) -> Vec<String> {
    let mut wrong = denials(policy, all);
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    for (i, s) in statements.iter().enumerate() {
        if s["Sid"].as_str().is_some_and(|sid| elsewhere.contains(&sid)) {
            continue;
        }
        let mut without = policy.clone();
        without["Statement"].as_array_mut().expect("a list").remove(i);
        if denials(&without, all).is_empty() {
            wrong.push(format!("statement {} is never needed: nothing is denied without it", s["Sid"]));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
            {"Sid": "Tagged", "Effect": "Allow", "Action": ["ec2:GetConsoleOutput"],
             "Resource": "arn:aws:ec2:eu-central-1:1:instance/*",
             "Condition": {"StringEquals": {"aws:ResourceTag/vcctl:stack": "fra"}}},
            {"Sid": "Keys", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}}
        ]})
    }

    #[test]
    fn actions_resources_and_conditions_are_each_checked() {
        let p = policy();
        assert_eq!(allowed_by(&p, &Authz::new("ec2:DescribeVolumes", "*")).unwrap(), "Read");
        assert!(allowed_by(&p, &Authz::new("ec2:RunInstances", "*")).is_err());
        let console = Authz::new("ec2:GetConsoleOutput", "arn:aws:ec2:eu-central-1:1:instance/i-1");
        assert!(allowed_by(&p, &console).is_err(), "no tag, no access");
        assert!(allowed_by(&p, &console.clone().with("aws:ResourceTag/vcctl:stack", "other")).is_err());
        assert_eq!(allowed_by(&p, &console.clone().with("aws:ResourceTag/vcctl:stack", "fra")).unwrap(), "Tagged");
        let elsewhere = Authz::new("ec2:GetConsoleOutput", "arn:aws:ec2:eu-west-1:1:instance/i-1");
        assert!(allowed_by(&p, &elsewhere.with("aws:ResourceTag/vcctl:stack", "fra")).is_err());
        let tags = Authz::new("ec2:CreateTags", "*").with("aws:TagKeys", "a");
        assert!(allowed_by(&p, &tags).is_ok());
        assert!(allowed_by(&p, &tags.with("aws:TagKeys", "c")).is_err());
    }

    #[test]
    fn an_unneeded_statement_and_an_unknown_operator_are_reported() {
        let p = policy();
        let all = [
            Authz::new("ec2:DescribeInstances", "*"),
            Authz::new("ec2:GetConsoleOutput", "arn:aws:ec2:eu-central-1:1:instance/i-1")
                .with("aws:ResourceTag/vcctl:stack", "fra"),
        ];
        let wrong = exactly_needed(&p, &all);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("Keys"), "{wrong:?}");
        let odd = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}}]});
        assert!(allowed_by(&odd, &Authz::new("s3:GetObject", "*")).unwrap_err().contains("DateLessThan"));
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(like("arn:aws:s3:::b/releases/*", "arn:aws:s3:::b/releases/x/y"));
        assert!(!like("arn:aws:s3:::b/releases/*", "arn:aws:s3:::b/serving"));
        assert!(like("vcctl-?", "vcctl-a") && !like("vcctl-?", "vcctl-ab"));
    }
}
