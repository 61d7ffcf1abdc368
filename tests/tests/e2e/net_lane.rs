//! Lanes (`net/lane.rs`): two real nodes on loopback move their message
//! streams off libp2p onto their own Noise-authenticated TCP connection,
//! keep every message and its order across the move, and drop the lane
//! with the peer. The lane port takes junk, silence and more handshakes
//! than it has slots without the node missing a message.

use std::time::{Duration, Instant};

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
    let t = Instant::now();
    let got = loop {
        let got = to
            .ask("sink:probe:test", json!({"received": null}))
            .await
            .unwrap();
        if got["count"] == total || t.elapsed() > Duration::from_secs(20) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
