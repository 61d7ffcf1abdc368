//! Apps written with `#[app]` (apps/echo, apps/notebook) on real nodes:
//! typed replies for wrong shapes, unknown methods, guards and handler
//! errors; maps and data-carrying enums through the interface; an async
//! handler awaiting echo on another node through echo's generated client;
//! state saved after the await and seen after a restart; `#[http]` and
//! `#[ws]` methods over real HTTP and WebSockets; `#[timer]` methods firing
//! again and again, their state kept across a restart.

use std::time::{Duration, Instant};

use hearth::api::PackageFile;
use serde_json::{json, Value};

use crate::common::*;

const NOTEBOOK: &str = "notebook:notebook:sys";

/// apps/notebook's package (its component includes apps/echo/api/echo.rs).
fn notebook_package() -> Vec<PackageFile> {
    built_package("apps/notebook", "notebook.wasm")
}

async fn node_with_apps(name: &str) -> TestNode {
    let home = TempDir::new(name);
    let mut config = test_config(home.path(), name);
    config.limits.max_call_time = std::time::Duration::from_secs(2);
    let n = TestNode::start_with(config, home).await;
    n.install(echo_package()).await;
    n.install(notebook_package()).await;
    n
}

fn error_code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("<no error>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_shape_unknown_method_guard_and_handler_errors_are_typed() {
    let n = node_with_apps("macro-errors").await;
    n.install_probe(standard_manifest()).await;

    let r = n.ask(NOTEBOOK, json!({"put": {"key": "a"}})).await.unwrap();
    assert_eq!(error_code(&r), "bad-request", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("missing field `text`"), "{message}");
    assert!(
        message.contains(r#"{"put": {"key": String, "text": String, "kind": Kind}}"#),
        "{message}"
    );

    let r = n.ask(NOTEBOOK, json!([1, 2])).await.unwrap();
    assert_eq!(error_code(&r), "bad-request", "{r}");
    let r = n
        .ask(
            NOTEBOOK,
            json!({"put": {"key": "a", "text": "t", "kind": "plain", "extra": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(
        error_code(&r),
        "bad-request",
        "unknown fields are refused: {r}"
    );

    let r = n.ask(NOTEBOOK, json!({"nope": {}})).await.unwrap();
    assert_eq!(error_code(&r), "unknown-method", "{r}");
    assert!(
        r["error"]["details"]
            .as_array()
            .unwrap()
            .contains(&json!("put")),
        "{r}"
    );

    let r = n
        .ask(
            NOTEBOOK,
            json!({"put": {"key": "a", "text": "  ", "kind": "plain"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"error": {"code": "empty-note", "message": "a note needs some text"}})
    );
    let r = n
        .ask(NOTEBOOK, json!({"get": {"key": "missing"}}))
        .await
        .unwrap();
    assert_eq!(error_code(&r), "not-found", "{r}");

    // The per-method guard: the probe is no owner, the injector is.
    let via_probe = json!({"ask": {"target": NOTEBOOK, "body": {"clear": {}}, "timeout_ms": 5000, "context": ""}});
    let r = n.ask("alpha:probe:test", via_probe).await.unwrap();
    assert_eq!(error_code(&r["ok"]), "forbidden", "{r}");
    assert!(
        r["ok"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alpha:probe:test"),
        "{r}"
    );
    let r = n.ask(NOTEBOOK, json!({"clear": {}})).await.unwrap();
    assert_eq!(r, json!({"ok": 0}));

    // echo keeps answering any other body as it went.
    assert_eq!(
        n.ask("echo:echo:sys", json!({"ping": 1})).await.unwrap(),
        json!({"ping": 1})
    );
    assert_eq!(
        n.ask("echo:echo:sys", json!({"echo": {"message": [1, "two"]}}))
            .await
            .unwrap(),
        json!({"ok": [1, "two"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_and_data_carrying_enums_round_trip() {
    let n = node_with_apps("macro-types").await;
    let notes = json!({
        "todo": {"text": "buy milk", "kind": {"todo": {"done": false}}, "echoed": null},
        "link": {"text": "docs", "kind": {"link": {"url": "https://example.org"}}, "echoed": null},
        "plain": {"text": "hi", "kind": "plain", "echoed": null},
    });
    let r = n
        .ask(NOTEBOOK, json!({"import": {"notes": notes}}))
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": 3}));
    let r = n.ask(NOTEBOOK, json!({"list": {}})).await.unwrap();
    assert_eq!(r, json!({"ok": notes}));
    let r = n
        .ask(
            NOTEBOOK,
            json!({"put": {"key": "k", "text": "t", "kind": {"todo": {"done": true}}}}),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"]["kind"], json!({"todo": {"done": true}}), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_handler_awaits_echo_on_another_node_and_state_survives_restart() {
    let a = node_with_apps("a.os").await;
    let a_addr = a.p2p_addr().await;
    let home = TempDir::new("b.os");
    let mut config = test_config(home.path(), "b.os");
    config.net.bootstrap = vec![a_addr];
    let b = TestNode::start_with(config, home).await;
    b.install(echo_package()).await;

    // notebook on b awaits echo on a through echo's generated client.
    let call = json!({"put_echoed": {"key": "far", "text": "over the wire", "echo": "a.os@echo:echo:sys"}});
    let t = Instant::now();
    b.install(notebook_package()).await;
    let reply = loop {
        let r = b.ask(NOTEBOOK, call.clone()).await.unwrap();
        if error_code(&r) != "offline" || t.elapsed() > Duration::from_secs(15) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reply["ok"]["echoed"], "over the wire", "{reply}");

    // A local await too, then a restart of b: both notes were saved after
    // their awaits, before the replies.
    let local =
        json!({"put_echoed": {"key": "near", "text": "here", "echo": "b.os@echo:echo:sys"}});
    assert_eq!(
        b.ask(NOTEBOOK, local).await.unwrap()["ok"]["echoed"],
        "here"
    );
    let config = test_config(b.home.path(), "b.os");
    let home = b.stop().await;
    let b = TestNode::start_with(config, home).await;
    let t = Instant::now();
    let got = loop {
        match b.ask(NOTEBOOK, json!({"get": {"key": "far"}})).await {
            Ok(r) => break r,
            Err(e) if t.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("notebook not back: {e}"),
        }
    };
    assert_eq!(got["ok"]["echoed"], "over the wire", "{got}");
    let near = b
        .ask(NOTEBOOK, json!({"get": {"key": "near"}}))
        .await
        .unwrap();
    assert_eq!(near["ok"]["text"], "here", "{near}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_async_handlers_in_flight_at_once() {
    let n = node_with_apps("macro-flight").await;
    let mut asks = Vec::new();
    for i in 0..8 {
        let call = json!({"put_echoed": {"key": format!("k{i}"), "text": format!("t{i}"), "echo": "echo:echo:sys"}});
        asks.push(n.ask(NOTEBOOK, call));
    }
    for (i, r) in futures::future::join_all(asks)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.unwrap()["ok"]["echoed"], format!("t{i}"));
    }
    let list = n.ask(NOTEBOOK, json!({"list": null})).await.unwrap();
    assert_eq!(list["ok"].as_object().unwrap().len(), 8, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_ws_methods_declared_with_the_macro() {
    use crate::http::{call, login, ws_connect, PASSWORD};
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let home = TempDir::new("app-web");
    let mut config = test_config(home.path(), "app-web");
    config.http.password = Some(hearth::http::Password(PASSWORD.into()));
    let n = TestNode::start_with(config, home).await;
    n.install(echo_package()).await;
    n.install(notebook_package()).await;
    let port = n.node.http_addr().port();
    let base = format!("http://127.0.0.1:{port}/{NOTEBOOK}");
    let request = |method: &str, path: &str, cookie: &str, body: &str| {
        let url = format!("{base}{path}");
        let headers = [("cookie", cookie), ("content-type", "application/json")];
        let (status, _, body) =
            tokio::task::block_in_place(|| call(method, &url, &headers, body.as_bytes()));
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };

    // The app binds in its init; until then the path is unknown (404).
    let t = Instant::now();
    while request("GET", "/api/notes", "", "").0 == 404 {
        assert!(t.elapsed() < Duration::from_secs(10), "never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        request("GET", "/api/notes", "", "").0,
        401,
        "authenticated by default"
    );
    let cookie = tokio::task::block_in_place(|| login(&format!("http://127.0.0.1:{port}")))
        .split(';')
        .next()
        .expect("cookie")
        .to_string();

    // #[ws]: the feed joins every client to the `notes` topic.
    let mut feed = ws_connect(port, &cookie, &format!("/{NOTEBOOK}/ws"))
        .await
        .expect("ws connect");
    // #[http] PUT: the path parameter and the JSON body fill the arguments.
    let t = Instant::now();
    let (status, note) = loop {
        let put = request(
            "PUT",
            "/api/notes/k1",
            &cookie,
            r#"{"text":"hello","kind":"plain"}"#,
        );
        // The WebSocket open event may still be on its way: retry until
        // the publish reaches us.
        let pushed = tokio::time::timeout(Duration::from_millis(500), feed.next()).await;
        if let Ok(Some(Ok(Message::Text(key)))) = pushed {
            assert_eq!(key.as_str(), "k1");
            break put;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no push on the feed");
    };
    assert_eq!(status, 200, "{note}");
    assert_eq!(note["text"], "hello");

    let (status, note) = request("GET", "/api/notes/k1", &cookie, "");
    assert_eq!((status, &note["text"]), (200, &json!("hello")));
    let (status, list) = request("GET", "/api/notes", &cookie, "");
    assert_eq!(status, 200);
    assert_eq!(list["k1"]["text"], "hello", "{list}");

    // Typed errors keep their code and map to a status.
    let (status, reply) = request("GET", "/api/notes/nope", &cookie, "");
    assert_eq!((status, error_code(&reply)), (404, "not-found"), "{reply}");
    let (status, reply) = request(
        "PUT",
        "/api/notes/k2",
        &cookie,
        r#"{"text":" ","kind":"plain"}"#,
    );
    assert_eq!(error_code(&reply), "empty-note", "{status} {reply}");
    let (status, reply) = request("PUT", "/api/notes/k2", &cookie, r#"{"text":7}"#);
    assert_eq!(
        (status, error_code(&reply)),
        (400, "bad-request"),
        "{reply}"
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_state_of_an_old_shape_is_never_overwritten() {
    let n = TestNode::start("macro-shape").await;
    // An "older version" of the notebook: the probe component under the
    // notebook's id, which saves a state of a quite different shape.
    let mut older = notebook_package();
    for f in &mut older {
        if f.path == "pkg/manifest.json" {
            f.bytes = json!([probe("notebook", true, json!("None"), &[])])
                .to_string()
                .into_bytes();
        }
        if f.path == "pkg/notebook.wasm" {
            *f = file(
                "pkg/probe.wasm",
                std::fs::read(guests().join("probe.wasm")).expect("probe.wasm"),
            );
        }
    }
    n.install(older.clone()).await;
    n.ask(NOTEBOOK, json!({"state_set": "old shape"}))
        .await
        .unwrap();

    // The new version cannot read it: it stops instead of starting from
    // Default, so a write through it cannot replace the old state. The
    // write fails at once, and says why.
    n.install(notebook_package()).await;
    let put = json!({"put": {"key": "k", "text": "new", "kind": "plain"}});
    let t = Instant::now();
    let err = n.ask(NOTEBOOK, put).await.unwrap_err();
    assert_eq!(
        err.kind,
        hearth::types::SendErrorKind::ProcessExited,
        "{err}"
    );
    assert!(
        err.to_string().contains("saved state does not decode"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    n.install(older).await;
    let got = n.ask(NOTEBOOK, json!({"state_get": null})).await.unwrap();
    assert_eq!(got["value"], "old shape", "{got}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_methods_fire_repeatedly_and_their_state_persists() {
    const TICKER: &str = "ticker:ticker:test";
    async fn ticks_at_least(n: &TestNode, at_least: u64) -> u64 {
        let t = Instant::now();
        loop {
            let reply = n.ask(TICKER, json!({"ticks": {}})).await;
            if let Some(ticks) = reply.as_ref().ok().and_then(|r| r["ok"].as_u64()) {
                if ticks >= at_least {
                    return ticks;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "fewer than {at_least} ticks: {reply:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    let n = TestNode::start("macro-timer").await;
    n.install(built_package("tests/apps/ticker", "ticker.wasm"))
        .await;
    // Every 50 ms, again and again: 5 ticks within 10 s even on a busy
    // machine.
    let before = ticks_at_least(&n, 5).await;

    // The count is saved state: after a restart it goes on from there.
    let home = n.stop().await;
    let n = TestNode::start_with(test_config(home.path(), "macro-timer"), home).await;
    let after = ticks_at_least(&n, before).await;
    ticks_at_least(&n, after + 3).await;
    n.stop().await;
}

/// Watch `room` of `owner` through the node's admin WebSocket, as
/// `kit watch-room` does; returns the socket.
async fn admin_watch(
    n: &TestNode,
    owner: &str,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let secret = std::fs::read_to_string(n.node.home().join(hearth::api::SECRET_FILE))
        .expect("admin secret");
    let url = format!(
        "ws://127.0.0.1:{}{}",
        n.node.http_addr().port(),
        hearth::api::WATCH_PATH
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        hearth::api::SECRET_HEADER,
        secret.trim().parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("admin watch connects");
    let watch = json!({"watch": {"address": owner, "room": room, "from": null}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            watch.to_string(),
        ))
        .await
        .expect("send watch");
    // Events come only after the owner admitted the watch.
    loop {
        use futures::StreamExt;
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("joined in time")
            .expect("socket open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("json");
            assert!(value.get("refused").is_none(), "{value}");
            if value.get("joined").is_some() {
                return socket;
            }
        }
    }
}

/// The next room entry (`{"event": ..}`, `"offline"`, ...) on a watch.
async fn next_room_event(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    use futures::StreamExt;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a room event in time")
            .expect("socket open")
            .expect("frame");
        let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        if let Some(room) = value.get("room") {
            return room["event"].clone();
        }
        assert!(value.get("refused").is_none(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_attribute_publishes_ok_results_and_never_errors() {
    let n = node_with_apps("macro-publish").await;
    let owner = format!("{}@{NOTEBOOK}", n.node.name());
    let mut socket = admin_watch(&n, &owner, "notes/a").await;
    let put = |text: &str| json!({"put": {"key": "a", "text": text, "kind": "plain"}});
    let ok = n.ask(NOTEBOOK, put("first")).await.unwrap();
    assert!(ok.get("ok").is_some(), "{ok}");
    let event = next_room_event(&mut socket).await;
    assert_eq!(event["event"]["seq"], 1, "{event}");
    let payload = &event["event"]["payload"];
    assert_eq!(payload["action"], "updated", "{payload}");
    assert_eq!(payload["room"], "notes/a");
    assert_eq!(payload["type"], "put");
    assert_eq!(payload["resource"]["text"], "first");
    // A handler error publishes nothing: the next event is the next Ok.
    let err = n.ask(NOTEBOOK, put("  ")).await.unwrap();
    assert!(err.get("error").is_some(), "{err}");
    n.ask(NOTEBOOK, put("second")).await.unwrap();
    let event = next_room_event(&mut socket).await;
    assert_eq!(event["event"]["seq"], 2, "{event}");
    assert_eq!(event["event"]["payload"]["resource"]["text"], "second");
    // Another key's room saw none of it: the room is computed per call.
    let mut other = admin_watch(&n, &owner, "notes/b").await;
    n.ask(
        NOTEBOOK,
        json!({"put": {"key": "b", "text": "bee", "kind": "plain"}}),
    )
    .await
    .unwrap();
    let event = next_room_event(&mut other).await;
    assert_eq!(event["event"]["seq"], 1, "{event}");
    assert_eq!(event["event"]["payload"]["resource"]["text"], "bee");
    n.stop().await;
}
