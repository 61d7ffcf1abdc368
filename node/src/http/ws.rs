//! WebSocket connections of processes: the hub (connections and topics)
//! and one task per connection.
//!
//! A process never waits on a client: pushes and publishes go into each
//! connection's buffer with `try_send`, bounded in frames
//! (`HttpConfig::ws_client_buffer`) and bytes
//! (`HttpConfig::ws_client_buffer_bytes`); a connection whose buffer is
//! full, or that does not take a frame within [`WRITE_DEADLINE`], is
//! dropped at once (logged, counted in `hearth_ws_dropped_slow_total`).
//! The connection cap is a semaphore: an upgrade takes a [`Slot`] before
//! it is accepted and the connection holds it until its task ends.
//! Events from clients reach the owning process as fire-and-forget
//! requests through its mailbox, in order: open, messages, close.
//! The node's own connections (`/hearth/ws`, `rooms.rs`) use the same
//! registration, buffers and [`pump`], owned by `http-server:distro:sys`,
//! so no process can push to them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info};

use super::wire::{HttpServerError, HttpServerEvent, HttpServerReply};
use crate::native::NativeEndpoint;
use crate::services::Services;
use crate::types::{Blob, ProcessId};

/// Close code sent when the owning process cannot take more events
/// (1013: try again later).
const CLOSE_TRY_LATER: u16 = 1013;

/// Longest one frame may take to reach a client's socket. A client that
/// stops reading fills its TCP window and blocks the write; ten seconds
/// covers a slow mobile link taking a large frame, and past it the
/// connection is closed and its slot freed.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Read buffer of a connection's socket. The WebSocket codec zero-fills
/// up to this many bytes before every read attempt, and [`pump`] attempts
/// one whenever its queue runs empty, so tungstenite's default of 128 KiB
/// cost a 128 KiB memset per frame sent (a quarter of the CPU of a publish
/// to 1,000 connections). Larger frames still arrive: the buffer grows
/// to the frame, read 4 KiB at a time.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// A place under the connection cap, held by one connection until its
/// task ends.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

struct Conn {
    owner: ProcessId,
    out_tx: mpsc::Sender<Message>,
    /// Payload bytes queued in `out_tx`, added by `offer`, taken off by
    /// the connection's task.
    queued: Arc<AtomicUsize>,
    kill_tx: Option<oneshot::Sender<()>>,
    topics: HashSet<String>,
}

#[derive(Default)]
struct HubState {
    conns: HashMap<u64, Conn>,
    /// (owner, topic) -> members. Topics are per process: two apps may use
    /// the same topic name without meeting.
    topics: HashMap<(ProcessId, String), HashSet<u64>>,
}

pub struct WsHub {
    state: Mutex<HubState>,
    next_conn: AtomicU64,
    /// Most open connections; past it upgrades get 503.
    pub max_connections: usize,
    slots: Arc<Semaphore>,
    /// Messages buffered per connection before it is dropped as too slow.
    pub client_buffer: usize,
    /// Payload bytes buffered per connection before it is dropped (one
    /// frame is always taken into an empty buffer, whatever its size).
    pub client_buffer_bytes: usize,
    services: Arc<Services>,
}

impl WsHub {
    pub fn new(
        services: Arc<Services>,
        max_connections: usize,
        client_buffer: usize,
        client_buffer_bytes: usize,
    ) -> Self {
        let max_connections = max_connections.min(Semaphore::MAX_PERMITS);
        Self {
            state: Mutex::default(),
            next_conn: AtomicU64::new(1),
            max_connections,
            slots: Arc::new(Semaphore::new(max_connections)),
            client_buffer: client_buffer.max(1),
            client_buffer_bytes,
            services,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections holding a slot (accepted upgrades not yet ended).
    pub fn open_count(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    /// A place under the cap, or `None` when every one is taken. Taken
    /// before the upgrade is accepted, so concurrent upgrades cannot pass
    /// the cap together.
    pub fn reserve(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok().map(Slot)
    }

    /// Drop `conn` as too slow (once: it counts only if still registered).
    fn drop_slow(&self, state: &mut HubState, conn: u64, why: &str) {
        if let Some(mut c) = Self::remove(state, conn) {
            info!(conn, owner = %c.owner, why, "WebSocket client too slow; dropped");
            self.services
                .kernel
                .metrics
                .ws_dropped_slow
                .fetch_add(1, Ordering::Relaxed);
            if let Some(kill) = c.kill_tx.take() {
                let _ = kill.send(());
            }
        }
    }

    fn remove(state: &mut HubState, conn: u64) -> Option<Conn> {
        let mut c = state.conns.remove(&conn)?;
        for topic in c.topics.drain() {
            let key = (c.owner.clone(), topic);
            if let Some(members) = state.topics.get_mut(&key) {
                members.remove(&conn);
                if members.is_empty() {
                    state.topics.remove(&key);
                }
            }
        }
        Some(c)
    }

    /// Queue `msg` for `conn`; a buffer full in frames or bytes drops the
    /// connection.
    fn offer(&self, state: &mut HubState, conn: u64, msg: Message) -> bool {
        let Some(c) = state.conns.get(&conn) else {
            return false;
        };
        let len = frame_len(&msg);
        let queued = c.queued.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(len) > self.client_buffer_bytes {
            self.drop_slow(state, conn, "buffer full (bytes)");
            return false;
        }
        let queued = c.queued.clone();
        match c.out_tx.try_send(msg) {
            Ok(()) => {
                queued.fetch_add(len, Ordering::AcqRel);
                self.services
                    .kernel
                    .metrics
                    .ws_messages_out
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.drop_slow(state, conn, "buffer full (frames)");
                false
            }
        }
    }

    fn frame(binary: bool, payload: Vec<u8>) -> Result<Message, HttpServerError> {
        if binary {
            Ok(Message::Binary(payload.into()))
        } else {
            String::from_utf8(payload)
                .map(|s| Message::Text(s.into()))
                .map_err(|_| HttpServerError::BadRequest("a text frame must be UTF-8".into()))
        }
    }

    pub fn push(
        &self,
        owner: &ProcessId,
        conn: u64,
        binary: bool,
        payload: Vec<u8>,
    ) -> HttpServerReply {
        let msg = Self::frame(binary, payload)?;
        let mut state = self.lock();
        match state.conns.get(&conn) {
            Some(c) if c.owner == *owner => Ok(u64::from(self.offer(&mut state, conn, msg))),
            _ => Err(HttpServerError::NoSuchConnection(conn)),
        }
    }

    /// Queue one frame for every member of `topic`; returns how many took it.
    pub fn publish(&self, owner: &ProcessId, topic: &str, binary: bool, payload: Vec<u8>) -> u64 {
        let started = Instant::now();
        let Ok(msg) = Self::frame(binary, payload) else {
            return 0;
        };
        let mut state = self.lock();
        let members: Vec<u64> = match state.topics.get(&(owner.clone(), topic.to_string())) {
            Some(m) => m.iter().copied().collect(),
            None => return 0,
        };
        let delivered = members
            .into_iter()
            .filter(|c| self.offer(&mut state, *c, msg.clone()))
            .count();
        drop(state);
        self.services
            .kernel
            .metrics
            .ws_publish_latency
            .observe(started.elapsed());
        delivered as u64
    }

    pub fn join(&self, owner: &ProcessId, conn: u64, topic: String) -> HttpServerReply {
        let mut state = self.lock();
        match state.conns.get_mut(&conn) {
            Some(c) if c.owner == *owner => {
                c.topics.insert(topic.clone());
                state
                    .topics
                    .entry((owner.clone(), topic))
                    .or_default()
                    .insert(conn);
                Ok(0)
            }
            _ => Err(HttpServerError::NoSuchConnection(conn)),
        }
    }

    pub fn leave(&self, owner: &ProcessId, conn: u64, topic: &str) -> HttpServerReply {
        let mut state = self.lock();
        match state.conns.get_mut(&conn) {
            Some(c) if c.owner == *owner => {
                c.topics.remove(topic);
                let key = (owner.clone(), topic.to_string());
                if let Some(m) = state.topics.get_mut(&key) {
                    m.remove(&conn);
                }
                Ok(0)
            }
            _ => Err(HttpServerError::NoSuchConnection(conn)),
        }
    }

    /// Close a connection of `owner` (its close event still follows).
    pub fn close(&self, owner: &ProcessId, conn: u64) -> HttpServerReply {
        let state = self.lock();
        match state.conns.get(&conn) {
            Some(c) if c.owner == *owner => {
                let _ = c.out_tx.try_send(Message::Close(None));
                Ok(0)
            }
            _ => Err(HttpServerError::NoSuchConnection(conn)),
        }
    }
}

/// What a new connection needs to know.
pub struct Opening {
    pub owner: ProcessId,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub user: Option<String>,
}

/// Payload bytes of a frame, as counted against a client's buffer.
fn frame_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// How sending one frame ended.
enum Sent {
    Ok,
    Failed,
    /// The client did not take it within [`WRITE_DEADLINE`].
    TooSlow,
}

async fn send(socket: &mut WebSocket, msg: Message) -> Sent {
    match tokio::time::timeout(WRITE_DEADLINE, socket.send(msg)).await {
        Ok(Ok(())) => Sent::Ok,
        Ok(Err(_)) => Sent::Failed,
        Err(_) => Sent::TooSlow,
    }
}

/// A connection registered with the hub: its id and what its task reads.
pub(super) struct Registered {
    pub conn: u64,
    out_rx: mpsc::Receiver<Message>,
    kill_rx: oneshot::Receiver<()>,
    queued: Arc<AtomicUsize>,
}

impl WsHub {
    /// Register a new connection of `owner` (counted as opened).
    pub(super) fn register(&self, owner: ProcessId) -> Registered {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (out_tx, out_rx) = mpsc::channel(self.client_buffer);
        let (kill_tx, kill_rx) = oneshot::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.lock().conns.insert(
            conn,
            Conn {
                owner,
                out_tx,
                queued: queued.clone(),
                kill_tx: Some(kill_tx),
                topics: HashSet::new(),
            },
        );
        self.services
            .kernel
            .metrics
            .ws_opened
            .fetch_add(1, Ordering::Relaxed);
        Registered {
            conn,
            out_rx,
            kill_rx,
            queued,
        }
    }

    pub(super) fn unregister(&self, conn: u64) {
        Self::remove(&mut self.lock(), conn);
    }

    /// Queue a text frame for `conn` (the node's own connections); a full
    /// buffer drops the connection. False if it is gone.
    pub(super) fn send_text(&self, conn: u64, text: Utf8Bytes) -> bool {
        let mut state = self.lock();
        self.offer(&mut state, conn, Message::Text(text))
    }

    /// [`WsHub::send_text`] for many frames under one lock, in order; a
    /// text shared by several connections is shared, not copied.
    pub(super) fn send_texts(&self, frames: impl Iterator<Item = (u64, Utf8Bytes)>) {
        let mut state = self.lock();
        for (conn, text) in frames {
            self.offer(&mut state, conn, Message::Text(text));
        }
    }
}

/// Move frames between `socket` and the hub until either side ends the
/// connection: queued frames go out (within [`WRITE_DEADLINE`] each), and
/// each frame from the client goes to `on_frame` (binary?, bytes), which
/// may end the connection with a close frame.
pub(super) async fn pump(
    hub: &WsHub,
    socket: &mut WebSocket,
    reg: &mut Registered,
    mut on_frame: impl FnMut(bool, Vec<u8>) -> Result<(), CloseFrame>,
) {
    let conn = reg.conn;
    loop {
        tokio::select! {
            biased;
            _ = &mut reg.kill_rx => break,
            out = reg.out_rx.recv() => match out {
                Some(Message::Close(frame)) => {
                    let _ = send(socket, Message::Close(frame)).await;
                    break;
                }
                Some(msg) => {
                    reg.queued.fetch_sub(frame_len(&msg), Ordering::AcqRel);
                    match send(socket, msg).await {
                        Sent::Ok => {}
                        Sent::Failed => break,
                        Sent::TooSlow => {
                            hub.drop_slow(&mut hub.lock(), conn, "write deadline passed");
                            break;
                        }
                    }
                }
                None => break,
            },
            incoming = socket.recv() => {
                let (binary, bytes) = match incoming {
                    Some(Ok(Message::Text(t))) => (false, t.as_str().as_bytes().to_vec()),
                    Some(Ok(Message::Binary(b))) => (true, b.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                hub.services.kernel.metrics.ws_messages_in.fetch_add(1, Ordering::Relaxed);
                if let Err(frame) = on_frame(binary, bytes) {
                    let _ = send(socket, Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
    }
}

/// Run one upgraded connection until either side ends it; `slot` is its
/// place under the cap, freed when this returns.
pub async fn run_connection(
    hub: Arc<WsHub>,
    server: Arc<NativeEndpoint>,
    mut socket: WebSocket,
    opening: Opening,
    slot: Slot,
) {
    let _slot = slot;
    let owner = opening.owner.clone();
    let mut reg = hub.register(owner.clone());
    let conn = reg.conn;
    let target = hub.services.kernel.address(&owner);
    let tell = |event: &HttpServerEvent, blob: Option<Blob>| {
        let body = serde_json::to_vec(event).unwrap_or_default();
        server.tell(target.clone(), body, blob)
    };
    let open = HttpServerEvent::WsOpen {
        conn,
        path: opening.path,
        query: opening.query,
        user: opening.user,
    };
    if tell(&open, None).is_ok() {
        pump(&hub, &mut socket, &mut reg, |binary, bytes| {
            let event = HttpServerEvent::WsMessage { conn, binary };
            tell(&event, Some(Blob { mime: None, bytes }))
                .map(|_| ())
                .map_err(|e| {
                    debug!(conn, %e, "WebSocket event refused; closing");
                    CloseFrame {
                        code: CLOSE_TRY_LATER,
                        reason: "the app cannot take more messages".into(),
                    }
                })
        })
        .await;
    }
    hub.unregister(conn);
    let _ = tell(&HttpServerEvent::WsClose { conn }, None);
}
