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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::debug;

use super::common::server_id;
use super::ws::{pump, Slot, WsHub};
use super::HttpState;
use crate::native::NativeEndpoint;
use crate::rooms::{self as hub, RoomDelivery, RoomEvent, RoomsError, RoomsRequest, RoomsResponse};
use crate::types::{Address, KernelMessage, Message};

/// Rooms one connection may watch at once: a page shows a handful; 64
/// bounds what one tab can make the node subscribe to.
pub const MAX_WATCHES_PER_CONNECTION: usize = 64;
/// Largest frame a page may send: a watch is an address, a room name and
/// a number; 4 KiB leaves room for long names and nothing else.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Largest frame the socket reads at all. A frame over
/// [`MAX_REQUEST_BYTES`] and up to this gets close code 1009 (too big); a
/// larger one ends the connection as the WebSocket layer reads it.
const MAX_READ_BYTES: usize = 64 * 1024;
/// Frames a page may send at once: a reconnecting page re-sends one watch
/// per room ([`MAX_WATCHES_PER_CONNECTION`]), four times that is a burst.
pub const FRAME_BURST: u32 = 256;
/// Frames per second a page may send after its burst; past it the
/// connection is closed with code 1008 (policy), so one tab cannot keep
/// the node busy with watch and unwatch.
pub const FRAMES_PER_SECOND: u32 = 64;
/// Close code for a frame over [`MAX_REQUEST_BYTES`].
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a page over its frame rate.
const CLOSE_POLICY: u16 = 1008;
/// How long the hub may take to answer a `Subscribe`: longer than its own
/// hub-to-hub timeout (10 s), so its typed answer arrives first.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);

/// (owner, room)
type Key = (Address, String);

/// What a page sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum PageRequest {
    Watch {
        address: String,
        room: String,
        #[serde(default)]
        from: Option<u64>,
    },
    Unwatch {
        address: String,
        room: String,
    },
}

/// What a page is sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum PageEvent<'a> {
    Joined {
        address: &'a str,
        room: &'a str,
        next: u64,
        snapshot: &'a Value,
    },
    Refused {
        address: &'a str,
        room: &'a str,
        error: &'a RoomsError,
    },
    Room {
        address: &'a str,
        room: &'a str,
        event: &'a RoomEvent,
    },
    Error {
        message: &'a str,
    },
}

fn encode(event: &PageEvent<'_>) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// One connection's watch of a room.
#[derive(Debug)]
struct Watcher {
    /// The last seq sent to it; `None` until it has one (a watch of a room
    /// nobody here watched yet, without `from`).
    cursor: Option<u64>,
    /// The `from` it asked for.
    wants: Option<u64>,
    /// Sent `joined`.
    joined: bool,
}

/// A room watched by connections of this node.
#[derive(Debug, Default)]
struct Watched {
    watchers: HashMap<u64, Watcher>,
    /// The highest seq the subscription has delivered (or the seq before
    /// the next live one, once joined).
    last: Option<u64>,
    snapshot: Value,
    /// The hub subscription is live.
    joined: bool,
    /// A `Subscribe` is in flight, with this `from`.
    asking: Option<Option<u64>>,
}

/// A hub request the driver of a room makes next.
#[derive(Debug, PartialEq)]
enum Step {
    Subscribe(Option<u64>),
    Unsubscribe,
}

/// The watches of every connection; plain data. Frames for connections
/// are collected in `out` as (connection, text) in the order they must be
/// sent.
#[derive(Default)]
struct Table {
    rooms: HashMap<Key, Watched>,
    by_conn: HashMap<u64, HashSet<Key>>,
    /// Rooms the hub may hold a subscription of ours for.
    at_hub: HashSet<Key>,
    /// Rooms whose driver task is running.
    driving: HashSet<Key>,
    out: Vec<(u64, String)>,
}

impl Table {
    fn send(&mut self, conn: u64, event: &PageEvent<'_>) {
        self.out.push((conn, encode(event)));
    }

    fn refuse(&mut self, conn: u64, key: &Key, error: &RoomsError) {
        let address = key.0.to_string();
        self.send(
            conn,
            &PageEvent::Refused {
                address: &address,
                room: &key.1,
                error,
            },
        );
    }

    /// `conn` watches `key` from `from` (again, if it already did).
    fn watch(&mut self, conn: u64, key: Key, from: Option<u64>) {
        let mine = self.by_conn.entry(conn).or_default();
        if !mine.contains(&key) && mine.len() >= MAX_WATCHES_PER_CONNECTION {
            let error = RoomsError::Limit(format!(
                "{MAX_WATCHES_PER_CONNECTION} watches per connection"
            ));
            return self.refuse(conn, &key, &error);
        }
        mine.insert(key.clone());
        let room = self.rooms.entry(key.clone()).or_default();
        let cursor = from.or(room.last);
        room.watchers.insert(
            conn,
            Watcher {
                cursor,
                wants: from,
                joined: false,
            },
        );
        self.join_satisfied(&key);
    }

    /// Send `joined` to the waiting watchers of a live subscription that
    /// need no replay.
    fn join_satisfied(&mut self, key: &Key) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let Some(last) = room.last.filter(|_| room.joined) else {
            return;
        };
        let address = key.0.to_string();
        let mut out = Vec::new();
        for (conn, w) in room.watchers.iter_mut().filter(|(_, w)| !w.joined) {
            if w.wants.is_none_or(|f| f >= last) {
                w.joined = true;
                out.push((
                    *conn,
                    encode(&PageEvent::Joined {
                        address: &address,
                        room: &key.1,
                        next: last + 1,
                        snapshot: &room.snapshot,
                    }),
                ));
            }
        }
        self.out.extend(out);
    }

    fn unwatch(&mut self, conn: u64, key: &Key) {
        if let Some(mine) = self.by_conn.get_mut(&conn) {
            mine.remove(key);
        }
        if let Some(room) = self.rooms.get_mut(key) {
            room.watchers.remove(&conn);
            if room.watchers.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// `conn` is gone; the rooms it watched, to drive.
    fn close(&mut self, conn: u64) -> Vec<Key> {
        let keys: Vec<Key> = self
            .by_conn
            .remove(&conn)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for key in &keys {
            if let Some(room) = self.rooms.get_mut(key) {
                room.watchers.remove(&conn);
                if room.watchers.is_empty() {
                    self.rooms.remove(key);
                }
            }
        }
        keys
    }

    /// What the hub must be asked next for `key`, from what is wanted;
    /// `None` ends the room's driver (and marks it stopped).
    fn next_step(&mut self, key: &Key) -> Option<Step> {
        let step = match self.rooms.get_mut(key) {
            Some(room) if room.asking.is_none() => {
                let waiting: Vec<Option<u64>> = room
                    .watchers
                    .values()
                    .filter(|w| !w.joined)
                    .map(|w| w.wants)
                    .collect();
                let resume = waiting.iter().flatten().min().copied();
                if waiting.is_empty() {
                    None
                } else if room.joined {
                    // Live already: only an older cursor needs a replay;
                    // from no later than what was delivered, so nobody
                    // misses what is in flight.
                    room.last
                        .and_then(|last| resume.filter(|f| *f < last))
                        .map(|f| Step::Subscribe(Some(f)))
                } else {
                    Some(Step::Subscribe(resume))
                }
            }
            Some(_) => None,
            None if self.at_hub.remove(key) => Some(Step::Unsubscribe),
            None => None,
        };
        match (&step, self.rooms.get_mut(key)) {
            (Some(Step::Subscribe(from)), Some(room)) => {
                room.asking = Some(*from);
                self.at_hub.insert(key.clone());
            }
            (None, _) => {
                self.driving.remove(key);
            }
            _ => {}
        }
        step
    }

    /// The hub answered a `Subscribe` of `key`.
    fn answered(&mut self, key: &Key, result: Result<(u64, Value), RoomsError>) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let asked = room.asking.take().flatten();
        let was_live = room.joined;
        match result {
            Ok((next, snapshot)) => {
                let before = next.saturating_sub(1);
                room.joined = true;
                room.snapshot = snapshot;
                room.last = Some(room.last.map_or(before, |l| l.max(before)));
                // Watchers that a subscription from `asked` serves.
                let address = key.0.to_string();
                let mut out = Vec::new();
                for (conn, w) in room.watchers.iter_mut().filter(|(_, w)| !w.joined) {
                    let served = match (asked, w.wants) {
                        (_, None) => true,
                        (None, Some(f)) => f >= before,
                        (Some(a), Some(f)) => f >= a,
                    };
                    if served {
                        w.joined = true;
                        w.cursor = w.cursor.or(Some(before));
                        out.push((
                            *conn,
                            encode(&PageEvent::Joined {
                                address: &address,
                                room: &key.1,
                                next,
                                snapshot: &room.snapshot,
                            }),
                        ));
                    }
                }
                self.out.extend(out);
            }
            Err(error) => {
                let refused: Vec<u64> = room
                    .watchers
                    .iter()
                    .filter(|(_, w)| !w.joined)
                    .map(|(c, _)| *c)
                    .collect();
                // A failed resubscription may have ended the live one at
                // the hub: the others subscribe again from their cursor.
                room.joined = false;
                for w in room.watchers.values_mut() {
                    w.wants = w.cursor;
                    w.joined = false;
                }
                if !was_live {
                    self.at_hub.remove(key);
                }
                for conn in refused {
                    self.refuse(conn, key, &error);
                    self.unwatch(conn, key);
                }
            }
        }
    }

    /// An entry of `key`'s stream from the hub.
    fn deliver(&mut self, key: &Key, event: &RoomEvent) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let address = key.0.to_string();
        let text = encode(&PageEvent::Room {
            address: &address,
            room: &key.1,
            event,
        });
        let mut out = Vec::new();
        match event {
            RoomEvent::Event { seq, .. } => {
                room.last = Some(room.last.map_or(*seq, |l| l.max(*seq)));
                for (conn, w) in room.watchers.iter_mut() {
                    // One still waiting for its replay takes only the
                    // event after its cursor: a later one is live traffic
                    // that its replay brings again, in order.
                    let takes = match w.cursor {
                        None => true,
                        Some(c) if w.joined => *seq > c,
                        Some(c) => *seq == c + 1,
                    };
                    if takes {
                        w.cursor = Some(*seq);
                        out.push((*conn, text.clone()));
                    }
                }
            }
            // Only those it is news to: the others already have what
            // follows the gap's start.
            RoomEvent::Gap { next } => {
                let before = next.saturating_sub(1);
                room.last = Some(room.last.map_or(before, |l| l.max(before)));
                for (conn, w) in room.watchers.iter_mut() {
                    if w.cursor.is_none_or(|c| c < before) {
                        w.cursor = Some(before);
                        out.push((*conn, text.clone()));
                    }
                }
            }
            RoomEvent::Lagged { .. } | RoomEvent::Offline | RoomEvent::Online => {
                out.extend(room.watchers.keys().map(|c| (*c, text.clone())));
            }
            RoomEvent::Ended => {
                out.extend(room.watchers.keys().map(|c| (*c, text.clone())));
                let conns: Vec<u64> = room.watchers.keys().copied().collect();
                for conn in conns {
                    self.unwatch(conn, key);
                }
            }
        }
        self.out.extend(out);
    }
}

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
        for (conn, text) in table.out.drain(..) {
            if !text.is_empty() {
                self.hub.send_text(conn, text);
            }
        }
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
            && km.source.process == hub::process_id();
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
pub async fn upgrade(State(state): State<HttpState>, request: Request) -> Response {
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
pub async fn admin_upgrade(State(state): State<HttpState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    accept(state, parts).await
}

async fn accept(state: HttpState, mut parts: axum::http::request::Parts) -> Response {
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
        .on_upgrade(move |socket| run(watches, socket, slot))
}

async fn run(watches: Arc<RoomWatches>, mut socket: WebSocket, slot: Slot) {
    let _slot = slot;
    let hub = watches.hub.clone();
    let mut reg = hub.register(server_id());
    let conn = reg.conn;
    let mut budget = FrameBudget::new(Instant::now());
    pump(&hub, &mut socket, &mut reg, |binary, bytes| {
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

/// A token bucket of [`FRAME_BURST`] frames refilled at
/// [`FRAMES_PER_SECOND`].
struct FrameBudget {
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    fn new(now: Instant) -> Self {
        Self {
            tokens: f64::from(FRAME_BURST),
            at: now,
        }
    }

    /// One frame, if the budget has it.
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens =
            (self.tokens + refill * f64::from(FRAMES_PER_SECOND)).min(f64::from(FRAME_BURST));
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(room: &str) -> Key {
        ("alice.os@owner:probe:test".parse().unwrap(), room.into())
    }

    fn event(seq: u64) -> RoomEvent {
        RoomEvent::Event {
            seq,
            payload: json!(seq),
        }
    }

    /// What each connection was sent since the last call, in order: a
    /// seq, a status, `gap`, `joined` or `refused`.
    fn sent(t: &mut Table) -> HashMap<u64, Vec<String>> {
        let mut by_conn: HashMap<u64, Vec<String>> = HashMap::new();
        for (c, text) in t.out.drain(..) {
            let v: Value = serde_json::from_str(&text).unwrap();
            let what = if let Some(seq) = v["room"]["event"]["event"]["seq"].as_u64() {
                seq.to_string()
            } else if let Some(s) = v["room"]["event"].as_str() {
                s.to_string()
            } else if v["room"]["event"]["gap"].is_object() {
                "gap".into()
            } else {
                v.as_object().unwrap().keys().next().unwrap().clone()
            };
            by_conn.entry(c).or_default().push(what);
        }
        by_conn
    }

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_subscription_cursors_per_connection_and_replays_deduplicated() {
        let mut t = Table::default();
        let k = key("lobby");
        t.watch(1, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        assert_eq!(t.next_step(&k), None, "one request at a time");
        t.answered(&k, Ok((1, json!(null))));
        assert_eq!(sent(&mut t)[&1], strs(&["joined"]));
        for seq in 1..=5 {
            t.deliver(&k, &event(seq));
        }
        assert_eq!(sent(&mut t)[&1], strs(&["1", "2", "3", "4", "5"]));
        // A newcomer without `from` is live at once, no new subscription.
        t.watch(2, k.clone(), None);
        assert_eq!(sent(&mut t)[&2], strs(&["joined"]));
        assert_eq!(t.next_step(&k), None);
        // One resuming from 2 makes the server subscribe again from 2; the
        // replay reaches it only, live events everyone, each once.
        t.watch(3, k.clone(), Some(2));
        assert!(sent(&mut t).is_empty());
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(Some(2))));
        t.deliver(&k, &event(6));
        for seq in 3..=6 {
            t.deliver(&k, &event(seq));
        }
        t.answered(&k, Ok((7, json!(null))));
        t.deliver(&k, &event(7));
        let got = sent(&mut t);
        assert_eq!(got[&1], strs(&["6", "7"]));
        assert_eq!(got[&2], strs(&["6", "7"]));
        assert_eq!(got[&3], strs(&["3", "4", "5", "6", "joined", "7"]));
        // Statuses go to all; a gap only to those behind it.
        t.watch(4, k.clone(), Some(100));
        t.answered(&k, Ok((8, json!(null))));
        sent(&mut t);
        t.deliver(&k, &RoomEvent::Offline);
        t.deliver(&k, &RoomEvent::Gap { next: 50 });
        let got = sent(&mut t);
        assert_eq!(got[&1], strs(&["offline", "gap"]));
        assert_eq!(got[&4], strs(&["offline"]));
    }

    #[test]
    fn last_watcher_leaving_unsubscribes_after_the_answer() {
        let mut t = Table::default();
        let k = key("lobby");
        t.watch(1, k.clone(), None);
        t.driving.insert(k.clone());
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.unwatch(1, &k);
        t.answered(&k, Ok((1, json!(null))));
        assert!(sent(&mut t).is_empty());
        assert_eq!(t.next_step(&k), Some(Step::Unsubscribe));
        assert_eq!(t.next_step(&k), None);
        assert!(t.driving.is_empty());
        // Closing a connection leaves its rooms too.
        t.watch(2, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.answered(&k, Ok((1, json!(null))));
        assert_eq!(t.close(2), vec![k.clone()]);
        assert_eq!(t.next_step(&k), Some(Step::Unsubscribe));
    }

    #[test]
    fn frame_budget_takes_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(t0);
        assert!((0..FRAME_BURST).all(|_| budget.take(t0)));
        assert!(!budget.take(t0), "past the burst");
        let later = t0 + Duration::from_secs(1);
        let refilled = (0..FRAME_BURST).filter(|_| budget.take(later)).count();
        assert_eq!(refilled, FRAMES_PER_SECOND as usize);
    }

    #[test]
    fn refusals_and_the_watch_bound() {
        let mut t = Table::default();
        let k = key("private-x");
        t.watch(1, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.answered(&k, Err(RoomsError::Refused(json!({"error": "no"}))));
        assert_eq!(sent(&mut t)[&1], strs(&["refused"]));
        assert!(t.rooms.is_empty());
        assert_eq!(t.next_step(&k), None, "nothing held at the hub");
        for i in 0..MAX_WATCHES_PER_CONNECTION {
            t.watch(9, key(&format!("r{i}")), None);
        }
        assert!(sent(&mut t).is_empty());
        t.watch(9, key("one-more"), None);
        assert_eq!(sent(&mut t)[&9], strs(&["refused"]));
        // Watching a room again does not count twice.
        t.watch(9, key("r0"), Some(3));
        assert!(sent(&mut t).is_empty());
    }
}
