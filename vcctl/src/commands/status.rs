//! `vcctl status`: is it running, healthy, which release, and how is traffic doing.

use anyhow::Result;
use serde_json::{Value, json};

use super::Ctx;
use crate::health;

pub async fn run(ctx: &Ctx) -> Result<u8> {
    let stack = ctx.local()?;
    let stale = stack.has_stale_pid_file();
    let pid = stack.running_pid();
    let base = stack.base_url();
    let client = health::client();
    let health = match pid {
        Some(_) => health::status(&client, &base).await.ok(),
        None => None,
    };
    let kpis: Option<Value> = match &health {
        Some(_) => match client.get(format!("{base}/api/analytics/kpis?window=1h")).send().await {
            Ok(r) => r.json::<Value>().await.ok().map(|k| k["overall"].clone()),
            Err(_) => None,
        },
        None => None,
    };
    let healthy = matches!(&health, Some((code, s)) if health::is_healthy(*code, s));
    let current = stack.current();
    let releases = stack.releases();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack,
        "provider": "local",
        "running": pid.is_some(),
        "pid": pid,
        "healthy": healthy,
        "url": base,
        "dashboard": format!("{base}/dashboard"),
        "status": health.as_ref().map(|(_, s)| s),
        "kpis_1h": kpis,
        "release": current.as_ref().map(|r| &r.name),
        "releases": releases,
    }));
    let p = &ctx.printer;
    p.out(format!("stack:    {} (local)", ctx.settings.stack));
    match (&pid, &health) {
        (None, _) => p.out(format!("service:  not running{}", if stale { " (stale pid file removed)" } else { "" })),
        (Some(pid), None) => p.out(format!("service:  running (pid {pid}) but not answering on {base}")),
        (Some(pid), Some((code, s))) => {
            p.out(format!("service:  {} (HTTP {code}), pid {pid}, up {}s", s.status, s.uptime_s));
            p.out(format!("version:  {} ({}), database {}", s.version, s.git_sha, s.database));
        }
    }
    p.out(format!("release:  {}", current.as_ref().map_or("none".to_string(), |r| r.name.clone())));
    p.out(format!("url:      {base}/dashboard"));
    if let Some(k) = &kpis {
        let f = |key: &str| k[key].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
        p.out(format!(
            "last 1 h: {} events, {} req/min, avg {} ms, p95 {} ms, errors {} %",
            k["count"],
            f("requests_per_min"),
            f("avg_latency_ms"),
            f("p95_latency_ms"),
            f("error_rate_pct")
        ));
    }
    for r in releases.iter().rev() {
        let mark = if Some(&r.name) == current.as_ref().map(|c| &c.name) { "*" } else { " " };
        p.detail(format!("{mark} {} {} v{}", r.name, r.verdict, r.version.as_deref().unwrap_or("?")));
    }
    Ok(if healthy { 0 } else { 1 })
}
