//! `kit bench local`: messaging, spawn and memory on one node, each next
//! to a plain tokio baseline measured in the same run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::Node;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::ask::{ask, field};
use super::table::{percentile, Better, Row};
use super::MessageRows;

/// Sequential round trips measured for the latency rows.
const PINGS: u64 = 20_000;
/// Fire-and-forget messages for the throughput row.
const BLAST: u64 = 200_000;
/// Messages per window between barriers; below the mailbox capacity.
const WINDOW: u64 = 1_000;
/// Capacity of the baseline channels, like a process mailbox.
const BASELINE_CHANNEL: usize = 1_024;
/// For profiling: `HEARTH_BENCH_MESSAGE_LOOPS=N` runs only the two
/// WASM-to-WASM message rows, N times each, and prints each run's figure
/// and host allocations on stderr, so `perf` sees little but the message path.
const PROFILE_LOOPS: &str = "HEARTH_BENCH_MESSAGE_LOOPS";
/// With [`PROFILE_LOOPS`]: `HEARTH_BENCH_MESSAGE_ROW=ping` runs only the
/// round trips, `=blast` only the fire-and-forget messages.
const PROFILE_ROW: &str = "HEARTH_BENCH_MESSAGE_ROW";

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

/// Host allocations of this whole process so far (also read by
/// `kit bench http`).
pub(super) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Host allocations since `before` (a reading of [`allocations`]), per
/// one of `count` things done in between.
pub(super) fn allocations_per(before: u64, count: u64) -> f64 {
    (allocations() - before) as f64 / count as f64
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

    if let Some(loops) = std::env::var(PROFILE_LOOPS)
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        return message_loops(node, loops).await;
    }
    let mut rows = Vec::new();
    let before = allocations();
    let (p50, p99) = wasm_round_trip(node).await?;
    let rtt_allocs = allocations_per(before, PINGS);
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
    let rate = wasm_fire_and_forget(node, true).await?;
    let fnf_allocs = allocations_per(before, BLAST);
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

    rows.extend(super::scale::rows(node, &echo, scale).await?);
    Ok(rows)
}

/// The two WASM-to-WASM message rows, `loops` times each, for a profiler;
/// every figure goes to stderr and the table stays empty.
async fn message_loops(node: &Node, loops: u32) -> Result<Vec<Row>> {
    let (ping, blast) = MessageRows::from_env(PROFILE_ROW)?.split(loops);
    for i in 0..ping {
        let before = allocations();
        let (p50, _) = wasm_round_trip(node).await?;
        let allocs = allocations_per(before, PINGS);
        eprintln!(
            "{PROFILE_LOOPS}: loop {i}: round trip p50 {p50:.2} us, {allocs:.2} host allocations"
        );
    }
    for i in 0..blast {
        // The receiver's sequence check holds for the first run only.
        let before = allocations();
        let rate = wasm_fire_and_forget(node, i == 0).await?;
        let allocs = allocations_per(before, BLAST);
        eprintln!("{PROFILE_LOOPS}: loop {i}: fire-and-forget {rate:.0} msg/s, {allocs:.2} host allocations per message");
    }
    Ok(Vec::new())
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
/// With `check`, the receiver must have seen every message in order.
async fn wasm_fire_and_forget(node: &Node, check: bool) -> Result<f64> {
    let cmd =
        json!({"bench_blast": {"target": "beta:probe:test", "count": BLAST, "window": WINDOW}});
    let v = ask(node, "alpha:probe:test", cmd, Duration::from_secs(300)).await?;
    if field(&v, "errors")? > 0.0 {
        return Err(anyhow!("fire-and-forget run had errors: {v}"));
    }
    if !check {
        return Ok(BLAST as f64 / (field(&v, "total_ns")? / 1e9));
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
