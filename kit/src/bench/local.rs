//! `kit bench local`: messaging, spawn and memory on one node, each next
//! to a plain tokio baseline measured in the same run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::process::{self, ProcessContext, SpawnRequest};
use hearth::types::{OnExit, ProcessId};
use hearth::{Node, NodeConfig};
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
/// Requests in flight while the scale rows ping every idle process.
const SCALE_PINGS_IN_FLIGHT: usize = 128;

/// The system allocator, counting every allocation, so the bench can
/// report host allocations per message. Wraps `System` and adds one
/// relaxed atomic increment per allocation (kit-wide: the count is only
/// read by `kit bench local`).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to `System` unchanged; the counter is a
// relaxed atomic that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

pub async fn run(
    node: &Node,
    echo: Vec<PackageFile>,
    probe: Vec<PackageFile>,
    scale: Option<usize>,
) -> Result<Vec<Row>> {
    let services = node.services();
    hearth::package::install(services, echo.clone())
        .await
        .context("install echo")?;
    hearth::package::install(services, probe)
        .await
        .context("install probe")?;

    let mut rows = Vec::new();
    let before = allocations();
    let (p50, p99) = wasm_round_trip(node).await?;
    let rtt_allocs = (allocations() - before) as f64 / PINGS as f64;
    let (b50, b99) = baseline_round_trip().await;
    rows.push(
        Row::new("request/response round trip, WASM to WASM, p50", "us", p50)
            .baseline("tokio mpsc + oneshot", b50)
            .target(Better::Lower, 4.0),
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

    let before = allocations();
    let rate = wasm_fire_and_forget(node).await?;
    let fnf_allocs = (allocations() - before) as f64 / BLAST as f64;
    let base = baseline_fire_and_forget().await;
    rows.push(
        Row::new("fire-and-forget, process to process", "msg/s", rate)
            .baseline("tokio mpsc", base)
            .target(Better::Higher, 1_000_000.0),
    );
    rows.push(Row::new(
        "host allocations per WASM-to-WASM round trip",
        "alloc",
        rtt_allocs,
    ));
    rows.push(Row::new(
        "host allocations per fire-and-forget message",
        "alloc",
        fnf_allocs,
    ));

    let (spawn_p50, per_sec) = spawn(node).await?;
    rows.push(
        Row::new("process spawn (instantiate + init), p50", "us", spawn_p50)
            .target(Better::Lower, 15.0),
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
        .target(Better::Lower, 64.0),
    );
    if let Some(n) = scale {
        rows.extend(scale_rows(&echo, n).await?);
    }
    Ok(rows)
}

/// A node of its own for the scale rows, under `home`.
fn scale_config(home: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(home, "scale.os");
    config.http_port = 0;
    config.register_run_file = false;
    config.net.listen_ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    config.net.mdns = false;
    config
}

/// `n` idle echo processes on a node of their own: spawned as children of
/// `echo` (so they are persisted and restored at boot, like any spawned
/// process), each pinged once; then the node restarts with all of them.
async fn scale_rows(echo: &[PackageFile], n: usize) -> Result<Vec<Row>> {
    let home = std::env::temp_dir().join(format!("hearth-bench-scale-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let result = scale_run(echo, n, &home).await;
    let _ = std::fs::remove_dir_all(&home);
    let (spawn_rate, ready_rate, kib, boot_s, ready_s, total_gib) = result?;
    Ok(vec![
        Row::new(
            format!("spawns per second, {n} children started back to back"),
            "spawn/s",
            spawn_rate,
        ),
        Row::new(
            format!("spawned and answered a request, {n} children"),
            "proc/s",
            ready_rate,
        ),
        Row::new(
            format!("resident memory per idle process, N = {n}"),
            "KiB",
            kib,
        )
        .target(Better::Lower, 64.0),
        Row::new(
            format!("node boot with {n} processes installed (start returns)"),
            "s",
            boot_s,
        )
        .target(Better::Lower, 2.0),
        Row::new(
            format!("node boot with {n} processes installed, until all answered"),
            "s",
            ready_s,
        ),
        Row::new(
            format!("resident memory of the whole bench after that boot, N = {n}"),
            "GiB",
            total_gib,
        )
        .target(Better::Lower, 8.0),
    ])
}

type ScaleFigures = (f64, f64, f64, f64, f64, f64);

async fn scale_run(echo: &[PackageFile], n: usize, home: &std::path::Path) -> Result<ScaleFigures> {
    let node = Node::start(scale_config(home)).await?;
    hearth::package::install(node.services(), echo.to_vec())
        .await
        .context("install echo")?;
    let services = node.services();
    let spec = copy_spec(&node, "echo", "echo", "sys", "/echo.wasm");
    let parent = ProcessContext {
        address: services.kernel.address(&spec.id),
        spec,
        services: services.clone(),
    };
    let rss_before = rss_kib()?;
    let t = Instant::now();
    for i in 0..n {
        let request = SpawnRequest {
            id: ProcessId::new(&format!("idle-{i}"), "echo", "sys"),
            wasm_path: "/echo.wasm".into(),
            on_exit: OnExit::None,
            public: true,
            networking: false,
        };
        process::spawn_child(&parent, request).with_context(|| format!("spawn idle-{i}"))?;
    }
    let spawn_rate = n as f64 / t.elapsed().as_secs_f64();
    ping_all(&node, n).await?;
    let ready_rate = n as f64 / t.elapsed().as_secs_f64();
    let kib = (rss_kib()? - rss_before) / n as f64;
    // The parent's context holds the services, and with them the store:
    // the node restarts on this home only once every handle is gone.
    drop(parent);
    node.shutdown().await;

    let t = Instant::now();
    let node = Node::start(scale_config(home)).await?;
    let boot_s = t.elapsed().as_secs_f64();
    ping_all(&node, n).await?;
    let ready_s = t.elapsed().as_secs_f64();
    let total_gib = rss_kib()? / (1024.0 * 1024.0);
    node.shutdown().await;
    Ok((spawn_rate, ready_rate, kib, boot_s, ready_s, total_gib))
}

/// Ask each of `idle-0..n` once, a bounded number at a time.
async fn ping_all(node: &Node, n: usize) -> Result<()> {
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..n {
        if in_flight.len() >= SCALE_PINGS_IN_FLIGHT {
            if let Some(done) = in_flight.join_next().await {
                done??;
            }
        }
        let injector = node.injector().clone();
        let target = hearth::types::Address::new(
            node.name(),
            ProcessId::new(&format!("idle-{i}"), "echo", "sys"),
        );
        in_flight.spawn(async move {
            injector
                .ask(target, b"{}".to_vec(), None, Duration::from_secs(120))
                .await
                .map(|_| ())
                .map_err(|e| anyhow!("idle-{i}: {e}"))
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    Ok(())
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
