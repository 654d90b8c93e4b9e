//! `vcctl plan` of a local stack: what `up` would change, without changing anything. Exit 2
//! when something. Printed as every plan is (`crate::plan`).

use anyhow::Result;
use serde_json::json;

use crate::context::Ctx;
use crate::plan::{Action, Change, Scope};
use crate::{artifact, health};

pub async fn run(ctx: &Ctx, artifact: Option<&std::path::Path>) -> Result<u8> {
    let stack = crate::providers::local::process::LocalStack::new(&ctx.settings);
    let mut changes: Vec<Change> = Vec::new();
    let running = stack.running_pid().is_some();
    let current = stack.current();
    // Plan never builds: it compares with --artifact, or with the last build of this checkout.
    let artifact = artifact::planned(&ctx.root, artifact).await?;
    match (&current, &artifact) {
        (None, Some(a)) => changes.push(Change::new(
            Action::Create,
            "release",
            format!("install {} (v{})", a.short_sha(), a.version.as_deref().unwrap_or("?")),
        )),
        (None, None) => changes.push(Change::new(Action::Create, "release", "build the service and install it")),
        (Some(c), Some(a)) if c.sha256 != a.sha256 => changes.push(Change::new(
            Action::Update,
            "release",
            format!("{} -> {} (v{})", c.name, a.short_sha(), a.version.as_deref().unwrap_or("?")),
        )),
        (Some(c), _)
            if c.config.as_deref() != Some(&crate::render::config::local_hash(&ctx.settings, &stack.listen())) =>
        {
            changes.push(Change::new(
                Action::Update,
                "service",
                format!("restart {} with the stack file's configuration", c.name),
            ))
        }
        _ => {}
    }
    changes.extend(dependencies(&stack)?);
    if !running {
        let on = match stack.replicas().len() {
            1 => stack.base_url(),
            n => format!("{} and the {} ports after it ({n} processes)", stack.base_url(), n - 1),
        };
        changes.push(Change::new(Action::Create, "service", format!("start it on {on}")));
    } else if changes.is_empty() {
        let healthy = matches!(health::status(&crate::http_client::client(), &stack.base_url()).await, Ok((200, _)));
        if !healthy {
            changes.push(Change::new(Action::Update, "service", "restart it: it is unhealthy"));
        }
    }
    let subject = Scope { stack: &ctx.settings.stack, shape: "local", place: None };
    let extra = crate::plan::extra(json!({"settings": ctx.settings}));
    Ok(crate::plan::print(&ctx.printer, &subject, &changes, extra, &[]))
}

/// PostgreSQL and Prometheus, when the stack runs them and they do not run.
fn dependencies(stack: &crate::providers::local::process::LocalStack) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let running = |name: &str| stack.processes().iter().any(|p| p.name == name && p.pid.is_some());
    if let Some(c) = stack.cluster()? {
        let made = c.data().join("PG_VERSION").is_file();
        if !running("db") {
            let what =
                if made { "start the stack's cluster" } else { "make a cluster of the stack's own and start it" };
            out.push(Change::new(
                if made { Action::Update } else { Action::Create },
                "PostgreSQL",
                format!("{what} in {} on 127.0.0.1:{} ({})", c.dir.display(), c.port, c.bindir.display()),
            ));
        }
    }
    if let Some(port) = stack.local.prometheus {
        crate::providers::local::deps::prometheus_bin()?;
        if !running("prometheus") {
            out.push(Change::new(
                Action::Create,
                "Prometheus",
                format!("start it on 127.0.0.1:{port}, scraping the service every 15 s with production's rules"),
            ));
        }
    }
    Ok(out)
}
