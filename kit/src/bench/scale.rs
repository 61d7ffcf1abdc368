//! `kit bench local`, spawn and scale rows: process spawn, resident memory
//! per idle process, and (with `--scale N`) N idle processes on a node of
//! their own: spawn rate, memory, boot with them installed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::process::{self, ProcessContext, SpawnRequest};
use hearth::types::{OnExit, ProcessId};
use hearth::{Node, NodeConfig};
use serde_json::json;

use super::ask::{ask, copy_spec};
use super::table::{percentile, Better, Row};

/// Sequential instantiate + init runs for the spawn row.
const SPAWNS: usize = 500;
/// Idle processes for the memory row.
const IDLE: usize = 1_000;
/// Requests in flight while the scale rows ping every idle process.
const SCALE_PINGS_IN_FLIGHT: usize = 128;
/// Processes the scale node runs besides the idle children (the parent).
const SCALE_HEADROOM: usize = 1;

/// The spawn and idle-memory rows on `node` (where `echo` is installed),
/// then the scale rows on a node of their own when `scale` is given.
pub async fn rows(node: &Node, echo: &[PackageFile], scale: Option<usize>) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
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

    let (kib, heap_kib) = idle_memory(node).await?;
    rows.push(
        Row::new(
            format!("resident memory per idle echo process, N = {IDLE}"),
            "KiB",
            kib,
        )
        .target(Better::Lower, 64.0),
    );
    // Information beside the row above: its RSS reuses heap pages that
    // earlier rows freed, so most of the host's part hides there.
    rows.push(Row::new(
        format!("host heap in use per idle echo process (malloc), N = {IDLE}"),
        "KiB",
        heap_kib,
    ));
    if let Some(n) = scale {
        rows.extend(scale_rows(echo, n).await?);
    }
    Ok(rows)
}

/// Whether `--scale n` fits under this machine's process cap: the parent
/// and the idle children must fit under `Limits::max_processes`, which
/// `vm.max_map_count` sets; the error says what to raise it to.
pub fn fits(n: usize) -> Result<()> {
    let cap = hearth::config::max_processes_for_this_machine();
    // Mappings count per OS process: the bench's own node still runs the
    // `IDLE` processes of the memory row.
    let needed = hearth::config::max_map_count_for(n + SCALE_HEADROOM + IDLE);
    let have = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let ceiling = hearth::config::MAX_PROCESSES_CEILING;
    if n + SCALE_HEADROOM > ceiling {
        return Err(anyhow!(
            "--scale {n}: a node runs at most {ceiling} processes, whatever \
             vm.max_map_count says: each wasm instance slot reserves 260 MiB of address \
             space, and the pool of them is kept to a quarter of the 47-bit space"
        ));
    }
    if n + SCALE_HEADROOM > cap || have < needed {
        return Err(anyhow!(
            "--scale {n} needs vm.max_map_count >= {needed} (it is {have}: a node here runs at \
             most {cap} processes, about 8 memory mappings each); as root: \
             sysctl -w vm.max_map_count={needed}"
        ));
    }
    Ok(())
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
    fits(n)?;
    let home = std::env::temp_dir().join(format!("hearth-bench-scale-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let result = scale_run(echo, n, &home).await;
    let _ = std::fs::remove_dir_all(&home);
    let (spawn_rate, ready_rate, kib, boot_s, ready_s, total_gib, pss_gib) = result?;
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
        // RSS counts each mapping of a page-cache page (the read-only
        // part of a component's memory image) once per process; PSS
        // shares it out, so this is the memory the machine gives.
        Row::new(
            format!("proportional set size of the whole bench after that boot, N = {n}"),
            "GiB",
            pss_gib,
        ),
    ])
}

type ScaleFigures = (f64, f64, f64, f64, f64, f64, f64);

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
    let pss_gib = pss_kib()? / (1024.0 * 1024.0);
    node.shutdown().await;
    Ok((
        spawn_rate, ready_rate, kib, boot_s, ready_s, total_gib, pss_gib,
    ))
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

/// p50 µs of instantiate + init of the echo component, and how many such
/// boots run per second back to back.
async fn spawn(node: &Node) -> Result<(f64, f64)> {
    let all = Instant::now();
    let mut samples = boot_times(node, "echo", "sys", "/echo.wasm", SPAWNS).await?;
    let per_sec = SPAWNS as f64 / all.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), per_sec))
}

/// µs of each of `count` instantiate + init runs, back to back and in
/// order, of the installed component `wasm` of `package:publisher`.
pub(super) async fn boot_times(
    node: &Node,
    package: &str,
    publisher: &str,
    wasm: &str,
    count: usize,
) -> Result<Vec<f64>> {
    let services = node.services();
    let spec = copy_spec(node, "spawn-bench", package, publisher, wasm);
    let pre = services.runtime.prepare(
        &spec.package.component_key(&spec.wasm_path),
        &spec.package.wasm_file(&spec.wasm_path),
    )?;
    let ctx = Arc::new(ProcessContext {
        address: services.kernel.address(&spec.id),
        spec,
        services: services.clone(),
    });
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let booted = process::boot(ctx.clone(), &pre).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        booted.map_err(|(reason, _)| anyhow!("boot failed: {reason}"))?;
    }
    Ok(samples)
}

/// The KiB figure `key` of a `/proc` status-like `file`.
fn status_kib(file: &str, key: &str) -> Result<f64> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no {key} in {file}"))
}

/// This process's resident memory, KiB.
pub(super) fn rss_kib() -> Result<f64> {
    status_kib("/proc/self/status", "VmRSS:")
}

/// This process's proportional set size, KiB (a page shared by several
/// mappings counted once in all).
pub(super) fn pss_kib() -> Result<f64> {
    status_kib("/proc/self/smaps_rollup", "Pss:")
}

/// For finding where idle memory goes: `HEARTH_BENCH_IDLE_DETAIL=1` prints,
/// on stderr, the resident KiB per idle process that each kind of mapping
/// added (from `/proc/self/smaps`) during the idle-memory row.
const IDLE_DETAIL: &str = "HEARTH_BENCH_IDLE_DETAIL";

/// Resident memory and host heap in use (KiB) added per idle echo
/// process, with N started and each having answered one request (so it is
/// fully initialised).
async fn idle_memory(node: &Node) -> Result<(f64, f64)> {
    let detail = std::env::var_os(IDLE_DETAIL).is_some();
    let mappings_before = detail.then(mapping_kinds);
    let heap_before = heap_in_use_kib();
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
    let heap = (heap_in_use_kib() - heap_before) / IDLE as f64;
    if let Some(before) = mappings_before {
        print_mapping_growth(&before, &mapping_kinds());
    }
    Ok(((after - before) / IDLE as f64, heap))
}

/// KiB the host allocator has handed out and not taken back (glibc's
/// count, all arenas). Unlike RSS, it does not depend on how much freed
/// memory earlier rows left for reuse.
fn heap_in_use_kib() -> f64 {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's
    // own statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as f64 / 1024.0
}

/// Resident KiB and mapping count of this process by kind of mapping:
/// permissions, name, and (for anonymous and memfd mappings) a size class.
fn mapping_kinds() -> std::collections::BTreeMap<String, (u64, i64)> {
    let mut kinds = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut kind = String::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let bytes = u64::from_str_radix(end, 16).unwrap_or(0)
                - u64::from_str_radix(start, 16).unwrap_or(0);
            let perms = fields.next().unwrap_or("");
            let name = fields.nth(3).unwrap_or("[anon]");
            let class = match bytes / 1024 {
                _ if name != "[anon]" && !name.starts_with("memfd") => String::new(),
                kib if kib >= 64 * 1024 => "large".into(),
                kib if kib >= 1024 => format!("{} MiB", kib / 1024),
                kib => format!("{kib} KiB"),
            };
            kind = format!(
                "{perms} {} {class}",
                name.rsplit('/').next().unwrap_or(name)
            );
            kinds.entry(kind.clone()).or_insert((0, 0)).1 += 1;
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            kinds.entry(kind.clone()).or_insert((0, 0)).0 += kib;
        }
    }
    kinds
}

fn print_mapping_growth(
    before: &std::collections::BTreeMap<String, (u64, i64)>,
    after: &std::collections::BTreeMap<String, (u64, i64)>,
) {
    let kinds: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    eprintln!("resident KiB per idle process by mapping kind (N = {IDLE}):");
    for kind in kinds {
        let (rss_after, n_after) = after.get(kind).copied().unwrap_or_default();
        let (rss_before, n_before) = before.get(kind).copied().unwrap_or_default();
        let kib = (rss_after as f64 - rss_before as f64) / IDLE as f64;
        let mappings = n_after - n_before;
        if kib.abs() >= 0.05 || mappings != 0 {
            eprintln!("  {kind:45} {kib:7.2} KiB  {mappings:+} mappings");
        }
    }
}
