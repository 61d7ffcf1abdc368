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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{Sink, StreamExt};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
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
    outbox: Arc<Outbox>,
    kill_tx: Option<oneshot::Sender<()>>,
    topics: HashSet<String>,
}

/// A connection's outgoing side, shared by whoever offers it frames and
/// by its own task: an offer writes the frame to the socket at once when
/// nothing is waiting before it; otherwise the frame waits in `queue` and
/// the task writes it.
pub(super) struct Outbox {
    state: Mutex<Out>,
}

#[derive(Default)]
struct Out {
    /// The socket, from the moment [`pump`] runs until the connection
    /// ends.
    socket: Option<WebSocket>,
    /// Frames waiting for the socket, in order.
    queue: VecDeque<Message>,
    /// Payload bytes in `queue`.
    queued_bytes: usize,
    /// The connection task's: woken to write `queue`, and by the socket
    /// when it can take what it held back.
    waker: Option<Waker>,
    /// Since when the socket has held back written bytes.
    stalled_since: Option<Instant>,
    /// A close frame is queued or the connection ended: nothing more is
    /// taken.
    closing: bool,
}

/// What an offered frame met.
enum Offered {
    Taken,
    /// The connection is closing or gone: not counted as sent.
    Gone,
    /// The buffer is full: the connection is too slow.
    Full(&'static str),
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `msg` for the client: written now if the socket is free and
    /// nothing waits before it, else queued within `max_frames` and
    /// `max_bytes` (one frame is always taken into an empty queue).
    fn offer(&self, msg: Message, max_frames: usize, max_bytes: usize) -> Offered {
        let mut out = self.lock();
        let out = &mut *out;
        if out.closing {
            return Offered::Gone;
        }
        let msg = if out.queue.is_empty() && out.stalled_since.is_none() {
            match (out.socket.as_mut(), out.waker.as_ref()) {
                (Some(socket), Some(waker)) => {
                    let mut cx = Context::from_waker(waker);
                    match write_now(socket, msg, &mut cx) {
                        Written::Flushed => return Offered::Taken,
                        Written::HeldBack => {
                            out.stalled_since = Some(Instant::now());
                            // To arm the write deadline.
                            waker.wake_by_ref();
                            return Offered::Taken;
                        }
                        Written::Failed => {
                            out.closing = true;
                            waker.wake_by_ref();
                            return Offered::Gone;
                        }
                        Written::NotReady(msg) => msg,
                    }
                }
                _ => msg,
            }
        } else {
            msg
        };
        let len = frame_len(&msg);
        if !out.queue.is_empty() && out.queued_bytes.saturating_add(len) > max_bytes {
            return Offered::Full("buffer full (bytes)");
        }
        if out.queue.len() >= max_frames {
            return Offered::Full("buffer full (frames)");
        }
        out.queue.push_back(msg);
        out.queued_bytes += len;
        if let Some(waker) = &out.waker {
            waker.wake_by_ref();
        }
        Offered::Taken
    }

    /// Queue a close frame past every bound; nothing is taken after it.
    fn queue_close(&self) {
        let mut out = self.lock();
        if out.closing {
            return;
        }
        out.closing = true;
        out.queue.push_back(Message::Close(None));
        if let Some(waker) = &out.waker {
            waker.wake_by_ref();
        }
    }

    /// The connection ends: nothing more is taken; returns the socket.
    fn close(&self) -> Option<WebSocket> {
        let mut out = self.lock();
        out.closing = true;
        out.queue.clear();
        out.waker = None;
        out.socket.take()
    }
}

impl Out {
    /// Write what waits in `queue`, one frame at a time, each flushed
    /// before the next is taken from the queue (so the queue's bounds
    /// hold: no more than one frame sits in the codec's buffer). `Ok(true)`
    /// once a queued close frame went out; `Pending` while the socket
    /// holds bytes back (its writability wakes `cx`).
    fn write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ()>> {
        let Some(socket) = self.socket.as_mut() else {
            return Poll::Ready(Err(()));
        };
        let mut wrote = false;
        let mut closed = false;
        loop {
            if wrote || self.stalled_since.is_some() {
                match Pin::new(&mut *socket).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.stalled_since = None,
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                    Poll::Pending => {
                        self.stalled_since.get_or_insert_with(Instant::now);
                        return Poll::Pending;
                    }
                }
            }
            if closed {
                return Poll::Ready(Ok(true));
            }
            if self.queue.is_empty() {
                return Poll::Ready(Ok(false));
            }
            match Pin::new(&mut *socket).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
            let Some(msg) = self.queue.pop_front() else {
                return Poll::Ready(Ok(false));
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(frame_len(&msg));
            closed = matches!(msg, Message::Close(_));
            if Pin::new(&mut *socket).start_send(msg).is_err() {
                return Poll::Ready(Err(()));
            }
            wrote = true;
        }
    }
}

/// How writing one frame straight to the socket went.
enum Written {
    /// On the wire.
    Flushed,
    /// Taken, but the socket holds some bytes back for now.
    HeldBack,
    Failed,
    /// The socket cannot take it now: queue it.
    NotReady(Message),
}

/// Write `msg` to `socket` now, with `cx` (the connection task's) woken
/// when a socket that held bytes back can take them. Outside tokio's
/// per-task budget: the caller is not the connection's task, and one
/// publish writes to every member's socket in one go, where the budget
/// would turn every write past its 128th into a wake-up of that
/// connection's task.
fn write_now(socket: &mut WebSocket, msg: Message, cx: &mut Context<'_>) -> Written {
    let mut msg = Some(msg);
    let write = std::future::poll_fn(|cx| match msg.take() {
        Some(msg) => Poll::Ready(write_unbudgeted(socket, msg, cx)),
        None => Poll::Ready(Written::Failed),
    });
    match std::pin::pin!(tokio::task::unconstrained(write)).poll(cx) {
        Poll::Ready(written) => written,
        Poll::Pending => Written::Failed,
    }
}

fn write_unbudgeted(socket: &mut WebSocket, msg: Message, cx: &mut Context<'_>) -> Written {
    match Pin::new(&mut *socket).poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(_)) => return Written::Failed,
        Poll::Pending => return Written::NotReady(msg),
    }
    if Pin::new(&mut *socket).start_send(msg).is_err() {
        return Written::Failed;
    }
    match Pin::new(&mut *socket).poll_flush(cx) {
        Poll::Ready(Ok(())) => Written::Flushed,
        Poll::Ready(Err(_)) => Written::Failed,
        Poll::Pending => Written::HeldBack,
    }
}

/// A topic's members, each connection's outbox by its id. A publish
/// takes the whole table under the hub's lock as one reference count and
/// walks it outside the lock, so the frame's first write waits for no
/// per-member lookup or copy; a join or leave while a publish still walks
/// the table copies it first (`Arc::make_mut`).
type Members = Arc<HashMap<u64, Arc<Outbox>>>;

#[derive(Default)]
struct HubState {
    conns: HashMap<u64, Conn>,
    /// (owner, topic) -> members. Topics are per process: two apps may use
    /// the same topic name without meeting.
    topics: HashMap<(ProcessId, String), Members>,
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
            leave_topic(&mut state.topics, (c.owner.clone(), topic), conn);
        }
        Some(c)
    }

    /// Give `msg` to `conn` (written at once when its socket is free); a
    /// buffer full in frames or bytes drops the connection.
    fn offer(&self, state: &mut HubState, conn: u64, msg: Message) -> bool {
        let Some(c) = state.conns.get(&conn) else {
            return false;
        };
        match c
            .outbox
            .offer(msg, self.client_buffer, self.client_buffer_bytes)
        {
            Offered::Taken => {
                self.services
                    .kernel
                    .metrics
                    .ws_messages_out
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Offered::Gone => false,
            Offered::Full(why) => {
                self.drop_slow(state, conn, why);
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

    /// Give one frame to every member of `topic` (one encoded text shared
    /// by all); returns how many took it. The sockets are written outside
    /// the hub's lock.
    pub fn publish(&self, owner: &ProcessId, topic: &str, binary: bool, payload: Vec<u8>) -> u64 {
        let started = Instant::now();
        let Ok(msg) = Self::frame(binary, payload) else {
            return 0;
        };
        let members: Members = {
            let state = self.lock();
            let Some(members) = state.topics.get(&(owner.clone(), topic.to_string())) else {
                return 0;
            };
            members.clone()
        };
        let mut delivered = 0;
        let mut full = Vec::new();
        for (conn, outbox) in members.iter() {
            match outbox.offer(msg.clone(), self.client_buffer, self.client_buffer_bytes) {
                Offered::Taken => delivered += 1,
                Offered::Gone => {}
                Offered::Full(why) => full.push((*conn, why)),
            }
        }
        self.services
            .kernel
            .metrics
            .ws_messages_out
            .fetch_add(delivered, Ordering::Relaxed);
        // Let go of the table first, so dropping a member does not copy it.
        drop(members);
        if !full.is_empty() {
            let mut state = self.lock();
            for (conn, why) in full {
                self.drop_slow(&mut state, conn, why);
            }
        }
        self.services
            .kernel
            .metrics
            .ws_publish_latency
            .observe(started.elapsed());
        delivered
    }

    pub fn join(&self, owner: &ProcessId, conn: u64, topic: String) -> HttpServerReply {
        let mut state = self.lock();
        match state.conns.get_mut(&conn) {
            Some(c) if c.owner == *owner => {
                c.topics.insert(topic.clone());
                let outbox = c.outbox.clone();
                let members = state.topics.entry((owner.clone(), topic)).or_default();
                Arc::make_mut(members).insert(conn, outbox);
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
                leave_topic(&mut state.topics, (owner.clone(), topic.to_string()), conn);
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
                c.outbox.queue_close();
                Ok(0)
            }
            _ => Err(HttpServerError::NoSuchConnection(conn)),
        }
    }
}

/// Take `conn` out of a topic's members; a topic left with none goes. The
/// table is copied only if `conn` is in it and a publish is walking it.
fn leave_topic(
    topics: &mut HashMap<(ProcessId, String), Members>,
    key: (ProcessId, String),
    conn: u64,
) {
    if let Entry::Occupied(mut members) = topics.entry(key) {
        if members.get().contains_key(&conn) {
            Arc::make_mut(members.get_mut()).remove(&conn);
        }
        if members.get().is_empty() {
            members.remove();
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

/// A connection registered with the hub: its id and what its task reads.
pub(super) struct Registered {
    pub conn: u64,
    outbox: Arc<Outbox>,
    kill_rx: oneshot::Receiver<()>,
}

impl WsHub {
    /// Register a new connection of `owner` (counted as opened).
    pub(super) fn register(&self, owner: ProcessId) -> Registered {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (kill_tx, kill_rx) = oneshot::channel();
        let outbox = Arc::new(Outbox {
            state: Mutex::default(),
        });
        self.lock().conns.insert(
            conn,
            Conn {
                owner,
                outbox: outbox.clone(),
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
            outbox,
            kill_rx,
        }
    }

    pub(super) fn unregister(&self, conn: u64) {
        Self::remove(&mut self.lock(), conn);
    }

    /// Give a text frame to `conn` (the node's own connections); a full
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

/// What [`pump`]'s poll found.
enum Step {
    /// A frame from the client: binary?, bytes.
    Frame(bool, Vec<u8>),
    /// The connection ends (either side, or a failed write).
    End,
    /// A queued close frame went out: the connection ends.
    Closed,
    /// A written frame did not reach the socket within [`WRITE_DEADLINE`].
    TooSlow,
}

/// Move frames between `socket` and the hub until either side ends the
/// connection. Frames for the client are written to the socket by whoever
/// offers them ([`Outbox::offer`]) when it is free; this task writes only
/// what the socket could not take at once, so a publish to a thousand
/// idle connections wakes none of their tasks. A socket that holds a
/// written frame back longer than [`WRITE_DEADLINE`] ends the connection
/// as too slow. Each frame from the client goes to `on_frame` (binary?,
/// bytes), which may end the connection with a close frame.
pub(super) async fn pump(
    hub: &WsHub,
    socket: WebSocket,
    reg: &mut Registered,
    mut on_frame: impl FnMut(bool, Vec<u8>) -> Result<(), CloseFrame>,
) {
    let conn = reg.conn;
    let outbox = reg.outbox.clone();
    outbox.lock().socket = Some(socket);
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let step = std::future::poll_fn(|cx| {
            if Pin::new(&mut reg.kill_rx).poll(cx).is_ready() {
                return Poll::Ready(Step::End);
            }
            let mut out = outbox.lock();
            if !out.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                out.waker = Some(cx.waker().clone());
            }
            match out.write_queued(cx) {
                Poll::Ready(Ok(true)) => return Poll::Ready(Step::Closed),
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(())) => return Poll::Ready(Step::End),
                Poll::Pending => {}
            }
            match out.stalled_since {
                Some(since) => {
                    let at = tokio::time::Instant::from_std(since + WRITE_DEADLINE);
                    let sleep =
                        deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    if sleep.deadline() != at {
                        sleep.as_mut().reset(at);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Step::TooSlow);
                    }
                }
                None => deadline = None,
            }
            let Some(socket) = out.socket.as_mut() else {
                return Poll::Ready(Step::End);
            };
            loop {
                return match socket.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(Message::Text(t)))) => {
                        Poll::Ready(Step::Frame(false, t.as_str().as_bytes().to_vec()))
                    }
                    Poll::Ready(Some(Ok(Message::Binary(b)))) => {
                        Poll::Ready(Step::Frame(true, b.to_vec()))
                    }
                    // Pings are answered by the codec itself.
                    Poll::Ready(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                    Poll::Ready(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                        Poll::Ready(Step::End)
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
        })
        .await;
        match step {
            Step::Frame(binary, bytes) => {
                hub.services
                    .kernel
                    .metrics
                    .ws_messages_in
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(frame) = on_frame(binary, bytes) {
                    let socket = outbox.close();
                    if let Some(mut socket) = socket {
                        let _ = tokio::time::timeout(
                            WRITE_DEADLINE,
                            socket.send(Message::Close(Some(frame))),
                        )
                        .await;
                    }
                    return;
                }
            }
            Step::TooSlow => {
                outbox.close();
                hub.drop_slow(&mut hub.lock(), conn, "write deadline passed");
                return;
            }
            Step::End | Step::Closed => {
                outbox.close();
                return;
            }
        }
    }
}

/// Run one upgraded connection until either side ends it; `slot` is its
/// place under the cap, freed when this returns.
pub async fn run_connection(
    hub: Arc<WsHub>,
    server: Arc<NativeEndpoint>,
    socket: WebSocket,
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
        pump(&hub, socket, &mut reg, |binary, bytes| {
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
