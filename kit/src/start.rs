//! `kit s [DIR]`: upload a built package to a running node, which installs
//! it and starts its processes; `kit bs` builds first.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hearth::api::{InstallResponse, PackageFile, PackageUpload, INSTALL_PATH, STATUS_PATH};

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Package directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `kit s`.
pub fn run(args: &StartArgs) -> Result<()> {
    // Find the node first: a missing node is the likeliest error and the
    // cheapest to report.
    let client = AdminClient::connect(&args.node, DEFAULT_HTTP_TIMEOUT)?;
    check_built(&args.dir)?;
    let upload = collect_package(&args.dir)?;
    let size: usize = upload.files.iter().map(|f| f.bytes.len()).sum();
    eprintln!(
        "kit: uploading {} files ({} KiB) to the node on port {}",
        upload.files.len(),
        size.div_ceil(1024),
        client.location().port
    );
    let body = bincode::serde::encode_to_vec(&upload, bincode::config::standard())
        .context("encoding the package")?;
    let answer = client.post(INSTALL_PATH, "application/octet-stream", &body)?;
    let installed: InstallResponse = serde_json::from_slice(&answer)
        .context("the node's answer is not an InstallResponse (is kit older than the node?)")?;
    println!("installed {} {}", installed.package, installed.version);
    if installed.processes.is_empty() {
        println!("no process started");
    }
    for process in &installed.processes {
        println!("started {process}");
    }
    Ok(())
}

/// `kit bs`: build, then start. The node is asked first, so that a missing
/// node is said before a long build rather than after.
pub fn build_and_start(args: &StartArgs) -> Result<()> {
    check_node(&args.node)?;
    crate::build::build_package(&args.dir)?;
    run(args)
}

/// Fails, saying so, unless a node answers its status on `node`.
pub fn check_node(node: &NodeArgs) -> Result<()> {
    let client = AdminClient::connect(node, STATUS_TIMEOUT)?;
    client.get(STATUS_PATH).map(|_| ())
}

/// A status answer is immediate on a live node; a few seconds leave room
/// for a loaded machine.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every component the manifest names must be in `pkg/` already.
fn check_built(dir: &Path) -> Result<()> {
    let pkg = dir.join("pkg");
    for path in crate::build::manifest_wasm_paths(&pkg)? {
        if !pkg.join(&path).is_file() {
            bail!(
                "pkg/{path} is missing: build the package first (`kit b {}` or `kit bs`)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// `metadata.json` and every file under `pkg/`, with paths relative to
/// `dir` written with `/`, in a stable order.
pub fn collect_package(dir: &Path) -> Result<PackageUpload> {
    let metadata = dir.join("metadata.json");
    let pkg = dir.join("pkg");
    if !metadata.is_file() || !pkg.is_dir() {
        bail!(
            "{} is not a package directory (it needs metadata.json and pkg/)",
            dir.display()
        );
    }
    let mut files = vec![PackageFile {
        path: "metadata.json".into(),
        bytes: std::fs::read(&metadata)
            .with_context(|| format!("reading {}", metadata.display()))?,
    }];
    let mut paths = Vec::new();
    walk(&pkg, &mut paths)?;
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push(PackageFile {
            path: relative_path(dir, &path)?,
            bytes,
        });
    }
    Ok(PackageUpload { files })
}

/// Every regular file under `dir`, recursively (symlinks are followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// `path` relative to `root`, with `/` separators, as the node expects.
fn relative_path(root: &Path, path: &Path) -> Result<String> {
    let relative = path
        .strip_prefix(root)
        .with_context(|| format!("{} is outside {}", path.display(), root.display()))?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    match parts {
        Some(parts) => Ok(parts.join("/")),
        None => bail!("{} is not a UTF-8 path", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::TempDir;

    #[test]
    fn collects_metadata_and_pkg_files_with_slash_paths() {
        let tmp = TempDir::new("collect");
        let dir = &tmp.0;
        std::fs::create_dir_all(dir.join("pkg/ui/img")).unwrap();
        std::fs::create_dir_all(dir.join("echo/src")).unwrap();
        std::fs::write(dir.join("metadata.json"), "{}").unwrap();
        std::fs::write(dir.join("pkg/manifest.json"), "[]").unwrap();
        std::fs::write(dir.join("pkg/echo.wasm"), [0, 97, 115, 109]).unwrap();
        std::fs::write(dir.join("pkg/ui/img/logo.png"), "png").unwrap();
        std::fs::write(dir.join("echo/src/lib.rs"), "// not uploaded").unwrap();

        let upload = collect_package(dir).unwrap();
        let paths: Vec<&str> = upload.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.json",
                "pkg/echo.wasm",
                "pkg/manifest.json",
                "pkg/ui/img/logo.png"
            ]
        );
        assert_eq!(upload.files[1].bytes, [0, 97, 115, 109]);
    }

    #[test]
    fn upload_round_trips_through_bincode() {
        let upload = PackageUpload {
            files: vec![PackageFile {
                path: "pkg/a.wasm".into(),
                bytes: vec![1, 2, 3],
            }],
        };
        let bytes = bincode::serde::encode_to_vec(&upload, bincode::config::standard()).unwrap();
        let (back, _): (PackageUpload, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back.files[0].path, "pkg/a.wasm");
        assert_eq!(back.files[0].bytes, [1, 2, 3]);
    }

    #[test]
    fn missing_pkg_dir_is_a_clear_error() {
        let tmp = TempDir::new("no-pkg");
        let err = collect_package(&tmp.0).unwrap_err().to_string();
        assert!(err.contains("not a package directory"), "{err}");
    }
}
