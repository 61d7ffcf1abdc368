//! Frames and streams an attacker sends: huge lengths, stalled streams,
//! junk and silence; forged answers to requests in flight; request ids
//! chosen to collide.

use super::*;

/// A body claiming a string of 2^60 bytes: variant `tag`, then bincode's
/// varint marker for a u64 length.
fn huge_length_frame(tag: u8) -> Vec<u8> {
    let mut body = vec![tag, 0xfd];
    body.extend_from_slice(&(1u64 << 60).to_le_bytes());
    body.extend_from_slice(b"xy");
    let mut framed = (body.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lengths_stalled_streams_junk_and_silence_leave_the_node_serving() {
    let mut victim = Victim::start();
    let before = victim.rss_kib();
    still_serves_peers(&victim.addr).await;

    // 1. A 14-byte frame claiming a 2^60-byte string, as the first frame
    // and after a valid hello.
    let mallory = Mallory::connect(&victim.addr).await;
    let mut s = mallory.stream().await.expect("stream");
    let _ = s.write_all(&huge_length_frame(0)).await;
    let mut s = mallory.hello_stream("mallory.os").await;
    let _ = s.write_all(&huge_length_frame(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    victim.check(before, "2^60-length string").await;

    // 2. 1,000 streams from 10 identities, each announcing a 16 MiB frame
    // and sending one byte; after hello and before.
    let (mut held, mut attackers) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let m = Mallory::connect(&victim.addr).await;
        for j in 0..100 {
            let mut s = if j % 2 == 0 {
                match m.stream().await {
                    Some(s) => s,
                    None => continue,
                }
            } else {
                m.hello_stream(&format!("stall{i}.os")).await
            };
            let _ = s.write_all(&(16u32 << 20).to_be_bytes()).await;
            let _ = s.write_all(&[0]).await;
            let _ = s.flush().await;
            held.push(s);
        }
        attackers.push(m);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    victim.check(before, "1,000 stalled 16 MiB frames").await;
    drop((held, attackers));

    // 3. Random and mutated frames on 1,000 streams.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut valid = Vec::new();
    wire::encode(
        &request(
            1,
            "junk.os@a:b:c",
            "victim.os@kv:distro:sys",
            json!({"x": 1}),
            1000,
        ),
        &mut valid,
    );
    for i in 0..10 {
        let m = Mallory::connect(&victim.addr).await;
        for j in 0..100 {
            let Some(mut s) = (if j % 2 == 0 {
                m.stream().await
            } else {
                Some(m.hello_stream(&format!("junk{i}.os")).await)
            }) else {
                continue;
            };
            let bytes: Vec<u8> = if j % 3 == 0 {
                (0..(next() % 512)).map(|_| next() as u8).collect()
            } else {
                let mut mutated = valid.clone();
                for _ in 0..1 + next() % 6 {
                    let at = (next() as usize) % mutated.len();
                    mutated[at] ^= (next() as u8).max(1);
                }
                mutated
            };
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    victim.check(before, "random and mutated frames").await;

    // 4. A stream that never says hello is closed after the deadline.
    let silent = Mallory::connect(&victim.addr).await;
    let mut s = silent.stream().await.expect("stream");
    let t = Instant::now();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(15), s.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent stream stays open: {closed:?}"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
    assert!(victim.metric("hearth_net_streams_refused_total") > 0);
    victim.check(before, "no hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_responses_and_failures_are_never_delivered() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let mut stream = mallory.heard_stream(v.node.net(), "mallory.os").await;
    let eve = Mallory::connect(&addr).await;
    let mut eve_stream = eve.heard_stream(v.node.net(), "eve.os").await;

    // net:probe:test asks mallory; mallory sees a real id in flight.
    let body = json!({"ask": {"target": "mallory.os@x:y:z", "body": {"q": 1}, "timeout_ms": 8000, "context": "c"}});
    let asker = ask_task(&v, "net:probe:test", body);
    let (id, rsvp) = match inbox.next().await {
        Frame::Deliver(km) => (km.id, km.rsvp.expect("rsvp").to_string()),
        other => panic!("expected the request, got {other:?}"),
    };
    assert_eq!(rsvp, "victim.os@net:probe:test");

    // Askers that must hear only the real timer: the injector, and the
    // process that does not accept the network.
    let started = Instant::now();
    let timer = json!({"SetTimer": {"ms": 1500}});
    let quiet_ask = json!({"ask": {"target": "timer:distro:sys", "body": timer, "timeout_ms": 8000, "context": "t"}});
    let direct = ask_task(&v, "timer:distro:sys", timer);
    let via_quiet = ask_task(&v, "quiet:probe:test", quiet_ask);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Forgeries: the real id to the wrong processes, ids around it to
    // everyone, and the real id from another peer.
    let mut forged = 0;
    let targets = [
        "victim.os@quiet:probe:test",
        "victim.os@rpc:distro:sys",
        "victim.os@net:probe:test",
    ];
    for guess in id.wrapping_sub(100)..=id.wrapping_add(100) {
        for to in targets {
            if guess == id && to == "victim.os@net:probe:test" {
                continue;
            }
            write(
                &mut stream,
                &response(guess, "mallory.os@x:y:z", to, json!({"forged": true})),
            )
            .await;
            let error = hearth::types::SendError::new(
                SendErrorKind::Offline,
                &to.parse().expect("addr"),
                "forged",
            );
            write(
                &mut stream,
                &Frame::Failed {
                    id: guess,
                    rsvp: to.parse().expect("addr"),
                    error,
                },
            )
            .await;
            forged += 2;
        }
    }
    write(
        &mut eve_stream,
        &response(
            id,
            "eve.os@x:y:z",
            "victim.os@net:probe:test",
            json!({"forged": true}),
        ),
    )
    .await;
    forged += 1;
    wait_for("every forgery counted", || unsolicited(&v) >= forged).await;

    // The real answer, from the peer that was asked, to the asker.
    write(
        &mut stream,
        &response(id, "mallory.os@x:y:z", &rsvp, json!({"real": true})),
    )
    .await;
    let reply = asker.await.expect("task");
    assert_eq!(reply["ok"], json!({"real": true}), "{reply}");
    let (direct, via_quiet) = (direct.await.expect("task"), via_quiet.await.expect("task"));
    assert_eq!(direct["Ok"]["Fired"]["ms"], 1500, "{direct}");
    assert_eq!(via_quiet["ok"]["Ok"]["Fired"]["ms"], 1500, "{via_quiet}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "an answer came early"
    );
    assert_eq!(
        unsolicited(&v),
        forged,
        "every forgery dropped and counted, nothing else"
    );
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_chosen_request_ids_never_collide() {
    let v = victim_node().await;
    let addr = v.p2p_addr().await;
    let mallory = Mallory::connect(&addr).await;
    let mut inbox = Inbox::listen(&mallory);
    let mut stream = mallory.hello_stream("mallory.os").await;
    // A local asker holds an owed answer in `net` (it never replies).
    let local = v.ask_within(
        "net:probe:test",
        json!({"echo": "local"}),
        Duration::from_secs(5),
    );
    // The same id twice, the extremes, and a timeout that never ends.
    let ids = [7u64, 7, 0, u64::MAX];
    for (i, id) in ids.iter().enumerate() {
        let ms = if i == 3 { u64::MAX } else { 5000 };
        let frame = request(
            *id,
            "mallory.os@m:m:m",
            "victim.os@net:probe:test",
            json!({"echo": i}),
            ms,
        );
        write(&mut stream, &frame).await;
    }
    let mut answers = Vec::new();
    for _ in ids {
        match inbox.next().await {
            Frame::Deliver(km) => {
                let Message::Response(r) = km.message else {
                    panic!("a response")
                };
                let body: Value = serde_json::from_slice(&r.body).expect("json");
                answers.push((km.id, body.as_u64().expect("echo")));
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }
    answers.sort();
    assert_eq!(answers, vec![(0, 2), (7, 0), (7, 1), (u64::MAX, 3)]);
    // Services act for the sender's process id, so none takes a peer's
    // request, system or not.
    for service in ["http-server:distro:sys", "vfs:distro:sys", "rpc:distro:sys"] {
        let to = format!("victim.os@{service}");
        write(
            &mut stream,
            &request(9, "mallory.os@chat:chat:sys", &to, json!({}), 5000),
        )
        .await;
        match inbox.next().await {
            Frame::Failed { id: 9, error, .. } => assert!(
                matches!(
                    error.kind,
                    SendErrorKind::CapabilityMissing | SendErrorKind::UnknownProcess
                ),
                "{service}: {error}"
            ),
            other => panic!("{service}: expected a failure, got {other:?}"),
        }
    }
    assert_eq!(local.await.expect("local answer"), "local");
    v.stop().await;
}
