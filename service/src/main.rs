//! Entry point: configuration, logging, the listener and the shutdown signal.

use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use vehicleconnect::config::{Config, LogFormat};

// mimalloc: glibc's malloc, free and chunk consolidation were a sixth of the service's CPU
// on the ingest path (perf, single events on PostgreSQL); mimalloc takes 16 % less CPU per
// stored event and 18 % less per rejected one (docs/performance.md). `no_thp` keeps it off transparent huge pages,
// which otherwise tripled the peak RSS of a KPI rebuild (tests/hostile.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "vehicleconnect failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let shutdown = shutdown_signal();
    let listeners = match inherited_listeners()? {
        Some(listeners) => listeners,
        None => vec![TcpListener::bind(config.listen).await.with_context(|| {
            format!("cannot listen on {}; is another service using it? (--listen / VC_LISTEN)", config.listen)
        })?],
    };
    vehicleconnect::run(listeners, config, shutdown).await
}

/// Sockets handed over by systemd socket activation (`LISTEN_FDS`): systemd holds the ports
/// while the service restarts, so connections queue instead of being refused. `--listen` is
/// ignored then.
fn inherited_listeners() -> Result<Option<Vec<TcpListener>>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    for i in 0..fds.len() {
        let listener = fds
            .take_tcp_listener(i)
            .with_context(|| format!("LISTEN_FDS: descriptor {} is not a TCP listening socket", i + 3))?
            .with_context(|| format!("LISTEN_FDS: descriptor {} was already taken", i + 3))?;
        listener.set_nonblocking(true)?;
        listeners.push(TcpListener::from_std(listener)?);
    }
    tracing::info!(sockets = listeners.len(), "using sockets from systemd socket activation");
    Ok(Some(listeners))
}

/// SIGTERM (systemd, `kill`) or Ctrl-C. The handlers are installed here, before the
/// service listens, not when the future is first polled: a SIGTERM that arrives just after
/// the service says it listens must drain it, not kill it.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (term, interrupt) => {
                let e = term.err().or(interrupt.err()).map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGINT; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
