//! Bursts of room events across nodes: a burst spread over two rooms keeps
//! its order, and a node that joins in the middle of bursts misses and
//! repeats nothing. They use the helpers of `rooms.rs`.

use super::*;

/// A burst spread over two rooms reaches a subscriber on another node in
/// the order it was published: a room's held burst leaves before the other
/// room's next event (the hub holds one room's burst at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_across_two_rooms_keeps_its_order_on_another_node() {
    const COUNT: u64 = 400;
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], 0).await;
    let owner = owner_on("a.os");
    let sub = At::Here(&b, "sub");
    for room in ["left", "right"] {
        joined(sub, &owner, room, None).await;
    }
    // Runs of 8 payloads, to `left` and `right` in turn, in one guest call.
    let sent = a
        .ask(
            "owner:probe:test",
            json!({"publish_n": {"room": "left", "alternate": "right", "count": COUNT, "acked": false}}),
        )
        .await
        .unwrap();
    assert_eq!(sent, json!({"ok": {"sent": COUNT}}));
    for room in ["left", "right"] {
        let got = events_until(sub, &owner, room, |e| e.len() as u64 >= COUNT / 2).await;
        assert_eq!(
            got.len() as u64,
            COUNT / 2,
            "{room}: {} deliveries",
            got.len()
        );
    }
    // Every delivery of both rooms, by its arrival at the subscriber.
    let log = sub.call(json!({"room_log": null})).await;
    let mut arrivals: Vec<(u64, u64)> = Vec::new();
    for room in log["rooms"].as_array().expect("rooms") {
        let events = room["events"].as_array().expect("events");
        let arrived = room["arrived"].as_array().expect("arrived");
        assert_eq!(events.len(), arrived.len(), "{room}");
        for (event, at) in events.iter().zip(arrived) {
            let i = event["event"]["payload"]["i"].as_u64().expect("payload i");
            arrivals.push((at.as_u64().expect("arrival"), i));
        }
    }
    arrivals.sort_unstable();
    let order: Vec<u64> = arrivals.iter().map(|&(_, i)| i).collect();
    assert_eq!(order, (0..COUNT).collect::<Vec<_>>(), "payloads by arrival");
    b.stop().await;
    a.stop().await;
}

/// A node that joins while the owner publishes in bursts (which leave in
/// one relay each, `rooms::Hub::fan_out`) gets every event from its join
/// on, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_in_the_middle_of_bursts_misses_and_repeats_nothing() {
    const PER_BURST: u64 = 20;
    /// Bursts go on this many times after the join is answered.
    const AFTER: u64 = 5;
    /// A bound, should the join never be answered (it then fails).
    const MAX_BURSTS: u64 = 400;
    let a = node("a.os", &[], 0).await;
    let a_addr = a.p2p_addr().await;
    let b = node("b.os", &[&a_addr], 0).await;
    let owner = owner_on("a.os");
    let sub = At::Here(&b, "sub");
    // The room exists before the bursts start; b joins it (its first
    // join there, so the owner's hub admits a new node) while they go on.
    assert_eq!(publish_n(At::Here(&a, "owner"), "busy", 0, 1).await, (1, 1));
    // Short bursts with a pause between them, so that the join's answer
    // gets through while they go on, and the subscriber (which saves its
    // whole log on every delivery) keeps up.
    let answered = Cell::new(false);
    let bursts = async {
        let (mut burst, mut after) = (0, 0);
        while burst < MAX_BURSTS && after < AFTER {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let body = json!({"publish_n": {"room": "busy", "base": 1 + burst * PER_BURST,
                "count": PER_BURST, "acked": false}});
            let sent = a.ask("owner:probe:test", body).await.unwrap();
            assert_eq!(sent, json!({"ok": {"sent": PER_BURST}}), "burst {burst}");
            burst += 1;
            after += u64::from(answered.get());
        }
        burst
    };
    let join = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let next = joined(sub, &owner, "busy", None).await;
        answered.set(true);
        next
    };
    let (bursts, next) = tokio::join!(bursts, join);
    let last = 1 + bursts * PER_BURST;
    assert!(next > 2 && next <= last, "joined at {next} of {last}");
    let got = events_until(sub, &owner, "busy", |e| last_seq(e) == Some(last)).await;
    assert_events(&got, next..=last, "b's subscriber");
    b.stop().await;
    a.stop().await;
}
