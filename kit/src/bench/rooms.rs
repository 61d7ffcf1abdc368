//! `kit bench rooms`: live rooms (`rooms:distro:sys`) on one node and
//! across in-process nodes over loopback. Publishers and subscribers are
//! native endpoints registered in-process ([`Recorder`]): each admits every
//! join and timestamps every `room_event` it receives. The baselines are
//! plain `NativeEndpoint::tell`s between the same kind of endpoints,
//! carrying the very body the hub would deliver, measured in the same run.
//!
//! Any receipt out of sequence (a missing, repeated or reordered event, a
//! `gap`, `lagged` or `offline`) fails the row with what arrived instead, so
//! a figure is never computed over events the hub lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::future::{join_all, try_join_all};
use hearth::kernel::caps::ProcessCaps;
use hearth::native::{NativeEndpoint, Reply, ReplyFuture, Service};
use hearth::rooms::{RoomDelivery, RoomEvent, RoomsError, RoomsRequest, RoomsResponse};
use hearth::types::{Address, KernelMessage, Message, ProcessId};
use hearth::Node;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::net::{config, p2p_addr};
use super::table::{median, percentile, Better, Row};

/// Events timed one at a time in each latency row, after [`WARMUP`].
const PINGS: u64 = 10_000;
const WARMUP: u64 = 200;
/// Subscribing nodes, and subscriber endpoints on each, of the fan-out row.
const FAN_NODES: usize = 10;
const FAN_PER_NODE: usize = 100;
/// Publishes timed in the fan-out row, after [`FAN_WARMUP`].
const FAN_PUBLISHES: u64 = 50;
const FAN_WARMUP: u64 = 3;
/// Events of the throughput rows.
const STREAM: u64 = 100_000;
/// Turns the sustained two-node stream and its plain-tell baseline take,
/// one after the other; each row reports its median turn, so neither
/// side alone meets a colder link or a busier moment of the machine.
const STREAM_TURNS: u64 = 3;
/// Events sent but not yet received in the throughput rows: below
/// `hearth::native::SERVICE_BACKLOG`, so no endpoint on the way (either
/// hub, the subscriber) refuses a fire-and-forget message for a full
/// backlog, which would drop it.
const WINDOW: u64 = 512;
/// Events published while the subscriber is away, per resume round (the
/// owner's tail keeps 1,024), and the rounds timed.
const MISSED: u64 = 1_000;
const RESUMES: usize = 11;
/// Bytes of each event's payload (a JSON string), as `kit bench net`.
const PAYLOAD: usize = 64;
/// Receipts queued from the recorders to the measuring task: more than any
/// row has in flight at once (1,000 fan-out deliveries, one replay of
/// 1,000), so a recorder never waits on it.
const SEEN_CHANNEL: usize = 16 * 1024;
/// Longest wait for any one expected receipt before the row fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a subscriber on a freshly booted node retries its first
/// subscribe while the nodes find each other.
const MEET_WITHIN: Duration = Duration::from_secs(20);
const PACKAGE: &str = "roomsbench";
const PUBLISHER: &str = "sys";

/// What a recorder received: an event's sequence number, or anything else.
#[derive(Debug, PartialEq)]
enum Got {
    Event(u64),
    Other(String),
}

#[derive(Debug)]
struct Seen {
    /// Which recorder.
    who: usize,
    got: Got,
    at: Instant,
}

/// The requests a recorder understands.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Incoming {
    RoomJoin(IgnoredAny),
    RoomEvent(RoomDelivery),
}

/// A native endpoint's service: admits every join, and sends the moment
/// of every `room_event` to the measuring task.
struct Recorder {
    who: usize,
    seen_tx: mpsc::Sender<Seen>,
}

impl Service for Recorder {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            let at = Instant::now();
            let Message::Request(request) = &km.message else {
                return None;
            };
            match serde_json::from_slice::<Incoming>(&request.body) {
                Ok(Incoming::RoomJoin(_)) => Some(Reply::json(&json!({ "ok": null }))),
                Ok(Incoming::RoomEvent(delivery)) => {
                    let got = match delivery.event {
                        RoomEvent::Event { seq, .. } => Got::Event(seq),
                        other => Got::Other(format!("{other:?}")),
                    };
                    let seen = Seen {
                        who: self.who,
                        got,
                        at,
                    };
                    let _ = self.seen_tx.send(seen).await;
                    None
                }
                Err(e) => Some(Reply::json(&json!({ "error": e.to_string() }))),
            }
        })
    }
}

/// Register the native endpoint `name:roomsbench:sys` on `node`, public
/// and networked, recording as `who`.
fn recorder(
    node: &Node,
    name: &str,
    who: usize,
    seen_tx: &mpsc::Sender<Seen>,
) -> Result<Arc<NativeEndpoint>> {
    let caps = ProcessCaps {
        public: true,
        networking: true,
        system: false,
    };
    let service = Arc::new(Recorder {
        who,
        seen_tx: seen_tx.clone(),
    });
    NativeEndpoint::start(
        node.services(),
        ProcessId::new(name, PACKAGE, PUBLISHER),
        caps,
        Some(service),
    )
    .map_err(|e| anyhow!("register {name} on {}: {e}", node.name()))
}

fn hub(node: &Node) -> Address {
    Address::new(node.name(), hearth::rooms::process_id())
}

fn payload() -> Value {
    Value::String("x".repeat(PAYLOAD))
}

fn publish_body(room: &str) -> Vec<u8> {
    publish_body_with(room, false)
}

/// A publish to a durable room when `durable`: its tail in the state store.
fn publish_body_with(room: &str, durable: bool) -> Vec<u8> {
    let publish = RoomsRequest::Publish {
        room: room.into(),
        payload: payload(),
        durable,
    };
    serde_json::to_vec(&publish).unwrap_or_default()
}

/// The body the hub delivers for event `seq`: what the baselines send.
fn delivery_body(owner: &Address, room: &str, seq: u64) -> Vec<u8> {
    let delivery = RoomDelivery {
        owner: owner.to_string(),
        room: room.into(),
        event: RoomEvent::Event {
            seq,
            payload: payload(),
        },
    };
    serde_json::to_vec(&json!({ "room_event": delivery })).unwrap_or_default()
}

/// Ask `hub` (the asker's own node's) something and read its answer.
async fn ask_hub(
    from: &NativeEndpoint,
    hub: &Address,
    request: &RoomsRequest,
) -> Result<RoomsResponse> {
    let body = serde_json::to_vec(request)?;
    let (_, km) = from
        .ask(hub.clone(), body, None, Duration::from_secs(30))
        .await?;
    let Message::Response(response) = km.message else {
        bail!("the hub sent a request instead of an answer");
    };
    serde_json::from_slice::<Result<RoomsResponse, RoomsError>>(&response.body)?
        .map_err(|e| anyhow!("{request:?}: {e}"))
}

async fn subscribe(
    sub: &NativeEndpoint,
    hub: &Address,
    owner: &Address,
    room: &str,
    from: Option<u64>,
) -> Result<u64> {
    let request = RoomsRequest::Subscribe {
        owner: owner.to_string(),
        room: room.into(),
        from,
    };
    match ask_hub(sub, hub, &request).await? {
        RoomsResponse::Joined { next, .. } => Ok(next),
        other => bail!("subscribe to {room}: {other:?}"),
    }
}

/// Subscribe, retrying for [`MEET_WITHIN`] while the nodes meet.
async fn subscribe_when_met(
    sub: &NativeEndpoint,
    hub: &Address,
    owner: &Address,
    room: &str,
) -> Result<u64> {
    let t = Instant::now();
    loop {
        match subscribe(sub, hub, owner, room, None).await {
            Ok(next) => return Ok(next),
            Err(e) if t.elapsed() > MEET_WITHIN => {
                return Err(e.context(format!("{} never joined", sub.address())))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn next_seen(rx: &mut mpsc::Receiver<Seen>) -> Result<Seen> {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .map_err(|_| anyhow!("nothing received within {PATIENCE:?}"))?
        .ok_or_else(|| anyhow!("every recorder is gone"))
}

/// The next receipt, which must be event `seq`.
async fn expect(rx: &mut mpsc::Receiver<Seen>, seq: u64) -> Result<Seen> {
    let seen = next_seen(rx)
        .await
        .with_context(|| format!("waiting for event {seq}"))?;
    if seen.got != Got::Event(seq) {
        bail!(
            "expected event {seq}, recorder {} got {:?}",
            seen.who,
            seen.got
        );
    }
    Ok(seen)
}

/// p50 and p99 µs from telling `to` the body of event `first + i` until a
/// recorder has it, one event at a time.
async fn one_by_one(
    from: &NativeEndpoint,
    to: &Address,
    body: impl Fn(u64) -> Vec<u8>,
    rx: &mut mpsc::Receiver<Seen>,
    first: u64,
) -> Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(PINGS as usize);
    for i in 0..WARMUP + PINGS {
        let body = body(first + i);
        let t = Instant::now();
        from.tell(to.clone(), body, None)?;
        let seen = expect(rx, first + i).await?;
        if i >= WARMUP {
            samples.push(seen.at.duration_since(t).as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 50.0), percentile(&samples, 99.0)))
}

/// Events per second from the first tell to the last receipt, with at most
/// [`WINDOW`] in flight.
async fn stream(
    from: &NativeEndpoint,
    to: &Address,
    body: impl Fn(u64) -> Vec<u8>,
    rx: &mut mpsc::Receiver<Seen>,
    first: u64,
) -> Result<f64> {
    let (mut sent, mut got) = (0, 0);
    let start = Instant::now();
    let mut last = start;
    while got < STREAM {
        while sent < STREAM && sent - got < WINDOW {
            from.tell(to.clone(), body(first + sent), None)
                .with_context(|| format!("send event {}", first + sent))?;
            sent += 1;
        }
        last = expect(rx, first + got).await?.at;
        got += 1;
    }
    Ok(STREAM as f64 / last.duration_since(start).as_secs_f64())
}

pub async fn run(a: &Node) -> Result<Vec<Row>> {
    let base = std::env::temp_dir().join(format!("hearth-bench-rooms-{}", std::process::id()));
    let mut nodes = Vec::new();
    let result = measure(a, &base, &mut nodes).await;
    // All at once: a node whose hub holds or serves a `Hold` waits out
    // `Node::shutdown`'s 5 s for its services to be released, which one
    // node after another would add up to most of a minute.
    join_all(nodes.into_iter().map(Node::shutdown)).await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

async fn boot(a_addr: &str, base: &std::path::Path, i: usize) -> Result<Node> {
    let name = format!("sub-{i}.os");
    let config = config(&base.join(&name), &name, vec![a_addr.to_string()]);
    Node::start(config)
        .await
        .with_context(|| format!("boot {name}"))
}

/// The rows, in order; the nodes it boots go into `nodes` (the first is
/// the other node of the two-node rows).
async fn measure(a: &Node, base: &std::path::Path, nodes: &mut Vec<Node>) -> Result<Vec<Row>> {
    let (seen_tx, mut rx) = mpsc::channel(SEEN_CHANNEL);
    let owner = recorder(a, "owner", usize::MAX, &seen_tx)?;
    let owner_addr = owner.address().clone();
    let body = |room: &'static str| move |_: u64| publish_body(room);
    let delivery = |room: &'static str| {
        let owner_addr = owner_addr.clone();
        move |seq: u64| delivery_body(&owner_addr, room, seq)
    };

    // One node, before any other boots.
    let local = recorder(a, "local", 0, &seen_tx)?;
    let plain = recorder(a, "plain", 1, &seen_tx)?;
    let next = subscribe(&local, &hub(a), &owner_addr, "local", None).await?;
    let (l50, l99) = one_by_one(&owner, &hub(a), body("local"), &mut rx, next).await?;
    let to = plain.address().clone();
    let (lb50, lb99) = one_by_one(&owner, &to, delivery("local"), &mut rx, 1).await?;
    // The same through a durable room: each event on disk before it goes
    // out (one group commit per batch of queued events).
    let keeper = recorder(a, "durable", 6, &seen_tx)?;
    let durable = |_: u64| publish_body_with("durable", true);
    let next = subscribe(&keeper, &hub(a), &owner_addr, "durable", None).await?;
    let (d50, d99) = one_by_one(&owner, &hub(a), durable, &mut rx, next).await?;
    let d_rate = stream(&owner, &hub(a), durable, &mut rx, next + WARMUP + PINGS).await?;

    // Two nodes.
    let a_addr = p2p_addr(a).await?;
    nodes.push(boot(&a_addr, base, 0).await?);
    let b = &nodes[0];
    let remote = recorder(b, "remote", 2, &seen_tx)?;
    let far = recorder(b, "plain", 3, &seen_tx)?;
    let next = subscribe_when_met(&remote, &hub(b), &owner_addr, "remote").await?;
    let (r50, r99) = one_by_one(&owner, &hub(a), body("remote"), &mut rx, next).await?;
    let to = far.address().clone();
    let (rb50, rb99) = one_by_one(&owner, &to, delivery("remote"), &mut rx, 1).await?;

    let streamer = recorder(b, "stream", 4, &seen_tx)?;
    let next = subscribe(&streamer, &hub(b), &owner_addr, "stream", None).await?;
    if let Ok(side) = std::env::var("KIT_BENCH_ROOMS_SOLO") {
        let (to, body): (Address, Box<dyn Fn(u64) -> Vec<u8>>) = match side.as_str() {
            "hub" => (hub(a), Box::new(body("stream"))),
            "tell" => (to, Box::new(delivery("stream"))),
            other => bail!("KIT_BENCH_ROOMS_SOLO={other}: expected hub or tell"),
        };
        return solo_stream(&side, &owner, &to, body, &mut rx, next).await;
    }
    let (mut rates, mut base_rates) = (Vec::new(), Vec::new());
    for turn in 0..STREAM_TURNS {
        let first = next + turn * STREAM;
        rates.push(stream(&owner, &hub(a), body("stream"), &mut rx, first).await?);
        let first = 1 + turn * STREAM;
        base_rates.push(stream(&owner, &to, delivery("stream"), &mut rx, first).await?);
    }
    let (rate, base_rate) = (median(rates), median(base_rates));

    let resumer = recorder(b, "resume", 5, &seen_tx)?;
    let resume = resume(&owner, a, &resumer, b, &mut rx).await?;

    // Eleven nodes: nine more subscribing nodes.
    for i in 1..FAN_NODES {
        nodes.push(boot(&a_addr, base, i).await?);
    }
    let (fan50, fan99, relays) = fan_out(&owner, a, nodes).await?;

    let label = |what: &str| format!("{what} (native endpoints)");
    let fanned = FAN_NODES * FAN_PER_NODE;
    Ok(vec![
        Row::new(label("publish to one subscriber on the same node, p50"), "us", l50)
            .baseline("native tell to a native endpoint, same node", lb50)
            .target(Better::Lower, 1.5 * lb50),
        Row::new(label("publish to a durable room, one subscriber, same node, p50"), "us", d50)
            .baseline("the same publish to an in-memory room", l50),
        Row::new(label("publish to a durable room, one subscriber, same node, p99"), "us", d99)
            .baseline("the same publish to an in-memory room", l99),
        Row::new(label("events per second, one durable room, one subscriber, same node"), "event/s", d_rate)
            .baseline("one in-memory room, one remote subscriber", rate),
        Row::new(label("publish to one subscriber on the same node, p99"), "us", l99)
            .baseline("native tell to a native endpoint, same node", lb99),
        Row::new(label("publish to one subscriber on another node, p50"), "us", r50)
            .baseline("native tell across two nodes", rb50)
            .target(Better::Lower, 40.0),
        Row::new(label("publish to one subscriber on another node, p99"), "us", r99)
            .baseline("native tell across two nodes", rb99),
        Row::new(
            label(&format!(
                "publish to {fanned} subscribers ({FAN_NODES} nodes x {FAN_PER_NODE}, \
                 {relays:.1} relays per event), until the last has it, p50"
            )),
            "ms",
            fan50,
        )
        .target(Better::Lower, 20.0),
        Row::new(
            label(&format!("publish to {fanned} subscribers, until the last has it, p99")),
            "ms",
            fan99,
        ),
        Row::new(
            label(&format!(
                "events per second, one room, one remote subscriber, sustained, \
                 median of {STREAM_TURNS} turns"
            )),
            "event/s",
            rate,
        )
        .baseline("native tells across two nodes", base_rate)
        .target(Better::Higher, 0.8 * base_rate),
        Row::new(
            label(&format!(
                "resume after a reconnect with {MISSED} missed events, until caught up, p50 of {RESUMES}"
            )),
            "ms",
            resume,
        )
        .target(Better::Lower, 50.0),
    ])
}

/// Rounds of a solo stream window.
const SOLO_ROUNDS: u64 = 10;

/// `KIT_BENCH_ROOMS_SOLO=hub` or `=tell`: only the sustained two-node
/// stream, through the hubs or as plain tells, for [`SOLO_ROUNDS`] rounds
/// of [`STREAM`] events, the window marked on stderr, so a profiler
/// (`perf record -p`) can cover one path alone.
async fn solo_stream(
    side: &str,
    from: &NativeEndpoint,
    to: &Address,
    body: impl Fn(u64) -> Vec<u8>,
    rx: &mut mpsc::Receiver<Seen>,
    next: u64,
) -> Result<Vec<Row>> {
    // The baseline's events count from 1, the room's from its next seq.
    let first = if side == "tell" { 1 } else { next };
    stream(from, to, &body, rx, first).await?;
    eprintln!(
        "kit bench rooms: {side} stream starts (pid {})",
        std::process::id()
    );
    let mut rates = Vec::new();
    let allocations = super::local::allocations();
    for round in 1..=SOLO_ROUNDS {
        rates.push(stream(from, to, &body, rx, first + round * STREAM).await?);
    }
    // Host allocations, both nodes and the bench's own (the bodies it
    // builds, the receipts): a count the machine's load does not move.
    let per_event = super::local::allocations_per(allocations, SOLO_ROUNDS * STREAM);
    eprintln!("kit bench rooms: {side} stream ends, {per_event:.2} host allocations per event");
    Ok(vec![Row::new(
        format!("events per second, {side} alone, median of {SOLO_ROUNDS} rounds"),
        "event/s",
        median(rates),
    )])
}

/// Median ms, over [`RESUMES`] rounds, from subscribing again after
/// [`MISSED`] events went by until the last of them arrived, for a
/// subscriber on node `b` of a room on node `a`.
async fn resume(
    owner: &NativeEndpoint,
    a: &Node,
    sub: &NativeEndpoint,
    b: &Node,
    rx: &mut mpsc::Receiver<Seen>,
) -> Result<f64> {
    let (room, owner_addr) = ("resume", owner.address().clone());
    let next = subscribe(sub, &hub(b), &owner_addr, room, None).await?;
    owner.tell(hub(a), publish_body(room), None)?;
    let mut last = expect(rx, next).await.map(|_| next)?;
    let mut samples = Vec::with_capacity(RESUMES);
    for _ in 0..RESUMES {
        let leave = RoomsRequest::Unsubscribe {
            owner: owner_addr.to_string(),
            room: room.into(),
        };
        ask_hub(sub, &hub(b), &leave).await?;
        for _ in 1..MISSED {
            owner.tell(hub(a), publish_body(room), None)?;
        }
        // Asked, so that all of them are in the tail before the resume.
        let publish = RoomsRequest::Publish {
            room: room.into(),
            payload: payload(),
            durable: false,
        };
        match ask_hub(owner, &hub(a), &publish).await? {
            RoomsResponse::Published { seq } if seq == last + MISSED => {}
            other => bail!(
                "the last missed event: {other:?}, expected seq {}",
                last + MISSED
            ),
        }
        let t = Instant::now();
        subscribe(sub, &hub(b), &owner_addr, room, Some(last)).await?;
        let mut caught_up = t;
        for seq in last + 1..=last + MISSED {
            caught_up = expect(rx, seq).await?.at;
        }
        samples.push(caught_up.duration_since(t).as_secs_f64() * 1e3);
        last += MISSED;
    }
    samples.sort_by(f64::total_cmp);
    Ok(percentile(&samples, 50.0))
}

/// p50 and p99 ms from a publish on `a` until the last of
/// [`FAN_PER_NODE`] subscribers on each of `nodes` has it, and the relays
/// counted per publish.
async fn fan_out(owner: &NativeEndpoint, a: &Node, nodes: &[Node]) -> Result<(f64, f64, f64)> {
    let (room, owner_addr) = ("fan", owner.address().clone());
    let (seen_tx, mut rx) = mpsc::channel(SEEN_CHANNEL);
    let total = nodes.len() * FAN_PER_NODE;
    let mut subscribers = Vec::with_capacity(total);
    for (n, node) in nodes.iter().enumerate() {
        let mine: Vec<Arc<NativeEndpoint>> = (0..FAN_PER_NODE)
            .map(|i| recorder(node, &format!("fan-{i}"), n * FAN_PER_NODE + i, &seen_tx))
            .collect::<Result<_>>()?;
        let hub = hub(node);
        try_join_all(
            mine.iter()
                .map(|sub| subscribe_when_met(sub, &hub, &owner_addr, room)),
        )
        .await?;
        subscribers.extend(mine);
    }
    drop(seen_tx);
    let relays = || {
        a.services()
            .kernel
            .metrics
            .rooms_relays
            .load(Ordering::Relaxed)
    };
    let mut samples = Vec::with_capacity(FAN_PUBLISHES as usize);
    let mut relayed = 0;
    for seq in 1..=FAN_WARMUP + FAN_PUBLISHES {
        let before = relays();
        let t = Instant::now();
        owner.tell(hub(a), publish_body(room), None)?;
        let mut last = t;
        let mut have = vec![false; total];
        for count in 0..total {
            let seen = next_seen(&mut rx)
                .await
                .with_context(|| format!("event {seq}: {count} of {total} subscribers had it"))?;
            if seen.got != Got::Event(seq) {
                bail!("event {seq}: subscriber {} got {:?}", seen.who, seen.got);
            }
            if std::mem::replace(&mut have[seen.who], true) {
                bail!("event {seq}: subscriber {} got it twice", seen.who);
            }
            last = last.max(seen.at);
        }
        if seq > FAN_WARMUP {
            samples.push(last.duration_since(t).as_secs_f64() * 1e3);
            relayed += relays() - before;
        }
    }
    drop(subscribers);
    samples.sort_by(f64::total_cmp);
    Ok((
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        relayed as f64 / FAN_PUBLISHES as f64,
    ))
}
