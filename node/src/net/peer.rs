//! Streams to and from one peer. Each node opens one long-lived outbound
//! stream per peer and writes length-prefixed frames to it, starting with
//! its signed `Hello`; the other side reads them. Order on a stream is the
//! order of sending, so order holds between any pair of processes while
//! the connection lives.
//!
//! A stream opened over a relayed connection moves to a direct connection
//! once one exists (DCUtR): the writer ends the relayed stream with a
//! `Moved` frame, then goes on with the same queue on a new direct stream;
//! the reader of the new stream waits until the old stream's reader read
//! `Moved` (or its end). So nothing is lost, reordered or sent twice across
//! the move. The wait does not depend on the old stream's close ever
//! arriving, and is bounded: an old stream that brings no bytes for
//! [`REPLACE_STALL`] (or holds on past [`REPLACE_WAIT`]) is cut, and
//! whatever it brings later is dropped, never delivered after the new
//! stream's frames.
//!
//! **Invariant:** before a stream's `Hello` verifies, it may carry one
//! frame of at most [`HELLO_FRAME_BYTES`], within [`HELLO_TIMEOUT`]. A
//! peer has at most [`MAX_INBOUND_STREAMS_PER_PEER`] inbound streams
//! open. What a verified stream carries is handled in `inbound`.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use tracing::{debug, info, warn, Instrument};

use super::behaviour::{MESSAGES, MESSAGES_LANE, MESSAGES_PACKED};
use super::lane::{self, Pipe};
use super::outlet::{self, Outlet, Work};
use super::pack::Unpacker;
use super::record::MAX_RECORD_BYTES;
use super::wire::{self, Frame, FrameError};
use super::{inbound, Controls, OpenStream, Outbound, Shared};

/// The writer's batch buffer keeps at most this much capacity between
/// batches (a burst of large frames may grow it past that for a while).
const IDLE_BATCH: usize = 1024 * 1024;
/// The first frame of a stream: a name record and its envelope.
const HELLO_FRAME_BYTES: usize = MAX_RECORD_BYTES + 64;
/// How long a new stream may take to say who it is.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Inbound message streams one peer may hold open: one is normal; a few
/// cover a reconnect racing the old stream's close.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;
/// A reader keeps at most this much buffer between frames.
const IDLE_BUFFER: usize = 256 * 1024;
/// How long the reader of a new stream waits for the reader of the stream
/// it replaces to finish at most, however slowly that one still reads.
pub const REPLACE_WAIT: Duration = Duration::from_secs(30);
/// How long the stream being replaced may bring no bytes at all before the
/// new stream's reader cuts it (its sender moved on, or its path died).
pub const REPLACE_STALL: Duration = Duration::from_secs(5);
/// How often a waiting reader looks at the old stream's progress.
const STALL_CHECK: Duration = Duration::from_millis(500);
/// How long writing the `Moved` frame to the old stream, or closing a
/// stream we are done with, may take; past it the stream is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The order in which one peer's inbound streams are read: one at a time,
/// in the order they were sent. A libp2p stream takes its [`Ticket`] when
/// accepted, before its `Hello`. A lane replaces the direct libp2p stream
/// that ended with `Moved`, but may reach us first (its handshake can beat
/// that stream's delivery): the n-th lane takes its ticket only once the
/// n-th such `Moved` was read. A waiting stream watches the reading one's
/// progress, and cuts it if it stalls.
///
/// Weak: lanes pair with moves by count. A `Moved` read whose lane never
/// says `Hello` (it broke first, or hit [`MAX_INBOUND_STREAMS_PER_PEER`])
/// leaves `moves` ahead: a later lane then skips its wait and may read
/// before the libp2p stream it replaces (which may cost a
/// [`REPLACE_STALL`] cut). And `wait_turn` reports a cut when the turn's
/// holder is a stream still before its `Hello`.
#[derive(Default)]
pub struct ReadOrder {
    /// Tickets of the streams not done yet; the lowest holds the turn.
    live: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
    /// Wakes waiting streams when a ticket is done or a stream moved.
    done: tokio::sync::Notify,
    /// Direct libp2p streams read to their `Moved` (each moved to a lane),
    /// and lanes that said hello: the n-th lane reads after the n-th move.
    moves: AtomicU64,
    lanes: AtomicU64,
    /// Bytes read by the stream holding the turn, plus one per hand-over.
    progress: AtomicU64,
    /// Wakes the stream holding the turn to give it up.
    holder: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

/// A stream's place in its peer's [`ReadOrder`]; dropped, the turn passes
/// on.
pub struct Ticket {
    order: Arc<ReadOrder>,
    number: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.lock_live().remove(&self.number);
        self.order.done.notify_waiters();
    }
}

impl ReadOrder {
    /// A place behind every stream of this peer accepted so far.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock_live().insert(number);
        Ticket {
            order: self.clone(),
            number,
        }
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for `ticket`'s turn to read; true if an older stream was cut.
    /// An older stream that stalls for [`REPLACE_STALL`], or still reads
    /// after [`REPLACE_WAIT`], is told to stop; it gives the turn up at
    /// once.
    async fn wait_turn(&self, ticket: &Ticket) -> bool {
        let first = || self.lock_live().first() == Some(&ticket.number);
        self.wait_watching(first, false).await
    }

    /// A direct libp2p stream read its `Moved`: the lane it moved to reads.
    fn moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
        self.done.notify_waiters();
    }

    /// A lane said hello: wait for the `Moved` of the stream it replaces
    /// before it takes its place. A stream holding the turn that stalls
    /// for [`REPLACE_STALL`] meanwhile is cut, and the lane goes on.
    async fn wait_move(&self) -> bool {
        let index = self.lanes.fetch_add(1, Ordering::Relaxed) + 1;
        let moved = || self.moves.load(Ordering::Relaxed) >= index;
        let cut = self.wait_watching(moved, true).await;
        if cut {
            self.moves.fetch_max(index, Ordering::Relaxed);
        }
        cut
    }

    /// Wait until `ready`, woken when a ticket is done or a stream moved,
    /// watching the progress of the stream holding the turn meanwhile:
    /// one that brings no bytes for [`REPLACE_STALL`], or still reads after
    /// [`REPLACE_WAIT`], is told to stop. True if one was; with
    /// `done_at_cut` the wait ends there, else it goes on until `ready`.
    async fn wait_watching(&self, ready: impl Fn() -> bool, done_at_cut: bool) -> bool {
        let started = tokio::time::Instant::now();
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut quiet_since = started;
        let mut cut = false;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if ready() {
                return cut;
            }
            tokio::select! {
                _ = &mut done => {}
                _ = tokio::time::sleep(STALL_CHECK) => {
                    let now = self.progress.load(Ordering::Relaxed);
                    if now != seen {
                        (seen, quiet_since) = (now, tokio::time::Instant::now());
                    }
                    if quiet_since.elapsed() >= REPLACE_STALL || started.elapsed() >= REPLACE_WAIT {
                        cut = true;
                        self.stop_holder();
                        if done_at_cut {
                            return true;
                        }
                    }
                }
            }
        }
    }

    /// The caller holds the turn; `stop` wakes it to give the turn up.
    fn hold(&self, stop: Arc<tokio::sync::Notify>) {
        *self.holder.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn release(&self, stop: &Arc<tokio::sync::Notify>) {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if holder.as_ref().is_some_and(|h| Arc::ptr_eq(h, stop)) {
            *holder = None;
        }
    }

    /// Tell the stream holding the turn to stop reading.
    pub fn stop_holder(&self) {
        if let Some(stop) = &*self.holder.lock().unwrap_or_else(|e| e.into_inner()) {
            stop.notify_one();
        }
    }
}

/// A stream that counts the bytes read from it into a [`ReadOrder`].
struct Counted<'a> {
    stream: &'a mut Pipe,
    progress: &'a AtomicU64,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let read = Pin::new(&mut *self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            self.progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        read
    }
}

/// What a message stream carries, by the protocol it was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `0.1.0`: plain frames.
    Plain,
    /// `0.2.0`, or a lane: packed frames.
    Packed,
    /// `0.3.0`: packed frames, and the second frame offers a lane.
    Lanes,
}

impl Kind {
    fn packed(self) -> bool {
        self != Kind::Plain
    }
}

/// What a writer is handed to move to: a stream, what it carries, and on
/// a lane a second handle on its socket that sees the lane end.
pub type Switch = (Pipe, Kind, Option<tokio::net::TcpStream>);

/// Open a message stream to `peer`: offering a lane, else packed, if it
/// speaks those protocols (a direct connection only: a relayed stream may
/// move, and its queue with it, so it stays plain), else plain.
async fn open_stream(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    relayed: bool,
) -> Result<(Pipe, Kind), libp2p_stream::OpenStreamError> {
    if !relayed {
        for (protocol, kind) in [
            (MESSAGES_LANE, Kind::Lanes),
            (MESSAGES_PACKED, Kind::Packed),
        ] {
            match control.open_stream(peer, protocol).await {
                Ok(stream) => return Ok((Pipe::Stream(stream), kind)),
                Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let stream = control.open_stream(peer, MESSAGES).await?;
    Ok((Pipe::Stream(stream), Kind::Plain))
}

/// Close a stream we are done with, within [`CLOSE_WAIT`], off the caller.
fn close_soon(mut stream: Pipe) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_WAIT, stream.close()).await;
    });
}

/// Inbound streams open per peer.
#[derive(Default)]
pub struct InboundStreams(Mutex<HashMap<PeerId, usize>>);

/// One inbound stream's slot; dropping it frees the slot.
struct StreamSlot<'a> {
    streams: &'a InboundStreams,
    peer: PeerId,
}

impl InboundStreams {
    fn take(&self, peer: PeerId) -> Option<StreamSlot<'_>> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(peer).or_default();
        if *count >= MAX_INBOUND_STREAMS_PER_PEER {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            streams: self,
            peer,
        })
    }
}

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Open our stream to `peer` unless one is open or opening; once open,
/// the link to the peer's name (when known) goes live.
pub fn open_link(shared: &Arc<Shared>, controls: &Controls, peer: PeerId) {
    {
        let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
        match outbound.get(&peer) {
            Some(Outbound::Open(open)) if !open.outlet.is_ended() => {
                let outlet = open.outlet.clone();
                drop(outbound);
                promote(shared, peer, outlet);
                return;
            }
            Some(Outbound::Opening) => return,
            _ => {
                outbound.insert(peer, Outbound::Opening);
            }
        }
    }
    let relayed = !shared.has_direct(&peer);
    let mut control = if relayed {
        controls.relayed.clone()
    } else {
        controls.direct.clone()
    };
    let (shared, controls) = (shared.clone(), controls.clone());
    tokio::spawn(
        async move {
            let opened = tokio::time::timeout(
                shared.dial_timeout,
                open_stream(&mut control, peer, relayed),
            )
            .await;
            let (stream, kind) = match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => return give_up(&shared, peer, &e.to_string()),
                Err(_) => return give_up(&shared, peer, "timed out opening a stream"),
            };
            let outlet = Arc::new(if kind.packed() {
                Outlet::packed()
            } else {
                Outlet::default()
            });
            let (switch, switch_rx) = tokio::sync::mpsc::channel(1);
            let open = OpenStream {
                outlet: outlet.clone(),
                relayed,
                switch,
                moving: false,
                lane: false,
            };
            shared
                .outbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(peer, Outbound::Open(open));
            let writer = Writer {
                shared: shared.clone(),
                peer,
                relayed,
            };
            tokio::spawn(
                writer
                    .run(stream, kind, outlet.clone(), switch_rx)
                    .in_current_span(),
            );
            promote(&shared, peer, outlet);
            if relayed && shared.has_direct(&peer) {
                // A direct connection came up while this stream opened.
                upgrade(&shared, &controls, peer);
            }
            // The peer may have offered its lane before this stream opened.
            to_lane(&shared, peer);
        }
        .instrument(tracing::debug_span!("peer", %peer)),
    );
}

/// The stream to `peer` is open; if we know its name, its link is live.
/// If its writer ended meanwhile, the link connects again.
fn promote(shared: &Arc<Shared>, peer: PeerId, outlet: Arc<Outlet>) {
    if let Some(name) = shared.book.name_of(&peer) {
        if !shared.links.connected(&name, peer, outlet) {
            shared.redial(&name);
        }
    }
}

fn give_up(shared: &Shared, peer: PeerId, why: &str) {
    debug!(%peer, why, "no stream to peer");
    shared
        .outbound
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&peer);
    if let Some(name) = shared.book.name_of(&peer) {
        if !shared.links.is_connected(&name) {
            shared.unreachable(&name, why);
        }
    }
}

/// A direct connection to `peer` is up: if our message stream to it runs
/// over a relay, open one on the direct connection and hand it to the
/// writer, which moves to it.
pub fn upgrade(shared: &Arc<Shared>, controls: &Controls, peer: PeerId) {
    let switch = {
        let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
        match outbound.get_mut(&peer) {
            Some(Outbound::Open(open)) if open.relayed && !open.moving => {
                open.moving = true;
                open.switch.clone()
            }
            _ => return,
        }
    };
    let (shared, mut control) = (shared.clone(), controls.direct.clone());
    tokio::spawn(
        async move {
            let opened =
                tokio::time::timeout(shared.dial_timeout, open_stream(&mut control, peer, false))
                    .await;
            let moved = match opened {
                Ok(Ok((stream, kind))) => switch.send((stream, kind, None)).await.is_ok(),
                Ok(Err(e)) => {
                    debug!(%peer, "no direct stream: {e}");
                    false
                }
                Err(_) => false,
            };
            let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Outbound::Open(open)) = outbound.get_mut(&peer) {
                open.moving = false;
                if moved {
                    open.relayed = false;
                }
            }
        }
        .instrument(tracing::debug_span!("peer", %peer)),
    );
}

/// Move our message stream to `peer` onto the lane it offered, if we have
/// a direct connection to it and our stream is open, direct and not
/// moving already. The lane is dialed first; only a lane the peer accepted
/// is handed to the writer. A failed dial forgets the offer (a new stream
/// from the peer brings it again).
pub fn to_lane(shared: &Arc<Shared>, peer: PeerId) {
    let Some(addr) = shared.lane_addr(&peer) else {
        return;
    };
    let switch = {
        let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
        match outbound.get_mut(&peer) {
            Some(Outbound::Open(open)) if !open.relayed && !open.moving && !open.lane => {
                open.moving = true;
                open.switch.clone()
            }
            _ => return,
        }
    };
    let shared = shared.clone();
    tokio::spawn(
        async move {
            let dial = lane::dial(&shared.keypair, addr, peer);
            let moved = match tokio::time::timeout(shared.dial_timeout, dial).await {
                Ok(Ok((io, watch))) => {
                    let lane = (Pipe::Lane(Box::new(io)), Kind::Packed, Some(watch));
                    switch.send(lane).await.is_ok()
                }
                Ok(Err(why)) => {
                    debug!(%peer, "no lane: {why}");
                    shared.lane_failed(&peer);
                    false
                }
                Err(_) => {
                    debug!(%peer, %addr, "no lane: timed out");
                    shared.lane_failed(&peer);
                    false
                }
            };
            let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Outbound::Open(open)) = outbound.get_mut(&peer) {
                open.moving = false;
                open.lane |= moved;
            }
        }
        .instrument(tracing::debug_span!("peer", %peer)),
    );
}

/// The task that writes our frames to one peer when the routing call
/// cannot (see `outlet`): the `Hello`, queued batches, flushes owed, and
/// the move off a relay.
struct Writer {
    shared: Arc<Shared>,
    peer: PeerId,
    /// The current stream runs over a relay.
    relayed: bool,
}

impl Writer {
    async fn run(
        self,
        mut stream: Pipe,
        kind: Kind,
        outlet: Arc<Outlet>,
        mut switch: tokio::sync::mpsc::Receiver<Switch>,
    ) {
        let Self {
            shared,
            peer,
            mut relayed,
        } = self;
        let mut batch = Vec::new();
        shared.hello(kind, &mut batch);
        let mut ok = write(&shared, &mut stream, &batch, relayed).await;
        // The stream, while this task holds it; else it is parked in the
        // outlet for routing calls to write to.
        let mut held = Some(stream);
        // Frames of the batch taken, dropped outside the outlet's lock.
        let mut spent = Vec::new();
        // The last write or flush completed (the stream held since).
        let mut settled = false;
        // The libp2p stream a lane replaced (see `move_stream`).
        let mut anchor = None;
        // On a lane, a second handle on its socket: the peer never writes
        // to our lane, so a read that ends means the lane is gone, even
        // while we have nothing to write.
        let mut watch: Option<tokio::net::TcpStream> = None;
        while ok {
            let work = outlet.next(&mut held, &mut batch, &mut spent, settled, relayed);
            spent.clear();
            settled = false;
            match (work, held.as_mut()) {
                (Work::Broken, _) | (Work::Write | Work::Flush, None) => ok = false,
                (Work::Write, Some(stream)) => {
                    ok = write(&shared, stream, &batch, relayed).await;
                    settled = ok;
                    if batch.capacity() > IDLE_BATCH {
                        batch = Vec::new();
                    }
                    if spent.capacity() > outlet::CONNECT_QUEUE {
                        spent = Vec::new();
                    }
                }
                (Work::Flush, Some(stream)) => {
                    ok = stream.flush().await.is_ok();
                    settled = ok;
                }
                (Work::Idle, _) => {
                    tokio::select! {
                        biased;
                        Some((direct, kind, lane)) = switch.recv() => {
                            // What was queued for the old stream ends it;
                            // from now on frames are encoded for the new one.
                            outlet.hold_to_move(&mut held, &mut batch, &mut spent, kind.packed());
                            spent.clear();
                            let Some(mut old) = held.take() else {
                                ok = false;
                                continue;
                            };
                            if !batch.is_empty() && !write(&shared, &mut old, &batch, relayed).await {
                                ok = false;
                                continue;
                            }
                            held = Some(direct);
                            ok = move_stream(&shared, peer, old, &mut held, &mut anchor, relayed, kind).await;
                            relayed = false;
                            if lane.is_some() {
                                watch = lane;
                            }
                        }
                        _ = outlet.notified() => {}
                        _ = lane::ended(watch.as_ref()) => {
                            debug!(%peer, "our lane to this peer was closed or reset");
                            watch = None;
                            outlet.end();
                        }
                    }
                }
            }
        }
        debug!(%peer, "outbound stream closed");
        drop(outlet.close());
        drop(held);
        drop(watch);
        drop(anchor);
        {
            let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(outbound.get(&peer), Some(Outbound::Open(open)) if Arc::ptr_eq(&open.outlet, &outlet))
            {
                outbound.remove(&peer);
            }
        }
        let name = shared.book.name_of(&peer);
        let (orphans, again) = shared.links.writer_ended(&outlet, name.as_deref());
        shared.fail_orphans(orphans, "the connection to the peer closed");
        if let (true, Some(name)) = (again, name) {
            // Frames queued behind the ended stream go on a new one.
            shared.redial(&name);
        }
    }
}

/// Move from `old` (relayed, or a libp2p stream) to the stream in `held`
/// (direct, or a lane). Everything written before went out on the old
/// stream; end it with `Moved` (its reader stops there, whether or not the
/// close ever reaches it), then say `Hello` on the new one, where the
/// queue goes on. A relay that takes no more bytes holds neither step up.
/// Moving to a lane, the old stream is kept open in `anchor` (unwritten):
/// it keeps the libp2p connection from closing as idle while the lane
/// carries the messages.
async fn move_stream(
    shared: &Shared,
    peer: PeerId,
    mut old: Pipe,
    held: &mut Option<Pipe>,
    anchor: &mut Option<Pipe>,
    relayed: bool,
    kind: Kind,
) -> bool {
    let mut buf = Vec::new();
    wire::encode(&Frame::Moved, &mut buf);
    let ended = write(shared, &mut old, &buf, relayed);
    if !matches!(tokio::time::timeout(CLOSE_WAIT, ended).await, Ok(true)) {
        debug!(%peer, "could not end the old stream; its reader will be cut");
    }
    let Some(direct) = held.as_mut() else {
        close_soon(old);
        return false;
    };
    if direct.is_lane() && anchor.is_none() {
        *anchor = Some(old);
    } else {
        close_soon(old);
    }
    buf.clear();
    shared.hello(kind, &mut buf);
    let ok = write(shared, direct, &buf, false).await;
    if direct.is_lane() {
        info!(%peer, "message stream moved to a lane");
    } else {
        info!(%peer, "message stream moved from the relay to a direct connection");
    }
    ok
}

async fn write(shared: &Shared, stream: &mut Pipe, buf: &[u8], relayed: bool) -> bool {
    let ok = outlet::write_all(stream, buf).await;
    if ok && relayed {
        if let Some(services) = shared.services.upgrade() {
            services
                .kernel
                .metrics
                .net
                .relayed_bytes
                .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    ok
}

/// Accept inbound message streams for as long as the node runs.
pub async fn accept_loop(shared: Arc<Shared>, controls: Controls, relayed: bool) {
    let mut control = if relayed {
        controls.relayed.clone()
    } else {
        controls.direct.clone()
    };
    let accepted = (
        control.accept(MESSAGES),
        control.accept(MESSAGES_PACKED),
        control.accept(MESSAGES_LANE),
    );
    let (plain, packed, lanes) = match accepted {
        (Ok(plain), Ok(packed), Ok(lanes)) => (plain, packed, lanes),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            warn!("cannot accept message streams: {e}");
            return;
        }
    };
    let mut incoming = futures::stream::select(
        futures::stream::select(
            plain.map(|(peer, stream)| (peer, stream, Kind::Plain)),
            packed.map(|(peer, stream)| (peer, stream, Kind::Packed)),
        ),
        lanes.map(|(peer, stream)| (peer, stream, Kind::Lanes)),
    );
    while let Some((peer, stream, kind)) = incoming.next().await {
        let span = tracing::info_span!("peer", %peer);
        // Its place in the peer's read order is taken now, in arrival order.
        let ticket = shared.read_order(peer).ticket();
        let read = read_loop(
            shared.clone(),
            controls.clone(),
            peer,
            Pipe::Stream(stream),
            kind,
            relayed,
            Some(ticket),
        );
        tokio::spawn(read.instrument(span));
    }
}

/// Accept lanes (see `lane`) until the listener's task is aborted.
pub async fn accept_lanes(
    shared: Arc<Shared>,
    controls: Controls,
    listener: tokio::net::TcpListener,
) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                // Out of descriptors, most likely: let some close first.
                debug!("lane accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shared, controls) = (shared.clone(), controls.clone());
        tokio::spawn(async move {
            let admit = |peer: &PeerId| shared.has_direct(peer);
            let accepted = lane::accept(
                &shared.lane_slots,
                &shared.keypair,
                socket,
                HELLO_TIMEOUT,
                admit,
            )
            .await;
            match accepted {
                Ok(lane::Accepted { peer, io, slot }) => {
                    let span = tracing::info_span!("peer", %peer);
                    let lane = Pipe::Lane(io);
                    let read = read_loop(shared, controls, peer, lane, Kind::Packed, false, None);
                    read.instrument(span).await;
                    drop(slot);
                }
                Err(why) => {
                    refused(&shared);
                    debug!("lane refused: {why}");
                }
            }
        });
    }
}

/// Read one inbound message stream of `kind` (over a relay if `relayed`):
/// only a packed kind may carry packed frames, and only a lane-offering one
/// starts with an offer. A libp2p stream comes with its place in the read
/// order (`ticket`); a lane takes one after the move to it (see
/// [`ReadOrder`]).
async fn read_loop(
    shared: Arc<Shared>,
    controls: Controls,
    peer: PeerId,
    mut stream: Pipe,
    kind: Kind,
    relayed: bool,
    ticket: Option<Ticket>,
) {
    let Some(_slot) = shared.inbound.take(peer) else {
        refused(&shared);
        return debug!(%peer, "too many inbound streams from this peer; closed");
    };
    let mut buf = Vec::new();
    let first = wire::read_frame(
        &mut stream,
        HELLO_FRAME_BYTES,
        &mut buf,
        &shared.inbound_bytes,
    );
    let name = match tokio::time::timeout(HELLO_TIMEOUT, first).await {
        Ok(Ok(Frame::Hello(record))) => match hello(&shared, peer, &record) {
            Ok(()) => record.name,
            Err(why) => {
                refused(&shared);
                return warn!(%peer, name = %record.name, "hello refused: {why}");
            }
        },
        Ok(Ok(_)) => {
            refused(&shared);
            return warn!(%peer, "stream did not start with hello; closed");
        }
        Ok(Err(e)) => {
            refused(&shared);
            return debug!(%peer, "stream ended before hello: {e}");
        }
        Err(_) => {
            refused(&shared);
            return debug!(%peer, "no hello within {HELLO_TIMEOUT:?}; closed");
        }
    };
    if kind == Kind::Lanes {
        let offer = wire::read_frame_with(
            &mut stream,
            HELLO_FRAME_BYTES,
            &mut buf,
            &shared.inbound_bytes,
            lane::read_offer,
        );
        match tokio::time::timeout(HELLO_TIMEOUT, offer).await {
            Ok(Ok(port)) => shared.lane_offered(peer, port),
            Ok(Err(e)) => {
                refused(&shared);
                return warn!(%peer, %name, "bad lane offer: {e}");
            }
            Err(_) => {
                refused(&shared);
                return debug!(%peer, %name, "no lane offer within {HELLO_TIMEOUT:?}; closed");
            }
        }
    }
    info!(%peer, %name, "peer says hello");
    open_link(&shared, &controls, peer);
    if kind == Kind::Lanes {
        to_lane(&shared, peer);
    }
    // Read only once the stream this one replaces (if any) was read to
    // its `Moved` or end, or cut: frames keep their order across a move.
    let (ticket, mut cut) = match ticket {
        Some(ticket) => (ticket, false),
        None => {
            let order = shared.read_order(peer);
            let cut = order.wait_move().await;
            (order.ticket(), cut)
        }
    };
    let order = ticket.order.clone();
    cut |= order.wait_turn(&ticket).await;
    if cut {
        warn!(%peer, %name, "an older stream from this peer stalled; it was cut");
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    order.hold(stop.clone());
    let on_lane = stream.is_lane();
    let mut counted = Counted {
        stream: &mut stream,
        progress: &order.progress,
    };
    let mut unpacker = kind.packed().then(Unpacker::default);
    loop {
        let decode = |bytes: &[u8]| match unpacker.as_mut() {
            Some(unpacker) => unpacker.decode(bytes),
            None => wire::decode(bytes),
        };
        let read = tokio::select! {
            biased;
            read = wire::read_frame_with(
                &mut counted,
                shared.max_frame,
                &mut buf,
                &shared.inbound_bytes,
                decode,
            ) => read,
            _ = stop.notified() => {
                debug!(%peer, %name, "a newer stream replaced this one; closed");
                break;
            }
        };
        match read {
            Ok(Frame::Moved) => {
                if !on_lane && !relayed {
                    // Moved off a direct stream: onto a lane.
                    order.moved();
                }
                break;
            }
            Ok(frame) => {
                if !inbound::on_frame(&shared, &name, frame) {
                    refused(&shared);
                    break;
                }
            }
            Err(FrameError::Closed) if !on_lane => break,
            Err(e @ (FrameError::Closed | FrameError::Io(_))) if on_lane => {
                // The lane broke under the peer's frames: answers it had
                // sent us may be lost with it, so requests awaiting one
                // fail now (typed), not at their timeouts.
                debug!(%peer, %name, "the lane from this peer ended without `Moved`: {e}");
                let orphans = shared.links.take_awaited(&name);
                shared.fail_orphans(
                    orphans,
                    "the lane from the peer broke; its answer may be lost",
                );
                break;
            }
            Err(e) => {
                refused(&shared);
                warn!(%peer, %name, "closing the stream from this peer: {e}");
                break;
            }
        }
        if buf.capacity() > IDLE_BUFFER {
            buf = Vec::new();
        }
    }
    order.release(&stop);
    drop(ticket);
    close_soon(stream);
}

fn refused(shared: &Shared) {
    shared.count(|net| &net.streams_refused);
}

/// Verify a peer's hello and bind its name.
fn hello(shared: &Shared, peer: PeerId, record: &super::record::NameRecord) -> Result<(), String> {
    let signer = record.verify().map_err(|e| e.to_string())?;
    if signer != peer {
        return Err(format!("record of {signer} presented by {peer}"));
    }
    if record.name == shared.our {
        return Err("it claims our own name".into());
    }
    shared.book.bind(record).map_err(|e| {
        shared.count(|net| &net.names_refused);
        e.to_string()
    })
}
