//! `vcctl simulate`: realistic traffic to a stack's service or any URL.

use anyhow::Result;
use serde_json::json;

use crate::cli::SimulateArgs;
use crate::error::Failure;
use crate::printer::Printer;
use crate::simulate::{self, Plan, Traffic};

/// The token in `--token-file`, trimmed; a file that cannot be read or is empty is refused.
pub fn token_file(path: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path)
        .map_err(|e| Failure::invalid(format!("cannot read the token file `{}`: {e}", path.display()), None))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(Failure::invalid(format!("the token file `{}` is empty", path.display()), None).into());
    }
    Ok(Some(token))
}

/// `target` and `token` come from `--target`, or from the stack.
pub async fn run(
    printer: &Printer,
    args: &SimulateArgs,
    target: String,
    token: Option<String>,
    trust: crate::http_client::Trust,
) -> Result<u8> {
    let incidents = args
        .incident
        .iter()
        .map(|s| simulate::parse_incident(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::invalid(e, None))?;
    if args.rate.is_nan() || args.rate <= 0.0 || args.batch == 0 || args.vehicles == 0 {
        return Err(Failure::invalid("--rate, --batch and --vehicles must be more than 0", None).into());
    }
    check_target(&target, &trust).await?;
    let planned = (args.rate * args.duration.as_secs_f64()).round() as u64;
    printer.info(format!(
        "sending {planned} events to {target} at {} events/s for {} ({} per request){}",
        args.rate,
        humantime::format_duration(args.duration),
        args.batch,
        if incidents.is_empty() { String::new() } else { format!(", incidents: {}", args.incident.join(", ")) }
    ));
    let bar = printer.bar(planned, "{bar:30.cyan/blue} {pos}/{len} events {elapsed} {msg}");
    let started = std::time::Instant::now();
    let plan = Plan {
        target: target.clone(),
        token,
        trust,
        rate: args.rate,
        duration: args.duration,
        batch: args.batch,
        concurrency: args.concurrency,
        traffic: Traffic::new(args.seed, args.vehicles, incidents),
    };
    let progress = |sent, acked, failed| {
        bar.set_position(sent);
        let rate = acked as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{rate:.0}/s acknowledged, {failed} failed"));
    };
    // SIGINT or SIGTERM ends the run early, with the report of what was done.
    let _guard = crate::signals::Guard::new();
    let stop = async {
        crate::signals::interrupted().await;
    };
    let report = simulate::run(plan, progress, stop).await?;
    bar.finish_and_clear();
    printer.json(&json!(report));
    printer.out(format!(
        "{} of {} events acknowledged, {} failed, {} skipped (late), {}{} unconfirmed in {:.1}s: {:.0} events/s{}",
        report.acknowledged,
        report.planned_events,
        report.failed,
        report.skipped_late,
        match report.unsent {
            0 => String::new(),
            n => format!("{n} unsent (the run was stopped first), "),
        },
        report.unconfirmed,
        report.duration_s,
        report.achieved_events_per_s,
        if report.interrupted { " (interrupted)" } else { "" }
    ));
    if report.retried > 0 {
        printer.info(format!(
            "  {} requests sent again: their connection closed under them (a server restart)",
            report.retried
        ));
    }
    for (reason, n) in &report.errors {
        printer.info(format!("  {n} events: {reason}"));
    }
    Ok(match (report.interrupted, report.failed + report.skipped_late + report.unsent + report.unconfirmed) {
        (true, _) => crate::error::INTERRUPTED,
        (false, 0) => 0,
        _ => 1,
    })
}

/// The target is a URL and something answers there, before any traffic: a typo exits 3 at
/// once, and a target that does not answer fails within seconds, naming it, instead of after
/// the whole run.
async fn check_target(target: &str, trust: &crate::http_client::Trust) -> Result<()> {
    let url = reqwest::Url::parse(target).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    let Some(url) = url else {
        let example =
            if target.contains("://") { "http://127.0.0.1:8000".to_string() } else { format!("http://{target}") };
        return Err(Failure::invalid(
            format!("--target {target:?} is not an http:// or https:// URL"),
            Some(format!("e.g. --target {example}")),
        )
        .into());
    };
    let client = crate::http_client::builder(trust)?.timeout(std::time::Duration::from_secs(5)).build()?;
    let status = url.join("api/status").unwrap_or(url.clone());
    if let Err(e) = client.get(status).send().await {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause = inner.to_string();
            source = inner.source();
        }
        anyhow::bail!("nothing answers at {target} (GET /api/status: {cause}); no event was sent");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_file_is_read_trimmed_and_refused_when_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (good, empty) = (dir.path().join("token"), dir.path().join("empty"));
        std::fs::write(&good, "s3cret\n").unwrap();
        std::fs::write(&empty, " \n").unwrap();
        assert_eq!(super::token_file(Some(&good)).unwrap().as_deref(), Some("s3cret"));
        assert!(super::token_file(Some(&empty)).unwrap_err().to_string().contains("is empty"));
        let missing = super::token_file(Some(&dir.path().join("nope"))).unwrap_err().to_string();
        assert!(missing.contains("cannot read the token file"), "{missing}");
        assert_eq!(super::token_file(None).unwrap(), None);
    }
}
