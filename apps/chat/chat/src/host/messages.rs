//! Messages in a room we host: sends (deduplicated by `client_id`, under
//! the rate limit), imports, and edits, deletes and reactions.

use hearth_sdk::State;

use super::commit::{
    address_of, commit, commit_in_turn, hosted, member_role, system_message, turn,
};
use crate::error::{ChatError, RATE_PER_MINUTE};
use crate::model::*;
use crate::store;
use crate::types::*;
use crate::util::{self, now_ms};

fn check_rate(chat: &mut Chat, caller: &str) -> Result<(), ChatError> {
    let now = now_ms();
    let window = chat.live.rate.entry(caller.to_string()).or_default();
    while window
        .front()
        .is_some_and(|t| now.saturating_sub(*t) >= 60_000)
    {
        window.pop_front();
    }
    if window.len() >= RATE_PER_MINUTE {
        let oldest = window.front().copied().unwrap_or(now);
        return Err(ChatError::RateLimited {
            retry_ms: 60_000u64.saturating_sub(now.saturating_sub(oldest)),
        });
    }
    window.push_back(now);
    Ok(())
}

/// A message from `caller`; a repeated `client_id` returns the stored one.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    client_id: &str,
    text: String,
    reply_to: Option<u64>,
    attachment: Option<Attachment>,
) -> Result<Message, ChatError> {
    let earlier = state.with(|s| {
        let room = hosted(s, room_id)?;
        member_role(room, room_id, caller)?;
        Ok::<_, ChatError>(
            room.recent
                .get(caller)
                .and_then(|r| r.iter().find(|(c, _)| c == client_id).map(|(_, id)| *id)),
        )
    })?;
    if let Some(id) = earlier {
        if let Some(message) = store::get_message(&address_of(room_id), id).await? {
            return Ok(message);
        }
    }
    util::check_text(&text, attachment.is_some())?;
    if client_id.is_empty() || client_id.len() > 64 {
        return Err(ChatError::Invalid(
            "client_id has 1 to 64 characters".into(),
        ));
    }
    if let Some(file) = &attachment {
        if file.node != caller
            || file.name.len() > 255
            || file.mime.len() > 100
            || file.id.len() > 64
        {
            return Err(ChatError::Invalid(
                "an attachment is stored on its sender's node, with a short name and type".into(),
            ));
        }
    }
    if let Some(reply) = reply_to {
        if store::get_message(&address_of(room_id), reply)
            .await?
            .is_none()
        {
            return Err(ChatError::NotFound(format!(
                "no message {reply} to reply to"
            )));
        }
    }
    state.update(|s| check_rate(s, caller))?;
    commit(state, room_id, |_, room, ev| {
        member_role(room, room_id, caller)?;
        let mentions = util::mentions(&text, room.members.keys().map(String::as_str));
        let kind = match &attachment {
            Some(a) if a.mime.starts_with("image/") => MessageKind::Image,
            Some(_) => MessageKind::File,
            None => MessageKind::Text,
        };
        let message = Message {
            id: ev,
            room: address_of(room_id),
            from: caller.to_string(),
            kind,
            text,
            reply_to,
            attachment,
            mentions,
            reactions: Default::default(),
            sent_at: now_ms(),
            edited_at: None,
            deleted: false,
            version: ev,
            client_id: client_id.to_string(),
            delivery: Delivery::Sent,
            error: None,
        };
        let recent = room.recent.entry(caller.to_string()).or_default();
        if recent.len() >= RECENT_SENDS {
            recent.pop_front();
        }
        recent.push_back((client_id.to_string(), ev));
        Ok((Logged::Message(message.clone()), message))
    })
    .await
}

/// A message of ours stored without the rate limit (see `import`).
pub async fn import(
    state: &State<Chat>,
    room_id: &str,
    text: String,
) -> Result<Message, ChatError> {
    util::check_text(&text, false)?;
    let our = hearth_sdk::our().node().to_string();
    commit(state, room_id, |_, room, ev| {
        member_role(room, room_id, &our)?;
        let mentions = util::mentions(&text, room.members.keys().map(String::as_str));
        let message = Message {
            mentions,
            from: our.clone(),
            text,
            ..system_message(room_id, ev, String::new())
        };
        let message = Message {
            kind: MessageKind::Text,
            ..message
        };
        Ok((Logged::Message(message.clone()), message))
    })
    .await
}

/// What may be changed about a message.
pub enum Change {
    Edit(String),
    Delete,
    React(String),
}

/// Edits, deletes or reacts to message `id`. The message is read and
/// changed under the room's turn, so two changes at once (two members
/// reacting) both land, and each gets the event number as its version.
pub async fn change(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    id: u64,
    change: Change,
) -> Result<Message, ChatError> {
    let turn = turn(room_id).await;
    let role = state.with(|s| member_role(hosted(s, room_id)?, room_id, caller))?;
    let address = address_of(room_id);
    let mut message = store::get_message(&address, id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no message {id} in {address}")))?;
    if message.kind == MessageKind::System {
        return Err(ChatError::Forbidden(
            "room notices cannot be changed".into(),
        ));
    }
    match change {
        Change::Edit(text) => {
            if message.from != caller {
                return Err(ChatError::NotYours);
            }
            if message.deleted {
                return Err(ChatError::NotFound(format!("message {id} was deleted")));
            }
            util::check_text(&text, message.attachment.is_some())?;
            message.mentions = state.with(|s| {
                s.hosted
                    .get(room_id)
                    .map(|r| util::mentions(&text, r.members.keys().map(String::as_str)))
                    .unwrap_or_default()
            });
            message.text = text;
            message.edited_at = Some(now_ms());
        }
        Change::Delete => {
            if message.from != caller && role < Role::Admin {
                return Err(ChatError::NotYours);
            }
            message.deleted = true;
            message.text.clear();
            message.attachment = None;
            message.mentions.clear();
            message.reactions.clear();
        }
        Change::React(emoji) => {
            if emoji.is_empty() || emoji.len() > 16 || emoji.chars().any(char::is_whitespace) {
                return Err(ChatError::Invalid(
                    "a reaction is one emoji (at most 16 bytes)".into(),
                ));
            }
            if message.deleted {
                return Err(ChatError::NotFound(format!("message {id} was deleted")));
            }
            let nodes = message.reactions.entry(emoji.clone()).or_default();
            if let Some(at) = nodes.iter().position(|n| n == caller) {
                nodes.remove(at);
                if nodes.is_empty() {
                    message.reactions.remove(&emoji);
                }
            } else {
                if message.reactions.len() >= 20 && !message.reactions.contains_key(&emoji) {
                    return Err(ChatError::Limit("at most 20 different reactions".into()));
                }
                message
                    .reactions
                    .entry(emoji)
                    .or_default()
                    .push(caller.to_string());
            }
        }
    }
    commit_in_turn(state, room_id, &turn, |_, room, ev| {
        member_role(room, room_id, caller)?;
        message.version = ev;
        Ok((Logged::Message(message.clone()), message))
    })
    .await
}
