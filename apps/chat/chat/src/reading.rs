//! Reading a room from our node's copy: pages of history, and the read
//! marker that unread and mention counts start from.

use hearth_sdk::{AppError, State};

use crate::copy;
use crate::error::ChatError;
use crate::model::Chat;
use crate::store;
use crate::types::*;
use crate::view;

/// The `limit` (1 to 100) messages before `before_id` (none: the latest),
/// oldest first; the latest page ends with our pending and failed ones.
pub async fn messages(
    state: &State<Chat>,
    room: &str,
    limit: u32,
    before_id: Option<u64>,
) -> Result<Page, AppError> {
    let joined = state.with(|s| copy::member_of(s, room))?;
    if !(1..=100).contains(&limit) {
        return Err(AppError::bad_request("limit is 1 to 100"));
    }
    let (mut messages, has_more) = store::page(room, limit as usize, before_id).await?;
    if before_id.is_none() {
        messages.extend(joined.outbox.iter().cloned());
    }
    Ok(Page { messages, has_more })
}

/// Moves the read marker to `id` (never back) and counts the unread
/// messages and mentions after it.
pub async fn mark_read(state: &State<Chat>, room: &str, id: u64) -> Result<RoomSummary, AppError> {
    let joined = state.with(|s| copy::member_of(s, room))?;
    let last_read = joined.last_read.max(id);
    let our = copy::our_node();
    let (mut unread, mut mentions, mut before) = (0u32, 0u32, None);
    // Count what is left after `last_read`, newest first, page by page.
    'pages: loop {
        let (page, more) = store::page(room, 100, before).await?;
        for m in page.iter().rev() {
            if m.id <= last_read {
                break 'pages;
            }
            if m.from != our && m.kind != MessageKind::System && !m.deleted {
                unread += 1;
                mentions += u32::from(m.mentions.contains(&our));
            }
        }
        match (more, page.first()) {
            (true, Some(first)) => before = Some(first.id),
            _ => break,
        }
    }
    let summary = state.update(|s| {
        let room = s.rooms.get_mut(room)?;
        room.last_read = last_read;
        room.unread = unread;
        room.mentions = mentions;
        let room = room.clone();
        Some(s.summary(&room))
    });
    let summary = summary.ok_or_else(|| ChatError::UnknownRoom(room.to_string()))?;
    view::emit(&ViewEvent::Room {
        room: summary.clone(),
    });
    Ok(summary)
}
