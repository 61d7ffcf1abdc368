//! Outbound links to other nodes, by name: the send path of the network.
//!
//! A link is `Connecting` (frames queue, bounded, in order) until a stream
//! to the peer is open and its name verified, then `Connected` (frames go
//! to the stream's `Outlet`: written by the routing call while the stream
//! is free, else queued for its writer task). The switch happens under the
//! lock after the queue is drained into the outlet, so a sender's frames
//! keep their order across it.
//!
//! **Invariant:** every request sent to a peer that awaits a response is
//! tracked here until answered or past its deadline. When the peer goes
//! away, or cannot be reached, each one fails with `offline` at once. An
//! answer from a peer is accepted only if it takes one of these entries:
//! the id must be awaited from that very peer, for the process that asked.
//!
//! **Invariant:** a link's queue (while connecting) and its outlet's
//! queue (once connected) are bounded in frames and in bytes
//! ([`CONNECT_QUEUE`], [`LINK_QUEUE_BYTES`]); past either the sender gets
//! `mailbox-full` at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::time::Instant;

use super::outlet::{Outlet, Refused, CONNECT_QUEUE, LINK_QUEUE_BYTES};
use super::wire::Frame;
use crate::kernel::FastMap;
use crate::types::{Address, SendErrorKind};

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
        outlet: Arc<Outlet>,
    },
}

struct Link {
    state: State,
    awaited: HashMap<u64, Awaited>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            state: State::Connecting(Vec::new(), 0),
            awaited: HashMap::new(),
        }
    }
}

/// What `send` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Written to the stream, or queued for its writer.
    Written,
    /// Queued while connecting.
    Queued,
    /// Queued, and no connection attempt is under way yet: start one.
    Connect,
}

#[derive(Default)]
pub struct Links {
    inner: Mutex<FastMap<String, Link>>,
}

/// Requests that can no longer be answered, to fail with `offline`.
pub type Orphans = Vec<(u64, Awaited)>;

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<String, Link>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `frame` to `node`. `awaited` tracks a request expecting an
    /// answer. A full queue or writer is `mailbox-full`, at once.
    ///
    /// The table's lock is not held while the outlet writes (a socket
    /// write, for a free stream): the peer's reader takes it for every
    /// answer. The request is awaited before its frame leaves, so an
    /// answer can never come back before its entry.
    pub fn send(
        &self,
        node: &str,
        frame: Frame,
        awaited: Option<(u64, Address, Address, Instant)>,
    ) -> Result<Sent, SendErrorKind> {
        let id = awaited.as_ref().map(|a| a.0);
        let outlet = {
            let mut links = self.lock();
            let link = Self::link(&mut links, node);
            if let Some((id, rsvp, target, deadline)) = awaited {
                let entry = Awaited {
                    rsvp,
                    target,
                    deadline,
                };
                link.awaited.insert(id, entry);
            }
            match &mut link.state {
                State::Connected { outlet, .. } => outlet.clone(),
                State::Connecting(..) => return Self::queue(link, frame, id),
            }
        };
        match outlet.send(&frame) {
            Ok(()) => Ok(Sent::Written),
            Err(Refused::Full) => {
                if let Some(id) = id {
                    if let Some(link) = self.lock().get_mut(node) {
                        link.awaited.remove(&id);
                    }
                }
                Err(SendErrorKind::MailboxFull)
            }
            Err(Refused::Closed) => self.after_close(node, frame, id, &outlet),
        }
    }

    /// The link to `node`, made (connecting) if there is none. Looked up
    /// by `&str` first: no name allocated per message.
    fn link<'a>(links: &'a mut FastMap<String, Link>, node: &str) -> &'a mut Link {
        if !links.contains_key(node) {
            links.insert(node.to_string(), Link::default());
        }
        links.get_mut(node).expect("inserted above")
    }

    /// Queue `frame` on a connecting link; a full queue forgets the
    /// request awaited with it.
    fn queue(link: &mut Link, frame: Frame, id: Option<u64>) -> Result<Sent, SendErrorKind> {
        let State::Connecting(queue, bytes) = &mut link.state else {
            return Err(SendErrorKind::Offline);
        };
        let weight = frame.weight();
        let over_bytes = !queue.is_empty() && *bytes + weight > LINK_QUEUE_BYTES;
        if queue.len() >= CONNECT_QUEUE || over_bytes {
            if let Some(id) = id {
                link.awaited.remove(&id);
            }
            return Err(SendErrorKind::MailboxFull);
        }
        let first = queue.is_empty();
        *bytes += weight;
        queue.push(frame);
        Ok(if first { Sent::Connect } else { Sent::Queued })
    }

    /// `outlet`'s writer ended under our send: start over with a fresh
    /// connection (or join the one already starting, or the new stream).
    /// If the request was already failed as an orphan of that stream, its
    /// asker has its answer (`offline`) and the frame is dropped.
    fn after_close(
        &self,
        node: &str,
        frame: Frame,
        id: Option<u64>,
        closed: &Arc<Outlet>,
    ) -> Result<Sent, SendErrorKind> {
        let mut links = self.lock();
        let link = Self::link(&mut links, node);
        if id.is_some_and(|id| !link.awaited.contains_key(&id)) {
            return Ok(Sent::Written);
        }
        match &link.state {
            State::Connected { outlet, .. } if Arc::ptr_eq(outlet, closed) => {
                let weight = frame.weight();
                link.state = State::Connecting(vec![frame], weight);
                Ok(Sent::Connect)
            }
            State::Connected { outlet, .. } => {
                // A new stream is up already; the lock keeps its order.
                match outlet.send(&frame) {
                    Ok(()) => Ok(Sent::Written),
                    Err(why) => {
                        if let Some(id) = id {
                            link.awaited.remove(&id);
                        }
                        Err(match why {
                            Refused::Full => SendErrorKind::MailboxFull,
                            Refused::Closed => SendErrorKind::Offline,
                        })
                    }
                }
            }
            State::Connecting(..) => Self::queue(link, frame, id),
        }
    }

    /// The link to `node` is up: drain its queue into `outlet`, in order.
    pub fn connected(&self, node: &str, peer: PeerId, outlet: Arc<Outlet>) {
        let mut links = self.lock();
        let link = links.entry(node.to_string()).or_default();
        if let State::Connecting(queue, _) = &mut link.state {
            for frame in queue.drain(..) {
                // The outlet's queue is as large as the connect queue, in
                // frames and in bytes.
                let _ = outlet.send(&frame);
            }
        }
        link.state = State::Connected { peer, outlet };
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

    /// Every request awaiting an answer from `node`, taken (the link
    /// stays): their answers may have been lost.
    pub fn take_awaited(&self, node: &str) -> Orphans {
        match self.lock().get_mut(node) {
            Some(link) => link.awaited.drain().collect(),
            None => Vec::new(),
        }
    }

    /// The writer of `outlet` (our stream to `peer`, named `name`) ended:
    /// the links it carried are gone (a link already on a newer stream
    /// stays). A link to `name` that is connecting again keeps only the
    /// requests whose frames it still holds: the others went through the
    /// ended stream, where they or their answers may be lost.
    pub fn writer_ended(&self, peer: &PeerId, outlet: &Arc<Outlet>, name: Option<&str>) -> Orphans {
        let mut links = self.lock();
        let mut orphans = Vec::new();
        if let Some(link) = name.and_then(|n| links.get_mut(n)) {
            if let State::Connecting(queue, _) = &link.state {
                let held: std::collections::HashSet<u64> = queue
                    .iter()
                    .filter_map(|f| match f {
                        Frame::Deliver(km) => Some(km.id),
                        _ => None,
                    })
                    .collect();
                let lost: Vec<u64> = link
                    .awaited
                    .keys()
                    .filter(|id| !held.contains(id))
                    .copied()
                    .collect();
                for id in lost {
                    if let Some(awaited) = link.awaited.remove(&id) {
                        orphans.push((id, awaited));
                    }
                }
            }
        }
        let nodes: Vec<String> = links
            .iter()
            .filter(|(_, l)| {
                matches!(&l.state, State::Connected { peer: p, outlet: o } if p == peer && Arc::ptr_eq(o, outlet))
            })
            .map(|(n, _)| n.clone())
            .collect();
        orphans.extend(
            nodes
                .iter()
                .filter_map(|n| links.remove(n))
                .flat_map(|l| l.awaited.into_iter()),
        );
        orphans
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
    use crate::net::outlet::Work;
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
        // No stream parked in the outlet (its writer holds it): queued.
        let outlet = Arc::new(Outlet::default());
        let peer = PeerId::random();
        links.connected("b.os", peer, outlet.clone());
        assert_eq!(links.send("b.os", frame(3), None), Ok(Sent::Written));
        let queued = outlet.queued();
        assert_eq!(queued.len(), 3);
        for (want, frame) in (1..=3).zip(queued) {
            match frame {
                Frame::Deliver(km) => assert_eq!(km.id, want),
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
        let outlet = Outlet::default();
        outlet.send(&big(3)).unwrap();
        assert_eq!(outlet.send(&big(4)), Err(Refused::Full));
        // The writer takes the queue whole; then one more fits again.
        let (mut held, mut batch) = (None, Vec::new());
        assert!(matches!(
            outlet.next(&mut held, &mut batch, true),
            Work::Write
        ));
        outlet.send(&big(5)).unwrap();
        outlet.close();
        assert_eq!(outlet.send(&big(6)), Err(Refused::Closed));
    }
}
