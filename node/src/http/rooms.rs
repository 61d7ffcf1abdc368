//! Browsers watching live rooms: `/hearth/ws`, one WebSocket per page,
//! and `http-server:distro:sys` subscribing to the rooms hub on behalf of
//! every connection of this node.
//!
//! A page sends `{"watch": {"address", "room", "from"}}` and
//! `{"unwatch": {"address", "room"}}`; it gets `{"joined": ..}` or
//! `{"refused": ..}` for each watch, then `{"room": {"address", "room",
//! "event"}}` for each entry of the room's stream (`RoomEvent`).
//!
//! The server holds at most one hub subscription per (owner, room), shared
//! by all watching connections, each with its own cursor (the last seq it
//! was sent): an event at or below a connection's cursor is a duplicate
//! from another connection's replay and is not sent again. A watch that
//! asks to resume from before what the subscription has seen subscribes
//! again with that `from` (the hub replays; the others drop the
//! duplicates); until its replay comes, that watch takes only the event
//! right after its cursor, since later ones come again in the replay.
//! When the last watcher of a room leaves, the server
//! unsubscribes. Hub requests of one room are made by one task at a time,
//! from the wanted state ([`Table::next_step`]), so a `Subscribe` and an
//! `Unsubscribe` of the same room never overtake each other.
//!
//! **Invariant:** a connection is sent a room's events in sequence order,
//! each at most once. Bounds: [`MAX_WATCHES_PER_CONNECTION`],
//! [`MAX_REQUEST_BYTES`], and the per-connection buffers of `ws.rs`.
//!
//! Here: the endpoint and [`RoomWatches`] (the hub subscriptions and their
//! driver tasks); `table`: the registry as plain data; `protocol`: the
//! page's messages and frame bounds. An event's text is made once and
//! shared by every connection it goes to.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;

mod protocol;
mod table;

use super::common::server_id;
use super::ws::{pump, Slot, WsHub, READ_BUFFER_BYTES};
use super::Http;
use crate::native::NativeEndpoint;
use crate::rooms::{self as hub, RoomDelivery, RoomsError, RoomsRequest, RoomsResponse};
use crate::types::{Address, KernelMessage, Message};
use protocol::{
    encode, FrameBudget, PageEvent, PageRequest, CLOSE_POLICY, CLOSE_TOO_BIG, MAX_READ_BYTES,
};
pub use protocol::{FRAMES_PER_SECOND, FRAME_BURST, MAX_REQUEST_BYTES};
pub use table::MAX_WATCHES_PER_CONNECTION;
use table::{Key, Step, Table};

/// How long the hub may take to answer a `Subscribe`: longer than its own
/// hub-to-hub timeout (10 s), so its typed answer arrives first.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The watches of this node's pages and their hub subscriptions.
pub struct RoomWatches {
    table: Mutex<Table>,
    hub: Arc<WsHub>,
    /// `http-server:distro:sys`, which subscribes (weak: the endpoint's
    /// service holds this).
    server: OnceLock<Weak<NativeEndpoint>>,
}

impl RoomWatches {
    pub fn new(hub: Arc<WsHub>) -> Self {
        Self {
            table: Mutex::default(),
            hub,
            server: OnceLock::new(),
        }
    }

    pub fn set_server(&self, server: &Arc<NativeEndpoint>) {
        let _ = self.server.set(Arc::downgrade(server));
    }

    fn server(&self) -> Option<Arc<NativeEndpoint>> {
        self.server.get().and_then(Weak::upgrade)
    }

    /// Change the table and send the frames it made, in order, before
    /// anyone else changes it; start the drivers of `keys` that need one.
    fn with<R>(self: &Arc<Self>, change: impl FnOnce(&mut Table) -> (R, Vec<Key>)) -> R {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (result, keys) = change(&mut table);
        self.hub.send_texts(
            table
                .out
                .drain(..)
                .filter(|(_, text)| !text.as_str().is_empty()),
        );
        for key in keys {
            if table.driving.insert(key.clone()) {
                tokio::spawn(self.clone().drive(key));
            }
        }
        result
    }

    /// Make the hub hold what `key`'s watchers want, one request at a time.
    async fn drive(self: Arc<Self>, key: Key) {
        loop {
            let step = self.with(|t| (t.next_step(&key), Vec::new()));
            match step {
                None => return,
                Some(Step::Unsubscribe) => self.unsubscribe(&key),
                Some(Step::Subscribe(from)) => {
                    let result = self.subscribe(&key, from).await;
                    self.with(|t| (t.answered(&key, result), Vec::new()));
                }
            }
        }
    }

    async fn subscribe(&self, key: &Key, from: Option<u64>) -> Result<(u64, Value), RoomsError> {
        let server = self
            .server()
            .ok_or_else(|| RoomsError::Unreachable("stopping".into()))?;
        let request = RoomsRequest::Subscribe {
            owner: key.0.to_string(),
            room: key.1.clone(),
            from,
        };
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let target = Address::new(server.address().node.clone(), hub::process_id());
        let (_, km) = server
            .ask(target, body, None, SUBSCRIBE_TIMEOUT)
            .await
            .map_err(|e| RoomsError::Unreachable(e.to_string()))?;
        let Message::Response(response) = km.message else {
            return Err(RoomsError::Unreachable("the hub sent no answer".into()));
        };
        match serde_json::from_slice::<Result<RoomsResponse, RoomsError>>(&response.body) {
            Ok(Ok(RoomsResponse::Joined { next, snapshot })) => Ok((next, snapshot)),
            Ok(Ok(other)) => Err(RoomsError::Unreachable(format!(
                "the hub answered {other:?}"
            ))),
            Ok(Err(error)) => Err(error),
            Err(e) => Err(RoomsError::Unreachable(format!(
                "the hub answered nonsense: {e}"
            ))),
        }
    }

    fn unsubscribe(&self, key: &Key) {
        let Some(server) = self.server() else { return };
        let request = RoomsRequest::Unsubscribe {
            owner: key.0.to_string(),
            room: key.1.clone(),
        };
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let target = Address::new(server.address().node.clone(), hub::process_id());
        if let Err(e) = server.tell(target, body, None) {
            debug!(owner = %key.0, room = key.1, %e, "unsubscribe not sent");
        }
    }

    /// A frame from connection `conn`.
    fn on_frame(self: &Arc<Self>, conn: u64, binary: bool, bytes: &[u8]) {
        let request = match serde_json::from_slice::<PageRequest>(bytes) {
            Ok(request) if !binary => request,
            Ok(_) => return self.error(conn, "send text frames"),
            Err(e) => return self.error(conn, &format!("expected watch or unwatch: {e}")),
        };
        let (address, room, from, watch) = match request {
            PageRequest::Watch {
                address,
                room,
                from,
            } => (address, room, from, true),
            PageRequest::Unwatch { address, room } => (address, room, None, false),
        };
        let owner = match address.parse::<Address>() {
            Ok(owner) => owner,
            Err(e) => {
                let error = RoomsError::BadRequest(e.to_string());
                let text = encode(&PageEvent::Refused {
                    address: &address,
                    room: &room,
                    error: &error,
                });
                self.hub.send_text(conn, text);
                return;
            }
        };
        let key = (owner, room);
        self.with(|t| {
            if watch {
                t.watch(conn, key.clone(), from);
            } else {
                t.unwatch(conn, &key);
            }
            ((), vec![key])
        });
    }

    fn error(&self, conn: u64, message: &str) {
        self.hub
            .send_text(conn, encode(&PageEvent::Error { message }));
    }

    /// Connection `conn` ended: its watches go.
    fn close(self: &Arc<Self>, conn: u64) {
        self.with(|t| ((), t.close(conn)));
    }

    /// A request to `http-server:distro:sys` from this node's rooms hub:
    /// a delivery for the watches. False if it is not one.
    pub fn on_hub_message(self: &Arc<Self>, km: &KernelMessage) -> bool {
        let from_hub = self
            .server()
            .is_some_and(|s| km.source.node == s.address().node)
            && hub::is_hub(&km.source.process);
        let Message::Request(request) = &km.message else {
            return false;
        };
        if !from_hub {
            return false;
        }
        #[derive(Deserialize)]
        struct Envelope {
            room_event: RoomDelivery,
        }
        let Ok(Envelope { room_event }) = serde_json::from_slice(&request.body) else {
            return false;
        };
        let Ok(owner) = room_event.owner.parse::<Address>() else {
            return true;
        };
        let key = (owner, room_event.room);
        self.with(|t| {
            t.deliver(&key, &room_event.event);
            ((), vec![key])
        });
        true
    }
}

/// `/hearth/ws`: a logged-in page of this node, under the WebSocket cap.
pub async fn upgrade(State(state): State<Http>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    if let Err(refused) = state.policy().same_origin(&parts.headers) {
        return refused.into_response();
    }
    if !state.web.auth.is_logged_in(&parts.headers) {
        return (StatusCode::UNAUTHORIZED, "log in first: POST /login").into_response();
    }
    accept(state, parts).await
}

/// `/admin/watch`: the same watches for `kit watch-room`, behind the admin
/// API's guard (loopback, no Origin, the admin secret) instead of a login.
pub async fn admin_upgrade(State(state): State<Http>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    accept(state, parts).await
}

async fn accept(state: Http, mut parts: axum::http::request::Parts) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.web.hub.reserve() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections",
        )
            .into_response();
    };
    let watches = state.web.rooms.clone();
    upgrade
        .max_message_size(MAX_READ_BYTES)
        .max_frame_size(MAX_READ_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run(watches, socket, slot))
}

async fn run(watches: Arc<RoomWatches>, socket: WebSocket, slot: Slot) {
    let _slot = slot;
    let hub = watches.hub.clone();
    let mut reg = hub.register(server_id());
    let conn = reg.conn;
    let mut budget = FrameBudget::new(Instant::now());
    pump(&hub, socket, &mut reg, |binary, bytes| {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(CloseFrame {
                code: CLOSE_TOO_BIG,
                reason: "frames over 4 KiB".into(),
            });
        }
        if !budget.take(Instant::now()) {
            return Err(CloseFrame {
                code: CLOSE_POLICY,
                reason: "too many frames".into(),
            });
        }
        watches.on_frame(conn, binary, &bytes);
        Ok(())
    })
    .await;
    hub.unregister(conn);
    watches.close(conn);
}
