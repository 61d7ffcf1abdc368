//! `kit bench state`: durable set-state with group commit against raw sled
//! (insert + flush per write) with as many writers, measured in the same
//! run; kv latency; vfs throughput on a 64 MiB file against plain files;
//! boot time with 100 installed processes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hearth::api::PackageFile;
use hearth::process::{self};
use hearth::types::Blob;
use hearth::{Node, NodeConfig};
use serde_json::{json, Value};

use super::ask::{ask_with_blob, copy_spec};
use super::table::{percentile, Better, Row};

/// Writers for the set-state rows, and the writes each does per run.
const WRITERS: [(usize, u64); 3] = [(1, 3000), (16, 300), (256, 60)];
/// Sequential kv requests per latency row.
const KV_OPS: usize = 2000;
/// The vfs file and the chunk it moves in.
const FILE_BYTES: usize = 64 << 20;
const CHUNK: usize = 4 << 20;
/// Installed processes for the boot row.
const BOOT_PROCESSES: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(node: &Node, probe: Vec<PackageFile>, scratch: &Path) -> Result<Vec<Row>> {
    std::fs::create_dir_all(scratch).context("scratch directory")?;
    hearth::package::install(node.services(), probe.clone())
        .await
        .context("install probe")?;
    let mut rows = Vec::new();
    for (writers, each) in WRITERS {
        let (rate, per_flush) = set_state_rate(node, writers, each).await?;
        let dir = scratch.join(format!("raw-{writers}"));
        let (ops, elapsed) = tokio::task::spawn_blocking(move || {
            hearth::state::baseline::raw_insert_flush(&dir, writers, each as usize)
        })
        .await??;
        let mut row = Row::new(
            format!(
                "durable set-state, {writers} writing processes ({per_flush:.1} writes per flush)"
            ),
            "writes/s",
            rate,
        )
        .baseline(
            "sled insert + flush per write, same writers",
            ops as f64 / elapsed.as_secs_f64(),
        );
        if writers == 256 {
            row = row.target(Better::Higher, 20_000.0);
        }
        rows.push(row);
    }
    let (set_p50, get_p50) = kv_latency(node).await?;
    rows.push(Row::new(
        "kv set (durable), p50, from the injector",
        "us",
        set_p50,
    ));
    rows.push(Row::new("kv get, p50, from the injector", "us", get_p50));
    let (write, read) = vfs_throughput(node).await?;
    let (base_write, base_read) = file_baseline(&scratch.join("plain.bin"))?;
    rows.push(
        Row::new(
            "vfs write 64 MiB in 4 MiB appends (fdatasync each)",
            "MB/s",
            write,
        )
        .baseline("std::fs append + fdatasync", base_write),
    );
    rows.push(
        Row::new("vfs read 64 MiB in 4 MiB chunks", "MB/s", read)
            .baseline("std::fs read", base_read),
    );
    let (boot, empty) = boot_time(probe, &scratch.join("boot")).await?;
    rows.push(
        Row::new(
            format!("node boot, {BOOT_PROCESSES} installed processes"),
            "ms",
            boot,
        )
        .baseline("node boot, nothing installed", empty),
    );
    Ok(rows)
}

async fn ask(
    node: &Node,
    target: &str,
    body: Value,
    blob: Option<Vec<u8>>,
) -> Result<(Value, Option<Blob>)> {
    let blob = blob.map(|bytes| Blob { mime: None, bytes });
    ask_with_blob(node, target, &body, blob, TIMEOUT).await
}

/// Writes per second with `writers` processes each doing `each` durable
/// writes back to back, and the writes one flush covered on average.
async fn set_state_rate(node: &Node, writers: usize, each: u64) -> Result<(f64, f64)> {
    let services = node.services();
    let names: Vec<String> = (0..writers)
        .map(|i| format!("writer-{writers}-{i}"))
        .collect();
    for name in &names {
        process::start(
            services,
            copy_spec(node, name, "probe", "test", "/probe.wasm"),
        )?;
    }
    let (flushes0, writes0) = services.state.commit_stats();
    let t = Instant::now();
    let runs = names.iter().map(|name| {
        let target = format!("{name}:probe:test");
        async move { ask(node, &target, json!({ "state_burst": each }), None).await }
    });
    for (reply, _) in futures::future::try_join_all(runs).await? {
        if reply["ok"] != json!(each) {
            bail!("state burst failed: {reply}");
        }
    }
    let elapsed = t.elapsed().as_secs_f64();
    let (flushes1, writes1) = services.state.commit_stats();
    let per_flush = (writes1 - writes0) as f64 / (flushes1 - flushes0).max(1) as f64;
    services
        .stop_where(|id| id.process.starts_with(&format!("writer-{writers}-")))
        .await;
    Ok(((writers as u64 * each) as f64 / elapsed, per_flush))
}

/// p50 µs of a durable kv set (100-byte value) and of a get.
async fn kv_latency(node: &Node) -> Result<(f64, f64)> {
    let kv = "kv:distro:sys";
    let value = vec![7u8; 100];
    let mut sets = Vec::with_capacity(KV_OPS);
    let mut gets = Vec::with_capacity(KV_OPS);
    for i in 0..KV_OPS {
        let key = format!("key-{}", i % 100);
        let t = Instant::now();
        let (r, _) = ask(
            node,
            kv,
            json!({"Set": {"package": null, "db": "bench", "key": key}}),
            Some(value.clone()),
        )
        .await?;
        sets.push(t.elapsed().as_secs_f64() * 1e6);
        if r.get("Ok").is_none() {
            bail!("kv set failed: {r}");
        }
        let t = Instant::now();
        let (r, blob) = ask(
            node,
            kv,
            json!({"Get": {"package": null, "db": "bench", "key": key}}),
            None,
        )
        .await?;
        gets.push(t.elapsed().as_secs_f64() * 1e6);
        if blob.map(|b| b.bytes.len()) != Some(100) {
            bail!("kv get failed: {r}");
        }
    }
    sets.sort_by(f64::total_cmp);
    gets.sort_by(f64::total_cmp);
    Ok((percentile(&sets, 50.0), percentile(&gets, 50.0)))
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// MB/s writing then reading a 64 MiB file through `vfs:distro:sys`.
async fn vfs_throughput(node: &Node) -> Result<(f64, f64)> {
    let vfs = "vfs:distro:sys";
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    // Each append hands its buffer over; make them before the clock starts,
    // as the baseline writes from a buffer it already has.
    let chunks: Vec<Vec<u8>> = (0..FILE_BYTES / CHUNK).map(|_| chunk.clone()).collect();
    let t = Instant::now();
    for chunk in chunks {
        let (r, _) = ask(
            node,
            vfs,
            json!({"Append": {"drive": null, "path": "big.bin"}}),
            Some(chunk),
        )
        .await?;
        if r.get("Ok").is_none() {
            bail!("vfs append failed: {r}");
        }
    }
    let write = mb_per_s(FILE_BYTES, t.elapsed());
    let t = Instant::now();
    let mut offset = 0usize;
    while offset < FILE_BYTES {
        let body =
            json!({"Read": {"drive": null, "path": "big.bin", "offset": offset, "length": CHUNK}});
        let (r, blob) = ask(node, vfs, body, None).await?;
        let got = blob.map(|b| b.bytes.len()).unwrap_or(0);
        if got == 0 {
            bail!("vfs read returned nothing at {offset}: {r}");
        }
        offset += got;
    }
    let read = mb_per_s(FILE_BYTES, t.elapsed());
    ask(
        node,
        vfs,
        json!({"Remove": {"drive": null, "path": "big.bin"}}),
        None,
    )
    .await?;
    Ok((write, read))
}

/// The same chunks with plain files in this process.
fn file_baseline(path: &Path) -> Result<(f64, f64)> {
    use std::io::{Read, Write};
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    for _ in 0..FILE_BYTES / CHUNK {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(&chunk)?;
        f.sync_data()?;
    }
    let write = mb_per_s(FILE_BYTES, t.elapsed());
    let t = Instant::now();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let read = mb_per_s(total, t.elapsed());
    std::fs::remove_file(path)?;
    Ok((write, read))
}

/// ms for `Node::start` of a home with 100 installed probe processes
/// (compiles the component, starts and inits every process, restores the
/// table), and of an empty home.
async fn boot_time(probe: Vec<PackageFile>, home: &Path) -> Result<(f64, f64)> {
    let config = |home: &Path| {
        let mut config = NodeConfig::new(home, "boot.os");
        config.http_port = 0;
        config.register_run_file = false;
        config.net.mdns = false;
        config
    };
    let t = Instant::now();
    let node = Node::start(config(&home.join("empty"))).await?;
    let empty = t.elapsed().as_secs_f64() * 1e3;
    node.shutdown().await;

    let full = home.join("full");
    let node = Node::start(config(&full)).await?;
    let manifest: Vec<Value> = (0..BOOT_PROCESSES)
        .map(|i| json!({"process_name": format!("p{i}"), "process_wasm_path": "/probe.wasm", "public": true}))
        .collect();
    let files = probe
        .into_iter()
        .map(|mut f| {
            if f.path == "pkg/manifest.json" {
                f.bytes = serde_json::to_vec(&manifest).unwrap_or_default();
            }
            f
        })
        .collect();
    hearth::package::install(node.services(), files).await?;
    node.shutdown().await;
    let t = Instant::now();
    let node = Node::start(config(&full)).await?;
    let boot = t.elapsed().as_secs_f64() * 1e3;
    let running = node.services().kernel.processes().len();
    node.shutdown().await;
    if running < BOOT_PROCESSES {
        return Err(anyhow!("only {running} processes came back"));
    }
    Ok((boot, empty))
}
