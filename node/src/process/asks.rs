//! Per-process bookkeeping of requests in flight, with one timer heap for
//! all of their deadlines.
//!
//! **Invariant:** a pending request costs a map entry and a heap entry, not
//! a task or a timer of its own. The process task sleeps until the earliest
//! deadline only.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tokio::time::Instant;

use crate::kernel::FastMap;
use crate::types::Address;

/// A request this process sent and awaits an answer to.
#[derive(Debug)]
pub struct Pending {
    pub target: Address,
    pub context: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ask,
    Owed,
}

#[derive(Debug, Default)]
pub struct Asks {
    /// id -> request we sent and await.
    pending: FastMap<u64, Pending>,
    /// id -> asker of a request we received and have not answered, and
    /// when that asker stops waiting.
    owed: FastMap<u64, (Address, Instant)>,
    deadlines: BinaryHeap<Reverse<(Instant, u64, Kind)>>,
}

impl Asks {
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn add_pending(&mut self, id: u64, pending: Pending, deadline: Instant) {
        self.pending.insert(id, pending);
        self.push(deadline, id, Kind::Ask);
    }

    pub fn take_pending(&mut self, id: u64) -> Option<Pending> {
        self.pending.remove(&id)
    }

    pub fn add_owed(&mut self, id: u64, rsvp: Address, deadline: Instant) {
        self.owed.insert(id, (rsvp, deadline));
        self.push(deadline, id, Kind::Owed);
    }

    pub fn take_owed(&mut self, id: u64) -> Option<Address> {
        self.owed.remove(&id).map(|(rsvp, _)| rsvp)
    }

    /// When the asker of an answer still owed stops waiting.
    pub fn owed_deadline(&self, id: u64) -> Option<Instant> {
        self.owed.get(&id).map(|(_, deadline)| *deadline)
    }

    /// Every answer still owed, for failing them when the process exits.
    pub fn drain_owed(&mut self) -> Vec<(u64, Address)> {
        self.owed
            .drain()
            .map(|(id, (rsvp, _))| (id, rsvp))
            .collect()
    }

    /// Forget every pending ask (their answers go to a dead incarnation).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
        self.deadlines
            .retain(|Reverse((_, _, kind))| *kind == Kind::Owed);
    }

    /// The earliest deadline still live, dropping stale heap entries.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, kind))) = self.deadlines.peek().copied() {
            if self.is_live(id, kind) {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Remove and return the asks whose deadline has passed. Owed answers
    /// past their deadline are forgotten: the asker stopped waiting.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, Pending)> {
        let mut expired = Vec::new();
        while let Some(Reverse((at, id, kind))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            match kind {
                Kind::Ask => {
                    if let Some(p) = self.pending.remove(&id) {
                        expired.push((id, p));
                    }
                }
                Kind::Owed => {
                    self.owed.remove(&id);
                }
            }
        }
        expired
    }

    fn is_live(&self, id: u64, kind: Kind) -> bool {
        match kind {
            Kind::Ask => self.pending.contains_key(&id),
            Kind::Owed => self.owed.contains_key(&id),
        }
    }

    fn push(&mut self, at: Instant, id: u64, kind: Kind) {
        self.deadlines.push(Reverse((at, id, kind)));
        // Answered entries stay in the heap until their deadline; compact
        // when they dominate so the heap stays proportional to live work.
        let live = self.pending.len() + self.owed.len();
        if self.deadlines.len() > 2 * live + 1024 {
            let (pending, owed) = (&self.pending, &self.owed);
            self.deadlines.retain(|Reverse((_, id, kind))| match kind {
                Kind::Ask => pending.contains_key(id),
                Kind::Owed => owed.contains_key(id),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr() -> Address {
        "n@a:b:c".parse().unwrap()
    }

    #[test]
    fn expires_in_deadline_order_and_skips_answered() {
        let mut asks = Asks::default();
        let t0 = Instant::now();
        for (id, ms) in [(1, 30), (2, 10), (3, 20)] {
            let p = Pending {
                target: addr(),
                context: Some(vec![id as u8]),
            };
            asks.add_pending(id, p, t0 + Duration::from_millis(ms));
        }
        assert!(asks.take_pending(2).is_some());
        assert_eq!(asks.next_deadline(), Some(t0 + Duration::from_millis(20)));
        let expired = asks.expire(t0 + Duration::from_millis(25));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, 3);
        assert_eq!(expired[0].1.context, Some(vec![3]));
        assert_eq!(asks.pending_len(), 1);
    }

    #[test]
    fn heap_stays_proportional_to_live_entries() {
        let mut asks = Asks::default();
        let far = Instant::now() + Duration::from_secs(60);
        for id in 0..100_000 {
            let p = Pending {
                target: addr(),
                context: None,
            };
            asks.add_pending(id, p, far);
            asks.take_pending(id);
        }
        assert!(asks.deadlines.len() <= 1025);
    }
}
