//! `vcctl tunnel prometheus|dashboard`: a port of this machine forwarded over the stack's SSH
//! connection to a port on its host's loopback, until Ctrl-C (or the connection drops).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::cli::{TunnelArgs, TunnelTo};
use crate::error::Failure;
use crate::targets::Operations;

/// Prometheus's port on the host.
const PROMETHEUS_PORT: u16 = 9090;

pub async fn run(ctx: &Ctx, mut target: Box<dyn Operations>, args: &TunnelArgs) -> Result<u8> {
    let result = forward(ctx, target.as_mut(), args).await;
    target.close().await;
    result
}

async fn forward(ctx: &Ctx, target: &mut dyn Operations, args: &TunnelArgs) -> Result<u8> {
    let (remote_port, what, path) = match args.to {
        TunnelTo::Prometheus => (PROMETHEUS_PORT, "Prometheus", "/"),
        TunnelTo::Dashboard if ctx.settings.tls.is_some() => {
            return Err(Failure::invalid(
                format!("stack `{}` serves HTTPS: its dashboard needs no tunnel", ctx.settings.stack),
                Some(format!("open {}/dashboard", target.url())),
            )
            .into());
        }
        TunnelTo::Dashboard => (ctx.settings.port, "the dashboard", "/dashboard"),
    };
    let local = local_address(args.local_port.unwrap_or(remote_port), args.local_port.is_some())?;
    target.forward(local, remote_port).await?;
    let url = format!("http://{local}{path}");
    ctx.printer.json(&json!({"to": what, "url": url, "remote_port": remote_port, "host": target.host()}));
    ctx.printer.out(&url);
    ctx.printer.info(format!("{what} of stack `{}` at {url}; Ctrl-C closes the tunnel", ctx.settings.stack));
    // The forward lives as long as the SSH connection: watch it, and stop when it drops.
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if !target.alive().await {
            anyhow::bail!(
                "the SSH connection to {} dropped: the tunnel is closed",
                target.host().unwrap_or("the host")
            );
        }
    }
}

/// A free loopback address: `port` when it is free (or was asked for), else any.
fn local_address(port: u16, asked: bool) -> Result<SocketAddr> {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpListener::bind(wanted) {
        Ok(l) => Ok(l.local_addr()?),
        Err(e) if asked => Err(Failure::invalid(
            format!("cannot listen on {wanted}: {e}"),
            Some("choose another --local-port, or 0 for any free one".into()),
        )
        .into()),
        Err(_) => Ok(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?.local_addr()?),
    }
}
