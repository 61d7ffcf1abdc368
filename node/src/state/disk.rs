//! Disk use per package: installed files, state, kv databases, drive.

use std::collections::BTreeSet;
use std::path::Path;

use super::StateStore;
use crate::api::{DiskUsage, PackageDisk};
use crate::vfs::tree_bytes;

/// Package ids (`package:publisher`) that have a directory under `dir`.
fn package_dirs(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && name.contains(':'))
}

impl StateStore {
    /// Walks the package and drive directories; blocking.
    pub fn disk_usage(&self, packages_dir: &Path, vfs_dir: &Path) -> DiskUsage {
        let names: BTreeSet<String> = package_dirs(packages_dir)
            .chain(package_dirs(vfs_dir))
            .collect();
        let packages = names
            .into_iter()
            .map(|package| PackageDisk {
                package_bytes: tree_bytes(&packages_dir.join(&package)),
                state_bytes: self.state_bytes(&package),
                kv_bytes: self.kv_bytes(&package),
                vfs_bytes: tree_bytes(&vfs_dir.join(&package)),
                package,
            })
            .collect();
        DiskUsage {
            store_bytes: tree_bytes(&self.path),
            packages,
        }
    }
}
