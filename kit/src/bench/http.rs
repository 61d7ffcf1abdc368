//! `kit bench http`: HTTP requests to a process endpoint next to a plain
//! axum handler measured in the same run, and the time for one publish to
//! reach 1,000 WebSocket subscribers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use hearth::api::PackageFile;
use hearth::Node;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::loadgen;
use super::table::{percentile, Better, Row};

/// The node password the bench sets.
pub const PASSWORD: &str = "bench-password";
/// Keep-alive connections of the load generator (its concurrency).
const CONNECTIONS: usize = 16;
/// Length of each throughput run.
const LOAD_TIME: Duration = Duration::from_secs(4);
/// WebSocket subscribers of the publish row.
const SUBSCRIBERS: usize = 1_000;
/// Publishes timed for the publish row.
const PUBLISHES: usize = 30;
/// Handshakes in flight while the subscribers connect.
const CONNECT_CONCURRENCY: usize = 50;
/// Receipts buffered between subscriber tasks and the timer: one publish's
/// worth, twice, so no subscriber waits on the timer.
const RECEIPTS: usize = 2 * SUBSCRIBERS;

const APP: &str = "/chat:chat:sys";

pub async fn run(node: &Node, chat: Vec<PackageFile>) -> Result<Vec<Row>> {
    hearth::package::install(node.services(), chat)
        .await
        .context("install chat")?;
    let addr = node.http_addr();
    wait_until_bound(addr).await?;

    let baseline_addr = plain_axum().await?;
    // Warm both up, then measure each in turn on the same machine.
    loadgen::run(
        baseline_addr,
        "/health",
        CONNECTIONS,
        Duration::from_millis(500),
    )
    .await?;
    loadgen::run(
        addr,
        &format!("{APP}/api/health"),
        CONNECTIONS,
        Duration::from_millis(500),
    )
    .await?;
    let base = loadgen::run(baseline_addr, "/health", CONNECTIONS, LOAD_TIME).await?;
    let ours = loadgen::run(addr, &format!("{APP}/api/health"), CONNECTIONS, LOAD_TIME).await?;

    let mut rows = vec![
        Row::new(
            format!("HTTP GET to a process endpoint, {CONNECTIONS} keep-alive connections"),
            "req/s",
            ours.requests_per_sec,
        )
        .baseline("plain axum handler", base.requests_per_sec)
        .target(Better::Higher, 0.4 * base.requests_per_sec),
        Row::new(
            "HTTP GET to a process endpoint, p50",
            "us",
            percentile(&ours.latencies_us, 50.0),
        )
        .baseline("plain axum handler", percentile(&base.latencies_us, 50.0)),
        Row::new(
            "HTTP GET to a process endpoint, p99",
            "us",
            percentile(&ours.latencies_us, 99.0),
        )
        .baseline("plain axum handler", percentile(&base.latencies_us, 99.0)),
    ];
    let (p50, p99) = publish_fan_out(addr).await?;
    rows.push(Row::new(
        format!("one publish reaching all of {SUBSCRIBERS} WebSocket subscribers, p50"),
        "ms",
        p50,
    ));
    rows.push(Row::new(
        format!("one publish reaching all of {SUBSCRIBERS} WebSocket subscribers, p99"),
        "ms",
        p99,
    ));
    Ok(rows)
}

async fn wait_until_bound(addr: SocketAddr) -> Result<()> {
    for _ in 0..200 {
        if let Ok((200, _, _)) =
            loadgen::once(addr, "GET", &format!("{APP}/api/health"), &[], b"").await
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("chat did not bind {APP}/api/health")
}

/// The baseline: an axum server on loopback answering the same JSON body
/// from a handler, in this process and runtime.
async fn plain_axum() -> Result<SocketAddr> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/health",
        get(|| async { ([("content-type", "application/json")], r#"{"ok":true}"#) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn login(addr: SocketAddr) -> Result<String> {
    let body = format!("password={PASSWORD}");
    let (status, head, _) = loadgen::once(
        addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await?;
    if status != 303 {
        bail!("login answered {status}");
    }
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("login set no cookie"))
}

/// Open `SUBSCRIBERS` WebSockets in one room, then time `PUBLISHES` posts
/// from the HTTP call until the last subscriber has the message. Returns
/// p50 and p99 in ms.
async fn publish_fan_out(addr: SocketAddr) -> Result<(f64, f64)> {
    let cookie = Arc::new(login(addr).await?);
    let (receipt_tx, mut receipt_rx) = mpsc::channel::<(u64, Instant)>(RECEIPTS);
    let mut connecting = JoinSet::new();
    let mut readers = JoinSet::new();
    for i in 0..SUBSCRIBERS {
        if connecting.len() >= CONNECT_CONCURRENCY {
            let ready = connecting.join_next().await.context("no connect task")?;
            readers.spawn(ready.context("connect task")??);
        }
        let cookie = cookie.clone();
        let tx = receipt_tx.clone();
        connecting.spawn(async move {
            subscribe(addr, &cookie, tx)
                .await
                .with_context(|| format!("subscriber {i}"))
        });
    }
    while let Some(ready) = connecting.join_next().await {
        readers.spawn(ready.context("connect task")??);
    }
    drop(receipt_tx);

    let mut rounds = Vec::with_capacity(PUBLISHES);
    for n in 0..PUBLISHES {
        let body = format!(r#"{{"text":"bench {n}"}}"#);
        let t0 = Instant::now();
        let (status, _, reply) = loadgen::once(
            addr,
            "POST",
            &format!("{APP}/api/rooms/bench/messages"),
            &[("cookie", &cookie), ("content-type", "application/json")],
            body.as_bytes(),
        )
        .await?;
        if status != 200 {
            bail!("post answered {status}");
        }
        let id = serde_json::from_slice::<serde_json::Value>(&reply)?["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no id"))?;
        let mut got = 0;
        let mut last = t0;
        while got < SUBSCRIBERS {
            let (mid, at) = tokio::time::timeout(Duration::from_secs(10), receipt_rx.recv())
                .await
                .context("subscribers did not all receive the publish")?
                .ok_or_else(|| anyhow!("subscribers closed"))?;
            if mid == id {
                got += 1;
                last = last.max(at);
            }
        }
        rounds.push(last.duration_since(t0).as_secs_f64() * 1e3);
    }
    readers.abort_all();
    rounds.sort_by(f64::total_cmp);
    Ok((percentile(&rounds, 50.0), percentile(&rounds, 99.0)))
}

type Reader = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Connect one subscriber to the `bench` room, wait for its welcome, and
/// return the task that reports each message id it receives.
async fn subscribe(
    addr: SocketAddr,
    cookie: &str,
    tx: mpsc::Sender<(u64, Instant)>,
) -> Result<Reader> {
    let mut request = format!("ws://{addr}{APP}/ws?room=bench").into_client_request()?;
    request.headers_mut().insert("cookie", cookie.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("welcome") => {}
        other => bail!("expected a welcome, got {other:?}"),
    }
    Ok(Box::pin(async move {
        while let Some(Ok(msg)) = socket.next().await {
            let at = Instant::now();
            if let Message::Text(t) = msg {
                let id = serde_json::from_str::<serde_json::Value>(t.as_str())
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                if let Some(id) = id {
                    if tx.send((id, at)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }))
}
