//! Exit codes and the failures that choose them. Everything else is exit 1.
//! Documented in docs/reference/exit-codes.md; keep the two in step.

use std::process::ExitCode;

use crate::stack::StackError;

pub const OK: u8 = 0;
pub const ERROR: u8 = 1;
pub const PLAN_HAS_CHANGES: u8 = 2;
pub const INVALID: u8 = 3;
pub const CREDENTIALS: u8 = 4;
pub const LOCKED: u8 = 5;
pub const ROLLED_BACK: u8 = 6;
pub const ROLLBACK_FAILED: u8 = 7;
pub const NOT_CONFIRMED: u8 = 8;
pub const PROTECTED: u8 = 9;
pub const INTERRUPTED: u8 = 130;

/// Every exit code and its meaning, as docs/reference/exit-codes.md lists them.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (OK, "success"),
    (ERROR, "error"),
    (PLAN_HAS_CHANGES, "`plan` found changes"),
    (INVALID, "invalid stack file or arguments"),
    (CREDENTIALS, "credentials, permission or host key problem"),
    (LOCKED, "another deploy holds the lock"),
    (ROLLED_BACK, "the new release failed its health check and was rolled back; the old release is serving"),
    (ROLLBACK_FAILED, "the rollback failed too; a person is needed"),
    (
        NOT_CONFIRMED,
        "a destructive command was not confirmed (declined, or no terminal and no `--yes`); nothing was changed",
    ),
    (PROTECTED, "refused: the resource is protected (termination protection); nothing was changed"),
    (
        INTERRUPTED,
        "interrupted by Ctrl-C or SIGTERM (`simulate` prints what it did first; on AWS, SSH opened for the command is closed first)",
    ),
];

/// A failure with a meaning of its own for scripts and CI.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad arguments, settings or stack (exit 3).
    #[error("{message}")]
    Invalid { message: String, hint: Option<String> },
    /// Missing, expired or refused credentials (exit 4).
    #[error("{message}")]
    Credentials { message: String, hint: Option<String> },
    /// A service that did not answer at all: no route, refused, DNS, a dead proxy (exit 1).
    #[error("{message}")]
    Unreachable { message: String, hint: Option<String> },
    /// A destructive command was not confirmed (exit 8).
    #[error("{message}")]
    NotConfirmed { message: String, hint: Option<String> },
    /// A protected resource was not touched (exit 9).
    #[error("{message}")]
    Protected { message: String, hint: Option<String> },
    /// Another deploy holds the host's lock (exit 5).
    #[error("{message}")]
    Locked { message: String },
    /// The new release was unhealthy as a candidate and never took traffic (exit 6).
    #[error(
        "release {release} failed its health check before taking any traffic; {serving} is serving as before: {diagnosis}"
    )]
    Refused { release: String, serving: String, diagnosis: String },
    /// The new release was unhealthy and the previous one serves again (exit 6).
    #[error("release {release} failed its health check and was rolled back; {previous} is serving: {diagnosis}")]
    RolledBack { release: String, previous: String, diagnosis: String },
    /// New instances of a changed configuration were unhealthy and were terminated; the old
    /// ones serve as before (exit 6).
    #[error(
        "the new configuration {config} was unhealthy on {instances}, which were terminated; the old instances serve as before: {diagnosis}"
    )]
    RefreshFailed { config: String, instances: String, diagnosis: String },
    /// Stopped by SIGINT or SIGTERM, after cleaning up (exit 130).
    #[error("{message}")]
    Interrupted { message: String },
    /// The new release was unhealthy and so was the way back (exit 7).
    #[error("release {release} failed its health check ({diagnosis}) and the rollback failed too: {rollback}")]
    RollbackFailed { release: String, diagnosis: String, rollback: String },
}

impl Failure {
    pub fn invalid(message: impl Into<String>, hint: impl Into<Option<String>>) -> Failure {
        Failure::Invalid { message: message.into(), hint: hint.into() }
    }
}

/// The exit code and hint for an error: the first typed failure in its chain decides.
pub fn classify(err: &anyhow::Error) -> (u8, Option<String>) {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return match f {
                Failure::Invalid { hint, .. } => (INVALID, hint.clone()),
                Failure::Credentials { hint, .. } => (CREDENTIALS, hint.clone()),
                Failure::NotConfirmed { hint, .. } => (NOT_CONFIRMED, hint.clone()),
                Failure::Unreachable { hint, .. } => (ERROR, hint.clone()),
                Failure::Protected { hint, .. } => (PROTECTED, hint.clone()),
                Failure::Locked { .. } => (
                    LOCKED,
                    Some("wait for it to finish (or pass a longer --lock-timeout); a killed deploy releases the lock by itself".into()),
                ),
                Failure::RolledBack { .. } | Failure::Refused { .. } => {
                    (ROLLED_BACK, Some("see `vcctl logs` for the failed release's output; fix it and deploy again".into()))
                }
                Failure::RefreshFailed { .. } => (
                    ROLLED_BACK,
                    Some("`vcctl logs --instance ID` shows the new instance's boot; fix the stack file and run `vcctl up` again".into()),
                ),
                Failure::Interrupted { .. } => (INTERRUPTED, None),
                Failure::RollbackFailed { .. } => (
                    ROLLBACK_FAILED,
                    Some("nothing healthy is serving: check `vcctl logs` and `vcctl status`, then `vcctl rollback --to RELEASE`".into()),
                ),
            };
        }
        if let Some(e) = cause.downcast_ref::<StackError>() {
            return (INVALID, e.hint.clone());
        }
    }
    (ERROR, None)
}

/// What to say of `err`, each problem with its hint: one, or each problem of a stack file
/// that has several (they are independent: a user fixes them in one go). `hint` is the
/// first's, as [`classify`] found it.
pub fn problems(err: &anyhow::Error, hint: Option<String>) -> Vec<(String, Option<String>)> {
    let mut out = vec![(format!("{err:#}"), hint)];
    if let Some(stack) = err.chain().find_map(|c| c.downcast_ref::<StackError>()) {
        out.extend(stack.more.iter().map(|e| (e.to_string(), e.hint.clone())));
    }
    out
}

/// An error and its sources on one line, `outer: inner: innermost`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// A refused command line as one message and a hint: clap's first line, without its
/// `error: ` label, and where the usage is.
pub fn of_arguments(e: &clap::Error) -> (String, String) {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    (message, "`vcctl <command> --help` lists each command's flags".to_string())
}

/// `hint` with `--stack STACK` in every vcctl command it names (`` `vcctl up` ``), so that a
/// pasted hint acts on the stack it is about: at the end of the command, before any
/// redirection. A hint that names stacks itself (`--stack`) is left as it is.
pub fn with_stack(hint: &str, stack: &str) -> String {
    if hint.contains("--stack") {
        return hint.to_string();
    }
    let mut out = String::with_capacity(hint.len() + 32);
    let mut rest = hint;
    while let Some(i) = rest.find("`vcctl ") {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let Some(end) = from[1..].find('`').map(|e| e + 1) else {
            out.push_str(from);
            return out;
        };
        let command = &from[1..end];
        if command["vcctl ".len()..].starts_with('-') {
            out.push_str(&from[..=end]);
        } else {
            // Before ` > FILE`, ` < FILE` or ` | ...`, else at the end.
            let at = [" > ", " < ", " | "].iter().filter_map(|op| command.find(op)).min().unwrap_or(command.len());
            out.push_str(&format!("`{} --stack {stack}{}`", &command[..at], &command[at..]));
        }
        rest = &from[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hints_name_the_stack_they_are_about() {
        let with = super::with_stack;
        assert_eq!(with("run `vcctl up` again", "frankfurt"), "run `vcctl up --stack frankfurt` again");
        assert_eq!(
            with("`vcctl db dump > FILE`, then `vcctl secrets set KEY`", "stacks/x.yaml"),
            "`vcctl db dump --stack stacks/x.yaml > FILE`, then `vcctl secrets set KEY --stack stacks/x.yaml`"
        );
        assert_eq!(
            with("`vcctl status --stack other`, then `vcctl up`", "fra"),
            "`vcctl status --stack other`, then `vcctl up`"
        );
        assert_eq!(
            with("`vcctl --help` lists them; `ssh-keygen -y`", "fra"),
            "`vcctl --help` lists them; `ssh-keygen -y`"
        );
        assert_eq!(with("an odd ` vcctl` and `vcctl up", "fra"), "an odd ` vcctl` and `vcctl up");
    }

    #[test]
    fn exit_codes_are_documented() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference/exit-codes.md")).unwrap();
        for (code, meaning) in super::EXIT_CODES {
            let row = format!("| {code} | {meaning} |");
            assert!(doc.contains(&row), "docs/reference/exit-codes.md lacks the row `{row}`");
        }
    }
}
