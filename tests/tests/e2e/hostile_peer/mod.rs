//! A hostile peer: a real libp2p node written here (TCP, Noise, Yamux, the
//! Hearth message protocol and Kademlia) that dials a real node on
//! loopback and sends what an attacker would. Each case checks that the
//! node still serves peers afterwards, and the memory cases run the node as
//! a child `hearth` process and bound its resident memory.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use hearth::api::{InjectRequest, MESSAGE_PATH};
use hearth::net::record::NameRecord;
use hearth::net::wire::{self, Frame};
use hearth::types::{Address, Message, SendErrorKind};
use libp2p::identity::Keypair;
use libp2p::kad;
use serde_json::{json, Value};

use crate::common::mallory::*;
use crate::common::*;

mod frames;
mod names;
mod redial;

/// How much a node's resident memory may grow under one attack. Before
/// the hardening, the stalled-stream attack alone grew it by 6.4 GiB.
const RSS_GROWTH_BOUND_KIB: u64 = 160 * 1024;

/// A fresh peer says hello and asks a process that does not accept the
/// network: the victim must answer with a typed `Failed` frame.
async fn still_serves_peers(victim_addr: &str) {
    let honest = Mallory::connect(victim_addr).await;
    let mut inbox = Inbox::listen(&honest);
    let name = format!("honest-{}.os", now_millis() % 1_000_000);
    let mut stream = honest.hello_stream(&name).await;
    let to = "kv:distro:sys".to_string();
    write(
        &mut stream,
        &request(
            42,
            &format!("{name}@p:q:r"),
            &format!("victim.os@{to}"),
            json!({}),
            5000,
        ),
    )
    .await;
    match inbox.next().await {
        Frame::Failed { id, error, .. } => {
            assert_eq!(id, 42);
            assert_eq!(error.kind, SendErrorKind::CapabilityMissing, "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A real `hearth` child process: the node under attack.
struct Victim {
    process: HearthProcess,
    home: TempDir,
    _user_home: TempDir,
    addr: String,
    secret: String,
}

impl Victim {
    fn start() -> Self {
        let (home, user_home) = (TempDir::new("victim"), TempDir::new("victim-user"));
        let args = ["--p2p-bind", "127.0.0.1", "--no-mdns"];
        let process = HearthProcess::start(home.path(), user_home.path(), "victim.os", &args);
        let secret = std::fs::read_to_string(home.path().join(hearth::api::SECRET_FILE))
            .expect("admin secret");
        let url = format!(
            "http://127.0.0.1:{}{}",
            process.port,
            hearth::api::STATUS_PATH
        );
        let t = Instant::now();
        let addr = loop {
            let status: Value = ureq::get(&url)
                .header(hearth::api::SECRET_HEADER, secret.trim())
                .call()
                .expect("status")
                .body_mut()
                .read_json()
                .expect("status json");
            if let Some(addr) = status["bootstrap"].as_str() {
                break addr.to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "victim never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            process,
            home,
            _user_home: user_home,
            addr,
            secret: secret.trim().to_string(),
        }
    }

    /// Where and how to send it admin requests: off the test's runtime
    /// (`Injector::send` blocks), so several can be in flight.
    fn injector(&self) -> Injector {
        Injector {
            url: format!("http://127.0.0.1:{}{MESSAGE_PATH}", self.process.port),
            secret: self.secret.clone(),
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id()))
            .expect("victim alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn alive(&mut self) -> bool {
        matches!(self.process.child.try_wait(), Ok(None))
    }

    /// Alive, memory within the bound, and serving peers.
    async fn check(&mut self, before_kib: u64, case: &str) {
        assert!(self.alive(), "{case}: the node died:\n{}", self.log());
        let after = self.rss_kib();
        assert!(
            after <= before_kib + RSS_GROWTH_BOUND_KIB,
            "{case}: RSS grew from {before_kib} KiB to {after} KiB"
        );
        still_serves_peers(&self.addr).await;
        eprintln!("{case}: RSS {before_kib} KiB -> {after} KiB; still serving");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("hearth.log")).unwrap_or_default()
    }

    fn metric(&self, name: &str) -> u64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.process.port);
        let text = ureq::get(&url)
            .call()
            .expect("metrics")
            .body_mut()
            .read_to_string()
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

/// The victim's admin message endpoint (as `kit i` uses it).
#[derive(Clone)]
struct Injector {
    url: String,
    secret: String,
}

impl Injector {
    /// Send `body` to `target`: its answer's body, or the admin error's
    /// kind. `non_block` returns once the node took the message.
    fn send(
        &self,
        target: &str,
        body: Value,
        timeout_ms: u64,
        non_block: bool,
    ) -> Result<Value, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let request = InjectRequest {
            target: target.into(),
            body,
            timeout_ms: Some(timeout_ms),
            non_block,
        };
        let mut response = agent
            .post(&self.url)
            .header(hearth::api::SECRET_HEADER, &self.secret)
            .send_json(&request)
            .expect("the admin API answers");
        let ok = response.status().is_success();
        let reply: Value = response.body_mut().read_json().expect("a JSON reply");
        if ok {
            Ok(reply["body"].clone())
        } else {
            Err(reply["kind"].as_str().unwrap_or("no kind").to_string())
        }
    }

    /// [`Self::send`] on a blocking thread.
    async fn ask(&self, target: &str, body: Value, timeout_ms: u64) -> Result<Value, String> {
        let (this, target) = (self.clone(), target.to_string());
        tokio::task::spawn_blocking(move || this.send(&target, body, timeout_ms, false))
            .await
            .expect("the ask ran")
    }
}

/// An in-process victim with a networked probe (`net`) and one that is not
/// (`quiet`).
async fn victim_node() -> TestNode {
    let v = TestNode::start("victim.os").await;
    v.install_probe(json!([
        net_probe("net"),
        probe("quiet", true, json!("None"), &[])
    ]))
    .await;
    v
}

/// Ask `target` on the victim through its injector, in a task.
fn ask_task(v: &TestNode, target: &str, body: Value) -> tokio::task::JoinHandle<Value> {
    let injector = v.node.injector().clone();
    let target = Address::parse_with_default(target, "victim.os").expect("address");
    tokio::spawn(async move {
        let bytes = serde_json::to_vec(&body).expect("json");
        let (_, km) = injector
            .ask(target, bytes, None, Duration::from_secs(20))
            .await
            .expect("an answer");
        let Message::Response(r) = km.message else {
            panic!("a response")
        };
        serde_json::from_slice(&r.body).expect("json reply")
    })
}

fn unsolicited(v: &TestNode) -> u64 {
    let metrics = &v.node.services().kernel.metrics;
    metrics
        .net
        .unsolicited_answers
        .load(std::sync::atomic::Ordering::Relaxed)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
