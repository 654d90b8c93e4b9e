//! `Ctx`: what every command, and every provider it calls, receives: the printer, the
//! project, the resolved settings and the answers given on the command line.

use std::path::PathBuf;

use crate::printer::Printer;
use crate::settings::Settings;

/// What every command receives.
pub struct Ctx {
    pub printer: Printer,
    /// The project directory: where `stacks/`, `.vcctl/` and the sources are.
    pub root: PathBuf,
    pub settings: Settings,
    pub yes: bool,
    /// `--ssh-from`: the network on-demand SSH admits, instead of the detected address.
    pub ssh_from: Option<String>,
}
