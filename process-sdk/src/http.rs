//! HTTP and WebSocket helpers: bind paths under `/<our-process-id>/`,
//! read the requests and WebSocket events the node's `http-server`
//! delivers, answer, push and publish.
//!
//! The JSON shapes mirror `node/src/http/wire.rs` (the SDK never depends
//! on the node).
//!
//! ```ignore
//! use hearth_sdk::http::{self, Access, HttpEvent};
//!
//! // in init:
//! http::bind("/api/send", Access::Authenticated)?;
//! http::bind_ws("/ws", Access::Authenticated)?;
//!
//! // in handle:
//! match http::event(&msg) {
//!     Some(HttpEvent::Http(req)) => http::answer(msg.id(), 200, &[], b"ok".to_vec())?,
//!     Some(HttpEvent::WsOpen { conn, query, .. }) => http::join(conn, "lobby")?,
//!     Some(HttpEvent::WsMessage { conn, payload, .. }) => http::publish_text("lobby", &payload)?,
//!     Some(HttpEvent::WsClose { .. }) | None => {}
//! }
//! ```

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::{Address, Blob, Incoming, ProcessId, Request, Response, SendError};

mod quick;

/// Timeout of binding requests (the server answers at once).
const BIND_TIMEOUT_MS: u64 = 5_000;

/// Who may reach a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Anyone who can reach the node.
    Public,
    /// Logged-in browsers (session cookie) only.
    Authenticated,
    /// Clients on the node's machine (loopback) only.
    LocalOnly,
}

#[derive(Serialize)]
enum ServerRequest<'a> {
    Bind { path: &'a str, access: Access },
    BindWs { path: &'a str, access: Access },
    Unbind { path: &'a str },
    WsPush { conn: u64, binary: bool },
    WsPublish { topic: &'a str, binary: bool },
    WsJoin { conn: u64, topic: &'a str },
    WsLeave { conn: u64, topic: &'a str },
    WsClose { conn: u64 },
}

/// An HTTP request for one of our bindings. The body is in [`HttpRequest::body`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// Path below our prefix, such as `/api/rooms/lobby`.
    pub path: String,
    /// The bound pattern that matched, such as `/api/rooms/:room`.
    pub bound_path: String,
    pub params: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The logged-in user, `None` for anonymous clients of public bindings.
    pub user: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
enum WireEvent {
    Http(HttpRequest),
    WsOpen {
        conn: u64,
        path: String,
        query: BTreeMap<String, String>,
        user: Option<String>,
    },
    WsMessage {
        conn: u64,
        binary: bool,
    },
    WsClose {
        conn: u64,
    },
}

/// What the HTTP server delivers to a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpEvent {
    /// Answer it with [`answer`] (the request awaits a response).
    Http(HttpRequest),
    WsOpen {
        conn: u64,
        path: String,
        query: BTreeMap<String, String>,
        user: Option<String>,
    },
    WsMessage {
        conn: u64,
        binary: bool,
        payload: Vec<u8>,
    },
    WsClose {
        conn: u64,
    },
}

thread_local! {
    /// [`server`], built once: every HTTP request's context names it.
    static SERVER: OnceCell<Address> = const { OnceCell::new() };
}

/// The node's HTTP server, `http-server:distro:sys` on our node.
pub fn server() -> Address {
    SERVER.with(|server| {
        server
            .get_or_init(|| {
                let our = crate::our();
                // The names are valid constants and our node name is valid,
                // so this cannot fail; `our` is only a type-correct fallback.
                ProcessId::new("http-server", "distro", "sys")
                    .and_then(|id| Address::new(our.node(), id))
                    .unwrap_or(our)
            })
            .clone()
    })
}

/// Whether `msg` comes from our node's HTTP server.
pub fn is_from_server(msg: &Incoming) -> bool {
    let source = msg.source();
    let id = source.process();
    id.process() == "http-server"
        && id.package() == "distro"
        && id.publisher() == "sys"
        && crate::app::with_our(|our| source.node() == our.node())
}

/// Parse a request from the HTTP server; `None` for any other message.
pub fn event(msg: &Incoming) -> Option<HttpEvent> {
    if !msg.is_request() || !is_from_server(msg) {
        return None;
    }
    let payload = || msg.blob().map(|b| b.bytes.clone()).unwrap_or_default();
    Some(match msg.json::<WireEvent>().ok()? {
        WireEvent::Http(mut req) => {
            req.body = payload();
            HttpEvent::Http(req)
        }
        WireEvent::WsOpen {
            conn,
            path,
            query,
            user,
        } => HttpEvent::WsOpen {
            conn,
            path,
            query,
            user,
        },
        WireEvent::WsMessage { conn, binary } => HttpEvent::WsMessage {
            conn,
            binary,
            payload: payload(),
        },
        WireEvent::WsClose { conn } => HttpEvent::WsClose { conn },
    })
}

/// An HTTP request read in place from the event's body: what `#[app]`
/// dispatch needs, with text borrowed from the body (copied only where it
/// has JSON escapes) and the headers skipped rather than copied into a
/// map. [`request_view`] makes one; [`event`] gives the owned
/// [`HttpRequest`] with the headers.
#[derive(Debug, Deserialize)]
pub struct HttpRequestView<'a> {
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// The bound pattern that matched, such as `/api/rooms/:room`.
    #[serde(borrow)]
    pub bound_path: Cow<'a, str>,
    /// In the order sent; the node sends each name once.
    #[serde(borrow)]
    pub params: Pairs<'a>,
    #[serde(borrow)]
    pub query: Pairs<'a>,
    #[serde(borrow)]
    pub user: Option<Cow<'a, str>>,
}

/// Name/value pairs of a JSON object of strings, borrowed where they have
/// no escapes.
#[derive(Debug, Default)]
pub struct Pairs<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// Text borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of names to text")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::new();
                while let Some((Text(name), Text(value))) = map.next_entry()? {
                    pairs.push((name, value));
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// The wire event with its HTTP request borrowed; the other events are
/// skipped (see [`event`] for them).
#[derive(Deserialize)]
enum WireView<'a> {
    #[serde(borrow)]
    Http(HttpRequestView<'a>),
    WsOpen(IgnoredAny),
    WsMessage(IgnoredAny),
    WsClose(IgnoredAny),
}

/// The HTTP request in `msg` read in place ([`HttpRequestView`]); `None`
/// for anything else (WebSocket events, other senders, bodies that do not
/// decode). Its body is `msg`'s blob. The node's usual shape is read by
/// hand (`quick.rs`), anything else with serde.
pub fn request_view(msg: &Incoming) -> Option<HttpRequestView<'_>> {
    if !msg.is_request() || !is_from_server(msg) {
        return None;
    }
    if let Some(request) = quick::request_view(msg.body()) {
        return Some(request);
    }
    match serde_json::from_slice::<WireView>(msg.body()).ok()? {
        WireView::Http(request) => Some(request),
        WireView::WsOpen(_) | WireView::WsMessage(_) | WireView::WsClose(_) => None,
    }
}

#[derive(Serialize)]
struct Answer<'a> {
    status: u16,
    headers: Headers<'a>,
}

/// Answer headers as a JSON object, straight from the slice. A repeated
/// name appears twice; the node keeps the last, as a map built here would.
struct Headers<'a>(&'a [(&'a str, &'a str)]);

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
    }
}

/// Answer HTTP request `id` with a status, headers and a body.
pub fn answer(
    id: u64,
    status: u16,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(), SendError> {
    let response = if status == 200 && headers == JSON_TYPE {
        Response::new().body(USUAL_ANSWER)
    } else {
        let headers = Headers(headers);
        Response::new().json(&Answer { status, headers })
    };
    response.blob(Blob::new(None, body)).send(id)
}

/// The headers of a JSON answer.
const JSON_TYPE: &[(&str, &str)] = &[("content-type", "application/json")];

/// [`Answer`] of a `200` with [`JSON_TYPE`], encoded once. The node
/// recognises these exact bytes without parsing them, so they must stay
/// what encoding the answer gives (checked in the tests).
const USUAL_ANSWER: &[u8] = br#"{"status":200,"headers":{"content-type":"application/json"}}"#;

/// Answer HTTP request `id` with `value` as JSON and status 200.
pub fn answer_json<T: Serialize + ?Sized>(id: u64, value: &T) -> Result<(), SendError> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    answer(id, 200, JSON_TYPE, body)
}

/// Why a call to the HTTP server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    // No `#[from]`: a second `From<SendError>` impl in the SDK breaks type
    // inference of `?` in other modules' generic helpers.
    #[error(transparent)]
    Send(SendError),
    /// The server refused (bad path pattern, unknown connection...).
    #[error("http-server refused: {0}")]
    Refused(String),
}

/// Send to the server without waiting: fast, and errors the kernel sees
/// at once are returned. Refusals by the server itself (a bad pattern)
/// need the awaited forms, [`bind_checked`] and [`publish_counted`].
fn tell(request: &ServerRequest<'_>, blob: Option<Blob>) -> Result<(), SendError> {
    let mut r = Request::to(server()).json(request);
    if let Some(blob) = blob {
        r = r.blob(blob);
    }
    r.send().map(|_| ())
}

/// Ask the server and await its answer (the count for a publish).
async fn call(request_json: &ServerRequest<'_>, blob: Option<Blob>) -> Result<u64, HttpError> {
    let mut r = Request::to(server())
        .json(request_json)
        .timeout_ms(BIND_TIMEOUT_MS);
    if let Some(blob) = blob {
        r = r.blob(blob);
    }
    let reply = r.ask().await.map_err(HttpError::Send)?;
    match reply.json::<Result<u64, serde_json::Value>>() {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(HttpError::Refused(e.to_string())),
        Err(e) => Err(HttpError::Refused(format!("unreadable answer: {e}"))),
    }
}

/// Bind an HTTP path under our prefix. `:name` segments capture path
/// parameters, a last `*name` segment the rest of the path.
pub fn bind(path: &str, access: Access) -> Result<(), SendError> {
    tell(&ServerRequest::Bind { path, access }, None)
}

/// Bind a WebSocket path under our prefix.
pub fn bind_ws(path: &str, access: Access) -> Result<(), SendError> {
    tell(&ServerRequest::BindWs { path, access }, None)
}

/// [`bind`] or [`bind_ws`], awaiting the server's answer (inside
/// [`crate::spawn_task`]).
pub async fn bind_checked(path: &str, access: Access, websocket: bool) -> Result<(), HttpError> {
    let request = if websocket {
        ServerRequest::BindWs { path, access }
    } else {
        ServerRequest::Bind { path, access }
    };
    call(&request, None).await.map(|_| ())
}

/// [`publish_text`], awaiting the number of connections it reached.
pub async fn publish_counted(topic: &str, text: &str) -> Result<u64, HttpError> {
    call(
        &ServerRequest::WsPublish {
            topic,
            binary: false,
        },
        Some(Blob::new(None, text.as_bytes())),
    )
    .await
}

pub fn unbind(path: &str) -> Result<(), SendError> {
    tell(&ServerRequest::Unbind { path }, None)
}

/// Send a text frame to one of our connections.
pub fn push_text(conn: u64, text: &str) -> Result<(), SendError> {
    tell(
        &ServerRequest::WsPush {
            conn,
            binary: false,
        },
        Some(Blob::new(None, text.as_bytes())),
    )
}

/// Send a binary frame to one of our connections.
pub fn push_binary(conn: u64, bytes: Vec<u8>) -> Result<(), SendError> {
    tell(
        &ServerRequest::WsPush { conn, binary: true },
        Some(Blob::new(None, bytes)),
    )
}

/// Send a text frame to every connection that joined `topic`.
pub fn publish_text(topic: &str, text: &str) -> Result<(), SendError> {
    tell(
        &ServerRequest::WsPublish {
            topic,
            binary: false,
        },
        Some(Blob::new(None, text.as_bytes())),
    )
}

/// Send a binary frame to every connection that joined `topic`.
pub fn publish_binary(topic: &str, bytes: Vec<u8>) -> Result<(), SendError> {
    tell(
        &ServerRequest::WsPublish {
            topic,
            binary: true,
        },
        Some(Blob::new(None, bytes)),
    )
}

/// Put connection `conn` in `topic`: the process decides who joins what.
pub fn join(conn: u64, topic: &str) -> Result<(), SendError> {
    tell(&ServerRequest::WsJoin { conn, topic }, None)
}

pub fn leave(conn: u64, topic: &str) -> Result<(), SendError> {
    tell(&ServerRequest::WsLeave { conn, topic }, None)
}

/// Close one of our connections.
pub fn close(conn: u64) -> Result<(), SendError> {
    tell(&ServerRequest::WsClose { conn }, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_match_the_node() {
        let bind = serde_json::to_string(&ServerRequest::Bind {
            path: "/a",
            access: Access::LocalOnly,
        })
        .unwrap();
        assert_eq!(bind, r#"{"Bind":{"path":"/a","access":"local-only"}}"#);
        let publish = serde_json::to_string(&ServerRequest::WsPublish {
            topic: "t",
            binary: false,
        })
        .unwrap();
        assert_eq!(publish, r#"{"WsPublish":{"topic":"t","binary":false}}"#);
        let open: WireEvent = serde_json::from_str(
            r#"{"WsOpen":{"conn":3,"path":"/ws","query":{"room":"a"},"user":null}}"#,
        )
        .unwrap();
        assert!(matches!(open, WireEvent::WsOpen { conn: 3, .. }));
        let http: WireEvent = serde_json::from_str(
            r#"{"Http":{"method":"GET","path":"/x/1","bound_path":"/x/:id","params":{"id":"1"},"query":{},"headers":{},"user":"a.os"}}"#,
        )
        .unwrap();
        assert!(matches!(http, WireEvent::Http(r) if r.params["id"] == "1"));
        // The view reads the same request in place, skipping the headers;
        // text with escapes is unescaped into its own copy.
        let body = br#"{"Http":{"method":"GET","path":"/x/1","bound_path":"/x/:id","params":{"id":"1","b":"a\"b"},"query":{"q":"\u00e9"},"headers":{"cookie":"c=1","x":"y"},"user":null}}"#;
        let Ok(WireView::Http(view)) = serde_json::from_slice::<WireView>(body) else {
            panic!("the view does not decode");
        };
        assert_eq!(
            (view.method.as_ref(), view.bound_path.as_ref()),
            ("GET", "/x/:id")
        );
        assert!(matches!(view.params.0[0].1, Cow::Borrowed("1")));
        assert_eq!(view.params.0[1].1, "a\"b");
        assert_eq!(
            view.query.0,
            vec![(Cow::Borrowed("q"), Cow::Borrowed("\u{e9}"))]
        );
        assert_eq!(view.user, None);
        let ws = br#"{"WsOpen":{"conn":3,"path":"/ws","query":{},"user":null}}"#;
        assert!(matches!(
            serde_json::from_slice::<WireView>(ws),
            Ok(WireView::WsOpen(_))
        ));
        for bad in [
            &br#"{"Http":{"method":1}}"#[..],
            b"{}",
            b"[",
            br#"{"Http":{"params":[]}}"#,
        ] {
            assert!(serde_json::from_slice::<WireView>(bad).is_err());
        }
        // Headers are written in the order given; the node keeps the last
        // of a repeated name.
        let answer = serde_json::to_string(&Answer {
            status: 200,
            headers: Headers(&[("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]),
        })
        .unwrap();
        assert_eq!(
            answer,
            r#"{"status":200,"headers":{"content-type":"text/plain","x-a":"1","x-a":"2"}}"#
        );
        let usual = serde_json::to_vec(&Answer {
            status: 200,
            headers: Headers(JSON_TYPE),
        })
        .unwrap();
        assert_eq!(usual, USUAL_ANSWER);
    }
}
