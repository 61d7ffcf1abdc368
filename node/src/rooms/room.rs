//! The data of one room: what the owner's hub keeps (sequence, a bounded
//! tail, local subscribers and subscribing nodes) and what a subscribing
//! hub keeps for a room on another node (its subscribers and their
//! cursors). Plain data, no I/O.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::types::RoomEvent;
use crate::types::ProcessId;

/// Events a room's tail keeps for subscribers that resume.
pub const TAIL_EVENTS: usize = 1024;
/// Bytes (encoded payloads) a room's tail keeps.
pub const TAIL_BYTES: usize = 1024 * 1024;
/// Subscribers of one room: local processes plus subscribers on other
/// nodes.
pub const MAX_SUBSCRIBERS: usize = 4096;
/// Live events of a burst held for one relay to the subscribing nodes; at
/// either bound the publish that reaches it sends them at once.
pub const RELAY_EVENTS: usize = 64;
pub const RELAY_BYTES: usize = 64 * 1024;

/// A room owned by a process of this node.
pub struct Room {
    /// Random per life of the room: a subscriber that rejoins with another
    /// one knows the room restarted and its history is gone.
    pub incarnation: u64,
    /// Sequence number of the next event (the first is 1).
    next: u64,
    tail: VecDeque<(u64, Arc<Value>, usize)>,
    tail_bytes: usize,
    /// Local subscriber processes, with the seq they lagged at, if any.
    pub locals: HashMap<ProcessId, Option<u64>>,
    /// Subscribing nodes and their subscribers.
    pub nodes: HashMap<Arc<str>, HashSet<String>>,
    /// The tail is kept in the state store too (`tails.rs`).
    pub durable: bool,
    /// Of a durable room: the last seq on disk. Replays stop there, since
    /// later events are fanned out only once written.
    pub committed: u64,
    /// Live events not yet relayed to the subscribing nodes (a burst's).
    pub outbox: Outbox,
}

/// A burst's live events, relayed together (`Hub::fan_out`): an event that
/// follows the previous one within `RELAY_GAP`, or while a send of the
/// outbox is set, waits here and leaves with the others in one relay.
#[derive(Default)]
pub struct Outbox {
    /// Events in seq order, with their encoded payload bytes.
    pub events: Vec<(u64, Arc<Value>)>,
    pub bytes: usize,
    /// A task is set to send the outbox.
    pub sending: bool,
    /// When the previous live event went out or was queued.
    pub last: Option<Instant>,
}

impl Default for Room {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self {
            incarnation: std::hash::RandomState::new().hash_one(std::time::Instant::now()),
            next: 0,
            tail: VecDeque::new(),
            tail_bytes: 0,
            locals: HashMap::new(),
            nodes: HashMap::new(),
            durable: false,
            committed: 0,
            outbox: Outbox::default(),
        }
    }
}

impl Room {
    /// [`Room::replay`] for a subscriber that knew `incarnation`: another
    /// one gets `ended` and the new stream from its start.
    pub fn replay_in(&self, after: u64, incarnation: Option<u64>) -> Vec<RoomEvent> {
        if incarnation.is_some_and(|i| i != self.incarnation) {
            let mut out = vec![RoomEvent::Ended];
            out.extend(self.replay(0));
            return out;
        }
        self.replay(after)
    }

    pub fn next(&self) -> u64 {
        self.next.max(1)
    }

    /// A durable room as its node's state store kept it: `incarnation`,
    /// and its tail in seq order.
    pub fn restore(incarnation: u64, events: Vec<(u64, Value)>) -> Self {
        let mut room = Room {
            incarnation,
            durable: true,
            ..Room::default()
        };
        for (seq, payload) in events {
            room.next = seq;
            room.push(payload);
        }
        room.committed = room.next().saturating_sub(1);
        room
    }

    /// The next seq a subscriber gets live: the one after what a replay
    /// holds (a durable room's uncommitted events come live, later).
    pub fn live_next(&self) -> u64 {
        if self.durable {
            self.committed + 1
        } else {
            self.next()
        }
    }

    /// The first seq the tail holds, if any.
    pub fn first(&self) -> Option<u64> {
        self.tail.front().map(|(seq, _, _)| *seq)
    }

    pub fn subscribers(&self) -> usize {
        self.locals.len() + self.nodes.values().map(HashSet::len).sum::<usize>()
    }

    /// Encoded bytes of event `seq`'s payload, if the tail holds it.
    pub fn bytes_of(&self, seq: u64) -> Option<usize> {
        let first = self.first()?;
        let (at, _, bytes) = self
            .tail
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)?;
        (*at == seq).then_some(*bytes)
    }

    /// Append an event; returns its seq.
    pub fn push(&mut self, payload: Value) -> (u64, Arc<Value>) {
        let seq = self.next();
        self.next = seq + 1;
        let bytes = encoded_len(&payload);
        let payload = Arc::new(payload);
        self.tail.push_back((seq, payload.clone(), bytes));
        self.tail_bytes += bytes;
        while self.tail.len() > TAIL_EVENTS || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            if let Some((_, _, b)) = self.tail.pop_front() {
                self.tail_bytes -= b;
            }
        }
        (seq, payload)
    }

    /// What a subscriber that saw up to `after` must get to be live: the
    /// tail's events after it, preceded by a gap if some are gone.
    pub fn replay(&self, after: u64) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        let next = self.live_next();
        let first = self.tail.front().map_or(next, |(seq, _, _)| *seq);
        let mut after = after;
        if after >= next {
            // A cursor from the future: the room's history was lost (its
            // node restarted). Say so, then start over.
            out.push(RoomEvent::Ended);
            after = 0;
        }
        if after + 1 < first && after + 1 < next {
            out.push(RoomEvent::Gap { next: first });
        }
        out.extend(
            self.tail
                .iter()
                .filter(|(seq, _, _)| *seq > after && *seq < next)
                .map(|(seq, payload, _)| RoomEvent::Event {
                    seq: *seq,
                    payload: (**payload).clone(),
                }),
        );
        out
    }
}

/// Bytes of `payload` encoded as JSON, counted without keeping them.
pub fn encoded_len(payload: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, payload);
    count.0
}

/// A room on another node watched for local subscribers.
#[derive(Default)]
pub struct Watch {
    /// Local subscribers: the last seq each has, `None` until its replay
    /// arrived.
    pub subs: HashMap<ProcessId, Option<u64>>,
    /// Subscribers rejoining after `offline`: `online` goes out just
    /// before their replay.
    pub rejoining: HashSet<ProcessId>,
    /// The room's incarnation, from its relays.
    pub incarnation: Option<u64>,
    /// Subscribers that lagged and have not been told yet (their mailbox
    /// was full): `lagged` with this `from` goes out before their replay.
    pub lagging: HashMap<ProcessId, u64>,
    /// Where a lagging subscriber's rejoin resumes (the last seq it has),
    /// kept until its replay got through, so a replay that fills its
    /// mailbox again never starts it over.
    pub resume: HashMap<ProcessId, u64>,
    /// Subscribers with a lag rejoin under way (one task each); `true`
    /// when another lag came meanwhile, so the task rejoins once more
    /// instead of a second task starting.
    pub rejoins: HashMap<ProcessId, bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tail_is_bounded_and_replay_says_gap() {
        let mut room = Room::default();
        for i in 0..(TAIL_EVENTS + 10) {
            room.push(json!(i));
        }
        let replay = room.replay(0);
        assert_eq!(replay[0], RoomEvent::Gap { next: 11 });
        assert_eq!(replay.len(), TAIL_EVENTS + 1);
        let recent = room.replay(TAIL_EVENTS as u64 + 8);
        assert_eq!(
            recent,
            vec![
                RoomEvent::Event {
                    seq: TAIL_EVENTS as u64 + 9,
                    payload: json!(TAIL_EVENTS + 8)
                },
                RoomEvent::Event {
                    seq: TAIL_EVENTS as u64 + 10,
                    payload: json!(TAIL_EVENTS + 9)
                },
            ]
        );
        assert!(room.replay(room.next() - 1).is_empty());
        // The room restarted under the subscriber: ended, then from the start.
        let mut fresh = Room::default();
        fresh.push(json!("again"));
        assert_eq!(
            fresh.replay(500),
            vec![
                RoomEvent::Ended,
                RoomEvent::Event {
                    seq: 1,
                    payload: json!("again")
                },
            ]
        );
        // Rejoining another life of the room, even at a plausible cursor.
        let other = fresh.incarnation.wrapping_add(1);
        assert_eq!(fresh.replay_in(0, Some(other))[0], RoomEvent::Ended);
        assert_eq!(fresh.replay_in(0, Some(fresh.incarnation)).len(), 1);
        let big = "x".repeat(TAIL_BYTES / 2);
        for _ in 0..5 {
            room.push(json!(big));
        }
        assert!(room.replay(0).len() <= 3);
    }
}
