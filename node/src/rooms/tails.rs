//! Durable tails. A room whose owner publishes with `durable` keeps its
//! tail in the node's state store too (the key-value tree `tails` of
//! `rooms:distro:sys`), so it survives a restart of the owner's node in
//! the same incarnation: subscribers resume from their cursor, no `ended`.
//!
//! One task writes: publishes queue their event ([`WRITE_QUEUE`]), the task
//! takes every queued write (up to [`BATCH_MAX`]) into one atomic batch
//! with one group commit, and only then fans the events out and answers
//! the acked publishers. **Invariant:** an event of a durable room reaches
//! a subscriber, and its `Published` answer its owner, only once it is on
//! disk; so a subscriber's cursor is never beyond what a restart restores.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::warn;

use super::room::Room;
use super::types::{RoomsError, RoomsResponse};
use super::{Answer, Hub};
use crate::state::kv::KvWrite;
use crate::state::StateStore;
use crate::types::{Address, ProcessId};

/// Durable publishes queued for the writer: a mailbox's worth. Past it a
/// durable publish is refused with `Limit` (the disk is behind).
pub const WRITE_QUEUE: usize = 4096;
/// Writes in one batch: one group commit covers them all.
pub const BATCH_MAX: usize = 1024;
/// The key-value database the tails live in, as `rooms:distro:sys` owns it.
const DB_OWNER: &str = "rooms:distro:sys";
const DB_NAME: &str = "tails";

/// One event of a durable room, to write, then fan out.
pub(super) struct TailWrite {
    pub owner: Address,
    pub room: String,
    pub seq: u64,
    pub payload: Arc<Value>,
    pub incarnation: u64,
    /// Seqs the tail dropped with this push, to delete.
    pub dropped: std::ops::Range<u64>,
    pub answer: Option<Answer>,
}

/// What the store keeps per durable room.
#[derive(Serialize, Deserialize)]
struct Meta {
    owner: String,
    room: String,
    incarnation: u64,
}

fn meta_key(owner: &ProcessId, room: &str) -> Vec<u8> {
    format!("m\0{owner}\0{room}").into_bytes()
}

fn events_prefix(owner: &ProcessId, room: &str) -> Vec<u8> {
    format!("e\0{owner}\0{room}\0").into_bytes()
}

fn event_key(owner: &ProcessId, room: &str, seq: u64) -> Vec<u8> {
    let mut key = events_prefix(owner, room);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn channel() -> (mpsc::Sender<TailWrite>, mpsc::Receiver<TailWrite>) {
    mpsc::channel(WRITE_QUEUE)
}

/// A room name the store can key without ambiguity.
pub(super) fn check_name(room: &str) -> Result<(), RoomsError> {
    if room.contains('\0') {
        return Err(RoomsError::BadRequest(
            "a durable room's name has no NUL".into(),
        ));
    }
    Ok(())
}

/// The durable rooms the store holds, as rooms of the hub.
pub(super) fn restore(store: &StateStore) -> Vec<((ProcessId, String), Room)> {
    let db = match store.kv_db(DB_OWNER, DB_NAME, false) {
        Ok(Some(db)) => db,
        Ok(None) => return Vec::new(),
        Err(e) => {
            warn!(%e, "durable room tails cannot be read; rooms start empty");
            return Vec::new();
        }
    };
    let mut rooms = Vec::new();
    for entry in db.scan_from(b"m\0", None) {
        let Ok((_, value)) = entry else { continue };
        let Ok(meta) = serde_json::from_slice::<Meta>(&value) else {
            continue;
        };
        let Ok(owner) = meta.owner.parse::<ProcessId>() else {
            continue;
        };
        let prefix = events_prefix(&owner, &meta.room);
        let events: Vec<(u64, Value)> = db
            .scan_from(&prefix, None)
            .filter_map(Result::ok)
            .filter_map(|(key, value)| {
                let seq = u64::from_be_bytes(key.get(prefix.len()..)?.try_into().ok()?);
                Some((seq, serde_json::from_slice(&value).ok()?))
            })
            .collect();
        let room = Room::restore(meta.incarnation, events);
        rooms.push(((owner, meta.room), room));
    }
    rooms
}

impl Hub {
    /// The writer: batches queued durable events into the store, then
    /// fans them out and answers their publishers, in order.
    pub(super) async fn write_tails(self: Arc<Self>, mut writes_rx: mpsc::Receiver<TailWrite>) {
        while let Some(Some(first)) = self.until_closed(writes_rx.recv()).await {
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match writes_rx.try_recv() {
                    Ok(write) => batch.push(write),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.store(&batch).await {
                // The events are in memory and subscribers wait for them:
                // they go out, and the log says the disk did not take them.
                warn!(%e, events = batch.len(), "durable room events not written");
            }
            for write in batch {
                self.committed(write);
            }
        }
    }

    async fn store(&self, batch: &[TailWrite]) -> Result<(), String> {
        let services = self.services.upgrade().ok_or("stopping")?;
        let db = services
            .state
            .kv_db(DB_OWNER, DB_NAME, true)
            .map_err(|e| e.to_string())?
            .ok_or("no tails database")?;
        let mut writes = Vec::with_capacity(batch.len() * 2);
        for w in batch {
            let owner = &w.owner.process;
            let meta = Meta {
                owner: owner.to_string(),
                room: w.room.clone(),
                incarnation: w.incarnation,
            };
            let meta = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
            writes.push(KvWrite::Set(meta_key(owner, &w.room), meta));
            let payload = serde_json::to_vec(&*w.payload).map_err(|e| e.to_string())?;
            writes.push(KvWrite::Set(event_key(owner, &w.room, w.seq), payload));
            for seq in w.dropped.clone() {
                writes.push(KvWrite::Delete(event_key(owner, &w.room, seq)));
            }
        }
        db.batch(writes).await.map_err(|e| e.to_string())
    }

    /// `write` is on disk: its room's subscribers get it, its publisher
    /// its seq.
    fn committed(self: &Arc<Self>, write: TailWrite) {
        let mut state = self.lock();
        let key = (write.owner.process.clone(), write.room);
        self.end_other_burst(&mut state, &write.owner, &key.1);
        if let Some(room) = state.owned.get_mut(&key) {
            room.committed = room.committed.max(write.seq);
            self.fan_out(&write.owner, &key.1, room, write.seq, &write.payload);
            if !room.outbox.events.is_empty() {
                state.bursting = Some((write.owner.clone(), key.1));
            }
        }
        drop(state);
        self.reply(
            write.answer,
            Ok(RoomsResponse::Published { seq: write.seq }),
        );
    }
}
