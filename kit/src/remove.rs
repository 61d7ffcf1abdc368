//! `kit r [PACKAGE]`: stop a package's processes on a running node and
//! remove its files. Its state, kv and vfs data stay on the node, so
//! installing it again picks them up.

use std::path::Path;

use anyhow::{Context, Result};
use hearth::api::{UninstallRequest, UninstallResponse, UNINSTALL_PATH};

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// `package:publisher`, or a package directory whose metadata.json
    /// names it
    #[arg(default_value = ".")]
    pub package: String,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: &RemoveArgs) -> Result<()> {
    let client = AdminClient::connect(&args.node, DEFAULT_HTTP_TIMEOUT)?;
    let package = package_id(&args.package)?;
    let body = serde_json::to_vec(&UninstallRequest { package })?;
    let answer = client.post(UNINSTALL_PATH, "application/json", &body)?;
    let removed: UninstallResponse = serde_json::from_slice(&answer)
        .context("the node's answer is not an UninstallResponse (is kit older than the node?)")?;
    for process in &removed.processes {
        println!("stopped {process}");
    }
    println!("removed {}", removed.package);
    Ok(())
}

/// `package:publisher` as given, or read from `DIR/metadata.json`.
fn package_id(arg: &str) -> Result<String> {
    let dir = Path::new(arg);
    if !dir.is_dir() {
        // Not a directory: the node checks the id and answers a typed error.
        return Ok(arg.to_string());
    }
    let path = dir.join("metadata.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let metadata: hearth::package::Metadata = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not package metadata", path.display()))?;
    let p = metadata.properties;
    Ok(format!("{}:{}", p.package_name, p.publisher))
}
