//! Packages: `metadata.json`, `pkg/manifest.json`, `pkg/*.wasm` and an
//! optional `pkg/ui/`. Installing writes the files under
//! `<home>/packages/<package>:<publisher>/`, compiles each component once,
//! grants the manifest's capabilities and starts the processes. At boot the
//! node starts every package found there again.

mod boot;
mod manifest;
pub mod upload;

pub use boot::{restore_children, start_all_installed};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tracing::{info, warn};

pub use manifest::{
    CapabilityRef, ManifestEntry, ManifestExitRequest, ManifestOnExit, Metadata, Properties,
};

use crate::api::{InstallResponse, PackageFile, UninstallResponse};
pub use crate::package_info::{PackageInfo, WasmPathError};
use crate::process::{self, ProcessSpec, StartError};
use crate::services::Services;
use crate::types::{Address, ExitRequest, OnExit, ProcessId};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("invalid package: {0}")]
    Invalid(String),
    #[error("package {0} is not installed")]
    NotInstalled(String),
    #[error("io error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, InstallError> {
    serde_json::from_slice(bytes).map_err(|e| InstallError::Invalid(format!("{what}: {e}")))
}

/// Install (or replace) a package from uploaded files and start it.
pub async fn install(
    services: &Arc<Services>,
    files: Vec<PackageFile>,
) -> Result<InstallResponse, InstallError> {
    install_with(services, files, |_| ()).await
}

/// [`install`], calling `on_replace` with the package id once the upload
/// has passed every check and just before the running version stops (the
/// admin API drops the old HTTP bindings there). A rejected upload never
/// reaches it, and leaves the old version running.
pub async fn install_with(
    services: &Arc<Services>,
    files: Vec<PackageFile>,
    on_replace: impl FnOnce(&str),
) -> Result<InstallResponse, InstallError> {
    let limits = services.kernel.limits();
    let checked = upload::check(&files, services.kernel.our(), limits.max_component_bytes)?;
    let (files, checked, compiled) = upload::compile(services, files, checked).await?;
    let package_id = checked.package_id.clone();
    let dir = services.packages_dir.join(&package_id);
    let staging = upload::stage(&services.packages_dir, &package_id, &files)?;
    drop(files);

    on_replace(&package_id);
    retire(services, &package_id).await;
    let old = match upload::swap(&staging, &dir, &package_id) {
        Ok(old) => old,
        Err(e) => {
            // The old files are back in place: run them again.
            restart_old(services, &dir).await;
            return Err(e);
        }
    };
    for (key, pre) in compiled {
        services.runtime.insert(&key, pre);
    }
    match start_installed(services, &dir).await {
        Ok(installed) => {
            if let Some(old) = old {
                let _ = std::fs::remove_dir_all(old);
            }
            Ok(installed)
        }
        Err(e) => {
            warn!(package = %package_id, "new version did not start, going back: {e}");
            retire(services, &package_id).await;
            match old {
                Some(old) => match upload::swap_back(&dir, &old) {
                    Ok(()) => restart_old(services, &dir).await,
                    Err(back) => warn!(package = %package_id, "old version not restored: {back}"),
                },
                None => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            Err(e)
        }
    }
}

/// Start the version in `dir` again after a failed replacement.
async fn restart_old(services: &Arc<Services>, dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Err(e) = start_installed(services, dir).await {
        warn!(dir = %dir.display(), "old version not restarted: {e}");
    }
}

/// Stop a package's processes (its spawned children too, which are not
/// restored), drop its compiled components and remove its files. Its state,
/// kv databases and vfs files stay: reinstalling finds them again.
pub async fn uninstall(
    services: &Arc<Services>,
    package_id: &str,
) -> Result<UninstallResponse, InstallError> {
    let probe = package_id
        .split_once(':')
        .map(|(package, publisher)| ProcessId::new("x", package, publisher))
        .filter(ProcessId::is_valid)
        .ok_or_else(|| {
            InstallError::Invalid(format!(
                "bad package id {package_id:?}: expected package:publisher"
            ))
        })?;
    let package_id = probe.package_id();
    let dir = services.packages_dir.join(&package_id);
    if !dir.is_dir() {
        return Err(InstallError::NotInstalled(package_id));
    }
    let stopped = retire(services, &package_id).await;
    std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    info!(package = %package_id, ?stopped, "package removed");
    Ok(UninstallResponse {
        package: package_id,
        processes: stopped.iter().map(ToString::to_string).collect(),
    })
}

/// Stop every process of `package_id`, evict its compiled components and
/// forget the children it spawned; returns the stopped ids.
async fn retire(services: &Services, package_id: &str) -> Vec<ProcessId> {
    let stopped = services
        .stop_where(|id| id.package_id() == package_id)
        .await;
    services.runtime.evict(&format!("{package_id}@"));
    for child in services
        .state
        .children_of_package(package_id)
        .unwrap_or_default()
    {
        let _ = services.state.forget_child(&child.id);
    }
    stopped
}

pub(crate) fn package_id(metadata: &Metadata) -> Result<String, InstallError> {
    let p = &metadata.properties;
    let probe = ProcessId::new("x", &p.package_name, &p.publisher);
    if !probe.is_valid() {
        return Err(InstallError::Invalid(format!(
            "bad package name {:?} or publisher {:?}: names are [a-z0-9-], publishers may add '.'",
            p.package_name, p.publisher
        )));
    }
    Ok(probe.package_id())
}

pub(crate) async fn start_installed(
    services: &Arc<Services>,
    dir: &Path,
) -> Result<InstallResponse, InstallError> {
    let read = |rel: &str| {
        let path = dir.join(rel);
        std::fs::read(&path).map_err(io_err(&path))
    };
    let metadata: Metadata = parse_json(&read("metadata.json")?, "metadata.json")?;
    let manifest: Vec<ManifestEntry> =
        parse_json(&read("pkg/manifest.json")?, "pkg/manifest.json")?;
    let package = Arc::new(PackageInfo {
        id: package_id(&metadata)?,
        version: metadata.properties.current_version.clone(),
        dir: dir.to_path_buf(),
    });
    let specs = manifest
        .iter()
        .map(|entry| spec_for(services, &package, &metadata, entry))
        .collect::<Result<Vec<_>, _>>()?;

    // Compile each distinct component once, off the async workers.
    let mut keys: Vec<(String, PathBuf)> = specs
        .iter()
        .map(|s| {
            (
                package.component_key(&s.wasm_path),
                package.wasm_file(&s.wasm_path),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    let svc = services.clone();
    let max = services.kernel.limits().max_component_bytes;
    tokio::task::spawn_blocking(move || {
        keys.iter()
            .try_for_each(|(key, file)| svc.runtime.prepare_within(key, file, max).map(|_| ()))
    })
    .await
    .map_err(|e| InstallError::Invalid(format!("compile task failed: {e}")))?
    .map_err(StartError::from)?;

    grant_capabilities(services, &manifest, &specs)?;
    let mut processes = Vec::new();
    for spec in specs {
        processes.push(spec.id.to_string());
        process::start(services, spec)?;
    }
    info!(package = %package.id, version = %package.version, ?processes, "package started");
    Ok(InstallResponse {
        package: package.id.clone(),
        version: package.version.clone(),
        processes,
    })
}

fn spec_for(
    services: &Services,
    package: &Arc<PackageInfo>,
    metadata: &Metadata,
    entry: &ManifestEntry,
) -> Result<ProcessSpec, InstallError> {
    let p = &metadata.properties;
    let id = ProcessId::new(&entry.process_name, &p.package_name, &p.publisher);
    if !id.is_valid() {
        return Err(InstallError::Invalid(format!(
            "bad process name {:?}",
            entry.process_name
        )));
    }
    upload::wasm_relative(&entry.process_wasm_path).ok_or_else(|| {
        InstallError::Invalid(format!(
            "bad process_wasm_path {:?}",
            entry.process_wasm_path
        ))
    })?;
    let our = services.kernel.our();
    let on_exit = match &entry.on_exit {
        ManifestOnExit::None => OnExit::None,
        ManifestOnExit::Restart => OnExit::Restart,
        ManifestOnExit::Requests(list) => OnExit::Requests(
            list.iter()
                .map(|r| {
                    let target = Address::parse_with_default(&r.target, our)
                        .map_err(|e| InstallError::Invalid(e.to_string()))?;
                    let body = serde_json::to_vec(&r.body)
                        .map_err(|e| InstallError::Invalid(e.to_string()))?;
                    Ok(ExitRequest { target, body })
                })
                .collect::<Result<_, InstallError>>()?,
        ),
    };
    Ok(ProcessSpec {
        id,
        package: package.clone(),
        wasm_path: entry.process_wasm_path.clone(),
        on_exit,
        public: entry.public,
        networking: entry.request_networking,
    })
}

fn grant_capabilities(
    services: &Services,
    manifest: &[ManifestEntry],
    specs: &[ProcessSpec],
) -> Result<(), InstallError> {
    let caps = &services.kernel.caps;
    for (entry, spec) in manifest.iter().zip(specs) {
        caps.revoke_all(&spec.id);
        for cap in &entry.request_capabilities {
            caps.grant_messaging(&spec.id, &parse_cap(cap)?);
        }
        for cap in &entry.grant_capabilities {
            caps.grant_messaging(&parse_cap(cap)?, &spec.id);
        }
    }
    Ok(())
}

pub(crate) fn parse_cap(cap: &CapabilityRef) -> Result<ProcessId, InstallError> {
    cap.process()
        .parse()
        .map_err(|e: crate::types::ParseError| InstallError::Invalid(format!("capability: {e}")))
}
