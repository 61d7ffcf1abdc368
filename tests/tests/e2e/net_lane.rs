//! Lanes (`net/lane.rs`): two real nodes on loopback move their message
//! streams off libp2p onto their own Noise-authenticated TCP connection,
//! keep every message and its order across the move, and drop the lane
//! with the peer. The lane port takes junk, silence and more handshakes
//! than it has slots without the node missing a message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::native::NativeEndpoint;
use hearth::types::{Address, Message};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::*;

fn manifest() -> Value {
    json!([net_probe("net"), net_probe("sink")])
}

async fn node(name: &str, bootstrap: &[&str]) -> TestNode {
    peer_node(name, bootstrap, manifest()).await
}

/// Ask `target` through `n`'s net probe, retrying for 20 s while offline.
async fn ask_via(n: &TestNode, target: &str, body: Value) -> Value {
    ask_via_net_probe(n, target, body, 10_000, Duration::from_secs(20)).await
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blast `count` fire-and-forget messages from `from` to `to`'s sink and
/// wait until the sink saw `total` in all, with `restarts` out of order
/// (each blast starts again at seq 0).
async fn blast(from: &TestNode, to: &TestNode, count: u64, total: u64, restarts: u64) {
    let target = format!("{}@sink:probe:test", to.node.name());
    let sent = from
        .ask(
            "net:probe:test",
            json!({"blast": {"target": target, "count": count}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"sent": count, "errors": 0}));
    let got = to
        .received_until("sink:probe:test", Duration::from_secs(20), |got| {
            got["count"] == total
        })
        .await;
    assert_eq!(got["count"], total, "{got}");
    assert_eq!(got["out_of_order"], restarts, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_streams_move_onto_lanes_in_order_and_lanes_end_with_the_peer() {
    let a = node("lane-a.os", &[]).await;
    let a_addr = a.p2p_addr().await;
    let b = node("lane-b.os", &[&a_addr]).await;
    assert!(a.node.net().lane_port().is_some());

    // Messages flow from the first answer on, while the lanes come up.
    let reply = ask_via(&a, "lane-b.os@net:probe:test", json!({"echo": 1})).await;
    assert_eq!(reply["ok"], 1, "{reply}");
    for round in 0..5 {
        blast(&a, &b, 500, 500 * (round + 1), round).await;
    }
    wait_for("a's stream to b on a lane", || a.node.net().lanes() == 1).await;
    let reply = ask_via(&b, "lane-a.os@net:probe:test", json!({"echo": "back"})).await;
    assert_eq!(reply["ok"], "back", "{reply}");
    wait_for("b's stream to a on a lane", || b.node.net().lanes() == 1).await;

    // On the lanes: requests both ways, and order.
    blast(&a, &b, 1000, 3500, 5).await;
    for i in 0..20 {
        let reply = ask_via(&a, "lane-b.os@net:probe:test", json!({"echo": i})).await;
        assert_eq!(reply["ok"], i, "{reply}");
    }

    // The peer leaves: the lane goes with it, and a request fails typed.
    b.stop().await;
    wait_for("a's lane to end with b", || a.node.net().lanes() == 0).await;
    let reply = a
        .ask("net:probe:test", json!({"ask": {"target": "lane-b.os@net:probe:test", "body": 1, "timeout_ms": 3000, "context": ""}}))
        .await
        .unwrap();
    assert!(reply["err"]["kind"].is_string(), "{reply}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_silence_and_a_handshake_flood_on_the_lane_port_leave_the_node_serving() {
    let a = node("lane-v.os", &[]).await;
    let port = a.node.net().lane_port().expect("a lane listener");
    let lane = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Junk instead of a handshake, and a huge length prefix.
    for junk in [vec![0xffu8; 70_000], vec![0xff, 0xff, 0, 0, 1, 2, 3]] {
        let mut s = tokio::net::TcpStream::connect(lane).await.unwrap();
        let _ = s.write_all(&junk).await;
    }
    // More silent connections than there are handshake slots: the ones
    // past them are closed at once, the rest time out.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(tokio::net::TcpStream::connect(lane).await.unwrap());
    }

    // A peer joins meanwhile: its messages arrive in order, on a lane or
    // on its libp2p stream.
    let a_addr = a.p2p_addr().await;
    let b = node("lane-w.os", &[&a_addr]).await;
    let reply = ask_via(&b, "lane-v.os@net:probe:test", json!({"echo": 7})).await;
    assert_eq!(reply["ok"], 7, "{reply}");
    blast(&b, &a, 1000, 1000, 0).await;

    // The flood held only the victim's listener: its own stream to the
    // newcomer moves onto the newcomer's lane, and messages keep flowing.
    drop(silent);
    wait_for("v's stream to w on a lane", || a.node.net().lanes() == 1).await;
    blast(&b, &a, 1000, 2000, 1).await;
    let reply = ask_via(&b, "lane-v.os@net:probe:test", json!({"echo": 8})).await;
    assert_eq!(reply["ok"], 8, "{reply}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_listens_on_its_configured_port_and_a_taken_one_stops_the_node() {
    let port = free_port();
    let home = TempDir::new("lane-port-a.os");
    let mut config = test_config(home.path(), "lane-port-a.os");
    config.net.lane_port = port;
    let a = TestNode::start_with(config, home).await;
    a.install_probe(manifest()).await;
    assert_eq!(a.node.net().lane_port(), Some(port));
    // Something listens there that speaks the lane handshake: junk is
    // taken and closed, not refused at connect.
    let lane = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = tokio::net::TcpStream::connect(lane).await.unwrap();
    let _ = s.write_all(&[0xff; 64]).await;
    drop(s);

    // A peer dials that port: its stream moves onto the lane.
    let a_addr = a.p2p_addr().await;
    let b = node("lane-port-b.os", &[&a_addr]).await;
    let reply = ask_via(&b, "lane-port-a.os@net:probe:test", json!({"echo": 3})).await;
    assert_eq!(reply["ok"], 3, "{reply}");
    wait_for("b's stream to a on a's configured lane", || {
        b.node.net().lanes() == 1
    })
    .await;
    blast(&b, &a, 500, 500, 0).await;

    // A second node told to take the same port does not start, typed.
    let home = TempDir::new("lane-port-c.os");
    let mut config = test_config(home.path(), "lane-port-c.os");
    config.net.lane_port = port;
    let refused = hearth::Node::start(config).await;
    let Err(error) = refused else {
        panic!("a node started on a lane port already taken");
    };
    let text = error.to_string();
    assert!(text.contains(&port.to_string()), "{text}");
    b.stop().await;
    a.stop().await;
}

/// Reset every established TCP connection to or from these ports, as a
/// broken path would (`ss -K`: needs root, like the NAT tests). Returns
/// how many sockets were closed.
fn cut_connections(ports: &[u16]) -> usize {
    let terms: Vec<String> = ports
        .iter()
        .map(|p| format!("sport = :{p} or dport = :{p}"))
        .collect();
    let filter = format!("( {} )", terms.join(" or "));
    let out = std::process::Command::new("ss")
        .args(["-K", "-t", "-n", "state", "established", &filter])
        .output()
        .expect("ss runs");
    assert!(out.status.success(), "ss -K: {out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    listed.lines().filter(|l| l.contains("127.0.0.1")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_cut_mid_blast_keeps_order_and_a_peer_leaving_fails_asks_typed() {
    let a = node("lane-cut-a.os", &[]).await;
    let a_addr = a.p2p_addr().await;
    let b = node("lane-cut-b.os", &[&a_addr]).await;
    let reply = ask_via(&a, "lane-cut-b.os@net:probe:test", json!({"echo": 1})).await;
    assert_eq!(reply["ok"], 1, "{reply}");
    let reply = ask_via(&b, "lane-cut-a.os@net:probe:test", json!({"echo": 2})).await;
    assert_eq!(reply["ok"], 2, "{reply}");
    let ports = [
        a.node.net().lane_port().expect("a lane listener"),
        b.node.net().lane_port().expect("a lane listener"),
    ];

    // An ordered blast in windows (each closed by an ask with a 60 s
    // timeout), from while the lanes come up; both lanes are reset under
    // it once a quarter has arrived.
    const N: u64 = 100_000;
    let blast = {
        let body = json!({"bench_blast": {"target": "lane-cut-b.os@sink:probe:test",
                                          "count": N, "window": 200, "timeout_ms": 60_000}});
        let injector = a.node.injector().clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let v = probe_ask(&injector, "lane-cut-a.os", body).await;
            (v, t.elapsed())
        })
    };
    wait_for("both streams on lanes", || {
        a.node.net().lanes() == 1 && b.node.net().lanes() == 1
    })
    .await;
    let t = Instant::now();
    loop {
        let got = b
            .ask("sink:probe:test", json!({"received": null}))
            .await
            .unwrap();
        let count = got["count"].as_u64().unwrap_or(0);
        if count > N / 4 {
            assert!(count < N, "the blast ended before the cut: {got}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "blast stalled: {got}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cut = cut_connections(&ports);
    assert!(cut >= 2, "no lane connection was reset ({cut})");

    // No barrier waited out its 60 s timeout: a lost answer failed at once.
    let (sent, took) = blast.await.unwrap();
    assert!(sent["count"] == N, "{sent}");
    // What arrived is the blast in order, save the frames on the wire when
    // the lane broke (one gap: frames queued behind the broken lane went
    // on the next stream), no duplicate (then more would have arrived
    // than were sent), nothing reordered, and the tail came over the new
    // stream. A send the link refused (typed, counted in `refused`) never
    // arrives and may make one more jump; a barrier that failed typed
    // (`errors` less `refused`) loses nothing.
    let got = b
        .received_until("sink:probe:test", Duration::from_secs(20), |got| {
            got["last"] == N - 1
        })
        .await;
    let count = got["count"].as_u64().unwrap();
    let refused = sent["refused"].as_u64().unwrap();
    let failed_barriers = sent["errors"].as_u64().unwrap() - refused;
    let gaps = got["out_of_order"].as_u64().unwrap();
    let lost = N.saturating_sub(count + refused);
    println!(
        "lane cut: {cut} sockets reset; {N} sent in {took:?}: {count} arrived, {refused} refused \
         (typed), {failed_barriers} barriers failed (typed), {lost} lost on the wire, {gaps} gaps"
    );
    assert!(
        took < Duration::from_secs(50),
        "the blast took {took:?}: {sent}"
    );
    assert_eq!(got["last"], N - 1, "{got}");
    assert!(count <= N, "{got}");
    assert!(gaps <= 1 + refused, "{got} {sent}");
    // Messages flow again, and the streams settle on lanes again.
    let reply = ask_via(&a, "lane-cut-b.os@net:probe:test", json!({"echo": 3})).await;
    assert_eq!(reply["ok"], 3, "{reply}");
    wait_for("a's stream back on a lane", || a.node.net().lanes() == 1).await;

    // Only a's lane to b is reset, while a has nothing more to write: a
    // sees it anyway, and the ask it sent there fails typed at once (its
    // frame or its answer may be lost), not at its 60 s timeout.
    let ask = {
        let injector = a.node.injector().clone();
        let body = json!({"ask": {"target": "lane-cut-b.os@net:probe:test",
                                  "body": {"never_reply": null}, "timeout_ms": 60_000}});
        tokio::spawn(async move { probe_ask(&injector, "lane-cut-a.os", body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    assert!(
        cut_connections(&ports[1..]) >= 1,
        "a's lane to b was not reset"
    );
    let reply = ask.await.unwrap();
    assert_eq!(reply["err"]["kind"], "offline", "{reply}");
    println!(
        "lane cut: a's idle lane to b reset; its ask failed typed in {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let reply = ask_via(&a, "lane-cut-b.os@net:probe:test", json!({"echo": 4})).await;
    assert_eq!(reply["ok"], 4, "{reply}");
    wait_for("a's stream on a lane once more", || {
        a.node.net().lanes() == 1
    })
    .await;

    // Asks in flight when the peer leaves fail typed, long before their
    // 60 s timeouts.
    let asks: Vec<_> = (0..20)
        .map(|_| {
            let injector = a.node.injector().clone();
            let body = json!({"ask": {"target": "lane-cut-b.os@net:probe:test",
                                      "body": {"never_reply": null}, "timeout_ms": 60_000}});
            tokio::spawn(async move { probe_ask(&injector, "lane-cut-a.os", body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    b.stop().await;
    for ask in asks {
        let reply = ask.await.unwrap();
        // The leaving node tells the asker its process is gone, or the
        // link fails: typed either way.
        let kind = reply["err"]["kind"].as_str().unwrap_or("none");
        assert!(["offline", "process-exited"].contains(&kind), "{reply}");
    }
    println!(
        "lane cut: the peer left; 20 asks failed typed in {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    a.stop().await;
}

/// Ask `name`'s `net:probe:test` through its injector (a handle that can
/// move into a task), within two minutes.
async fn probe_ask(injector: &Arc<NativeEndpoint>, name: &str, body: Value) -> Value {
    let target = Address::parse_with_default("net:probe:test", name).expect("valid address");
    let bytes = serde_json::to_vec(&body).expect("json");
    let (_, km) = injector
        .ask(target, bytes, None, Duration::from_secs(120))
        .await
        .expect("the probe answers");
    match km.message {
        Message::Response(r) => serde_json::from_slice(&r.body).expect("json reply"),
        other => panic!("not a response: {other:?}"),
    }
}

/// The resident set of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A `hearth` node in its own process (so its RSS is its own), killed
/// when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_the_lane_port_keeps_the_nodes_memory_bounded_and_it_serving() {
    let home = TempDir::new("lane-flood.os");
    let (http, p2p, lane_port) = (free_port(), free_port(), free_port());
    let child = std::process::Command::new(binaries().join("hearth"))
        .args(["--name", "lane-flood.os", "--home"])
        .arg(home.path())
        .args(["--port", &http.to_string(), "--p2p-port", &p2p.to_string()])
        .args(["--lane-port", &lane_port.to_string()])
        .args(["--p2p-bind", "127.0.0.1", "--no-mdns"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hearth");
    let child = Child(child);
    let pid = child.0.id();
    let lane = std::net::SocketAddr::from(([127, 0, 0, 1], lane_port));
    let t = Instant::now();
    while tokio::net::TcpStream::connect(lane).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no lane listener at {lane}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rss_of(pid);

    // Waves of hostile connections for about ten seconds: junk, silence
    // held open, and slow handshakes (a 64 KiB message announced, a byte
    // every 100 ms).
    let mut peak = before;
    let mut held = Vec::new();
    let started = Instant::now();
    let mut opened = 0usize;
    while started.elapsed() < Duration::from_secs(10) {
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(lane).await {
                let _ = s.write_all(&[0x5a; 4096]).await;
                opened += 1;
            }
        }
        for _ in 0..20 {
            if let Ok(s) = tokio::net::TcpStream::connect(lane).await {
                held.push(s);
                opened += 1;
            }
        }
        for _ in 0..5 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(lane).await {
                opened += 1;
                tokio::spawn(async move {
                    let _ = s.write_all(&[0xff, 0xff]).await;
                    for _ in 0..100 {
                        if s.write_all(&[0]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
            }
        }
        if held.len() > 400 {
            held.drain(..200);
        }
        peak = peak.max(rss_of(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "lane flood: {opened} connections in {:?}; node RSS {:.1} MiB before, {:.1} MiB at peak",
        started.elapsed(),
        mib(before),
        mib(peak)
    );
    // Bounded: 16 handshake slots of at most a 64 KiB Noise message each,
    // and nothing kept per refused connection.
    assert!(
        peak < before + 48 * 1024 * 1024,
        "RSS grew from {:.1} to {:.1} MiB",
        mib(before),
        mib(peak)
    );

    // Serving once the flood's handshakes are cut (5 s each): a peer
    // joins, and its stream moves onto the flooded node's lane.
    drop(held);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let secret = loop {
        if let Ok(s) = std::fs::read_to_string(home.path().join(hearth::api::SECRET_FILE)) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status_url = format!("http://127.0.0.1:{http}{}", hearth::api::STATUS_PATH);
    let bootstrap = loop {
        let (_, _, body) = super::http::call(
            "GET",
            &status_url,
            &[(hearth::api::SECRET_HEADER, secret.trim())],
            b"",
        );
        let status: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(addr) = status["bootstrap"].as_str() {
            break addr.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "no bootstrap address: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b = node("lane-flood-b.os", &[&bootstrap]).await;
    let t = Instant::now();
    while b.node.net().lanes() != 1 {
        // Any message to the node opens the streams between them.
        let _ = b
            .ask_within(
                "lane-flood.os@net:distro:sys",
                json!(null),
                Duration::from_secs(2),
            )
            .await;
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the flooded node never took the peer's lane"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = rss_of(pid);
    println!(
        "lane flood: node RSS {:.1} MiB after the peer joined",
        mib(after)
    );
    b.stop().await;
}
