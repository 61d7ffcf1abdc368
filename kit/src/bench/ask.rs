//! What every suite does with an in-process node: send a JSON request
//! through its injector, read numbers out of the reply, and start more
//! copies of an installed component.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hearth::package::PackageInfo;
use hearth::process::ProcessSpec;
use hearth::types::{Address, Blob, Message, OnExit, ProcessId};
use hearth::Node;
use serde_json::Value;

/// Send `body` (and `blob`) to `target` and return the JSON reply and its
/// blob.
pub async fn ask_with_blob(
    node: &Node,
    target: &str,
    body: &Value,
    blob: Option<Blob>,
    timeout: Duration,
) -> Result<(Value, Option<Blob>)> {
    let target = Address::parse_with_default(target, node.name())?;
    let (_, answer) = node
        .injector()
        .ask(target, serde_json::to_vec(body)?, blob, timeout)
        .await?;
    match answer.message {
        Message::Response(r) => Ok((serde_json::from_slice(&r.body)?, answer.blob)),
        other => Err(anyhow!("expected a response, got {other:?}")),
    }
}

/// Send `body` to `target` and return the JSON reply.
pub async fn ask(node: &Node, target: &str, body: Value, timeout: Duration) -> Result<Value> {
    Ok(ask_with_blob(node, target, &body, None, timeout).await?.0)
}

/// A number from a bench reply.
pub fn field(v: &Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .ok_or_else(|| anyhow!("reply lacks {key}: {v}"))
}

/// Another public process `name:package:publisher` from the installed
/// version 0.1.0 of that package's `wasm_path`.
pub fn copy_spec(
    node: &Node,
    name: &str,
    package: &str,
    publisher: &str,
    wasm_path: &str,
) -> ProcessSpec {
    let package_id = format!("{package}:{publisher}");
    ProcessSpec {
        id: ProcessId::new(name, package, publisher),
        package: Arc::new(PackageInfo {
            dir: node.services().packages_dir.join(&package_id),
            id: package_id,
            version: "0.1.0".into(),
        }),
        wasm_path: wasm_path.into(),
        on_exit: OnExit::None,
        public: true,
        networking: false,
    }
}
