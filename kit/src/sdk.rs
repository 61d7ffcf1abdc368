//! The guest SDK that kit carries (`process-sdk`, `macros`, `wit`, embedded
//! by `kit/build.rs`), unpacked once per SDK version under
//! `$HEARTH_SDK_DIR` or `~/.hearth/sdk/`, as `<version>-<digest>/`.
//!
//! A project made by `kit new` depends on the unpacked `process-sdk` by
//! path, with its version pinned (`=0.1.0`). The directory name carries a
//! digest of the sources, so a newer kit unpacks next to an older SDK and
//! never changes the one an old project builds against. The manifests are
//! made standalone as for a new project (workspace values filled in).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The SDK's crate version (the workspace version kit was built with).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Overrides where SDKs are unpacked (default `~/.hearth/sdk`).
pub const SDK_DIR_ENV: &str = "HEARTH_SDK_DIR";

/// Marks a complete unpack; written last.
const COMPLETE_MARK: &str = ".complete";

/// `<version>-<digest>`: the directory name of this kit's SDK.
pub fn sdk_id() -> String {
    format!("{SDK_VERSION}-{SDK_HASH}")
}

/// Where SDKs are unpacked on this machine.
pub fn sdk_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(SDK_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        bail!("neither ${SDK_DIR_ENV} nor $HOME is set: kit has nowhere to unpack the SDK");
    };
    Ok(Path::new(&home).join(".hearth/sdk"))
}

/// The unpacked SDK of this kit (unpacking it if needed); its
/// `process-sdk/` is what projects depend on.
pub fn ensure() -> Result<PathBuf> {
    let root = sdk_root()?;
    let dir = root.join(sdk_id());
    if dir.join(COMPLETE_MARK).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    // Unpack beside, then rename: a half-written SDK is never seen.
    let staging = root.join(format!(".unpacking-{}-{}", sdk_id(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let unpacked = unpack(&staging, &dir);
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another kit unpacked it at the same time: theirs is as good.
        Err(_) if dir.join(COMPLETE_MARK).is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e).with_context(|| format!("moving the SDK into {}", dir.display()))
        }
    }
}

/// Writes the SDK's files into `staging`; manifests refer to `final_dir`.
fn unpack(staging: &Path, final_dir: &Path) -> Result<()> {
    for (path, text) in SDK_FILES {
        let dest = staging.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = if path.ends_with("Cargo.toml") {
            crate::standalone::standalone_manifest(text, final_dir)
                .with_context(|| format!("making {path} standalone"))?
        } else {
            text.to_string()
        };
        std::fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
    }
    std::fs::write(staging.join(COMPLETE_MARK), sdk_id())
        .with_context(|| format!("writing {}", staging.join(COMPLETE_MARK).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_sdk_sources() {
        let paths: Vec<&str> = SDK_FILES.iter().map(|(p, _)| *p).collect();
        for needed in [
            "process-sdk/Cargo.toml",
            "process-sdk/src/lib.rs",
            "macros/Cargo.toml",
            "macros/src/lib.rs",
            "wit/process.wit",
        ] {
            assert!(paths.contains(&needed), "{needed} missing from {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.contains("/tests/")), "{paths:?}");
        assert_eq!(SDK_HASH.len(), 8);
    }

    #[test]
    fn unpacks_standalone_manifests() {
        let tmp = crate::admin::tests::TempDir::new("sdk");
        let dir = tmp.0.join("sdk");
        unpack(&dir, Path::new("/sdk/v")).unwrap();
        let manifest = std::fs::read_to_string(dir.join("process-sdk/Cargo.toml")).unwrap();
        assert!(manifest.contains("path = \"/sdk/v/macros\""), "{manifest}");
        assert!(!manifest.contains(".workspace"), "{manifest}");
        assert!(dir.join(COMPLETE_MARK).is_file());
    }
}
