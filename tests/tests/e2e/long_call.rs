//! Processes built with today's SDK stay in one guest call (`run`, WIT
//! world `process-loop`) and take their events with `inbox.next-events`.
//! What per-event calls gave them still holds there: a request that needs
//! its context (one that expects an answer) comes alone even when it
//! queued behind a batch of other events, and after all of them. (Ask
//! timeouts, traps, spins, memory limits and restarts of such processes
//! are covered by `messaging::`, `isolation::` and `durability::`, whose
//! probe processes run this way too.)

use std::time::Duration;

use serde_json::json;

use crate::common::*;

const ALPHA: &str = "alpha:probe:test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_queued_behind_a_batch_comes_alone_after_everything_before_it() {
    const BURST: u64 = 200;
    const ROUNDS: u64 = 5;
    let n = TestNode::start("long-call").await;
    n.install_probe(standard_manifest()).await;
    let mut sent = 0;
    for round in 0..ROUNDS {
        // Fire-and-forget requests queue up and reach alpha in batches;
        // the ask queued right behind them expects an answer (it needs
        // the request context), so it cannot join a batch: it waits for
        // the next `next-events` and comes alone, after all of them.
        for _ in 0..BURST {
            n.tell(ALPHA, json!({"seq": sent})).await.unwrap();
            sent += 1;
        }
        let got = n.ask(ALPHA, json!({"received": null})).await.unwrap();
        assert_eq!(got["count"], sent, "round {round}: {got}");
        assert_eq!(got["out_of_order"], 0, "round {round}: {got}");
    }
    let got = n
        .received_until(ALPHA, Duration::from_secs(20), |got| got["count"] == sent)
        .await;
    assert_eq!(got["count"], sent, "{got}");
    n.stop().await;
}
