//! The original design's last deploy step, "Notify": with `alerts: {email}`, every deploy,
//! rollback, restore and `up` of an AWS stack (either shape) publishes one message to the
//! stack's alert topic: who, what, the release, the result and how long it took. It is
//! sent whatever the outcome; a message that cannot be sent is a warning, never the
//! command's failure.

use std::time::Duration;

use serde_json::Value;

use crate::context::Ctx;
use crate::release::Origin;
use crate::stack::AwsSettings;

/// The message: (subject, body). `report` is the deploy report the command printed, if it
/// printed one; `outcome` the command's end, `Ok(exit code)` or its error.
pub fn message(
    stack: &str,
    command: &str,
    origin: &Origin,
    report: Option<&Value>,
    outcome: &Result<u8, String>,
    took: Duration,
) -> (String, String) {
    let release = report.and_then(|r| r["release"].as_str()).unwrap_or("none");
    let result = match outcome {
        Ok(0) => "succeeded".to_string(),
        Ok(code) => format!("ended with exit code {code}"),
        Err(e) => format!("failed: {e}"),
    };
    let short = if matches!(outcome, Ok(0)) { "succeeded" } else { "FAILED" };
    let subject = format!("{command} of {stack}: {short} (release {release})");
    let mut body = vec![
        format!("{command} of stack {stack} {result}."),
        format!("release: {release}"),
        format!("by: {} from {}", origin.by, origin.from),
        format!("took: {}", crate::printer::format_duration(took)),
    ];
    for place in report.and_then(|r| r["hosts"].as_array()).into_iter().flatten() {
        body.push(format!("  {}: {}", place["host"].as_str().unwrap_or("?"), place["result"].as_str().unwrap_or("?")));
    }
    (subject, body.join("\n"))
}

/// Sends the message of `command` when the stack has an alert topic (`alerts.email`).
pub async fn send(ctx: &Ctx, a: &AwsSettings, command: &str, outcome: &Result<u8, String>, took: Duration) {
    if ctx.settings.alert_email.is_none() {
        return;
    }
    let report = crate::report::last();
    let (subject, body) = message(&ctx.settings.stack, command, &Origin::here(), report.as_ref(), outcome, took);
    let sent = async {
        let aws = crate::cloud::aws::Aws::connect(&a.region()).await;
        let arn = aws.identity().await?;
        let account = arn.split(':').nth(4).unwrap_or("*").to_string();
        let topic = crate::cloud::aws::sns::arn(
            &a.region(),
            &account,
            &crate::providers::aws::names::alerts_topic(&ctx.settings.stack),
        );
        crate::cloud::aws::sns::publish(&aws.sns, &topic, &subject, &body).await
    };
    match sent.await {
        Ok(()) => ctx.printer.detail(format!("told the stack's alert topic: {subject}")),
        Err(e) => ctx.printer.warn(format!("could not tell the stack's alert topic of this {command}: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_says_who_what_release_result_and_time_whatever_the_outcome() {
        let origin = Origin { by: "ci@runner".into(), from: "https://github.com/acme/vc/actions/runs/9".into() };
        let report = serde_json::json!({"release": "r2", "hosts": [{"host": "i-1", "result": "deployed, healthy"}]});
        let took = Duration::from_secs(41);
        let (subject, body) = message("fra", "vcctl deploy", &origin, Some(&report), &Ok(0), took);
        assert_eq!(subject, "vcctl deploy of fra: succeeded (release r2)");
        assert!(
            body.starts_with("vcctl deploy of stack fra succeeded.\nrelease: r2\nby: ci@runner from https://"),
            "{body}"
        );
        assert!(body.ends_with("took: 41.0s\n  i-1: deployed, healthy"), "{body}");
        let (subject, body) = message("fra", "vcctl rollback", &origin, None, &Err("no release kept".into()), took);
        assert_eq!(subject, "vcctl rollback of fra: FAILED (release none)");
        assert!(body.starts_with("vcctl rollback of stack fra failed: no release kept."), "{body}");
    }
}
