//! Settings resolved once, flags > environment > stack file > defaults, into the one struct
//! commands receive. Clap merges a flag with its environment variable; this adds the stack
//! file and the defaults, and records where each value came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::stack::{Provider, Stack};

pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
pub const DEFAULT_KPI_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingSource {
    Flag,
    /// The flag's environment variable (`VCCTL_PORT`).
    Env,
    Default,
    Stack,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub stack: String,
    pub stack_file: PathBuf,
    /// The stack's own id (`id:`), when it has one yet.
    pub stack_id: Option<String>,
    #[serde(skip)]
    pub provider: Provider,
    pub provider_name: &'static str,
    pub port: u16,
    pub port_source: SettingSource,
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub kpi_interval: Duration,
    pub ingest_token: bool,
    /// Plain environment variables for the service (`service.env`).
    pub env: Vec<(String, String)>,
    /// HTTPS in front of the service, when the stack has `tls:`.
    pub tls: Option<crate::stack::TlsSettings>,
    /// Who the alarms notify (`alerts.email`).
    pub alert_email: Option<String>,
    /// Where vcctl keeps this stack's local state (`.vcctl/<provider>/<stack>`).
    pub state_dir: PathBuf,
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// The port given on the command line or in `VCCTL_PORT`, which wins over the stack file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub port: Option<u16>,
    /// The port came from the environment, not the flag.
    pub port_from_env: bool,
}

impl Settings {
    /// `root` is the project directory (where `stacks/` and `.vcctl/` live).
    pub fn resolve(root: &Path, stack: Stack, overrides: &Overrides) -> Settings {
        let (port, port_source) = match (overrides.port, stack.service.port) {
            (Some(p), _) if overrides.port_from_env => (p, SettingSource::Env),
            (Some(p), _) => (p, SettingSource::Flag),
            (None, Some(p)) => (p, SettingSource::Stack),
            (None, None) => (DEFAULT_PORT, SettingSource::Default),
        };
        let provider_name = stack.provider.name();
        let public = matches!(stack.provider, crate::stack::Provider::Aws(_));
        Settings {
            state_dir: root.join(".vcctl").join(provider_name).join(&stack.name),
            stack: stack.name,
            stack_file: stack.file,
            stack_id: stack.id,
            provider_name,
            provider: stack.provider,
            port,
            port_source,
            retention: stack.service.retention.unwrap_or(DEFAULT_RETENTION),
            kpi_interval: stack.service.kpi_interval.unwrap_or(DEFAULT_KPI_INTERVAL),
            // On by default where the service has a public address (an AWS stack): writes
            // from anyone are opted into (`service.ingest_token: false`), never the default.
            ingest_token: stack.service.ingest_token.unwrap_or(public),
            env: stack.service.env,
            tls: stack.tls,
            alert_email: stack.alert_email,
        }
    }
}
