//! Bakes the git commit into the binary (`/api/status`, build-info metric; `VC_GIT_SHA`
//! overrides it for builds outside a checkout), and fetches the dashboard's npm
//! dependencies (pinned by `dashboard/package-lock.json`) so the binary embeds them: the
//! deployed dashboard needs no CDN.
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    git_sha();
    dashboard_vendor();
}

/// `npm ci` of the dashboard's runtime dependencies into OUT_DIR, once per lock file.
fn dashboard_vendor() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let src = manifest.join("dashboard");
    println!("cargo:rerun-if-changed=dashboard/package.json");
    println!("cargo:rerun-if-changed=dashboard/package-lock.json");
    let npm_dir = out.join("npm");
    std::fs::create_dir_all(&npm_dir).unwrap();
    let lock = std::fs::read(src.join("package-lock.json")).expect("dashboard/package-lock.json");
    let installed = npm_dir.join("package-lock.json");
    let wanted = [("uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"), ("uplot/dist/uPlot.min.css", "uPlot.min.css")];
    let fresh = std::fs::read(&installed).ok().as_deref() == Some(&lock[..])
        && wanted.iter().all(|(from, _)| npm_dir.join("node_modules").join(from).exists());
    if !fresh {
        std::fs::copy(src.join("package.json"), npm_dir.join("package.json")).unwrap();
        std::fs::write(&installed, &lock).unwrap();
        let status = Command::new("npm")
            .args(["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&npm_dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!(
                "`npm ci` for the dashboard failed ({s}) in {}; is the npm registry reachable?",
                npm_dir.display()
            ),
            Err(e) => {
                panic!("the dashboard needs npm (Node.js 20) at build time to fetch uPlot from the npm registry: {e}")
            }
        }
    }
    let assets = out.join("dashboard");
    std::fs::create_dir_all(&assets).unwrap();
    for (from, to) in wanted {
        copy_if_changed(&npm_dir.join("node_modules").join(from), &assets.join(to));
    }
}

fn copy_if_changed(from: &Path, to: &Path) {
    let data = std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&data[..]) {
        std::fs::write(to, data).unwrap();
    }
}

fn git_sha() {
    println!("cargo:rerun-if-env-changed=VC_GIT_SHA");
    let sha = std::env::var("VC_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VC_GIT_SHA={sha}");
    // Rebuild when HEAD moves: HEAD itself (branch switch) and the branch it points to.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
}
