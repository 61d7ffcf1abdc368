//! Browsers watching live rooms through their own node (`/hearth/ws`,
//! `/hearth.js`): a probe on node alice owns a room; pages of node carol
//! watch it. A Rust WebSocket client checks the wire (order, per-connection
//! cursors and replays without duplicates, refusals, login and origin
//! checks, unsubscribing); headless Chromium checks `hearth.js`
//! (`tests/ui/rooms.mjs`: shared socket, resume after a reconnect).
//! The notebook's generated TypeScript client (`watch_put`, `put`) runs in
//! Chromium too (`tests/ui/watch_ts.mjs`), transpiled by `typescript`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::http::{login, web_node_with, ws_connect, PASSWORD};
use crate::common::*;

/// How long the test waits for a join or a delivery.
pub(super) const WITHIN: Duration = Duration::from_secs(20);
pub(super) const OWNER: &str = "alice.os@owner:probe:test";
const CHROMIUM: &str = "/usr/bin/chromium";

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// alice with the owner probe; carol (with a password) bootstrapped to it.
pub(super) async fn nodes() -> (TestNode, TestNode) {
    let home = TempDir::new("alice.os");
    let alice = TestNode::start_with(test_config(home.path(), "alice.os"), home).await;
    alice.install_probe(json!([net_probe("owner")])).await;
    let bootstrap = alice.p2p_addr().await;
    let carol = web_node_with("carol.os", |config| {
        config.net.bootstrap = vec![bootstrap];
    })
    .await;
    (alice, carol)
}

pub(super) async fn session(carol: &TestNode) -> String {
    let base = format!("http://127.0.0.1:{}", carol.node.http_addr().port());
    tokio::task::block_in_place(|| login(&base))
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub(super) async fn send(ws: &mut Ws, body: Value) {
    ws.send(Message::Text(body.to_string().into()))
        .await
        .expect("send to /hearth/ws");
}

/// The next JSON frame.
pub(super) async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("a frame within the deadline")
            .expect("the connection stays open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("JSON frame");
        }
    }
}

/// Watch `room` until joined, retrying while alice is not reachable yet.
pub(super) async fn watch(ws: &mut Ws, room: &str, from: Option<u64>) -> Vec<Value> {
    watch_at(ws, OWNER, room, from).await
}

/// Watch `room` of the process at `address` until joined, retrying while
/// its node is not reachable yet.
pub(super) async fn watch_at(
    ws: &mut Ws,
    address: &str,
    room: &str,
    from: Option<u64>,
) -> Vec<Value> {
    let t = Instant::now();
    let mut early = Vec::new();
    loop {
        send(
            ws,
            json!({"watch": {"address": address, "room": room, "from": from}}),
        )
        .await;
        loop {
            let frame = next(ws).await;
            if frame["joined"]["room"] == room {
                assert_eq!(frame["joined"]["address"], address, "{frame}");
                return early;
            }
            if frame["refused"]["room"] == room {
                let unreachable = frame["refused"]["error"]["Unreachable"].is_string();
                assert!(unreachable && t.elapsed() < WITHIN, "{frame}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
            early.push(frame);
        }
    }
}

/// Seqs of the events of `frames` for `room`.
pub(super) fn seqs(frames: &[Value], room: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["room"]["room"] == room)
        .filter_map(|f| f["room"]["event"]["event"]["seq"].as_u64())
        .collect()
}

/// Read until `room` has had an event with seq `last`; returns every
/// frame read (with the `early` ones first).
pub(super) async fn until(ws: &mut Ws, room: &str, last: u64, early: Vec<Value>) -> Vec<Value> {
    let mut frames = early;
    while !seqs(&frames, room).contains(&last) {
        frames.push(next(ws).await);
    }
    frames
}

pub(super) async fn publish(alice: &TestNode, room: &str, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        let reply = alice
            .ask(
                "owner:probe:test",
                json!({"publish": {"room": room, "payload": {"i": i}}}),
            )
            .await
            .expect("owner answers");
        assert_eq!(reply["Ok"]["Published"]["seq"], i, "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_watch_a_room_on_another_node_over_hearth_ws() {
    let (alice, carol) = nodes().await;
    let port = carol.node.http_addr().port();
    let cookie = session(&carol).await;

    // Not logged in, or from a page of another site: no socket.
    let anonymous = ws_connect(port, "x=1", "/hearth/ws").await;
    assert!(
        matches!(&anonymous, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
        "anonymous: {anonymous:?}"
    );
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{port}/hearth/ws")
            .into_client_request()
            .expect("request");
        let headers = request.headers_mut();
        headers.insert("cookie", cookie.parse().expect("cookie"));
        headers.insert("origin", "http://evil.example".parse().expect("origin"));
        let refused = tokio_tungstenite::connect_async(request).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
            "cross-origin: {refused:?}"
        );
    }

    // One page: 20 events, in order, each once.
    let mut first = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let early = watch(&mut first, "lobby", None).await;
    publish(&alice, "lobby", 1..=20).await;
    let frames = until(&mut first, "lobby", 20, early).await;
    assert_eq!(seqs(&frames, "lobby"), (1..=20).collect::<Vec<_>>());
    let payloads: Vec<Value> = frames
        .iter()
        .filter_map(|f| f["room"]["event"]["event"]["payload"].get("i").cloned())
        .collect();
    assert_eq!(payloads, (1..=20).map(|i| json!(i)).collect::<Vec<_>>());

    // A second page resuming after 10 gets 11..20 replayed; the first page
    // gets no duplicates of them; both get what follows.
    let mut second = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    let early = watch(&mut second, "lobby", Some(10)).await;
    let replay = until(&mut second, "lobby", 20, early).await;
    assert_eq!(seqs(&replay, "lobby"), (11..=20).collect::<Vec<_>>());
    publish(&alice, "lobby", 21..=25).await;
    let live = until(&mut first, "lobby", 25, Vec::new()).await;
    assert_eq!(seqs(&live, "lobby"), (21..=25).collect::<Vec<_>>());
    let live = until(&mut second, "lobby", 25, Vec::new()).await;
    assert_eq!(seqs(&live, "lobby"), (21..=25).collect::<Vec<_>>());

    // The owner refuses `private*` rooms.
    send(
        &mut first,
        json!({"watch": {"address": OWNER, "room": "private-1", "from": null}}),
    )
    .await;
    let refused = loop {
        let frame = next(&mut first).await;
        if frame.get("refused").is_some() {
            break frame;
        }
    };
    assert_eq!(refused["refused"]["room"], "private-1", "{refused}");
    assert!(
        refused["refused"]["error"]["Refused"].is_object(),
        "{refused}"
    );
    // Nonsense gets an error, not a closed socket.
    send(&mut first, json!({"shout": 1})).await;
    assert!(next(&mut first).await["error"]["message"].is_string());

    // The last page leaving unsubscribes: alice stops relaying to carol.
    send(
        &mut first,
        json!({"unwatch": {"address": OWNER, "room": "lobby"}}),
    )
    .await;
    drop(second);
    let relays = || {
        alice
            .node
            .services()
            .kernel
            .metrics
            .rooms_relays
            .load(Ordering::Relaxed)
    };
    let t = Instant::now();
    let mut i = 26;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = relays();
        publish(&alice, "lobby", i..=i).await;
        i += 1;
        if relays() == before {
            break;
        }
        assert!(t.elapsed() < WITHIN, "alice still relays lobby to carol");
    }
    carol.stop().await;
    alice.stop().await;
}

/// A script of `tests/ui` run by Node.js against headless Chromium: it
/// prints request lines (answered with a line on its stdin) and one JSON
/// report last.
struct Script {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: tokio::sync::mpsc::Receiver<String>,
    report: Option<String>,
}

impl Script {
    /// Lines of the script's stdout buffered before it blocks.
    const LINES: usize = 16;

    fn spawn(args: &[&str]) -> Script {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: run .ci/setup (apt-get install chromium)"
        );
        let ui_dir = workspace_root().join("tests/ui");
        for module in ["playwright-core", "typescript"] {
            assert!(
                ui_dir.join("node_modules").join(module).is_dir(),
                "tests/ui/node_modules/{module} is missing: run .ci/setup (npm ci in tests/ui)"
            );
        }
        let mut child = Command::new("node")
            .current_dir(&ui_dir)
            .args(args)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node (Node.js) for the browser script");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (line_tx, lines) = tokio::sync::mpsc::channel::<String>(Self::LINES);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            child,
            stdin,
            lines,
            report: None,
        }
    }

    /// The next request line; `None` once the script's stdout is closed
    /// (its JSON report is kept for `finish`).
    async fn request(&mut self) -> Option<String> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(90), self.lines.recv())
                .await
                .expect("the browser script says something within 90 s")?;
            if line.starts_with('{') {
                self.report = Some(line);
            } else {
                return Some(line);
            }
        }
    }

    fn answer(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the script");
    }

    /// Waits for the script's end; asserts every `expected` check ran and
    /// every check passed.
    fn finish(self, expected: &[&str]) {
        let Script { child, report, .. } = self;
        let output = tokio::task::block_in_place(|| child.wait_with_output()).expect("script ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report = report.unwrap_or_default();
        browser_report(&report, output.status.success(), expected, &stderr);
    }
}

/// `tests/ui/rooms.mjs` in Chromium: it prints `PUBLISH a b` when it wants
/// events a..=b published (answered with a line on its stdin) and one JSON
/// report last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hearth_js_watches_a_remote_room_in_headless_chromium() {
    let (alice, carol) = nodes().await;
    let port = carol.node.http_addr().port();
    // Wait until carol reaches alice, so the page's first watch joins.
    let cookie = session(&carol).await;
    let mut probe = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    watch(&mut probe, "warmup", None).await;
    drop(probe);

    let base = format!("http://127.0.0.1:{port}");
    let mut script = Script::spawn(&["rooms.mjs", &base, PASSWORD, OWNER, "hall"]);
    while let Some(line) = script.request().await {
        if let Some(range) = line.strip_prefix("PUBLISH ") {
            let (a, b) = range.split_once(' ').expect("PUBLISH a b");
            let (a, b) = (a.parse().expect("a"), b.parse().expect("b"));
            publish(&alice, "hall", a..=b).await;
            script.answer("published");
        }
    }
    script.finish(&[
        "hearth.js served without login",
        "first watch joined",
        "events 1..20 in order",
        "second watch on the same page replays 6..20",
        "one WebSocket for all watches",
        "private room refused",
        "reconnecting reported",
        "resumed after reconnect: 1..30 once each",
        "second watch resumed: 6..30 once each",
    ]);
    carol.stop().await;
    alice.stop().await;
}

/// The notebook's generated TypeScript client (`apps/notebook/api/notebook.ts`
/// as `kit b` wrote it), transpiled by the `typescript` package and loaded
/// as a module into a page of carol (`tests/ui/watch_ts.mjs`): `watch_put`
/// watches `notes/today` of the notebook on alice while this test stores
/// notes there (the script prints `PUT key text`, answered with the reply),
/// and of the notebook on carol while the page stores notes through the
/// same client's `put`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_typescript_watch_client_runs_in_headless_chromium() {
    const NOTEBOOK: &str = "notebook:notebook:sys";
    let home = TempDir::new("alice.os");
    let alice = TestNode::start_with(test_config(home.path(), "alice.os"), home).await;
    let notebook = || built_package("apps/notebook", "notebook.wasm");
    alice.install(echo_package()).await;
    alice.install(notebook()).await;
    let bootstrap = alice.p2p_addr().await;
    let carol = web_node_with("carol.os", |config| {
        config.net.bootstrap = vec![bootstrap];
    })
    .await;
    carol.install(echo_package()).await;
    carol.install(notebook()).await;
    let remote = format!("{}@{NOTEBOOK}", alice.node.name());
    let local = format!("{}@{NOTEBOOK}", carol.node.name());

    // Wait until carol reaches alice's notebook and carol's notebook has
    // bound its HTTP API, so the page's first watch joins.
    let port = carol.node.http_addr().port();
    let cookie = session(&carol).await;
    let mut probe = ws_connect(port, &cookie, "/hearth/ws").await.expect("ws");
    watch_at(&mut probe, &remote, "notes/warmup", None).await;
    drop(probe);
    let base = format!("http://127.0.0.1:{port}");
    let notes = format!("{base}/{NOTEBOOK}/api/notes");
    let t = Instant::now();
    while tokio::task::block_in_place(|| {
        super::http::call("GET", &notes, &[("cookie", cookie.as_str())], b"")
    })
    .0 != 200
    {
        assert!(t.elapsed() < WITHIN, "carol's notebook never bound its API");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut script = Script::spawn(&["watch_ts.mjs", &base, PASSWORD, &remote, &local]);
    while let Some(line) = script.request().await {
        if let Some(rest) = line.strip_prefix("PUT ") {
            let (key, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let reply = alice
                .ask(
                    NOTEBOOK,
                    json!({"put": {"key": key, "text": text, "kind": "plain"}}),
                )
                .await
                .expect("alice's notebook answers");
            script.answer(&reply.to_string());
        }
    }
    script.finish(&[
        "notebook.ts transpiles",
        "client base is the notebook prefix",
        "remote watch_put joined",
        "remote empty put errors",
        "remote events in order, the error published nothing",
        "local watch_put joined",
        "client put resolves with the note",
        "client put of an empty note throws HearthError empty-note",
        "local events in order, the error published nothing",
        "remote watch unaffected by local puts",
    ]);
    carol.stop().await;
    alice.stop().await;
}
