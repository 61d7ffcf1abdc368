//! The task that writes our frames to one peer when the routing call
//! cannot (see `outlet`): the `Hello`, queued batches, flushes owed, and
//! the moves to a better stream.
//!
//! A stream opened over a relayed connection moves to a direct connection
//! once one exists (DCUtR), and a direct libp2p stream moves to a lane the
//! peer offered (`outbound` opens the new stream and hands it over as a
//! `stream::Switch`): the writer writes what was queued for the old stream to it,
//! ends it with a `Moved` frame, says `Hello` on the new one and goes on
//! with the same queue there; the peer's reader of the new stream waits
//! for the old one's `Moved` (`read_order`).
//!
//! **Invariant:** frames queued while the writer moves are written to the
//! old stream before `Moved`, so the new stream's address table starts
//! fresh. **Invariant:** when the writer ends, its link takes back what
//! never left (`Links::writer_ended`): requests written to the stream fail
//! `offline`, and what is still queued goes onto the next stream, after the
//! redial back-off the link earned (`Shared::redial`). The writer sees its
//! stream end even with nothing to write: a lane through a second handle
//! on its socket, a libp2p stream through a read on it (the peer never
//! writes to a stream we opened, so a read returns only at its close or
//! reset); requests written to a stream the peer reset fail at once, not
//! at their timeouts. Every byte written to a relayed stream is counted
//! (`hearth_net_relayed_bytes_total`).

use std::sync::Arc;

use futures::AsyncWriteExt;
use libp2p::PeerId;
use tracing::{debug, info};

use super::lane::{self, Pipe};
use super::outlet::{self, Outlet, Work};
use super::stream::{close_soon, Kind, Switch, CLOSE_WAIT};
use super::wire::{self, Frame};
use super::{Outbound, Shared};

/// The writer's batch buffer keeps at most this much capacity between
/// batches (a burst of large frames may grow it past that for a while).
const IDLE_BATCH: usize = 1024 * 1024;

/// The task that writes our frames to one peer.
pub struct Writer {
    pub shared: Arc<Shared>,
    pub peer: PeerId,
    /// The current stream runs over a relay.
    pub relayed: bool,
}

impl Writer {
    pub async fn run(
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
                        _ = outlet.peer_ended(&mut held) => {
                            debug!(%peer, "the peer closed or reset our stream");
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
