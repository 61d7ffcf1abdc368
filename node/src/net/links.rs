//! Outbound links to other nodes, by name: the send path of the network.
//!
//! A link is `Connecting` (frames queue, bounded, in order) until a stream
//! to the peer is open and its name verified, then `Connected` (frames go
//! straight to the stream's writer task). The switch happens under the
//! lock after the queue is drained into the writer, so a sender's frames
//! keep their order across it.
//!
//! **Invariant:** every request sent to a peer that awaits a response is
//! tracked here until answered or past its deadline. When the peer goes
//! away, or cannot be reached, each one fails with `offline` at once. An
//! answer from a peer is accepted only if it takes one of these entries:
//! the id must be awaited from that very peer, for the process that asked.
//!
//! **Invariant:** a link's queue (while connecting) and its writer's
//! channel (once connected) are bounded in frames and in bytes
//! ([`CONNECT_QUEUE`], [`LINK_QUEUE_BYTES`]); past either the sender gets
//! `mailbox-full` at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::Frame;
use crate::types::{Address, SendErrorKind};

/// Frames queued for a peer while its link is being set up, and in its
/// writer's channel once up: one mailbox's worth of requests.
pub const CONNECT_QUEUE: usize = 4096;
/// Bytes queued for one peer (either queue): four maximum-size messages.
/// A single frame is always admitted into an empty queue.
pub const LINK_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// The sending end of a peer writer's channel, bounded in frames and bytes.
#[derive(Clone, Debug)]
pub struct FrameTx {
    tx: mpsc::Sender<Frame>,
    queued: Arc<AtomicUsize>,
}

pub struct FrameRx {
    rx: mpsc::Receiver<Frame>,
    queued: Arc<AtomicUsize>,
}

pub fn frame_channel() -> (FrameTx, FrameRx) {
    let (tx, rx) = mpsc::channel(CONNECT_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        FrameTx {
            tx,
            queued: queued.clone(),
        },
        FrameRx { rx, queued },
    )
}

impl FrameTx {
    // The frame comes back by value, as tokio's own `try_send` gives it.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, frame: Frame) -> Result<(), mpsc::error::TrySendError<Frame>> {
        let weight = frame.weight();
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if before > 0 && before + weight > LINK_QUEUE_BYTES {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(mpsc::error::TrySendError::Full(frame));
        }
        self.tx.try_send(frame).inspect_err(|_| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
        })
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl FrameRx {
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await;
        self.account(frame)
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok();
        self.account(frame)
    }

    fn account(&self, frame: Option<Frame>) -> Option<Frame> {
        if let Some(f) = &frame {
            self.queued.fetch_sub(f.weight(), Ordering::AcqRel);
        }
        frame
    }
}

/// A request sent to a peer and not answered yet.
#[derive(Debug)]
pub struct Awaited {
    pub rsvp: Address,
    pub target: Address,
    deadline: Instant,
}

enum State {
    /// Frames waiting for the connection, and their bytes.
    Connecting(Vec<Frame>, usize),
    Connected {
        peer: PeerId,
        tx: FrameTx,
    },
}

struct Link {
    state: State,
    awaited: HashMap<u64, Awaited>,
}

/// What `send` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the stream writer.
    Written,
    /// Queued while connecting.
    Queued,
    /// Queued, and no connection attempt is under way yet: start one.
    Connect,
}

#[derive(Default)]
pub struct Links {
    inner: Mutex<HashMap<String, Link>>,
}

/// Requests that can no longer be answered, to fail with `offline`.
pub type Orphans = Vec<(u64, Awaited)>;

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `frame` to `node`. `awaited` tracks a request expecting an
    /// answer. A full queue or writer is `mailbox-full`, at once.
    pub fn send(
        &self,
        node: &str,
        frame: Frame,
        awaited: Option<(u64, Address, Address, Instant)>,
    ) -> Result<Sent, SendErrorKind> {
        let mut links = self.lock();
        let link = links.entry(node.to_string()).or_insert_with(|| Link {
            state: State::Connecting(Vec::new(), 0),
            awaited: HashMap::new(),
        });
        let sent = match &mut link.state {
            State::Connected { tx, .. } => match tx.try_send(frame) {
                Ok(()) => Sent::Written,
                Err(mpsc::error::TrySendError::Full(_)) => return Err(SendErrorKind::MailboxFull),
                Err(mpsc::error::TrySendError::Closed(frame)) => {
                    // The writer died; its disconnect is being handled.
                    // Start over with a fresh connection.
                    let weight = frame.weight();
                    link.state = State::Connecting(vec![frame], weight);
                    Sent::Connect
                }
            },
            State::Connecting(queue, bytes) => {
                let weight = frame.weight();
                let over_bytes = !queue.is_empty() && *bytes + weight > LINK_QUEUE_BYTES;
                if queue.len() >= CONNECT_QUEUE || over_bytes {
                    return Err(SendErrorKind::MailboxFull);
                }
                let first = queue.is_empty();
                *bytes += weight;
                queue.push(frame);
                if first {
                    Sent::Connect
                } else {
                    Sent::Queued
                }
            }
        };
        if let Some((id, rsvp, target, deadline)) = awaited {
            link.awaited.insert(
                id,
                Awaited {
                    rsvp,
                    target,
                    deadline,
                },
            );
        }
        Ok(sent)
    }

    /// The link to `node` is up: drain its queue into `tx`, in order.
    pub fn connected(&self, node: &str, peer: PeerId, tx: FrameTx) {
        let mut links = self.lock();
        let link = links.entry(node.to_string()).or_insert_with(|| Link {
            state: State::Connecting(Vec::new(), 0),
            awaited: HashMap::new(),
        });
        if let State::Connecting(queue, _) = &mut link.state {
            for frame in queue.drain(..) {
                // The writer's channel is as large as the connect queue,
                // in frames and in bytes.
                let _ = tx.try_send(frame);
            }
        }
        link.state = State::Connected { peer, tx };
    }

    pub fn is_connected(&self, node: &str) -> bool {
        matches!(
            self.lock().get(node).map(|l| &l.state),
            Some(State::Connected { .. })
        )
    }

    /// `node` could not be reached: drop the link. Returns the requests
    /// awaiting an answer (orphans) and how many queued frames were dropped.
    pub fn unreachable(&self, node: &str) -> (Orphans, usize) {
        let Some(link) = self.lock().remove(node) else {
            return (Vec::new(), 0);
        };
        let lost = match link.state {
            State::Connecting(queue, _) => queue.len(),
            State::Connected { .. } => 0,
        };
        (link.awaited.into_iter().collect(), lost)
    }

    /// Every link over `peer` is gone.
    pub fn disconnected(&self, peer: &PeerId) -> Orphans {
        let mut links = self.lock();
        let nodes: Vec<String> = links
            .iter()
            .filter(|(_, l)| matches!(&l.state, State::Connected { peer: p, .. } if p == peer))
            .map(|(n, _)| n.clone())
            .collect();
        nodes
            .iter()
            .filter_map(|n| links.remove(n))
            .flat_map(|l| l.awaited.into_iter())
            .collect()
    }

    /// `node` answered request `id` of `rsvp`: the request it answers, if
    /// one with that id is awaited from `node` for that very asker (and
    /// only then may the answer be delivered). A mismatch takes nothing.
    pub fn answered(&self, node: &str, id: u64, rsvp: &Address) -> Option<Awaited> {
        let mut links = self.lock();
        let awaited = &mut links.get_mut(node)?.awaited;
        if awaited.get(&id)?.rsvp != *rsvp {
            return None;
        }
        awaited.remove(&id)
    }

    /// Forget awaited requests past their deadline: their askers have
    /// already had `timeout`.
    pub fn sweep(&self, now: Instant) {
        for link in self.lock().values_mut() {
            link.awaited.retain(|_, a| a.deadline > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{KernelMessage, Message, Response};

    fn frame(id: u64) -> Frame {
        let a: Address = "a.os@x:y:z".parse().unwrap();
        Frame::Deliver(KernelMessage {
            id,
            source: a.clone(),
            target: a,
            rsvp: None,
            message: Message::Response(Response {
                body: vec![],
                metadata: None,
            }),
            blob: None,
        })
    }

    #[test]
    fn queue_then_drain_in_order_and_orphans_on_disconnect() {
        let links = Links::default();
        let rsvp: Address = "me.os@p:q:r".parse().unwrap();
        let far = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(
            links.send("b.os", frame(1), Some((1, rsvp.clone(), rsvp.clone(), far))),
            Ok(Sent::Connect)
        );
        assert_eq!(links.send("b.os", frame(2), None), Ok(Sent::Queued));
        let (tx, mut rx) = frame_channel();
        let peer = PeerId::random();
        links.connected("b.os", peer, tx);
        assert_eq!(links.send("b.os", frame(3), None), Ok(Sent::Written));
        for want in 1..=3 {
            match rx.try_recv() {
                Some(Frame::Deliver(km)) => assert_eq!(km.id, want),
                other => panic!("{other:?}"),
            }
        }
        // Only the request awaited from b.os, for its asker, is an answer.
        assert!(links.answered("c.os", 1, &rsvp).is_none());
        assert!(links.answered("b.os", 2, &rsvp).is_none());
        let other: Address = "me.os@p:q:other".parse().unwrap();
        assert!(links.answered("b.os", 1, &other).is_none());
        let orphans = links.disconnected(&peer);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].0, 1);
        assert!(!links.is_connected("b.os"));
    }

    #[test]
    fn queues_are_bounded_in_bytes() {
        let big = |id| {
            let a: Address = "a.os@x:y:z".parse().unwrap();
            Frame::Deliver(KernelMessage {
                id,
                source: a.clone(),
                target: a,
                rsvp: None,
                message: Message::Response(Response {
                    body: vec![0; LINK_QUEUE_BYTES / 2],
                    metadata: None,
                }),
                blob: None,
            })
        };
        let links = Links::default();
        assert_eq!(links.send("b.os", big(1), None), Ok(Sent::Connect));
        assert_eq!(
            links.send("b.os", big(2), None),
            Err(SendErrorKind::MailboxFull)
        );
        let (tx, mut rx) = frame_channel();
        tx.try_send(big(3)).unwrap();
        assert!(tx.try_send(big(4)).is_err());
        assert!(rx.try_recv().is_some());
        tx.try_send(big(5)).unwrap();
    }
}
