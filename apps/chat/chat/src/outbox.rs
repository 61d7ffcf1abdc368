//! Our messages on their way: sending (an attachment must be a file
//! uploaded here), sending a failed one again, and dropping one.

use hearth_sdk::{AppError, State};

use crate::error::ChatError;
use crate::member;
use crate::model::Chat;
use crate::types::*;
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

/// Takes a failed message out of the outbox and sends it again, at the
/// end of the queue.
pub async fn retry(state: &State<Chat>, room: &str, client_id: &str) -> Result<Message, AppError> {
    let failed = state.update(|s| {
        let room = s.rooms.get_mut(room)?;
        let at = room.outbox.iter().position(|m| m.client_id == client_id)?;
        room.outbox.remove(at)
    });
    let failed =
        failed.ok_or_else(|| ChatError::NotFound(format!("no message {client_id} waits")))?;
    member::send(state, room, failed.text, failed.reply_to, failed.attachment).await
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
    if let Some(summary) = chat.rooms.get(room).map(|r| chat.summary(r)) {
        view::emit(&ViewEvent::Room { room: summary });
    }
    Ok(())
}
