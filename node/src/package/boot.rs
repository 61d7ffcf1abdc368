//! At boot: start every installed package, then the children they had
//! spawned, from the persisted process table.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;

use super::{io_err, package_id, parse_json, start_installed, InstallError, Metadata, PackageInfo};
use crate::api::InstallResponse;
use crate::process::{self, ProcessSpec};
use crate::services::Services;

/// Start every package under `<home>/packages`. A broken package is logged
/// and skipped; the others start.
pub async fn start_all_installed(services: &Arc<Services>) -> Vec<InstallResponse> {
    let Ok(entries) = std::fs::read_dir(&services.packages_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    let mut started = Vec::new();
    for dir in dirs {
        match start_installed(services, &dir).await {
            Ok(r) => started.push(r),
            Err(e) => warn!(dir = %dir.display(), "installed package not started: {e}"),
        }
    }
    started
}

/// Start again the children spawned before the node stopped, from the
/// persisted process table, with the capabilities a spawn gives. A child
/// starts after its parent's capabilities are back, so children of children
/// inherit the right set. Returns how many started.
pub async fn restore_children(services: &Arc<Services>) -> usize {
    let mut waiting = match services.state.children() {
        Ok(children) => children,
        Err(e) => {
            warn!("process table unreadable; spawned children not restored: {e}");
            return 0;
        }
    };
    let mut started = 0;
    let mut packages = Packages::default();
    loop {
        let (ready, rest): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|c| !parent_missing(c, services));
        if ready.is_empty() {
            for orphan in &rest {
                warn!(child = %orphan.id, parent = %orphan.parent, "child not restored: its parent is not running");
            }
            return started;
        }
        for child in ready {
            match restore_child(services, &mut packages, &child) {
                Ok(()) => started += 1,
                Err(e) => warn!(child = %child.id, "child not restored: {e}"),
            }
        }
        waiting = rest;
    }
}

/// Whether `child` must wait: its parent is not running yet.
fn parent_missing(child: &crate::state::table::ChildRecord, services: &Services) -> bool {
    !services.kernel.is_running(&child.parent)
}

/// Installed packages read at boot, by package id: every child of one
/// package shares its `PackageInfo`, read from `metadata.json` once.
type Packages = std::collections::HashMap<String, Arc<PackageInfo>>;

fn package_of(
    services: &Services,
    packages: &mut Packages,
    package_id_of_child: String,
) -> Result<Arc<PackageInfo>, InstallError> {
    if let Some(package) = packages.get(&package_id_of_child) {
        return Ok(package.clone());
    }
    let dir = services.packages_dir.join(&package_id_of_child);
    let path = dir.join("metadata.json");
    let metadata: Metadata = parse_json(
        &std::fs::read(&path).map_err(io_err(&path))?,
        "metadata.json",
    )?;
    let package = Arc::new(PackageInfo {
        id: package_id(&metadata)?,
        version: metadata.properties.current_version.clone(),
        dir,
    });
    packages.insert(package_id_of_child, package.clone());
    Ok(package)
}

fn restore_child(
    services: &Arc<Services>,
    packages: &mut Packages,
    child: &crate::state::table::ChildRecord,
) -> Result<(), InstallError> {
    let package = package_of(services, packages, child.id.package_id())?;
    let spec = ProcessSpec {
        id: child.id.clone(),
        package,
        wasm_path: child.wasm_path.clone(),
        on_exit: child.on_exit.clone(),
        public: child.public,
        networking: child.networking,
    };
    process::start_then(services, spec, || {
        let caps = &services.kernel.caps;
        caps.inherit(&child.parent, &child.id);
        caps.grant_messaging(&child.parent, &child.id);
        caps.grant_messaging(&child.id, &child.parent);
    })?;
    Ok(())
}
