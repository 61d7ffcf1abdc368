//! The HTTP server against hostile pages and clients, over real HTTP:
//! cross-site requests and DNS rebinding (`Host`) on local-only and
//! authenticated bindings, password setup, login, logout, WebSockets and
//! `/metrics`; forwarded headers without and with a trusted proxy; IPv4
//! clients of a dual-stack (`::`) socket; concurrent password guesses
//! against the lockout; concurrent WebSocket upgrades against the cap; a
//! stalled WebSocket client; open redirects after login; apps setting the
//! node's cookie.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv6Addr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{call, header, login, web_node, web_node_with, ws_connect, PASSWORD};
use crate::common::*;

const LOCAL: &str = "/web:webprobe:test/local";
const PRIVATE: &str = "/web:webprobe:test/private";
const EVIL: &str = "http://evil.example";

/// One raw HTTP/1.1 request to 127.0.0.1:`port`, with exactly the given
/// headers (so `Host` can lie): (status, head lines, body).
fn raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<String>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut heads = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        heads.push(line.to_ascii_lowercase());
    }
    let len: usize = heads
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    (status, heads, String::from_utf8_lossy(&body).into_owned())
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn form(password: &str, next: &str) -> String {
    format!("password={}&next={next}", password.replace(' ', "+"))
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The value of one metric line of `/metrics`.
fn metric(port: u16, name: &str) -> u64 {
    let text = blocking(|| call("GET", &format!("http://127.0.0.1:{port}/metrics"), &[], b"")).2;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn session(port: u16) -> String {
    blocking(|| login(&format!("http://127.0.0.1:{port}")))
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_rebinding_requests_are_refused() {
    let n = web_node(
        "hostile-origin",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let port = n.node.http_addr().port();
    let host = format!("127.0.0.1:{port}");
    let own = format!("http://{host}");
    let rebind = format!("rebind.evil.example:{port}");
    let ask = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        blocking(|| raw(port, method, path, headers, body))
    };

    // Local-only binding: a page of another site is refused, by `Origin` or
    // by `Sec-Fetch-Site`; the node's own page and non-browsers pass.
    let (status, _, body) = ask("POST", LOCAL, &[("host", &host), ("origin", EVIL)], "x");
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "cross-origin"
    );
    let cross_get = [("host", host.as_str()), ("sec-fetch-site", "cross-site")];
    assert_eq!(
        ask("GET", LOCAL, &cross_get, "").0,
        403,
        "<img> from a site"
    );
    let same_site = [("host", host.as_str()), ("sec-fetch-site", "same-site")];
    assert_eq!(
        ask("GET", LOCAL, &same_site, "").0,
        403,
        "another app's origin"
    );
    assert_eq!(
        ask("POST", LOCAL, &[("host", &host), ("origin", &own)], "x").0,
        200
    );
    assert_eq!(ask("GET", LOCAL, &[("host", &host)], "").0, 200);

    // DNS rebinding: our address under the attacker's name.
    let rebound = [("host", rebind.as_str())];
    let (status, _, body) = ask("GET", LOCAL, &rebound, "");
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "bad-host"
    );
    assert_eq!(ask("GET", "/metrics", &rebound, "").0, 403, "metrics");
    let (status, heads, _) = ask(
        "POST",
        "/login",
        &[("host", &rebind), FORM],
        &form(PASSWORD, "/"),
    );
    assert_eq!(status, 403, "login under a rebound name");
    assert!(header(&heads, "set-cookie").is_none());
    assert_eq!(
        ask(
            "GET",
            LOCAL,
            &[("host", &format!("localhost:{}", port + 1))],
            ""
        )
        .0,
        403,
        "another port"
    );

    // Login from another site's form (login CSRF) is refused.
    let (status, heads, _) = ask(
        "POST",
        "/login",
        &[("host", &host), ("origin", EVIL), FORM],
        &form(PASSWORD, "/"),
    );
    assert_eq!(status, 403);
    assert!(header(&heads, "set-cookie").is_none());

    // Authenticated binding with the session cookie: only from our origin.
    let cookie = session(port);
    let with = |extra: (&str, &str)| {
        ask(
            "POST",
            PRIVATE,
            &[("host", &host), ("cookie", &cookie), extra],
            "x",
        )
        .0
    };
    assert_eq!(with(("origin", EVIL)), 403);
    assert_eq!(with(("origin", "null")), 403, "sandboxed iframe");
    assert_eq!(with(("origin", &own)), 200);

    // Logout from another site is refused: the session lives on.
    let (status, _, _) = ask(
        "POST",
        "/logout",
        &[("host", &host), ("origin", EVIL), ("cookie", &cookie)],
        "",
    );
    assert_eq!(status, 403);
    assert_eq!(with(("origin", &own)), 200, "still logged in");

    // WebSocket: a rebound name whose `Origin` matches its `Host` (what
    // the old check compared) is refused; our own page is upgraded.
    let upgrade = |host: &str, origin: &str| {
        let headers = [
            ("host", host),
            ("origin", origin),
            ("cookie", cookie.as_str()),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        ask("GET", "/chat:chat:sys/presence", &headers, "").0
    };
    assert_eq!(upgrade(&rebind, &format!("http://{rebind}")), 403);
    assert_eq!(upgrade(&host, EVIL), 403);
    assert_eq!(upgrade(&host, &own), 101);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_setup_is_refused_to_other_sites_and_forwarded_clients() {
    let home = TempDir::new("hostile-setup");
    let n = TestNode::start_with(test_config(home.path(), "hostile-setup"), home).await;
    let port = n.node.http_addr().port();
    let host = format!("127.0.0.1:{port}");
    let hash = n.node.home().join("password.hash");
    let setup = |extra: &[(&str, &str)]| {
        let mut headers = vec![FORM];
        headers.extend_from_slice(extra);
        blocking(|| raw(port, "POST", "/login", &headers, &form(PASSWORD, "/"))).0
    };
    assert_eq!(setup(&[("host", &host), ("origin", EVIL)]), 403);
    assert_eq!(
        setup(&[("host", &host), ("sec-fetch-site", "cross-site")]),
        403
    );
    assert_eq!(
        setup(&[("host", &format!("rebind.evil.example:{port}"))]),
        403
    );
    assert_eq!(
        setup(&[("host", &host), ("x-forwarded-for", "127.0.0.1")]),
        403,
        "a proxied client is not on this machine"
    );
    assert!(!hash.exists(), "no password was set");
    let own = format!("http://{host}");
    assert_eq!(setup(&[("host", &host), ("origin", &own)]), 303);
    assert!(hash.exists());
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_are_local_only_through_a_trusted_proxy() {
    let n = web_node(
        "hostile-fwd",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let port = n.node.http_addr().port();
    let get = |path: &str, h: (&str, &str)| {
        blocking(|| call("GET", &format!("http://127.0.0.1:{port}{path}"), &[h], b"")).0
    };
    assert_eq!(get(LOCAL, ("x-forwarded-for", "127.0.0.1")), 403);
    assert_eq!(get(LOCAL, ("forwarded", "for=127.0.0.1")), 403);
    assert_eq!(get(LOCAL, ("x-real-ip", "127.0.0.1")), 403);
    assert_eq!(get("/metrics", ("x-forwarded-for", "127.0.0.1")), 401);
    assert_eq!(get(LOCAL, ("x-other", "1")), 200);
    n.stop().await;

    let n = web_node_with("hostile-proxy", |c| {
        c.http.trusted_proxies = vec![IpAddr::from([127, 0, 0, 1])];
    })
    .await;
    let port = n.node.http_addr().port();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &str, h: (&str, &str)| blocking(|| call("GET", &url(path), &[h], b"")).0;
    assert_eq!(get(LOCAL, ("x-forwarded-for", "127.0.0.1")), 200);
    assert_eq!(
        get(LOCAL, ("x-forwarded-for", "127.0.0.1, 203.0.113.9")),
        403
    );
    assert_eq!(get(LOCAL, ("forwarded", "for=203.0.113.9")), 403);
    // The lockout counts the forwarded client, not the proxy.
    let attempt = |client: &str, password: &str| {
        blocking(|| {
            call(
                "POST",
                &url("/login"),
                &[FORM, ("x-forwarded-for", client)],
                form(password, "/").as_bytes(),
            )
            .0
        })
    };
    for _ in 0..5 {
        assert_eq!(attempt("203.0.113.9", "wrong"), 401);
    }
    assert_eq!(attempt("203.0.113.9", PASSWORD), 429, "locked out");
    assert_eq!(attempt("203.0.113.10", PASSWORD), 303, "another client");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_clients_of_a_dual_stack_socket_are_local() {
    let n = web_node_with("hostile-v6", |c| {
        c.http_bind = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    })
    .await;
    let port = n.node.http_addr().port();
    let get = |host: &str, path: &str| {
        blocking(|| call("GET", &format!("http://{host}:{port}{path}"), &[], b"")).0
    };
    // Over IPv4 the peer is ::ffff:127.0.0.1 on this socket.
    assert_eq!(get("127.0.0.1", LOCAL), 200, "mapped loopback is local");
    assert_eq!(get("127.0.0.1", "/metrics"), 200);
    assert_eq!(get("[::1]", LOCAL), 200);
    // The lockout counts the mapped client as the IPv4 address it is.
    let url = format!("http://127.0.0.1:{port}/login");
    for _ in 0..5 {
        let wrong = blocking(|| call("POST", &url, &[FORM], form("wrong", "/").as_bytes()));
        assert_eq!(wrong.0, 401);
    }
    let locked = blocking(|| call("POST", &url, &[FORM], form(PASSWORD, "/").as_bytes()));
    assert_eq!(locked.0, 429);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_get_no_more_than_the_lockout() {
    let n = web_node(
        "hostile-guess",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let url = format!("http://127.0.0.1:{}/login", n.node.http_addr().port());
    const GUESSES: usize = 24;
    let statuses: Vec<u16> = blocking(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..GUESSES)
                .map(|i| {
                    let url = &url;
                    s.spawn(move || {
                        let body = form(&format!("guess-{i}"), "/");
                        call("POST", url, &[FORM], body.as_bytes()).0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, GUESSES, "{statuses:?}");
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    let right = blocking(|| call("POST", &url, &[FORM], form(PASSWORD, "/").as_bytes()));
    assert_eq!(right.0, 429, "the address is locked out");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_cap_holds_under_concurrent_upgrades() {
    const CAP: usize = 3;
    let n = web_node_with("hostile-wscap", |c| c.http.max_ws_connections = CAP).await;
    let port = n.node.http_addr().port();
    let cookie = session(port);
    let attempts = futures::future::join_all(
        (0..16).map(|_| ws_connect(port, &cookie, "/chat:chat:sys/presence")),
    )
    .await;
    let open: Vec<_> = attempts.iter().filter(|a| a.is_ok()).collect();
    assert_eq!(open.len(), CAP, "upgrades past the cap");
    for refused in attempts.iter().filter(|a| a.is_err()) {
        assert!(
            matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
            "{refused:?}"
        );
    }
    assert_eq!(metric(port, "hearth_ws_connections"), CAP as u64);
    drop(attempts);
    let t = Instant::now();
    while metric(port, "hearth_ws_connections") != 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "slots never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ws_connect(port, &cookie, "/chat:chat:sys/presence")
        .await
        .is_ok());
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_client_is_closed_and_its_slot_freed() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const ROOM: &str = "/web:webprobe:test/ws?room=stall";
    let n = web_node_with("hostile-stall", |c| {
        c.http.max_ws_connections = 2;
        // Only the byte bound can fill: frames are plenty.
        c.http.ws_client_buffer = 1_000_000;
        c.http.ws_client_buffer_bytes = 64 * 1024;
    })
    .await;
    let port = n.node.http_addr().port();
    let cookie = session(port);
    // `stalled` never reads; `fast` sends and reads everything.
    let stalled = ws_connect(port, &cookie, ROOM).await.expect("stalled");
    let fast = ws_connect(port, &cookie, ROOM).await.expect("fast");
    let (mut fast_tx, mut fast_rx) = fast.split();
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(Ok(msg)) = fast_rx.next().await {
            if matches!(msg, Message::Text(_)) {
                seen += 1;
                let _ = seen_tx.send(seen);
            }
        }
    });
    let text = "x".repeat(1900);
    let mut sent = 0;
    // Until the socket buffers toward `stalled` are full and 64 KiB wait
    // behind them: then it is dropped (at most ~40 MB). Batches of 25
    // (~50 KB) each awaited, so `fast`'s own buffer never reaches 64 KiB.
    const BATCH: usize = 25;
    while metric(port, "hearth_ws_dropped_slow_total") == 0 {
        assert!(sent < 20_000, "the stalled client was never dropped");
        for _ in 0..10 {
            for _ in 0..BATCH {
                let body = serde_json::json!({ "text": format!("{sent} {text}") });
                fast_tx
                    .send(Message::text(body.to_string()))
                    .await
                    .expect("send");
                sent += 1;
            }
            // webprobe publishes every message to the room, `fast`
            // included: let it catch up.
            let want = sent;
            tokio::time::timeout(Duration::from_secs(20), seen_rx.wait_for(|n| *n >= want))
                .await
                .expect("fast keeps receiving")
                .expect("fast stays open");
        }
    }
    // Its task was stuck writing to a full socket: the write deadline
    // closes it and frees its slot.
    let t = Instant::now();
    while metric(port, "hearth_ws_connections") != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the stalled connection still holds a slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(port, "hearth_ws_dropped_slow_total"),
        1,
        "counted once"
    );
    assert!(
        ws_connect(port, &cookie, ROOM).await.is_ok(),
        "the slot is free"
    );
    reader.abort();
    drop(stalled);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_never_redirects_off_the_node_and_apps_cannot_set_its_cookie() {
    let n = web_node(
        "hostile-next",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let after_login = |next: &str| {
        let (status, heads, _) = blocking(|| {
            call(
                "POST",
                &format!("{base}/login"),
                &[FORM],
                form(PASSWORD, next).as_bytes(),
            )
        });
        assert_eq!(status, 303, "{next}");
        header(&heads, "location").map(str::to_string)
    };
    for evil in [
        "%2F%09%2Fevil.com",
        "%2F%2Fevil.com",
        "%2F%5Cevil.com",
        "%2F%0A%2Fevil.com",
        "https%3A%2F%2Fevil.com",
        "%2F%20%2Fevil.com",
    ] {
        assert_eq!(after_login(evil).as_deref(), Some("/"), "next={evil}");
    }
    assert_eq!(
        after_login("%2Fchat%3Achat%3Asys%2F").as_deref(),
        Some("/chat:chat:sys/")
    );
    let (_, _, page) =
        blocking(|| call("GET", &format!("{base}/login?next=/%09/evil.com"), &[], b""));
    assert!(page.contains("name=next value=\"/\""), "{page}");

    let set_cookie = |cookie: &str| {
        let (status, heads, _) = blocking(|| {
            call(
                "GET",
                &format!("{base}/web:webprobe:test/set-cookie?c={cookie}"),
                &[],
                b"",
            )
        });
        assert_eq!(status, 200);
        header(&heads, "set-cookie").map(str::to_string)
    };
    for evil in [
        "hearth-hostile-next%3Devil",
        "%20hearth-hostile-next%3Devil",
        "%09hearth-hostile-next%3Devil",
        "HEARTH-hostile-next%3Devil",
        "%3Dhearth-hostile-next%3Devil",
        "theme%3Ddark%3B%20Domain%3Dlocalhost",
    ] {
        assert_eq!(set_cookie(evil), None, "c={evil}");
    }
    assert_eq!(set_cookie("theme%3Ddark").as_deref(), Some("theme=dark"));
    n.stop().await;
}

/// Location of a redirect, as a (host header, path) pair on this node.
fn split_location(location: &str) -> (String, String) {
    let rest = location.strip_prefix("http://").expect("absolute http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    (host.to_string(), path.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_app_has_its_own_origin_and_session() {
    let n = web_node(
        "hostile-iso",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    // `isoprobe` (app B) asks for its own origin; `webprobe` (app A) does not.
    let mut files = super::http::webprobe_package_named("isoprobe");
    files.push(file("pkg/ui.json", br#"{"isolated": true}"#.to_vec()));
    files.push(file(
        "pkg/ui/index.html",
        b"<!doctype html>isoprobe".to_vec(),
    ));
    n.install(files).await;
    let port = n.node.http_addr().port();
    let main = format!("127.0.0.1:{port}");
    let main_origin = format!("http://{main}");
    let iso = format!("isoprobe.test.localhost:{port}");
    let iso_origin = format!("http://{iso}");
    let ask = |method: &str, path: &str, headers: &[(&str, &str)]| {
        blocking(|| raw(port, method, path, headers, "x"))
    };
    let t = Instant::now();
    while ask("GET", "/web:isoprobe:test/echo/1", &[("host", &main)]).0 != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "isoprobe never bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cookie = session(port);
    const B_PRIVATE: &str = "/web:isoprobe:test/private";

    // App A's page (main origin) cannot call B with the user's session.
    let from_a = [
        ("host", main.as_str()),
        ("cookie", cookie.as_str()),
        ("origin", main_origin.as_str()),
    ];
    let (status, _, body) = ask("POST", B_PRIVATE, &from_a);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("wrong-origin"), "{body}");
    assert_eq!(ask("POST", PRIVATE, &from_a).0, 200, "A's own binding");

    // Opening B from the main origin hands a session over with a code.
    let (status, heads, _) = ask(
        "GET",
        "/web:isoprobe:test/",
        &[("host", &main), ("cookie", &cookie)],
    );
    assert_eq!(status, 303);
    let (host, enter) = split_location(header(&heads, "location").expect("location"));
    assert_eq!(host, iso);
    assert!(enter.starts_with("/_hearth/enter?code="), "{enter}");
    let (status, heads, page) = ask("GET", &enter, &[("host", &iso)]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("url=/web:isoprobe:test/"), "{page}");
    let iso_cookie = header(&heads, "set-cookie")
        .expect("B's cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(!header(&heads, "set-cookie").unwrap().contains("domain"));
    assert_eq!(
        ask("GET", &enter, &[("host", &iso)]).0,
        403,
        "codes are single-use"
    );

    // On its origin, B's page reaches B's UI and bindings, and nothing else.
    let on_b = |path: &str, origin: &str, c: &str| {
        ask(
            "POST",
            path,
            &[("host", &iso), ("cookie", c), ("origin", origin)],
        )
        .0
    };
    assert_eq!(on_b(B_PRIVATE, &iso_origin, &iso_cookie), 200);
    assert_eq!(
        on_b(B_PRIVATE, &iso_origin, &cookie),
        401,
        "the main token is not B's"
    );
    assert_eq!(
        on_b(B_PRIVATE, &main_origin, &iso_cookie),
        403,
        "from another origin"
    );
    assert_eq!(
        on_b(PRIVATE, &iso_origin, &iso_cookie),
        403,
        "A's binding on B's origin"
    );
    assert_eq!(on_b("/metrics", &iso_origin, &iso_cookie), 403);
    assert_eq!(on_b("/login", &iso_origin, &iso_cookie), 403);
    let (status, _, ui) = ask(
        "GET",
        "/web:isoprobe:test/",
        &[("host", &iso), ("cookie", &iso_cookie)],
    );
    assert_eq!((status, ui.as_str()), (200, "<!doctype html>isoprobe"));
    // B's page cannot use the main session either (same-site `localhost`
    // cookies would be sent; its `Origin` is refused).
    let (status, _, _) = ask(
        "POST",
        PRIVATE,
        &[
            ("host", &format!("localhost:{port}")),
            ("cookie", &cookie),
            ("origin", &iso_origin),
        ],
    );
    assert_eq!(status, 403);
    // B's token is no session of the main origin.
    assert_eq!(
        ask("POST", PRIVATE, &[("host", &main), ("cookie", &iso_cookie)]).0,
        401
    );
    // Without B's session, B's origin sends the browser to the main one.
    let (status, heads, _) = ask("GET", "/web:isoprobe:test/", &[("host", &iso)]);
    assert_eq!(status, 303);
    assert_eq!(
        header(&heads, "location").map(str::to_string),
        Some(format!("http://localhost:{port}/web:isoprobe:test/"))
    );

    // Logging out of the main origin ends B's session too.
    let out = ask("POST", "/logout", &[("host", &main), ("cookie", &cookie)]);
    assert_eq!(out.0, 303);
    assert_eq!(on_b(B_PRIVATE, &iso_origin, &iso_cookie), 401);
    n.stop().await;
}
