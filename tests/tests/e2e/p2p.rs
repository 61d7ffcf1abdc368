//! Nodes on loopback talking over libp2p: real nodes, real components, real
//! connections; discovery through bootstrap addresses and the DHT.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// Probes on every node: `net` may talk to other nodes, `local` may not.
fn manifest() -> Value {
    json!([
        net_probe("net"),
        net_probe("sink"),
        probe("local", true, json!("None"), &[])
    ])
}

async fn node(name: &str, bootstrap: &[&str]) -> TestNode {
    peer_node(name, bootstrap, manifest()).await
}

/// Ask `target` through `n`'s net probe, retrying for 15 s while offline.
async fn ask_via(n: &TestNode, target: &str, body: Value, timeout_ms: u64) -> Value {
    ask_via_net_probe(n, target, body, timeout_ms, Duration::from_secs(15)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_requests_fire_and_forget_order_and_errors() {
    let a = node("a.os", &[]).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr]).await;

    // Request/response between WASM processes on two nodes.
    let reply = ask_via(&a, "b.os@net:probe:test", json!({"echo": {"x": 1}}), 5000).await;
    assert_eq!(reply["ok"], json!({"x": 1}), "{reply}");
    assert_eq!(reply["context"], "ctx");
    // And the other way.
    let reply = ask_via(&b, "a.os@net:probe:test", json!({"echo": "back"}), 5000).await;
    assert_eq!(reply["ok"], "back", "{reply}");

    // Fire-and-forget, then 1,000 in order.
    let sent = a
        .ask(
            "net:probe:test",
            json!({"blast": {"target": "b.os@sink:probe:test", "count": 1000}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"sent": 1000, "errors": 0}));
    let got = b
        .received_until("sink:probe:test", Duration::from_secs(10), |got| {
            got["count"] == 1000
        })
        .await;
    assert_eq!(got["count"], 1000, "{got}");
    assert_eq!(got["out_of_order"], 0, "{got}");

    // A timeout across nodes comes back with the context.
    let t = Instant::now();
    let reply = ask_via(&a, "b.os@net:probe:test", json!({"never_reply": null}), 300).await;
    assert_eq!(reply["err"]["kind"], "timeout", "{reply}");
    assert_eq!(reply["err"]["context"], "ctx");
    assert!(t.elapsed() >= Duration::from_millis(300));

    // The peer answers what it cannot deliver with a typed error, at once.
    for (target, kind) in [
        ("b.os@nobody:probe:test", "unknown-process"),
        ("b.os@local:probe:test", "capability-missing"),
    ] {
        let t = Instant::now();
        let reply = ask_via(&a, target, json!({"echo": 1}), 10_000).await;
        assert_eq!(reply["err"]["kind"], kind, "{target}: {reply}");
        assert_eq!(reply["err"]["context"], "ctx", "{reply}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{target}: {:?}",
            t.elapsed()
        );
    }
    // A process without the network capability cannot leave its node.
    let reply = a
        .ask("local:probe:test", json!({"ask": {"target": "b.os@net:probe:test", "body": 1, "timeout_ms": 1000, "context": ""}}))
        .await
        .unwrap();
    assert_eq!(reply["err"]["kind"], "capability-missing", "{reply}");
    // A name nobody knows is an error, not a silent wait.
    let reply = ask_via(&a, "nobody.os@net:probe:test", json!({"echo": 1}), 30_000).await;
    assert_eq!(reply["err"]["kind"], "offline", "{reply}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_known_only_through_the_dht_is_reachable_by_name() {
    let hub = node("hub.os", &[]).await;
    let hub_addr = hub.p2p_addr().await;
    let b = node("b.os", &[&hub_addr]).await;
    let c = node("c.os", &[&hub_addr]).await;
    // b and c never met: b finds c's signed record in the DHT.
    let reply = ask_via(&b, "c.os@net:probe:test", json!({"echo": "via dht"}), 5000).await;
    assert_eq!(reply["ok"], "via dht", "{reply}");
    c.stop().await;
    b.stop().await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_key_cannot_take_a_bound_name() {
    let a = node("a.os", &[]).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr]).await;
    let reply = ask_via(&b, "a.os@net:probe:test", json!({"echo": "real"}), 5000).await;
    assert_eq!(reply["ok"], "real");
    // An impostor with its own key claims a.os and connects to b.
    let impostor = node("a.os", &[&b.p2p_addr().await]).await;
    let impostor_id = impostor.node.net().peer_id().to_base58();
    let net = b.node.net();
    let t = Instant::now();
    while !net.peers().iter().any(|p| p.peer_id == impostor_id) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the impostor never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its hello has had time to arrive, and be refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peers = net.peers();
    let seen = peers.iter().find(|p| p.peer_id == impostor_id);
    assert!(
        seen.is_none_or(|p| p.name.is_none()),
        "the impostor's name must not be bound: {peers:?}"
    );
    // Messages to a.os still reach the real a.os.
    a.ask("net:probe:test", json!({"state_set": "the real one"}))
        .await
        .unwrap();
    let reply = ask_via(&b, "a.os@net:probe:test", json!({"state_get": null}), 5000).await;
    assert_eq!(reply["ok"]["value"], "the real one", "{reply}");
    impostor.stop().await;
    b.stop().await;
    a.stop().await;
}

/// The far node: a real `hearth` that joins `bootstrap` on loopback.
fn start_far(home: &Path, user_home: &Path, bootstrap: &str) -> HearthProcess {
    let args = [
        "--p2p-bind",
        "127.0.0.1",
        "--no-mdns",
        "--bootstrap",
        bootstrap,
    ];
    HearthProcess::start(home, user_home, "far.os", &args)
}

/// Install a package on a node in another process, through its admin API.
fn upload(port: u16, node_home: &Path, files: Vec<hearth::api::PackageFile>) {
    let secret = std::fs::read_to_string(node_home.join(hearth::api::SECRET_FILE)).unwrap();
    let body = bincode::serde::encode_to_vec(
        hearth::api::PackageUpload { files },
        bincode::config::standard(),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}{}", hearth::api::INSTALL_PATH);
    ureq::post(&url)
        .header(hearth::api::SECRET_HEADER, secret.trim())
        .send(&body[..])
        .expect("install on the far node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_peer_fails_pending_requests_at_once_and_restart_resumes() {
    let a = node("a.os", &[]).await;
    let a_addr = a.p2p_addr().await;
    let far_home = TempDir::new("far");
    let user_home = TempDir::new("far-user");
    let mut far = start_far(far_home.path(), user_home.path(), &a_addr);
    let port = far.port;
    let home = far_home.path().to_path_buf();
    tokio::task::spawn_blocking(move || upload(port, &home, probe_package(manifest())))
        .await
        .unwrap();
    let reply = ask_via(&a, "far.os@net:probe:test", json!({"echo": "hello"}), 5000).await;
    assert_eq!(reply["ok"], "hello", "{reply}");

    // Three requests the far node holds without answering, then kill -9.
    let pending: Vec<_> = (0..3)
        .map(|i| {
            let injector = a.node.injector().clone();
            let target = hearth::types::Address::parse_with_default("net:probe:test", "a.os").unwrap();
            let body = json!({"ask": {"target": "far.os@net:probe:test", "body": {"never_reply": null}, "timeout_ms": 30_000, "context": format!("p{i}")}});
            tokio::spawn(async move {
                injector
                    .ask(target, serde_json::to_vec(&body).unwrap(), None, Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    far.kill();
    let killed_at = Instant::now();
    for (i, task) in pending.into_iter().enumerate() {
        let (_, km) = task.await.unwrap().expect("the probe answers");
        let hearth::types::Message::Response(r) = km.message else {
            panic!("a response")
        };
        let reply: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(reply["err"]["kind"], "offline", "{reply}");
        assert_eq!(reply["err"]["context"], format!("p{i}"));
    }
    assert!(
        killed_at.elapsed() < Duration::from_secs(3),
        "offline took {:?}",
        killed_at.elapsed()
    );

    // While it is down, a request fails fast rather than waiting 30 s.
    let t = Instant::now();
    let reply = a
        .ask("net:probe:test", json!({"ask": {"target": "far.os@net:probe:test", "body": 1, "timeout_ms": 30_000, "context": "down"}}))
        .await
        .unwrap();
    assert_eq!(reply["err"]["kind"], "offline", "{reply}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "offline took {:?}",
        t.elapsed()
    );

    // Back with the same key and home: messaging resumes.
    let _far = start_far(far_home.path(), user_home.path(), &a_addr);
    let reply = ask_via(&a, "far.os@net:probe:test", json!({"echo": "again"}), 5000).await;
    assert_eq!(reply["ok"], "again", "{reply}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_raw_tcp_client_does_not_hurt_the_node() {
    let a = node("a.os", &[]).await;
    let addr = a.p2p_addr().await;
    let port: u16 = addr
        .split("/tcp/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("tcp port in the multiaddr");
    for junk in [
        &b"\x00\x00\x00\x05hello"[..],
        &[0xff; 4096][..],
        b"/multistream/1.0.0\n garbage",
    ] {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(junk);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.ask("net:probe:test", json!({"echo": "still here"}))
            .await
            .unwrap(),
        "still here"
    );
    let b = node("b.os", &[&addr]).await;
    let reply = ask_via(
        &b,
        "a.os@net:probe:test",
        json!({"echo": "and reachable"}),
        5000,
    )
    .await;
    assert_eq!(reply["ok"], "and reachable", "{reply}");
    b.stop().await;
    a.stop().await;
}
