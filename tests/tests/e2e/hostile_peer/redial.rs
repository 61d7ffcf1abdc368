//! A peer that resets every stream the node opens to it, unread: the
//! node backs its redials off, gives the peer up, and fails its asks
//! `offline`.

use super::*;

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
