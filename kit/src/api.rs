//! `kit api [PACKAGE]`: the API description of an `#[app]` package, the
//! one its macro embedded in each component (`hearth-api` section, see
//! `build_api.rs`), printed as a readable list of methods or as JSON.
//!
//! PACKAGE is a package directory (default `.`, built by `kit b`: its
//! `pkg/*.wasm` are read), or the id of a package installed on a running
//! node (`chat:sys`, or a process id `chat:chat:sys`): the node is asked
//! through the admin API whether it runs it, and its installed components
//! are read from the node's home on this machine, read-only, as kit reads
//! the node's admin secret there.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hearth::api::{ProcessInfo, PROCESSES_PATH};
use serde_json::Value;

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};

/// The node's directory of installed packages, inside its home.
const PACKAGES_DIR: &str = "packages";

/// Largest component read: a package's, not anything else on disk.
const MAX_WASM_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// A package directory, or an installed package's id (`chat:sys`)
    #[arg(default_value = ".")]
    pub package: String,
    /// Print the description as JSON (one object per process)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// One process's description.
struct Described {
    process: String,
    api: Option<Value>,
}

pub fn run(args: &ApiArgs) -> Result<()> {
    let described = if Path::new(&args.package).is_dir() {
        from_directory(Path::new(&args.package))?
    } else if args.package.contains(':') {
        from_node(&args.package, &args.node)?
    } else {
        bail!(
            "{} is neither a package directory nor a package id (`name:publisher`)",
            args.package
        );
    };
    if args.json {
        let list: Vec<Value> = described
            .iter()
            .map(|d| {
                let mut api = d.api.clone();
                // The Rust client's code: `kit b` writes it to api/<name>.rs.
                if let Some(map) = api.as_mut().and_then(Value::as_object_mut) {
                    map.remove("rust_client");
                }
                serde_json::json!({"process": d.process, "api": api})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for (i, d) in described.iter().enumerate() {
        if i > 0 {
            println!();
        }
        match &d.api {
            Some(api) => print!("{}", render(&d.process, api)),
            None => println!("{}: no API description (not an #[app])", d.process),
        }
    }
    Ok(())
}

/// A built package: `pkg/manifest.json` and the components it names.
fn from_directory(dir: &Path) -> Result<Vec<Described>> {
    let pkg = dir.join("pkg");
    let metadata = read_json(&dir.join("metadata.json"))?;
    let package = package_id(&metadata)?;
    describe(&pkg, &package).with_context(|| {
        format!(
            "in {} (run `kit b {}` first?)",
            pkg.display(),
            dir.display()
        )
    })
}

/// An installed package: the node must list one of its processes.
fn from_node(id: &str, node: &NodeArgs) -> Result<Vec<Described>> {
    let parts: Vec<&str> = id.split(':').collect();
    let package = match parts.as_slice() {
        [package, publisher] => format!("{package}:{publisher}"),
        [_, package, publisher] => format!("{package}:{publisher}"),
        _ => bail!("`{id}`: give package:publisher or process:package:publisher"),
    };
    if package.contains(['/', '\\']) || package.contains("..") {
        bail!("`{id}` is not a package id");
    }
    let client = AdminClient::connect(node, DEFAULT_HTTP_TIMEOUT)?;
    let processes: Vec<ProcessInfo> = serde_json::from_slice(&client.get(PROCESSES_PATH)?)
        .context("the node's process list is not JSON")?;
    let suffix = format!(":{package}");
    let installed = processes.iter().any(|p| p.id.ends_with(&suffix));
    if !installed {
        bail!(
            "the node on port {} runs no package {package}",
            client.location().port
        );
    }
    let pkg: PathBuf = client
        .location()
        .home
        .join(PACKAGES_DIR)
        .join(&package)
        .join("pkg");
    describe(&pkg, &package)
}

/// The description of every process in `pkg/manifest.json`.
fn describe(pkg: &Path, package: &str) -> Result<Vec<Described>> {
    let manifest = read_json(&pkg.join("manifest.json"))?;
    let entries = manifest
        .as_array()
        .context("the manifest is not a JSON array")?;
    entries
        .iter()
        .map(|entry| {
            let name = entry["process_name"]
                .as_str()
                .context("a process without process_name")?;
            let wasm = entry["process_wasm_path"]
                .as_str()
                .context("a process without process_wasm_path")?
                .trim_start_matches('/');
            if wasm.contains("..") {
                bail!("process_wasm_path `{wasm}` leaves pkg/");
            }
            let path = pkg.join(wasm);
            let size = std::fs::metadata(&path)
                .with_context(|| format!("no {}", path.display()))?
                .len();
            if size > MAX_WASM_BYTES {
                bail!("{} is over {MAX_WASM_BYTES} bytes", path.display());
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(Described {
                process: format!("{name}:{package}"),
                api: crate::build::api::extract(&bytes)?,
            })
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// `package:publisher` from `metadata.json`.
fn package_id(metadata: &Value) -> Result<String> {
    let field = |key: &str| {
        metadata["properties"][key]
            .as_str()
            .with_context(|| format!("metadata.json lacks properties.{key}"))
    };
    Ok(format!(
        "{}:{}",
        field("package_name")?,
        field("publisher")?
    ))
}

/// The readable form: a header, then one block per method (signature,
/// where it is reachable, what it publishes, its doc), timers and sockets.
fn render(process: &str, api: &Value) -> String {
    let mut out = format!(
        "{process}  #[app] {} (persist: {})\n",
        api["app"].as_str().unwrap_or("?"),
        api["persist"].as_str().unwrap_or("?")
    );
    if let Some(request) = api["request"].as_str() {
        out.push_str(&format!("  request: {request}\n"));
    }
    if let Some(reply) = api["reply"].as_object() {
        let ok = reply.get("ok").and_then(Value::as_str).unwrap_or("");
        let error = reply.get("error").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("  reply:   {ok} | {error}\n"));
    }
    for method in api["methods"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&format!("  {}\n", signature(method)));
        let mut reach = Vec::new();
        for (flag, label) in [("local", "local"), ("remote", "remote")] {
            if method[flag] == Value::Bool(true) {
                reach.push(label.to_string());
            }
        }
        if let Some(http) = method["http"].as_object() {
            reach.push(format!(
                "http {} {} ({})",
                http.get("method").and_then(Value::as_str).unwrap_or("?"),
                http.get("path").and_then(Value::as_str).unwrap_or("?"),
                http.get("access").and_then(Value::as_str).unwrap_or("?"),
            ));
        }
        if let Some(publish) = method["publishes"].as_object() {
            reach.push(format!(
                "publishes `{}` to room {}",
                publish.get("action").and_then(Value::as_str).unwrap_or("?"),
                publish.get("room").and_then(Value::as_str).unwrap_or("?"),
            ));
        }
        if !reach.is_empty() {
            out.push_str(&format!("      {}\n", reach.join(" · ")));
        }
        if let Some(doc) = method["doc"].as_str().filter(|d| !d.is_empty()) {
            out.push_str(&format!("      {doc}\n"));
        }
    }
    let timers = api["timers"].as_array().filter(|t| !t.is_empty());
    for timer in timers.into_iter().flatten() {
        out.push_str(&format!(
            "\n  timer {} every {} ms\n",
            timer["name"].as_str().unwrap_or("?"),
            timer["every_ms"]
        ));
    }
    for ws in api["ws"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  websocket {} at {} ({})\n",
            ws["name"].as_str().unwrap_or("?"),
            ws["path"].as_str().unwrap_or("?"),
            ws["access"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// `async fn name(arg: Type, ..) -> Result<T, E>`.
fn signature(method: &Value) -> String {
    let args: Vec<String> = method["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}: {}",
                a["name"].as_str().unwrap_or("?"),
                a["type"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let returns = method["returns"].as_str().unwrap_or("()");
    let returns = match method["error"].as_str() {
        Some(error) => format!("Result<{returns}, {error}>"),
        None => returns.to_string(),
    };
    format!(
        "{}{}({}) -> {returns}",
        if method["async"] == Value::Bool(true) {
            "async "
        } else {
            ""
        },
        method["name"].as_str().unwrap_or("?"),
        args.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_methods_with_their_reach() {
        let api = json!({
            "app": "Tally", "persist": "on_change", "request": "{\"<method>\": {..}}",
            "methods": [{
                "name": "add", "async": false, "args": [{"name": "name", "type": "String"}],
                "returns": "u64", "error": "TallyError", "local": true, "remote": true,
                "http": {"method": "POST", "path": "/api/add", "access": "authenticated"},
                "publishes": {"room": "counts", "action": "updated"},
                "doc": "Adds."
            }],
            "timers": [], "ws": []
        });
        let text = render("tally:tally:sys", &api);
        assert!(text.starts_with("tally:tally:sys  #[app] Tally (persist: on_change)"));
        assert!(text.contains("  add(name: String) -> Result<u64, TallyError>\n"));
        assert!(text.contains(
            "local · remote · http POST /api/add (authenticated) · \
             publishes `updated` to room counts"
        ));
        assert!(text.contains("      Adds.\n"));
    }
}
