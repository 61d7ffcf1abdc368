//! An installed package as its processes see it: where it lives, its
//! version, and which of its files a `wasm_path` names. Below both
//! `process` (which runs a package's components) and `package` (which
//! installs packages and starts their processes).

use std::path::{Component, Path, PathBuf};

/// Longest file path in an upload; file systems allow 4096, packages need
/// far less, and a short bound keeps error messages small.
pub const MAX_PATH_BYTES: usize = 512;

/// An installed package, shared by its processes.
#[derive(Debug)]
pub struct PackageInfo {
    /// `package:publisher`.
    pub id: String,
    pub version: String,
    pub dir: PathBuf,
}

impl PackageInfo {
    /// Cache key of a compiled component of this package version.
    pub fn component_key(&self, wasm_path: &str) -> String {
        format!("{}@{}{}", self.id, self.version, wasm_path)
    }

    /// The file behind a manifest `process_wasm_path` such as `/echo.wasm`.
    pub fn wasm_file(&self, wasm_path: &str) -> PathBuf {
        self.dir.join("pkg").join(wasm_path.trim_start_matches('/'))
    }

    /// The file behind a guest-given `wasm_path`, checked: a path by the
    /// manifest's rules, and, symlinks resolved, a regular file inside the
    /// package's `pkg/` directory. Blocking (file system): call off the
    /// async workers. Returns the file and the path as `/rel`, the
    /// spelling of a manifest (one cache key however the guest wrote it).
    pub fn wasm_within(&self, wasm_path: &str) -> Result<(PathBuf, String), WasmPathError> {
        let bad = |reason: &str| WasmPathError {
            path: wasm_path.chars().take(MAX_PATH_BYTES).collect(),
            reason: reason.to_string(),
        };
        let rel = wasm_relative(wasm_path)
            .ok_or_else(|| bad("not a plain relative path below pkg/ (no '..', no root)"))?;
        let root = self.dir.join("pkg");
        let root = root
            .canonicalize()
            .map_err(|_| bad("the package has no pkg/ directory"))?;
        let file = root
            .join(&rel)
            .canonicalize()
            .map_err(|_| bad("no such file in the package"))?;
        if !file.starts_with(&root) {
            return Err(bad("it leads out of the package"));
        }
        let meta = std::fs::metadata(&file).map_err(|_| bad("no such file in the package"))?;
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        Ok((file, format!("/{}", rel.display())))
    }
}

/// A `wasm_path` that names no component of the package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad wasm path {path:?}: {reason}")]
pub struct WasmPathError {
    pub path: String,
    pub reason: String,
}

/// A relative path with no `..`, root or prefix, so it stays inside the
/// package directory.
pub fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && path.len() <= MAX_PATH_BYTES
        && !path.contains('\0')
        && !path.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

/// A manifest or spawn `wasm_path` (`/name.wasm` or `name.wasm`, below
/// `pkg/`) as a relative path, if it is one by [`safe_relative`].
pub fn wasm_relative(wasm_path: &str) -> Option<PathBuf> {
    safe_relative(wasm_path.strip_prefix('/').unwrap_or(wasm_path))
}
