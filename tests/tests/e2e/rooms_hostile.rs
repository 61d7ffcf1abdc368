//! Hostile peers and pages against live rooms. Mallory (a raw libp2p peer,
//! `common/mallory.rs`) sends the hub-to-hub requests another node's hub
//! sends, where and how it may not: relays of rooms her node does not own,
//! joins for processes that do not run or for other nodes' subscribers,
//! floods of joins and holds; and, as the owner of a watched room, floods
//! of relays with sequence holes. Pages flood `/hearth/ws` with watches,
//! oversized frames and frame storms. Each gets a typed refusal or close
//! (or is dropped and counted), and the node keeps serving honest nodes
//! and pages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hearth::http::rooms::{FRAME_BURST, MAX_WATCHES_PER_CONNECTION};
use hearth::net::wire::Frame;
use hearth::rooms::{
    RoomEvent, RoomsRequest, MAX_HOLDS_PER_NODE, MAX_ROOMS_PER_PROCESS, MAX_SUBSCRIBERS_PER_NODE,
};
use hearth::types::{KernelMessage, Message, Request, SendErrorKind};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::http::ws_connect;
use super::rooms_browser::{self as browser, OWNER};
use crate::common::mallory::*;
use crate::common::*;

const VICTIM_HUB: &str = "victim.os@rooms:distro:sys";
const MALLORY_HUB: &str = "mallory.os@rooms:distro:sys";
/// The victim's owner probe, as a process id (hub requests name it so).
const OWNER_PID: &str = "owner:probe:test";
/// How long the test waits for deliveries and counters.
const WITHIN: Duration = Duration::from_secs(20);

/// The victim: a probe that owns rooms (refusing `private*`).
async fn victim() -> TestNode {
    let v = TestNode::start("victim.os").await;
    v.install_probe(json!([net_probe("owner")])).await;
    v
}

/// An honest node bootstrapped to the victim, with a subscriber probe.
async fn honest(victim_addr: &str) -> TestNode {
    let home = TempDir::new("honest.os");
    let mut config = test_config(home.path(), "honest.os");
    config.net.bootstrap = vec![victim_addr.to_string()];
    let n = TestNode::start_with(config, home).await;
    n.install_probe(json!([net_probe("sub")])).await;
    n
}

fn refused(v: &TestNode) -> u64 {
    let metrics = &v.node.services().kernel.metrics;
    metrics.rooms_refused.load(Ordering::Relaxed)
}

fn body(request: &RoomsRequest) -> Value {
    serde_json::to_value(request).expect("a rooms request")
}

fn join(owner: &str, room: &str, subscriber: &str) -> Value {
    body(&RoomsRequest::Join {
        owner: owner.into(),
        room: room.into(),
        subscriber: subscriber.into(),
        from: None,
        incarnation: None,
    })
}

fn relay(owner: &str, room: &str) -> Value {
    body(&RoomsRequest::Relay {
        owner: owner.into(),
        room: room.into(),
        to: None,
        events: vec![RoomEvent::Event {
            seq: 1,
            payload: json!("forged"),
        }],
        next: 2,
        incarnation: 7,
    })
}

/// A fire-and-forget request from `from`: nobody can be answered.
fn tell(id: u64, from: &str, to: &str, body: &Value) -> Frame {
    Frame::Deliver(KernelMessage {
        id,
        source: from.parse().expect("source"),
        target: to.parse().expect("target"),
        rsvp: None,
        message: Message::Request(Request {
            inherit: false,
            expects_response: None,
            body: serde_json::to_vec(body).expect("json"),
            metadata: None,
        }),
        blob: None,
    })
}

/// What came back for one request.
#[derive(Debug)]
enum Answer {
    /// The hub's answer, `{"Ok": ..}` or `{"Err": {kind: ..}}`.
    Hub(Value),
    /// The victim's network refused it.
    Failed(SendErrorKind),
}

impl Answer {
    /// `Joined`, `Limit`, `Forbidden`, ... or the network's kind.
    fn kind(&self) -> String {
        match self {
            Answer::Hub(v) => ["Ok", "Err"]
                .iter()
                .find_map(|k| v[k].as_object())
                .and_then(|o| o.keys().next().cloned())
                .or_else(|| v["Ok"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("nonsense {v}")),
            Answer::Failed(kind) => kind.as_str().to_string(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Answer::Hub(v) => v["Err"]
                .as_object()
                .and_then(|o| o.values().next())
                .map(Value::to_string)
                .unwrap_or_default(),
            Answer::Failed(_) => String::new(),
        }
    }
}

/// Reads the victim's frames until `n` of `ids` are answered; relays the
/// victim sends (requests) are skipped. A silence of 10 s fails the test:
/// no request is dropped without a word.
async fn answers(inbox: &mut Inbox, ids: &HashSet<u64>, n: usize) -> HashMap<u64, Answer> {
    let mut got = HashMap::new();
    while got.len() < n {
        match inbox.next().await {
            Frame::Deliver(km) if ids.contains(&km.id) => {
                if let Message::Response(r) = km.message {
                    let value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    got.insert(km.id, Answer::Hub(value));
                }
            }
            Frame::Failed { id, error, .. } if ids.contains(&id) => {
                got.insert(id, Answer::Failed(error.kind));
            }
            _ => {}
        }
    }
    got
}

/// Send `frames` from a task (so the victim's answers are read meanwhile)
/// and give the stream back.
async fn send_all(mut stream: libp2p::Stream, frames: Vec<Frame>) -> libp2p::Stream {
    tokio::spawn(async move {
        for frame in &frames {
            write(&mut stream, frame).await;
        }
        stream
    })
    .await
    .expect("sender task")
}

/// The honest node's subscriber joins `room` of the victim's owner and
/// receives an event published after: the victim still serves.
async fn still_serves_rooms(v: &TestNode, h: &TestNode, room: &str) {
    let owner = format!("victim.os@{OWNER_PID}");
    let t = Instant::now();
    loop {
        let watch = json!({"watch": {"owner": owner, "room": room, "from": null}});
        let reply = h
            .ask_within("sub:probe:test", watch, WITHIN)
            .await
            .expect("sub answers");
        if reply["Ok"]["Joined"].is_object() {
            break;
        }
        let retry = reply["Err"].get("Unreachable").is_some() && t.elapsed() < WITHIN;
        assert!(retry, "the honest join: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let publish = json!({"publish": {"room": room, "payload": {"honest": true}}});
    let reply = v.ask("owner:probe:test", publish).await.expect("owner");
    let seq = reply["Ok"]["Published"]["seq"].as_u64().expect("published");
    let t = Instant::now();
    loop {
        let log = h
            .ask("sub:probe:test", json!({"room_log": null}))
            .await
            .expect("room_log");
        let delivered =
            log["rooms"].as_array().into_iter().flatten().any(|r| {
                r["room"] == room
                    && r["events"].as_array().into_iter().flatten().any(|e| {
                        e["event"]["seq"] == seq && e["event"]["payload"]["honest"] == true
                    })
            });
        if delivered {
            return;
        }
        assert!(
            t.elapsed() < WITHIN,
            "the honest subscriber got nothing: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_requests_a_peer_may_not_send_get_typed_refusals() {
    let v = victim().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let stream = mallory.hello_stream("mallory.os").await;
    let before = refused(&v);

    let victims_room = format!("victim.os@{OWNER_PID}");
    let mine = "mallory.os@s:x:y";
    // (what, from, body, expected kind, refused in `serve` and so counted)
    let cases: Vec<(&str, &str, Value, &str, bool)> = vec![
        (
            "a relay of a room the victim owns",
            MALLORY_HUB,
            relay(&victims_room, "lobby"),
            "Forbidden",
            true,
        ),
        (
            "a relay from a process that is not a hub",
            "mallory.os@x:y:z",
            relay("mallory.os@owner:probe:test", "lobby"),
            "Forbidden",
            true,
        ),
        (
            "a join to a process that does not run",
            MALLORY_HUB,
            join("nobody:probe:test", "lobby", mine),
            "Unreachable",
            false,
        ),
        (
            "a join for another node's subscriber",
            MALLORY_HUB,
            join(OWNER_PID, "lobby", "victim.os@sub:probe:test"),
            "Forbidden",
            true,
        ),
        (
            "a join the owner refuses",
            MALLORY_HUB,
            join(OWNER_PID, "private-x", mine),
            "Refused",
            false,
        ),
        (
            "a join naming no process",
            MALLORY_HUB,
            join("not a process", "lobby", mine),
            "BadRequest",
            true,
        ),
        (
            "a publish from another node",
            "mallory.os@owner:probe:test",
            body(&RoomsRequest::Publish {
                room: "lobby".into(),
                payload: json!(1),
                durable: false,
            }),
            "Forbidden",
            true,
        ),
        (
            "a subscribe from another node",
            "mallory.os@sub:x:y",
            body(&RoomsRequest::Subscribe {
                owner: victims_room.clone(),
                room: "lobby".into(),
                from: None,
            }),
            "Forbidden",
            true,
        ),
        (
            "junk",
            MALLORY_HUB,
            json!({"Nonsense": [1, 2]}),
            "BadRequest",
            true,
        ),
    ];
    let frames = cases
        .iter()
        .enumerate()
        .map(|(i, (_, from, body, _, _))| {
            request(i as u64 + 1, from, VICTIM_HUB, body.clone(), 15_000)
        })
        .collect();
    let stream = send_all(stream, frames).await;
    let ids: HashSet<u64> = (1..=cases.len() as u64).collect();
    let got = answers(&mut inbox, &ids, ids.len()).await;
    for (i, (what, _, _, kind, _)) in cases.iter().enumerate() {
        let answer = &got[&(i as u64 + 1)];
        assert_eq!(answer.kind(), *kind, "{what}: {answer:?}");
    }

    // Fire-and-forget: forbidden relays, a hold nobody can be answered
    // for, and relays of Mallory's own room that nobody here watches.
    let mut frames = Vec::new();
    for i in 0..100 {
        frames.push(tell(
            1000 + i,
            MALLORY_HUB,
            VICTIM_HUB,
            &relay(&victims_room, "lobby"),
        ));
    }
    frames.push(tell(
        2000,
        MALLORY_HUB,
        VICTIM_HUB,
        &body(&RoomsRequest::Hold),
    ));
    for i in 0..10 {
        let owner = "mallory.os@owner:probe:test";
        frames.push(tell(
            3000 + i,
            MALLORY_HUB,
            VICTIM_HUB,
            &relay(owner, "lobby"),
        ));
    }
    let _stream = send_all(stream, frames).await;
    let counted = cases.iter().filter(|c| c.4).count() as u64 + 100 + 1 + 10;
    let t = Instant::now();
    while refused(&v) - before < counted {
        assert!(
            t.elapsed() < WITHIN,
            "{} of {counted} refusals counted",
            refused(&v) - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refused(&v) - before, counted, "each refusal counted once");

    let h = honest(&addr).await;
    still_serves_rooms(&v, &h, "lobby").await;
    h.stop().await;
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_joins_and_holds_meet_named_limits() {
    let v = victim().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let stream = mallory.hello_stream("mallory.os").await;

    // 3,000 joins at once, over 400 rooms: some are admitted, the rest
    // meet the joins-in-flight or rooms-per-process bound (or the owed
    // answers per peer), each with a typed answer.
    const FLOOD: u64 = 3000;
    let frames = (1..=FLOOD)
        .map(|i| {
            let body = join(
                OWNER_PID,
                &format!("r{}", i % 400),
                &format!("mallory.os@s{i}:x:y"),
            );
            request(i, MALLORY_HUB, VICTIM_HUB, body, 30_000)
        })
        .collect();
    let stream = send_all(stream, frames).await;
    let ids: HashSet<u64> = (1..=FLOOD).collect();
    let got = answers(&mut inbox, &ids, ids.len()).await;
    let mut kinds: HashMap<String, u64> = HashMap::new();
    for answer in got.values() {
        *kinds.entry(answer.kind()).or_default() += 1;
    }
    let joined = kinds.get("Joined").copied().unwrap_or(0);
    let limited = kinds.get("Limit").copied().unwrap_or(0);
    let owed = kinds.get("mailbox-full").copied().unwrap_or(0);
    assert_eq!(joined + limited + owed, FLOOD, "{kinds:?}");
    assert!(joined > 0 && limited > 0, "{kinds:?}");
    let rooms: HashSet<u64> = got
        .iter()
        .filter(|(_, a)| a.kind() == "Joined")
        .map(|(id, _)| id % 400)
        .collect();
    assert!(
        rooms.len() <= MAX_ROOMS_PER_PROCESS,
        "{} rooms",
        rooms.len()
    );
    eprintln!("join flood: {kinds:?}");
    // A room that exists (the owner has all the rooms it may have).
    let wide = format!("r{}", rooms.iter().next().expect("a joined room"));

    // Subscribers of one node, all rooms together: joins to one room in
    // waves until the bound answers; exactly the bound is admitted.
    let mut total = joined as usize;
    let mut next_id = FLOOD + 1;
    let mut stream = stream;
    'waves: loop {
        let wave: Vec<u64> = (next_id..next_id + 200).collect();
        next_id += 200;
        let frames = wave
            .iter()
            .map(|i| {
                let body = join(OWNER_PID, &wide, &format!("mallory.os@w{i}:x:y"));
                request(*i, MALLORY_HUB, VICTIM_HUB, body, 30_000)
            })
            .collect();
        stream = send_all(stream, frames).await;
        let ids: HashSet<u64> = wave.into_iter().collect();
        let got = answers(&mut inbox, &ids, ids.len()).await;
        let mut bounded = false;
        for answer in got.values() {
            match answer.kind().as_str() {
                "Joined" => total += 1,
                "Limit" if answer.detail().contains("subscribers per node") => bounded = true,
                other => panic!("a join of the waves: {other} {answer:?}"),
            }
        }
        assert!(total <= MAX_SUBSCRIBERS_PER_NODE, "{total} admitted");
        if bounded {
            break 'waves;
        }
        assert!(next_id < FLOOD + 10_000, "no per-node bound after {total}");
    }
    assert_eq!(total, MAX_SUBSCRIBERS_PER_NODE);

    // Holds: a hub needs one; past the bound each is refused at once.
    const HOLDS: u64 = 20;
    let first = next_id;
    let frames = (first..first + HOLDS)
        .map(|i| {
            request(
                i,
                MALLORY_HUB,
                VICTIM_HUB,
                body(&RoomsRequest::Hold),
                60_000,
            )
        })
        .collect();
    let _stream = send_all(stream, frames).await;
    let ids: HashSet<u64> = (first..first + HOLDS).collect();
    let refusals = HOLDS as usize - MAX_HOLDS_PER_NODE;
    let got = answers(&mut inbox, &ids, refusals).await;
    for answer in got.values() {
        assert_eq!(answer.kind(), "Limit", "{answer:?}");
    }

    let h = honest(&addr).await;
    still_serves_rooms(&v, &h, &wide).await;
    h.stop().await;
    v.stop().await;
}

async fn close_code(ws: &mut browser::Ws) -> Option<u16> {
    let t = Instant::now();
    loop {
        let left = WITHIN.saturating_sub(t.elapsed());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("the node did not close the page within {WITHIN:?}"),
            Ok(Some(Ok(WsMessage::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_flooding_hearth_ws_get_typed_closes_and_the_node_serves() {
    let (alice, carol) = browser::nodes().await;
    let port = carol.node.http_addr().port();
    let cookie = browser::session(&carol).await;

    // One page asks for one watch more than the bound: that one is refused.
    let mut page = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let early = browser::watch(&mut page, "r0", None).await;
    for i in 1..=MAX_WATCHES_PER_CONNECTION {
        let watch = json!({"watch": {"address": OWNER, "room": format!("r{i}"), "from": null}});
        browser::send(&mut page, watch).await;
    }
    let (mut joined, mut limit) = (1, None);
    while joined < MAX_WATCHES_PER_CONNECTION || limit.is_none() {
        let frame = browser::next(&mut page).await;
        if frame.get("joined").is_some() {
            joined += 1;
        } else if let Some(refused) = frame.get("refused") {
            assert!(refused["error"]["Limit"].is_string(), "{frame}");
            limit = Some(refused["room"].clone());
        }
    }
    assert_eq!(joined, MAX_WATCHES_PER_CONNECTION);
    assert_eq!(limit, Some(json!(format!("r{MAX_WATCHES_PER_CONNECTION}"))));

    // A frame over 4 KiB: close 1009. One over 64 KiB: the socket ends.
    let mut big = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let name = "x".repeat(5000);
    let watch = json!({"watch": {"address": OWNER, "room": name, "from": null}});
    browser::send(&mut big, watch).await;
    assert_eq!(close_code(&mut big).await, Some(1009));
    let mut huge = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let _ = huge
        .send(WsMessage::Text("y".repeat(100 * 1024).into()))
        .await;
    assert_ne!(
        close_code(&mut huge).await,
        Some(1000),
        "not a normal close"
    );

    // A storm of frames (that need no answer): past the burst, close 1008.
    let mut storm = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let unwatch = json!({"unwatch": {"address": OWNER, "room": "none"}}).to_string();
    let mut sent = 0;
    for _ in 0..(FRAME_BURST * 20) {
        if storm
            .send(WsMessage::Text(unwatch.clone().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(sent > FRAME_BURST, "sent {sent}");
    assert_eq!(close_code(&mut storm).await, Some(1008));

    // The node still serves: the first page's watches deliver, and a new
    // page joins and gets events.
    let mut fresh = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let fresh_early = browser::watch(&mut fresh, "r0", None).await;
    browser::publish(&alice, "r0", 1..=3).await;
    let got = browser::until(&mut page, "r0", 3, early).await;
    assert_eq!(browser::seqs(&got, "r0"), [1, 2, 3]);
    let got = browser::until(&mut fresh, "r0", 3, fresh_early).await;
    assert_eq!(browser::seqs(&got, "r0"), [1, 2, 3]);
    carol.stop().await;
    alice.stop().await;
}

/// The victim's subscriber process, as Mallory's relays name it.
const VICTIM_SUB: &str = "victim.os@sub:probe:test";

/// A relay of Mallory's room: `events` seqs, live after at `next`.
fn relay_of(room: &str, to: Option<&str>, seqs: &[u64], next: u64) -> Value {
    body(&RoomsRequest::Relay {
        owner: format!("mallory.os@{OWNER_PID}"),
        room: room.into(),
        to: to.map(str::to_string),
        events: seqs
            .iter()
            .map(|&seq| RoomEvent::Event {
                seq,
                payload: json!({"from": "mallory", "seq": seq}),
            })
            .collect(),
        next,
        incarnation: 7,
    })
}

/// The next join the victim's hub asks Mallory's hub for (holds and
/// leaves are skipped): its id, or `None` when none came `within`.
async fn next_join(inbox: &mut Inbox, within: Duration) -> Option<u64> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Frame::Deliver(km)) = inbox.try_next(left).await else {
            return None;
        };
        let Message::Request(r) = &km.message else {
            continue;
        };
        if let Ok(RoomsRequest::Join { .. }) = serde_json::from_slice(&r.body) {
            return Some(km.id);
        }
    }
}

/// Mallory answers join `id`: a replay of `seqs` to the victim's
/// subscriber, then `Joined`.
async fn answer_join(stream: &mut libp2p::Stream, id: u64, room: &str, seqs: &[u64]) {
    let next = seqs.last().map_or(1, |s| s + 1);
    let replay = relay_of(room, Some(VICTIM_SUB), seqs, next);
    write(
        stream,
        &tell(id + 1_000_000, MALLORY_HUB, VICTIM_HUB, &replay),
    )
    .await;
    let joined = json!({"Ok": {"Joined": {"next": next, "snapshot": null}}});
    write(stream, &response(id, MALLORY_HUB, VICTIM_HUB, joined)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_flooding_relays_with_holes_costs_one_rejoin() {
    let v = TestNode::start("victim.os").await;
    v.install_probe(json!([net_probe("sub")])).await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let mut stream = mallory.hello_stream("mallory.os").await;
    let room = "flood";

    // The victim's subscriber watches Mallory's room; Mallory admits it.
    let owner = format!("mallory.os@{OWNER_PID}");
    let watch = json!({"watch": {"owner": owner, "room": room, "from": null}});
    // (Retried while the victim cannot reach Mallory's node yet.)
    let t = Instant::now();
    let reply = loop {
        let asking = v.ask_within("sub:probe:test", watch.clone(), WITHIN);
        let (reply, ()) = tokio::join!(asking, async {
            if let Some(id) = next_join(&mut inbox, Duration::from_secs(3)).await {
                answer_join(&mut stream, id, room, &[]).await;
            }
        });
        let reply = reply.expect("sub answers");
        if reply["Err"].get("Unreachable").is_none() || t.elapsed() > WITHIN {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reply["Ok"]["Joined"].is_object(), "{reply}");

    // A relay with a hole: the subscriber lags and one rejoin starts.
    // Then a flood of replays to it, each with a hole again.
    const FLOOD: u64 = 2000;
    let before = refused(&v);
    let mut frames = vec![tell(
        1,
        MALLORY_HUB,
        VICTIM_HUB,
        &relay_of(room, None, &[5], 6),
    )];
    for i in 0..FLOOD {
        let hole = relay_of(room, Some(VICTIM_SUB), &[i + 10], i + 11);
        frames.push(tell(10 + i, MALLORY_HUB, VICTIM_HUB, &hole));
    }
    // And one bad frame: `next` 0 (no live sequence number), refused.
    frames.push(tell(
        5,
        MALLORY_HUB,
        VICTIM_HUB,
        &relay_of(room, Some(VICTIM_SUB), &[], 0),
    ));
    let mut stream = send_all(stream, frames).await;

    // Each folded into the one pending rejoin, and counted.
    let t = Instant::now();
    while refused(&v) - before < FLOOD + 1 {
        assert!(
            t.elapsed() < WITHIN,
            "{} of {} refusals counted",
            refused(&v) - before,
            FLOOD + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One rejoin reaches Mallory (after the lag retry); no other comes
    // while Mallory leaves it unanswered (one task, not one per relay).
    let first = next_join(&mut inbox, WITHIN).await.expect("one rejoin");
    let second = next_join(&mut inbox, Duration::from_secs(2)).await;
    assert_eq!(second, None, "a second rejoin while one is pending");
    assert_eq!(refused(&v) - before, FLOOD + 1, "each refusal counted once");

    // Mallory answers it honestly: the subscriber gets the replay.
    answer_join(&mut stream, first, room, &[1, 2]).await;
    let t = Instant::now();
    loop {
        let log = v
            .ask("sub:probe:test", json!({"room_log": null}))
            .await
            .expect("room_log");
        let seqs: Vec<u64> = log["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["room"] == room)
            .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["event"]["seq"].as_u64())
            .collect();
        if seqs.contains(&1) && seqs.contains(&2) {
            break;
        }
        assert!(t.elapsed() < WITHIN, "the replay never came: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v.stop().await;
}
