//! The release artifact: the `vehicleconnect` binary, built from this checkout or given
//! with `--artifact`, identified by its sha256 and the version it reports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::error::Failure;
use crate::printer::Printer;

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub sha256: String,
    /// `0.1.0`, as `vehicleconnect --version` reports it; `None` when it would not say.
    pub version: Option<String>,
    /// The git commit it was built from, as it reports it.
    pub git_sha: Option<String>,
    /// The name its release takes, when one name must hold on several hosts (a fleet's
    /// rolling deploy); else `<UTC time of the upload>-<sha12>`.
    pub release_name: Option<String>,
}

impl Artifact {
    pub fn short_sha(&self) -> &str {
        &self.sha256[..12]
    }

    /// The version and commit a healthy release of this artifact must report, when it says.
    pub fn want(&self) -> Option<(&str, &str)> {
        self.version.as_deref().zip(self.git_sha.as_deref())
    }
}

/// `--artifact PATH`, or a release build of this checkout.
pub async fn resolve(root: &Path, given: Option<&Path>, printer: &Printer) -> Result<Artifact> {
    let path = match given {
        Some(p) => {
            if !p.is_file() {
                return Err(Failure::invalid(
                    format!("--artifact `{}` is not a file", p.display()),
                    Some("pass the vehicleconnect binary, e.g. target/release/vehicleconnect".to_string()),
                )
                .into());
            }
            p.to_path_buf()
        }
        None => build(root, printer).await?,
    };
    probe(&path).await
}

async fn build(root: &Path, printer: &Printer) -> Result<PathBuf> {
    if !root.join("service/Cargo.toml").is_file() {
        return Err(Failure::invalid(
            format!("no --artifact given and `{}` is not a VehicleConnect checkout to build from", root.display()),
            Some("run vcctl from the repository root, or pass --artifact PATH".to_string()),
        )
        .into());
    }
    let step = printer.step("building the service (cargo build --release)");
    let out = tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "--bin", "vehicleconnect"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("running cargo")?;
    if !out.status.success() {
        step.fail("cargo failed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail = crate::printer::last_lines(&stderr, 20);
        bail!("cargo build --release failed:\n{}", tail.join("\n"));
    }
    step.done("target/release/vehicleconnect");
    Ok(root.join("target/release/vehicleconnect"))
}

/// Hashes the file and asks it for its version.
/// What a plan compares with, without building: `given` (`--artifact`), else the last
/// release build of the checkout at `root`, else nothing.
pub async fn planned(root: &Path, given: Option<&Path>) -> Result<Option<Artifact>> {
    let candidate = given
        .map(Path::to_path_buf)
        .or_else(|| Some(root.join("target/release/vehicleconnect")).filter(|p| p.is_file()));
    match candidate {
        Some(p) => Ok(Some(probe(&p).await?)),
        None => Ok(None),
    }
}

pub async fn probe(path: &Path) -> Result<Artifact> {
    let data = std::fs::read(path).with_context(|| format!("reading the artifact `{}`", path.display()))?;
    let sha256 = format!("{:x}", Sha256::digest(&data));
    let version = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(path).arg("--version").stdin(Stdio::null()).stderr(Stdio::null()).output(),
    )
    .await;
    let (version, git_sha) = match version {
        Ok(Ok(out)) if out.status.success() => parse_version(&String::from_utf8_lossy(&out.stdout)),
        _ => (None, None),
    };
    Ok(Artifact { path: path.to_path_buf(), sha256, version, git_sha, release_name: None })
}

/// The machine an ELF binary is built for, as `uname -m` names it; `None` for anything
/// else (a script, an unknown machine).
pub fn elf_machine(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..4] != b"\x7fELF" || head[5] != 1 {
        return None; // not ELF, or not little-endian
    }
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => Some("x86_64"),
        183 => Some("aarch64"),
        _ => None,
    }
}

/// `vehicleconnect 0.1.0 (1a2b3c4d5e6f)` → (`0.1.0`, `1a2b3c4d5e6f`).
fn parse_version(line: &str) -> (Option<String>, Option<String>) {
    let mut words = line.split_whitespace();
    if words.next() != Some("vehicleconnect") {
        return (None, None);
    }
    let version = words.next().map(str::to_string);
    let sha = words.next().map(|s| s.trim_matches(|c| c == '(' || c == ')').to_string());
    (version, sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machines_are_read_from_the_header() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(elf_machine(&exe), Some(std::env::consts::ARCH));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "#!/bin/sh\n").unwrap();
        assert_eq!(elf_machine(&dir.path().join("s")), None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("vehicleconnect 0.1.0 (abc123)\n"), (Some("0.1.0".into()), Some("abc123".into())));
        assert_eq!(parse_version("something else 1.0"), (None, None));
    }
}
