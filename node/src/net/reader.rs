//! Accepting and reading a peer's inbound message streams: libp2p streams
//! of each protocol (`stream::Kind`), and lanes on our lane listener. Each
//! stream has its own reader, which checks the peer's `Hello` (and, on a
//! lane-offering stream, the offer), opens our stream back (`outbound`),
//! waits for its turn in the peer's read order (`read_order`), then hands
//! each frame to `inbound`, which delivers straight into the target's
//! mailbox (no task between).
//!
//! **Invariant:** before a stream's `Hello` verifies, it may carry one
//! frame of at most [`HELLO_FRAME_BYTES`], within [`HELLO_TIMEOUT`]. A
//! peer has at most [`MAX_INBOUND_STREAMS_PER_PEER`] inbound streams
//! open. What a verified stream carries is handled in `inbound`; a stream
//! that breaks a rule is closed and counted (`hearth_net_streams_refused_total`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use tracing::{debug, info, warn, Instrument};

use super::accept::{Inbound, Incoming};
use super::behaviour::{MESSAGES_LANE, MESSAGES_PACKED};
use super::lane::{self, Pipe};
use super::outbound::{open_link, to_lane};
use super::pack::Unpacker;
use super::read_order::Ticket;
use super::record::{NameRecord, MAX_RECORD_BYTES};
use super::stream::{close_soon, Kind};
use super::wire::{self, Frame, FrameError};
use super::{inbound, Controls, Shared};

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

/// Read inbound message streams (handed over by `accept`) for as long as
/// the node runs: each gets its reader.
pub async fn accept_loop(shared: Arc<Shared>, controls: Controls, mut incoming: Incoming) {
    while let Some(inbound) = incoming.next().await {
        let Inbound {
            peer,
            stream,
            protocol,
            relayed,
            ticket,
            ..
        } = inbound;
        let kind = match protocol {
            p if p == MESSAGES_LANE => Kind::Lanes,
            p if p == MESSAGES_PACKED => Kind::Packed,
            _ => Kind::Plain,
        };
        let span = tracing::info_span!("peer", %peer);
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
/// `read_order`).
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
    let order = ticket.order().clone();
    cut |= order.wait_turn(&ticket).await;
    if cut {
        warn!(%peer, %name, "an older stream from this peer stalled; it was cut");
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    order.hold(stop.clone());
    let on_lane = stream.is_lane();
    let mut counted = order.counted(&mut stream);
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
fn hello(shared: &Shared, peer: PeerId, record: &NameRecord) -> Result<(), String> {
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
