//! `kit bench chat`: the chat app on real nodes in this process. History
//! pages from a host's store, a 10,000-message room (disk, page times),
//! and the sustained rate into one room with five member nodes, each next
//! to a baseline measured in the same run: an echo round trip carrying the
//! same bytes as a page, the text bytes stored, and the rooms primitive's
//! own fan-out to durable subscribers (the probe) on the same nodes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hearth::api::PackageFile;
use hearth::Node;
use serde_json::{json, Value};

use super::ask::ask;
use super::net::{config, p2p_addr};
use super::table::{percentile, Row};

const CHAT: &str = "chat:chat:sys";
/// Messages of the big room.
const BIG: usize = 10_000;
/// Messages per `import` call.
const BATCH: usize = 500;
/// Pages timed per figure.
const PAGES: usize = 200;
/// Member nodes of the sustained-rate room, and messages sent into it.
const MEMBERS: usize = 5;
const SUSTAINED: usize = 500;
const TIMEOUT: Duration = Duration::from_secs(120);

/// A call to the chat on `node`: its `ok` value, or the error.
async fn call(node: &Node, method: &str, args: Value) -> Result<Value> {
    let reply = ask(node, CHAT, json!({ method: args }), TIMEOUT).await?;
    reply
        .get("ok")
        .cloned()
        .ok_or_else(|| anyhow!("{method}: {reply}"))
}

fn text(i: usize) -> String {
    format!("message {i:05}: the quick brown fox jumps over the lazy dog, twice over")
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Fills `room` with `count` messages through `import`; returns the last id.
async fn fill(node: &Node, room: &str, count: usize) -> Result<u64> {
    let mut last = 0;
    for start in (0..count).step_by(BATCH) {
        let texts: Vec<String> = (start..(start + BATCH).min(count)).map(text).collect();
        last = call(node, "import", json!({"room": room, "texts": texts}))
            .await?
            .as_u64()
            .context("import answers the last id")?;
    }
    Ok(last)
}

/// p50 in ms of `PAGES` pages of 50 before ids spread over `1..=last`
/// (`None`: the latest page each time), and the bytes of one page.
async fn page_times(node: &Node, room: &str, last: u64, latest: bool) -> Result<(f64, usize)> {
    let mut samples = Vec::with_capacity(PAGES);
    let mut bytes = 0;
    for i in 0..PAGES {
        let before = if latest {
            Value::Null
        } else {
            json!(51 + (i as u64 * 7919) % last.saturating_sub(50).max(1))
        };
        let t = Instant::now();
        let page = call(
            node,
            "messages",
            json!({"room": room, "limit": 50, "before_id": before}),
        )
        .await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = bytes.max(serde_json::to_vec(&page)?.len());
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), bytes))
}

/// p50 in ms of echo round trips carrying `bytes` each way.
async fn echo_times(node: &Node, bytes: usize) -> Result<f64> {
    let body = json!({"echo": {"message": "x".repeat(bytes)}});
    let mut samples = Vec::with_capacity(PAGES);
    for _ in 0..PAGES {
        let t = Instant::now();
        let reply = ask(node, "echo:echo:sys", body.clone(), TIMEOUT).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        if reply.get("ok").is_none() {
            return Err(anyhow!("echo: {reply}"));
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(percentile(&samples, 50.0))
}

/// Waits until `check` holds on every node, polling.
async fn until_all(nodes: &[Node], what: &str, check: impl AsyncCheck) -> Result<()> {
    let t = Instant::now();
    for node in nodes {
        while !check.holds(node).await? {
            if t.elapsed() > TIMEOUT {
                return Err(anyhow!("timed out waiting for {what} on {}", node.name()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

trait AsyncCheck {
    async fn holds(&self, node: &Node) -> Result<bool>;
}

/// A member's copy of `room` ends with message `id`.
struct CopyHas<'a> {
    room: &'a str,
    id: u64,
}

impl AsyncCheck for CopyHas<'_> {
    async fn holds(&self, node: &Node) -> Result<bool> {
        let rooms = call(node, "rooms", json!({})).await?;
        Ok(rooms.as_array().is_some_and(|rooms| {
            rooms.iter().any(|r| {
                r["address"] == self.room
                    && r["last_message"]["id"]
                        .as_u64()
                        .is_some_and(|id| id >= self.id)
            })
        }))
    }
}

/// The probe `sub` on a node recorded `count` events of `room`.
struct ProbeHas<'a> {
    owner: &'a str,
    room: &'a str,
    count: usize,
}

impl AsyncCheck for ProbeHas<'_> {
    async fn holds(&self, node: &Node) -> Result<bool> {
        let log = ask(node, "sub:probe:test", json!({"room_log": null}), TIMEOUT).await?;
        Ok(log["rooms"].as_array().is_some_and(|rooms| {
            rooms.iter().any(|r| {
                r["owner"] == self.owner
                    && r["room"] == self.room
                    && r["events"].as_array().map_or(0, |e| {
                        e.iter().filter(|ev| ev.get("event").is_some()).count()
                    }) >= self.count
            })
        }))
    }
}

fn probe_manifest() -> Value {
    let entry = |name: &str| {
        json!({"process_name": name, "process_wasm_path": "/probe.wasm", "on_exit": "None",
               "request_networking": true, "request_capabilities": [], "grant_capabilities": [], "public": true})
    };
    json!([entry("owner"), entry("sub")])
}

fn with_probe_manifest(probe: &[PackageFile]) -> Result<Vec<PackageFile>> {
    let mut files = probe.to_vec();
    let entry = files
        .iter_mut()
        .find(|f| f.path == "pkg/manifest.json")
        .ok_or_else(|| anyhow!("probe package has no manifest"))?;
    entry.bytes = serde_json::to_vec(&probe_manifest())?;
    Ok(files)
}

pub async fn run(
    host: &Node,
    chat: Vec<PackageFile>,
    echo: Vec<PackageFile>,
    probe: Vec<PackageFile>,
    home: &Path,
) -> Result<Vec<Row>> {
    let services = host.services();
    hearth::package::install(services, chat.clone()).await?;
    hearth::package::install(services, echo).await?;
    let probe = with_probe_manifest(&probe)?;
    hearth::package::install(services, probe.clone()).await?;
    let mut rows = Vec::new();

    // A room of 200 messages: pages of 50, next to echo carrying as much.
    let room = call(
        host,
        "create_room",
        json!({"name": "Small", "kind": "public"}),
    )
    .await?;
    let small = room["address"].as_str().context("address")?.to_string();
    let last = fill(host, &small, 200).await?;
    let (page50, page_bytes) = page_times(host, &small, last, false).await?;
    let echo50 = echo_times(host, page_bytes).await?;
    rows.push(
        Row::new("history page of 50 (200-message room), p50", "ms", page50)
            .baseline(format!("echo of the same {page_bytes} bytes"), echo50),
    );

    // 10,000 messages: store size and page times.
    let before = dir_bytes(home);
    let room = call(
        host,
        "create_room",
        json!({"name": "Big", "kind": "public"}),
    )
    .await?;
    let big = room["address"].as_str().context("address")?.to_string();
    let t = Instant::now();
    let last = fill(host, &big, BIG).await?;
    let import_rate = BIG as f64 / t.elapsed().as_secs_f64();
    let grown = dir_bytes(home).saturating_sub(before);
    let text_bytes: usize = (0..BIG).map(|i| text(i).len()).sum();
    rows.push(
        Row::new(
            "10,000-message room: host store growth on disk",
            "MB",
            grown as f64 / 1e6,
        )
        .baseline("message text bytes", text_bytes as f64 / 1e6),
    );
    let (old, bytes) = page_times(host, &big, last, false).await?;
    let (latest, _) = page_times(host, &big, last, true).await?;
    let echo_big = echo_times(host, bytes).await?;
    rows.push(
        Row::new("10,000-message room: page of 50 anywhere, p50", "ms", old)
            .baseline(format!("echo of the same {bytes} bytes"), echo_big),
    );
    rows.push(
        Row::new(
            "10,000-message room: latest page (room open), p50",
            "ms",
            latest,
        )
        .baseline(format!("echo of the same {bytes} bytes"), echo_big),
    );
    rows.push(Row::new(
        "host ordering + storing + publishing (import, one node)",
        "msg/s",
        import_rate,
    ));

    // Five member nodes in one room.
    let addr = p2p_addr(host).await?;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let name = format!("m{i}.os");
        let dir = home.join(&name);
        let node = Node::start(config(&dir, &name, vec![addr.clone()])).await?;
        hearth::package::install(node.services(), chat.clone()).await?;
        hearth::package::install(node.services(), probe.clone()).await?;
        members.push(node);
    }
    let measured = sustained(host, &members).await;
    for node in members {
        node.shutdown().await;
    }
    rows.extend(measured?);
    Ok(rows)
}

async fn sustained(host: &Node, members: &[Node]) -> Result<Vec<Row>> {
    let room = call(
        host,
        "create_room",
        json!({"name": "Busy", "kind": "public"}),
    )
    .await?;
    let busy = room["address"].as_str().context("address")?.to_string();
    for node in members {
        let t = Instant::now();
        loop {
            match call(node, "join", json!({"address": busy})).await {
                Ok(_) => break,
                Err(e) if t.elapsed() < TIMEOUT => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let joined = call(host, "rooms", json!({})).await?;
    let start_id = joined
        .as_array()
        .and_then(|r| r.iter().find(|r| r["address"] == busy.as_str()))
        .and_then(|r| r["last_message"]["id"].as_u64())
        .unwrap_or(0);
    until_all(
        members,
        "the joins",
        CopyHas {
            room: &busy,
            id: start_id,
        },
    )
    .await?;
    let t = Instant::now();
    let last = fill(host, &busy, SUSTAINED).await?;
    until_all(
        members,
        "every message",
        CopyHas {
            room: &busy,
            id: last,
        },
    )
    .await?;
    let chat_rate = SUSTAINED as f64 / t.elapsed().as_secs_f64();

    // Baseline: the rooms primitive alone, the probe publishing acked
    // events to the probes of the same five nodes, each recording every
    // event durably.
    let owner = format!("{}@owner:probe:test", host.name());
    for node in members {
        let t = Instant::now();
        loop {
            let reply = ask(
                node,
                "sub:probe:test",
                json!({"watch": {"owner": owner, "room": "busy", "from": null}}),
                TIMEOUT,
            )
            .await?;
            if reply["Ok"]["Joined"].is_object() {
                break;
            }
            if t.elapsed() > TIMEOUT {
                return Err(anyhow!("probe watch: {reply}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let t = Instant::now();
    let reply = ask(
        host,
        "owner:probe:test",
        json!({"publish_n": {"room": "busy", "count": SUSTAINED, "pad": 64}}),
        TIMEOUT,
    )
    .await?;
    if reply["ok"]["seqs"].is_null() {
        return Err(anyhow!("publish_n: {reply}"));
    }
    let check = ProbeHas {
        owner: &owner,
        room: "busy",
        count: SUSTAINED,
    };
    until_all(members, "the probe events", check).await?;
    let rooms_rate = SUSTAINED as f64 / t.elapsed().as_secs_f64();
    Ok(vec![Row::new(
        "sustained into one room, all 5 member nodes' copies stored",
        "msg/s",
        chat_rate,
    )
    .baseline(
        "rooms publish to 5 durable probe subscribers",
        rooms_rate,
    )])
}
