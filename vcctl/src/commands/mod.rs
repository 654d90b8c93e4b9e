//! One file per subcommand, each a short script over the modules below it.

pub mod aws;
pub mod deploy;
pub mod destroy;
pub mod logs;
pub mod plan;
pub mod remote;
pub mod simulate;
pub mod status;
pub mod up;

use std::path::PathBuf;

use anyhow::Result;

use crate::error::Failure;
use crate::local::LocalStack;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::stack::Provider;

/// What every command receives.
pub struct Ctx {
    pub printer: Printer,
    /// The project directory: where `stacks/`, `.vcctl/` and the sources are.
    pub root: PathBuf,
    pub settings: Settings,
    pub yes: bool,
}

impl Ctx {
    /// The local stack, or a clear refusal for providers this build cannot drive yet.
    pub fn local(&self) -> Result<LocalStack> {
        match &self.settings.provider {
            Provider::Local(_) => Ok(LocalStack::new(&self.settings)),
            other => Err(anyhow::anyhow!(
                "the `{}` provider is not available in this build of vcctl yet; stack `{}` cannot be driven",
                other.name(),
                self.settings.stack
            )),
        }
    }

    /// Asks before destroying; `--yes` answers for scripts, and is required without a terminal.
    pub fn confirm_destruction(&self, what: &str) -> Result<()> {
        if self.yes {
            return Ok(());
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(Failure::invalid(
                format!("refusing to {what} without confirmation: stdin is not a terminal"),
                Some("pass --yes to confirm".to_string()),
            )
            .into());
        }
        eprint!("This will {what}. Type the stack name (`{}`) to confirm: ", self.settings.stack);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != self.settings.stack {
            return Err(Failure::invalid("not confirmed; nothing was changed", None).into());
        }
        Ok(())
    }
}
