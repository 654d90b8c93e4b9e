//! The direction of vcctl's imports, checked on its sources: `commands → providers →
//! deploy → targets → host | cloud → render → the cross-cutting base` (ARCHITECTURE.md).
//! A lower layer that names a higher one, `cloud` naming anything but itself and the error
//! and output types, or one stack shape naming another, fails here, not in review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, highest first. A module's layer is its first path segment; anything not
/// named is the cross-cutting base (error, printer, settings, stack, release, ...).
fn rank(module: &str) -> u8 {
    match module.split("::").next().unwrap_or("") {
        "" | "cli" | "commands" => 7,
        "providers" => 6,
        "deploy" => 5,
        "targets" => 4,
        "host" | "cloud" => 3,
        "render" => 2,
        _ => 1,
    }
}

/// The stack shape a provider module belongs to; the shapes share only `providers::aws`
/// (the AWS shapes: a box, a group, several regions) and what lies below `providers`.
fn shape(module: &str) -> Option<&str> {
    let parts: Vec<&str> = module.split("::").collect();
    match parts.as_slice() {
        ["providers", "aws", s @ ("single" | "scale" | "global"), ..] => Some(s),
        ["providers", "aws", ..] => Some("aws"),
        ["providers", s, ..] => Some(s),
        _ => None,
    }
}

fn allowed(from: &str, to: &str) -> bool {
    let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
    if rank(from) == 7 {
        return true;
    }
    if top(from) == "cloud" {
        return top(to) == "cloud" || to == "error" || to == "printer";
    }
    if top(from) == top(to) {
        return match (shape(from), shape(to)) {
            (Some(a), Some(b)) => a == b || (b == "aws" && matches!(a, "single" | "scale" | "global")),
            _ => true,
        };
    }
    rank(to) < rank(from) || (rank(from) == 1 && rank(to) == 1)
}

/// `vcctl/src/a/b.rs` → `a::b`; `mod.rs` and `main.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::` paths a source names outside its tests, grouped imports included.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(0)];
            out.extend(inner.split(',').map(|p| p.trim().split("::{").next().unwrap_or("").to_string()));
        } else {
            let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let head = path.trim_end_matches(':').to_string();
            // `crate::a::{b, c::D}`: each of `a::b` and `a::c::D`, which may be modules.
            match rest[path.len()..].strip_prefix('{') {
                Some(group) => {
                    let inner = &group[..group.find('}').unwrap_or(0)];
                    out.extend(
                        inner.split(',').map(|p| format!("{head}::{}", p.trim().split("::{").next().unwrap_or(""))),
                    );
                }
                None => out.push(head),
            }
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The longest known module that `path` starts with (the rest names an item).
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len()).rev().find_map(|n| modules.get(&segments[..n].join("::")))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import that goes the wrong way, as `from → to`.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut bad = BTreeSet::new();
    for (from, text) in files {
        for path in imports(text) {
            match resolve(&modules, &path) {
                Some(to) if to != from && !allowed(from, to) => {
                    bad.insert(format!("{} → {to} (crate::{path})", if from.is_empty() { "main" } else { from }));
                }
                _ => {}
            }
        }
    }
    bad.into_iter().collect()
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    assert!(paths.len() > 50, "found only {} sources under {}", paths.len(), src.display());
    let files: Vec<(String, String)> =
        paths.iter().map(|p| (module_of(&src, p), std::fs::read_to_string(p).unwrap())).collect();
    let bad = violations(&files);
    assert!(bad.is_empty(), "imports against the layers (ARCHITECTURE.md):\n  {}", bad.join("\n  "));
}

#[test]
fn the_check_sees_each_kind_of_wrong_import() {
    let file = |m: &str, text: &str| (m.to_string(), text.to_string());
    let base = [
        file("commands", ""),
        file("providers::aws", ""),
        file("providers::aws::scale", ""),
        file("providers::aws::single", ""),
        file("providers::local", ""),
        file("deploy", ""),
        file("cloud::aws", ""),
        file("settings", ""),
        file("render", ""),
        file("host", ""),
    ];
    let with = |extra: (String, String)| {
        let mut files: Vec<_> = base.iter().filter(|(m, _)| *m != extra.0).cloned().collect();
        files.push(extra);
        violations(&files)
    };
    // Upward, in both spellings.
    assert_eq!(with(file("deploy", "use crate::commands::Ctx;")).len(), 1);
    assert_eq!(with(file("render", "use crate::{settings, host::Host};")).len(), 1);
    // The SDK wrappers know no settings; shapes know no other shape.
    assert_eq!(with(file("cloud::aws", "fn f(s: &crate::settings::Settings) {}")).len(), 1);
    assert_eq!(with(file("providers::aws::scale", "use crate::providers::aws::single::up;")).len(), 1);
    assert_eq!(with(file("providers::aws", "use crate::providers::aws::scale::x;")).len(), 1);
    // What is allowed stays allowed, and tests may use anything.
    assert!(with(file("providers::aws::scale", "use crate::providers::aws::connect; use crate::deploy;")).is_empty());
    assert!(with(file("render", "use crate::settings::Settings;\n#[cfg(test)]\nuse crate::host::Host;")).is_empty());
    assert!(with(file("commands", "use crate::providers::local::plan;")).is_empty());
}
