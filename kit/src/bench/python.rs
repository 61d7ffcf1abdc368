//! `kit bench python`: Python processes (componentize-py) next to Rust
//! ones measured in the same run: component size, compile time with and
//! without the compiled-code cache, spawn, round trips between Python and
//! Rust apps, memory per idle process, and node boot with ten Python
//! processes installed, cold and with the cache warm.
//!
//! The Python probe (`tests/apps/pyprobe`) is copied to a scratch
//! directory and built there by kit's own Python builder (kept between
//! runs, so an unchanged probe is not built again).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::process;
use hearth::runtime::Runtime;
use hearth::{Node, NodeConfig};
use serde_json::{json, Value};

use super::ask::{ask, copy_spec, field};
use super::scale::{boot_times, pss_kib, rss_kib};
use super::table::{self, percentile, Row};

/// Sequential calls timed inside each app for the round-trip rows.
const CALLS: u64 = 1_000;
/// Idle processes for the memory rows (as the issue asks).
const IDLE: usize = 100;
/// Sequential instantiate + init runs for the spawn rows.
const SPAWNS: usize = 30;
/// Python processes installed for the boot rows.
const BOOT_PROCESSES: usize = 10;
/// Generous: a Python call on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(120);

const PY_A: &str = "py-a:pyprobe:test";

pub fn run(json_out: bool) -> Result<()> {
    let echo = super::package("apps/echo")?;
    let notebook = super::package("apps/notebook")?;
    let pyprobe = build_pyprobe()?;
    let home = std::env::temp_dir().join(format!("hearth-bench-python-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
    let result = runtime.block_on(measure(&home, echo, notebook, pyprobe));
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(super::scratch::run_dir());
    table::print(
        "kit bench python (Python = componentize-py component, Rust = the same role in Rust, same run; 2-core figures are noisy)",
        &result?,
        json_out,
    );
    Ok(())
}

/// The Python probe built in `$TMPDIR/hearth-kit-bench/python/pyprobe`.
fn build_pyprobe() -> Result<PathBuf> {
    let source = super::repo_root().join("tests/apps/pyprobe");
    let dest = std::env::temp_dir().join("hearth-kit-bench/python/pyprobe");
    for file in ["metadata.json", "pkg/manifest.json", "pyprobe/app.py"] {
        let to = dest.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = std::fs::read(source.join(file))
            .with_context(|| format!("reading {}", source.join(file).display()))?;
        if std::fs::read(&to).ok().as_deref() != Some(&text[..]) {
            std::fs::write(&to, text)?;
        }
    }
    crate::python::build_all(&dest)?;
    Ok(dest)
}

fn node_config(home: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(home, "bench.os");
    config.http_port = 0;
    config.register_run_file = false;
    config.net.listen_ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    config.net.mdns = false;
    config
}

/// The probe package with `names` as its processes.
fn pyprobe_files(dir: &Path, names: &[String]) -> Result<Vec<PackageFile>> {
    let manifest: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({"process_name": name, "process_wasm_path": "/pyprobe.wasm", "on_exit": "None",
                   "request_networking": false, "request_capabilities": [],
                   "grant_capabilities": [], "public": true})
        })
        .collect();
    let file = |path: &str, bytes: Vec<u8>| PackageFile {
        path: path.into(),
        bytes,
    };
    Ok(vec![
        file("metadata.json", std::fs::read(dir.join("metadata.json"))?),
        file("pkg/manifest.json", serde_json::to_vec(&manifest)?),
        file(
            "pkg/pyprobe.wasm",
            std::fs::read(dir.join("pkg/pyprobe.wasm"))?,
        ),
    ])
}

async fn measure(
    home: &Path,
    echo: Vec<PackageFile>,
    notebook: Vec<PackageFile>,
    pyprobe: PathBuf,
) -> Result<Vec<Row>> {
    let py_wasm = std::fs::read(pyprobe.join("pkg/pyprobe.wasm"))?;
    let rust_wasm = echo
        .iter()
        .find(|f| f.path.ends_with(".wasm"))
        .map(|f| f.bytes.clone())
        .ok_or_else(|| anyhow!("echo has no component"))?;
    let mut rows = vec![Row::new(
        "component size (probe app)",
        "MB",
        py_wasm.len() as f64 / 1e6,
    )
    .baseline("Rust echo", rust_wasm.len() as f64 / 1e6)];
    rows.extend(compile_rows(home, &py_wasm, &rust_wasm)?);

    let node = Node::start(node_config(&home.join("node"))).await?;
    let services = node.services();
    hearth::package::install(services, echo).await?;
    hearth::package::install(services, notebook).await?;
    let names = ["py-a".to_string(), "py-b".to_string()];
    hearth::package::install(services, pyprobe_files(&pyprobe, &names)?).await?;
    ask(&node, PY_A, json!({"count": {}}), TIMEOUT).await?;

    rows.extend(spawn_rows(&node).await?);
    rows.extend(round_trip_rows(&node).await?);
    let py = idle_memory(&node, "pyprobe", "test", "/pyprobe.wasm").await?;
    let rust = idle_memory(&node, "echo", "sys", "/echo.wasm").await?;
    rows.push(
        Row::new(
            format!("memory per idle process, N = {IDLE} (PSS)"),
            "MiB",
            py.0 / 1024.0,
        )
        .baseline("Rust echo", rust.0 / 1024.0),
    );
    rows.push(
        Row::new(
            format!("memory per idle process, N = {IDLE} (RSS)"),
            "MiB",
            py.1 / 1024.0,
        )
        .baseline("Rust echo", rust.1 / 1024.0),
    );
    node.shutdown().await;

    rows.extend(boot_rows(&home.join("boot"), &pyprobe).await?);
    Ok(rows)
}

/// Compile without a cache, and a compile-cache hit, each for both.
fn compile_rows(home: &Path, py: &[u8], rust: &[u8]) -> Result<Vec<Row>> {
    let engine_err = |e: hearth::runtime::RuntimeError| anyhow!("{e}");
    let uncached = Runtime::new(None).map_err(engine_err)?;
    let time = |rt: &Runtime, bytes: &[u8]| -> Result<f64> {
        let t = Instant::now();
        rt.compile("bench", bytes).map_err(engine_err)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let py_cold = time(&uncached, py)?;
    let rust_cold = time(&uncached, rust)?;
    let cache = home.join("compile-cache");
    let filling = Runtime::new(Some(cache.clone())).map_err(engine_err)?;
    time(&filling, py)?;
    time(&filling, rust)?;
    drop(filling);
    let cached = Runtime::new(Some(cache)).map_err(engine_err)?;
    let py_hit = time(&cached, py)?;
    let rust_hit = time(&cached, rust)?;
    Ok(vec![
        Row::new("compile, no cache", "ms", py_cold).baseline("Rust echo", rust_cold),
        Row::new("compile, cache hit (<home>/compiled)", "ms", py_hit)
            .baseline("Rust echo", rust_hit),
        Row::new("compile: cache hit vs no cache (Python)", "ms", py_hit)
            .baseline("no cache", py_cold),
    ])
}

/// Instantiate + init: the first boot of a component, then the p50 of
/// boots from the pre-linked component in memory.
async fn spawn_rows(node: &Node) -> Result<Vec<Row>> {
    let py = spawns(node, "pyprobe", "test", "/pyprobe.wasm").await?;
    let rust = spawns(node, "echo", "sys", "/echo.wasm").await?;
    Ok(vec![
        Row::new("spawn (instantiate + init), first", "ms", py.0).baseline("Rust echo", rust.0),
        Row::new("spawn (instantiate + init), cached p50", "ms", py.1)
            .baseline("Rust echo", rust.1),
    ])
}

async fn spawns(node: &Node, package: &str, publisher: &str, wasm: &str) -> Result<(f64, f64)> {
    let mut samples = boot_times(node, package, publisher, wasm, SPAWNS).await?;
    samples.iter_mut().for_each(|us| *us /= 1e3);
    let first = samples[0];
    samples.sort_by(f64::total_cmp);
    Ok((first, percentile(&samples, 50.0)))
}

/// Round trips timed inside the calling app, each a call of `echo`.
async fn round_trip_rows(node: &Node) -> Result<Vec<Row>> {
    let py =
        |target: &str| json!({"bench_echo": {"target": target, "count": CALLS, "body_bytes": 16}});
    let rust =
        |target: &str| json!({"bench_echo": {"echo": target, "count": CALLS, "body_bytes": 16}});
    let p50 = |v: Value| -> Result<f64> { Ok(field(&v["ok"], "p50_ns")? / 1e3) };
    let py_py = p50(ask(node, PY_A, py("py-b:pyprobe:test"), TIMEOUT).await?)?;
    let py_rust = p50(ask(node, PY_A, py("echo:echo:sys"), TIMEOUT).await?)?;
    let nb = "notebook:notebook:sys";
    let rust_py = p50(ask(node, nb, rust(PY_A), TIMEOUT).await?)?;
    let rust_rust = p50(ask(node, nb, rust("echo:echo:sys"), TIMEOUT).await?)?;
    let baseline = "Rust -> Rust (notebook -> echo)";
    Ok(vec![
        Row::new("round trip Python -> Python, p50", "us", py_py).baseline(baseline, rust_rust),
        Row::new("round trip Python -> Rust, p50", "us", py_rust).baseline(baseline, rust_rust),
        Row::new("round trip Rust -> Python, p50", "us", rust_py).baseline(baseline, rust_rust),
    ])
}

/// (PSS, RSS) in KiB added per idle process, N started, each having
/// answered one request. PSS counts a page shared by several instances
/// (the copy-on-write memory image) once in all; RSS once per mapping.
async fn idle_memory(
    node: &Node,
    package: &str,
    publisher: &str,
    wasm: &str,
) -> Result<(f64, f64)> {
    let before = (pss_kib()?, rss_kib()?);
    let names: Vec<String> = (0..IDLE).map(|i| format!("idle-{package}-{i}")).collect();
    for name in &names {
        process::start(
            node.services(),
            copy_spec(node, name, package, publisher, wasm),
        )?;
    }
    for name in &names {
        let target = format!("{name}:{package}:{publisher}");
        ask(node, &target, json!({"echo": {"message": 1}}), TIMEOUT).await?;
    }
    let after = (pss_kib()?, rss_kib()?);
    Ok((
        (after.0 - before.0) / IDLE as f64,
        (after.1 - before.1) / IDLE as f64,
    ))
}

/// Node start until ten installed Python processes all answered: with an
/// empty compiled-code cache, then again with it warm.
async fn boot_rows(home: &Path, pyprobe: &Path) -> Result<Vec<Row>> {
    let names: Vec<String> = (0..BOOT_PROCESSES).map(|i| format!("boot-{i}")).collect();
    let node = Node::start(node_config(home)).await?;
    hearth::package::install(node.services(), pyprobe_files(pyprobe, &names)?).await?;
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(home.join(hearth::runtime::COMPILED_DIR));
    let cold = boot_until_answered(home, &names).await?;
    let warm = boot_until_answered(home, &names).await?;
    Ok(vec![Row::new(
        format!("node boot, {BOOT_PROCESSES} Python processes, cold compile cache"),
        "ms",
        cold,
    )
    .baseline("warm cache", warm)])
}

async fn boot_until_answered(home: &Path, names: &[String]) -> Result<f64> {
    let t = Instant::now();
    let node = Node::start(node_config(home)).await?;
    for name in names {
        let target = format!("{name}:pyprobe:test");
        loop {
            match ask(&node, &target, json!({"count": {}}), TIMEOUT).await {
                Ok(_) => break,
                Err(_) if t.elapsed() < TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => return Err(e.context(format!("{target} never answered"))),
            }
        }
    }
    let elapsed = t.elapsed().as_secs_f64() * 1e3;
    node.shutdown().await;
    Ok(elapsed)
}
