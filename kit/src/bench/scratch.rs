//! Builds the bench packages outside the source tree: each package of the
//! checkout is copied into a scratch directory, its crates made standalone
//! against the SDK kit carries ([`crate::sdk`]), and built there, so
//! `kit bench` never writes a `pkg/`, `api/` or `target/` into the
//! checkout. The scratch directory's `target/` is kept between runs (under
//! the system temp dir) so a second run builds incrementally.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Largest file copied: sources and UI files, not build output.
const MAX_COPY_BYTES: u64 = 32 * 1024 * 1024;

/// The scratch root: `$TMPDIR/hearth-kit-bench`.
fn root() -> PathBuf {
    std::env::temp_dir().join("hearth-kit-bench")
}

/// This run's copies: `<root>/run-<pid>/`, laid out as in the checkout
/// (a package may include a file of another by relative path).
pub fn run_dir() -> PathBuf {
    root().join(format!("run-{}", std::process::id()))
}

/// Copies the package at `workspace/rel` into this run's scratch copy of
/// the checkout, makes its crates standalone, builds it there and returns
/// the scratch package dir.
pub fn build(workspace: &Path, rel: &str) -> Result<PathBuf> {
    let source = workspace.join(rel);
    let root = root();
    let dest = run_dir().join(rel);
    let _ = std::fs::remove_dir_all(&dest);
    copy_tree(&source, &dest).with_context(|| format!("copying {}", source.display()))?;
    let sdk = crate::sdk::ensure().context("unpacking the guest SDK")?;
    let lock = std::fs::read(workspace.join("Cargo.lock")).ok();
    for crate_dir in crate::build::find_crates(&dest)? {
        let manifest = crate_dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let standalone = crate::standalone::standalone_manifest(&text, &sdk)?;
        std::fs::write(&manifest, standalone)?;
        // The workspace's lock: the same dependency versions as the
        // checkout builds with (cargo drops what the crate does not use).
        if let Some(lock) = &lock {
            std::fs::write(crate_dir.join("Cargo.lock"), lock)?;
        }
    }
    // Every crate in the scratch area shares one target dir.
    let config = root.join(".cargo/config.toml");
    std::fs::create_dir_all(root.join(".cargo"))?;
    let target = root.join("target");
    std::fs::write(
        &config,
        format!(
            "[build]\ntarget-dir = \"{}\"\n",
            target
                .to_string_lossy()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
    )?;
    crate::build::build_package(&dest)?;
    Ok(dest)
}

/// Copies `from` into `to`, skipping `target/` and symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&path, &dest)?;
            }
        } else if kind.is_file() && entry.metadata()?.len() <= MAX_COPY_BYTES {
            std::fs::copy(&path, &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_sources_but_not_target() {
        let tmp = crate::admin::tests::TempDir::new("scratch");
        let src = tmp.0.join("src");
        std::fs::create_dir_all(src.join("app/src")).unwrap();
        std::fs::create_dir_all(src.join("target/x")).unwrap();
        std::fs::write(src.join("app/src/lib.rs"), "fn f() {}").unwrap();
        std::fs::write(src.join("target/x/big"), "x").unwrap();
        copy_tree(&src, &tmp.0.join("dest")).unwrap();
        assert!(tmp.0.join("dest/app/src/lib.rs").is_file());
        assert!(!tmp.0.join("dest/target").exists());
    }
}
