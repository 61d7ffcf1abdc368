//! The message stream moving to a new stream (as it does off a relay once
//! a direct connection exists), against a real node: a raw libp2p peer
//! (`mallory`) plays the moving side, so the old stream can be left open
//! forever, as a relay that never forwards the close would leave it.
//!
//! The node must read the new stream without waiting for the old one to
//! close, keep the order across the two, and cut an old stream that stalls
//! rather than deliver its late frames after the new stream's.

use std::time::{Duration, Instant};

use futures::AsyncReadExt;
use hearth::net::wire::Frame;
use hearth::types::Message;
use serde_json::{json, Value};

use crate::common::mallory::*;
use crate::common::*;

/// How long the node gives an old stream that brings nothing (mirrors
/// `net::read_order::REPLACE_STALL`).
const REPLACE_STALL: Duration = Duration::from_secs(5);

async fn victim() -> TestNode {
    let v = TestNode::start("victim.os").await;
    v.install_probe(json!([net_probe("net")])).await;
    v
}

fn echo(id: u64) -> Frame {
    request(
        id,
        "mallory.os@m:m:m",
        "victim.os@net:probe:test",
        json!({"echo": id}),
        30_000,
    )
}

/// The id and echoed number of the next answer, within `within`.
async fn answer(inbox: &mut Inbox, within: Duration) -> (u64, u64) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, inbox.0.recv())
            .await
            .unwrap_or_else(|_| panic!("no answer within {within:?}"))
            .expect("the victim's stream stays open");
        match frame {
            Frame::Hello(_) => continue,
            Frame::Deliver(km) => {
                let Message::Response(r) = km.message else {
                    panic!("a response, got {:?}", km.message)
                };
                let body: Value = serde_json::from_slice(&r.body).expect("json");
                return (km.id, body.as_u64().expect("the echoed number"));
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

/// The victim closes its side of `stream` within `within`.
async fn closed_by_victim(stream: &mut libp2p::Stream, within: Duration) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("the victim wrote on our outbound stream"),
        Err(_) => panic!("the victim did not close the old stream within {within:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_stream_is_read_at_once_though_the_old_one_never_closes() {
    let v = victim().await;
    let mallory = Mallory::connect(&v.p2p_addr().await).await;
    let mut inbox = Inbox::listen(&mallory);

    // The old stream: two requests, then `Moved`, and it is never closed.
    let mut old = mallory.hello_stream("mallory.os").await;
    write(&mut old, &echo(1)).await;
    write(&mut old, &echo(2)).await;
    assert_eq!(answer(&mut inbox, Duration::from_secs(20)).await, (1, 1));
    write(&mut old, &echo(3)).await;
    write(&mut old, &Frame::Moved).await;
    // The new stream goes on at once.
    let moved_at = Instant::now();
    let mut new = mallory.hello_stream("mallory.os").await;
    write(&mut new, &echo(4)).await;
    write(&mut new, &echo(5)).await;

    // Everything arrives, once, in the order sent, and before the node
    // would have given up on the old stream as stalled.
    let mut got = Vec::new();
    for _ in 2..=5 {
        got.push(answer(&mut inbox, Duration::from_secs(20)).await);
    }
    assert_eq!(got, vec![(2, 2), (3, 3), (4, 4), (5, 5)]);
    assert!(
        moved_at.elapsed() < REPLACE_STALL,
        "the new stream waited {:?} for the old one",
        moved_at.elapsed()
    );
    // The node is done with the old stream: it closed it after `Moved`.
    closed_by_victim(&mut old, Duration::from_secs(10)).await;
    // And the new one carries on.
    write(&mut new, &echo(6)).await;
    assert_eq!(answer(&mut inbox, Duration::from_secs(20)).await, (6, 6));
    drop(old);
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_old_stream_is_cut_and_never_delivers_after_the_new_one() {
    let v = victim().await;
    let mallory = Mallory::connect(&v.p2p_addr().await).await;
    let mut inbox = Inbox::listen(&mallory);

    // The old stream delivers, then goes silent without `Moved` or a close
    // (its path died with nothing in flight).
    let mut old = mallory.hello_stream("mallory.os").await;
    write(&mut old, &echo(1)).await;
    assert_eq!(answer(&mut inbox, Duration::from_secs(20)).await, (1, 1));

    // The new stream is read once the old one is cut for its silence.
    let mut new = mallory.hello_stream("mallory.os").await;
    write(&mut new, &echo(2)).await;
    assert_eq!(
        answer(&mut inbox, REPLACE_STALL + Duration::from_secs(20)).await,
        (2, 2)
    );
    // The cut stream was closed by the node: what it brings later can
    // never be delivered after the new stream's frames.
    closed_by_victim(&mut old, Duration::from_secs(10)).await;
    write(&mut old, &echo(3)).await;
    write(&mut new, &echo(4)).await;
    assert_eq!(answer(&mut inbox, Duration::from_secs(20)).await, (4, 4));
    write(&mut new, &echo(5)).await;
    assert_eq!(
        answer(&mut inbox, Duration::from_secs(20)).await,
        (5, 5),
        "nothing from the cut stream came in between"
    );
    v.stop().await;
}
