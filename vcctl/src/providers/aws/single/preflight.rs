//! What `plan` and `up` check before anything is paid for: that the instance type is sold
//! in the region, runs the artifact's architecture, and that the network the instance goes
//! into exists. Each problem is an exit 3 naming the setting to change.

use std::path::Path;

use anyhow::Result;

use crate::cloud::aws::{Aws, ec2};
use crate::error::Failure;
use crate::providers::aws::architecture;
use crate::providers::aws::single::provision::BoxWanted;

/// The problems found, all at once; none means go.
pub async fn check(aws: &Aws, w: &BoxWanted, artifact: Option<&Path>, file: &Path) -> Result<()> {
    let mut problems = Vec::new();
    if let Some(problem) = arch_mismatch(&w.instance_type, artifact) {
        problems.push(problem);
    }
    if !ec2::instance_type_offered(&aws.ec2, &w.instance_type).await? {
        problems.push(format!("instance type {} is not offered in {} (aws.instance_type)", w.instance_type, w.region));
    }
    match &w.vpc_id {
        None => {
            if let Err(e) = ec2::default_vpc(&aws.ec2).await {
                problems.push(format!("{e:#}"));
            }
        }
        Some(vpc) => {
            if !ec2::vpc_exists(&aws.ec2, vpc).await? {
                problems.push(format!("VPC {vpc} does not exist in {} (aws.vpc_id)", w.region));
            }
        }
    }
    if let Some(subnet) = &w.subnet_id
        && !ec2::subnet_exists(&aws.ec2, subnet).await?
    {
        problems.push(format!("subnet {subnet} does not exist in {} (aws.subnet_id)", w.region));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::invalid(
        format!("stack `{}` cannot be created as it is:\n  {}", w.stack, problems.join("\n  ")),
        Some(format!("change the settings named in `{}`", file.display())),
    )
    .into())
}

/// An artifact built for another architecture than the instance type runs.
fn arch_mismatch(instance_type: &str, artifact: Option<&Path>) -> Option<String> {
    let path = artifact?;
    let built = crate::artifact::elf_machine(path)?;
    let runs = match architecture(instance_type) {
        "arm64" => "aarch64",
        other => other,
    };
    (built != runs).then(|| {
        format!(
            "instance type {instance_type} runs {runs}, but `{}` is built for {built} (aws.instance_type, or build for {runs})",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_artifact_for_another_architecture_is_named() {
        let own = std::env::current_exe().unwrap();
        let arm = super::arch_mismatch("t4g.micro", Some(&own));
        let x86 = super::arch_mismatch("t3.micro", Some(&own));
        // This test binary is one of the two; exactly one instance type does not run it.
        assert!(arm.is_some() != x86.is_some(), "{arm:?} {x86:?}");
        assert!(super::arch_mismatch("t3.micro", None).is_none());
    }
}
