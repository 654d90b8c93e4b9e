//! `exec`, `ssh` and `tunnel` on a `scale:` stack: on the instance `--instance` names (asked
//! on a terminal, refused in a script with the list), or with `exec --all` on each instance
//! in service in turn, each exit code reported; `db dump` of its RDS database through the
//! first instance in service. Port 22 of the app group opens for this machine's address
//! while they run (on-demand SSH), as on a single box.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use super::Ctx;
use crate::cli::Command;
use crate::error::Failure;
use crate::providers::aws::scale;
use crate::stack::AwsSettings;
use crate::targets::Operations;

pub async fn run(ctx: &Ctx, a: &AwsSettings, command: &Command) -> Result<u8> {
    let (instance, all) = match command {
        Command::Exec(e) => (e.instance.instance.clone(), e.all),
        Command::Ssh(s) => (s.instance.instance.clone(), false),
        Command::Tunnel(t) => (t.instance.instance.clone(), false),
        Command::Db(_) => (None, false),
        _ => anyhow::bail!("`{}` does not run on one instance", command.name()),
    };
    let (cloud, ids, app_group) = scale::in_service(ctx, a).await?;
    let chosen = match command {
        // The database is the group's, not an instance's: any instance in service reaches it.
        Command::Db(_) => ids.first().cloned().into_iter().collect(),
        _ => pick(&ctx.settings.stack, &ids, instance.as_deref(), all, command.name())?,
    };
    if chosen.is_empty() {
        anyhow::bail!("stack `{}`'s group has no instance in service", ctx.settings.stack);
    }
    let work = async {
        let mut codes = Vec::new();
        for (id, target) in scale::operations_on(ctx, a, &cloud, &chosen).await? {
            if all {
                ctx.printer.info(format!("== {id}"));
            }
            let code = super::on_target(ctx, command, Ok(Box::new(target) as Box<dyn Operations>)).await?;
            codes.push((id, code));
        }
        anyhow::Ok(codes)
    };
    let codes =
        crate::providers::aws::on_demand::around_on(ctx, a, &cloud, app_group.as_ref(), command.name(), work).await?;
    if all {
        for (id, code) in &codes {
            ctx.printer.info(format!("{id}: exit {code}"));
        }
        ctx.printer.json(&serde_json::json!({
            "stack": ctx.settings.stack,
            "instances": codes.iter().map(|(id, code)| serde_json::json!({"instance": id, "exit_code": code})).collect::<Vec<_>>(),
        }));
    }
    Ok(codes.iter().map(|(_, c)| *c).find(|c| *c != 0).unwrap_or(0))
}

/// The instances to run on: `--instance` (in service), every one with `--all`, the only one,
/// or the one a person at a terminal picks; a script is refused with the list.
fn pick(stack: &str, ids: &[String], instance: Option<&str>, all: bool, command: &str) -> Result<Vec<String>> {
    let list = ids.join(", ");
    if ids.is_empty() {
        anyhow::bail!("stack `{stack}`'s group has no instance in service");
    }
    match (instance, all) {
        (Some(id), _) if ids.iter().any(|i| i == id) => return Ok(vec![id.to_string()]),
        (Some(id), _) => {
            return Err(Failure::invalid(
                format!("instance {id} is not in service in stack `{stack}`'s group (in service: {list})"),
                Some("`vcctl status` lists the group's instances".into()),
            )
            .into());
        }
        (None, true) => return Ok(ids.to_vec()),
        (None, false) if ids.len() == 1 => return Ok(ids.to_vec()),
        _ => {}
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        let all = if command == "vcctl exec" { ", or --all for each in turn" } else { "" };
        return Err(Failure::invalid(
            format!("stack `{stack}` has {} instances in service: {list}; `{command}` needs one", ids.len()),
            Some(format!("name one with --instance {}{all}", ids[0])),
        )
        .into());
    }
    for (n, id) in ids.iter().enumerate() {
        crate::printer::say(format!("  {}) {id}", n + 1));
    }
    eprint_flush(&format!("which instance (1-{})? ", ids.len()));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    match line.trim().parse::<usize>() {
        Ok(n) if (1..=ids.len()).contains(&n) => Ok(vec![ids[n - 1].clone()]),
        _ => Err(Failure::invalid(format!("{:?} is not one of 1-{}", line.trim(), ids.len()), None).into()),
    }
}

fn eprint_flush(prompt: &str) {
    let mut err = std::io::stderr();
    let _ = err.write_all(prompt.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_instance_is_named_listed_or_all_and_a_script_never_guesses() {
        let ids = ["i-1".to_string(), "i-2".to_string()];
        let pick = |i, all| super::pick("fra", &ids, i, all, "vcctl exec").map_err(|e| e.to_string());
        assert_eq!(pick(Some("i-2"), false), Ok(vec!["i-2".to_string()]));
        assert_eq!(pick(None, true), Ok(ids.to_vec()));
        assert!(pick(Some("i-9"), false).unwrap_err().contains("instance i-9 is not in service"));
        // The tests run without a terminal: as a script.
        let refused = pick(None, false).unwrap_err();
        assert!(refused.contains("has 2 instances in service: i-1, i-2"), "{refused}");
        assert_eq!(super::pick("fra", &ids[..1], None, false, "vcctl ssh").unwrap(), ["i-1"]);
    }
}
