//! Process bindings over real HTTP: 404, 413, 504, 502 (and the server
//! keeps serving), login cookie attributes, logout, expiry, local-only
//! refusal, `/our.js`, UI files and `/metrics`.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use hearth::api::PackageFile;
use hearth::http::Password;
use serde_json::{json, Value};

use crate::common::*;

pub const PASSWORD: &str = "correct horse battery";

/// `apps/chat` with every file under `pkg/` (UI included), as `kit s` sends it.
pub fn chat_package() -> Vec<PackageFile> {
    let root = workspace_root().join("apps/chat");
    let mut files = vec![file(
        "metadata.json",
        std::fs::read(root.join("metadata.json")).expect("chat metadata"),
    )];
    let mut dirs = vec![root.join("pkg")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read pkg/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_none_or(|e| e != "wasm") {
                let rel = path.strip_prefix(&root).expect("inside the app");
                let bytes = std::fs::read(&path).expect("pkg file");
                files.push(file(&rel.to_string_lossy(), bytes));
            }
        }
    }
    files.push(file(
        "pkg/chat.wasm",
        std::fs::read(guests().join("chat.wasm")).expect("chat.wasm built"),
    ));
    files
}

fn webprobe_package() -> Vec<PackageFile> {
    webprobe_package_named("webprobe")
}

/// The webprobe component as package `<package>:test` (process `web`).
pub fn webprobe_package_named(package: &str) -> Vec<PackageFile> {
    let metadata = json!({"name": package, "properties": {"package_name": package, "publisher": "test", "current_version": "0.1.0"}});
    let manifest = json!([{"process_name": "web", "process_wasm_path": "/webprobe.wasm", "on_exit": "Restart", "public": false}]);
    vec![
        file("metadata.json", metadata.to_string().into_bytes()),
        file("pkg/manifest.json", manifest.to_string().into_bytes()),
        file(
            "pkg/webprobe.wasm",
            std::fs::read(guests().join("webprobe.wasm")).expect("webprobe.wasm built"),
        ),
    ]
}

/// A node with a password, a short request timeout and small bodies,
/// serving on `bind`.
pub async fn web_node(name: &str, bind: IpAddr, session_ttl: Duration) -> TestNode {
    web_node_with(name, |config| {
        config.http_bind = bind;
        config.http.session_ttl = session_ttl;
    })
    .await
}

/// [`web_node`] with `tweak` applied to its configuration last.
pub async fn web_node_with(name: &str, tweak: impl FnOnce(&mut hearth::NodeConfig)) -> TestNode {
    let home = TempDir::new(name);
    let mut config = test_config(home.path(), name);
    config.http.password = Some(Password(PASSWORD.into()));
    config.http.request_timeout = Duration::from_millis(700);
    config.http.max_body_bytes = 64 * 1024;
    tweak(&mut config);
    let node = TestNode::start_with(config, home).await;
    node.install(chat_package()).await;
    node.install(webprobe_package()).await;
    // The processes bind in `init`; wait until the bindings answer.
    let base = format!("http://127.0.0.1:{}", node.node.http_addr().port());
    for _ in 0..100 {
        if tokio::task::block_in_place(|| {
            call("GET", &format!("{base}/web:webprobe:test/echo/1"), &[], b"")
        })
        .0 == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node
}

/// One request: (status, headers as `name: value` lines, body).
pub fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.to_vec()).expect("request");
    let mut resp = agent.run(req).expect("http call");
    let heads = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("")))
        .collect();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), heads, text)
}

pub fn header<'a>(heads: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    heads.iter().find_map(|h| h.strip_prefix(&prefix))
}

/// Log in with the form; returns the `Set-Cookie` line.
pub fn login(base: &str) -> String {
    let body = format!("password={}&next=%2F", PASSWORD.replace(' ', "+"));
    let (status, heads, _) = call(
        "POST",
        &format!("{base}/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(status, 303, "login redirects");
    header(&heads, "set-cookie")
        .expect("login sets a cookie")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_answer_and_errors_map_to_status_codes() {
    let n = web_node(
        "http-codes",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let get = |path: &str| {
        tokio::task::block_in_place(|| call("GET", &format!("{base}{path}"), &[], b""))
    };
    // A second app, to show that one app's failures leave others serving.
    n.install(webprobe_package_named("other")).await;
    let mut other_up = false;
    for _ in 0..100 {
        other_up = get("/web:other:test/echo/1").0 == 200;
        if other_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other_up, "the second webprobe binds");

    let (status, heads, body) = get("/web:webprobe:test/echo/42?x=1&y=two");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&heads, "x-probe"), Some("1"));
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["params"]["id"], "42");
    assert_eq!(echoed["query"], json!({"x": "1", "y": "two"}));
    assert_eq!(echoed["user"], Value::Null, "anonymous on a public binding");

    assert_eq!(
        get("/web:webprobe:test/nope").0,
        404,
        "unknown path of a process"
    );
    assert_eq!(
        get("/nobody:webprobe:test/echo/1").0,
        404,
        "unknown process"
    );
    assert_eq!(get("/not-a-process/").0, 404);

    let big = vec![b'x'; 64 * 1024 + 1];
    let (status, _, _) = tokio::task::block_in_place(|| {
        call(
            "POST",
            &format!("{base}/web:webprobe:test/echo/1"),
            &[],
            &big,
        )
    });
    assert_eq!(status, 413, "body over max_body_bytes");

    let (status, _, body) = get("/web:webprobe:test/hang");
    assert_eq!(status, 504, "{body}");

    let (status, _, body) = get("/web:webprobe:test/crash");
    assert_eq!(status, 502, "{body}");
    // The server keeps serving, and the process comes back (on_exit Restart).
    assert_eq!(get("/web:other:test/echo/1").0, 200);
    let mut back = false;
    for _ in 0..100 {
        if get("/web:webprobe:test/echo/1").0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "webprobe restarted and rebound");

    let metrics = get("/metrics").2;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(
        value("hearth_http_responses_total{class=\"5xx\"}"),
        2,
        "the 504 and the 502"
    );
    assert_eq!(value("hearth_message_errors_total{kind=\"timeout\"}"), 1);
    assert!(value("hearth_message_errors_total{kind=\"process-exited\"}") >= 1);
    assert!(value("hearth_messages_routed_total") > 10);
    assert_eq!(value("hearth_peers"), 0);

    // Removing the package drops its bindings and its UI with it.
    let secret = std::fs::read_to_string(n.node.home().join(hearth::api::SECRET_FILE)).unwrap();
    let (status, _, body) = tokio::task::block_in_place(|| {
        call(
            "POST",
            &format!("{base}{}", hearth::api::UNINSTALL_PATH),
            &[
                (hearth::api::SECRET_HEADER, secret.trim()),
                ("content-type", "application/json"),
            ],
            br#"{"package":"webprobe:test"}"#,
        )
    });
    assert_eq!(status, 200, "{body}");
    let removed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(removed["processes"], json!(["web:webprobe:test"]));
    assert_eq!(get("/web:webprobe:test/echo/1").0, 404);
    assert_eq!(get("/web:other:test/echo/1").0, 200, "others unaffected");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_attributes_logout_and_expiry() {
    let n = web_node(
        "http-auth",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(2),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let get = |path: &str, cookie: &str| {
        tokio::task::block_in_place(|| {
            call("GET", &format!("{base}{path}"), &[("cookie", cookie)], b"")
        })
    };
    assert_eq!(get("/web:webprobe:test/private", "").0, 401);
    let (status, heads, _) = get("/chat:chat:sys/", "");
    assert_eq!(status, 303);
    assert_eq!(
        header(&heads, "location"),
        Some("/login?next=/chat:chat:sys/")
    );

    let wrong = tokio::task::block_in_place(|| {
        call(
            "POST",
            &format!("{base}/login"),
            &[("content-type", "application/x-www-form-urlencoded")],
            b"password=nope",
        )
    });
    assert_eq!(wrong.0, 401);
    assert!(header(&wrong.1, "set-cookie").is_none());

    let set_cookie = tokio::task::block_in_place(|| login(&base));
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("hearth-http-auth="), "{set_cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr} missing in {set_cookie}");
    }
    assert!(
        !attrs.contains(&"Secure"),
        "no Secure without TLS: {set_cookie}"
    );
    let cookie = attrs[0].to_string();

    let (status, _, body) = get("/web:webprobe:test/private", &format!("other=1; {cookie}"));
    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["user"], "http-auth");
    assert_eq!(
        echoed["cookie"], "other=1",
        "the session token never reaches a process"
    );

    let (status, heads, body) = get("/chat:chat:sys/", &cookie);
    assert_eq!(status, 200);
    assert_eq!(
        header(&heads, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&heads, "cache-control"), Some("no-cache"));
    assert!(body.contains("our.js"));
    let (_, heads, _) = get("/chat:chat:sys/app.js", &cookie);
    assert_eq!(
        header(&heads, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&heads, "cache-control"),
        Some("public, max-age=3600")
    );
    let etag = header(&heads, "etag").unwrap().to_string();
    let (status, _, _) = tokio::task::block_in_place(|| {
        call(
            "GET",
            &format!("{base}/chat:chat:sys/app.js"),
            &[("cookie", &cookie), ("if-none-match", &etag)],
            b"",
        )
    });
    assert_eq!(status, 304);
    let (_, _, js) = get("/chat:chat:sys/our.js", &cookie);
    assert_eq!(
        js.trim(),
        r#"window.our = {"node":"http-auth","process":"chat:chat:sys"};"#
    );
    let (_, _, js) = get("/our.js", "");
    assert_eq!(
        js.trim(),
        r#"window.our = {"node":"http-auth","process":null};"#
    );

    // Logout ends the session at once.
    let (status, heads, _) = tokio::task::block_in_place(|| {
        call(
            "POST",
            &format!("{base}/logout"),
            &[("cookie", &cookie)],
            b"",
        )
    });
    assert_eq!(status, 303);
    assert!(header(&heads, "set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get("/web:webprobe:test/private", &cookie).0, 401);

    // A new session expires after session_ttl.
    let cookie = tokio::task::block_in_place(|| login(&base))
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(get("/web:webprobe:test/private", &cookie).0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get("/web:webprobe:test/private", &cookie).0, 401, "expired");

    // Five wrong passwords lock this address out, the right one included,
    // without an Argon2 check.
    let attempt = |password: &str| {
        tokio::task::block_in_place(|| {
            call(
                "POST",
                &format!("{base}/login"),
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("password={password}").as_bytes(),
            )
        })
    };
    for _ in 0..5 {
        assert_eq!(attempt("nope").0, 401);
    }
    let locked = attempt(&PASSWORD.replace(' ', "+"));
    assert_eq!(locked.0, 429, "{}", locked.2);
    let retry: u64 = header(&locked.1, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry after {retry}");
    assert!(header(&locked.1, "set-cookie").is_none());

    let stored = std::fs::read_to_string(n.node.home().join("password.hash")).unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_node_restart() {
    let n = web_node(
        "http-restart",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let cookie = tokio::task::block_in_place(|| login(&base))
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = cookie.split_once('=').unwrap().1.to_string();

    let home = n.stop().await;
    let stored = std::fs::read_to_string(home.path().join("sessions.json")).unwrap();
    assert!(!stored.contains(&token), "only the token's hash is stored");
    let mut config = test_config(home.path(), "http-restart");
    config.http.password = Some(Password(PASSWORD.into()));
    let n = TestNode::start_with(config, home).await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let (status, _, body) = tokio::task::block_in_place(|| {
        call(
            "GET",
            &format!("{base}/chat:chat:sys/"),
            &[("cookie", &cookie)],
            b"",
        )
    });
    assert_eq!(status, 200, "still logged in after the restart: {body}");
    n.stop().await;
}

/// This machine's address on its first non-loopback interface.
fn outward_ip() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    // No packet is sent: connect only picks the route and source address.
    socket
        .connect("192.0.2.1:9")
        .or_else(|_| socket.connect("10.255.255.255:9"))
        .expect("a route off loopback");
    let ip = socket.local_addr().expect("local addr").ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "need a non-loopback address for this test, got {ip}"
    );
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_only_refuses_remote_clients() {
    let n = web_node(
        "http-local",
        IpAddr::from([0, 0, 0, 0]),
        Duration::from_secs(3600),
    )
    .await;
    let port = n.node.http_addr().port();
    let ip = outward_ip();
    let at = |host: String, path: &str| {
        tokio::task::block_in_place(|| {
            call("GET", &format!("http://{host}:{port}{path}"), &[], b"").0
        })
    };
    assert_eq!(at("127.0.0.1".into(), "/web:webprobe:test/local"), 200);
    assert_eq!(
        at(ip.to_string(), "/web:webprobe:test/local"),
        403,
        "local-only from {ip}"
    );
    assert_eq!(
        at(ip.to_string(), "/web:webprobe:test/echo/1"),
        200,
        "public from {ip}"
    );
    assert_eq!(
        at(ip.to_string(), "/metrics"),
        401,
        "metrics need loopback or a login"
    );
    assert_eq!(
        at(ip.to_string(), "/admin/status"),
        403,
        "admin stays loopback-only"
    );
    n.stop().await;
}

/// A WebSocket to `path` on the node at `port`, sending `cookie`.
pub async fn ws_connect(
    port: u16,
    cookie: &str,
    path: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("ws request");
    request
        .headers_mut()
        .insert("cookie", cookie.parse().expect("cookie header"));
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

const SLOW_ROOM: &str = "/web:webprobe:test/ws?room=slow";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_clients_are_dropped_and_connections_capped() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let home = TempDir::new("http-ws");
    let mut config = test_config(home.path(), "http-ws");
    config.http.password = Some(Password(PASSWORD.into()));
    config.http.ws_client_buffer = 256;
    config.http.max_ws_connections = 2;
    let n = TestNode::start_with(config, home).await;
    n.install(webprobe_package()).await;
    let port = n.node.http_addr().port();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::task::block_in_place(|| {
            call("GET", &format!("{base}/web:webprobe:test/echo/1"), &[], b"")
        })
        .0 == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cookie = tokio::task::block_in_place(|| login(&base))
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // Unauthenticated upgrades are refused before any WebSocket exists.
    assert!(ws_connect(port, "x=1", SLOW_ROOM).await.is_err());

    // A page of another site cannot open one with our cookie.
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{port}{SLOW_ROOM}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        request
            .headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        let refused = tokio_tungstenite::connect_async(request).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
            "cross-origin: {refused:?}"
        );
    }

    // `slow` never reads; `fast` sends and reads everything.
    let mut slow = ws_connect(port, &cookie, SLOW_ROOM)
        .await
        .expect("slow connects");
    let fast = ws_connect(port, &cookie, SLOW_ROOM)
        .await
        .expect("fast connects");
    // The limit of 2 connections: a third is refused (503).
    let third = ws_connect(port, &cookie, SLOW_ROOM).await;
    assert!(
        matches!(&third, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
        "third connection: {third:?}"
    );

    let (mut fast_tx, mut fast_rx) = fast.split();
    // `fast` reads all the time, in its own task, and reports the number of
    // the last message it got back.
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = fast_rx.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if let Some(n) = v["text"]
                    .as_str()
                    .and_then(|t| t.split(' ').next()?.parse().ok())
                {
                    let _ = seen_tx.send(Some(n));
                }
            }
        }
    });
    let text = "x".repeat(1900);
    // Batches well below the buffer, each awaited: webprobe's
    // mailbox and `fast`'s buffer never fill.
    const BATCHES: usize = 50;
    const PER_BATCH: usize = 100;
    for batch in 0..BATCHES {
        for i in 0..PER_BATCH {
            let body = serde_json::json!({"text": format!("{} {text}", batch * PER_BATCH + i)});
            fast_tx
                .send(Message::text(body.to_string()))
                .await
                .expect("fast sends");
        }
        let want = (batch + 1) * PER_BATCH - 1;
        tokio::time::timeout(
            Duration::from_secs(20),
            seen_rx.wait_for(|n| *n == Some(want)),
        )
        .await
        .expect("fast keeps receiving")
        .expect("fast stays open");
    }
    reader.abort();
    // ~9.5 MB went to `slow`, far past its 256-frame buffer and the socket
    // buffers: the node dropped it, and `fast` got everything.
    let metrics =
        tokio::task::block_in_place(|| call("GET", &format!("{base}/metrics"), &[], b"")).2;
    assert!(
        metrics.contains("hearth_ws_dropped_slow_total 1\n"),
        "slow client dropped once:\n{metrics}"
    );
    // Reading now, `slow` finds its stream ends before all 5,000 messages.
    let mut got = 0;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
        if matches!(msg, Message::Text(_)) {
            got += 1;
        }
    }
    assert!(got < BATCHES * PER_BATCH, "slow got {got}");
    n.stop().await;
}
