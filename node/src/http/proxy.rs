//! Everything under `/<process-id>/`: the process's bindings first (HTTP
//! requests forwarded as messages, WebSocket upgrades), then `our.js`, then
//! the package's UI files.
//!
//! Status codes: 404 unknown path, 401 not logged in, 403 local-only from a
//! remote client, 413 body over `HttpConfig::max_body_bytes`, 504 no answer
//! within `HttpConfig::request_timeout`, 502 the process crashed or is not
//! running, 503 its mailbox is full or too many WebSockets are open.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::common::login_redirect;
use super::isolate;
use super::origin::{same_origin_of, Refused, Site};
use super::wire::{Access, HttpAnswerRef, HttpEventRef, IncomingHttpRef, Params};
use super::ws::{run_connection, Opening, READ_BUFFER_BYTES};
use super::{ui, Http, HttpState};
use crate::types::{Address, Blob, Message, ProcessId, SendErrorKind};

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

/// The query string as a map (a repeated name keeps its last value).
pub fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query.map(query_pairs).unwrap_or_default()
}

fn query_pairs(q: &str) -> BTreeMap<String, String> {
    axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(
        &format!("/?{q}").parse().unwrap_or_default(),
    )
    .map(|axum::extract::Query(m)| m)
    .unwrap_or_default()
}

/// Why a binding refused a request.
enum Denied {
    Refused(Refused),
    LogIn,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Refused(r) => r.into_response(),
            Denied::LogIn => plain(StatusCode::UNAUTHORIZED, "log in first: POST /login"),
        }
    }
}

/// Who is asking: whether they may pass `access`, and the user to report.
/// Every binding but a public one is asked by one of our `Host`s and not
/// from a page of another origin (no cross-site requests, no DNS
/// rebinding); local-only ones by a client on this machine.
/// A binding of an isolated package answers non-public requests on the
/// package's own origin only, with that package's session.
fn admit<'s>(
    state: &'s HttpState,
    access: Access,
    peer: SocketAddr,
    headers: &HeaderMap,
    site: &Result<Site, Refused>,
    isolated: bool,
) -> Result<Option<&'s str>, Denied> {
    let policy = state.policy();
    let logged_in = match site {
        Ok(Site::Package(package)) => {
            state
                .web
                .handoff
                .is_logged_in(&state.web.auth, headers, package)
        }
        _ => !isolated && state.web.auth.is_logged_in(headers),
    };
    let user = logged_in.then(|| state.services.kernel.our());
    if access == Access::Public {
        return Ok(user);
    }
    let site = same_origin_of(site.clone(), headers).map_err(Denied::Refused)?;
    if isolated && site == Site::Main {
        return Err(Denied::Refused(Refused::WrongOrigin));
    }
    match access {
        Access::LocalOnly if policy.client(peer, headers).local => Ok(user),
        Access::LocalOnly => Err(Denied::Refused(Refused::NotLocal)),
        Access::Authenticated | Access::Public if logged_in => Ok(user),
        Access::Authenticated | Access::Public => Err(Denied::LogIn),
    }
}

/// The fallback handler: `/<process-id>/...`. `site` is where the
/// request's `Host` points (`Policy::site`), read once by the caller.
pub async fn app(
    state: Http,
    peer: SocketAddr,
    request: Request,
    site: Result<Site, Refused>,
) -> Response {
    // The parts and the body apart: the path is read borrowed from the
    // parts' `Uri` for the whole request, never copied.
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let trimmed = path.trim_start_matches('/');
    let (first, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    // A process that bound paths is found by the text of its id, with
    // its address and the match; any other is parsed.
    let (owner, matched) = match state.web.bindings.lookup(first, rest) {
        Some((address, matched)) => (Some(address), matched),
        None => (None, None),
    };
    let process = match &owner {
        Some(address) => address.process.clone(),
        None => match first.parse::<ProcessId>() {
            Ok(process) => process,
            Err(_) => return plain(StatusCode::NOT_FOUND, "not found"),
        },
    };
    if !state.services.kernel.is_running(&process) {
        return plain(StatusCode::NOT_FOUND, "no such app");
    }
    if rest.is_empty() {
        return Redirect::permanent(&format!("/{process}/")).into_response();
    }
    let isolated = is_isolated(&state, &process).await;
    if matches!(site, Ok(Site::Package(_))) && !isolated {
        // Only isolated packages are served from their own origin.
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if let (Some(m), Some(owner)) = (matched, owner) {
        let user = match admit(&state, m.access, peer, &parts.headers, &site, isolated) {
            Ok(user) => user,
            Err(denied) => return denied.into_response(),
        };
        let query = parse_query(parts.uri.query());
        if m.websocket {
            let (path, user) = (rest.to_string(), user.map(str::to_string));
            return websocket(state, process, path, query, user, parts).await;
        }
        let bound = Bound {
            path: rest,
            pattern: &m.pattern,
            params: &m.params,
            query: &query,
            user,
        };
        return forward(&state, owner, bound, &parts, body).await;
    }
    if rest == "/our.js" {
        return ui::our_js(state.services.kernel.our(), Some(&process));
    }
    let ui_dir = ui::ui_dir(&state.services.packages_dir, &process);
    if !tokio::fs::metadata(&ui_dir).await.is_ok_and(|m| m.is_dir()) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let pq = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    let headers = &parts.headers;
    match site {
        Ok(Site::Package(package))
            if !state
                .web
                .handoff
                .is_logged_in(&state.web.auth, headers, &package) =>
        {
            return isolate::back_to_main(&state, pq);
        }
        Ok(Site::Package(_)) => {}
        _ if isolated => return isolate::hand_over(&state, &process, headers, pq),
        _ if !state.web.auth.is_logged_in(headers) => return login_redirect(pq),
        _ => {}
    }
    ui::serve(&state.services.packages_dir, &process, rest, headers).await
}

/// Whether `process`'s package is served from its own origin (cached).
async fn is_isolated(state: &HttpState, process: &ProcessId) -> bool {
    if let Some(known) = state.web.bindings.isolated(process) {
        return known;
    }
    let package = process.package_id();
    let isolated = ui::is_isolated(&state.services.packages_dir, &package).await;
    state.web.bindings.set_isolated(process, isolated);
    isolated
}

async fn websocket(
    state: Http,
    process: ProcessId,
    path: String,
    query: BTreeMap<String, String>,
    user: Option<String>,
    mut parts: Parts,
) -> Response {
    // A browser's handshake carries `Origin`: only pages of this node, asked
    // by one of its own `Host`s, may open one (no cross-site WebSocket
    // hijacking, no DNS rebinding). Clients that are not browsers pass.
    if let Err(refused) = state.policy().same_origin(&parts.headers) {
        return refused.into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.web.hub.reserve() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections",
        );
    };
    let (hub, server) = (state.web.hub.clone(), state.web.server.clone());
    let opening = Opening {
        owner: process,
        path,
        query,
        user,
    };
    upgrade
        .max_message_size(state.web.config.max_body_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run_connection(hub, server, socket, opening, slot))
}

/// What a request for a binding carries besides its own parts, borrowed
/// from the request and its match.
struct Bound<'a> {
    /// Path below the process prefix.
    path: &'a str,
    /// The pattern that matched.
    pattern: &'a str,
    params: &'a Params<'a>,
    query: &'a BTreeMap<String, String>,
    user: Option<&'a str>,
}

/// A request's headers as the JSON map processes get: lower-case names,
/// repeated ones joined with `, `, values that are not text left out, and
/// the node's session cookie removed. Encoded straight from the
/// `HeaderMap`, without copying it into a map first.
struct ForwardedHeaders<'a> {
    headers: &'a HeaderMap,
    auth: &'a super::auth::Auth,
}

impl ForwardedHeaders<'_> {
    fn value(&self, name: &HeaderName) -> Option<Cow<'_, str>> {
        let mut joined: Option<Cow<'_, str>> = None;
        for value in self.headers.get_all(name) {
            let Ok(value) = value.to_str() else { continue };
            let value = if *name == header::COOKIE {
                Cow::Owned(self.auth.strip_cookie(value))
            } else {
                Cow::Borrowed(value)
            };
            joined = Some(match joined {
                None => value,
                Some(before) => Cow::Owned(format!("{before}, {value}")),
            });
        }
        joined
    }
}

impl serde::Serialize for ForwardedHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for name in self.headers.keys() {
            if *name == header::COOKIE {
                // Written stripped straight into the encoding, uncopied.
                let cookies = StrippedCookies(self);
                if cookies.any() {
                    map.serialize_entry(name.as_str(), &cookies)?;
                }
            } else if let Some(value) = self.value(name) {
                map.serialize_entry(name.as_str(), &value)?;
            }
        }
        map.end()
    }
}

/// The request's `Cookie` values as [`ForwardedHeaders::value`] gives
/// them (our session cookie removed, values joined with `, `), encoded
/// as one JSON string without building it first.
struct StrippedCookies<'h>(&'h ForwardedHeaders<'h>);

impl StrippedCookies<'_> {
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.0
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
    }

    fn any(&self) -> bool {
        self.texts().next().is_some()
    }
}

impl std::fmt::Display for StrippedCookies<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, value) in self.texts().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            self.0.auth.write_stripped_cookie(value, f)?;
        }
        Ok(())
    }
}

impl serde::Serialize for StrippedCookies<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

async fn forward(
    state: &HttpState,
    target: Address,
    bound: Bound<'_>,
    parts: &Parts,
    body: Body,
) -> Response {
    let started = Instant::now();
    let limit = state.web.config.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    // A body known to be empty (a GET) is not collected.
    let bytes = if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        axum::body::Bytes::new()
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => bytes,
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        }
    };
    let headers = ForwardedHeaders {
        headers: &parts.headers,
        auth: &state.web.auth,
    };
    let mime = (!bytes.is_empty())
        .then(|| headers.value(&header::CONTENT_TYPE).map(Cow::into_owned))
        .flatten();
    let event = HttpEventRef::Http(IncomingHttpRef {
        method: parts.method.as_str(),
        path: bound.path,
        bound_path: bound.pattern,
        params: bound.params,
        query: bound.query,
        headers,
        user: bound.user,
    });
    // Sized for a usual request's event (its headers are most of it), so
    // encoding it seldom grows the buffer.
    let mut encoded = Vec::with_capacity(EVENT_CAPACITY);
    let event = match serde_json::to_writer(&mut encoded, &event) {
        Ok(()) => encoded,
        Err(_) => Vec::new(),
    };
    let blob = (!bytes.is_empty()).then(|| Blob {
        mime,
        bytes: bytes.to_vec(),
    });
    let answer = state
        .web
        .server
        .ask(target, event, blob, state.web.config.request_timeout)
        .await;
    let response = match answer {
        Ok((_, km)) => answer_response(km.message, km.blob),
        Err(e) => {
            if e.kind == SendErrorKind::Timeout {
                // `NativeEndpoint::ask` times out on its own, past the kernel.
                state.services.kernel.metrics.error(e.kind);
            }
            let status = match e.kind {
                SendErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                SendErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                SendErrorKind::MailboxFull => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            };
            plain(status, e.kind.as_str())
        }
    };
    state
        .services
        .kernel
        .metrics
        .http_process_latency
        .observe(started.elapsed());
    response
}

/// Bytes reserved for an HTTP request's event before it is encoded.
const EVENT_CAPACITY: usize = 512;

/// The answer every `#[app]` handler's success sends, byte for byte
/// (`process-sdk`'s `http::answer` with status 200 and a JSON type):
/// recognised without parsing it. It decodes to the same answer as
/// parsing would (`the_usual_answer_is_the_parsed_one`).
const USUAL_ANSWER: &[u8] = br#"{"status":200,"headers":{"content-type":"application/json"}}"#;

/// A `200` whose body is the blob, typed `application/json`.
fn usual_response(blob: Option<Blob>) -> Response {
    let mut response = Response::new(Body::from(blob.map(|b| b.bytes).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn answer_response(message: Message, blob: Option<Blob>) -> Response {
    let Message::Response(r) = message else {
        return plain(StatusCode::BAD_GATEWAY, "the process sent no response");
    };
    if r.body == USUAL_ANSWER {
        return usual_response(blob);
    }
    let Ok(answer) = serde_json::from_slice::<HttpAnswerRef>(&r.body) else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "the process answered something that is not an HTTP answer",
        );
    };
    let Ok(status) = StatusCode::from_u16(answer.status) else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "the process answered a bad status code",
        );
    };
    let mime = blob.as_ref().and_then(|b| b.mime.clone());
    let mut response = Response::new(Body::from(blob.map(|b| b.bytes).unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in answer.headers.0 {
        let value = match value.as_ref() {
            "application/json" => Ok(HeaderValue::from_static("application/json")),
            _ => HeaderValue::from_bytes(value.as_bytes()),
        };
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            if name != header::SET_COOKIE || app_may_set(&value) {
                headers.append(name, value);
            }
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        if let Some(v) = mime.and_then(|m| HeaderValue::try_from(m).ok()) {
            headers.insert(header::CONTENT_TYPE, v);
        }
    }
    response
}

/// Whether an app may send this `Set-Cookie`: a named cookie whose name is
/// not one of the node's (`hearth-*`, any case), without `Domain` (which
/// would reach the node's or other apps' origins). A nameless cookie
/// (`=hearth-x=..` or no `=`) is sent back by browsers as `hearth-x=..`, so
/// it is refused too.
fn app_may_set(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut attributes = value.split(';');
    let Some((name, _)) = attributes.next().and_then(|pair| pair.split_once('=')) else {
        return false;
    };
    let name = name.trim();
    let ours = name
        .get(..NODE_COOKIE_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(NODE_COOKIE_PREFIX));
    let domain = attributes.any(|a| {
        a.split('=')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("domain"))
    });
    !name.is_empty() && !ours && !domain
}

/// Every cookie of the node starts so (`Auth::cookie_name`).
const NODE_COOKIE_PREFIX: &str = "hearth-";

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer recognised without parsing gives the response parsing
    /// gives: same status, same headers, same body.
    #[test]
    fn the_usual_answer_is_the_parsed_one() {
        let answer = |body: &[u8]| {
            let message = Message::Response(crate::types::Response {
                body: body.to_vec(),
                metadata: None,
            });
            let blob = Blob {
                mime: None,
                bytes: br#"{"ok":1}"#.to_vec(),
            };
            answer_response(message, Some(blob))
        };
        let fast = answer(USUAL_ANSWER);
        // The same JSON with a space: not the usual bytes, so parsed.
        let parsed = answer(br#"{"status":200, "headers":{"content-type":"application/json"}}"#);
        assert_eq!(fast.status(), parsed.status());
        assert_eq!(fast.headers(), parsed.headers());
        assert_eq!(fast.status(), StatusCode::OK);
    }

    /// The session cookie never reaches a process; the cookie written
    /// straight into the event is the one `value` gives.
    #[test]
    fn forwarded_headers_drop_our_cookie_and_join_repeats() {
        let dir = std::env::temp_dir().join(format!("hearth-fwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ttl = std::time::Duration::from_secs(60);
        let auth = super::super::auth::Auth::open(&dir, "a.os", Some("bench-password"), ttl, false)
            .unwrap();
        let ours = auth.cookie("secret", 1);
        let ours = ours.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        for value in [format!("a=1; {ours}; b=2"), ours.to_string(), "c=3".into()] {
            headers.append(header::COOKIE, value.parse().unwrap());
        }
        headers.append("x-two", "1".parse().unwrap());
        headers.append("x-two", "2".parse().unwrap());
        let forwarded = ForwardedHeaders {
            headers: &headers,
            auth: &auth,
        };
        let text = serde_json::to_string(&forwarded).unwrap();
        assert!(!text.contains("secret"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["cookie"], "a=1; b=2, , c=3");
        assert_eq!(
            json["cookie"],
            forwarded.value(&header::COOKIE).unwrap().as_ref()
        );
        assert_eq!(json["x-two"], "1, 2");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn apps_cannot_set_the_node_cookie() {
        let may = |v: &str| app_may_set(&HeaderValue::from_str(v).unwrap());
        assert!(may("theme=dark; Path=/; HttpOnly"));
        for bad in [
            "hearth-a.os=x",
            " hearth-a.os=x",
            "\thearth-a.os=x",
            "HEARTH-a.os=x",
            "=hearth-a.os=x",
            "hearth-a.os",
            "theme=dark; Domain=localhost",
            "theme=dark;domain=.localhost",
        ] {
            assert!(!may(bad), "{bad:?}");
        }
    }
}
