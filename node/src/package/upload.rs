//! An upload checked whole before it replaces anything, then swapped into
//! place. **Invariant:** a rejected upload leaves the installed version
//! running, with its files and HTTP bindings: every check that can fail on
//! the upload's content (paths, sizes, `metadata.json`, the manifest, each
//! component compiling) runs before the old version is stopped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::manifest::{ManifestEntry, ManifestOnExit, Metadata};
use super::{io_err, package_id, parse_cap, parse_json, InstallError};
use crate::api::PackageFile;
pub use crate::package_info::{safe_relative, wasm_relative, MAX_PATH_BYTES};
use crate::process::host::{HostState, ProcessPre};
use crate::services::Services;
use crate::types::{Address, ProcessId};

/// Most files one upload may hold: real packages have a few dozen (a UI
/// with its assets); thousands mean a mistake or an attack on the disk.
pub const MAX_UPLOAD_FILES: usize = 4096;
/// Largest single file of an upload (a component or a UI asset); larger
/// components are refused anyway by `Limits::max_component_bytes`.
pub const MAX_UPLOAD_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Largest upload in total: what the admin API accepts as one body.
pub const MAX_UPLOAD_TOTAL_BYTES: usize = 512 * 1024 * 1024;
/// Most processes one manifest may start.
pub const MAX_PROCESSES: usize = 256;

/// An upload whose content passed every check.
#[derive(Debug)]
pub struct CheckedUpload {
    pub metadata: Metadata,
    pub package_id: String,
    /// `(cache key suffix, index in the upload)` of each distinct
    /// component, `/name.wasm` as written in the manifest.
    pub components: Vec<(String, usize)>,
}

fn invalid(message: impl Into<String>) -> InstallError {
    InstallError::Invalid(message.into())
}

/// Check the paths, sizes, metadata and manifest of an upload. Pure: no
/// disk, no engine; `our` is the node name for `on_exit` targets.
pub fn check(
    files: &[PackageFile],
    our: &str,
    max_component_bytes: usize,
) -> Result<CheckedUpload, InstallError> {
    if files.len() > MAX_UPLOAD_FILES {
        return Err(invalid(format!(
            "{} files; an upload holds at most {MAX_UPLOAD_FILES}",
            files.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for file in files {
        if safe_relative(&file.path).is_none() {
            return Err(invalid(format!("bad file path {:?}", file.path)));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(invalid(format!("file {:?} is given twice", file.path)));
        }
        if file.bytes.len() > MAX_UPLOAD_FILE_BYTES {
            return Err(invalid(format!(
                "{} is larger than {MAX_UPLOAD_FILE_BYTES} bytes",
                file.path
            )));
        }
        total = total.saturating_add(file.bytes.len());
    }
    if total > MAX_UPLOAD_TOTAL_BYTES {
        return Err(invalid(format!(
            "the upload is larger than {MAX_UPLOAD_TOTAL_BYTES} bytes"
        )));
    }
    let find = |path: &str| files.iter().position(|f| f.path == path);
    let metadata_at = find("metadata.json").ok_or_else(|| invalid("metadata.json is missing"))?;
    let metadata: Metadata = parse_json(&files[metadata_at].bytes, "metadata.json")?;
    let package_id = package_id(&metadata)?;
    let manifest_at =
        find("pkg/manifest.json").ok_or_else(|| invalid("pkg/manifest.json is missing"))?;
    let manifest: Vec<ManifestEntry> = parse_json(&files[manifest_at].bytes, "pkg/manifest.json")?;
    if manifest.len() > MAX_PROCESSES {
        return Err(invalid(format!(
            "{} processes; a manifest starts at most {MAX_PROCESSES}",
            manifest.len()
        )));
    }
    let mut names = HashSet::new();
    let mut components = Vec::new();
    for entry in &manifest {
        check_entry(&metadata, entry, our)?;
        if !names.insert(entry.process_name.as_str()) {
            return Err(invalid(format!(
                "process {:?} is listed twice",
                entry.process_name
            )));
        }
        let rel = wasm_relative(&entry.process_wasm_path).ok_or_else(|| {
            invalid(format!(
                "bad process_wasm_path {:?}",
                entry.process_wasm_path
            ))
        })?;
        let path = format!("pkg/{}", rel.display());
        let at = find(&path).ok_or_else(|| invalid(format!("{path} is missing")))?;
        if files[at].bytes.len() > max_component_bytes {
            return Err(invalid(format!(
                "{path} is larger than the {max_component_bytes} bytes a component may have"
            )));
        }
        let key = format!("/{}", rel.display());
        if !components.iter().any(|(k, _)| *k == key) {
            components.push((key, at));
        }
    }
    Ok(CheckedUpload {
        metadata,
        package_id,
        components,
    })
}

/// The parts of one manifest entry that could fail at start: its process
/// name, capabilities and `on_exit` targets.
fn check_entry(metadata: &Metadata, entry: &ManifestEntry, our: &str) -> Result<(), InstallError> {
    let p = &metadata.properties;
    if !ProcessId::new(&entry.process_name, &p.package_name, &p.publisher).is_valid() {
        return Err(invalid(format!(
            "bad process name {:?}",
            entry.process_name
        )));
    }
    for cap in entry
        .request_capabilities
        .iter()
        .chain(&entry.grant_capabilities)
    {
        parse_cap(cap)?;
    }
    if let ManifestOnExit::Requests(list) = &entry.on_exit {
        for r in list {
            Address::parse_with_default(&r.target, our).map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(())
}

/// Compile every component of a checked upload off the async workers,
/// caching nothing yet. Returns the upload back with the compiled code,
/// keyed by [`super::PackageInfo::component_key`].
pub async fn compile(
    services: &Arc<Services>,
    files: Vec<PackageFile>,
    checked: CheckedUpload,
) -> Result<
    (
        Vec<PackageFile>,
        CheckedUpload,
        Vec<(String, ProcessPre<HostState>)>,
    ),
    InstallError,
> {
    let runtime = services.clone();
    tokio::task::spawn_blocking(move || {
        let prefix = format!(
            "{}@{}",
            checked.package_id, checked.metadata.properties.current_version
        );
        let mut compiled = Vec::with_capacity(checked.components.len());
        for (wasm, at) in &checked.components {
            let pre = runtime
                .runtime
                .compile(&files[*at].path, &files[*at].bytes)
                .map_err(|e| invalid(e.to_string()))?;
            compiled.push((format!("{prefix}{wasm}"), pre));
        }
        Ok((files, checked, compiled))
    })
    .await
    .map_err(|e| invalid(format!("compile task failed: {e}")))?
}

/// A fresh directory name beside the packages, for staging or trash.
fn side_dir(packages: &Path, package_id: &str, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    packages.join(format!(".{package_id}.{what}-{}-{n}", std::process::id()))
}

/// Write the package's files (`metadata.json` and `pkg/`) to a new staging
/// directory; returns it. Nothing installed is touched.
pub fn stage(
    packages: &Path,
    package_id: &str,
    files: &[PackageFile],
) -> Result<PathBuf, InstallError> {
    let staging = side_dir(packages, package_id, "new");
    let written = files
        .iter()
        .filter(|f| f.path == "metadata.json" || f.path.starts_with("pkg/"))
        .try_for_each(|file| {
            let rel = safe_relative(&file.path)
                .ok_or_else(|| invalid(format!("bad file path {:?}", file.path)))?;
            let path = staging.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            std::fs::write(&path, &file.bytes).map_err(io_err(&path))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(staging)
}

/// Put `staging` in place of `dir`. The old directory, if any, is renamed
/// aside first and returned; if the second rename fails it is renamed
/// back, so `dir` is always either the old version or the new one.
pub fn swap(staging: &Path, dir: &Path, package_id: &str) -> Result<Option<PathBuf>, InstallError> {
    let packages = dir.parent().unwrap_or(dir);
    let old = if dir.exists() {
        let trash = side_dir(packages, package_id, "old");
        std::fs::rename(dir, &trash).map_err(io_err(dir))?;
        Some(trash)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(staging, dir) {
        if let Some(trash) = &old {
            if let Err(back) = std::fs::rename(trash, dir) {
                tracing::error!(dir = %dir.display(), "old package version not restored: {back}");
            }
        }
        let _ = std::fs::remove_dir_all(staging);
        return Err(io_err(dir)(e));
    }
    Ok(old)
}

/// Undo [`swap`]: the new version goes aside and the old comes back.
pub fn swap_back(dir: &Path, old: &Path) -> Result<(), InstallError> {
    let packages = dir.parent().unwrap_or(dir);
    let failed = packages.join(format!(
        "{}.failed",
        old.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::rename(dir, &failed).map_err(io_err(dir))?;
    std::fs::rename(old, dir).map_err(io_err(dir))?;
    let _ = std::fs::remove_dir_all(&failed);
    Ok(())
}

#[cfg(test)]
mod tests;
