//! `vcctl plan` of a local stack: what `up` would change, without changing anything. Exit 2
//! when something. (An AWS stack's plan is in `aws.rs`; an `ssh` stack has none.)

use anyhow::Result;
use serde_json::json;

use crate::context::Ctx;
use crate::{artifact, error, health};

pub async fn run(ctx: &Ctx, artifact: Option<&std::path::Path>) -> Result<u8> {
    let stack = crate::providers::local::process::LocalStack::new(&ctx.settings);
    let mut changes: Vec<String> = Vec::new();
    let running = stack.running_pid().is_some();
    let current = stack.current();
    // Plan never builds: it compares with --artifact, or with the last build of this checkout.
    let candidate = artifact
        .map(std::path::Path::to_path_buf)
        .or_else(|| Some(ctx.root.join("target/release/vehicleconnect")).filter(|p| p.is_file()));
    let artifact = match candidate {
        Some(p) => Some(artifact::probe(&p).await?),
        None => None,
    };
    match (&current, &artifact) {
        (None, Some(a)) => {
            changes.push(format!("install release {} (v{})", a.short_sha(), a.version.as_deref().unwrap_or("?")))
        }
        (None, None) => changes.push("build the service and install its first release".into()),
        (Some(c), Some(a)) if c.sha256 != a.sha256 => changes.push(format!(
            "replace release {} with {} (v{})",
            c.name,
            a.short_sha(),
            a.version.as_deref().unwrap_or("?")
        )),
        (Some(c), _)
            if c.config.as_deref() != Some(&crate::render::config::local_hash(&ctx.settings, &stack.listen())) =>
        {
            changes.push(format!("restart release {} with the stack file's configuration", c.name))
        }
        _ => {}
    }
    if !running {
        changes.push(format!("start the service on {}", stack.base_url()));
    } else if changes.is_empty() {
        let healthy = matches!(health::status(&crate::http_client::client(), &stack.base_url()).await, Ok((200, _)));
        if !healthy {
            changes.push("restart the unhealthy service".into());
        }
    }
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack,
        "changes": changes,
        "settings": ctx.settings,
    }));
    if changes.is_empty() {
        ctx.printer.out(format!("stack `{}`: no changes; everything matches the stack file", ctx.settings.stack));
        Ok(error::OK)
    } else {
        ctx.printer.out(format!("stack `{}`: `vcctl up` would", ctx.settings.stack));
        for c in &changes {
            ctx.printer.out(format!("  + {c}"));
        }
        Ok(error::PLAN_HAS_CHANGES)
    }
}
