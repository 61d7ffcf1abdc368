//! Our copy of each room: the list entry (a room or an invitation), the
//! durable events of its log applied in `ev` order, the live ones (typing,
//! presence) shown, and what our pages are told of each. Below both the
//! host side (`host/`, which applies the rooms it hosts to our copy
//! here) and the member side (`member.rs`, which follows other hosts).

use hearth_sdk::rooms;
use hearth_sdk::{log, Address, State};

use crate::error::ChatError;
use crate::model::*;
use crate::types::*;
use crate::util::{self, now_ms};
use crate::view::emit;
use crate::{client, store, turns};

/// How long a call to a room's host may take.
pub const HOST_TIMEOUT_MS: u64 = 15_000;
pub fn our_node() -> String {
    hearth_sdk::our().node().to_string()
}

/// The chat process of `node`.
pub fn chat_at(node: &str) -> Result<Address, ChatError> {
    format!("{node}@{}", hearth_sdk::our().process())
        .parse()
        .map_err(|e| ChatError::Invalid(format!("node `{node}`: {e}")))
}

pub fn is_local(address: &str) -> bool {
    util::parse_address(address).is_ok_and(|(_, host)| host == hearth_sdk::our().node())
}

/// Our room `address`, or `unknown-room`.
pub fn joined(chat: &Chat, address: &str) -> Result<RoomCopy, ChatError> {
    chat.rooms
        .get(address)
        .cloned()
        .ok_or_else(|| ChatError::UnknownRoom(address.to_string()))
}

/// Our room `address` that we are a member of (not an invitation).
pub fn member_of(chat: &Chat, address: &str) -> Result<RoomCopy, ChatError> {
    let room = joined(chat, address)?;
    if room.role.is_none() {
        return Err(ChatError::NotMember(format!("join {address} first")));
    }
    Ok(room)
}

/// Our summary of room `address`.
pub fn summary_of(state: &State<Chat>, address: &str) -> Result<RoomSummary, hearth_sdk::AppError> {
    state
        .with(|s| s.rooms.get(address).map(|r| s.summary(r)))
        .ok_or_else(|| ChatError::UnknownRoom(address.to_string()).into())
}

pub fn emit_room(state: &State<Chat>, address: &str) {
    if let Some(summary) = state.with(|s| s.rooms.get(address).map(|r| s.summary(r))) {
        emit(&ViewEvent::Room { room: summary });
    }
}

/// Adds a room (or invitation) to our list.
pub fn add_room(
    state: &State<Chat>,
    address: &str,
    name: &str,
    kind: RoomKind,
    role: Option<Role>,
    invited_by: Option<String>,
) -> Result<(), ChatError> {
    let (_, host) = util::parse_address(address)?;
    state.update(|s| {
        if let Some(room) = s.rooms.get_mut(address) {
            if role.is_some() {
                room.role = room.role.or(role);
                room.invited_by = None;
            }
            return Ok(());
        }
        if s.rooms.len() >= MAX_ROOMS {
            return Err(ChatError::Limit(format!("at most {MAX_ROOMS} rooms")));
        }
        let invitations = s.rooms.values().filter(|r| r.role.is_none()).count();
        if role.is_none() && invitations >= MAX_INVITATIONS {
            return Err(ChatError::Limit(format!(
                "{MAX_INVITATIONS} invitations wait already; decline some"
            )));
        }
        s.rooms.insert(
            address.to_string(),
            RoomCopy {
                address: address.to_string(),
                host: host.to_string(),
                name: name.to_string(),
                kind,
                role,
                members: Vec::new(),
                cursor: 0,
                joined_ev: 0,
                last_read: 0,
                unread: 0,
                mentions: 0,
                last_message: None,
                outbox: Default::default(),
                invited_by,
                activity: now_ms(),
                host_online: true,
            },
        );
        Ok(())
    })?;
    emit_room(state, address);
    Ok(())
}

/// Forgets a room: list entry, copy, subscription.
pub async fn drop_room(state: &State<Chat>, address: &str, reason: &str) {
    let had = state.update(|s| {
        s.live.subscribed.remove(address);
        s.live.retry.remove(address);
        s.rooms.remove(address).is_some()
    });
    if !had {
        return;
    }
    emit(&ViewEvent::RoomGone {
        address: address.to_string(),
        reason: reason.to_string(),
    });
    if let Ok((room_id, host)) = util::parse_address(address) {
        if host != hearth_sdk::our().node() {
            if let Ok(owner) = chat_at(host) {
                if let Err(error) = rooms::unsubscribe(&owner, room_id).await {
                    log::debug!("unsubscribe {address}: {error}");
                }
            }
            if let Err(error) = store::forget_room(address).await {
                log::warn!("copy of {address} not removed: {error}");
            }
        }
    }
}

/// Applies an event of a room we host to our own copy (the message is
/// stored already).
pub async fn apply_own(state: &State<Chat>, address: &str, ev: u64, logged: Logged) {
    let _turn = turns::take(format!("copy/{address}")).await;
    if let Err(error) = apply(state, address, ev, logged, false).await {
        log::warn!("{address}: event {ev} not applied to our copy: {error}");
    }
}

/// Applies one durable event at `ev`, the next after the cursor.
pub async fn apply(
    state: &State<Chat>,
    address: &str,
    ev: u64,
    logged: Logged,
    store_copy: bool,
) -> Result<(), ChatError> {
    let our = our_node();
    match logged {
        Logged::Message(mut message) => {
            if message.room != address {
                return Err(ChatError::Invalid(format!(
                    "a message of {} in {address}",
                    message.room
                )));
            }
            message.delivery = Delivery::Sent;
            message.error = None;
            // A replay after a restart (the copy stored, the cursor not
            // saved) must not count the message twice.
            let mut is_new = message.id == ev;
            if store_copy {
                let stored = store::get_message(address, message.id).await?;
                is_new = is_new && stored.is_none();
                let (newest, changed) = newest_copy(stored, message);
                message = newest;
                if changed {
                    store::put_message(&message).await?;
                }
            }
            let gone = state.update(|s| {
                let Some(room) = s.rooms.get_mut(address) else {
                    return true;
                };
                room.cursor = room.cursor.max(ev);
                if message.from == our && !message.client_id.is_empty() {
                    room.outbox.retain(|m| m.client_id != message.client_id);
                }
                if is_new {
                    room.activity = now_ms();
                    if message.from != our
                        && message.id > room.last_read
                        && message.kind != MessageKind::System
                        && !message.deleted
                    {
                        room.unread += 1;
                        if message.mentions.contains(&our) {
                            room.mentions += 1;
                        }
                    }
                    if message.from == our {
                        room.last_read = room.last_read.max(message.id);
                    }
                }
                if room
                    .last_message
                    .as_ref()
                    .is_none_or(|m| m.id <= message.id)
                {
                    room.last_message = Some(message.clone());
                }
                false
            });
            if !gone {
                emit(&ViewEvent::Message { message });
                emit_room(state, address);
            }
        }
        Logged::State(room_state) => {
            let ours = room_state
                .members
                .iter()
                .find(|m| m.node == our)
                .map(|m| m.role);
            let history = state.with(|s| s.rooms.get(address).is_some_and(|r| ev < r.joined_ev));
            if ours.is_none() && history {
                state.update(|s| {
                    if let Some(room) = s.rooms.get_mut(address) {
                        room.cursor = room.cursor.max(ev);
                    }
                });
                return Ok(());
            }
            if ours.is_none() {
                state.update(|s| {
                    if let Some(room) = s.rooms.get_mut(address) {
                        room.cursor = room.cursor.max(ev);
                    }
                });
                let local = is_local(address);
                if !local {
                    drop_room(state, address, "removed").await;
                } else {
                    // We host it but left: forget the list entry only.
                    state.update(|s| s.rooms.remove(address));
                    emit(&ViewEvent::RoomGone {
                        address: address.to_string(),
                        reason: "left".into(),
                    });
                }
                return Ok(());
            }
            state.update(|s| {
                if let Some(room) = s.rooms.get_mut(address) {
                    room.cursor = room.cursor.max(ev);
                    room.name = room_state.name.clone();
                    room.kind = room_state.kind;
                    room.role = ours;
                    room.invited_by = None;
                    room.members = room_state.members.clone();
                }
            });
            emit(&ViewEvent::Members {
                address: address.to_string(),
                members: room_state.members,
            });
            emit_room(state, address);
        }
    }
    Ok(())
}

/// Of our stored copy of a message and one an event brings, the one to
/// keep and show, and whether it is the event's (to store). An event
/// replayed by a sync carries the message as it stands now, so a later
/// event may bring an older copy than the one stored: the higher version
/// stays (the event's on a tie).
fn newest_copy(stored: Option<Message>, incoming: Message) -> (Message, bool) {
    match stored {
        Some(stored) if stored.version > incoming.version => (stored, false),
        _ => (incoming, true),
    }
}

/// Typing and presence: shown, not stored.
pub fn on_live(state: &State<Chat>, address: &str, event: &RoomStreamEvent) {
    match event {
        RoomStreamEvent::Typing { node }
            if *node != our_node() && state.with(|s| s.rooms.contains_key(address)) =>
        {
            emit(&ViewEvent::Typing {
                address: address.to_string(),
                node: node.clone(),
            });
        }
        RoomStreamEvent::Presence { node, presence } => {
            let known = state.update(|s| {
                let Some(room) = s.rooms.get_mut(address) else {
                    return false;
                };
                if let Some(m) = room.members.iter_mut().find(|m| m.node == *node) {
                    m.presence = *presence;
                    if *presence != Presence::Offline {
                        m.last_seen = now_ms();
                    }
                }
                true
            });
            if known {
                emit(&ViewEvent::Presence {
                    address: address.to_string(),
                    node: node.clone(),
                    presence: *presence,
                });
            }
        }
        _ => {}
    }
}

/// Tells `node` it is invited (best effort: it may also join by address).
pub async fn notify_invite(node: &str, address: &str, name: &str, kind: RoomKind) {
    let Ok(target) = chat_at(node) else { return };
    if node == our_node() {
        return;
    }
    if let Err(error) = client::invited_within(
        &target,
        address.to_string(),
        name.to_string(),
        kind,
        HOST_TIMEOUT_MS,
    )
    .await
    {
        log::info!("{node} not told of its invitation to {address}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(version: u64, reactions: &[(&str, &str)]) -> Message {
        let mut m = Message {
            id: 7,
            room: "plans-1@alice.os".into(),
            from: "alice.os".into(),
            kind: MessageKind::Text,
            text: "Ship date is Friday".into(),
            reply_to: None,
            attachment: None,
            mentions: Vec::new(),
            reactions: Default::default(),
            sent_at: 1,
            edited_at: None,
            deleted: false,
            version,
            client_id: "c1".into(),
            delivery: Delivery::Sent,
            error: None,
        };
        for (emoji, node) in reactions {
            m.reactions
                .entry(emoji.to_string())
                .or_default()
                .push(node.to_string());
        }
        m
    }

    #[test]
    fn an_older_copy_never_replaces_newer_reactions() {
        let newer = copy(12, &[("🎉", "bob.os"), ("❤️", "alice.os")]);
        let older = copy(9, &[("🎉", "bob.os")]);
        // The older copy comes late: the stored newer one stays.
        let (kept, store_it) = newest_copy(Some(newer.clone()), older.clone());
        assert_eq!((kept.reactions, store_it), (newer.reactions.clone(), false));
        // In order, each newer copy replaces the one before.
        let (kept, store_it) = newest_copy(Some(older.clone()), newer.clone());
        assert_eq!((kept.reactions, store_it), (newer.reactions.clone(), true));
        let (kept, store_it) = newest_copy(None, older.clone());
        assert_eq!((kept.version, store_it), (9, true));
        // A copy stored before versions (0) gives way to any event's.
        let (kept, _) = newest_copy(Some(copy(0, &[])), older);
        assert_eq!(kept.version, 9);
    }
}
