//! Our messages on their way: sending (an attachment must be a file
//! uploaded here), sending a failed one again, and dropping one.

use hearth_sdk::{AppError, State};

use crate::error::ChatError;
use crate::member;
use crate::model::Chat;
use crate::types::*;
use crate::util::now_ms;
use crate::view;

/// Sends a message through the room's outbox (see [`member::send`]).
pub async fn send(
    state: &State<Chat>,
    room: String,
    text: String,
    reply_to: Option<u64>,
    attachment: Option<Attachment>,
) -> Result<Message, AppError> {
    if let Some(file) = &attachment {
        let ours = state.with(|s| s.files.get(&file.id) == Some(file));
        if !ours {
            return Err(ChatError::NotFound("attach a file uploaded on this node".into()).into());
        }
    }
    let message = member::send(state, &room, text, reply_to, attachment.clone()).await?;
    if let Some(file) = attachment {
        state.update(|s| s.file_rooms.entry(file.id).or_default().insert(room));
    }
    Ok(message)
}

/// Sends a failed message again, as the same message (its `client_id`,
/// which the host dedups by), at the end of the queue; returns it as it
/// stands (see [`member::settle`]).
pub async fn retry(state: &State<Chat>, room: &str, client_id: &str) -> Result<Message, AppError> {
    let queued = state.update(|s| {
        let joined = s.rooms.get_mut(room)?;
        let at = joined
            .outbox
            .iter()
            .position(|m| m.client_id == client_id)?;
        if joined.outbox[at].delivery != Delivery::Failed {
            // Still pending: it keeps its place.
            return joined.outbox.get(at).cloned();
        }
        let mut m = joined.outbox.remove(at)?;
        m.delivery = Delivery::Pending;
        m.error = None;
        // Later than the failed copy, which the page orders by it.
        m.sent_at = now_ms().max(m.sent_at + 1);
        joined.outbox.push_back(m.clone());
        Some(m)
    });
    let queued =
        queued.ok_or_else(|| ChatError::NotFound(format!("no message {client_id} waits")))?;
    view::emit(&ViewEvent::Message {
        message: queued.clone(),
    });
    member::settle(state, room, queued).await
}

/// Drops a pending or failed message from the outbox.
pub fn discard(chat: &mut Chat, room: &str, client_id: &str) -> Result<(), AppError> {
    let joined = chat
        .rooms
        .get_mut(room)
        .ok_or_else(|| ChatError::UnknownRoom(room.to_string()))?;
    let before = joined.outbox.len();
    joined.outbox.retain(|m| m.client_id != client_id);
    if joined.outbox.len() == before {
        return Err(ChatError::NotFound(format!("no message {client_id} waits")).into());
    }
    view::emit(&ViewEvent::Discarded {
        address: room.to_string(),
        client_id: client_id.to_string(),
    });
    if let Some(summary) = chat.rooms.get(room).map(|r| chat.summary(r)) {
        view::emit(&ViewEvent::Room { room: summary });
    }
    Ok(())
}
