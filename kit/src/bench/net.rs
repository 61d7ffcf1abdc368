//! `kit bench net`: messaging between WASM processes on two nodes over
//! loopback, next to raw TCP and stock libp2p request-response round trips
//! measured in the same run.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use futures::StreamExt;
use hearth::api::PackageFile;
use hearth::{Node, NodeConfig};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol, Swarm};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ask::{ask, field};
use super::table::{percentile, Better, Row};
use super::MessageRows;

const PINGS: u64 = 5_000;
const BLAST: u64 = 100_000;
const WINDOW: u64 = 1_000;
/// Round trips for each baseline.
const BASELINE_PINGS: usize = 5_000;
const BODY: usize = 64;
/// For profiling and steadier comparisons: `HEARTH_BENCH_NET_LOOPS=N` runs
/// the round-trip and fire-and-forget phases N times each over the same
/// link, prints each run's figure on stderr, and reports the medians.
const PROFILE_LOOPS: &str = "HEARTH_BENCH_NET_LOOPS";
/// With [`PROFILE_LOOPS`]: `HEARTH_BENCH_NET_ROW=ping` runs only the round
/// trips, `=blast` only the fire-and-forget messages, and neither runs the
/// baselines (the table shows that row alone), so `perf` sees little but
/// the message path.
const PROFILE_ROW: &str = "HEARTH_BENCH_NET_ROW";

fn manifest() -> Value {
    let entry = |name: &str| {
        json!({"process_name": name, "process_wasm_path": "/probe.wasm", "on_exit": "None",
               "request_networking": true, "request_capabilities": [], "grant_capabilities": [], "public": true})
    };
    json!([entry("net"), entry("sink")])
}

fn with_manifest(probe: &[PackageFile]) -> Result<Vec<PackageFile>> {
    let mut files = probe.to_vec();
    let entry = files
        .iter_mut()
        .find(|f| f.path == "pkg/manifest.json")
        .ok_or_else(|| anyhow!("probe package has no manifest"))?;
    entry.bytes = serde_json::to_vec(&manifest())?;
    Ok(files)
}

pub(super) fn config(home: &std::path::Path, name: &str, bootstrap: Vec<String>) -> NodeConfig {
    let mut config = NodeConfig::new(home, name);
    config.http_port = 0;
    config.register_run_file = false;
    config.net.listen_ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    config.net.mdns = false;
    config.net.bootstrap = bootstrap;
    config
}

pub(super) async fn p2p_addr(node: &Node) -> Result<String> {
    let net = node.net();
    let t = Instant::now();
    loop {
        if let Some(addr) = net.bootstrap_addr() {
            return Ok(addr);
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(anyhow!("node never listened"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ask through `node`'s `net` probe until the remote answers.
async fn first_answer(node: &Node, target: &str) -> Result<()> {
    let t = Instant::now();
    loop {
        let body = json!({"ask": {"target": target, "body": {"echo": 1}, "timeout_ms": 5000, "context": ""}});
        let reply = ask(node, "net:probe:test", body, Duration::from_secs(10)).await?;
        if reply["ok"] == 1 {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err(anyhow!("no answer from {target}: {reply}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(a: &Node, probe: Vec<PackageFile>) -> Result<Vec<Row>> {
    let files = with_manifest(&probe)?;
    hearth::package::install(a.services(), files.clone()).await?;
    let a_addr = p2p_addr(a).await?;
    let base = std::env::temp_dir().join(format!("hearth-bench-net-{}", std::process::id()));

    // Boot to first message delivered to a freshly discovered peer.
    let booted = Instant::now();
    let b = Node::start(config(&base.join("b"), "b.os", vec![a_addr.clone()])).await?;
    hearth::package::install(b.services(), files).await?;
    first_answer(&b, "bench.os@net:probe:test").await?;
    let boot_to_first = booted.elapsed().as_secs_f64() * 1e3;

    let loops = std::env::var(PROFILE_LOOPS)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let rows = MessageRows::from_env(PROFILE_ROW)?;
    let (pings, blasts) = rows.split(loops);
    let (mut p50s, mut p99s, mut ping_allocs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pings {
        let ping = json!({"bench_ping": {"target": "b.os@net:probe:test", "count": PINGS, "body_bytes": BODY}});
        let before = super::local::allocations();
        let v = ask(a, "net:probe:test", ping, Duration::from_secs(300)).await?;
        ping_allocs.push(super::local::allocations_per(before, PINGS));
        p50s.push(field(&v, "p50_ns")? / 1e3);
        p99s.push(field(&v, "p99_ns")? / 1e3);
        if loops > 1 {
            eprintln!(
                "round trip p50 {:.1} us, {:.2} host allocations per round trip",
                p50s[p50s.len() - 1],
                ping_allocs[ping_allocs.len() - 1]
            );
        }
    }
    let (mut rates, mut allocs) = (Vec::new(), Vec::new());
    for run in 1..=blasts as u64 {
        let blast = json!({"bench_blast": {"target": "b.os@sink:probe:test", "count": BLAST, "window": WINDOW}});
        // Both nodes live in this process: the count is the sender's and
        // the receiver's host allocations (and the bench's two asks),
        // until the receiver has counted every message.
        let before = super::local::allocations();
        let v = ask(a, "net:probe:test", blast, Duration::from_secs(300)).await?;
        if field(&v, "errors")? > 0.0 {
            return Err(anyhow!("fire-and-forget run had errors: {v}"));
        }
        rates.push(BLAST as f64 / (field(&v, "total_ns")? / 1e9));
        let got = ask(
            &b,
            "sink:probe:test",
            json!({"received": null}),
            Duration::from_secs(10),
        )
        .await?;
        allocs.push(super::local::allocations_per(before, BLAST));
        if loops > 1 {
            eprintln!(
                "fire-and-forget {:.0} msg/s, {:.2} host allocations per message",
                rates[rates.len() - 1],
                allocs[allocs.len() - 1]
            );
        }
        // The sink counts across runs; each new run's seq 0 counts as one
        // out of order.
        let restarts = (run - 1) as f64;
        if field(&got, "count")? < (run * BLAST) as f64 || field(&got, "out_of_order")? > restarts {
            return Err(anyhow!("receiver saw {got} after {} sent", run * BLAST));
        }
    }
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);

    let boot = Row::new(
        "boot to first message delivered to a new peer",
        "ms",
        boot_to_first,
    );
    // Profiling one row: no baselines, and only the row that ran.
    match rows {
        MessageRows::Ping => {
            return Ok(vec![
                round_trip_p50(median(p50s)),
                round_trip_allocations(median(ping_allocs)),
                boot,
            ])
        }
        MessageRows::Blast => {
            return Ok(vec![
                fire_and_forget(median(rates)),
                fire_and_forget_allocations(median(allocs)),
                boot,
            ])
        }
        MessageRows::Both => {}
    }
    let (p50, p99, rate) = (median(p50s), median(p99s), median(rates));
    let (tcp50, tcp99) = tokio::spawn(raw_tcp_round_trip()).await??;
    let (rr50, rr99) = tokio::spawn(request_response_round_trip()).await??;
    Ok(vec![
        // Target: 2.5x the same-run raw TCP round trip.
        round_trip_p50(p50)
            .baseline("raw tokio TCP", tcp50)
            .target(Better::Lower, 2.5 * tcp50),
        Row::new(
            "round trip WASM to WASM across two nodes, p50 vs libp2p",
            "us",
            p50,
        )
        .baseline("stock libp2p request-response", rr50),
        Row::new("round trip WASM to WASM across two nodes, p99", "us", p99)
            .baseline("raw tokio TCP", tcp99),
        Row::new("stock libp2p request-response round trip, p99", "us", rr99),
        round_trip_allocations(median(ping_allocs)),
        fire_and_forget(rate),
        fire_and_forget_allocations(median(allocs)),
        boot,
    ])
}

fn round_trip_p50(p50: f64) -> Row {
    Row::new("round trip WASM to WASM across two nodes, p50", "us", p50)
}

fn fire_and_forget(rate: f64) -> Row {
    Row::new(
        "fire-and-forget to a process on the other node",
        "msg/s",
        rate,
    )
    .target(Better::Higher, 500_000.0)
}

/// Host allocations per cross-node round trip, both nodes: each message
/// of a round trip goes in a Noise frame of its own, so this row also
/// counts what decoding a frame costs.
fn round_trip_allocations(per_round_trip: f64) -> Row {
    Row::new(
        "host allocations per round trip across two nodes (both nodes)",
        "alloc",
        per_round_trip,
    )
}

/// Host allocations per cross-node fire-and-forget message, sender and
/// receiver together: a count the machine's load does not move.
fn fire_and_forget_allocations(per_message: f64) -> Row {
    Row::new(
        "host allocations per fire-and-forget message across two nodes (both nodes)",
        "alloc",
        per_message,
    )
}

/// The median; 0 for no samples (a row that did not run).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Sequential 64-byte request/response over one loopback TCP connection.
async fn raw_tcp_round_trip() -> Result<(f64, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; BODY];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; BODY];
    let mut samples = Vec::with_capacity(BASELINE_PINGS);
    for _ in 0..BASELINE_PINGS {
        let t = Instant::now();
        s.write_all(&buf).await?;
        s.read_exact(&mut buf).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), percentile(&samples, 99.0)))
}

type Rr = request_response::cbor::Behaviour<Vec<u8>, Vec<u8>>;

fn rr_swarm() -> Result<Swarm<Rr>> {
    let protocol = StreamProtocol::new("/hearth-bench/rr/1");
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            Rr::new(
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// Sequential 64-byte request/response with libp2p's stock
/// request-response (a new substream per request), TCP + Noise + Yamux.
async fn request_response_round_trip() -> Result<(f64, f64)> {
    let mut server = rr_swarm()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_id = *server.local_peer_id();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = server.select_next_some().await
            {
                let _ = server.behaviour_mut().send_response(channel, request);
            }
        }
    });
    let mut client = rr_swarm()?;
    client.dial(addr.with(libp2p::multiaddr::Protocol::P2p(server_id)))?;
    let mut samples = Vec::with_capacity(BASELINE_PINGS);
    while samples.len() < BASELINE_PINGS {
        let t = Instant::now();
        client
            .behaviour_mut()
            .send_request(&server_id, vec![7u8; BODY]);
        loop {
            match client.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) => break,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => {
                    return Err(anyhow!("request-response baseline failed: {error}"));
                }
                _ => {}
            }
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), percentile(&samples, 99.0)))
}
