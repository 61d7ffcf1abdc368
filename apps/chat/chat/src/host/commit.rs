//! What every action on a hosted room stands on: finding the room,
//! checking the caller's role, and [`commit`], which numbers, stores,
//! publishes and applies the event an action makes, under the room's turn.

use hearth_sdk::{log, rooms, State};

use crate::error::ChatError;
use crate::model::*;
use crate::types::*;
use crate::util::now_ms;
use crate::{copy, store, turns};

pub(super) fn address_of(room_id: &str) -> String {
    format!("{room_id}@{}", hearth_sdk::our().node())
}

fn turn_key(room_id: &str) -> String {
    format!("host/{room_id}")
}

/// The room as members see its state.
pub(super) fn room_state(chat: &Chat, room_id: &str, room: &Hosted) -> RoomState {
    let now = now_ms();
    let members = room
        .members
        .iter()
        .map(|(node, m)| {
            let presence = chat
                .live
                .presence
                .get(node)
                .filter(|(_, until)| *until > now)
                .map_or(Presence::Offline, |(p, _)| *p);
            Member {
                node: node.clone(),
                role: m.role,
                display_name: m.display_name.clone(),
                color: m.color.clone(),
                presence,
                last_seen: 0,
            }
        })
        .collect();
    RoomState {
        address: address_of(room_id),
        name: room.name.clone(),
        kind: room.kind,
        members,
    }
}

pub(super) fn hosted<'a>(chat: &'a Chat, room_id: &str) -> Result<&'a Hosted, ChatError> {
    chat.hosted
        .get(room_id)
        .ok_or_else(|| ChatError::UnknownRoom(address_of(room_id)))
}

pub(super) fn member_role(room: &Hosted, room_id: &str, node: &str) -> Result<Role, ChatError> {
    room.members.get(node).map(|m| m.role).ok_or_else(|| {
        ChatError::NotMember(format!("{node} is not a member of {}", address_of(room_id)))
    })
}

pub(super) fn need_moderator(
    room: &Hosted,
    room_id: &str,
    node: &str,
    what: &str,
) -> Result<Role, ChatError> {
    let role = member_role(room, room_id, node)?;
    if role < Role::Admin {
        return Err(ChatError::Forbidden(format!(
            "only the owner and admins may {what}"
        )));
    }
    Ok(role)
}

/// The host's turn on a room, for an action that must read what is
/// stored (a message it changes) before it commits: see [`commit_in_turn`].
pub(super) async fn turn(room_id: &str) -> turns::Turn {
    turns::take(turn_key(room_id)).await
}

/// Checks and changes a copy of the room, stores the event it makes,
/// then keeps the change, publishes the event and applies it to our copy.
pub(super) async fn commit<T>(
    state: &State<Chat>,
    room_id: &str,
    change: impl FnOnce(&Chat, &mut Hosted, u64) -> Result<(Logged, T), ChatError>,
) -> Result<T, ChatError> {
    let turn = turn(room_id).await;
    commit_in_turn(state, room_id, &turn, change).await
}

/// [`commit`] for a caller that holds the room's turn already (`_turn`
/// is the proof): what it read under the turn is still what is stored.
pub(super) async fn commit_in_turn<T>(
    state: &State<Chat>,
    room_id: &str,
    _turn: &turns::Turn,
    change: impl FnOnce(&Chat, &mut Hosted, u64) -> Result<(Logged, T), ChatError>,
) -> Result<T, ChatError> {
    let (mut room, logged, out) = state.with(|s| {
        let mut room = hosted(s, room_id)?.clone();
        let ev = room.last_ev + 1;
        let (logged, out) = change(s, &mut room, ev)?;
        room.last_ev = ev;
        Ok::<_, ChatError>((room, logged, out))
    })?;
    let ev = room.last_ev;
    store::put_event(room_id, ev, &logged).await?;
    // A state event carries the members with live presence.
    let logged = match logged {
        Logged::State(_) => Logged::State(state.with(|s| room_state(s, room_id, &room))),
        other => other,
    };
    room.last_ev = ev;
    state.update(|s| s.hosted.insert(room_id.to_string(), room));
    let event = match &logged {
        Logged::Message(message) => RoomStreamEvent::Message {
            ev,
            message: message.clone(),
        },
        Logged::State(room_state) => RoomStreamEvent::State {
            ev,
            state: room_state.clone(),
        },
    };
    if let Err(error) = rooms::publish(room_id, &event) {
        log::warn!("room {room_id}: event {ev} not published ({error}); members catch up by sync");
    }
    let address = address_of(room_id);
    if state.with(|s| s.rooms.contains_key(&address)) {
        copy::apply_own(state, &address, ev, logged).await;
    }
    Ok(out)
}

pub(super) fn state_event(chat: &Chat, room_id: &str, room: &Hosted) -> Logged {
    Logged::State(room_state(chat, room_id, room))
}

pub(super) fn system_message(room_id: &str, ev: u64, text: String) -> Message {
    Message {
        id: ev,
        room: address_of(room_id),
        from: hearth_sdk::our().node().to_string(),
        kind: MessageKind::System,
        text,
        reply_to: None,
        attachment: None,
        mentions: Vec::new(),
        reactions: Default::default(),
        sent_at: now_ms(),
        edited_at: None,
        deleted: false,
        version: ev,
        client_id: String::new(),
        delivery: Delivery::Sent,
        error: None,
    }
}
