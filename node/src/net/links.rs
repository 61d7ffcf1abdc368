//! Outbound links to other nodes, by name: the send path of the network.
//!
//! A link is `Connecting` (frames queue, bounded, in order) until a stream
//! to the peer is open and its name verified, then `Connected` (frames go
//! to the stream's `Outlet`: written by the routing call while the stream
//! is free, else queued for its writer task). The switch happens under the
//! lock after the queue is drained into the outlet, so a sender's frames
//! keep their order across it. When a stream ends (it broke, its lane was
//! reset, the peer disconnected), the link goes back to `Connecting` with
//! the frames queued behind that stream (never written) at the head of its
//! queue, and connects again: they, and everything sent after, go on the
//! next stream, in order.
//!
//! **Invariant:** every request sent to a peer that awaits a response is
//! tracked here until answered or past its deadline, with the outlet its
//! frame went to. When that outlet's stream ends, each request it took
//! fails with `offline` at once (its frame or its answer may be lost);
//! one still queued waits for the next stream. When the peer cannot be
//! reached, each one fails with `offline` at once. An
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
    /// The serial of the outlet its frame went to (0 while it waits in a
    /// connecting link's queue): it fails when that outlet's stream ends.
    via: u64,
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
    /// Streams in a row that ended with frames queued and none delivered
    /// (see [`Links::redials`]).
    redials: u32,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            state: State::Connecting(Vec::new(), 0),
            awaited: HashMap::new(),
            redials: 0,
        }
    }
}

impl Link {
    /// The requests among `frames` now go by outlet `via` (0: queued).
    fn retag(&mut self, frames: &[Frame], via: u64) {
        if self.awaited.is_empty() {
            return;
        }
        for frame in frames {
            if let Frame::Deliver(km) = frame {
                if !km.is_request() {
                    continue;
                }
                if let Some(awaited) = self.awaited.get_mut(&km.id) {
                    awaited.via = via;
                }
            }
        }
    }

    /// Take the requests whose frames went to outlet `via`.
    fn orphans_of(&mut self, via: u64, orphans: &mut Orphans) {
        self.take_where(|a| a.via == via, orphans);
    }

    /// Take the awaited requests `pick` chooses.
    fn take_where(&mut self, pick: impl Fn(&Awaited) -> bool, orphans: &mut Orphans) {
        let gone: Vec<u64> = self
            .awaited
            .iter()
            .filter(|(_, a)| pick(a))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(awaited) = self.awaited.remove(&id) {
                orphans.push((id, awaited));
            }
        }
    }

    /// Leave the broken outlet `old`: the frames queued behind its stream
    /// (never written) and then `more` wait for the next stream, in order.
    /// Empty, the link is done with (false).
    /// A stream that delivered nothing counts toward the redial back-off;
    /// one that did starts it over.
    fn carry(&mut self, old: &Outlet, more: Option<Frame>) -> bool {
        self.redials = if old.delivered() {
            0
        } else {
            self.redials.saturating_add(1)
        };
        let mut queue = old.carry();
        queue.extend(more);
        self.retag(&queue, 0);
        let bytes = queue.iter().map(Frame::weight).sum();
        let any = !queue.is_empty();
        self.state = State::Connecting(queue, bytes);
        any
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
            let via = match &link.state {
                State::Connected { outlet, .. } => outlet.serial(),
                State::Connecting(..) => 0,
            };
            if let Some((id, rsvp, target, deadline)) = awaited {
                let entry = Awaited {
                    rsvp,
                    target,
                    deadline,
                    via,
                };
                link.awaited.insert(id, entry);
            }
            match &mut link.state {
                State::Connected { outlet, .. } => outlet.clone(),
                State::Connecting(..) => return Self::queue(link, frame, id),
            }
        };
        match outlet.send(frame) {
            Ok(()) => Ok(Sent::Written),
            Err((Refused::Full, _)) => {
                if let Some(id) = id {
                    if let Some(link) = self.lock().get_mut(node) {
                        link.awaited.remove(&id);
                    }
                }
                Err(SendErrorKind::MailboxFull)
            }
            Err((Refused::Closed, frame)) => self.after_close(node, frame, id, &outlet),
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

    /// `outlet`'s stream ended under our send: start over with a fresh
    /// connection, carrying what was queued behind the dead stream and
    /// then this frame (or join the connection already starting, or the
    /// new stream). If the request was already failed as an orphan of that
    /// stream, its asker has its answer (`offline`) and the frame is
    /// dropped.
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
                link.carry(closed, Some(frame));
                Ok(Sent::Connect)
            }
            State::Connected { outlet, .. } => {
                // A new stream is up already; the lock keeps its order.
                let outlet = outlet.clone();
                if let Some(awaited) = id.and_then(|id| link.awaited.get_mut(&id)) {
                    awaited.via = outlet.serial();
                }
                match outlet.send(frame) {
                    Ok(()) => Ok(Sent::Written),
                    Err((why, _)) => {
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
            State::Connecting(..) => {
                if let Some(awaited) = id.and_then(|id| link.awaited.get_mut(&id)) {
                    awaited.via = 0;
                }
                Self::queue(link, frame, id)
            }
        }
    }

    /// The link to `node` is up on `outlet`: hand it the link's queue (or
    /// what was queued behind the link's previous, ended stream), in order
    /// and ahead of every later frame. False if `outlet`'s writer already
    /// ended: the link stays connecting, and must be connected again.
    pub fn connected(&self, node: &str, peer: PeerId, outlet: Arc<Outlet>) -> bool {
        let mut links = self.lock();
        let link = links.entry(node.to_string()).or_default();
        if let State::Connected { outlet: o, .. } = &link.state {
            if Arc::ptr_eq(o, &outlet) {
                return true;
            }
        }
        // Checked under the table's lock: a writer that ends after this
        // finds the link on its outlet and carries the queue on.
        if outlet.is_closed() {
            link.redials = link.redials.saturating_add(1);
            return false;
        }
        let new = State::Connected {
            peer,
            outlet: outlet.clone(),
        };
        let queue = match std::mem::replace(&mut link.state, new) {
            State::Connecting(queue, _) => queue,
            // A link moves to a new stream only once the old one ended;
            // what it still queued goes first.
            State::Connected { outlet: old, .. } => old.carry(),
        };
        link.retag(&queue, outlet.serial());
        outlet.enqueue(queue);
        true
    }

    /// Streams to `node` in a row that ended with frames still queued for
    /// it and no write delivered: the caller waits longer before each
    /// redial (a peer that resets our stream before reading would
    /// otherwise make us reopen one every round trip).
    pub fn redials(&self, node: &str) -> u32 {
        self.lock().get(node).map_or(0, |l| l.redials)
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

    /// Every connection to `peer` is gone: the streams of links over it
    /// end. Requests sent on them fail; frames queued behind them wait for
    /// a new connection (the names returned: connect them again).
    pub fn disconnected(&self, peer: &PeerId) -> (Orphans, Vec<String>) {
        let mut links = self.lock();
        let mut orphans = Vec::new();
        let mut again = Vec::new();
        let mut done = Vec::new();
        for (name, link) in links.iter_mut() {
            let State::Connected { peer: p, outlet } = &link.state else {
                continue;
            };
            if p != peer {
                continue;
            }
            let outlet = outlet.clone();
            let any = link.carry(&outlet, None);
            link.orphans_of(outlet.serial(), &mut orphans);
            if any {
                again.push(name.clone());
            } else {
                done.push(name.clone());
            }
        }
        for name in done {
            if let Some(link) = links.remove(&name) {
                orphans.extend(link.awaited);
            }
        }
        (orphans, again)
    }

    /// Every request sent to `node` and awaiting its answer, taken (the
    /// link stays): their answers may have been lost. Requests still
    /// queued (never written) stay: they go on the next stream, and the
    /// peer has not run them.
    pub fn take_awaited(&self, node: &str) -> Orphans {
        let mut orphans = Vec::new();
        if let Some(link) = self.lock().get_mut(node) {
            link.take_where(|a| a.via != 0, &mut orphans);
        }
        orphans
    }

    /// The writer of `outlet` ended: requests sent on its stream fail
    /// (they or their answers may be lost), wherever their link is now. A
    /// link still on it carries what was queued behind it to a new
    /// stream (true: connect `name` again), or is gone if nothing was.
    pub fn writer_ended(&self, outlet: &Arc<Outlet>, name: Option<&str>) -> (Orphans, bool) {
        let mut links = self.lock();
        // First what never left (its requests stay awaited), then the
        // rest of what went to the stream fails.
        let mut carried = None;
        if let Some((name, link)) = name.and_then(|n| links.get_mut(n).map(|l| (n, l))) {
            if matches!(&link.state, State::Connected { outlet: o, .. } if Arc::ptr_eq(o, outlet)) {
                carried = Some((name, link.carry(outlet, None)));
            }
        }
        let mut orphans = Vec::new();
        for link in links.values_mut() {
            link.orphans_of(outlet.serial(), &mut orphans);
        }
        match carried {
            Some((_, true)) => (orphans, true),
            Some((name, false)) => {
                if let Some(link) = links.remove(name) {
                    orphans.extend(link.awaited);
                }
                (orphans, false)
            }
            None => (orphans, false),
        }
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
    use crate::net::outlet::tests::{answer, deliver, step};
    use crate::net::outlet::Work;
    use crate::types::{Message, Request};

    /// A request (the message kind does not matter to links).
    fn frame(id: u64) -> Frame {
        deliver(
            id,
            Message::Request(Request {
                inherit: false,
                expects_response: None,
                body: vec![],
                metadata: None,
            }),
        )
    }

    #[test]
    fn queues_drain_in_order_and_a_broken_stream_carries_what_it_never_wrote() {
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
        assert!(links.connected("b.os", peer, outlet.clone()));
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
        // The writer takes those three (they are on the wire now); request
        // 4 and message 5 queue behind them.
        assert!(matches!(step(&outlet, false), Work::Write));
        let ask = |id| Some((id, rsvp.clone(), rsvp.clone(), far));
        assert_eq!(links.send("b.os", frame(4), ask(4)), Ok(Sent::Written));
        assert_eq!(links.send("b.os", frame(5), None), Ok(Sent::Written));
        // The peer disconnects: the request on the wire fails; the frames
        // queued behind it wait for the next connection, ahead of later
        // ones, and the dead stream takes nothing more.
        let (orphans, again) = links.disconnected(&peer);
        assert_eq!(orphans.iter().map(|o| o.0).collect::<Vec<_>>(), [1]);
        assert_eq!(again, ["b.os"]);
        assert!(!links.is_connected("b.os"));
        assert_eq!(outlet.send(frame(9)).map_err(|e| e.0), Err(Refused::Closed));
        assert_eq!(links.send("b.os", frame(6), None), Ok(Sent::Queued));
        // The lane from b.os breaks now: request 4, queued and never
        // written, is not failed (b.os has not run it).
        assert!(links.take_awaited("b.os").is_empty());
        let next = Arc::new(Outlet::default());
        assert!(links.connected("b.os", peer, next.clone()));
        assert_eq!(ids(&next.queued()), [4, 5, 6]);
        // That writer ends before writing: request 4 is carried again, not
        // failed (it never left).
        drop(next.close());
        let (orphans, again) = links.writer_ended(&next, Some("b.os"));
        assert!(orphans.is_empty() && again);
        // A stream whose writer already ended does not take the link.
        assert!(!links.connected("b.os", peer, next.clone()));
        let third = Arc::new(Outlet::default());
        assert!(links.connected("b.os", peer, third.clone()));
        assert_eq!(ids(&third.queued()), [4, 5, 6]);
        // This one writes them, then ends: request 4 fails now, and the
        // link, with nothing left to carry, is gone.
        assert!(matches!(step(&third, false), Work::Write));
        drop(third.close());
        let (orphans, again) = links.writer_ended(&third, Some("b.os"));
        assert_eq!(orphans.iter().map(|o| o.0).collect::<Vec<_>>(), [4]);
        assert!(!again);
        assert_eq!(links.send("b.os", frame(7), None), Ok(Sent::Connect));
    }

    #[test]
    fn streams_that_end_undelivered_count_toward_the_redial_back_off() {
        let links = Links::default();
        let peer = PeerId::random();
        assert_eq!(links.send("b.os", frame(1), None), Ok(Sent::Connect));
        // Each stream ends before writing the queue: it counts.
        for want in 1..=3 {
            let outlet = Arc::new(Outlet::default());
            assert!(links.connected("b.os", peer, outlet.clone()));
            drop(outlet.close());
            let (_, again) = links.writer_ended(&outlet, Some("b.os"));
            assert!(again);
            assert_eq!(links.redials("b.os"), want);
        }
        // A stream whose writer ended before the link took it counts too.
        let early = Arc::new(Outlet::default());
        drop(early.close());
        assert!(!links.connected("b.os", peer, early));
        assert_eq!(links.redials("b.os"), 4);
        // One that wrote a batch (and flushed) starts the count over.
        let good = Arc::new(Outlet::default());
        assert!(links.connected("b.os", peer, good.clone()));
        assert!(matches!(step(&good, false), Work::Write));
        assert!(matches!(step(&good, true), Work::Idle));
        assert_eq!(links.send("b.os", frame(2), None), Ok(Sent::Written));
        drop(good.close());
        let (_, again) = links.writer_ended(&good, Some("b.os"));
        assert!(again);
        assert_eq!(links.redials("b.os"), 0);
    }

    fn ids(frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Deliver(km) => km.id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn queues_are_bounded_in_bytes() {
        let big = |id| answer(id, LINK_QUEUE_BYTES / 2);
        let links = Links::default();
        assert_eq!(links.send("b.os", big(1), None), Ok(Sent::Connect));
        assert_eq!(
            links.send("b.os", big(2), None),
            Err(SendErrorKind::MailboxFull)
        );
        let outlet = Outlet::default();
        let refused = |sent: Result<(), (Refused, Frame)>| sent.map_err(|e| e.0);
        outlet.send(big(3)).unwrap();
        assert_eq!(refused(outlet.send(big(4))), Err(Refused::Full));
        // The writer takes the queue whole; the answer in it is kept
        // until a flush completes, and carried if the stream breaks.
        assert!(matches!(step(&outlet, false), Work::Write));
        assert_eq!(outlet.carry().len(), 1);
        let outlet = Outlet::default();
        outlet.send(big(5)).unwrap();
        outlet.close();
        assert_eq!(refused(outlet.send(big(6))), Err(Refused::Closed));
    }
}
