//! `kit bench http`: HTTP requests to a process endpoint (the notebook's
//! authenticated `GET /api/notes/:key`, an `#[app]` method) next to a plain
//! axum handler measured in the same run, and the time for one publish (a
//! `PUT` of a note, which the notebook publishes to its `notes` WebSocket
//! topic) to reach 1,000 WebSocket subscribers, next to a plain axum WebSocket feed fed by a
//! tokio broadcast channel, with the same client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use hearth::api::PackageFile;
use hearth::Node;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::loadgen;
use super::local::allocations;
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
/// Read buffer of each subscriber's socket (the frames are a few bytes).
const CLIENT_READ_BUFFER: usize = 4 * 1024;
/// Publishes the baseline's broadcast channel holds for a slow reader.
const BASELINE_FEED: usize = 64;

const APP: &str = "/notebook:notebook:sys";
/// The note read by the load rows.
const NOTE: &str = "/api/notes/bench";

pub async fn run(node: &Node, notebook: Vec<PackageFile>) -> Result<Vec<Row>> {
    hearth::package::install(node.services(), notebook)
        .await
        .context("install notebook")?;
    let addr = node.http_addr();
    wait_until_bound(addr).await?;
    let cookie = login(addr).await?;
    put_note(addr, &cookie, "bench").await?;
    // Both servers get the same request bytes (the baseline ignores the
    // cookie), from the same client, over the same number of connections.
    let headers = [("cookie", cookie.as_str())];

    if let Some(solo) = solo_side() {
        return solo_load(solo, addr, &headers).await;
    }
    let baseline_addr = plain_axum().await?;
    // Warm both up, then measure each in turn on the same machine.
    let ours_path = format!("{APP}{NOTE}");
    let warm = Duration::from_millis(500);
    loadgen::run_with(baseline_addr, "/health", &headers, CONNECTIONS, warm).await?;
    loadgen::run_with(addr, &ours_path, &headers, CONNECTIONS, warm).await?;
    let before = allocations();
    let base =
        loadgen::run_with(baseline_addr, "/health", &headers, CONNECTIONS, LOAD_TIME).await?;
    let base_allocations = per_request(allocations() - before, &base);
    let before = allocations();
    let ours = loadgen::run_with(addr, &ours_path, &headers, CONNECTIONS, LOAD_TIME).await?;
    let ours_allocations = per_request(allocations() - before, &ours);

    let mut rows = vec![
        Row::new(
            format!(
                "HTTP GET to a process endpoint (authenticated), {CONNECTIONS} keep-alive connections"
            ),
            "req/s",
            ours.requests_per_sec,
        )
        .baseline("plain axum handler", base.requests_per_sec)
        .target(Better::Higher, 0.75 * base.requests_per_sec),
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
        // What the req/s ratio stands for when both sides share the cores:
        // CPU per request, server and load generator together. Steadier
        // than req/s while other work runs on the machine.
        Row::new(
            "HTTP GET to a process endpoint, CPU per request (node + client)",
            "us",
            ours.cpu_us_per_request,
        )
        .baseline("plain axum handler", base.cpu_us_per_request),
        // Counted by kit's allocator over the same runs; the client's own
        // allocations are in both.
        Row::new(
            "HTTP GET to a process endpoint, host allocations per request (node + client)",
            "alloc",
            ours_allocations,
        )
        .baseline("plain axum handler", base_allocations),
    ];
    let base = publish_fan_out(
        &Feed::Plain {
            addr: baseline_addr,
        },
        PUBLISHES,
        || (),
    )
    .await?;
    let ours = publish_fan_out(
        &Feed::Notebook {
            addr,
            cookie: cookie.as_str().into(),
        },
        PUBLISHES,
        || (),
    )
    .await?;
    let (p50, p99, base50, base99) = (ours.last_p50, ours.last_p99, base.last_p50, base.last_p99);
    const BROADCAST: &str = "plain axum + tokio broadcast, same client";
    rows.push(
        Row::new(
            format!("one publish reaching all of {SUBSCRIBERS} WebSocket subscribers, p50"),
            "ms",
            p50,
        )
        .baseline(BROADCAST, base50)
        .target(Better::Lower, 5.0),
    );
    rows.push(
        Row::new(
            format!("one publish reaching all of {SUBSCRIBERS} WebSocket subscribers, p99"),
            "ms",
            p99,
        )
        .baseline(BROADCAST, base99),
    );
    rows.push(
        Row::new(
            "one publish reaching the first WebSocket subscriber, p50",
            "ms",
            ours.first_p50,
        )
        .baseline(BROADCAST, base.first_p50),
    );
    // As CPU per request above: steadier than the latency while other
    // work shares the cores.
    rows.push(
        Row::new(
            "one publish to all WebSocket subscribers, CPU (node + client)",
            "ms",
            ours.cpu_ms_per_publish,
        )
        .baseline(BROADCAST, base.cpu_ms_per_publish),
    );
    Ok(rows)
}

/// `allocations` made over `load`'s run, per request it completed.
fn per_request(allocations: u64, load: &loadgen::Load) -> f64 {
    allocations as f64 / load.latencies_us.len().max(1) as f64
}

/// `KIT_BENCH_HTTP_SOLO=hearth` or `=axum`: load only that side, for
/// `SOLO_TIME`, saying on stderr when the timed window starts and ends, so
/// a profiler (`perf record -p`) can cover one side alone.
fn solo_side() -> Option<String> {
    std::env::var("KIT_BENCH_HTTP_SOLO").ok()
}

/// Length of a solo load window.
const SOLO_TIME: Duration = Duration::from_secs(10);

async fn solo_load(side: String, addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Vec<Row>> {
    let ours_path = format!("{APP}{NOTE}");
    if let Some(feed) = side.strip_suffix("-ws") {
        return solo_publish(feed, addr).await;
    }
    let (addr, path) = match side.as_str() {
        "hearth" => (addr, ours_path.as_str()),
        "axum" => (plain_axum().await?, "/health"),
        other => bail!("KIT_BENCH_HTTP_SOLO={other}: expected hearth or axum"),
    };
    loadgen::run_with(addr, path, headers, CONNECTIONS, Duration::from_millis(500)).await?;
    eprintln!(
        "kit bench http: {side} load starts (pid {})",
        std::process::id()
    );
    let load = loadgen::run_with(addr, path, headers, CONNECTIONS, SOLO_TIME).await?;
    eprintln!("kit bench http: {side} load ends");
    Ok(vec![
        Row::new(
            format!("HTTP GET, {side} alone, {CONNECTIONS} keep-alive connections"),
            "req/s",
            load.requests_per_sec,
        ),
        Row::new(
            format!("HTTP GET, {side} alone, CPU per request (node + client)"),
            "us",
            load.cpu_us_per_request,
        ),
    ])
}

/// Publishes of a solo publish window (`hearth-ws`, `axum-ws`).
const SOLO_PUBLISHES: usize = 300;

/// `KIT_BENCH_HTTP_SOLO=hearth-ws` or `=axum-ws`: only the publish rows,
/// for [`SOLO_PUBLISHES`] publishes, the window marked on stderr.
async fn solo_publish(side: &str, addr: SocketAddr) -> Result<Vec<Row>> {
    let feed = match side {
        "hearth" => {
            let cookie = login(addr).await?;
            Feed::Notebook {
                addr,
                cookie: cookie.as_str().into(),
            }
        }
        "axum" => Feed::Plain {
            addr: plain_axum().await?,
        },
        other => bail!("KIT_BENCH_HTTP_SOLO={other}-ws: expected hearth-ws or axum-ws"),
    };
    let fan = publish_fan_out(&feed, SOLO_PUBLISHES, || {
        eprintln!(
            "kit bench http: {side} publishes start (pid {})",
            std::process::id()
        )
    })
    .await?;
    eprintln!("kit bench http: {side} publishes end");
    Ok(vec![
        Row::new(
            format!("one publish reaching all of {SUBSCRIBERS} WebSocket subscribers, {side} alone, p50"),
            "ms",
            fan.last_p50,
        ),
        Row::new(
            format!("one publish reaching the first WebSocket subscriber, {side} alone, p50"),
            "ms",
            fan.first_p50,
        ),
        Row::new(
            format!("CPU per publish, {side} alone (node + client)"),
            "ms",
            fan.cpu_ms_per_publish,
        ),
    ])
}

/// Until the notebook bound its paths: 401 (authenticated) instead of 404.
async fn wait_until_bound(addr: SocketAddr) -> Result<()> {
    for _ in 0..200 {
        if let Ok((401, _, _)) = loadgen::once(addr, "GET", &format!("{APP}{NOTE}"), &[], b"").await
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the notebook did not bind {APP}{NOTE}")
}

/// Store note `key`; the notebook publishes `key` to its `notes` topic.
async fn put_note(addr: SocketAddr, cookie: &str, key: &str) -> Result<()> {
    let (status, _, reply) = loadgen::once(
        addr,
        "PUT",
        &format!("{APP}/api/notes/{key}"),
        &[("cookie", cookie), ("content-type", "application/json")],
        br#"{"text":"bench note","kind":"plain"}"#,
    )
    .await?;
    if status != 200 {
        bail!(
            "PUT {key} answered {status}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(())
}

/// The baseline: an axum server on loopback, in this process and runtime,
/// answering the same JSON body from a handler (`/health`), and a
/// WebSocket feed (`/ws`) where `PUT /publish/{key}` sends `key` to a tokio
/// broadcast channel that each connection's task forwards to its socket.
async fn plain_axum() -> Result<SocketAddr> {
    use axum::extract::ws::{Message as WsMessage, Utf8Bytes as Frame, WebSocketUpgrade};
    use axum::extract::{Path, State};
    use axum::routing::{get, put};
    let (feed, _) = broadcast::channel::<Frame>(BASELINE_FEED);
    let app = axum::Router::new()
        .route(
            "/health",
            get(|| async { ([("content-type", "application/json")], r#"{"ok":true}"#) }),
        )
        .route(
            "/ws",
            get(
                |State(feed): State<broadcast::Sender<Frame>>, ws: WebSocketUpgrade| async move {
                    let mut rx = feed.subscribe();
                    ws.on_upgrade(move |mut socket| async move {
                        while let Ok(text) = rx.recv().await {
                            if socket.send(WsMessage::Text(text)).await.is_err() {
                                break;
                            }
                        }
                    })
                },
            ),
        )
        .route(
            "/publish/{key}",
            put(
                |State(feed): State<broadcast::Sender<Frame>>, Path(key): Path<String>| async move {
                    let _ = feed.send(key.into());
                    "ok"
                },
            ),
        )
        .with_state(feed);
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

/// Where the publish rows send a publish and open their subscribers: the
/// notebook (a note `PUT`, which it publishes to its `notes` topic), or
/// the plain axum baseline (a `PUT` its handler sends to a tokio broadcast
/// channel that every connection's task forwards).
#[derive(Clone)]
enum Feed {
    Notebook { addr: SocketAddr, cookie: Arc<str> },
    Plain { addr: SocketAddr },
}

impl Feed {
    async fn publish(&self, key: &str) -> Result<()> {
        match self {
            Feed::Notebook { addr, cookie } => put_note(*addr, cookie, key).await,
            Feed::Plain { addr } => {
                let (status, _, _) =
                    loadgen::once(*addr, "PUT", &format!("/publish/{key}"), &[], b"").await?;
                if status != 200 {
                    bail!("baseline publish answered {status}");
                }
                Ok(())
            }
        }
    }

    async fn subscribe(&self, tx: mpsc::Sender<Receipt>) -> Result<Reader> {
        match self {
            Feed::Notebook { addr, cookie } => {
                subscribe(&format!("ws://{addr}{APP}/ws"), Some(cookie), tx).await
            }
            Feed::Plain { addr } => subscribe(&format!("ws://{addr}/ws"), None, tx).await,
        }
    }
}

/// What a subscriber reports: the text it got, which subscriber it is,
/// and when it got it.
type Receipt = (Utf8Bytes, usize, Instant);

/// What the publish rows measured, in ms from the publishing HTTP call.
struct FanOut {
    /// Until the last subscriber had the key.
    last_p50: f64,
    last_p99: f64,
    /// Until the first one had it: the path before the fan-out.
    first_p50: f64,
    /// CPU time of this whole process per timed publish, in ms.
    cpu_ms_per_publish: f64,
}

/// Open `SUBSCRIBERS` WebSockets on `feed`, then time `publishes`
/// publishes from the HTTP call until the first and the last subscriber
/// have the key (`timed_start` is called before the first).
async fn publish_fan_out(
    feed: &Feed,
    publishes: usize,
    timed_start: impl FnOnce(),
) -> Result<FanOut> {
    let (receipt_tx, mut receipt_rx) = mpsc::channel::<Receipt>(RECEIPTS);
    let mut connecting = JoinSet::new();
    let mut readers = JoinSet::new();
    for i in 0..SUBSCRIBERS {
        if connecting.len() >= CONNECT_CONCURRENCY {
            let ready = connecting.join_next().await.context("no connect task")?;
            readers.spawn(ready.context("connect task")??);
        }
        let (feed, tx) = (feed.clone(), receipt_tx.clone());
        connecting.spawn(async move {
            feed.subscribe(tx)
                .await
                .with_context(|| format!("subscriber {i}"))
        });
    }
    while let Some(ready) = connecting.join_next().await {
        readers.spawn(ready.context("connect task")??);
    }
    drop(receipt_tx);
    // Every subscriber's open event reached the notebook (which joins it
    // to the topic) once a warm-up publish reaches them all.
    let warm = Instant::now();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < SUBSCRIBERS {
        feed.publish("warm").await?;
        let round = Instant::now();
        while round.elapsed() < Duration::from_millis(500) && seen.len() < SUBSCRIBERS {
            if let Ok(Some((key, who, _))) =
                tokio::time::timeout(Duration::from_millis(100), receipt_rx.recv()).await
            {
                if key.as_str() == "warm" {
                    seen.insert(who);
                }
            }
        }
        if warm.elapsed() > Duration::from_secs(30) {
            bail!(
                "only {} of {SUBSCRIBERS} subscribers joined the feed",
                seen.len()
            );
        }
    }
    while receipt_rx.try_recv().is_ok() {}

    let mut rounds = Vec::with_capacity(publishes);
    let mut firsts = Vec::with_capacity(publishes);
    timed_start();
    let cpu_before = loadgen::process_cpu_us();
    for n in 0..publishes {
        let key = format!("bench-{n}");
        let t0 = Instant::now();
        feed.publish(&key).await?;
        let mut got = 0;
        let mut last = t0;
        let mut first: Option<Instant> = None;
        while got < SUBSCRIBERS {
            let (seen, _, at) = tokio::time::timeout(Duration::from_secs(10), receipt_rx.recv())
                .await
                .context("subscribers did not all receive the publish")?
                .ok_or_else(|| anyhow!("subscribers closed"))?;
            if seen.as_str() == key {
                got += 1;
                last = last.max(at);
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        rounds.push(last.duration_since(t0).as_secs_f64() * 1e3);
        firsts.push(first.unwrap_or(last).duration_since(t0).as_secs_f64() * 1e3);
    }
    let cpu_ms_per_publish = (loadgen::process_cpu_us() - cpu_before) / 1e3 / publishes as f64;
    readers.abort_all();
    while readers.join_next().await.is_some() {}
    rounds.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    Ok(FanOut {
        last_p50: percentile(&rounds, 50.0),
        last_p99: percentile(&rounds, 99.0),
        first_p50: percentile(&firsts, 50.0),
        cpu_ms_per_publish,
    })
}

type Reader = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Connect one subscriber to `url` and return the task that reports each
/// text it receives.
async fn subscribe(url: &str, cookie: Option<&str>, tx: mpsc::Sender<Receipt>) -> Result<Reader> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let me = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut request = url.into_client_request()?;
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse()?);
    }
    // tungstenite zero-fills its whole read buffer (128 KiB by default)
    // before every read: 4 KiB keeps the client's share of the figure small.
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    Ok(Box::pin(async move {
        while let Some(Ok(msg)) = socket.next().await {
            let at = Instant::now();
            if let Message::Text(t) = msg {
                if tx.send((t, me, at)).await.is_err() {
                    break;
                }
            }
        }
    }))
}
