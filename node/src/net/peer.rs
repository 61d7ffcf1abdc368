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

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tracing::{debug, info, warn, Instrument};

use super::behaviour::{MESSAGES, MESSAGES_PACKED};
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
/// oldest first. A waiting stream watches the reading one's progress.
#[derive(Default)]
pub struct ReadOrder {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Bytes read by the stream holding the turn, plus one per hand-over.
    progress: AtomicU64,
    /// Wakes the stream holding the turn to give it up.
    holder: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

impl ReadOrder {
    /// Wait for our turn to read. An older stream that stalls for
    /// [`REPLACE_STALL`], or still reads after [`REPLACE_WAIT`], is told to
    /// stop; it gives the turn up at once.
    async fn wait_turn(&self) -> (tokio::sync::OwnedMutexGuard<()>, bool) {
        let turn = self.turn.clone().lock_owned();
        tokio::pin!(turn);
        let started = tokio::time::Instant::now();
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut quiet_since = started;
        let mut cut = false;
        loop {
            tokio::select! {
                turn = &mut turn => return (turn, cut),
                _ = tokio::time::sleep(STALL_CHECK) => {
                    let now = self.progress.load(Ordering::Relaxed);
                    if now != seen {
                        (seen, quiet_since) = (now, tokio::time::Instant::now());
                    }
                    if quiet_since.elapsed() >= REPLACE_STALL || started.elapsed() >= REPLACE_WAIT {
                        cut = true;
                        self.stop_holder();
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

    fn stop_holder(&self) {
        if let Some(stop) = &*self.holder.lock().unwrap_or_else(|e| e.into_inner()) {
            stop.notify_one();
        }
    }
}

/// A stream that counts the bytes read from it into a [`ReadOrder`].
struct Counted<'a> {
    stream: &'a mut Stream,
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

/// Open a message stream to `peer`: packed if it speaks that protocol (a
/// direct connection only: a relayed stream may move, and its queue with
/// it, so it stays plain), else plain. Whether it is packed comes back.
async fn open_stream(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    relayed: bool,
) -> Result<(Stream, bool), libp2p_stream::OpenStreamError> {
    if !relayed {
        match control.open_stream(peer, MESSAGES_PACKED).await {
            Ok(stream) => return Ok((stream, true)),
            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((control.open_stream(peer, MESSAGES).await?, false))
}

/// Close a stream we are done with, within [`CLOSE_WAIT`], off the caller.
fn close_soon(mut stream: Stream) {
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
            Some(Outbound::Open(open)) if !open.outlet.is_closed() => {
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
            let (stream, packed) = match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => return give_up(&shared, peer, &e.to_string()),
                Err(_) => return give_up(&shared, peer, "timed out opening a stream"),
            };
            let outlet = Arc::new(if packed {
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
                    .run(stream, outlet.clone(), switch_rx)
                    .in_current_span(),
            );
            promote(&shared, peer, outlet);
            if relayed && shared.has_direct(&peer) {
                // A direct connection came up while this stream opened.
                upgrade(&shared, &controls, peer);
            }
        }
        .instrument(tracing::debug_span!("peer", %peer)),
    );
}

/// The stream to `peer` is open; if we know its name, its link is live.
fn promote(shared: &Shared, peer: PeerId, outlet: Arc<Outlet>) {
    if let Some(name) = shared.book.name_of(&peer) {
        shared.links.connected(&name, peer, outlet);
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
                Ok(Ok(opened)) => switch.send(opened).await.is_ok(),
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
        mut stream: Stream,
        outlet: Arc<Outlet>,
        mut switch: tokio::sync::mpsc::Receiver<(Stream, bool)>,
    ) {
        let Self {
            shared,
            peer,
            mut relayed,
        } = self;
        let mut batch = Vec::new();
        wire::encode(&Frame::Hello(shared.our_record()), &mut batch);
        let mut ok = write(&shared, &mut stream, &batch, relayed).await;
        // The stream, while this task holds it; else it is parked in the
        // outlet for routing calls to write to.
        let mut held = Some(stream);
        while ok {
            let work = outlet.next(&mut held, &mut batch, relayed);
            match (work, held.as_mut()) {
                (Work::Broken, _) | (Work::Write | Work::Flush, None) => ok = false,
                (Work::Write, Some(stream)) => {
                    ok = write(&shared, stream, &batch, relayed).await;
                    if batch.capacity() > IDLE_BATCH {
                        batch = Vec::new();
                    }
                }
                (Work::Flush, Some(stream)) => ok = stream.flush().await.is_ok(),
                (Work::Idle, _) => {
                    tokio::select! {
                        biased;
                        Some((direct, packed)) = switch.recv() => {
                            outlet.hold(&mut held);
                            let Some(old) = held.take() else {
                                ok = false;
                                continue;
                            };
                            held = Some(direct);
                            ok = move_stream(&shared, peer, old, &mut held, relayed).await;
                            relayed = false;
                            if packed {
                                // Frames queued so far were encoded plain.
                                outlet.pack();
                            }
                        }
                        _ = outlet.notified() => {}
                    }
                }
            }
        }
        debug!(%peer, "outbound stream closed");
        drop(outlet.close());
        drop(held);
        {
            let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(outbound.get(&peer), Some(Outbound::Open(open)) if Arc::ptr_eq(&open.outlet, &outlet))
            {
                outbound.remove(&peer);
            }
        }
        let orphans = shared.links.disconnected(&peer);
        shared.fail_orphans(orphans, "the connection to the peer closed");
    }
}

/// Move from `old` (relayed) to the direct stream in `held`. Everything
/// written before went out on the old stream; end it with `Moved` (its
/// reader stops there, whether or not the close ever reaches it), then say
/// `Hello` on the direct one, where the queue goes on. A relay that takes
/// no more bytes holds neither step up.
async fn move_stream(
    shared: &Shared,
    peer: PeerId,
    mut old: Stream,
    held: &mut Option<Stream>,
    relayed: bool,
) -> bool {
    let mut buf = Vec::new();
    wire::encode(&Frame::Moved, &mut buf);
    let ended = write(shared, &mut old, &buf, relayed);
    if !matches!(tokio::time::timeout(CLOSE_WAIT, ended).await, Ok(true)) {
        debug!(%peer, "could not end the relayed stream; its reader will be cut");
    }
    close_soon(old);
    let Some(direct) = held.as_mut() else {
        return false;
    };
    buf.clear();
    wire::encode(&Frame::Hello(shared.our_record()), &mut buf);
    let ok = write(shared, direct, &buf, false).await;
    info!(%peer, "message stream moved from the relay to a direct connection");
    ok
}

async fn write(shared: &Shared, stream: &mut Stream, buf: &[u8], relayed: bool) -> bool {
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
    let (plain, packed) = match (control.accept(MESSAGES), control.accept(MESSAGES_PACKED)) {
        (Ok(plain), Ok(packed)) => (plain, packed),
        (Err(e), _) | (_, Err(e)) => {
            warn!("cannot accept message streams: {e}");
            return;
        }
    };
    let mut incoming = futures::stream::select(
        plain.map(|(peer, stream)| (peer, stream, false)),
        packed.map(|(peer, stream)| (peer, stream, true)),
    );
    while let Some((peer, stream, packed)) = incoming.next().await {
        let span = tracing::info_span!("peer", %peer);
        let read = read_loop(shared.clone(), controls.clone(), peer, stream, packed);
        tokio::spawn(read.instrument(span));
    }
}

/// Read one inbound message stream; `packed` if it came with the packed
/// protocol (only then may it carry packed frames).
async fn read_loop(
    shared: Arc<Shared>,
    controls: Controls,
    peer: PeerId,
    mut stream: Stream,
    packed: bool,
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
    info!(%peer, %name, "peer says hello");
    open_link(&shared, &controls, peer);
    // Read only once the stream this one replaces (if any) was read to
    // its `Moved` or end, or cut: frames keep their order across a move.
    let order = shared.read_order(peer);
    let (turn, cut) = order.wait_turn().await;
    if cut {
        warn!(%peer, %name, "an older stream from this peer stalled; it was cut");
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    order.hold(stop.clone());
    let mut counted = Counted {
        stream: &mut stream,
        progress: &order.progress,
    };
    let mut unpacker = packed.then(Unpacker::default);
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
            Ok(Frame::Moved) => break,
            Ok(frame) => {
                if !inbound::on_frame(&shared, &name, frame) {
                    refused(&shared);
                    break;
                }
            }
            Err(FrameError::Closed) => break,
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
    drop(turn);
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
