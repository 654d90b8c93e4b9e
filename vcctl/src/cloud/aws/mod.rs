//! AWS: the clients (the SDK's default credential chain and its standard retries), the
//! mapping of SDK errors to messages and exit codes, and one thin wrapper per service.
//! The provisioning workflows live apart, in `providers/aws`.

pub mod acm;
pub mod address;
pub mod autoscaling;
pub mod backup;
pub mod cloudfront;
pub mod cloudwatch;
pub mod credentials;
pub mod ec2;
pub mod elb;
pub mod iam;
pub mod launch_template;
pub mod logs;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod security_group;
pub mod snapshot;
pub mod sns;
pub mod volume;
pub mod waf;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use std::time::Duration;

use crate::error::Failure;

/// Tags on everything vcctl creates. The cloud is the source of truth: no state file.
pub const TAG_STACK: &str = "vcctl:stack";
pub const TAG_MANAGED_BY: &str = "vcctl:managed-by";
/// The stack's own random id (`id:` in its stack file): two projects with a stack of one
/// name in one account never take each other's resources.
pub const TAG_STACK_ID: &str = "vcctl:stack-id";

/// The tags vcctl puts on what it makes for a stack.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub stack: String,
    pub id: String,
}

impl Stamp {
    /// The tags to put on what the stack makes; no stack id before the first `up` gives it
    /// one (`ci init` may come first), since an empty id would claim it for no stack.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let id = (!self.id.is_empty()).then_some((TAG_STACK_ID, self.id.as_str()));
        [(TAG_STACK, self.stack.as_str()), (TAG_MANAGED_BY, "vcctl")].into_iter().chain(id).collect()
    }
}

/// What a found resource's tags say about who made it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    pub stack: Option<String>,
    pub managed_by: Option<String>,
    pub stack_id: Option<String>,
}

impl Owner {
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Owner {
        let mut owner = Owner::default();
        for (k, v) in tags {
            let v = v.map(str::to_string);
            match k {
                Some(TAG_STACK) => owner.stack = v,
                Some(TAG_MANAGED_BY) => owner.managed_by = v,
                // An empty id (an older `ci init` before the first `up`) is no id.
                Some(TAG_STACK_ID) => owner.stack_id = v.filter(|id| !id.is_empty()),
                _ => {}
            }
        }
        owner
    }
}
/// The AMI an instance was created from, pinned so later runs never replace it implicitly.
pub const TAG_AMI: &str = "vcctl:ami";

pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sts: aws_sdk_sts::Client,
    pub sns: aws_sdk_sns::Client,
    pub rds: aws_sdk_rds::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub acm: aws_sdk_acm::Client,
    pub s3: aws_sdk_s3::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub route53: aws_sdk_route53::Client,
    pub backup: aws_sdk_backup::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudFront is global: one endpoint, whatever the region.
    pub cloudfront: aws_sdk_cloudfront::Client,
    /// WAF in this region (scope `REGIONAL`); a distribution's ACLs are us-east-1's.
    pub waf: aws_sdk_wafv2::Client,
    pub region: String,
    /// `AWS_ENDPOINT_URL` is set (an emulator in tests): never contact the instances.
    pub emulated: bool,
}

/// Where the default credential chain takes credentials from first, for messages.
pub fn credential_source() -> String {
    credentials::Sources::of_this_process().first()
}

impl Aws {
    pub async fn connect(region: &str) -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            // Standard mode: exponential backoff with jitter on throttling and transient errors.
            .retry_config(RetryConfig::standard().with_max_attempts(6))
            // An endpoint that takes longer than this to accept a connection is not there.
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
            .load()
            .await;
        let emulated = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        Aws {
            ec2: aws_sdk_ec2::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            // The first call of every command: an endpoint that does not answer is said after
            // one retry, within seconds, not after the six tries the other calls get.
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&config)
                    .retry_config(RetryConfig::standard().with_max_attempts(2))
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            acm: aws_sdk_acm::Client::new(&config),
            // An emulator answers at one address: buckets in the path, not the host name.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config).force_path_style(emulated).build(),
            ),
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            route53: aws_sdk_route53::Client::new(&config),
            backup: aws_sdk_backup::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            cloudfront: aws_sdk_cloudfront::Client::new(&config),
            waf: aws_sdk_wafv2::Client::new(&config),
            region: region.to_string(),
            emulated,
        }
    }

    /// Who we are: the ARN of the caller. Fails with exit 4 when credentials are missing,
    /// expired or refused.
    pub async fn identity(&self) -> anyhow::Result<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| error("sts:GetCallerIdentity", "checking the AWS identity", e))?;
        Ok(out.arn().unwrap_or("unknown").to_string())
    }
}

/// Error codes that mean "who you are may not do this" or "we do not know who you are".
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
];

/// An SDK error with what we were doing; credential and permission problems become exit 4
/// naming the profile and the action that was denied.
pub fn error<E>(action: &str, doing: &str, err: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // Some endpoints (and emulators) answer in an error envelope the SDK does not parse:
    // read the code from the raw body then, and count any 401/403 as an auth failure.
    let (status, raw_code) = match err.raw_response() {
        Some(raw) => (raw.status().as_u16(), raw.body().bytes().and_then(code_in_body)),
        None => (0, None),
    };
    let code = err.code().map(str::to_string).or(raw_code);
    let detail = match (code.as_deref(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => format!("{}", DisplayErrorContext(&err)),
    };
    if let SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) = &err
        && !detail.to_lowercase().contains("credential")
    {
        return unreachable(action, doing, &err);
    }
    let no_credentials = code.is_none() && status == 0 && detail.to_lowercase().contains("credential");
    let refused = code.as_deref().is_some_and(|c| AUTH_CODES.contains(&c)) || status == 401 || status == 403;
    if no_credentials {
        // The SDK's own account of every provider it tried is long: `-v` shows it.
        let more = if crate::printer::is_verbose() { format!("\n{detail}") } else { String::new() };
        let (message, hint) = credentials::Sources::of_this_process().none_found();
        return Failure::Credentials { message: format!("{message}{more}"), hint: Some(hint) }.into();
    }
    if refused {
        return Failure::Credentials {
            message: format!(
                "AWS refused {action} for the credentials from {} while {doing}: {detail}",
                credential_source()
            ),
            hint: Some(
                "check `aws sts get-caller-identity`; set AWS_PROFILE or run `aws sso login`; in GitHub Actions use \
                 aws-actions/configure-aws-credentials with role-to-assume"
                    .into(),
            ),
        }
        .into();
    }
    anyhow::anyhow!("{doing} ({action}): {detail}")
}

/// AWS did not answer at all (no route, refused, DNS, a dead proxy): the endpoint and the
/// innermost cause, in one line, instead of the SDK's dump.
fn unreachable(action: &str, doing: &str, err: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    let mut cause = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let service = action.split(':').next().unwrap_or("aws");
    let endpoint = match std::env::var("AWS_ENDPOINT_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => format!("{url} (AWS_ENDPOINT_URL)"),
        None => format!("AWS's {service} endpoint"),
    };
    let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| format!(" through the proxy {v} ({k})")));
    let more = match crate::printer::is_verbose() {
        true => format!("\n{}", DisplayErrorContext(err)),
        false => String::new(),
    };
    Failure::Unreachable {
        message: format!(
            "cannot reach {endpoint}{} for {action} while {doing}: {cause}{more}",
            proxy.unwrap_or_default()
        ),
        hint: Some(
            "check the network, AWS_ENDPOINT_URL and any HTTPS_PROXY (`curl -sI` of the endpoint shows the same); \
             `-v` shows the SDK's account"
                .into(),
        ),
    }
    .into()
}

/// `<Code>X</Code>` in an XML error body.
fn code_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_string())
}

/// The service error code of an SDK error, if AWS answered with one.
pub fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_without_an_id_yet_tags_none_and_an_empty_id_tag_is_no_id() {
        let before_up = Stamp { stack: "fra".into(), id: String::new() };
        assert_eq!(before_up.pairs(), [(TAG_STACK, "fra"), (TAG_MANAGED_BY, "vcctl")]);
        let after_up = Stamp { stack: "fra".into(), id: "k3x".into() };
        assert_eq!(after_up.pairs().last(), Some(&(TAG_STACK_ID, "k3x")));
        let older = Owner::from_tags([(Some(TAG_STACK), Some("fra")), (Some(TAG_STACK_ID), Some(""))]);
        assert_eq!((older.stack.as_deref(), older.stack_id), (Some("fra"), None));
    }
}
