//! Apps built before the current WIT version still run: guests built with
//! plain wit-bindgen against frozen copies of WIT 0.1.0 (`handle` only),
//! 0.1.1 (`handle-batch` too) and 0.1.2 (`deliver` and `deliver-batch`,
//! sources from a peer table), from `tests/apps/compat`, on a node whose
//! interface is newer. Their imports link, their state persists, SDK
//! processes of today (WIT 0.1.3, which stay in `run`) talk to them, and
//! bursts keep their order.

use std::time::{Duration, Instant};

use hearth::api::PackageFile;
use serde_json::{json, Value};

use crate::common::*;

const V010: &str = "v010:compat:test";
const V011: &str = "v011:compat:test";
const V012: &str = "v012:compat:test";

/// The export each old component gets a lone event through.
fn lone_export(target: &str) -> &'static str {
    if target == V012 {
        "deliver"
    } else {
        "handle"
    }
}

fn compat_package() -> Vec<PackageFile> {
    built_package_of(
        "tests/apps/compat",
        &["compat_v010.wasm", "compat_v011.wasm", "compat_v012.wasm"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_built_against_wit_0_1_0_0_1_1_and_0_1_2_link_answer_and_keep_state() {
    let n = TestNode::start("compat").await;
    n.install(compat_package()).await;
    n.install_probe(standard_manifest()).await;
    for target in [V010, V011, V012] {
        // From the node: a request reaches the old `handle` (`deliver`
        // for 0.1.2), and `our` (an old import) names the process.
        let reply = n.ask(target, json!({"echo": [1, 2]})).await.unwrap();
        assert_eq!(reply["via"], lone_export(target), "{target}: {reply}");
        assert_eq!(reply["echo"], json!([1, 2]), "{target}: {reply}");
        assert_eq!(
            reply["our"],
            format!("{}@{target}", n.node.name()),
            "{target}: {reply}"
        );
        // From a process built with today's SDK (WIT 0.1.3): its request
        // and the old process's answer cross the version line both ways.
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({"ask": {"target": target, "body": {"echo": "hi"}, "timeout_ms": 5000}}),
            )
            .await
            .unwrap();
        assert_eq!(reply["ok"]["echo"], "hi", "{target}: {reply}");
        assert_eq!(reply["ok"]["via"], lone_export(target), "{target}: {reply}");
        // Twice from the same process: the 0.1.2 component now finds the
        // asker in its peer table (a slot with no address attached).
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({"ask": {"target": target, "body": {"echo": "again"}, "timeout_ms": 5000}}),
            )
            .await
            .unwrap();
        assert_eq!(reply["ok"]["echo"], "again", "{target}: {reply}");
        // Durable state through the old `get-state` / `set-state`.
        for want in [1, 2] {
            let reply = n.ask(target, json!({"bump": {}})).await.unwrap();
            assert_eq!(reply["count"], want, "{target}: {reply}");
        }
    }
    // After a restart the old processes boot again and find their state.
    let home = n.stop().await;
    let n = TestNode::start_with(test_config(home.path(), "compat"), home).await;
    for target in [V010, V011, V012] {
        let reply = ask_until_up(&n, target, json!({"bump": {}})).await;
        assert_eq!(reply["count"], 3, "{target}: {reply}");
    }
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_components_get_bursts_in_order_and_0_1_1_and_0_1_2_ones_in_batches() {
    const BURST: u64 = 64;
    let n = TestNode::start("compat-burst").await;
    n.install(compat_package()).await;

    // Bursts of fire-and-forget requests queue up behind the one being
    // handled; the 0.1.1 component gets runs of them through
    // `handle-batch`, the 0.1.2 one through `deliver-batch`. Burst until
    // each has had one (almost always the first), then check that nothing
    // was lost or reordered.
    for target in [V011, V012] {
        let mut sent = 0;
        let t = Instant::now();
        let stats = loop {
            for _ in 0..BURST {
                n.tell(target, json!({"seq": sent})).await.unwrap();
                sent += 1;
            }
            let stats = settled(&n, target, sent).await;
            if stats["batch_calls"].as_u64() > Some(0) || t.elapsed() > Duration::from_secs(30) {
                break stats;
            }
        };
        assert_eq!(stats["seen"], sent, "{target}: {stats}");
        assert_eq!(stats["out_of_order"], 0, "{target}: {stats}");
        assert!(stats["batch_calls"].as_u64() > Some(0), "{target}: {stats}");
        assert!(
            stats["largest_batch"].as_u64() >= Some(2),
            "{target}: {stats}"
        );
    }

    // The 0.1.0 component has no `handle-batch`: one `handle` per event.
    for seq in 0..BURST * 4 {
        n.tell(V010, json!({"seq": seq})).await.unwrap();
    }
    let stats = settled(&n, V010, BURST * 4).await;
    assert_eq!(stats["out_of_order"], 0, "{stats}");
    assert_eq!(stats["batch_calls"], 0, "{stats}");
    assert!(stats["handle_calls"].as_u64() >= Some(BURST * 4), "{stats}");
    n.stop().await;
}

/// The stats of `target` once it has seen `sent` sequenced messages.
async fn settled(n: &TestNode, target: &str, sent: u64) -> Value {
    let t = Instant::now();
    loop {
        let stats = n.ask(target, json!({"stats": {}})).await.unwrap();
        if stats["seen"].as_u64() == Some(sent) || t.elapsed() > Duration::from_secs(20) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ask until the process answers (it may still be booting after a restart).
async fn ask_until_up(n: &TestNode, target: &str, body: Value) -> Value {
    let t = Instant::now();
    loop {
        match n.ask(target, body.clone()).await {
            Ok(reply) => return reply,
            Err(_) if t.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{target} never answered: {e:?}"),
        }
    }
}
