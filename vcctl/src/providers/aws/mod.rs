//! What both AWS shapes share: on-demand SSH, owners, preflight, cost and the CI role. The
//! single box is `single/`, the `scale:` stack `scale/`.

pub mod alert_topic;
pub mod ci;
pub mod cost;
pub mod edge;
pub mod firewall;
pub mod github;
pub mod global;
pub mod keys;
pub mod lock;
pub mod names;
pub mod notify;
pub mod on_demand;
pub mod operator;
pub mod owners;
pub mod reach;
pub mod role;
pub mod scale;
pub mod single;

use anyhow::Result;

use crate::cloud::aws::Aws;
use crate::context::Ctx;
use crate::stack::AwsSettings;

pub const DEFAULT_INSTANCE_TYPE: &str = "t2.micro";
/// The login of Debian's official images.
pub const DEFAULT_SSH_USER: &str = "admin";

pub async fn connect(ctx: &Ctx, a: &AwsSettings) -> Result<(Aws, String)> {
    let aws = Aws::connect(&a.region()).await;
    let step = ctx.printer.step(format!("checking AWS credentials ({})", crate::cloud::aws::credential_source()));
    match aws.identity().await {
        Ok(arn) => {
            step.done(&arn);
            // arn:aws:iam::123456789012:user/name → the account.
            let account = arn.split(':').nth(4).unwrap_or("*").to_string();
            Ok((aws, account))
        }
        Err(e) => {
            step.fail("");
            Err(e)
        }
    }
}

/// What `plan` says of the ingest token, on by default on AWS.
pub fn ingest_token_line(on: bool) -> String {
    if on {
        "ingest token: on (the default on AWS; `service.ingest_token: false` lets anyone who reaches the service write events)".into()
    } else {
        "ingest token: off (`service.ingest_token: false`): anyone who reaches the service can write events".into()
    }
}

/// The instance's root volume (gp3, encrypted): the OS and the releases; the events are on
/// the data volume.
pub const ROOT_VOLUME_GB: i32 = 16;

/// `x86_64` or `arm64`, from the instance type's family (Graviton families have a `g`).
pub fn architecture(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or("");
    let after_generation =
        family.trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim_start_matches(|c: char| c.is_ascii_digit());
    if family == "a1" || after_generation.contains('g') { "arm64" } else { "x86_64" }
}

/// The stamp of the stack `settings` describe (its id empty before the first `up`).
pub fn stamp(settings: &crate::settings::Settings) -> crate::cloud::aws::Stamp {
    crate::cloud::aws::Stamp { stack: settings.stack.clone(), id: settings.stack_id.clone().unwrap_or_default() }
}

/// The stack's id: from its file, or made now and written into it (before anything is
/// created, so an interrupted first `up` goes on with the same id).
pub fn stack_id(ctx: &Ctx) -> Result<String> {
    if let Some(id) = &ctx.settings.stack_id {
        return Ok(id.clone());
    }
    let id = crate::providers::aws::owners::new_id();
    let file = &ctx.settings.stack_file;
    anyhow::Context::with_context(crate::stack::write_id(file, &id), || {
        format!("writing the stack id into `{}`", file.display())
    })?;
    ctx.printer.warn(format!(
        "stack `{}` has the id {id} now, written into `{}`: commit it, so CI and your team use the same",
        ctx.settings.stack,
        file.display()
    ));
    Ok(id)
}
