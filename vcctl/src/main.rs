//! `vcctl`: parse the command line, resolve settings once, run one command, map the
//! outcome to an exit code (docs/reference/exit-codes.md) in this one place.

mod artifact;
mod cli;
mod cloud;
mod commands;
mod error;
mod health;
mod host;
mod local;
mod printer;
mod provision;
mod release;
mod settings;
mod simulate;
mod ssh;
mod stack;
mod templates;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use commands::Ctx;
use printer::{Printer, Verbosity};

fn main() -> ExitCode {
    let parsed = Cli::command().after_help(cli::after_help()).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        // Help and version are not errors; every argument error is exit 3, like a bad stack
        // (clap's own default, 2, means "plan has changes" here).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return error::exit(error::INVALID);
        }
    };
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let printer = Printer::new(cli.json, verbosity);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli, printer.clone())) {
        Ok(code) => error::exit(code),
        Err(err) => {
            let (code, hint) = error::classify(&err);
            let label =
                if printer.is_fancy() { console::style("error:").red().bold().to_string() } else { "error:".into() };
            eprintln!("{label} {err:#}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            error::exit(code)
        }
    }
}

async fn run(cli: Cli, printer: Printer) -> Result<u8> {
    let root = std::env::current_dir()?;
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "vcctl", &mut std::io::stdout());
        return Ok(0);
    }
    if let Command::Simulate(args) = &cli.command
        && let Some(target) = &args.target
    {
        return commands::simulate::run(&printer, args, target.trim_end_matches('/').to_string(), None).await;
    }
    let overrides = match &cli.command {
        Command::Up(a) | Command::Plan(a) | Command::Deploy(a) => a.overrides.clone(),
        Command::Status(o) => o.clone(),
        Command::Logs(a) => a.overrides.clone(),
        Command::Rollback(a) => a.overrides.clone(),
        Command::Destroy(a) => a.overrides.clone(),
        Command::Simulate(a) => a.overrides.clone(),
        Command::Completions { .. } => unreachable!("handled above"),
    };
    let file = stack::locate(&root, &cli.stack);
    let stack = stack::load_file(&file)?;
    let settings = settings::Settings::resolve(&root, stack, &overrides);
    let ctx = Ctx { printer, root, settings, yes: cli.yes };
    if let stack::Provider::Aws(a) = &ctx.settings.provider {
        let a = a.clone();
        return match &cli.command {
            Command::Up(args) => commands::aws::up(&ctx, &a, args).await,
            Command::Plan(_) => commands::aws::plan(&ctx, &a).await,
            Command::Status(_) => commands::aws::status(&ctx, &a).await,
            Command::Destroy(_) => commands::aws::destroy(&ctx, &a).await,
            // deploy, rollback, logs, simulate: on the instance, over SSH.
            other => {
                let remote = commands::aws::remote(&ctx, &a).await?;
                commands::remote::run(&ctx, &remote, other).await
            }
        };
    }
    if let stack::Provider::Ssh(s) = &ctx.settings.provider {
        let remote = commands::remote::Remote::of_ssh(&ctx.settings, s);
        return commands::remote::run(&ctx, &remote, &cli.command).await;
    }
    match &cli.command {
        Command::Up(a) => commands::up::run(&ctx, a).await,
        Command::Plan(a) => commands::plan::run(&ctx, a).await,
        Command::Deploy(a) => commands::deploy::run(&ctx, a).await,
        Command::Status(_) => commands::status::run(&ctx).await,
        Command::Logs(a) => commands::logs::run(&ctx, a).await,
        Command::Rollback(a) => commands::deploy::rollback(&ctx, a).await,
        Command::Destroy(a) => commands::destroy::run(&ctx, a).await,
        Command::Simulate(a) => {
            let stack = ctx.local()?;
            let token = stack.ingest_token()?;
            commands::simulate::run(&ctx.printer, a, stack.base_url(), token).await
        }
        Command::Completions { .. } => unreachable!("handled above"),
    }
}
