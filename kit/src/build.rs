//! `kit b [DIR]`: build every process crate of a package for
//! `wasm32-wasip2` and copy the components into `DIR/pkg/`.
//!
//! A package directory holds `metadata.json`, `pkg/manifest.json` and one
//! subdirectory per process crate (any direct subdirectory with a
//! `Cargo.toml`). Cargo's output is streamed to the terminal as it comes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[path = "build_api.rs"]
pub mod api;

/// The target every process is compiled for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Package directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    build_package(&args.dir)
}

/// Builds the package in `dir`; used by `kit b` and `kit bs`.
pub fn build_package(dir: &Path) -> Result<()> {
    let crates = find_crates(dir)?;
    let python = crate::python::build_all(dir)?;
    if crates.is_empty() && python == 0 {
        bail!(
            "{} has no process crate (a subdirectory with a Cargo.toml) and no Python \
             process (a subdirectory with an app.py)",
            dir.display()
        );
    }
    if let Some(first) = crates.first() {
        check_wasm_target(first)?;
    }
    let pkg = dir.join("pkg");
    for crate_dir in &crates {
        let wasm = build_crate(crate_dir, &pkg)?;
        eprintln!("kit: built {}", wasm.display());
        for file in api::write(dir, &wasm)? {
            eprintln!("kit: wrote {}", file.display());
        }
    }
    let wasm_paths = manifest_wasm_paths(&pkg)?;
    for path in &wasm_paths {
        if !pkg.join(path).is_file() {
            bail!(
                "pkg/manifest.json names `{path}`, but no crate built pkg/{path}; \
                 crates built: {}",
                crate_names(&crates)
            );
        }
    }
    let n = wasm_paths.len();
    eprintln!(
        "kit: package {} built ({n} {})",
        dir.display(),
        if n == 1 { "process" } else { "processes" }
    );
    Ok(())
}

/// Checks that `dir` is a package and returns its process crates, sorted.
pub fn find_crates(dir: &Path) -> Result<Vec<PathBuf>> {
    for needed in ["metadata.json", "pkg/manifest.json"] {
        if !dir.join(needed).is_file() {
            bail!(
                "{} is not a package directory: {needed} is missing",
                dir.display()
            );
        }
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut crates = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            crates.push(path);
        }
    }
    crates.sort();
    Ok(crates)
}

/// The `process_wasm_path` of every process in `pkg/manifest.json`, relative
/// to `pkg/` (a leading `/` is allowed in the manifest).
pub fn manifest_wasm_paths(pkg: &Path) -> Result<Vec<String>> {
    let path = pkg.join("manifest.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    wasm_paths_of(&text).with_context(|| format!("in {}", path.display()))
}

fn wasm_paths_of(manifest: &str) -> Result<Vec<String>> {
    let value: serde_json::Value =
        serde_json::from_str(manifest).context("the manifest is not valid JSON")?;
    let Some(entries) = value.as_array() else {
        bail!("the manifest must be a JSON array of processes");
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| match entry.get("process_wasm_path") {
            Some(serde_json::Value::String(p)) => Ok(p.trim_start_matches('/').to_string()),
            _ => bail!("process {i} has no string `process_wasm_path`"),
        })
        .collect()
}

/// Fails early, with the fix, when the standard library for the wasm target
/// is not installed for the toolchain that builds `crate_dir` (which may
/// pin its own through `rust-toolchain.toml`).
fn check_wasm_target(crate_dir: &Path) -> Result<()> {
    let output = Command::new(rustc())
        .args(["--print", "sysroot"])
        .current_dir(crate_dir)
        .output()
        .context("running `rustc --print sysroot` (is Rust installed?)")?;
    if !output.status.success() {
        bail!(
            "`rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        bail!(
            "the Rust target {WASM_TARGET} is not installed; install it with \
             `rustup target add {WASM_TARGET}`"
        );
    }
    Ok(())
}

/// Builds one crate, output streamed, and copies its component to `pkg`.
fn build_crate(crate_dir: &Path, pkg: &Path) -> Result<PathBuf> {
    eprintln!("kit: building {} for {WASM_TARGET}", crate_dir.display());
    let status = Command::new(cargo())
        .args(["build", "--release", "--target", WASM_TARGET])
        .args(kit::build_profile::cargo_args())
        .current_dir(crate_dir)
        .status()
        .context("running cargo (is it on PATH?)")?;
    if !status.success() {
        bail!(
            "building {} failed ({status}); see cargo's output above",
            crate_dir.display()
        );
    }
    let (target_dir, lib_name) = crate_metadata(crate_dir)?;
    let built = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{lib_name}.wasm"));
    if !built.is_file() {
        bail!(
            "cargo built {} but {} is missing; is the crate a `cdylib`?",
            crate_dir.display(),
            built.display()
        );
    }
    let dest = pkg.join(format!("{lib_name}.wasm"));
    std::fs::copy(&built, &dest)
        .with_context(|| format!("copying {} to {}", built.display(), dest.display()))?;
    Ok(dest)
}

/// Target directory and library name of the crate in `crate_dir`.
fn crate_metadata(crate_dir: &Path) -> Result<(PathBuf, String)> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(crate_dir)
        .output()
        .context("running `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed in {}: {}",
            crate_dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let manifest = crate_dir
        .join("Cargo.toml")
        .canonicalize()
        .with_context(|| format!("resolving {}/Cargo.toml", crate_dir.display()))?;
    parse_metadata(&output.stdout, &manifest)
}

/// Picks the package whose manifest is `manifest` out of `cargo metadata`
/// (in a workspace, `--no-deps` lists every member) and returns the target
/// directory and the name of its library target, as rustc names files.
fn parse_metadata(json: &[u8], manifest: &Path) -> Result<(PathBuf, String)> {
    let value: serde_json::Value =
        serde_json::from_slice(json).context("`cargo metadata` printed invalid JSON")?;
    let target_dir = value["target_directory"]
        .as_str()
        .context("`cargo metadata` has no target_directory")?;
    let packages = value["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?;
    let package = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .with_context(|| format!("`cargo metadata` does not list {}", manifest.display()))?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib" || k == "lib"))
        })
        .with_context(|| format!("{} has no library target", manifest.display()))?;
    let name = lib["name"]
        .as_str()
        .context("library target without a name")?;
    Ok((PathBuf::from(target_dir), name.replace('-', "_")))
}

fn crate_names(crates: &[PathBuf]) -> String {
    let names: Vec<_> = crates
        .iter()
        .filter_map(|c| c.file_name())
        .map(|n| n.to_string_lossy())
        .collect();
    names.join(", ")
}

/// The cargo running kit (when kit runs under `cargo run`) or from PATH.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn rustc() -> std::ffi::OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::TempDir;

    #[test]
    fn finds_crate_dirs_of_a_package() {
        let tmp = TempDir::new("crates");
        let dir = &tmp.0;
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("metadata.json"), "{}").unwrap();
        std::fs::write(dir.join("pkg/manifest.json"), "[]").unwrap();
        for name in ["zeta", "alpha", "notes"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        std::fs::write(dir.join("zeta/Cargo.toml"), "").unwrap();
        std::fs::write(dir.join("alpha/Cargo.toml"), "").unwrap();
        let crates = find_crates(dir).unwrap();
        assert_eq!(crates, vec![dir.join("alpha"), dir.join("zeta")]);
    }

    #[test]
    fn non_package_is_rejected() {
        let tmp = TempDir::new("not-pkg");
        let err = find_crates(&tmp.0).unwrap_err().to_string();
        assert!(err.contains("metadata.json is missing"), "{err}");
    }

    #[test]
    fn wasm_paths_from_manifest() {
        let manifest = r#"[{"process_name": "echo", "process_wasm_path": "/echo.wasm"},
                           {"process_name": "b", "process_wasm_path": "b.wasm"}]"#;
        assert_eq!(
            wasm_paths_of(manifest).unwrap(),
            vec!["echo.wasm", "b.wasm"]
        );
        assert!(wasm_paths_of(r#"[{"process_name": "x"}]"#).is_err());
        assert!(wasm_paths_of(r#"{"processes": []}"#).is_err());
    }

    #[test]
    fn metadata_picks_the_crate_among_workspace_members() {
        let json = br#"{
            "target_directory": "/ws/target",
            "packages": [
                {"manifest_path": "/ws/node/Cargo.toml",
                 "targets": [{"name": "hearth", "kind": ["lib"]}]},
                {"manifest_path": "/ws/apps/my-app/my-app/Cargo.toml",
                 "targets": [{"name": "my-app", "kind": ["cdylib"]}]}
            ]}"#;
        let (dir, name) =
            parse_metadata(json, Path::new("/ws/apps/my-app/my-app/Cargo.toml")).unwrap();
        assert_eq!(dir, PathBuf::from("/ws/target"));
        assert_eq!(name, "my_app");
        assert!(parse_metadata(json, Path::new("/elsewhere/Cargo.toml")).is_err());
    }
}
