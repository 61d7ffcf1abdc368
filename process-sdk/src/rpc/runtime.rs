//! The runtime of [`macro@crate::app`] apps: loads the state, binds HTTP
//! and WebSocket paths, starts timers, turns each request into a method
//! call, runs it (at once or as a task), saves the state when it
//! completes, and answers with the reply envelope.
//!
//! The macro implements [`App`]; everything else is here, written once.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::http_args::{Args, Pairs as ArgPairs};
use super::{codes, AppError, Ctx, Persist, State, Via};
use crate::http::{self, Access, HttpEvent, HttpRequestView, Pairs};
use crate::{executor, log, wit, Failure, Incoming};

/// What a handler produced: the JSON of its `ok` value, or the error.
pub type Reply = Result<Vec<u8>, AppError>;

/// The result of dispatching one call.
pub enum Outcome {
    /// A sync handler ran.
    Ready(Reply),
    /// An async handler started; the reply comes when it completes.
    Pending(Pin<Box<dyn Future<Output = Reply>>>),
    /// No method of that name.
    UnknownMethod,
}

/// HTTP or WebSocket binding of a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `#[http(method = ...)]`: the upper-case method.
    Http(&'static str),
    /// `#[ws]`.
    Ws,
}

/// A path bound at init for a handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub kind: RouteKind,
    /// Path under `/<process-id>/`, such as `/api/notes/:key`.
    pub path: &'static str,
    pub access: Access,
    /// The handler's method name.
    pub handler: &'static str,
}

/// A WebSocket event for a `#[ws]` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    Open {
        conn: u64,
        query: BTreeMap<String, String>,
        user: Option<String>,
    },
    Message {
        conn: u64,
        binary: bool,
        payload: Vec<u8>,
    },
    Close {
        conn: u64,
    },
}

/// Implemented by [`macro@crate::app`] for the app's state type.
pub trait App: Default + 'static {
    /// The machine-readable API description (JSON).
    const API: &'static str;
    /// Method names callable by message, for error messages.
    const METHODS: &'static [&'static str];
    const PERSIST: Persist;
    const ROUTES: &'static [Route];
    /// Period in ms of each `#[timer]`, by index.
    const TIMERS: &'static [u64];

    /// The state's bytes, `None` if the app is not persisted.
    fn encode(&self) -> Option<Result<Vec<u8>, String>>;
    /// The state from saved bytes, `None` if the app is not persisted.
    fn decode(bytes: &[u8]) -> Option<Result<Self, String>>;
    fn init(state: &State<Self>, ctx: Ctx) -> Outcome;
    /// Calls `method` with `args` ([`Args::Json`] for a message, or a
    /// bodiless HTTP request's pairs).
    fn call(state: &State<Self>, ctx: Ctx, method: &str, args: Args<'_>) -> Outcome;
    fn timer(state: &State<Self>, index: usize) -> Outcome;
    fn ws(state: &State<Self>, ctx: Ctx, handler: &str, event: WsEvent) -> Outcome;
    /// The `#[fallback]` handler; gives the message back if there is none.
    #[allow(clippy::result_large_err)] // the message is moved back, not copied
    fn fallback(state: &State<Self>, msg: Incoming) -> Result<(), Incoming>;
}

/// Where the generated exports keep the app's state.
pub type AppCell<A> = RefCell<Option<State<A>>>;

thread_local! {
    /// Open WebSocket connection -> the `#[ws]` handler it was opened for.
    static WS_CONNS: RefCell<HashMap<u64, &'static str>> = RefCell::new(HashMap::new());
}

/// Where a reply goes.
enum Answer {
    Message { id: u64, expects: bool },
    Http { id: u64 },
    Internal(&'static str),
}

/// The exported `init`.
pub fn export_init<A: App>(cell: &'static LocalKey<AppCell<A>>, _our: wit::Address) {
    let state = load::<A>();
    cell.with(|c| *c.borrow_mut() = Some(state.clone()));
    bind_routes::<A>();
    for (index, &ms) in A::TIMERS.iter().enumerate() {
        executor::spawn_task(timer_loop(state.clone(), index, ms));
    }
    let ctx = Ctx::new(0, crate::our(), Via::Internal);
    let outcome = A::init(&state, ctx);
    finish(state, outcome, Answer::Internal("init"));
    executor::run_ready();
}

/// One event of the exported `run`: the source read from the peer table;
/// then every task it woke runs.
pub fn export_deliver<A: App>(cell: &'static LocalKey<AppCell<A>>, event: wit::PeerEvent) {
    let Some(state) = cell.with(|c| c.borrow().clone()) else {
        log::error("event delivered before init; dropped");
        return;
    };
    match event {
        wit::PeerEvent::Message(incoming) => {
            if let Some(incoming) = Incoming::from_peer(incoming) {
                on_incoming(state, incoming);
            }
        }
        wit::PeerEvent::Failed(failure) => on_failure(Failure::from(failure)),
    }
    executor::run_ready();
}

fn on_incoming<A: App>(state: State<A>, incoming: Incoming) {
    if incoming.is_request() {
        on_request(state, incoming);
    } else if let Some(msg) = executor::claim_response(incoming) {
        log::debug!("response {} awaited by no one; dropped", msg.id());
    }
}

fn on_failure(failure: Failure) {
    if let Some(failure) = executor::claim_failure(failure) {
        log::warn!("request {} failed: {}", failure.id(), failure.error());
    }
}

fn load<A: App>() -> State<A> {
    let Some(bytes) = crate::state::get_state_bytes() else {
        return State::new(A::default(), None);
    };
    match A::decode(&bytes) {
        Some(Ok(value)) => State::new(value, Some(bytes)),
        // Starting from Default would overwrite the saved state at the
        // first save: stop instead, and say how to fix it.
        Some(Err(error)) => panic!(
            "the saved state does not decode ({error}); the app stops rather than \
             overwrite it: give new fields #[serde(default)] or migrate the old shape"
        ),
        None => State::new(A::default(), None),
    }
}

fn bind_routes<A: App>() {
    let mut bound: Vec<(&str, bool)> = Vec::new();
    for route in A::ROUTES {
        let ws = route.kind == RouteKind::Ws;
        if bound.contains(&(route.path, ws)) {
            continue;
        }
        bound.push((route.path, ws));
        let result = if ws {
            http::bind_ws(route.path, route.access)
        } else {
            http::bind(route.path, route.access)
        };
        if let Err(error) = result {
            log::error!("binding {} failed: {error}", route.path);
        }
    }
}

async fn timer_loop<A: App>(state: State<A>, index: usize, ms: u64) {
    loop {
        if let Err(error) = crate::timer::sleep_ms(ms).await {
            log::error!("timer {index} stopped: {error}");
            return;
        }
        let reply = match A::timer(&state, index) {
            Outcome::Ready(reply) => reply,
            Outcome::Pending(future) => future.await,
            Outcome::UnknownMethod => return,
        };
        complete(&state, reply, Answer::Internal("timer"));
    }
}

fn on_request<A: App>(state: State<A>, msg: Incoming) {
    if !A::ROUTES.is_empty() && http::is_from_server(&msg) {
        if let Some(request) = http::request_view(&msg) {
            let body = msg.blob().map_or(&[][..], |b| b.bytes.as_slice());
            return on_http_request(state, msg.id(), request, body);
        }
        if let Some(event) = http::event(&msg) {
            return on_http(state, msg.id(), event);
        }
    }
    let via = if msg.source().node() == crate::our().node() {
        Via::Local
    } else {
        Via::Remote
    };
    let answer = Answer::Message {
        id: msg.id(),
        expects: msg.expects_response().is_some(),
    };
    let (method, args) = match parse_call(msg.body()) {
        Ok(call) => call,
        Err(error) => return fallback_or(state, msg, error),
    };
    let mut ctx = Ctx::new(msg.id(), msg.source().clone(), via);
    ctx.set_method(&method);
    match A::call(&state, ctx, &method, Args::Json(args)) {
        Outcome::UnknownMethod => {
            let error = AppError::new(
                codes::UNKNOWN_METHOD,
                format!("no method `{method}`; methods: {}", A::METHODS.join(", ")),
            )
            .with_details(&A::METHODS);
            fallback_or(state, msg, error)
        }
        outcome => finish(state, outcome, answer),
    }
}

/// `{"method": args}` out of a body.
fn parse_call(body: &[u8]) -> Result<(String, Value), AppError> {
    let expected = "expected a JSON object with one key naming the method and an object \
                    of named arguments, like {\"method\": {\"arg\": 1}}";
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if map.len() == 1 => match map.into_iter().next() {
            Some(call) => Ok(call),
            None => Err(AppError::bad_request(expected)),
        },
        Ok(_) => Err(AppError::bad_request(expected)),
        Err(error) => Err(AppError::bad_request(format!(
            "the body is not JSON ({error}); {expected}"
        ))),
    }
}

fn fallback_or<A: App>(state: State<A>, msg: Incoming, error: AppError) {
    let answer = Answer::Message {
        id: msg.id(),
        expects: msg.expects_response().is_some(),
    };
    if A::fallback(&state, msg).is_err() {
        send(answer, Err(error));
    }
}

fn on_http<A: App>(state: State<A>, id: u64, event: HttpEvent) {
    let event = match event {
        HttpEvent::Http(req) => {
            let request = HttpRequestView {
                method: Cow::Borrowed(&req.method),
                bound_path: Cow::Borrowed(&req.bound_path),
                params: pairs(&req.params),
                query: pairs(&req.query),
                user: req.user.as_deref().map(Cow::Borrowed),
            };
            return on_http_request(state, id, request, &req.body);
        }
        HttpEvent::WsOpen {
            conn,
            path,
            query,
            user,
        } => {
            let handler = A::ROUTES
                .iter()
                .find(|r| r.kind == RouteKind::Ws && r.path == path)
                .map(|r| r.handler);
            if let Some(handler) = handler {
                WS_CONNS.with(|c| c.borrow_mut().insert(conn, handler));
            }
            return on_ws(state, handler, WsEvent::Open { conn, query, user });
        }
        HttpEvent::WsMessage {
            conn,
            binary,
            payload,
        } => WsEvent::Message {
            conn,
            binary,
            payload,
        },
        HttpEvent::WsClose { conn } => WsEvent::Close { conn },
    };
    let handler = WS_CONNS.with(|c| {
        let mut conns = c.borrow_mut();
        match event {
            WsEvent::Close { conn } => conns.remove(&conn),
            WsEvent::Message { conn, .. } | WsEvent::Open { conn, .. } => conns.get(&conn).copied(),
        }
    });
    on_ws(state, handler, event);
}

/// The pairs of `map`, borrowed.
fn pairs(map: &BTreeMap<String, String>) -> Pairs<'_> {
    Pairs(
        map.iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
            .collect(),
    )
}

fn on_http_request<A: App>(state: State<A>, id: u64, req: HttpRequestView<'_>, body: &[u8]) {
    let answer = Answer::Http { id };
    let same_path = || A::ROUTES.iter().filter(|r| r.path == req.bound_path);
    let route = same_path().find(|r| match r.kind {
        RouteKind::Http(method) => method.eq_ignore_ascii_case(&req.method),
        RouteKind::Ws => false,
    });
    let Some(route) = route else {
        let error = if same_path().next().is_some() {
            AppError::new(
                codes::NOT_ALLOWED,
                format!("{} is not bound for {}", req.bound_path, req.method),
            )
        } else {
            AppError::new(
                codes::UNKNOWN_METHOD,
                format!("nothing bound at {}", req.bound_path),
            )
        };
        return send(answer, Err(error));
    };
    // Path parameters first, then the query, then the body; a name given
    // twice in one of them keeps its last value. Without a body the pairs
    // are read as they are; with one, into the body's object.
    let quick = is_blank(body)
        .then(|| ArgPairs::new(&req.params.0, &req.query.0))
        .flatten();
    let args = match quick {
        Some(pairs) => Args::Pairs(pairs),
        None => match http_args(body, &req.params, &req.query) {
            Ok(args) => Args::Json(Value::Object(args)),
            Err(error) => return send(answer, Err(error)),
        },
    };
    let mut ctx = Ctx::new(id, http::server(), Via::Http);
    ctx.set_method(route.handler);
    ctx.set_user(req.user.map(Cow::into_owned));
    match A::call(&state, ctx, route.handler, args) {
        Outcome::UnknownMethod => send(answer, Err(AppError::internal("route without handler"))),
        outcome => finish(state, outcome, answer),
    }
}

/// Whether an HTTP body is empty or whitespace: no arguments in it.
fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// A request body's JSON object of named arguments, with the path
/// parameters and then the query added under names it does not have.
fn http_args(
    body: &[u8],
    params: &Pairs<'_>,
    query: &Pairs<'_>,
) -> Result<Map<String, Value>, AppError> {
    let mut args = if is_blank(body) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(AppError::bad_request(
                    "the body must be a JSON object of named arguments",
                ))
            }
        }
    };
    for (key, value) in params.0.iter().rev().chain(query.0.iter().rev()) {
        if !args.contains_key(key.as_ref()) {
            args.insert(key.to_string(), Value::String(value.to_string()));
        }
    }
    Ok(args)
}

fn on_ws<A: App>(state: State<A>, handler: Option<&'static str>, event: WsEvent) {
    let Some(handler) = handler else {
        return log::warn!("WebSocket event for no #[ws] handler: {event:?}");
    };
    let mut ctx = Ctx::new(0, http::server(), Via::Http);
    ctx.set_method(handler);
    let outcome = A::ws(&state, ctx, handler, event);
    finish(state, outcome, Answer::Internal("ws"));
}

fn finish<A: App>(state: State<A>, outcome: Outcome, answer: Answer) {
    match outcome {
        Outcome::Ready(reply) => complete(&state, reply, answer),
        Outcome::Pending(future) => executor::spawn_task(async move {
            let reply = future.await;
            complete(&state, reply, answer);
        }),
        Outcome::UnknownMethod => send(answer, Err(AppError::internal("no such handler"))),
    }
}

/// Saves the state (per the app's policy), then answers: the caller sees a
/// reply only once the handler's effect is durable.
fn complete<A: App>(state: &State<A>, reply: Reply, answer: Answer) {
    let saved = state.persist(A::PERSIST, A::encode);
    let reply = match (reply, saved) {
        (Ok(_), Err(error)) => {
            log::error!("state not saved: {error}");
            Err(AppError::new(codes::STATE_NOT_SAVED, error))
        }
        (reply, _) => reply,
    };
    send(answer, reply);
}

fn send(answer: Answer, reply: Reply) {
    let sent = match answer {
        Answer::Message { id, expects: true } => crate::respond(id, envelope(reply)),
        Answer::Message { expects: false, .. } => {
            if let Err(error) = reply {
                log::warn!("call without an asker failed: {error}");
            }
            Ok(())
        }
        Answer::Http { id } => {
            let (status, body) = match reply {
                Ok(body) => (200, body),
                Err(error) => (error.http_status(), envelope(Err(error))),
            };
            http::answer(id, status, &[("content-type", "application/json")], body)
        }
        Answer::Internal(what) => {
            if let Err(error) = reply {
                log::error!("{what} handler failed: {error}");
            }
            Ok(())
        }
    };
    if let Err(error) = sent {
        log::warn!("could not answer: {error}");
    }
}

/// `{"ok": ...}` or `{"error": {...}}`.
pub(crate) fn envelope(reply: Reply) -> Vec<u8> {
    match reply {
        Ok(value) => {
            let mut out = Vec::with_capacity(value.len() + 7);
            out.extend_from_slice(b"{\"ok\":");
            out.extend_from_slice(&value);
            out.push(b'}');
            out
        }
        Err(error) => {
            #[derive(Serialize)]
            struct Envelope<'a> {
                error: &'a AppError,
            }
            serde_json::to_vec(&Envelope { error: &error }).unwrap_or_else(|_| {
                br#"{"error":{"code":"internal","message":"unencodable error"}}"#.to_vec()
            })
        }
    }
}

/// Deserializes a method's arguments; says what was expected if they do
/// not fit.
pub fn parse_args<'a, T: DeserializeOwned>(
    args: impl Into<Args<'a>>,
    method: &str,
    expected: &str,
) -> Result<T, AppError> {
    args.into().deserialize().map_err(|error| {
        AppError::bad_request(format!(
            "arguments of `{method}` do not fit ({error}); expected {{\"{method}\": {expected}}}"
        ))
        .with_details(&serde_json::json!({ "expected": expected }))
    })
}

/// The JSON of a handler's value.
/// What `#[publish]` sends after a handler's `Ok`: a resource event in
/// the Twake style, `{action, room, type, resource}`, published to `room`
/// through the node's rooms hub. A publish that cannot be sent is logged;
/// the handler's answer stands.
pub fn publish_resource<T: Serialize + ?Sized>(room: &str, action: &str, kind: &str, resource: &T) {
    let payload = serde_json::json!({
        "action": action,
        "room": room,
        "type": kind,
        "resource": resource,
    });
    let body = serde_json::json!({"Publish": {"room": room, "payload": payload}});
    let sent = crate::kv::service("rooms")
        .map_err(|e| format!("{e:?}"))
        .and_then(|hub| {
            crate::Request::to(hub)
                .json(&body)
                .send()
                .map_err(|e| e.to_string())
        });
    if let Err(error) = sent {
        crate::log::warn!("#[publish] to room {room} failed: {error}");
    }
}

pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> Reply {
    serde_json::to_vec(value).map_err(|e| AppError::internal(format!("reply does not encode: {e}")))
}

/// [`App::encode`] of a persisted app.
pub fn persisted_encode<T: Serialize>(value: &T) -> Option<Result<Vec<u8>, String>> {
    Some(serde_json::to_vec(value).map_err(|e| e.to_string()))
}

/// [`App::decode`] of a persisted app.
pub fn persisted_decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<Result<T, String>> {
    Some(serde_json::from_slice(bytes).map_err(|e| e.to_string()))
}
