//! A guest that traps, spins or outgrows its memory is stopped; the node
//! and the other processes carry on; `Restart` brings it back with backoff.

use std::time::{Duration, Instant};

use hearth::types::SendErrorKind;
use serde_json::json;

use crate::common::*;

async fn still_serving(n: &TestNode) {
    assert_eq!(
        n.ask("echo:echo:sys", json!({"alive": true}))
            .await
            .unwrap(),
        json!({"alive": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_spin_and_memory_stop_only_that_process() {
    let n = TestNode::start("iso").await;
    n.install(echo_package()).await;
    n.install_probe(standard_manifest()).await;

    // A trap: the asker learns at once that the process died.
    let t = Instant::now();
    let err = n
        .ask("mortal:probe:test", json!({"trap": null}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::ProcessExited, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // The local asker also learns what the guest printed as it died.
    assert!(err.to_string().contains("probe: trap requested"), "{err}");
    still_serving(&n).await;
    // on_exit None: it stays down, and says so.
    let err = n
        .ask("mortal:probe:test", json!({"echo": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownProcess, "{err}");

    // A spin: interrupted after max_call_time (300 ms in tests).
    n.install_probe(standard_manifest()).await;
    let t = Instant::now();
    let err = n
        .ask("mortal:probe:test", json!({"spin": null}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::ProcessExited, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "spin stopped after {:?}",
        t.elapsed()
    );
    still_serving(&n).await;

    // Memory past the 64 MiB limit.
    n.install_probe(standard_manifest()).await;
    let ok = n
        .ask("mortal:probe:test", json!({"alloc_mb": 8}))
        .await
        .unwrap();
    assert_eq!(ok, json!({"allocated": 8}));
    let err = n
        .ask("mortal:probe:test", json!({"alloc_mb": 200}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::ProcessExited, "{err}");
    still_serving(&n).await;
    // Other probes were untouched throughout.
    assert_eq!(
        n.ask("alpha:probe:test", json!({"echo": "ok"}))
            .await
            .unwrap(),
        "ok"
    );
    n.stop().await;
}

async fn boots(n: &TestNode) -> u64 {
    let t = Instant::now();
    loop {
        match n
            .ask("phoenix:probe:test", json!({"state_get": null}))
            .await
        {
            Ok(v) => return v["boots"].as_u64().expect("boots"),
            Err(e) if t.elapsed() < Duration::from_secs(10) => {
                assert_eq!(
                    e.kind,
                    SendErrorKind::Timeout,
                    "queued requests wait for the restart: {e}"
                );
            }
            Err(e) => panic!("phoenix never came back: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_brings_the_process_back_with_backoff() {
    let n = TestNode::start("phoenix").await;
    n.install_probe(standard_manifest()).await;
    assert_eq!(boots(&n).await, 1);
    n.ask("phoenix:probe:test", json!({"state_set": "kept"}))
        .await
        .unwrap();

    // First crash: back after ~100 ms (base backoff in tests).
    let t = Instant::now();
    let err = n
        .ask("phoenix:probe:test", json!({"trap": null}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::ProcessExited);
    // Requests sent during the backoff queue in the mailbox and are answered
    // by the next incarnation.
    assert_eq!(boots(&n).await, 2);
    let first = t.elapsed();
    assert!(
        first >= Duration::from_millis(100),
        "restarted after {first:?}"
    );

    // Second crash soon after: the backoff doubles.
    let t = Instant::now();
    n.ask("phoenix:probe:test", json!({"trap": null}))
        .await
        .unwrap_err();
    assert_eq!(boots(&n).await, 3);
    let second = t.elapsed();
    assert!(
        second >= Duration::from_millis(200),
        "second restart after {second:?}"
    );

    // The last durable state survives the crashes.
    let got = n
        .ask("phoenix:probe:test", json!({"state_get": null}))
        .await
        .unwrap();
    assert_eq!(got["value"], "kept");
    n.stop().await;
}
