//! A hostile crowd at a relay (issue 13): a real `hearth --relay` child
//! process with small named limits, raw libp2p peers that flood it with
//! reservation and circuit requests (one identity with several
//! connections, and many identities), and honest peers that must still
//! be served. Every refusal must be the relay's typed
//! `RESOURCE_LIMIT_EXCEEDED` (or `NO_RESERVATION`), the counts must match
//! the relay's `/metrics`, a circuit over its byte or time cap is closed,
//! and the relay stays up with bounded memory. All on loopback: every
//! peer here shares 127.0.0.1, so the per-IP reservation rate (a burst of
//! 60) is budgeted below.

mod peer;
mod proto;

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use hearth::net::wire::Frame;
use hearth::types::SendErrorKind;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::common::{free_port, HearthProcess, TempDir};
use peer::{ask_through_relay, Conn};
use proto::Status;

/// The relay's limits in these tests (`--relay-max-*`).
const MAX_RESERVATIONS: usize = 8;
const MAX_CIRCUITS: usize = 8;
const CIRCUITS_PER_PEER: usize = 4;
const CIRCUITS_PER_MINUTE: usize = 10;
const CIRCUIT_SECS: u64 = 30;
const CIRCUIT_BYTES: u64 = 256 * 1024;
/// A node holds at most 4 connections per peer (`net/behaviour.rs`), and
/// libp2p's relay keeps one reservation per connection.
const CONNECTIONS_PER_PEER: usize = 4;
/// libp2p's reservation rate per peer, which the relay keeps: a burst of
/// 30, then one every 2 minutes.
const RESERVATION_BURST_PER_PEER: usize = 30;
/// How much the relay's resident memory may grow under the floods.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;
/// How long a state change may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(60);

/// A real `hearth` child process on loopback.
struct Node {
    process: HearthProcess,
    home: TempDir,
    _user_home: TempDir,
    secret: String,
    /// Its TCP multiaddr, ending in `/p2p/<peer id>`.
    addr: Multiaddr,
    peer: PeerId,
}

impl Node {
    fn start(name: &str, extra: &[String]) -> Self {
        let (home, user_home) = (TempDir::new(name), TempDir::new("relay-user"));
        let mut args = vec!["--p2p-bind", "127.0.0.1", "--no-mdns"];
        args.extend(extra.iter().map(String::as_str));
        let process = HearthProcess::start(home.path(), user_home.path(), name, &args);
        let secret = std::fs::read_to_string(home.path().join(hearth::api::SECRET_FILE))
            .expect("admin secret")
            .trim()
            .to_string();
        let mut node = Self {
            process,
            home,
            _user_home: user_home,
            secret,
            addr: Multiaddr::empty(),
            peer: PeerId::random(),
        };
        let t = Instant::now();
        node.addr = loop {
            if let Some(addr) = node.status()["bootstrap"].as_str() {
                break addr.parse().expect("bootstrap multiaddr");
            }
            assert!(
                t.elapsed() < WITHIN,
                "{name} never listened:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        node.peer = match node.addr.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => panic!("no peer id in {}", node.addr),
        };
        node
    }

    /// A relay listening on a port chosen beforehand, so that its
    /// `--external-addr` (which a relay needs to grant reservations) is
    /// known at start.
    fn relay() -> Self {
        let port = free_port();
        let limits = [
            ("--relay-max-reservations", MAX_RESERVATIONS.to_string()),
            ("--relay-max-circuits", MAX_CIRCUITS.to_string()),
            (
                "--relay-max-circuits-per-peer",
                CIRCUITS_PER_PEER.to_string(),
            ),
            (
                "--relay-circuits-per-peer-per-minute",
                CIRCUITS_PER_MINUTE.to_string(),
            ),
            ("--relay-max-circuit-secs", CIRCUIT_SECS.to_string()),
            ("--relay-max-circuit-bytes", CIRCUIT_BYTES.to_string()),
        ];
        let mut extra = vec![
            "--relay".to_string(),
            "--p2p-port".into(),
            port.to_string(),
            "--external-addr".into(),
            format!("/ip4/127.0.0.1/tcp/{port}"),
        ];
        for (flag, value) in limits {
            extra.push(flag.into());
            extra.push(value);
        }
        Self::start("relay.os", &extra)
    }

    /// An honest node holding a reservation on `relay` (`--relay-via`).
    fn reserved_on(relay: &Node) -> Self {
        let node = Self::start(
            "honest.os",
            &["--relay-via".to_string(), relay.addr.to_string()],
        );
        node.wait_reserved();
        node
    }

    fn wait_reserved(&self) {
        let t = Instant::now();
        while self.status()["reachability"]["relays"][0]["state"] != "reserved" {
            assert!(
                t.elapsed() < WITHIN,
                "the honest node never reserved: {}\n{}",
                self.status()["reachability"],
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> Value {
        let url = format!(
            "http://127.0.0.1:{}{}",
            self.process.port,
            hearth::api::STATUS_PATH
        );
        ureq::get(&url)
            .header(hearth::api::SECRET_HEADER, &self.secret)
            .call()
            .expect("status answers")
            .body_mut()
            .read_json()
            .expect("status json")
    }

    fn metric(&self, name: &str) -> u64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.process.port);
        let text = ureq::get(&url)
            .call()
            .expect("metrics answer")
            .body_mut()
            .read_to_string()
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Wait until counter `name` reads `want` (events are counted as the
    /// relay's swarm handles them), or fail showing what it reads.
    async fn wait_metric(&self, name: &str, want: u64) {
        let t = Instant::now();
        loop {
            let got = self.metric(name);
            if got == want {
                return;
            }
            assert!(t.elapsed() < WITHIN, "{name} reads {got}, expected {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id()))
            .expect("node alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Alive, within `before_kib` plus the bound, and answering HTTP.
    fn check_bounded(&mut self, before_kib: u64) -> u64 {
        assert!(
            matches!(self.process.child.try_wait(), Ok(None)),
            "the relay died:\n{}",
            self.log()
        );
        let after = self.rss_kib();
        assert!(
            after <= before_kib + RSS_GROWTH_BOUND_KIB,
            "the relay's RSS grew from {before_kib} KiB to {after} KiB"
        );
        assert_eq!(self.status()["name"], "relay.os", "the relay answers");
        after
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("hearth.log")).unwrap_or_default()
    }
}

/// Reads a circuit until the relay closes it: bytes read, and when.
fn read_until_closed(mut stream: libp2p::Stream) -> JoinHandle<(u64, Instant)> {
    tokio::spawn(async move {
        let (mut total, mut buf) = (0u64, vec![0u8; 16 * 1024]);
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return (total, Instant::now()),
                Ok(n) => total += n as u64,
            }
        }
    })
}

/// Waits for a circuit's reader, failing the test after `within`.
async fn closed_within(reader: JoinHandle<(u64, Instant)>, within: Duration) -> (u64, Instant) {
    tokio::time::timeout(within, reader)
        .await
        .unwrap_or_else(|_| panic!("the relay did not close the circuit within {within:?}"))
        .expect("reader")
}

/// The next circuit the relay brings the sink, with its `CONNECT`.
async fn next_circuit(
    incoming: &mut tokio::sync::mpsc::Receiver<(proto::Message, libp2p::Stream)>,
) -> (proto::Message, libp2p::Stream) {
    tokio::time::timeout(WITHIN, incoming.recv())
        .await
        .expect("the relay brings the circuit")
        .expect("sink open")
}

fn tally(answers: &[Option<Status>]) -> (usize, usize) {
    let granted = answers.iter().filter(|s| **s == Some(Status::Ok)).count();
    let refused = answers
        .iter()
        .filter(|s| **s == Some(Status::ResourceLimitExceeded))
        .count();
    assert_eq!(
        granted + refused,
        answers.len(),
        "every answer is OK or RESOURCE_LIMIT_EXCEEDED: {answers:?}"
    );
    (granted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_floods_are_refused_as_over_the_limit_and_honest_nodes_still_reserve() {
    let mut relay = Node::relay();
    let before = relay.rss_kib();
    let refused_metric = "hearth_net_relay_reservations_refused_total";

    // 1. One identity with as many connections as a peer may hold: each
    // connection reserves. One more connection never gets a slot.
    let mallory = Keypair::generate_ed25519();
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS_PER_PEER {
        let conn = Conn::open(&mallory, &relay.addr).await.expect("connect");
        let answer = conn.reserve().await.expect("an answer");
        assert_eq!(answer.status, Some(Status::Ok), "{answer:?}");
        assert!(
            answer.expires.is_some() && answer.reservation_addrs >= 1,
            "{answer:?}"
        );
        conns.push(conn);
    }
    let fifth = match Conn::open(&mallory, &relay.addr).await {
        Ok(conn) => conn.reserve().await.map(|a| a.status),
        Err(e) => Err(e),
    };
    assert!(
        !matches!(fifth, Ok(Some(Status::Ok))),
        "a fifth connection of one peer got a reservation"
    );

    // 2. The same identity asks again and again on one connection: each
    // is a renewal, granted until the peer's burst is spent, then refused.
    const RENEWALS: usize = 40;
    let mut answers = Vec::new();
    for _ in 0..RENEWALS {
        answers.push(conns[0].reserve().await.expect("an answer").status);
    }
    let (granted, mut refused) = tally(&answers);
    assert_eq!(granted, RESERVATION_BURST_PER_PEER - CONNECTIONS_PER_PEER);
    assert_eq!(refused, RENEWALS - granted);

    // 3. An honest peer can still reserve: one identity holds 4 of 8.
    let honest = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    assert_eq!(
        honest.reserve().await.expect("answer").status,
        Some(Status::Ok)
    );

    // 4. Many identities (a Sybil flood) fill what is left, then are
    // refused.
    const SYBILS: usize = 10;
    let mut sybils = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..SYBILS {
        let conn = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
            .await
            .expect("connect");
        answers.push(conn.reserve().await.expect("an answer").status);
        sybils.push(conn);
    }
    let (granted, sybils_refused) = tally(&answers);
    assert_eq!(granted, MAX_RESERVATIONS - CONNECTIONS_PER_PEER - 1);
    refused += sybils_refused;
    relay.wait_metric(refused_metric, refused as u64).await;

    // 5. 200 requests at once on one connection of a full relay: none is
    // granted; each is refused or its stream dropped (libp2p's relay
    // handles 10 streams of a connection at a time, one reservation
    // request at a time).
    const BLAST: usize = 200;
    let blaster = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    let blast = futures::future::join_all((0..BLAST).map(|_| blaster.reserve())).await;
    let blast_granted = blast
        .iter()
        .filter(|a| matches!(a, Ok(m) if m.status == Some(Status::Ok)))
        .count();
    let blast_refused = blast
        .iter()
        .filter(|a| matches!(a, Ok(m) if m.status == Some(Status::ResourceLimitExceeded)))
        .count();
    assert_eq!(blast_granted, 0, "a full relay granted a reservation");
    assert!(blast_refused >= 1, "no request of the blast was answered");
    let counted = relay.metric(refused_metric);
    assert!(
        (refused as u64..=(refused + blast_refused) as u64).contains(&counted),
        "{refused_metric} {counted}; refused {refused} before the blast, {blast_refused} in it"
    );

    // 6. The Sybils leave; an honest node reserves with its real relay
    // client, while the one identity still holds its four.
    drop((sybils, blaster));
    let node = Node::reserved_on(&relay);
    let after = relay.check_bounded(before);
    eprintln!(
        "relay_hostile reservations: one peer held {CONNECTIONS_PER_PEER} of {MAX_RESERVATIONS}; \
         renewals {} granted / {} refused; Sybils {} granted / {sybils_refused} refused; \
         blast of {BLAST}: {blast_refused} refused, {} dropped; {refused_metric} {}; \
         RSS {before} KiB -> {after} KiB",
        RESERVATION_BURST_PER_PEER - CONNECTIONS_PER_PEER,
        RENEWALS - (RESERVATION_BURST_PER_PEER - CONNECTIONS_PER_PEER),
        MAX_RESERVATIONS - CONNECTIONS_PER_PEER - 1,
        BLAST - blast_refused,
        relay.metric(refused_metric),
    );
    drop((conns, honest, node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_floods_are_refused_and_circuits_over_their_byte_or_time_cap_are_closed() {
    let mut relay = Node::relay();
    let honest = Node::reserved_on(&relay);
    let before = relay.rss_kib();
    let mut served = 0u64;

    // A raw peer holding a reservation accepts every circuit to it.
    let sink = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    let mut incoming = sink.sink();
    assert_eq!(
        sink.reserve().await.expect("answer").status,
        Some(Status::Ok)
    );

    // 1. One peer asks for 40 circuits and holds those it gets: exactly
    // its fair share is granted, the rest refused as over the limit.
    let mallory = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    const FLOOD: usize = 40;
    let (mut answers, mut held, mut readers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..FLOOD {
        let (answer, circuit) = mallory.connect(sink.peer).await.expect("an answer");
        answers.push(answer.status);
        if let Some(circuit) = circuit {
            assert_eq!(answer.limit_bytes, Some(CIRCUIT_BYTES), "{answer:?}");
            assert_eq!(answer.limit_secs, Some(CIRCUIT_SECS), "{answer:?}");
            let (connect, far_end) = next_circuit(&mut incoming).await;
            assert_eq!(connect.peer, Some(mallory.peer));
            assert_eq!(connect.limit_bytes, Some(CIRCUIT_BYTES));
            held.push(circuit);
            readers.push((Instant::now(), read_until_closed(far_end)));
        }
    }
    let (granted, mut refused) = tally(&answers);
    assert_eq!(
        granted, CIRCUITS_PER_PEER,
        "one peer's circuits: {answers:?}"
    );
    assert_eq!(refused, FLOOD - CIRCUITS_PER_PEER);
    served += granted as u64;

    // 2. Circuits to peers that hold no reservation: typed NO_RESERVATION.
    let prober = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    for _ in 0..3 {
        let (answer, _) = prober.connect(PeerId::random()).await.expect("an answer");
        assert_eq!(answer.status, Some(Status::NoReservation), "{answer:?}");
        refused += 1;
    }

    // 3. Many identities fill the relay's circuits, then are refused; an
    // honest relayed request is refused while it is full.
    const SYBILS: usize = 6;
    let (mut sybils, mut answers, mut sybil_readers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SYBILS {
        let conn = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
            .await
            .expect("connect");
        let (answer, circuit) = conn.connect(sink.peer).await.expect("an answer");
        answers.push(answer.status);
        if let Some(circuit) = circuit {
            let (_, far_end) = next_circuit(&mut incoming).await;
            sybil_readers.push(read_until_closed(far_end));
            sybils.push((conn, Some(circuit)));
        } else {
            sybils.push((conn, None));
        }
    }
    let (sybils_granted, sybils_refused) = tally(&answers);
    assert_eq!(sybils_granted, MAX_CIRCUITS - CIRCUITS_PER_PEER);
    refused += sybils_refused;
    served += sybils_granted as u64;
    let full = ask_through_relay(&relay.addr, honest.peer).await;
    assert!(full.is_err(), "a full relay opened a circuit: {full:?}");
    let mut honest_refused = 1;

    // 4. The Sybils leave (the relay closes their circuits); an honest
    // relayed request is answered, while the one peer still holds its
    // four circuits.
    drop(sybils);
    for reader in sybil_readers {
        closed_within(reader, WITHIN).await;
    }
    let t = Instant::now();
    let answered = loop {
        match ask_through_relay(&relay.addr, honest.peer).await {
            Ok(frame) => break frame,
            Err(e) => {
                honest_refused += 1;
                assert!(t.elapsed() < WITHIN, "honest relayed request: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    match answered {
        Frame::Failed { id, error, .. } => {
            assert_eq!(id, 7);
            assert_eq!(error.kind, SendErrorKind::CapabilityMissing, "{error}");
        }
        other => panic!("expected a typed failure, got {other:?}"),
    }
    served += 1;

    // 5. A circuit carrying more than its byte cap is closed by the relay.
    let mut flood = held.remove(0);
    let (_, reader) = readers.remove(0);
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5au8; 16 * 1024];
        let mut sent = 0u64;
        while sent < 4 * CIRCUIT_BYTES {
            if flood.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let (received, _) = closed_within(reader, WITHIN).await;
    let sent = tokio::time::timeout(WITHIN, writer)
        .await
        .expect("the writer stops once the circuit is closed")
        .expect("writer");
    assert!(
        (CIRCUIT_BYTES / 2..=CIRCUIT_BYTES + 64 * 1024).contains(&received),
        "the far end read {received} bytes of a circuit capped at {CIRCUIT_BYTES}"
    );
    assert!(sent < 4 * CIRCUIT_BYTES || received < sent, "sent {sent}");

    // 6. Fairness over time: one peer opening and closing circuits gets
    // its burst, is refused, and gets another once a slot of its rate
    // frees up (10 a minute: one every 6 s).
    let hasty = Conn::open(&Keypair::generate_ed25519(), &relay.addr)
        .await
        .expect("connect");
    for i in 0..CIRCUITS_PER_MINUTE {
        let (answer, circuit) = hasty.connect(sink.peer).await.expect("an answer");
        assert_eq!(answer.status, Some(Status::Ok), "circuit {i} of the burst");
        drop(circuit);
        let (_, far_end) = next_circuit(&mut incoming).await;
        closed_within(read_until_closed(far_end), WITHIN).await;
        served += 1;
    }
    let (answer, _) = hasty.connect(sink.peer).await.expect("an answer");
    assert_eq!(
        answer.status,
        Some(Status::ResourceLimitExceeded),
        "past the burst"
    );
    refused += 1;
    let t = Instant::now();
    let waited = loop {
        let (answer, circuit) = hasty.connect(sink.peer).await.expect("an answer");
        if answer.status == Some(Status::Ok) {
            drop(circuit);
            let (_, far_end) = next_circuit(&mut incoming).await;
            closed_within(read_until_closed(far_end), WITHIN).await;
            served += 1;
            break t.elapsed();
        }
        assert_eq!(answer.status, Some(Status::ResourceLimitExceeded));
        refused += 1;
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "no new circuit within 45 s of the burst: the rate is not 10 a minute"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    // 7. The one peer's other circuits, idle, are closed at their time cap.
    for (opened, reader) in readers {
        let (_, closed) = closed_within(reader, Duration::from_secs(CIRCUIT_SECS) + WITHIN).await;
        let lived = closed.duration_since(opened);
        assert!(
            lived + Duration::from_secs(2) >= Duration::from_secs(CIRCUIT_SECS),
            "a circuit closed after {lived:?}, before its {CIRCUIT_SECS} s"
        );
    }
    drop(held);

    // The relay counted what it served and refused, and is still well.
    relay
        .wait_metric("hearth_net_relay_circuits_served_total", served)
        .await;
    let refused_counted = relay.metric("hearth_net_relay_circuits_refused_total");
    assert!(
        (refused as u64..=(refused + honest_refused) as u64).contains(&refused_counted),
        "circuits refused: counted {refused_counted}, raw peers saw {refused} and the honest \
         client {honest_refused}"
    );
    let after = relay.check_bounded(before);
    honest.wait_reserved();
    eprintln!(
        "relay_hostile circuits: one peer {CIRCUITS_PER_PEER} granted / {} refused of {FLOOD}; \
         Sybils {sybils_granted} granted / {sybils_refused} refused; byte cap {CIRCUIT_BYTES}: \
         far end read {received} of {sent} sent; next circuit after the burst in {waited:?}; \
         served {served}, refused {refused_counted}; RSS {before} KiB -> {after} KiB",
        FLOOD - CIRCUITS_PER_PEER,
    );
}
