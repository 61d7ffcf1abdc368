//! Live rooms across nodes (`rooms:distro:sys`), driven through the probe,
//! which uses `hearth_sdk::rooms`: fan-out to three nodes, refused joins,
//! resuming from a cursor and past the tail, a subscriber node killed and
//! restarted, an owner node going away and coming back, and one relay per
//! subscribing node; bursts across rooms and a join amid bursts in
//! `rooms/bursts.rs`.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// How long the test waits for deliveries or a node's state to change.
const WITHIN: Duration = Duration::from_secs(15);
/// How soon subscribers hear `offline` once the owner's node is killed.
/// The kernel closes a killed process's sockets, so the connection's close
/// reaches the subscribing hubs and fails their held request at once; the
/// only other way to `offline` is the held request's own deadline,
/// [`hearth::rooms::HOLD_DEADLINE`] (40 s). Half of it leaves a loaded
/// machine ample room and still fails if `offline` came that slow way.
const OFFLINE_WITHIN: Duration = Duration::from_secs(hearth::rooms::HOLD_DEADLINE.as_secs() / 2);

/// On every node: `owner` publishes, `sub` and `s0..` subscribe, `ctl`
/// commands probes on nodes running in another process.
fn manifest(subs: usize) -> Value {
    let mut entries = vec![net_probe("owner"), net_probe("sub"), net_probe("ctl")];
    entries.extend((0..subs).map(|i| net_probe(&format!("s{i}"))));
    Value::Array(entries)
}

async fn node(name: &str, bootstrap: &[&str], subs: usize) -> TestNode {
    let home = TempDir::new(name);
    let mut config = test_config(home.path(), name);
    config.net.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    let n = TestNode::start_with(config, home).await;
    n.install_probe(manifest(subs)).await;
    n
}

fn owner_on(node: &str) -> String {
    format!("{node}@owner:probe:test")
}

/// A probe to command: on an in-process node, or on a node in another
/// process, through the in-process node's `ctl` probe.
#[derive(Clone, Copy)]
enum At<'a> {
    Here(&'a TestNode, &'a str),
    Far(&'a TestNode, &'a str),
}

impl At<'_> {
    /// Sends `body` and returns the probe's answer, retrying a far probe
    /// while its node is not reachable (it may be booting or connecting).
    async fn call(self, body: Value) -> Value {
        match self {
            At::Here(n, process) => n
                .ask_within(
                    &format!("{process}:probe:test"),
                    body,
                    Duration::from_secs(40),
                )
                .await
                .unwrap_or_else(|e| panic!("{process} answers: {e}")),
            At::Far(n, target) => {
                let t = Instant::now();
                loop {
                    let ask =
                        json!({"ask": {"target": target, "body": body, "timeout_ms": 30_000}});
                    let reply = n
                        .ask_within("ctl:probe:test", ask, Duration::from_secs(40))
                        .await
                        .expect("ctl answers");
                    if reply["err"]["kind"] != "offline" {
                        return reply.get("ok").cloned().unwrap_or(reply);
                    }
                    assert!(t.elapsed() < WITHIN, "{target} unreachable: {reply}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// `watch`, retrying while the owner's hub cannot be reached yet (peers
/// connect asynchronously); any other answer is returned.
async fn watch(at: At<'_>, owner: &str, room: &str, from: Option<u64>) -> Value {
    let t = Instant::now();
    loop {
        let reply = at
            .call(json!({"watch": {"owner": owner, "room": room, "from": from}}))
            .await;
        if reply["Err"].get("Unreachable").is_none() || t.elapsed() > WITHIN {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A watch that must be admitted: checks the owner's snapshot, returns
/// `next`.
async fn joined(at: At<'_>, owner: &str, room: &str, from: Option<u64>) -> u64 {
    let reply = watch(at, owner, room, from).await;
    let joined = &reply["Ok"]["Joined"];
    assert_eq!(joined["snapshot"], json!({"welcome": room}), "{reply}");
    joined["next"].as_u64().unwrap_or_else(|| panic!("{reply}"))
}

/// `publish_n` on `owner`: `count` acked publishes with payloads `i` from
/// `base`; returns the first and last sequence numbers.
async fn publish_n(owner: At<'_>, room: &str, base: u64, count: u64) -> (u64, u64) {
    let reply = owner
        .call(json!({"publish_n": {"room": room, "base": base, "count": count}}))
        .await;
    let seqs = &reply["ok"]["seqs"];
    match (seqs[0].as_u64(), seqs[1].as_u64()) {
        (Some(first), Some(last)) => (first, last),
        _ => panic!("publish_n {room}: {reply}"),
    }
}

/// The deliveries `at` recorded for `room` of `owner`.
async fn events(at: At<'_>, owner: &str, room: &str) -> Vec<Value> {
    let log = at.call(json!({"room_log": null})).await;
    let rooms = log["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("room_log: {log}"));
    rooms
        .iter()
        .find(|r| r["owner"] == owner && r["room"] == room)
        .map(|r| r["events"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// Polls `at`'s room log until `done` holds, then returns the events.
async fn events_until(
    at: At<'_>,
    owner: &str,
    room: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let got = events(at, owner, room).await;
        if done(&got) {
            return got;
        }
        if t.elapsed() > WITHIN {
            let tail: Vec<_> = got.iter().rev().take(8).rev().collect();
            panic!(
                "{room}: timed out with {} deliveries, last ones: {tail:?}",
                got.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sequence number of an `{"event": ..}` delivery.
fn seq(event: &Value) -> Option<u64> {
    event["event"]["seq"].as_u64()
}

fn last_seq(events: &[Value]) -> Option<u64> {
    events.iter().rev().find_map(seq)
}

/// Asserts that `events` are exactly the events `range`, each once, in
/// order, with the payload `{"i": seq - 1}` publish_n gave them.
fn assert_events(events: &[Value], range: std::ops::RangeInclusive<u64>, who: &str) {
    let seqs: Vec<Option<u64>> = events.iter().map(seq).collect();
    let want: Vec<Option<u64>> = range.map(Some).collect();
    assert_eq!(seqs, want, "{who}: sequence numbers (None: not an event)");
    for event in events {
        let seq = seq(event).unwrap_or_default();
        assert_eq!(event["event"]["payload"]["i"], seq - 1, "{who}: {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_receive_every_event_in_order_once() {
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], 0).await;
    let c = node("c.os", &[&a_addr], 0).await;
    let owner = owner_on("a.os");
    let subs = [
        At::Here(&a, "sub"),
        At::Here(&b, "sub"),
        At::Here(&c, "sub"),
    ];
    for sub in subs {
        assert_eq!(joined(sub, &owner, "lobby", None).await, 1);
    }

    // 49 fire-and-forget publishes, then one acked with a richer payload.
    let sent = a
        .ask(
            "owner:probe:test",
            json!({"publish_n": {"room": "lobby", "count": 49, "acked": false}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"ok": {"sent": 49}}));
    let rich = json!({"i": 49, "text": "héllo ✓", "nested": {"list": [1, null, "x"], "f": 1.5}});
    let reply = a
        .ask(
            "owner:probe:test",
            json!({"publish": {"room": "lobby", "payload": rich}}),
        )
        .await
        .unwrap();
    assert_eq!(reply, json!({"Ok": {"Published": {"seq": 50}}}));

    for (sub, name) in subs.into_iter().zip(["a", "b", "c"]) {
        let got = events_until(sub, &owner, "lobby", |e| e.len() >= 50).await;
        assert_events(&got, 1..=50, name);
        assert_eq!(got[49]["event"]["payload"], rich, "{name}");
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_is_a_typed_refusal() {
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], 0).await;
    let owner = owner_on("a.os");
    // Admitted first: the nodes are connected from here on.
    joined(At::Here(&b, "sub"), &owner, "open", None).await;

    for at in [At::Here(&b, "sub"), At::Here(&a, "sub")] {
        let reply = watch(at, &owner, "private-x", None).await;
        let refusal = &reply["Err"]["Refused"]["error"];
        assert_eq!(refusal["code"], "forbidden", "{reply}");
        assert!(
            refusal["message"]
                .as_str()
                .is_some_and(|m| m.contains("private-x")),
            "{reply}"
        );
    }
    // Nothing is remembered of the refused room.
    let log = b
        .ask("sub:probe:test", json!({"room_log": null}))
        .await
        .unwrap();
    let rooms: Vec<&Value> = log["rooms"].as_array().unwrap().iter().collect();
    assert_eq!(rooms.len(), 1, "{log}");
    assert_eq!(rooms[0]["room"], "open");

    // An owner that does not run cannot be asked, on this node or another.
    for (at, name) in [(&a, "local"), (&b, "remote")] {
        let reply = at
            .ask_within(
                "sub:probe:test",
                json!({"watch": {"owner": "a.os@nobody:probe:test", "room": "r", "from": null}}),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert!(reply["Err"]["Unreachable"].is_string(), "{name}: {reply}");
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_from_the_cursor_and_a_gap_past_the_tail() {
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], 2).await;
    let owner = owner_on("a.os");
    let publisher = At::Here(&a, "owner");

    // From a cursor within the tail: 6..20 replayed, then live ones.
    assert_eq!(publish_n(publisher, "replay", 0, 20).await, (1, 20));
    for sub in [At::Here(&b, "s0"), At::Here(&a, "sub")] {
        assert_eq!(joined(sub, &owner, "replay", Some(5)).await, 21);
    }
    assert_eq!(publish_n(publisher, "replay", 20, 5).await, (21, 25));
    for (sub, name) in [
        (At::Here(&b, "s0"), "remote"),
        (At::Here(&a, "sub"), "local"),
    ] {
        let got = events_until(sub, &owner, "replay", |e| last_seq(e) >= Some(25)).await;
        assert_events(&got, 6..=25, name);
    }

    // 1,100 events overflow the tail of 1,024: from 0, a gap says where
    // the stream goes on, then everything the tail still holds.
    assert_eq!(publish_n(publisher, "big", 0, 1100).await, (1, 1100));
    let sub = At::Here(&b, "s1");
    assert_eq!(joined(sub, &owner, "big", Some(0)).await, 1101);
    assert_eq!(publish_n(publisher, "big", 1100, 2).await, (1101, 1102));
    let got = events_until(sub, &owner, "big", |e| last_seq(e) >= Some(1102)).await;
    assert_eq!(got[0], json!({"gap": {"next": 77}}), "the first delivery");
    assert_events(&got[1..], 77..=1102, "past the tail");
    b.stop().await;
    a.stop().await;
}

/// A node in another process that joins `bootstrap` on loopback.
fn start_far(
    home: &Path,
    user_home: &Path,
    name: &str,
    bootstrap: &str,
    p2p_port: Option<u16>,
) -> HearthProcess {
    let port = p2p_port.map(|p| p.to_string());
    let mut args = vec![
        "--p2p-bind",
        "127.0.0.1",
        "--no-mdns",
        "--bootstrap",
        bootstrap,
    ];
    if let Some(port) = &port {
        args.extend(["--p2p-port", port]);
    }
    HearthProcess::start(home, user_home, name, &args)
}

/// Install the probe on a node in another process, through its admin API.
async fn upload_probe(port: u16, home: &Path) {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let secret = std::fs::read_to_string(home.join(hearth::api::SECRET_FILE)).unwrap();
        let upload = hearth::api::PackageUpload {
            files: probe_package(manifest(0)),
        };
        let body = bincode::serde::encode_to_vec(upload, bincode::config::standard()).unwrap();
        let url = format!("http://127.0.0.1:{port}{}", hearth::api::INSTALL_PATH);
        ureq::post(&url)
            .header(hearth::api::SECRET_HEADER, secret.trim())
            .send(&body[..])
            .expect("install on the far node");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscriber_node_resumes_from_its_saved_cursor() {
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let bob_home = TempDir::new("bob");
    let user_home = TempDir::new("bob-user");
    let mut bob = start_far(bob_home.path(), user_home.path(), "bob.os", &a_addr, None);
    upload_probe(bob.port, bob_home.path()).await;
    let owner = owner_on("a.os");
    let sub = At::Far(&a, "bob.os@sub:probe:test");
    assert_eq!(joined(sub, &owner, "stream", None).await, 1);

    // The owner publishes in small paced batches until told to stop, while
    // bob is killed, stays down, restarts and catches up.
    let published = Cell::new(0u64);
    let stop = Cell::new(false);
    let publisher = async {
        while !stop.get() {
            let base = published.get();
            let (_, last) = publish_n(At::Here(&a, "owner"), "stream", base, 5).await;
            assert_eq!(last, base + 5);
            published.set(last);
            // Pacing, so that the stream spans the kill and the restart.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let wait_published = |at_least: u64| {
        let published = &published;
        async move {
            let t = Instant::now();
            while published.get() < at_least {
                assert!(t.elapsed() < WITHIN, "the owner stopped publishing");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let (bob_home_path, user_home_path) = (bob_home.path(), user_home.path());
    let controller = async {
        events_until(sub, &owner, "stream", |e| e.len() >= 40).await;
        bob.kill();
        let at_kill = published.get();
        wait_published(at_kill + 50).await;
        let restarted = {
            let (home, user) = (bob_home_path.to_path_buf(), user_home_path.to_path_buf());
            let a_addr = a_addr.clone();
            tokio::task::spawn_blocking(move || start_far(&home, &user, "bob.os", &a_addr, None))
                .await
                .unwrap()
        };
        let at_restart = published.get();
        events_until(sub, &owner, "stream", |e| {
            last_seq(e) >= Some(at_restart + 30)
        })
        .await;
        stop.set(true);
        (at_kill, restarted)
    };
    let ((), (at_kill, _bob_again)) = tokio::join!(publisher, controller);
    let total = published.get();
    assert!(
        total >= at_kill + 80,
        "published {total}, {at_kill} at the kill"
    );

    let got = events_until(sub, &owner, "stream", |e| last_seq(e) >= Some(total)).await;
    assert_events(&got, 1..=total, "bob");
    // Its init resubscribed once, from the cursor it had saved.
    let log = sub.call(json!({"room_log": null})).await;
    let resumes = log["resumes"].as_array().expect("resumes");
    assert_eq!(resumes.len(), 1, "{log}");
    let from = resumes[0]["from"].as_u64().expect("a saved cursor");
    assert!((40..=at_kill + 5).contains(&from), "{log}");
    assert!(resumes[0]["outcome"]["Ok"]["Joined"].is_object(), "{log}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_hear_offline_and_online_when_the_owner_node_goes_and_comes_back() {
    let b = node("b.os", &[], 0).await;
    let b_addr = b.p2p_addr().await;
    let c = node("c.os", &[&b_addr], 0).await;
    let far_home = TempDir::new("far");
    let user_home = TempDir::new("far-user");
    let p2p_port = free_port();
    let mut far = start_far(
        far_home.path(),
        user_home.path(),
        "far.os",
        &b_addr,
        Some(p2p_port),
    );
    upload_probe(far.port, far_home.path()).await;
    let owner = owner_on("far.os");
    let far_owner = At::Far(&b, "far.os@owner:probe:test");
    let subs = [(At::Here(&b, "sub"), "b"), (At::Here(&c, "sub"), "c")];
    for (sub, _) in subs {
        assert_eq!(joined(sub, &owner, "news", None).await, 1);
    }
    assert_eq!(publish_n(far_owner, "news", 0, 5).await, (1, 5));
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "news", |e| e.len() >= 5).await;
        assert_events(&got, 1..=5, name);
    }

    far.kill();
    let killed = Instant::now();
    // When each hub found the owner's node gone, read from its counter (no
    // polling of the probes, whose answers a loaded machine may delay).
    let offline_seen = |n: &TestNode| {
        let metrics = &n.node.services().kernel.metrics;
        metrics.rooms_offline.load(Ordering::Relaxed) > 0
    };
    while !(offline_seen(&b) && offline_seen(&c)) {
        assert!(
            killed.elapsed() < OFFLINE_WITHIN,
            "no offline within {OFFLINE_WITHIN:?} (b: {}, c: {}): not from the connection's close",
            offline_seen(&b),
            offline_seen(&c)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "hubs found the owner's node gone after {:?}",
        killed.elapsed()
    );
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "news", |e| e.len() >= 6).await;
        assert_eq!(got[5], json!("offline"), "{name}: {got:?}");
    }

    // Back on the same home and peer port: the hubs rejoin by themselves.
    let _far = start_far(
        far_home.path(),
        user_home.path(),
        "far.os",
        &b_addr,
        Some(p2p_port),
    );
    // Back: `online`, then (its tail was in memory, so this is another
    // life of the room) `ended`, and the new stream from seq 1.
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "news", |e| e.len() >= 8).await;
        assert_eq!(
            got[6..8],
            [json!("online"), json!("ended")],
            "{name}: {got:?}"
        );
    }
    assert_eq!(publish_n(far_owner, "news", 5, 3).await, (1, 3));
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "news", |e| last_seq(&e[8..]) >= Some(3)).await;
        let after = &got[8..];
        let seqs: Vec<Option<u64>> = after.iter().map(seq).collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)], "{name}: {got:?}");
        let payloads: Vec<&Value> = after.iter().map(|e| &e["event"]["payload"]["i"]).collect();
        assert_eq!(payloads, [5, 6, 7], "{name}");
    }
    c.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_copy_per_subscribing_node() {
    const PER_NODE: usize = 50;
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], PER_NODE).await;
    let c = node("c.os", &[&a_addr], PER_NODE).await;
    let owner = owner_on("a.os");
    let names: Vec<String> = (0..PER_NODE).map(|i| format!("s{i}")).collect();
    let subs: Vec<At> = [&b, &c]
        .into_iter()
        .flat_map(|n| names.iter().map(move |s| At::Here(n, s)))
        .collect();
    // The first join of each node connects it; the rest join at once.
    for sub in [subs[0], subs[PER_NODE]] {
        joined(sub, &owner, "wide", None).await;
    }
    let rest = subs
        .iter()
        .filter(|s| !matches!(s, At::Here(_, "s0")))
        .map(|&sub| joined(sub, &owner, "wide", None));
    futures::future::join_all(rest).await;

    let relays = || {
        a.node
            .services()
            .kernel
            .metrics
            .rooms_relays
            .load(Ordering::Relaxed)
    };
    for n in 1..=2u64 {
        let before = relays();
        let reply = a
            .ask(
                "owner:probe:test",
                json!({"publish": {"room": "wide", "payload": {"i": n - 1}}}),
            )
            .await
            .unwrap();
        assert_eq!(reply, json!({"Ok": {"Published": {"seq": n}}}));
        for &sub in &subs {
            let got = events_until(sub, &owner, "wide", |e| e.len() as u64 >= n).await;
            assert_events(&got, 1..=n, "a subscriber");
        }
        assert_eq!(relays() - before, 2, "relays of event {n}");
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// The deliveries of `room` at `sub`, polled until the last event is
/// `last`; asks refused while the subscriber's mailbox is full are retried.
async fn events_of_busy(sub: &TestNode, owner: &str, room: &str, last: u64) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let log = sub
            .ask_within("sub:probe:test", json!({"room_log": null}), WITHIN)
            .await;
        if let Ok(log) = log {
            let got = log["rooms"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["owner"] == owner && r["room"] == room)
                .and_then(|r| r["events"].as_array().cloned())
                .unwrap_or_default();
            if last_seq(&got) == Some(last) {
                return got;
            }
        }
        assert!(
            t.elapsed() < WITHIN * 4,
            "the lagging subscriber never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_too_slow_for_the_stream_lags_while_the_others_keep_up() {
    const EVENTS: u64 = 2000;
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    // b's processes take 64 queued requests; its subscriber records every
    // delivery durably, far slower than a burst arrives.
    let home = TempDir::new("b.os");
    let mut config = test_config(home.path(), "b.os");
    config.net.bootstrap = vec![a_addr.clone()];
    config.limits.mailbox_requests = 64;
    let b = TestNode::start_with(config, home).await;
    b.install_probe(manifest(0)).await;
    let c = node("c.os", &[&a_addr], 0).await;
    let owner = owner_on("a.os");
    let (slow, fast) = (At::Here(&b, "sub"), At::Here(&c, "sub"));
    for sub in [slow, fast, At::Here(&a, "sub")] {
        assert_eq!(joined(sub, &owner, "burst", None).await, 1);
    }

    // The owner publishes as fast as its hub acknowledges: each publish
    // is answered whatever the slow subscriber does.
    let t = Instant::now();
    assert_eq!(
        publish_n(At::Here(&a, "owner"), "burst", 0, EVENTS).await,
        (1, EVENTS)
    );
    eprintln!("{EVENTS} acked publishes took {:?}", t.elapsed());

    // The others get every event, in order, once.
    for (sub, name) in [(fast, "c"), (At::Here(&a, "sub"), "a")] {
        let got = events_until(sub, &owner, "burst", |e| last_seq(e) >= Some(EVENTS)).await;
        assert_events(&got, 1..=EVENTS, name);
    }

    // The slow one heard `lagged` and was replayed from the tail: every
    // event it got once and in order, a hole only where a `gap` says so,
    // up to the last.
    let got = events_of_busy(&b, &owner, "burst", EVENTS).await;
    let lagged: Vec<&Value> = got.iter().filter(|e| e.get("lagged").is_some()).collect();
    assert!(
        !lagged.is_empty(),
        "no lagged among {} deliveries",
        got.len()
    );
    let mut expect_next = 1;
    for event in &got {
        if let Some(seq) = seq(event) {
            assert_eq!(seq, expect_next, "after {expect_next}: {event}");
            assert_eq!(event["event"]["payload"]["i"], seq - 1, "{event}");
            expect_next = seq + 1;
        } else if let Some(next) = event["gap"]["next"].as_u64() {
            assert!(next >= expect_next, "a gap back to {next}");
            expect_next = next;
        } else if let Some(from) = event["lagged"]["from"].as_u64() {
            assert_eq!(from, expect_next, "lagged from where it is: {event}");
        } else {
            panic!("unexpected delivery {event}");
        }
    }
    eprintln!(
        "slow subscriber: {} deliveries, {} lagged, {} events",
        got.len(),
        lagged.len(),
        got.iter().filter_map(seq).count()
    );
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_room_survives_its_owner_node_killed_and_restarted() {
    let b = node("b.os", &[], 0).await;
    let b_addr = b.p2p_addr().await;
    let c = node("c.os", &[&b_addr], 0).await;
    let far_home = TempDir::new("far");
    let user_home = TempDir::new("far-user");
    let p2p_port = free_port();
    let start = || {
        start_far(
            far_home.path(),
            user_home.path(),
            "far.os",
            &b_addr,
            Some(p2p_port),
        )
    };
    let mut far = start();
    upload_probe(far.port, far_home.path()).await;
    let owner = owner_on("far.os");
    let far_owner = At::Far(&b, "far.os@owner:probe:test");
    let durable = |base: u64| json!({"publish_n": {"room": "journal", "base": base, "count": 5, "durable": true}});
    let subs = [(At::Here(&b, "sub"), "b"), (At::Here(&c, "sub"), "c")];
    for (sub, _) in subs {
        assert_eq!(joined(sub, &owner, "journal", None).await, 1);
    }
    let reply = far_owner.call(durable(0)).await;
    assert_eq!(reply["ok"]["seqs"], json!([1, 5]), "{reply}");
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "journal", |e| e.len() >= 5).await;
        assert_events(&got, 1..=5, name);
    }

    far.kill();
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "journal", |e| e.len() >= 6).await;
        assert_eq!(got[5], json!("offline"), "{name}: {got:?}");
    }
    let _far = start();
    // The restarted owner goes on in the same life of the room: 6..10,
    // whether the subscribers rejoin before (a replay from their cursor)
    // or after (live): `online`, then exactly the events they missed.
    let reply = far_owner.call(durable(5)).await;
    assert_eq!(reply["ok"]["seqs"], json!([6, 10]), "{reply}");
    for (sub, name) in subs {
        let got = events_until(sub, &owner, "journal", |e| last_seq(e) >= Some(10)).await;
        assert_eq!(
            got[5..7],
            [json!("offline"), json!("online")],
            "{name}: {got:?}"
        );
        let events: Vec<Value> = got.iter().filter(|e| seq(e).is_some()).cloned().collect();
        assert_events(&events, 1..=10, name);
        assert_eq!(
            got.len(),
            12,
            "{name}: nothing else (no ended, no gap): {got:?}"
        );
    }
    c.stop().await;
    b.stop().await;
}

mod bursts;
