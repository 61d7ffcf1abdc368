//! Durable state: what a process was told is saved survives a graceful
//! restart, a trap, and `kill -9` of the real `hearth` binary at random
//! moments during continuous writes by several processes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::api::{InjectRequest, InstallResponse, MESSAGE_PATH, SECRET_FILE, SECRET_HEADER};
use hearth::Node;
use serde_json::{json, Value};

use crate::common::*;

/// Kills of the node during writes.
const KILLS: usize = 20;
/// Processes writing their state at once.
const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_brings_back_processes_children_and_state() {
    let n = TestNode::start("restart").await;
    n.install_probe(standard_manifest()).await;
    n.ask("alpha:probe:test", json!({"state_set": "alpha-kept"}))
        .await
        .unwrap();
    let spawned = n
        .ask(
            "alpha:probe:test",
            json!({"spawn": {"name": "kid", "public": true}}),
        )
        .await
        .unwrap();
    assert_eq!(spawned["id"], "kid:probe:test");
    n.ask("kid:probe:test", json!({"state_set": "kid-kept"}))
        .await
        .unwrap();
    // The child may message its parent: a capability a spawn gives.
    let via = n
        .ask(
            "kid:probe:test",
            json!({"ask": {"target": "alpha:probe:test", "body": {"echo": 1}}}),
        )
        .await
        .unwrap();
    assert_eq!(via["ok"], json!(1), "{via}");

    let config = test_config(n.home.path(), "restart");
    let home = n.stop().await;
    let n = TestNode::start_with(config, home).await;
    let alpha = n
        .ask("alpha:probe:test", json!({"state_get": null}))
        .await
        .unwrap();
    assert_eq!(alpha["value"], "alpha-kept");
    assert_eq!(alpha["boots"], 2);
    let kid = n
        .ask("kid:probe:test", json!({"state_get": null}))
        .await
        .unwrap();
    assert_eq!(
        kid["value"], "kid-kept",
        "the spawned child is back with its state"
    );
    assert_eq!(kid["boots"], 2);
    let via = n
        .ask(
            "kid:probe:test",
            json!({"ask": {"target": "alpha:probe:test", "body": {"echo": 2}}}),
        )
        .await
        .unwrap();
    assert_eq!(
        via["ok"],
        json!(2),
        "restored child keeps its capabilities: {via}"
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_gets_the_last_durable_state_after_a_trap() {
    let n = TestNode::start("trap-state").await;
    n.install_probe(standard_manifest()).await;
    for i in 0..5 {
        n.ask("phoenix:probe:test", json!({"state_set": i}))
            .await
            .unwrap();
    }
    let _ = n.ask("phoenix:probe:test", json!({"trap": null})).await;
    let t = Instant::now();
    let state = loop {
        match n
            .ask("phoenix:probe:test", json!({"state_get": null}))
            .await
        {
            Ok(v) if v["boots"] == 2 => break v,
            _ if t.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("phoenix did not come back: {other:?}"),
        }
    };
    assert_eq!(state["value"], 4);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_exit_requests_are_sent_when_the_process_dies_and_it_stays_down() {
    let n = TestNode::start("herald").await;
    let exit = json!({"Requests": [
        {"target": "alpha:probe:test", "body": {"seq": 0}},
        {"target": "alpha:probe:test", "body": {"seq": 1}},
    ]});
    n.install_probe(json!([
        probe("alpha", true, json!("None"), &[]),
        probe("herald", true, exit, &["alpha:probe:test"]),
    ]))
    .await;
    let _ = n.ask("herald:probe:test", json!({"trap": null})).await;
    let got = n
        .received_until("alpha:probe:test", Duration::from_secs(5), |got| {
            got["count"] == 2
        })
        .await;
    assert_eq!(got["count"], 2, "on_exit requests never arrived: {got}");
    assert_eq!(got["out_of_order"], 0);
    let gone = n.ask("herald:probe:test", json!({"echo": 1})).await;
    assert!(gone.is_err(), "a Requests process stays down");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_a_clear_error_naming_the_file() {
    let home = TempDir::new("corrupt");
    let n = TestNode::start_with(test_config(home.path(), "corrupt"), home).await;
    n.install_probe(standard_manifest()).await;
    n.ask("alpha:probe:test", json!({"state_set": 1}))
        .await
        .unwrap();
    let home = n.stop().await;
    let store = home.path().join(hearth::state::STORE_DIR);
    std::fs::write(store.join("conf"), b"\xff\xfe not a sled config \x00\x01").unwrap();
    let started = std::panic::AssertUnwindSafe(Node::start(test_config(home.path(), "corrupt")));
    let error = match started.await {
        Err(e) => e.to_string(),
        Ok(node) => {
            node.shutdown().await;
            panic!("a corrupt store must not open");
        }
    };
    assert!(error.contains("state.sled"), "names the store: {error}");
    assert!(
        error.contains("move that directory aside"),
        "says what to do: {error}"
    );
}

/// The real binary with a throw-away `$HOME`, killed with SIGKILL on drop.
struct Hearth {
    process: HearthProcess,
    port: u16,
    secret: String,
}

impl Hearth {
    fn start(home: &Path, user_home: &Path) -> Self {
        let process = HearthProcess::start(home, user_home, "kill.os", &["--no-mdns"]);
        let t = Instant::now();
        let secret = std::fs::read_to_string(home.join(SECRET_FILE)).expect("secret");
        let node = Self {
            port: process.port,
            process,
            secret: secret.trim().to_string(),
        };
        // The port is written before the packages start; wait for them.
        let agent = ureq::Agent::new_with_defaults();
        let last = format!("w{}:probe:test", WRITERS - 1);
        while inject(&agent, (node.port, &node.secret), &last, json!({"echo": 1})).is_err() {
            let log = std::fs::read_to_string(home.join("hearth.log")).unwrap_or_default();
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "processes did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        node
    }

    fn kill9(&mut self) {
        self.process.kill();
    }
}

/// One admin request; `Err` if it failed (the node may be dying).
fn inject(
    agent: &ureq::Agent,
    node: (u16, &str),
    target: &str,
    body: Value,
) -> Result<Value, String> {
    let request = InjectRequest {
        target: target.into(),
        body,
        timeout_ms: Some(5_000),
        non_block: false,
    };
    let mut response = agent
        .post(format!("http://127.0.0.1:{}{MESSAGE_PATH}", node.0))
        .header(SECRET_HEADER, node.1)
        .send_json(&request)
        .map_err(|e| e.to_string())?;
    let reply: Value = response.body_mut().read_json().map_err(|e| e.to_string())?;
    Ok(reply["body"].clone())
}

/// Install the probe package into `home` with an in-process node, so the
/// binary finds it at boot.
fn install_writers(home: &Path) {
    let mut manifest = vec![probe("alpha", true, json!("None"), &[])];
    for w in 0..WRITERS {
        manifest.push(probe(&format!("w{w}"), true, json!("None"), &[]));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let node = Node::start(test_config(home, "kill.os"))
            .await
            .expect("node starts");
        let installed: InstallResponse =
            hearth::package::install(node.services(), probe_package(json!(manifest)))
                .await
                .expect("install");
        assert_eq!(installed.processes.len(), WRITERS + 1);
        node.shutdown().await;
    });
}

/// A small xorshift: random kill moments without a crate.
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_writes_survive_kill_9_at_random_moments() {
    let home = TempDir::new("kill9");
    let user_home = TempDir::new("kill9-user");
    binaries();
    let started = Instant::now();
    install_writers(home.path());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(6)))
        .build()
        .into();
    // Last acknowledged value per writer, and of the kv batch.
    let mut acked: Vec<i64> = vec![-1; WRITERS];
    let mut batch_acked: i64 = -1;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let mut total_acked = 0u64;
    for round in 0..=KILLS {
        let mut node = Hearth::start(home.path(), user_home.path());
        let key = (node.port, node.secret.as_str());
        // The store opened cleanly; every acknowledged write is there.
        for (w, slot) in acked.iter_mut().enumerate() {
            let last = *slot;
            let state = inject(
                &agent,
                key,
                &format!("w{w}:probe:test"),
                json!({"state_get": null}),
            )
            .unwrap_or_else(|e| {
                let log =
                    std::fs::read_to_string(home.path().join("hearth.log")).unwrap_or_default();
                panic!("round {round}: w{w} does not answer: {e}\n{log}")
            });
            let value = state["value"].as_i64().unwrap_or(-1);
            assert!(
                value == last || value == last + 1,
                "round {round}: w{w} holds {value}, last acknowledged {last} (an unacknowledged write may land)"
            );
            *slot = value;
        }
        let a = inject(
            &agent,
            key,
            "alpha:probe:test",
            json!({"kv": {"get": {"db": "pairs", "key": "a"}}}),
        );
        let b = inject(
            &agent,
            key,
            "alpha:probe:test",
            json!({"kv": {"get": {"db": "pairs", "key": "b"}}}),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b, "round {round}: a kv batch was applied in part");
        let pair = a["ok"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(-1);
        assert!(
            pair == batch_acked || pair == batch_acked + 1,
            "round {round}: pair {pair}, acked {batch_acked}"
        );
        batch_acked = pair;
        if round == KILLS {
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (w, &start) in acked.iter().enumerate() {
            let (stop, agent, secret, port) =
                (stop.clone(), agent.clone(), node.secret.clone(), node.port);
            writers.push(std::thread::spawn(move || {
                let mut last = start;
                while !stop.load(Ordering::Relaxed) {
                    let next = last + 1;
                    let reply = inject(
                        &agent,
                        (port, &secret),
                        &format!("w{w}:probe:test"),
                        json!({"state_set": next}),
                    );
                    match reply {
                        Ok(r) if r["ok"] == true => last = next,
                        _ => break,
                    }
                }
                last
            }));
        }
        let batcher = {
            let (stop, agent, secret, port) =
                (stop.clone(), agent.clone(), node.secret.clone(), node.port);
            std::thread::spawn(move || {
                let mut last = batch_acked;
                while !stop.load(Ordering::Relaxed) {
                    let v = (last + 1).to_string();
                    let cmd =
                        json!({"kv": {"batch": {"db": "pairs", "sets": [["a", v], ["b", v]]}}});
                    match inject(&agent, (port, &secret), "alpha:probe:test", cmd) {
                        Ok(r) if r.get("ok").is_some() => last += 1,
                        _ => break,
                    }
                }
                last
            })
        };
        std::thread::sleep(Duration::from_millis(30 + next_random(&mut seed) % 300));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for (w, writer) in writers.into_iter().enumerate() {
            let last = writer.join().expect("writer thread");
            total_acked += (last - acked[w]) as u64;
            acked[w] = last;
        }
        batch_acked = batcher.join().expect("batch thread");
    }
    assert!(
        total_acked > (KILLS * WRITERS) as u64,
        "too few writes acknowledged: {total_acked}"
    );
    eprintln!(
        "{KILLS} kills, {total_acked} acknowledged state writes, {batch_acked} kv batches: none lost ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
