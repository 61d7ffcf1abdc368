//! Nodes behind NATs, on a namespace network this test builds itself
//! (`common/netns.rs`): a relay on the "internet", alice and bob each in a
//! home network behind a masquerading router. Real `hearth` binaries, real
//! libp2p relay, DCUtR and AutoNAT, real nftables NAT.
//!
//! Needs root (CI runs as root) with `ip` and `nft`; without them each
//! test prints why it is skipped and returns.

#[path = "common/netns.rs"]
mod netns;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{binaries, guests, net_probe, probe_package, TempDir};
use netns::{peers, status, wait_for, Nat, NatNet, NsNode, NET_IP, RELAY2_IP, RELAY_IP};

/// How long a state change across the network may take on a loaded
/// machine (AutoNAT probes every 5 s, reservations, DHT lookups).
const WITHIN: Duration = Duration::from_secs(90);
const ASK: Duration = Duration::from_secs(30);

fn network(nat: Nat, test: &str) -> Option<NatNet> {
    match NatNet::create(nat) {
        Ok(net) => Some(net),
        Err(why) => {
            eprintln!(
                "SKIPPED nat::{test}: cannot build the NAT test network (needs root, iproute2 \
                 and nftables; .ci/setup installs them): {why}"
            );
            None
        }
    }
}

fn start(net: &NatNet, host: &str, dir: &Path, name: &str, extra: &[String]) -> NsNode {
    netns::start(
        &binaries().join("hearth"),
        &net.ns(host),
        &dir.join(name),
        name,
        extra,
    )
}

/// A public relay in `host` at `ip`.
fn relay(net: &NatNet, host: &str, ip: &str, dir: &Path, name: &str) -> NsNode {
    let extra = [
        "--relay".to_string(),
        "--external-addr".into(),
        format!("/ip4/{ip}/tcp/4001"),
        "--external-addr".into(),
        format!("/ip4/{ip}/udp/4001/quic-v1"),
    ];
    start(net, host, dir, name, &extra)
}

/// A home node joining through `relay`'s QUIC address and reserving on
/// each of `relays` (TCP addresses) in turn.
fn home(
    net: &NatNet,
    host: &str,
    dir: &Path,
    name: &str,
    bootstrap: &str,
    relays: &[String],
) -> NsNode {
    let mut extra = vec![
        "--bootstrap".to_string(),
        bootstrap.to_string(),
        "--dial-timeout-ms".into(),
        "20000".into(),
    ];
    for relay in relays {
        extra.push("--relay-via".into());
        extra.push(relay.clone());
    }
    start(net, host, dir, name, &extra)
}

fn reach(node: &NsNode) -> Value {
    status(node)["reachability"].clone()
}

fn wait_reach(node: &NsNode, status: &str) {
    wait_for(
        &format!("{} to find it is {status}", node.name),
        WITHIN,
        || (reach(node)["status"] == status).then_some(()),
    );
}

/// Waits until `node` holds a reservation on the relay at `index` of its
/// `--relay-via` list; returns its circuit addresses.
fn wait_reserved(node: &NsNode, index: usize) -> Vec<String> {
    wait_for(
        &format!("{} to reserve on relay #{index}", node.name),
        WITHIN,
        || {
            let r = reach(node);
            let reserved = r["relays"][index]["state"] == "reserved";
            let circuits: Vec<String> = r["circuits"]
                .as_array()?
                .iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect();
            (reserved && !circuits.is_empty()).then_some(circuits)
        },
    )
}

fn probe_files() -> Vec<hearth::api::PackageFile> {
    guests();
    probe_package(json!([net_probe("owner"), net_probe("sub")]))
}

/// `publish_n` on the owner probe: acked publishes of `{"i": base..}`.
fn publish_n(node: &NsNode, room: &str, base: u64, count: u64) {
    let reply = node
        .ask(
            "owner:probe:test",
            json!({"publish_n": {"room": room, "base": base, "count": count}}),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("publish_n: {e}"));
    assert!(reply["ok"]["seqs"].is_array(), "publish_n: {reply}");
}

/// Sequence numbers of the events `node`'s `sub` probe received from
/// `owner`'s `room`, in delivery order.
fn seqs(node: &NsNode, owner: &str, room: &str) -> Vec<u64> {
    let log = node
        .ask("sub:probe:test", json!({"room_log": null}), ASK)
        .unwrap_or_else(|e| panic!("room_log: {e}"));
    let events = log["rooms"]
        .as_array()
        .and_then(|rooms| {
            rooms
                .iter()
                .find(|r| r["owner"] == owner && r["room"] == room)
        })
        .and_then(|r| r["events"].as_array().cloned())
        .unwrap_or_default();
    for e in &events {
        if let Some(seq) = e["event"]["seq"].as_u64() {
            assert_eq!(
                e["event"]["payload"]["i"],
                seq - 1,
                "payload of event {seq}: {e}"
            );
        }
    }
    events
        .iter()
        .filter_map(|e| e["event"]["seq"].as_u64())
        .collect()
}

/// Requests alice sends bob by name, one after the other, until stopped:
/// every one must be answered with what it carried.
fn echo_loop(alice: &NsNode, stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let answer = alice.ask("bob.os@owner:probe:test", json!({"echo": n}), ASK);
        match answer {
            Ok(v) if v == json!(n) => {
                n += 1;
                // A steady trickle, not a flood that starves the machine.
                std::thread::sleep(Duration::from_millis(20));
            }
            // Until bob's name resolves and a link is up, the first
            // request may fail offline; nothing else is allowed.
            Err(e) if n == 0 && e.contains("offline") => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("request {n} to bob.os: {other:?}"),
        }
    }
    n
}

/// The last lines of a log, for a failure message.
fn tail_of(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn peer<'a>(peers: &'a [hearth::api::PeerInfo], name: &str) -> Option<&'a hearth::api::PeerInfo> {
    peers.iter().find(|p| p.name.as_deref() == Some(name))
}

#[test]
fn behind_two_nats_nodes_reach_each_other_by_name_relayed_then_direct() {
    let Some(net) = network(Nat::Easy, "behind_two_nats") else {
        return;
    };
    let dir = TempDir::new("nat-easy");
    let relay = relay(&net, "relay", RELAY_IP, dir.path(), "relay.os");
    let via = vec![relay.tcp_addr(RELAY_IP)];
    let boot = relay.quic_addr(RELAY_IP);
    let alice = home(&net, "alice", dir.path(), "alice.os", &boot, &via);
    let bob = home(&net, "bob", dir.path(), "bob.os", &boot, &via);

    // Each finds it is private; the relay (given its address) is public.
    wait_reach(&alice, "private");
    wait_reach(&bob, "private");
    assert_eq!(reach(&relay)["status"], "public");
    assert_eq!(reach(&relay)["serving_relay"], true);
    // Each reserves on the relay; the circuit address is in its record.
    let circuits = wait_reserved(&bob, 0);
    assert!(
        circuits
            .iter()
            .all(|c| c.contains(&relay.peer_id) && c.contains("/p2p-circuit")),
        "{circuits:?}"
    );
    wait_reserved(&alice, 0);

    alice.install(probe_files()).expect("install on alice");
    bob.install(probe_files()).expect("install on bob");
    // 600 events in bob's room before alice joins: her join (resuming
    // after 0, so from the first event) replays them
    // over the first (relayed) connection while DCUtR upgrades it.
    publish_n(&bob, "r", 0, 600);

    // Requests by name, no address typed, running across the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let asks = std::thread::scope(|s| {
        let asker = s.spawn(|| echo_loop(&alice, &stop));
        let owner = "bob.os@owner:probe:test";
        let joined = wait_for("alice's join of bob's room", WITHIN, || {
            let reply = alice
                .ask(
                    "sub:probe:test",
                    json!({"watch": {"owner": owner, "room": "r", "from": 0}}),
                    ASK,
                )
                .unwrap_or_else(|e| panic!("watch: {e}"));
            if reply["Err"].get("Unreachable").is_some() {
                return None;
            }
            Some(reply)
        });
        assert!(joined["Ok"]["Joined"].is_object(), "{joined}");
        publish_n(&bob, "r", 600, 600);
        let t = std::time::Instant::now();
        let got = loop {
            let got = seqs(&alice, owner, "r");
            if got.len() >= 1200 {
                break got;
            }
            if t.elapsed() > WITHIN {
                stop.store(true, Ordering::Relaxed);
                let tail: Vec<_> = got.iter().rev().take(5).collect();
                panic!(
                    "alice has {} of 1200 events (last {tail:?})\n--- alice\n{}\n--- bob\n{}",
                    got.len(),
                    tail_of(&alice.log()),
                    tail_of(&bob.log())
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(
            got,
            (1..=1200).collect::<Vec<u64>>(),
            "every event once, in order"
        );
        stop.store(true, Ordering::Relaxed);
        asker.join().expect("the request loop")
    });
    assert!(asks > 0, "alice's requests to bob.os were answered");

    // The connection is direct now, and it started relayed.
    let direct = wait_for("alice's connection to bob to be direct", WITHIN, || {
        let peers = peers(&alice);
        let bob = peer(&peers, "bob.os")?;
        (bob.connection.as_deref() == Some("direct")).then(|| bob.clone())
    });
    assert!(
        direct.transport.is_some() && direct.rtt_ms.is_some(),
        "{direct:?}"
    );
    let punched = alice.metric("hearth_net_hole_punch_successes_total")
        + bob.metric("hearth_net_hole_punch_successes_total");
    assert!(punched >= 1, "a hole punch succeeded");
    let moved = "message stream moved from the relay to a direct connection";
    assert!(
        alice.log().contains(moved) || bob.log().contains(moved),
        "the message stream started on the relay and moved"
    );
    assert!(
        alice.metric("hearth_net_relayed_bytes_total") > 0,
        "alice wrote over the relay first"
    );
    assert!(relay.metric("hearth_net_relay_circuits_served_total") >= 1);
    eprintln!(
        "nat: {asks} requests across the upgrade; relayed bytes alice {} bob {}",
        alice.metric("hearth_net_relayed_bytes_total"),
        bob.metric("hearth_net_relayed_bytes_total")
    );
}

#[test]
fn symmetric_nat_hole_punch_fails_and_traffic_stays_relayed() {
    let Some(net) = network(Nat::Symmetric, "symmetric_nat") else {
        return;
    };
    let dir = TempDir::new("nat-sym");
    let relay = relay(&net, "relay", RELAY_IP, dir.path(), "relay.os");
    let via = vec![relay.tcp_addr(RELAY_IP)];
    let boot = relay.quic_addr(RELAY_IP);
    let alice = home(&net, "alice", dir.path(), "alice.os", &boot, &via);
    let bob = home(&net, "bob", dir.path(), "bob.os", &boot, &via);
    wait_reserved(&bob, 0);
    wait_reserved(&alice, 0);
    bob.install(probe_files()).expect("install on bob");

    let first = wait_for("bob.os to answer through the relay", WITHIN, || {
        alice
            .ask("bob.os@owner:probe:test", json!({"echo": "hello"}), ASK)
            .ok()
    });
    assert_eq!(first, json!("hello"));
    // DCUtR tries (3 rounds) and gives up: bob's router maps every
    // connection to a new port.
    wait_for("a failed hole punch", WITHIN, || {
        let attempts = alice.metric("hearth_net_hole_punch_attempts_total")
            + bob.metric("hearth_net_hole_punch_attempts_total");
        (attempts >= 1).then_some(())
    });
    assert_eq!(
        alice.metric("hearth_net_hole_punch_successes_total")
            + bob.metric("hearth_net_hole_punch_successes_total"),
        0
    );
    // Traffic keeps flowing through the relay, within its limits
    // (16 MiB and 10 minutes per circuit by default): 200 x 8 KiB.
    let pad = "x".repeat(8 * 1024);
    for i in 0..200 {
        let answer = alice
            .ask("bob.os@owner:probe:test", json!({"echo": [i, pad]}), ASK)
            .unwrap_or_else(|e| panic!("request {i} over the relay: {e}"));
        assert_eq!(answer[0], i);
    }
    // Bob took the circuit alice opened: the relay client names its far
    // end a bare `/p2p/<alice>`, and it must still count as relayed.
    let bobs = peers(&bob);
    let to_alice = peer(&bobs, "alice.os").expect("alice among bob's peers");
    assert_eq!(
        to_alice.connection.as_deref(),
        Some("relayed"),
        "{to_alice:?}"
    );
    let peers = peers(&alice);
    let to_bob = peer(&peers, "bob.os").expect("bob among alice's peers");
    assert_eq!(to_bob.connection.as_deref(), Some("relayed"), "{to_bob:?}");
    assert!(alice.metric("hearth_net_relayed_bytes_total") > 200 * 8 * 1024);
    assert!(relay.metric("hearth_net_relay_circuits_served_total") >= 1);
}

#[test]
fn relays_refuse_or_go_away_and_nodes_move_to_the_next() {
    let Some(net) = network(Nat::Easy, "relay_failover") else {
        return;
    };
    let dir = TempDir::new("nat-failover");
    // A public node that is not a relay, on the internet segment.
    let plain = start(&net, "net", dir.path(), "plain.os", &[]);
    let mut first = relay(&net, "relay", RELAY_IP, dir.path(), "relay.os");
    let second = relay(&net, "relay2", RELAY2_IP, dir.path(), "relay2.os");
    assert_eq!(reach(&plain)["serving_relay"], false);
    let via = vec![
        plain.tcp_addr(NET_IP),
        first.tcp_addr(RELAY_IP),
        second.tcp_addr(RELAY2_IP),
    ];
    let alice = home(
        &net,
        "alice",
        dir.path(),
        "alice.os",
        &first.quic_addr(RELAY_IP),
        &via,
    );

    // The plain node refuses (it does not speak the relay protocol), so
    // alice moves on and reserves on the relay.
    wait_reserved(&alice, 1);
    let relays = reach(&alice)["relays"].clone();
    assert_eq!(relays[0]["state"], "standby", "{relays}");
    assert_eq!(plain.metric("hearth_net_relay_circuits_served_total"), 0);

    // bob, behind the other NAT, reaches alice by name through the relay;
    // his address book keeps her record (circuit on the first relay).
    let mut bob = start(
        &net,
        "bob",
        dir.path(),
        "bob.os",
        &joining(&first.quic_addr(RELAY_IP)),
    );
    wait_for("bob to reach alice.os through the relay", WITHIN, || {
        answers(&bob, "alice.os").then_some(())
    });
    wait_for("alice's record in bob's address book", WITHIN, || {
        circuit_in_book(&bob, "alice.os", &first.peer_id).then_some(())
    });
    bob.kill();

    // The relay dies: alice reports losing it and reserves on the second.
    first.kill();
    let circuits = wait_reserved(&alice, 2);
    assert!(
        circuits.iter().any(|c| c.contains(&second.peer_id)),
        "{circuits:?}"
    );
    let r = reach(&alice);
    assert!(r["relays_lost"].as_u64() >= Some(1), "{r}");
    assert!(alice.metric("hearth_net_relays_lost_total") >= 1);
    assert!(alice.log().contains("lost our relay reservation"));

    // bob comes back, joining through the second relay. His book still
    // names alice's circuit on the dead relay: a record is only a cache.
    // His lookup by name finds her newer record, with her circuit on the
    // second relay.
    assert!(circuit_in_book(&bob, "alice.os", &first.peer_id));
    let bob = start(
        &net,
        "bob",
        dir.path(),
        "bob.os",
        &joining(&second.quic_addr(RELAY2_IP)),
    );
    // (Asking again after an `offline`: her record reaches the second
    // relay's DHT store by her next put.)
    wait_for(
        "bob to reach alice.os after her re-reservation",
        WITHIN,
        || answers(&bob, "alice.os").then_some(()),
    );
    assert!(
        circuit_in_book(&bob, "alice.os", &second.peer_id),
        "bob's book has alice's current circuit"
    );
}

#[test]
fn private_nodes_find_the_relay_among_their_peers() {
    let Some(net) = network(Nat::Easy, "relay_discovery") else {
        return;
    };
    let dir = TempDir::new("nat-discovery");
    let relay = relay(&net, "relay", RELAY_IP, dir.path(), "relay.os");
    // No --relay-via: only the public relay to join through.
    let boot = relay.quic_addr(RELAY_IP);
    let alice = home(&net, "alice", dir.path(), "alice.os", &boot, &[]);
    let bob = home(&net, "bob", dir.path(), "bob.os", &boot, &[]);

    // Each learns it is private, finds that its bootstrap peer serves as
    // a relay (identify lists the hop protocol) and reserves there.
    for node in [&alice, &bob] {
        wait_reach(node, "private");
        let circuits = wait_reserved(node, 0);
        assert!(
            circuits
                .iter()
                .all(|c| c.contains(&relay.peer_id) && c.contains("/p2p-circuit")),
            "{}: {circuits:?}",
            node.name
        );
        let relays = reach(node)["relays"].clone();
        assert_eq!(relays.as_array().map(Vec::len), Some(1), "{relays}");
        assert!(node.log().contains("found a relay among our peers"));
    }
    // The relay itself is public and reserves nowhere.
    assert_eq!(reach(&relay)["status"], "public");
    assert_eq!(reach(&relay)["relays"], json!([]));

    // bob's circuit is in his published record: alice reaches bob.os by
    // name (asking again while his record spreads).
    bob.install(probe_files()).expect("install on bob");
    let answer = wait_for("alice to reach bob.os by name", WITHIN, || {
        alice
            .ask("bob.os@owner:probe:test", json!({"echo": "found"}), ASK)
            .ok()
    });
    assert_eq!(answer, json!("found"));
    assert!(relay.metric("hearth_net_relay_circuits_served_total") >= 1);
    assert!(alice.metric("hearth_net_relay_reservations_total") >= 1);
    assert!(bob.metric("hearth_net_relay_reservations_total") >= 1);
}

/// A node behind bob's router joining through `bootstrap`.
fn joining(bootstrap: &str) -> Vec<String> {
    vec![
        "--bootstrap".into(),
        bootstrap.into(),
        "--dial-timeout-ms".into(),
        "20000".into(),
    ]
}

/// Whether `node` reaches `name`'s kernel: a request to a process it does
/// not run comes back `unknown-process` from there.
fn answers(node: &NsNode, name: &str) -> bool {
    let answer = node.ask(&format!("{name}@none:probe:test"), Value::Null, ASK);
    matches!(answer, Err(e) if e.contains("unknown-process"))
}

/// Whether `node`'s address book (`peers.json`) holds a record of `name`
/// whose first address is a circuit on the relay `relay`.
fn circuit_in_book(node: &NsNode, name: &str, relay: &str) -> bool {
    let book = std::fs::read(node.home.join("peers.json")).unwrap_or_default();
    let records: Vec<Value> = serde_json::from_slice(&book).unwrap_or_default();
    records.iter().any(|r| {
        r["name"] == name
            && r["addrs"][0]
                .as_str()
                .is_some_and(|a| a.contains(relay) && a.contains("/p2p-circuit"))
    })
}
