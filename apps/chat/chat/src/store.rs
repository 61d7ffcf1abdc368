//! The chat's kv layout (database `chat` of this package), the only module
//! that names keys:
//!
//! - `m/<address>/<inverted id>`: a message of a room (the host's copy is
//!   the authoritative one, a member's is its copy). Ids are inverted
//!   (`u64::MAX - id`, 20 digits) so a forward scan reads newest first.
//! - `e/<room-id>/<ev>`: the durable events of a room we host, 20 digits.
//! - `f/<id>`: a file we shared; `c/<node>/<id>`: a file we fetched.

use std::cell::RefCell;

use hearth_sdk::Kv;

use crate::error::ChatError;
use crate::types::{Logged, Message};

thread_local! {
    static DB: RefCell<Option<Kv>> = const { RefCell::new(None) };
}

fn storage(e: impl std::fmt::Display) -> ChatError {
    ChatError::Storage(e.to_string())
}

async fn db() -> Result<Kv, ChatError> {
    if let Some(kv) = DB.with(|d| d.borrow().clone()) {
        return Ok(kv);
    }
    let kv = Kv::open("chat").await.map_err(storage)?;
    DB.with(|d| *d.borrow_mut() = Some(kv.clone()));
    Ok(kv)
}

fn message_key(address: &str, id: u64) -> String {
    format!("m/{address}/{:020}", u64::MAX - id)
}

fn event_key(room_id: &str, ev: u64) -> String {
    format!("e/{room_id}/{ev:020}")
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ChatError> {
    hearth_sdk::json::to_bytes(value).map_err(storage)
}

/// A stored event: a message event names the message (stored once, under
/// its `m/` key, in its current version), a state event is whole.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored {
    MessageRef { room: String, id: u64 },
    State(crate::types::RoomState),
}

/// Writes a room's event and the message it carries (if any), at once.
pub async fn put_event(room_id: &str, ev: u64, event: &Logged) -> Result<(), ChatError> {
    let kv = db().await?;
    let batch = match event {
        Logged::Message(message) => {
            let reference = hearth_sdk::json::json!({
                "message_ref": {"room": message.room, "id": message.id}
            });
            kv.batch()
                .set(&event_key(room_id, ev), encode(&reference)?)
                .set(&message_key(&message.room, message.id), encode(message)?)
        }
        Logged::State(_) => kv.batch().set(&event_key(room_id, ev), encode(event)?),
    };
    batch.commit().await.map_err(storage)
}

/// The events of a room we host after `after`, at most `limit`; a message
/// event carries the message as it stands now (edits are later events).
pub async fn events_after(
    room_id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Logged)>, ChatError> {
    let kv = db().await?;
    let start = event_key(room_id, after.saturating_add(1));
    let page = kv
        .scan_page(&format!("e/{room_id}/"), Some(&start), limit, None)
        .await
        .map_err(storage)?;
    let mut out = Vec::with_capacity(page.entries.len());
    for (key, value) in page.entries {
        let ev = key
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| storage(format!("bad event key {key}")))?;
        let event = match hearth_sdk::json::from_bytes::<Stored>(&value).map_err(storage)? {
            Stored::State(state) => Logged::State(state),
            Stored::MessageRef { room, id } => Logged::Message(
                get_message(&room, id)
                    .await?
                    .ok_or_else(|| storage(format!("event {ev} names message {id}, not stored")))?,
            ),
        };
        out.push((ev, event));
    }
    Ok(out)
}

/// The last event number stored for a room we host (0 if none), at or
/// after `known`: recovers a counter whose state was not saved.
pub async fn last_event(room_id: &str, known: u64) -> Result<u64, ChatError> {
    let mut last = known;
    loop {
        let page = events_after(room_id, last, 256).await?;
        match page.last() {
            Some((ev, _)) => last = *ev,
            None => return Ok(last),
        }
    }
}

/// Stores a member's copy of a message.
pub async fn put_message(message: &Message) -> Result<(), ChatError> {
    let kv = db().await?;
    kv.set(&message_key(&message.room, message.id), encode(message)?)
        .await
        .map_err(storage)
}

pub async fn get_message(address: &str, id: u64) -> Result<Option<Message>, ChatError> {
    let kv = db().await?;
    match kv.get(&message_key(address, id)).await.map_err(storage)? {
        Some(bytes) => Ok(Some(hearth_sdk::json::from_bytes(&bytes).map_err(storage)?)),
        None => Ok(None),
    }
}

/// Up to `limit` messages with ids below `before` (all if `None`), oldest
/// first, and whether older ones exist.
pub async fn page(
    address: &str,
    limit: usize,
    before: Option<u64>,
) -> Result<(Vec<Message>, bool), ChatError> {
    let kv = db().await?;
    let start = match before {
        Some(0) | Some(1) => return Ok((Vec::new(), false)),
        Some(b) => Some(message_key(address, b - 1)),
        None => None,
    };
    let found = kv
        .scan_page(&format!("m/{address}/"), start.as_deref(), limit + 1, None)
        .await
        .map_err(storage)?;
    let has_more = found.entries.len() > limit || found.next.is_some();
    let mut messages = Vec::with_capacity(limit);
    for (_, value) in found.entries.into_iter().take(limit) {
        messages.push(hearth_sdk::json::from_bytes::<Message>(&value).map_err(storage)?);
    }
    messages.reverse();
    Ok((messages, has_more))
}

/// Removes our copy of a room's messages (after leaving it).
pub async fn forget_room(address: &str) -> Result<(), ChatError> {
    let kv = db().await?;
    loop {
        let page = kv
            .scan_page(&format!("m/{address}/"), None, 256, None)
            .await
            .map_err(storage)?;
        if page.entries.is_empty() {
            return Ok(());
        }
        let mut batch = kv.batch();
        for (key, _) in &page.entries {
            batch = batch.delete(key);
        }
        batch.commit().await.map_err(storage)?;
    }
}

pub async fn put_file(key: &str, bytes: Vec<u8>) -> Result<(), ChatError> {
    db().await?.set(key, bytes).await.map_err(storage)
}

pub async fn get_file(key: &str) -> Result<Option<Vec<u8>>, ChatError> {
    db().await?.get(key).await.map_err(storage)
}

pub async fn delete_file(key: &str) -> Result<(), ChatError> {
    db().await?.delete(key).await.map(|_| ()).map_err(storage)
}

pub fn own_file_key(id: &str) -> String {
    format!("f/{id}")
}

pub fn cached_file_key(node: &str, id: &str) -> String {
    format!("c/{node}/{id}")
}
