//! Streams to and from one peer. Each node opens one long-lived outbound
//! stream per peer and writes length-prefixed frames to it, starting with
//! its signed `Hello`; the other side reads them. Order on a stream is the
//! order of sending, so order holds between any pair of processes while
//! the connection lives.

use std::sync::Arc;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use super::behaviour::MESSAGES;
use super::links::CONNECT_QUEUE;
use super::wire::{self, Frame, FrameError};
use super::{Outbound, Shared};

/// Bytes gathered from queued frames before one write and flush.
const WRITE_BATCH: usize = 64 * 1024;

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
            let (tx, rx) = mpsc::channel(CONNECT_QUEUE);
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
fn promote(shared: &Shared, peer: PeerId, tx: mpsc::Sender<Frame>) {
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

async fn write_loop(
    shared: Arc<Shared>,
    peer: PeerId,
    mut stream: Stream,
    mut rx: mpsc::Receiver<Frame>,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    wire::encode(&Frame::Hello(shared.our_record()), &mut buf);
    let mut ok = stream.write_all(&buf).await.is_ok() && stream.flush().await.is_ok();
    while ok {
        let Some(first) = rx.recv().await else { break };
        buf.clear();
        wire::encode(&first, &mut buf);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(frame) => wire::encode(&frame, &mut buf),
                Err(_) => break,
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
    let mut buf = Vec::new();
    let name = match wire::read_frame(&mut stream, shared.max_frame, &mut buf).await {
        Ok(Frame::Hello(record)) => match hello(&shared, peer, &record) {
            Ok(()) => record.name,
            Err(why) => {
                warn!(%peer, name = %record.name, "hello refused: {why}");
                return;
            }
        },
        Ok(_) => return warn!(%peer, "stream did not start with hello; closed"),
        Err(e) => return debug!(%peer, "stream ended before hello: {e}"),
    };
    info!(%peer, %name, "peer says hello");
    open_link(&shared, &control, peer);
    loop {
        match wire::read_frame(&mut stream, shared.max_frame, &mut buf).await {
            Ok(frame) => {
                if !on_frame(&shared, &name, frame) {
                    break;
                }
            }
            Err(FrameError::Closed) => break,
            Err(e) => {
                warn!(%peer, %name, "closing the stream from this peer: {e}");
                break;
            }
        }
    }
    let _ = stream.close().await;
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
    shared.book.bind(record).map_err(|e| e.to_string())
}

/// Handle one frame from `name`; false ends the stream.
fn on_frame(shared: &Shared, name: &str, frame: Frame) -> bool {
    let Some(services) = shared.services.upgrade() else {
        return false;
    };
    let kernel = &services.kernel;
    match frame {
        Frame::Deliver(km) => {
            if *km.source.node != *name {
                warn!(%name, source = %km.source, "peer sent a message in another node's name; closed");
                return false;
            }
            let (id, rsvp, request) = (km.id, km.rsvp.clone(), km.is_request());
            if !request {
                shared.links.answered(name, id);
            }
            if let Err(error) = kernel.deliver_from_network(km) {
                match rsvp {
                    Some(rsvp) if request => {
                        let frame = Frame::Failed { id, rsvp, error };
                        if shared.send_frame(name, frame, None).is_err() {
                            debug!(%name, id, "could not return a failure to the peer");
                        }
                    }
                    _ => debug!(%name, id, %error, "undeliverable message from peer"),
                }
            }
        }
        Frame::Failed { id, rsvp, error } => {
            shared.links.answered(name, id);
            if *rsvp.node == *shared.our {
                kernel.fail(&rsvp, id, error);
            }
        }
        Frame::Hello(_) => {
            warn!(%name, "second hello on a stream; closed");
            return false;
        }
    }
    true
}
