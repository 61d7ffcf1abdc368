//! The watch registry of `/hearth/ws`, plain data: which connection
//! watches which room, each connection's cursor, the hub subscription
//! wanted per (owner, room), and the frames each change makes.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;

use super::protocol::{encode, PageEvent};
use crate::rooms::{RoomEvent, RoomsError};
use crate::types::Address;

/// Rooms one connection may watch at once: a page shows a handful; 64
/// bounds what one tab can make the node subscribe to.
pub const MAX_WATCHES_PER_CONNECTION: usize = 64;
/// (owner, room)
pub(super) type Key = (Address, String);

/// One connection's watch of a room.
#[derive(Debug)]
pub(super) struct Watcher {
    /// The last seq sent to it; `None` until it has one (a watch of a room
    /// nobody here watched yet, without `from`).
    pub(super) cursor: Option<u64>,
    /// The `from` it asked for.
    pub(super) wants: Option<u64>,
    /// Sent `joined`.
    pub(super) joined: bool,
}

/// A room watched by connections of this node.
#[derive(Debug, Default)]
pub(super) struct Watched {
    pub(super) watchers: HashMap<u64, Watcher>,
    /// The highest seq the subscription has delivered (or the seq before
    /// the next live one, once joined).
    pub(super) last: Option<u64>,
    pub(super) snapshot: Value,
    /// The hub subscription is live.
    pub(super) joined: bool,
    /// A `Subscribe` is in flight, with this `from`.
    pub(super) asking: Option<Option<u64>>,
}

/// A hub request the driver of a room makes next.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    Subscribe(Option<u64>),
    Unsubscribe,
}

/// The watches of every connection; plain data. Frames for connections
/// are collected in `out` as (connection, text) in the order they must be
/// sent.
#[derive(Default)]
pub(super) struct Table {
    pub(super) rooms: HashMap<Key, Watched>,
    pub(super) by_conn: HashMap<u64, HashSet<Key>>,
    /// Rooms the hub may hold a subscription of ours for.
    pub(super) at_hub: HashSet<Key>,
    /// Rooms whose driver task is running.
    pub(super) driving: HashSet<Key>,
    pub(super) out: Vec<(u64, Utf8Bytes)>,
}

impl Table {
    pub(super) fn send(&mut self, conn: u64, event: &PageEvent<'_>) {
        self.out.push((conn, encode(event)));
    }

    pub(super) fn refuse(&mut self, conn: u64, key: &Key, error: &RoomsError) {
        let address = key.0.to_string();
        self.send(
            conn,
            &PageEvent::Refused {
                address: &address,
                room: &key.1,
                error,
            },
        );
    }

    /// `conn` watches `key` from `from` (again, if it already did).
    pub(super) fn watch(&mut self, conn: u64, key: Key, from: Option<u64>) {
        let mine = self.by_conn.entry(conn).or_default();
        if !mine.contains(&key) && mine.len() >= MAX_WATCHES_PER_CONNECTION {
            let error = RoomsError::Limit(format!(
                "{MAX_WATCHES_PER_CONNECTION} watches per connection"
            ));
            return self.refuse(conn, &key, &error);
        }
        mine.insert(key.clone());
        let room = self.rooms.entry(key.clone()).or_default();
        let cursor = from.or(room.last);
        room.watchers.insert(
            conn,
            Watcher {
                cursor,
                wants: from,
                joined: false,
            },
        );
        self.join_satisfied(&key);
    }

    /// Send `joined` to the waiting watchers of a live subscription that
    /// need no replay.
    pub(super) fn join_satisfied(&mut self, key: &Key) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let Some(last) = room.last.filter(|_| room.joined) else {
            return;
        };
        let address = key.0.to_string();
        let mut out = Vec::new();
        for (conn, w) in room.watchers.iter_mut().filter(|(_, w)| !w.joined) {
            if w.wants.is_none_or(|f| f >= last) {
                w.joined = true;
                out.push((
                    *conn,
                    encode(&PageEvent::Joined {
                        address: &address,
                        room: &key.1,
                        next: last + 1,
                        snapshot: &room.snapshot,
                    }),
                ));
            }
        }
        self.out.extend(out);
    }

    pub(super) fn unwatch(&mut self, conn: u64, key: &Key) {
        if let Some(mine) = self.by_conn.get_mut(&conn) {
            mine.remove(key);
        }
        if let Some(room) = self.rooms.get_mut(key) {
            room.watchers.remove(&conn);
            if room.watchers.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// `conn` is gone; the rooms it watched, to drive.
    pub(super) fn close(&mut self, conn: u64) -> Vec<Key> {
        let keys: Vec<Key> = self
            .by_conn
            .remove(&conn)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for key in &keys {
            if let Some(room) = self.rooms.get_mut(key) {
                room.watchers.remove(&conn);
                if room.watchers.is_empty() {
                    self.rooms.remove(key);
                }
            }
        }
        keys
    }

    /// What the hub must be asked next for `key`, from what is wanted;
    /// `None` ends the room's driver (and marks it stopped).
    pub(super) fn next_step(&mut self, key: &Key) -> Option<Step> {
        let step = match self.rooms.get_mut(key) {
            Some(room) if room.asking.is_none() => {
                let waiting: Vec<Option<u64>> = room
                    .watchers
                    .values()
                    .filter(|w| !w.joined)
                    .map(|w| w.wants)
                    .collect();
                let resume = waiting.iter().flatten().min().copied();
                if waiting.is_empty() {
                    None
                } else if room.joined {
                    // Live already: only an older cursor needs a replay;
                    // from no later than what was delivered, so nobody
                    // misses what is in flight.
                    room.last
                        .and_then(|last| resume.filter(|f| *f < last))
                        .map(|f| Step::Subscribe(Some(f)))
                } else {
                    Some(Step::Subscribe(resume))
                }
            }
            Some(_) => None,
            None if self.at_hub.remove(key) => Some(Step::Unsubscribe),
            None => None,
        };
        match (&step, self.rooms.get_mut(key)) {
            (Some(Step::Subscribe(from)), Some(room)) => {
                room.asking = Some(*from);
                self.at_hub.insert(key.clone());
            }
            (None, _) => {
                self.driving.remove(key);
            }
            _ => {}
        }
        step
    }

    /// The hub answered a `Subscribe` of `key`.
    pub(super) fn answered(&mut self, key: &Key, result: Result<(u64, Value), RoomsError>) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let asked = room.asking.take().flatten();
        let was_live = room.joined;
        match result {
            Ok((next, snapshot)) => {
                let before = next.saturating_sub(1);
                room.joined = true;
                room.snapshot = snapshot;
                room.last = Some(room.last.map_or(before, |l| l.max(before)));
                // Watchers that a subscription from `asked` serves.
                let address = key.0.to_string();
                let mut out = Vec::new();
                for (conn, w) in room.watchers.iter_mut().filter(|(_, w)| !w.joined) {
                    let served = match (asked, w.wants) {
                        (_, None) => true,
                        (None, Some(f)) => f >= before,
                        (Some(a), Some(f)) => f >= a,
                    };
                    if served {
                        w.joined = true;
                        w.cursor = w.cursor.or(Some(before));
                        out.push((
                            *conn,
                            encode(&PageEvent::Joined {
                                address: &address,
                                room: &key.1,
                                next,
                                snapshot: &room.snapshot,
                            }),
                        ));
                    }
                }
                self.out.extend(out);
            }
            Err(error) => {
                let refused: Vec<u64> = room
                    .watchers
                    .iter()
                    .filter(|(_, w)| !w.joined)
                    .map(|(c, _)| *c)
                    .collect();
                // A failed resubscription may have ended the live one at
                // the hub: the others subscribe again from their cursor.
                room.joined = false;
                for w in room.watchers.values_mut() {
                    w.wants = w.cursor;
                    w.joined = false;
                }
                if !was_live {
                    self.at_hub.remove(key);
                }
                for conn in refused {
                    self.refuse(conn, key, &error);
                    self.unwatch(conn, key);
                }
            }
        }
    }

    /// An entry of `key`'s stream from the hub.
    pub(super) fn deliver(&mut self, key: &Key, event: &RoomEvent) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let address = key.0.to_string();
        let text = encode(&PageEvent::Room {
            address: &address,
            room: &key.1,
            event,
        });
        let mut out = Vec::new();
        match event {
            RoomEvent::Event { seq, .. } => {
                room.last = Some(room.last.map_or(*seq, |l| l.max(*seq)));
                for (conn, w) in room.watchers.iter_mut() {
                    // One still waiting for its replay takes only the
                    // event after its cursor: a later one is live traffic
                    // that its replay brings again, in order.
                    let takes = match w.cursor {
                        None => true,
                        Some(c) if w.joined => *seq > c,
                        Some(c) => *seq == c + 1,
                    };
                    if takes {
                        w.cursor = Some(*seq);
                        out.push((*conn, text.clone()));
                    }
                }
            }
            // Only those it is news to: the others already have what
            // follows the gap's start.
            RoomEvent::Gap { next } => {
                let before = next.saturating_sub(1);
                room.last = Some(room.last.map_or(before, |l| l.max(before)));
                for (conn, w) in room.watchers.iter_mut() {
                    if w.cursor.is_none_or(|c| c < before) {
                        w.cursor = Some(before);
                        out.push((*conn, text.clone()));
                    }
                }
            }
            RoomEvent::Lagged { .. } | RoomEvent::Offline | RoomEvent::Online => {
                out.extend(room.watchers.keys().map(|c| (*c, text.clone())));
            }
            RoomEvent::Ended => {
                out.extend(room.watchers.keys().map(|c| (*c, text.clone())));
                let conns: Vec<u64> = room.watchers.keys().copied().collect();
                for conn in conns {
                    self.unwatch(conn, key);
                }
            }
        }
        self.out.extend(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(room: &str) -> Key {
        ("alice.os@owner:probe:test".parse().unwrap(), room.into())
    }

    fn event(seq: u64) -> RoomEvent {
        RoomEvent::Event {
            seq,
            payload: json!(seq),
        }
    }

    /// What each connection was sent since the last call, in order: a
    /// seq, a status, `gap`, `joined` or `refused`.
    fn sent(t: &mut Table) -> HashMap<u64, Vec<String>> {
        let mut by_conn: HashMap<u64, Vec<String>> = HashMap::new();
        for (c, text) in t.out.drain(..) {
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            let what = if let Some(seq) = v["room"]["event"]["event"]["seq"].as_u64() {
                seq.to_string()
            } else if let Some(s) = v["room"]["event"].as_str() {
                s.to_string()
            } else if v["room"]["event"]["gap"].is_object() {
                "gap".into()
            } else {
                v.as_object().unwrap().keys().next().unwrap().clone()
            };
            by_conn.entry(c).or_default().push(what);
        }
        by_conn
    }

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_subscription_cursors_per_connection_and_replays_deduplicated() {
        let mut t = Table::default();
        let k = key("lobby");
        t.watch(1, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        assert_eq!(t.next_step(&k), None, "one request at a time");
        t.answered(&k, Ok((1, json!(null))));
        assert_eq!(sent(&mut t)[&1], strs(&["joined"]));
        for seq in 1..=5 {
            t.deliver(&k, &event(seq));
        }
        assert_eq!(sent(&mut t)[&1], strs(&["1", "2", "3", "4", "5"]));
        // A newcomer without `from` is live at once, no new subscription.
        t.watch(2, k.clone(), None);
        assert_eq!(sent(&mut t)[&2], strs(&["joined"]));
        assert_eq!(t.next_step(&k), None);
        // One resuming from 2 makes the server subscribe again from 2; the
        // replay reaches it only, live events everyone, each once.
        t.watch(3, k.clone(), Some(2));
        assert!(sent(&mut t).is_empty());
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(Some(2))));
        t.deliver(&k, &event(6));
        for seq in 3..=6 {
            t.deliver(&k, &event(seq));
        }
        t.answered(&k, Ok((7, json!(null))));
        t.deliver(&k, &event(7));
        let got = sent(&mut t);
        assert_eq!(got[&1], strs(&["6", "7"]));
        assert_eq!(got[&2], strs(&["6", "7"]));
        assert_eq!(got[&3], strs(&["3", "4", "5", "6", "joined", "7"]));
        // Statuses go to all; a gap only to those behind it.
        t.watch(4, k.clone(), Some(100));
        t.answered(&k, Ok((8, json!(null))));
        sent(&mut t);
        t.deliver(&k, &RoomEvent::Offline);
        t.deliver(&k, &RoomEvent::Gap { next: 50 });
        let got = sent(&mut t);
        assert_eq!(got[&1], strs(&["offline", "gap"]));
        assert_eq!(got[&4], strs(&["offline"]));
    }

    #[test]
    fn last_watcher_leaving_unsubscribes_after_the_answer() {
        let mut t = Table::default();
        let k = key("lobby");
        t.watch(1, k.clone(), None);
        t.driving.insert(k.clone());
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.unwatch(1, &k);
        t.answered(&k, Ok((1, json!(null))));
        assert!(sent(&mut t).is_empty());
        assert_eq!(t.next_step(&k), Some(Step::Unsubscribe));
        assert_eq!(t.next_step(&k), None);
        assert!(t.driving.is_empty());
        // Closing a connection leaves its rooms too.
        t.watch(2, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.answered(&k, Ok((1, json!(null))));
        assert_eq!(t.close(2), vec![k.clone()]);
        assert_eq!(t.next_step(&k), Some(Step::Unsubscribe));
    }

    #[test]
    fn refusals_and_the_watch_bound() {
        let mut t = Table::default();
        let k = key("private-x");
        t.watch(1, k.clone(), None);
        assert_eq!(t.next_step(&k), Some(Step::Subscribe(None)));
        t.answered(&k, Err(RoomsError::Refused(json!({"error": "no"}))));
        assert_eq!(sent(&mut t)[&1], strs(&["refused"]));
        assert!(t.rooms.is_empty());
        assert_eq!(t.next_step(&k), None, "nothing held at the hub");
        for i in 0..MAX_WATCHES_PER_CONNECTION {
            t.watch(9, key(&format!("r{i}")), None);
        }
        assert!(sent(&mut t).is_empty());
        t.watch(9, key("one-more"), None);
        assert_eq!(sent(&mut t)[&9], strs(&["refused"]));
        // Watching a room again does not count twice.
        t.watch(9, key("r0"), Some(3));
        assert!(sent(&mut t).is_empty());
    }
}
