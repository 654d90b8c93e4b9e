//! `Ctx`: what every command, and every provider it calls, receives: the printer, the
//! project, the resolved settings and the answers given on the command line.

use std::path::PathBuf;

use crate::printer::Printer;
use crate::settings::Settings;

/// What every command receives.
#[derive(Clone)]
pub struct Ctx {
    pub printer: Printer,
    /// The project directory: where `stacks/`, `.vcctl/` and the sources are.
    pub root: PathBuf,
    pub settings: Settings,
    pub yes: bool,
    /// `--ssh-from`: the network on-demand SSH admits, instead of the detected address.
    pub ssh_from: Option<String>,
}

impl Ctx {
    /// This context with the stack's id as its file says now: another vcctl may have written
    /// it since this one read the file (the first `up` of a stack it waited for).
    pub fn with_current_id(&self) -> Ctx {
        let mut fresh = self.clone();
        if fresh.settings.stack_id.is_none()
            && let Ok(stack) = crate::stack::load_file(&fresh.settings.stack_file)
        {
            fresh.settings.stack_id = stack.id;
        }
        fresh
    }
}
