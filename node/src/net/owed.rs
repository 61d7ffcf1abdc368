//! Requests from peers that a local process still owes an answer to.
//!
//! A request from a peer carries the peer's own correlation id, chosen by
//! the peer. It is delivered under a fresh local id instead, so it can
//! never collide with (or overwrite) an answer a process owes locally;
//! this table maps the local id back when the answer leaves.
//!
//! **Invariant:** an entry lives until it is answered or its (clamped)
//! deadline passes; each peer holds at most [`MAX_OWED_PER_PEER`].

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::types::Address;

/// Answers one peer may be owed at once: a mailbox's worth of requests.
pub const MAX_OWED_PER_PEER: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRemote {
    /// The peer's id for its request.
    pub id: u64,
    /// The asking process, on that peer.
    pub rsvp: Address,
    deadline: Instant,
}

#[derive(Default)]
struct Table {
    by_local: HashMap<u64, OwedRemote>,
    per_node: HashMap<std::sync::Arc<str>, usize>,
}

#[derive(Default)]
pub struct Owed {
    inner: Mutex<Table>,
}

impl Owed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember that `local` answers the peer's request `id` from `rsvp`.
    /// False if that peer already holds its share.
    pub fn insert(&self, local: u64, id: u64, rsvp: Address, deadline: Instant) -> bool {
        let mut table = self.lock();
        let count = table.per_node.entry(rsvp.node.clone()).or_default();
        if *count >= MAX_OWED_PER_PEER {
            return false;
        }
        *count += 1;
        table
            .by_local
            .insert(local, OwedRemote { id, rsvp, deadline });
        true
    }

    /// The peer's request answered by local id `local`, if it still waits.
    pub fn take(&self, local: u64) -> Option<OwedRemote> {
        let mut table = self.lock();
        let owed = table.by_local.remove(&local)?;
        forget_one(&mut table.per_node, &owed.rsvp.node);
        Some(owed)
    }

    /// Forget entries past their deadline: those askers have had `timeout`.
    pub fn sweep(&self, now: Instant) {
        let mut table = self.lock();
        let Table { by_local, per_node } = &mut *table;
        by_local.retain(|_, owed| {
            let live = owed.deadline > now;
            if !live {
                forget_one(per_node, &owed.rsvp.node);
            }
            live
        });
    }
}

fn forget_one(per_node: &mut HashMap<std::sync::Arc<str>, usize>, node: &std::sync::Arc<str>) {
    if let Some(count) = per_node.get_mut(node) {
        *count -= 1;
        if *count == 0 {
            per_node.remove(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn maps_back_once_and_caps_each_peer() {
        let owed = Owed::default();
        let far = Instant::now() + Duration::from_secs(60);
        let m: Address = "m.os@a:b:c".parse().unwrap();
        for local in 0..MAX_OWED_PER_PEER as u64 {
            assert!(owed.insert(local, 7, m.clone(), far));
        }
        assert!(!owed.insert(u64::MAX, 7, m.clone(), far));
        let other: Address = "o.os@a:b:c".parse().unwrap();
        assert!(owed.insert(u64::MAX, 9, other, far));
        assert_eq!(owed.take(3).map(|o| o.id), Some(7));
        assert_eq!(owed.take(3), None);
        assert!(owed.insert(3, 8, m, Instant::now()));
        owed.sweep(Instant::now() + Duration::from_millis(1));
        assert_eq!(owed.take(3), None);
    }
}
