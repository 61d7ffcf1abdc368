//! Streams to and from one peer. Each node opens one long-lived outbound
//! stream per peer and writes length-prefixed frames to it, starting with
//! its signed `Hello`; the other side reads them. Order on a stream is the
//! order of sending, so order holds between any pair of processes while
//! the connection lives.
//!
//! **Invariant:** before a stream's `Hello` verifies, it may carry one
//! frame of at most [`HELLO_FRAME_BYTES`], within [`HELLO_TIMEOUT`]. A
//! peer has at most [`MAX_INBOUND_STREAMS_PER_PEER`] inbound streams
//! open. What a verified stream carries is handled in `inbound`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tracing::{debug, info, warn, Instrument};

use super::behaviour::MESSAGES;
use super::links::{frame_channel, FrameRx, FrameTx};
use super::record::MAX_RECORD_BYTES;
use super::wire::{self, Frame, FrameError};
use super::{inbound, Outbound, Shared};
use crate::metrics::NetCounters;

/// Bytes gathered from queued frames before one write and flush.
const WRITE_BATCH: usize = 64 * 1024;
/// The first frame of a stream: a name record and its envelope.
const HELLO_FRAME_BYTES: usize = MAX_RECORD_BYTES + 64;
/// How long a new stream may take to say who it is.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Inbound message streams one peer may hold open: one is normal; a few
/// cover a reconnect racing the old stream's close.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;
/// A reader keeps at most this much buffer between frames.
const IDLE_BUFFER: usize = 256 * 1024;

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
pub fn open_link(shared: &Arc<Shared>, control: &libp2p_stream::Control, peer: PeerId) {
    {
        let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
        match outbound.get(&peer) {
            Some(Outbound::Open(tx)) if !tx.is_closed() => {
                let tx = tx.clone();
                drop(outbound);
                promote(shared, peer, tx);
                return;
            }
            Some(Outbound::Opening) => return,
            _ => {
                outbound.insert(peer, Outbound::Opening);
            }
        }
    }
    let (shared, mut control) = (shared.clone(), control.clone());
    tokio::spawn(
        async move {
            let opened =
                tokio::time::timeout(shared.dial_timeout, control.open_stream(peer, MESSAGES))
                    .await;
            let stream = match opened {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return give_up(&shared, peer, &e.to_string()),
                Err(_) => return give_up(&shared, peer, "timed out opening a stream"),
            };
            let (tx, rx) = frame_channel();
            shared
                .outbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(peer, Outbound::Open(tx.clone()));
            tokio::spawn(write_loop(shared.clone(), peer, stream, rx).in_current_span());
            promote(&shared, peer, tx);
        }
        .instrument(tracing::debug_span!("peer", %peer)),
    );
}

/// The stream to `peer` is open; if we know its name, its link is live.
fn promote(shared: &Shared, peer: PeerId, tx: FrameTx) {
    if let Some(name) = shared.book.name_of(&peer) {
        shared.links.connected(&name, peer, tx);
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

async fn write_loop(shared: Arc<Shared>, peer: PeerId, mut stream: Stream, mut rx: FrameRx) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    wire::encode(&Frame::Hello(shared.our_record()), &mut buf);
    let mut ok = stream.write_all(&buf).await.is_ok() && stream.flush().await.is_ok();
    while ok {
        let Some(first) = rx.recv().await else { break };
        buf.clear();
        wire::encode(&first, &mut buf);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Some(frame) => wire::encode(&frame, &mut buf),
                None => break,
            }
        }
        ok = stream.write_all(&buf).await.is_ok() && stream.flush().await.is_ok();
    }
    debug!(%peer, "outbound stream closed");
    {
        let mut outbound = shared.outbound.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(outbound.get(&peer), Some(Outbound::Open(tx)) if tx.is_closed() || !ok) {
            outbound.remove(&peer);
        }
    }
    let orphans = shared.links.disconnected(&peer);
    shared.fail_orphans(orphans, "the connection to the peer closed");
}

/// Accept inbound message streams for as long as the node runs.
pub async fn accept_loop(shared: Arc<Shared>, mut control: libp2p_stream::Control) {
    let mut incoming = match control.accept(MESSAGES) {
        Ok(incoming) => incoming,
        Err(e) => {
            warn!("cannot accept message streams: {e}");
            return;
        }
    };
    while let Some((peer, stream)) = incoming.next().await {
        let span = tracing::info_span!("peer", %peer);
        tokio::spawn(read_loop(shared.clone(), control.clone(), peer, stream).instrument(span));
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    control: libp2p_stream::Control,
    peer: PeerId,
    mut stream: Stream,
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
    open_link(&shared, &control, peer);
    loop {
        match wire::read_frame(
            &mut stream,
            shared.max_frame,
            &mut buf,
            &shared.inbound_bytes,
        )
        .await
        {
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
    let _ = stream.close().await;
}

fn refused(shared: &Shared) {
    count(shared, |net| &net.streams_refused);
}

pub(super) fn count(shared: &Shared, counter: impl Fn(&crate::metrics::NetCounters) -> &AtomicU64) {
    if let Some(services) = shared.services.upgrade() {
        NetCounters::count(counter(&services.kernel.metrics.net));
    }
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
        count(shared, |net| &net.names_refused);
        e.to_string()
    })
}
