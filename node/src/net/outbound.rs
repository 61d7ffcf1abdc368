//! Our message stream to each peer: opening it (once per peer, however
//! many callers ask), making the link to the peer's name live once it is
//! open, and handing the writer a better stream to move to: a direct one
//! when our stream runs over a relay and a direct connection comes up, a
//! lane when the peer offered one.
//!
//! **Invariant:** at most one stream to a peer is open or being opened
//! (`Outbound`), and at most one move is under way for it (`moving`);
//! only a lane the peer accepted is handed to the writer, and any failure
//! leaves messages on the stream they were on.

use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{debug, Instrument};

use super::lane::{self, Pipe};
use super::outlet::Outlet;
use super::stream::{self, Kind};
use super::writer::Writer;
use super::{Controls, OpenStream, Outbound, Shared};

/// Streams handed to a writer at once: one move is under way at a time
/// (`OpenStream::moving`), so one slot always has room.
const SWITCH_QUEUE: usize = 1;

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
                stream::open(&mut control, peer, relayed),
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
            let (switch, switch_rx) = mpsc::channel(SWITCH_QUEUE);
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
                tokio::time::timeout(shared.dial_timeout, stream::open(&mut control, peer, false))
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
