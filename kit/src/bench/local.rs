//! `kit bench local`: messaging, spawn and memory on one node, each next
//! to a plain tokio baseline measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::process::{self, ProcessContext};
use hearth::Node;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::ask::{ask, copy_spec, field};
use super::table::{percentile, Better, Row};

/// Sequential round trips measured for the latency rows.
const PINGS: u64 = 20_000;
/// Fire-and-forget messages for the throughput row.
const BLAST: u64 = 200_000;
/// Messages per window between barriers; below the mailbox capacity.
const WINDOW: u64 = 1_000;
/// Sequential instantiate + init runs for the spawn row.
const SPAWNS: usize = 500;
/// Idle processes for the memory row.
const IDLE: usize = 1_000;
/// Capacity of the baseline channels, like a process mailbox.
const BASELINE_CHANNEL: usize = 1_024;

pub async fn run(node: &Node, echo: Vec<PackageFile>, probe: Vec<PackageFile>) -> Result<Vec<Row>> {
    let services = node.services();
    hearth::package::install(services, echo)
        .await
        .context("install echo")?;
    hearth::package::install(services, probe)
        .await
        .context("install probe")?;

    let mut rows = Vec::new();
    let (p50, p99) = wasm_round_trip(node).await?;
    let (b50, b99) = baseline_round_trip().await;
    rows.push(
        Row::new("request/response round trip, WASM to WASM, p50", "us", p50)
            .baseline("tokio mpsc + oneshot", b50)
            .target(Better::Lower, 10.0),
    );
    rows.push(
        Row::new("request/response round trip, WASM to WASM, p99", "us", p99)
            .baseline("tokio mpsc + oneshot", b99),
    );
    let notebook = tokio::task::block_in_place(|| super::package("apps/notebook"))?;
    hearth::package::install(services, notebook)
        .await
        .context("install notebook")?;
    let (m50, m99) = macro_round_trip(node).await?;
    rows.push(
        Row::new(
            "round trip, #[app] client to #[app] handler, p50",
            "us",
            m50,
        )
        .baseline("raw SDK (WASM to WASM above)", p50),
    );
    rows.push(
        Row::new(
            "round trip, #[app] client to #[app] handler, p99",
            "us",
            m99,
        )
        .baseline("raw SDK (WASM to WASM above)", p99),
    );

    let rate = wasm_fire_and_forget(node).await?;
    let base = baseline_fire_and_forget().await;
    rows.push(
        Row::new("fire-and-forget, process to process", "msg/s", rate)
            .baseline("tokio mpsc", base)
            .target(Better::Higher, 500_000.0),
    );

    let (spawn_p50, per_sec) = spawn(node).await?;
    rows.push(
        Row::new("process spawn (instantiate + init), p50", "us", spawn_p50)
            .target(Better::Lower, 100.0),
    );
    rows.push(Row::new(
        "process spawns per second, sequential",
        "spawn/s",
        per_sec,
    ));

    let kib = idle_memory(node).await?;
    rows.push(
        Row::new(
            format!("resident memory per idle echo process, N = {IDLE}"),
            "KiB",
            kib,
        )
        .target(Better::Lower, 512.0),
    );
    Ok(rows)
}

/// p50 and p99 in µs of a request/response from one process (probe
/// `alpha`) to another (probe `beta`, which answers `{"echo": ..}` with the
/// raw SDK; echo itself is an `#[app]` now), timed inside the guest.
async fn wasm_round_trip(node: &Node) -> Result<(f64, f64)> {
    let cmd =
        json!({"bench_ping": {"target": "beta:probe:test", "count": PINGS, "body_bytes": 64}});
    let v = ask(node, "alpha:probe:test", cmd, Duration::from_secs(300)).await?;
    Ok((field(&v, "p50_ns")? / 1e3, field(&v, "p99_ns")? / 1e3))
}

/// p50 and p99 in µs of `echo` calls from notebook's async handler through
/// echo's generated client to echo's `#[app]` handler, timed in the guest.
async fn macro_round_trip(node: &Node) -> Result<(f64, f64)> {
    let cmd = json!({"bench_echo": {"echo": "echo:echo:sys", "count": PINGS, "body_bytes": 64}});
    let v = ask(node, "notebook:notebook:sys", cmd, Duration::from_secs(300)).await?;
    let v = &v["ok"];
    Ok((field(v, "p50_ns")? / 1e3, field(v, "p99_ns")? / 1e3))
}

/// The baselines run their client loop in a spawned task, on a runtime
/// worker, as a process task does.
async fn baseline_round_trip() -> (f64, f64) {
    tokio::spawn(baseline_round_trip_task())
        .await
        .unwrap_or((f64::NAN, f64::NAN))
}

async fn baseline_round_trip_task() -> (f64, f64) {
    let (tx, mut rx) = mpsc::channel::<(Vec<u8>, oneshot::Sender<Vec<u8>>)>(BASELINE_CHANNEL);
    tokio::spawn(async move {
        while let Some((body, reply)) = rx.recv().await {
            let _ = reply.send(body);
        }
    });
    let mut samples = Vec::with_capacity(PINGS as usize);
    for _ in 0..PINGS {
        let t = Instant::now();
        let (otx, orx) = oneshot::channel();
        if tx.send((vec![0u8; 64], otx)).await.is_err() {
            break;
        }
        let _ = orx.await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// Messages per second from probe `alpha` to probe `beta`, windows of
/// fire-and-forget messages separated by a request/response barrier.
async fn wasm_fire_and_forget(node: &Node) -> Result<f64> {
    let cmd =
        json!({"bench_blast": {"target": "beta:probe:test", "count": BLAST, "window": WINDOW}});
    let v = ask(node, "alpha:probe:test", cmd, Duration::from_secs(300)).await?;
    if field(&v, "errors")? > 0.0 {
        return Err(anyhow!("fire-and-forget run had errors: {v}"));
    }
    let got = ask(
        node,
        "beta:probe:test",
        json!({"received": null}),
        Duration::from_secs(10),
    )
    .await?;
    if field(&got, "count")? < BLAST as f64 || field(&got, "out_of_order")? > 0.0 {
        return Err(anyhow!("receiver saw {got} after sending {BLAST}"));
    }
    Ok(BLAST as f64 / (field(&v, "total_ns")? / 1e9))
}

async fn baseline_fire_and_forget() -> f64 {
    tokio::spawn(baseline_fire_and_forget_task())
        .await
        .unwrap_or(f64::NAN)
}

async fn baseline_fire_and_forget_task() -> f64 {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(BASELINE_CHANNEL);
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    let t = Instant::now();
    for _ in 0..BLAST {
        if tx.send(vec![0u8; 64]).await.is_err() {
            break;
        }
    }
    drop(tx);
    let n = consumer.await.unwrap_or(0);
    n as f64 / t.elapsed().as_secs_f64()
}

/// p50 µs of instantiate + init of the echo component, and how many such
/// boots run per second back to back.
async fn spawn(node: &Node) -> Result<(f64, f64)> {
    let services = node.services();
    let spec = copy_spec(node, "spawn-bench", "echo", "sys", "/echo.wasm");
    let pre = services.runtime.prepare(
        &spec.package.component_key(&spec.wasm_path),
        &spec.package.wasm_file(&spec.wasm_path),
    )?;
    let ctx = Arc::new(ProcessContext {
        address: services.kernel.address(&spec.id),
        spec,
        services: services.clone(),
    });
    let mut samples = Vec::with_capacity(SPAWNS);
    let all = Instant::now();
    for _ in 0..SPAWNS {
        let t = Instant::now();
        let booted = process::boot(ctx.clone(), &pre).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        booted.map_err(|(reason, _)| anyhow!("boot failed: {reason}"))?;
    }
    let per_sec = SPAWNS as f64 / all.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), per_sec))
}

fn rss_kib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/self/status"))
}

/// Resident memory added per idle echo process, with N started and each
/// having answered one request (so it is fully initialised).
async fn idle_memory(node: &Node) -> Result<f64> {
    let before = rss_kib()?;
    for i in 0..IDLE {
        process::start(
            node.services(),
            copy_spec(node, &format!("idle-{i}"), "echo", "sys", "/echo.wasm"),
        )?;
    }
    for i in 0..IDLE {
        ask(
            node,
            &format!("idle-{i}:echo:sys"),
            json!(i),
            Duration::from_secs(30),
        )
        .await?;
    }
    let after = rss_kib()?;
    Ok((after - before) / IDLE as f64)
}
