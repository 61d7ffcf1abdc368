//! A hostile peer: a real libp2p node written here (TCP, Noise, Yamux, the
//! Hearth message protocol and Kademlia) that dials a real node on
//! loopback and sends what an attacker would. Each case checks that the
//! node still serves peers afterwards, and the memory cases run the node as
//! a child `hearth` process and bound its resident memory.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use hearth::api::{InjectRequest, MESSAGE_PATH};
use hearth::net::record::NameRecord;
use hearth::net::wire::{self, Frame};
use hearth::types::{Address, Message, SendErrorKind};
use libp2p::identity::Keypair;
use libp2p::kad;
use serde_json::{json, Value};

use crate::common::mallory::*;
use crate::common::*;

/// How much a node's resident memory may grow under one attack. Before
/// the hardening, the stalled-stream attack alone grew it by 6.4 GiB.
const RSS_GROWTH_BOUND_KIB: u64 = 160 * 1024;

/// A fresh peer says hello and asks a process that does not accept the
/// network: the victim must answer with a typed `Failed` frame.
async fn still_serves_peers(victim_addr: &str) {
    let honest = Mallory::connect(victim_addr).await;
    let mut inbox = Inbox::listen(&honest);
    let name = format!("honest-{}.os", now_millis() % 1_000_000);
    let mut stream = honest.hello_stream(&name).await;
    let to = "kv:distro:sys".to_string();
    write(
        &mut stream,
        &request(
            42,
            &format!("{name}@p:q:r"),
            &format!("victim.os@{to}"),
            json!({}),
            5000,
        ),
    )
    .await;
    match inbox.next().await {
        Frame::Failed { id, error, .. } => {
            assert_eq!(id, 42);
            assert_eq!(error.kind, SendErrorKind::CapabilityMissing, "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A real `hearth` child process: the node under attack.
struct Victim {
    process: HearthProcess,
    home: TempDir,
    _user_home: TempDir,
    addr: String,
    secret: String,
}

impl Victim {
    fn start() -> Self {
        let (home, user_home) = (TempDir::new("victim"), TempDir::new("victim-user"));
        let args = ["--p2p-bind", "127.0.0.1", "--no-mdns"];
        let process = HearthProcess::start(home.path(), user_home.path(), "victim.os", &args);
        let secret = std::fs::read_to_string(home.path().join(hearth::api::SECRET_FILE))
            .expect("admin secret");
        let url = format!(
            "http://127.0.0.1:{}{}",
            process.port,
            hearth::api::STATUS_PATH
        );
        let t = Instant::now();
        let addr = loop {
            let status: Value = ureq::get(&url)
                .header(hearth::api::SECRET_HEADER, secret.trim())
                .call()
                .expect("status")
                .body_mut()
                .read_json()
                .expect("status json");
            if let Some(addr) = status["bootstrap"].as_str() {
                break addr.to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "victim never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            process,
            home,
            _user_home: user_home,
            addr,
            secret: secret.trim().to_string(),
        }
    }

    /// Where and how to send it admin requests: off the test's runtime
    /// (`Injector::send` blocks), so several can be in flight.
    fn injector(&self) -> Injector {
        Injector {
            url: format!("http://127.0.0.1:{}{MESSAGE_PATH}", self.process.port),
            secret: self.secret.clone(),
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id()))
            .expect("victim alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn alive(&mut self) -> bool {
        matches!(self.process.child.try_wait(), Ok(None))
    }

    /// Alive, memory within the bound, and serving peers.
    async fn check(&mut self, before_kib: u64, case: &str) {
        assert!(self.alive(), "{case}: the node died:\n{}", self.log());
        let after = self.rss_kib();
        assert!(
            after <= before_kib + RSS_GROWTH_BOUND_KIB,
            "{case}: RSS grew from {before_kib} KiB to {after} KiB"
        );
        still_serves_peers(&self.addr).await;
        eprintln!("{case}: RSS {before_kib} KiB -> {after} KiB; still serving");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("hearth.log")).unwrap_or_default()
    }

    fn metric(&self, name: &str) -> u64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.process.port);
        let text = ureq::get(&url)
            .call()
            .expect("metrics")
            .body_mut()
            .read_to_string()
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

/// The victim's admin message endpoint (as `kit i` uses it).
#[derive(Clone)]
struct Injector {
    url: String,
    secret: String,
}

impl Injector {
    /// Send `body` to `target`: its answer's body, or the admin error's
    /// kind. `non_block` returns once the node took the message.
    fn send(
        &self,
        target: &str,
        body: Value,
        timeout_ms: u64,
        non_block: bool,
    ) -> Result<Value, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let request = InjectRequest {
            target: target.into(),
            body,
            timeout_ms: Some(timeout_ms),
            non_block,
        };
        let mut response = agent
            .post(&self.url)
            .header(hearth::api::SECRET_HEADER, &self.secret)
            .send_json(&request)
            .expect("the admin API answers");
        let ok = response.status().is_success();
        let reply: Value = response.body_mut().read_json().expect("a JSON reply");
        if ok {
            Ok(reply["body"].clone())
        } else {
            Err(reply["kind"].as_str().unwrap_or("no kind").to_string())
        }
    }

    /// [`Self::send`] on a blocking thread.
    async fn ask(&self, target: &str, body: Value, timeout_ms: u64) -> Result<Value, String> {
        let (this, target) = (self.clone(), target.to_string());
        tokio::task::spawn_blocking(move || this.send(&target, body, timeout_ms, false))
            .await
            .expect("the ask ran")
    }
}

/// A body claiming a string of 2^60 bytes: variant `tag`, then bincode's
/// varint marker for a u64 length.
fn huge_length_frame(tag: u8) -> Vec<u8> {
    let mut body = vec![tag, 0xfd];
    body.extend_from_slice(&(1u64 << 60).to_le_bytes());
    body.extend_from_slice(b"xy");
    let mut framed = (body.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lengths_stalled_streams_junk_and_silence_leave_the_node_serving() {
    let mut victim = Victim::start();
    let before = victim.rss_kib();
    still_serves_peers(&victim.addr).await;

    // 1. A 14-byte frame claiming a 2^60-byte string, as the first frame
    // and after a valid hello.
    let mallory = Mallory::connect(&victim.addr).await;
    let mut s = mallory.stream().await.expect("stream");
    let _ = s.write_all(&huge_length_frame(0)).await;
    let mut s = mallory.hello_stream("mallory.os").await;
    let _ = s.write_all(&huge_length_frame(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    victim.check(before, "2^60-length string").await;

    // 2. 1,000 streams from 10 identities, each announcing a 16 MiB frame
    // and sending one byte; after hello and before.
    let (mut held, mut attackers) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let m = Mallory::connect(&victim.addr).await;
        for j in 0..100 {
            let mut s = if j % 2 == 0 {
                match m.stream().await {
                    Some(s) => s,
                    None => continue,
                }
            } else {
                m.hello_stream(&format!("stall{i}.os")).await
            };
            let _ = s.write_all(&(16u32 << 20).to_be_bytes()).await;
            let _ = s.write_all(&[0]).await;
            let _ = s.flush().await;
            held.push(s);
        }
        attackers.push(m);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    victim.check(before, "1,000 stalled 16 MiB frames").await;
    drop((held, attackers));

    // 3. Random and mutated frames on 1,000 streams.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut valid = Vec::new();
    wire::encode(
        &request(
            1,
            "junk.os@a:b:c",
            "victim.os@kv:distro:sys",
            json!({"x": 1}),
            1000,
        ),
        &mut valid,
    );
    for i in 0..10 {
        let m = Mallory::connect(&victim.addr).await;
        for j in 0..100 {
            let Some(mut s) = (if j % 2 == 0 {
                m.stream().await
            } else {
                Some(m.hello_stream(&format!("junk{i}.os")).await)
            }) else {
                continue;
            };
            let bytes: Vec<u8> = if j % 3 == 0 {
                (0..(next() % 512)).map(|_| next() as u8).collect()
            } else {
                let mut mutated = valid.clone();
                for _ in 0..1 + next() % 6 {
                    let at = (next() as usize) % mutated.len();
                    mutated[at] ^= (next() as u8).max(1);
                }
                mutated
            };
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    victim.check(before, "random and mutated frames").await;

    // 4. A stream that never says hello is closed after the deadline.
    let silent = Mallory::connect(&victim.addr).await;
    let mut s = silent.stream().await.expect("stream");
    let t = Instant::now();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(15), s.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent stream stays open: {closed:?}"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
    assert!(victim.metric("hearth_net_streams_refused_total") > 0);
    victim.check(before, "no hello").await;
}

/// An in-process victim with a networked probe (`net`) and one that is not
/// (`quiet`), and the attacker's identity already bound as `mallory.os`.
async fn victim_node() -> TestNode {
    let v = TestNode::start("victim.os").await;
    v.install_probe(json!([
        net_probe("net"),
        probe("quiet", true, json!("None"), &[])
    ]))
    .await;
    v
}

/// Ask `target` on the victim through its injector, in a task.
fn ask_task(v: &TestNode, target: &str, body: Value) -> tokio::task::JoinHandle<Value> {
    let injector = v.node.injector().clone();
    let target = Address::parse_with_default(target, "victim.os").expect("address");
    tokio::spawn(async move {
        let bytes = serde_json::to_vec(&body).expect("json");
        let (_, km) = injector
            .ask(target, bytes, None, Duration::from_secs(20))
            .await
            .expect("an answer");
        let Message::Response(r) = km.message else {
            panic!("a response")
        };
        serde_json::from_slice(&r.body).expect("json reply")
    })
}

fn unsolicited(v: &TestNode) -> u64 {
    let metrics = &v.node.services().kernel.metrics;
    metrics
        .net
        .unsolicited_answers
        .load(std::sync::atomic::Ordering::Relaxed)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_responses_and_failures_are_never_delivered() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let mut stream = mallory.hello_stream("mallory.os").await;
    let eve = Mallory::connect(&addr).await;
    let mut eve_stream = eve.hello_stream("eve.os").await;
    mallory.heard_as(v.node.net(), "mallory.os").await;

    // net:probe:test asks mallory; mallory sees a real id in flight.
    let body = json!({"ask": {"target": "mallory.os@x:y:z", "body": {"q": 1}, "timeout_ms": 8000, "context": "c"}});
    let asker = ask_task(&v, "net:probe:test", body);
    let (id, rsvp) = match inbox.next().await {
        Frame::Deliver(km) => (km.id, km.rsvp.expect("rsvp").to_string()),
        other => panic!("expected the request, got {other:?}"),
    };
    assert_eq!(rsvp, "victim.os@net:probe:test");

    // Askers that must hear only the real timer: the injector, and the
    // process that does not accept the network.
    let started = Instant::now();
    let timer = json!({"SetTimer": {"ms": 1500}});
    let quiet_ask = json!({"ask": {"target": "timer:distro:sys", "body": timer, "timeout_ms": 8000, "context": "t"}});
    let direct = ask_task(&v, "timer:distro:sys", timer);
    let via_quiet = ask_task(&v, "quiet:probe:test", quiet_ask);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Forgeries: the real id to the wrong processes, ids around it to
    // everyone, and the real id from another peer.
    let mut forged = 0;
    let targets = [
        "victim.os@quiet:probe:test",
        "victim.os@rpc:distro:sys",
        "victim.os@net:probe:test",
    ];
    for guess in id.wrapping_sub(100)..=id.wrapping_add(100) {
        for to in targets {
            if guess == id && to == "victim.os@net:probe:test" {
                continue;
            }
            write(
                &mut stream,
                &response(guess, "mallory.os@x:y:z", to, json!({"forged": true})),
            )
            .await;
            let error = hearth::types::SendError::new(
                SendErrorKind::Offline,
                &to.parse().expect("addr"),
                "forged",
            );
            write(
                &mut stream,
                &Frame::Failed {
                    id: guess,
                    rsvp: to.parse().expect("addr"),
                    error,
                },
            )
            .await;
            forged += 2;
        }
    }
    write(
        &mut eve_stream,
        &response(
            id,
            "eve.os@x:y:z",
            "victim.os@net:probe:test",
            json!({"forged": true}),
        ),
    )
    .await;
    forged += 1;
    wait_for("every forgery counted", || unsolicited(&v) >= forged).await;

    // The real answer, from the peer that was asked, to the asker.
    write(
        &mut stream,
        &response(id, "mallory.os@x:y:z", &rsvp, json!({"real": true})),
    )
    .await;
    let reply = asker.await.expect("task");
    assert_eq!(reply["ok"], json!({"real": true}), "{reply}");
    let (direct, via_quiet) = (direct.await.expect("task"), via_quiet.await.expect("task"));
    assert_eq!(direct["Ok"]["Fired"]["ms"], 1500, "{direct}");
    assert_eq!(via_quiet["ok"]["Ok"]["Fired"]["ms"], 1500, "{via_quiet}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "an answer came early"
    );
    assert_eq!(
        unsolicited(&v),
        forged,
        "every forgery dropped and counted, nothing else"
    );
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_chosen_request_ids_never_collide() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let mut stream = mallory.hello_stream("mallory.os").await;
    // A local asker holds an owed answer in `net` (it never replies).
    let local = v.ask_within(
        "net:probe:test",
        json!({"echo": "local"}),
        Duration::from_secs(5),
    );
    // The same id twice, the extremes, and a timeout that never ends.
    let ids = [7u64, 7, 0, u64::MAX];
    for (i, id) in ids.iter().enumerate() {
        let ms = if i == 3 { u64::MAX } else { 5000 };
        let frame = request(
            *id,
            "mallory.os@m:m:m",
            "victim.os@net:probe:test",
            json!({"echo": i}),
            ms,
        );
        write(&mut stream, &frame).await;
    }
    let mut answers = Vec::new();
    for _ in ids {
        match inbox.next().await {
            Frame::Deliver(km) => {
                let Message::Response(r) = km.message else {
                    panic!("a response")
                };
                let body: Value = serde_json::from_slice(&r.body).expect("json");
                answers.push((km.id, body.as_u64().expect("echo")));
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }
    answers.sort();
    assert_eq!(answers, vec![(0, 2), (7, 0), (7, 1), (u64::MAX, 3)]);
    // Services act for the sender's process id, so none takes a peer's
    // request, system or not.
    for service in ["http-server:distro:sys", "vfs:distro:sys", "rpc:distro:sys"] {
        let to = format!("victim.os@{service}");
        write(
            &mut stream,
            &request(9, "mallory.os@chat:chat:sys", &to, json!({}), 5000),
        )
        .await;
        match inbox.next().await {
            Frame::Failed { id: 9, error, .. } => assert!(
                matches!(
                    error.kind,
                    SendErrorKind::CapabilityMissing | SendErrorKind::UnknownProcess
                ),
                "{service}: {error}"
            ),
            other => panic!("{service}: expected a failure, got {other:?}"),
        }
    }
    assert_eq!(local.await.expect("local answer"), "local");
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_be_squatted_through_hello_or_the_dht_and_puts_are_limited() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let metric = |f: fn(&hearth::metrics::NetCounters) -> &std::sync::atomic::AtomicU64| {
        f(&v.node.services().kernel.metrics.net).load(std::sync::atomic::Ordering::Relaxed)
    };
    let bob = Mallory::connect(&addr).await;
    let _bob_stream = bob.hello_stream("bob.os").await;
    bob.heard_as(v.node.net(), "bob.os").await;

    // Through hello: another key claiming bob.os is closed and counted.
    let squatter = Mallory::connect(&addr).await;
    let mut s = squatter.hello_stream("bob.os").await;
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert_eq!(metric(|n| &n.names_refused), 1);
    // One key, many names: four bind, the fifth is refused. (Each stream
    // is closed once its name is bound: a peer holds few streams.)
    for i in 0..4 {
        let name = format!("alias{i}.os");
        let mut s = squatter.hello_stream(&name).await;
        squatter.heard_as(v.node.net(), &name).await;
        let _ = s.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _fifth = squatter.hello_stream("alias4.os").await;
    wait_for("the fifth name refused", || {
        metric(|n| &n.names_refused) == 2
    })
    .await;

    // Through the DHT: a squatter's record for bob.os, a record filed under
    // another name's key, and junk are all refused.
    let refused_before = metric(|n| &n.dht_refused);
    let squat = squatter.record("bob.os");
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("bob.os"), squat_bytes(&squat)))
        .await;
    let other = squatter.record("carol.os");
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("dave.os"), squat_bytes(&other)))
        .await;
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("erin.os"), vec![0xff; 64]))
        .await;
    wait_for("DHT squats refused", || {
        metric(|n| &n.dht_refused) >= refused_before + 3
    })
    .await;

    // A flood of valid puts from one peer: the rate limit refuses most.
    let flooder = Mallory::connect(&addr).await;
    let stored_before = metric(|n| &n.dht_stored);
    let refused_before = metric(|n| &n.dht_refused);
    let started = Instant::now();
    for i in 0..300 {
        let key = Keypair::generate_ed25519();
        let name = format!("flood{i}.os");
        let record = NameRecord::sign(&key, &name, vec![], 1).expect("sign");
        let _ = flooder
            .puts
            .send(kad::Record::new(name_key(&name), record.to_bytes()))
            .await;
    }
    let refused = || metric(|n| &n.dht_refused) - refused_before;
    let stored = || metric(|n| &n.dht_stored) - stored_before;
    wait_for("every put handled", || refused() + stored() == 300).await;
    let allowed = stored();
    let budget = 8.0 + 2.0 * started.elapsed().as_secs_f64();
    assert!(
        (allowed as f64) <= budget + 1.0,
        "{allowed} puts stored, budget {budget}"
    );
    still_serves_peers(&addr).await;
    v.stop().await;
}

fn name_key(name: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("/hearth/name/{name}"))
}

fn squat_bytes(record: &NameRecord) -> Vec<u8> {
    record.to_bytes()
}

/// How many message streams a node opens to a peer that resets each one
/// unread, with frames queued for it, before it gives the peer up: the
/// first, then one per redial (`MAX_REDIALS`, 10, in `net/mod.rs`).
const STREAMS_PER_GIVE_UP: usize = 11;
/// The least time one give-up takes: the redial back-off's waits (5 ms
/// doubling, at most 1 s) over `MAX_REDIALS` redials.
const GIVE_UP_SECS: f64 = 3.2;
/// What the burst below sends, and what one stream can take unread before
/// its reset (yamux's initial window).
const BURST_BYTES: usize = 256 * 16 * 1024;
const STREAM_WINDOW: usize = 256 * 1024;

/// Local asks answered while `until` runs, one every 100 ms: each must
/// answer (a timer set for 1 ms fires).
async fn local_asks_meanwhile<T>(
    injector: &Injector,
    until: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let answered = std::cell::Cell::new(0);
    let asks = async {
        loop {
            let fired = injector
                .ask("timer:distro:sys", json!({"SetTimer": {"ms": 1}}), 5_000)
                .await;
            let fired_ms = fired.as_ref().map(|v| v["Ok"]["Fired"]["ms"].clone());
            assert_eq!(fired_ms, Ok(json!(1)), "a local ask: {fired:?}");
            answered.set(answered.get() + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        out = until => (out, answered.get()),
        _ = asks => unreachable!(),
    }
}

/// A peer that takes every message stream the node opens to it and resets
/// it unread. The node must not reopen one every round trip: streams that
/// end with frames queued and none delivered back the redial off, and
/// after `MAX_REDIALS` of them the peer is given up, its requests failing
/// `offline` (not left to their timeouts). Local work goes on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_resets_our_streams_unread_is_given_up_and_asks_fail_offline() {
    let mut victim = Victim::start();
    let before = victim.rss_kib();
    let injector = victim.injector();
    let mallory = Mallory::connect(&victim.addr).await;
    // Every message stream the node opens to mallory is accepted, then
    // reset (dropped without a close) before a byte is read.
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut incoming = mallory
        .control
        .clone()
        .accept(MESSAGES)
        .expect("accept once");
    let count = opened.clone();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
        }
    });
    let streams = || opened.load(std::sync::atomic::Ordering::Relaxed);
    // Mallory says who it is; the node opens its stream back at once.
    let _hello = mallory.hello_stream("mallory.os").await;
    wait_for("the node's stream to mallory", || streams() >= 1).await;

    // 1. An ask: typed `offline`, not a silent timeout.
    let base = streams();
    let t = Instant::now();
    let asked = injector
        .ask("mallory.os@x:y:z", json!({"q": 1}), 30_000)
        .await;
    let seen = streams() - base;
    eprintln!("one ask: {asked:?} after {:?}, {seen} streams", t.elapsed());
    assert_eq!(asked, Err("offline".to_string()));
    assert!(seen <= STREAMS_PER_GIVE_UP, "{seen} streams for one ask");

    // 2. A burst of one-way messages past what a stream takes unread (its
    // send window), so each stream breaks with frames still queued, and
    // an ask behind them; local asks meanwhile.
    let base = streams();
    let t = Instant::now();
    let burst = {
        let injector = injector.clone();
        tokio::task::spawn_blocking(move || {
            let pad = "x".repeat(BURST_BYTES / 256);
            let mut refused = Vec::new();
            for i in 0..256 {
                let sent =
                    injector.send("mallory.os@x:y:z", json!({"i": i, "pad": pad}), 1_000, true);
                if let Err(kind) = sent {
                    refused.push(kind);
                }
            }
            refused
        })
    };
    let ((refused, asked), answered) = local_asks_meanwhile(&injector, async {
        let refused = burst.await.expect("the burst ran");
        let asked = injector
            .ask("mallory.os@x:y:z", json!({"q": 2}), 30_000)
            .await;
        (refused, asked)
    })
    .await;
    let seen = streams() - base;
    eprintln!(
        "a burst: {asked:?} after {:?}, {seen} streams, {} refused, {answered} local asks meanwhile",
        t.elapsed(),
        refused.len()
    );
    assert_eq!(asked, Err("offline".to_string()));
    // What the node would not queue it refused typed, at once.
    for kind in &refused {
        assert!(kind == "mailbox-full" || kind == "offline", "{kind}");
    }
    assert!(answered >= 1, "no local ask answered during the burst");
    // The burst may outlast give-ups (frames sent after one start over),
    // and a stream that took a window of frames before its reset counts as
    // delivered and starts the redials over: bounded by both, never a
    // stream per frame.
    let give_ups = 2.0 + t.elapsed().as_secs_f64() / GIVE_UP_SECS;
    let bound = (STREAMS_PER_GIVE_UP as f64 * give_ups) as usize + BURST_BYTES / STREAM_WINDOW;
    assert!(
        seen <= bound,
        "{seen} streams for the burst (bound {bound})"
    );
    let fired = injector
        .ask("timer:distro:sys", json!({"SetTimer": {"ms": 1}}), 5_000)
        .await;
    assert_eq!(fired.map(|v| v["Ok"]["Fired"]["ms"].clone()), Ok(json!(1)));
    // Alive, its memory bounded (the queues are), and serving peers.
    victim.check(before, "a peer resetting our streams").await;
}
