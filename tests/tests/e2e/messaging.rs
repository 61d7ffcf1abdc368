//! Local message semantics between real WASM processes.

use std::time::{Duration, Instant};

use hearth::types::SendErrorKind;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_between_processes() {
    let n = TestNode::start("rr").await;
    n.install(echo_package()).await;
    n.install_probe(standard_manifest()).await;
    // Injected straight to echo: the body comes back as it went.
    assert_eq!(
        n.ask("echo:echo:sys", json!({"ping": 1})).await.unwrap(),
        json!({"ping": 1})
    );
    // Process to process, with the raw API and with the SDK's async ask.
    for cmd in ["ask", "ask_async"] {
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({cmd: {"target": "beta:probe:test", "body": {"echo": [1, 2, 3]}, "timeout_ms": 5000, "context": "c1"}}),
            )
            .await
            .unwrap();
        assert_eq!(reply["ok"], json!([1, 2, 3]), "{cmd}: {reply}");
        assert_eq!(reply["context"], json!("c1"), "{cmd}: {reply}");
    }
    n.stop().await;
}

/// A request handed on with `inherit` and no timeout of its own is
/// answered by its new owner, straight to the original asker, and may be
/// handed on again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_answered_by_whoever_holds_it() {
    let n = TestNode::start("forward").await;
    n.install_probe(standard_manifest()).await;
    let once = json!({"forward": {"target": "beta:probe:test", "body": {"echo": "from beta"}}});
    assert_eq!(
        n.ask("alpha:probe:test", once).await.unwrap(),
        json!("from beta")
    );
    let twice = json!({"forward": {"target": "beta:probe:test", "body":
        {"forward": {"target": "alpha:probe:test", "body": {"echo": [1, 2]}}}}});
    assert_eq!(
        n.ask("alpha:probe:test", twice).await.unwrap(),
        json!([1, 2])
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_process_is_a_typed_error_at_once() {
    let n = TestNode::start("missing").await;
    n.install_probe(standard_manifest()).await;
    let t = Instant::now();
    let err = n
        .ask("nobody:probe:test", json!({"echo": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownProcess);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
    // From inside a process too: send-request fails at once.
    let t = Instant::now();
    let reply = n
        .ask("alpha:probe:test", json!({"ask": {"target": "nobody:probe:test", "body": 1, "timeout_ms": 5000, "context": "x"}}))
        .await
        .unwrap();
    assert_eq!(reply["err"]["kind"], "unknown-process", "{reply}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
    // A malformed address is refused before anything is sent.
    let reply = n
        .ask("alpha:probe:test", json!({"ask": {"target": "not an address", "body": 1, "timeout_ms": 5000, "context": "x"}}))
        .await
        .unwrap();
    assert!(reply["err"]["kind"].is_string(), "{reply}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_returns_the_original_context() {
    let n = TestNode::start("timeout").await;
    n.install_probe(standard_manifest()).await;
    for cmd in ["ask", "ask_async"] {
        let t = Instant::now();
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({cmd: {"target": "beta:probe:test", "body": {"never_reply": null}, "timeout_ms": 200, "context": "ctx-42"}}),
            )
            .await
            .unwrap();
        let waited = t.elapsed();
        assert_eq!(reply["err"]["kind"], "timeout", "{cmd}: {reply}");
        assert_eq!(reply["err"]["context"], "ctx-42", "{cmd}: {reply}");
        assert!(
            waited >= Duration::from_millis(200),
            "{cmd}: timed out early, {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(2),
            "{cmd}: timed out late, {waited:?}"
        );
    }
    // The injector's own timeout is typed too.
    let err = n
        .ask_within(
            "beta:probe:test",
            json!({"never_reply": null}),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Timeout);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_enforced_by_the_kernel() {
    let n = TestNode::start("caps").await;
    n.install_probe(standard_manifest()).await;
    // alpha holds a capability for beta, not for guarded.
    let ok = n
        .ask("alpha:probe:test", json!({"ask": {"target": "beta:probe:test", "body": {"echo": 1}, "timeout_ms": 2000, "context": ""}}))
        .await
        .unwrap();
    assert_eq!(ok["ok"], 1, "{ok}");
    let t = Instant::now();
    let denied = n
        .ask("alpha:probe:test", json!({"ask": {"target": "guarded:probe:test", "body": {"echo": 1}, "timeout_ms": 2000, "context": ""}}))
        .await
        .unwrap();
    assert_eq!(denied["err"]["kind"], "capability-missing", "{denied}");
    assert!(t.elapsed() < Duration::from_millis(500));
    // mortal is public but holds no capability for beta.
    let denied = n
        .ask(
            "mortal:probe:test",
            json!({"tell": {"target": "beta:probe:test", "body": {"seq": 0}}}),
        )
        .await
        .unwrap();
    assert_eq!(denied["err"]["kind"], "capability-missing", "{denied}");
    // Leaving the node needs the network capability.
    let denied = n
        .ask("alpha:probe:test", json!({"ask": {"target": "other.os@beta:probe:test", "body": 1, "timeout_ms": 2000, "context": ""}}))
        .await
        .unwrap();
    assert_eq!(denied["err"]["kind"], "capability-missing", "{denied}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_and_order_of_1000() {
    let n = TestNode::start("order").await;
    n.install_probe(standard_manifest()).await;
    let sent = n
        .ask(
            "alpha:probe:test",
            json!({"tell": {"target": "beta:probe:test", "body": {"seq": 0}}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"sent": true}));
    let got = n
        .ask("beta:probe:test", json!({"received": null}))
        .await
        .unwrap();
    assert_eq!(got["count"], 1, "{got}");

    n.install_probe(standard_manifest()).await; // fresh counters
    let sent = n
        .ask(
            "alpha:probe:test",
            json!({"blast": {"target": "beta:probe:test", "count": 1000}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"sent": 1000, "errors": 0}));
    let got = n
        .ask("beta:probe:test", json!({"received": null}))
        .await
        .unwrap();
    assert_eq!(got["count"], 1000, "{got}");
    assert_eq!(got["out_of_order"], 0, "{got}");
    assert_eq!(got["last"], 999, "{got}");
    // The injector's fire-and-forget path is typed as well.
    n.tell("beta:probe:test", json!({"seq": 1000}))
        .await
        .unwrap();
    let err = n.tell("nobody:probe:test", json!({})).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownProcess);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_is_refused_at_once() {
    let n = TestNode::start("big").await;
    n.install(echo_package()).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let err = n
        .ask("echo:echo:sys", json!({ "big": big }))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::PayloadTooLarge, "{err}");
    assert_eq!(
        n.ask("echo:echo:sys", json!("small")).await.unwrap(),
        json!("small")
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_node_restart_and_children_spawn() {
    let n = TestNode::start("state").await;
    n.install_probe(standard_manifest()).await;
    let set = n
        .ask(
            "alpha:probe:test",
            json!({"state_set": {"notes": ["a", "b"]}}),
        )
        .await
        .unwrap();
    assert_eq!(set, json!({"ok": true}));
    let spawned = n
        .ask(
            "alpha:probe:test",
            json!({"spawn": {"name": "kid", "public": false}}),
        )
        .await
        .unwrap();
    assert_eq!(spawned["id"], "kid:probe:test", "{spawned}");
    // The parent may message its private child.
    let reply = n
        .ask("alpha:probe:test", json!({"ask": {"target": "kid:probe:test", "body": {"echo": "hi"}, "timeout_ms": 2000, "context": ""}}))
        .await
        .unwrap();
    assert_eq!(reply["ok"], "hi", "{reply}");

    let home = n.stop().await;
    let config = test_config(home.path(), "state");
    let n = TestNode::start_with(config, home).await;
    let got = n
        .ask("alpha:probe:test", json!({"state_get": null}))
        .await
        .unwrap();
    assert_eq!(got["value"], json!({"notes": ["a", "b"]}), "{got}");
    assert_eq!(got["boots"], 2, "{got}");

    // Compiled code is cached in the home; an entry that is not what this
    // node wrote is never run: it is compiled again.
    let compiled = n.node.home().join(hearth::runtime::COMPILED_DIR);
    let entries: Vec<_> = std::fs::read_dir(&compiled)
        .expect("compile cache")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "one component, one entry: {entries:?}");
    let home = n.stop().await;
    std::fs::write(&entries[0], b"not compiled code").unwrap();
    let n = TestNode::start_with(test_config(home.path(), "state"), home).await;
    let got = n
        .ask("alpha:probe:test", json!({"state_get": null}))
        .await
        .unwrap();
    assert_eq!(got["boots"], 3, "{got}");
    assert_ne!(std::fs::read(&entries[0]).unwrap(), b"not compiled code");
    n.stop().await;
}
