//! `vcctl`: parse the command line, resolve settings once, run one command, map the
//! outcome to an exit code (docs/reference/exit-codes.md) in this one place.

// Output goes through `printer`, which never panics on a closed pipe. (Function length is
// a workspace lint: Cargo.toml, clippy.toml.)
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod artifact;
mod audit;
mod cli;
mod cloud;
mod commands;
mod context;
mod deploy;
mod error;
mod health;
mod host;
mod http_client;
mod plan;
mod printer;
mod providers;
mod release;
mod render;
mod report;
mod secrets_file;
mod settings;
mod signals;
mod simulate;
mod stack;
mod status;
mod targets;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use context::Ctx;
use printer::{Printer, Verbosity};

fn main() -> ExitCode {
    // `COMPLETE=bash vcctl ...`: the shell asking for completions (`vcctl completions`).
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let parsed = cli::command().try_get_matches().and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        cli.command.note_sources(&m);
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        // Help and version are not errors; every argument error is exit 3, like a bad stack
        // (clap's own default, 2, means "plan has changes" here).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            // A script that asked for JSON reads one object on stdout, even for a bad command line.
            if std::env::args_os().skip(1).any(|a| a == "--json") {
                let (message, hint) = error::of_arguments(&e);
                Printer::new(true, Verbosity::Quiet).json_error(&message, error::INVALID, Some(&hint));
            }
            return error::exit(error::INVALID);
        }
    };
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let printer = Printer::new(cli.json, verbosity);
    // Every HTTPS client of vcctl (its own and the AWS SDK's) uses aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    // Every command ends the same way on SIGINT or SIGTERM: 130, unless the work holds a
    // `signals::Guard` and says so itself (signals.rs).
    let command = cli.command.name();
    // Hints name commands; on another stack than the default, with `--stack`, so they paste.
    let stack = Some(cli.stack.clone()).filter(|s| s != "local");
    let work = async {
        tokio::select! {
            r = run(cli, printer.clone()) => r,
            why = signals::unguarded() => Err(error::Failure::Interrupted { message: signals::stopped(command, why) }.into()),
        }
    };
    match runtime.block_on(work) {
        Ok(code) => error::exit(code),
        Err(err) => {
            let (code, hint) = error::classify(&err);
            let hint = match (&stack, hint) {
                (Some(stack), Some(h)) => Some(error::with_stack(&h, stack)),
                (_, h) => h,
            };
            let label =
                if printer.is_fancy() { console::style("error:").red().bold().to_string() } else { "error:".into() };
            let problems = error::problems(&err, hint);
            for (message, hint) in &problems {
                printer::say(format!("{label} {message}"));
                if let Some(h) = hint {
                    printer::say(format!("hint: {h}"));
                }
            }
            if let [(_, _), _, ..] = problems.as_slice() {
                printer::say(format!("{label} {} problems, each above; nothing was done", problems.len()));
            }
            let message = problems.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join("\n");
            printer.json_error(&message, code, problems[0].1.as_deref());
            error::exit(code)
        }
    }
}

async fn run(cli: Cli, printer: Printer) -> Result<u8> {
    // These need no stack file.
    match &cli.command {
        Command::Completions { shell } => return Ok(commands::completions(*shell)),
        Command::Supervise(args) => return providers::local::supervise::run(&args.spec()).await,
        Command::Simulate(args) if args.target.is_some() => {
            let target = args.target.as_deref().unwrap_or_default().trim_end_matches('/').to_string();
            let token = commands::simulate::token_file(args.token_file.as_deref())?;
            return commands::simulate::run(&printer, args, target, token, http_client::Trust::default()).await;
        }
        _ => {}
    }
    let here = match &cli.directory {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => std::env::current_dir()?,
    };
    let by_path = stack::locate(Path::new(""), &cli.stack) == Path::new(&cli.stack);
    // A stack given by path belongs to the project around it; a name, to the project here.
    let root = match by_path {
        true => stack::project_root(here.join(&cli.stack).parent().unwrap_or(&here)),
        false => stack::project_root(&here),
    };
    // A path as the user wrote it (messages name it so), unless -C moved where it starts.
    let file = match (by_path, &cli.directory) {
        (true, None) => Path::new(&cli.stack).to_path_buf(),
        (true, Some(_)) => here.join(&cli.stack),
        (false, _) => stack::locate(&root, &cli.stack),
    };
    if !by_path && !file.exists() {
        let (message, hint) = stack::missing(&root, &cli.stack);
        return Err(error::Failure::invalid(message, Some(hint)).into());
    }
    let stack = stack::load_file(&file)?;
    let settings = settings::Settings::resolve(&root, stack, &cli.command.overrides().settings());
    let ctx = Ctx { printer, root, settings, yes: cli.command.yes(), ssh_from: cli.ssh_from.clone() };
    commands::dispatch(&ctx, &cli.command).await
}
