//! Names an attacker tries to take: through its hello, and through
//! records it puts in the DHT, at a bounded rate.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_be_squatted_through_hello_or_the_dht_and_puts_are_limited() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let metric = |f: fn(&hearth::metrics::NetCounters) -> &std::sync::atomic::AtomicU64| {
        f(&v.node.services().kernel.metrics.net).load(std::sync::atomic::Ordering::Relaxed)
    };
    let bob = Mallory::connect(&addr).await;
    let _bob_stream = bob.heard_stream(v.node.net(), "bob.os").await;

    // Through hello: another key claiming bob.os is closed and counted.
    let squatter = Mallory::connect(&addr).await;
    let mut s = squatter.hello_stream("bob.os").await;
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert_eq!(metric(|n| &n.names_refused), 1);
    // One key, many names: four bind, the fifth is refused. (Each stream
    // is closed once its name is bound: a peer holds few streams.)
    for i in 0..4 {
        let name = format!("alias{i}.os");
        let mut s = squatter.heard_stream(v.node.net(), &name).await;
        let _ = s.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _fifth = squatter.hello_stream("alias4.os").await;
    wait_for("the fifth name refused", || {
        metric(|n| &n.names_refused) == 2
    })
    .await;

    // Through the DHT: a squatter's record for bob.os, a record filed under
    // another name's key, and junk are all refused.
    let refused_before = metric(|n| &n.dht_refused);
    let squat = squatter.record("bob.os");
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("bob.os"), squat_bytes(&squat)))
        .await;
    let other = squatter.record("carol.os");
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("dave.os"), squat_bytes(&other)))
        .await;
    let _ = squatter
        .puts
        .send(kad::Record::new(name_key("erin.os"), vec![0xff; 64]))
        .await;
    wait_for("DHT squats refused", || {
        metric(|n| &n.dht_refused) >= refused_before + 3
    })
    .await;

    // A flood of valid puts from one peer: the rate limit refuses most.
    let flooder = Mallory::connect(&addr).await;
    let stored_before = metric(|n| &n.dht_stored);
    let refused_before = metric(|n| &n.dht_refused);
    let started = Instant::now();
    for i in 0..300 {
        let key = Keypair::generate_ed25519();
        let name = format!("flood{i}.os");
        let record = NameRecord::sign(&key, &name, vec![], 1).expect("sign");
        let _ = flooder
            .puts
            .send(kad::Record::new(name_key(&name), record.to_bytes()))
            .await;
    }
    let refused = || metric(|n| &n.dht_refused) - refused_before;
    let stored = || metric(|n| &n.dht_stored) - stored_before;
    wait_for("every put handled", || refused() + stored() == 300).await;
    let allowed = stored();
    let budget = 8.0 + 2.0 * started.elapsed().as_secs_f64();
    assert!(
        (allowed as f64) <= budget + 1.0,
        "{allowed} puts stored, budget {budget}"
    );
    still_serves_peers(&addr).await;
    v.stop().await;
}

fn name_key(name: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("/hearth/name/{name}"))
}

fn squat_bytes(record: &NameRecord) -> Vec<u8> {
    record.to_bytes()
}
