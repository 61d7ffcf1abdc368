//! Who is in a room we host: creating it, joining, leaving, and who may
//! see or watch it.

use hearth_sdk::State;

use super::commit::{
    address_of, commit, hosted, member_role, room_state, state_event, system_message,
};
use crate::copy;
use crate::error::ChatError;
use crate::model::*;
use crate::types::*;
use crate::util::{self, now_ms};

/// Creates a room we host with us as owner; returns its address.
pub async fn create(
    state: &State<Chat>,
    name: &str,
    kind: RoomKind,
    invite: Option<&str>,
) -> Result<String, ChatError> {
    let name = util::check_room_name(name)?;
    let our = state.with(|s| s.our_profile());
    let room_id = state.update(|s| {
        if s.hosted.len() >= MAX_HOSTED {
            return Err(ChatError::Limit(format!(
                "this node hosts {MAX_HOSTED} rooms already"
            )));
        }
        s.next_room += 1;
        let base = match (kind, invite) {
            (RoomKind::Direct, Some(peer)) => format!("dm-{}", util::slug(peer)),
            _ => util::slug(&name),
        };
        let id = format!("{base}-{}", s.next_room);
        let mut room = Hosted {
            name: name.clone(),
            kind,
            members: Default::default(),
            invited: Default::default(),
            last_ev: 0,
            recent: Default::default(),
            created_at: now_ms(),
        };
        room.members.insert(
            our.node.clone(),
            HostedMember {
                role: Role::Owner,
                display_name: our.display_name.clone(),
                color: our.color.clone(),
            },
        );
        if let Some(peer) = invite {
            room.invited.insert(peer.to_string(), our.node.clone());
        }
        s.hosted.insert(id.clone(), room);
        Ok(id)
    })?;
    let address = address_of(&room_id);
    copy::add_room(state, &address, &name, kind, Some(Role::Owner), None)?;
    commit(state, &room_id, |s, room, _| {
        Ok((state_event(s, &room_id, room), ()))
    })
    .await?;
    Ok(address)
}

/// `caller` joins: a public room, or one they are invited to.
pub async fn join(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    profile: Profile,
) -> Result<crate::types::Joined, ChatError> {
    let already = state.with(|s| {
        let room = hosted(s, room_id)?;
        if room.members.contains_key(caller) {
            return Ok(true);
        }
        match room.kind {
            RoomKind::Public => {}
            RoomKind::Private | RoomKind::Direct if room.invited.contains_key(caller) => {}
            _ => return Err(ChatError::NotInvited(address_of(room_id))),
        }
        if room.members.len() >= MAX_MEMBERS {
            return Err(ChatError::Limit(format!(
                "the room has {MAX_MEMBERS} members"
            )));
        }
        Ok(false)
    })?;
    if !already {
        let name = profile.display_name.clone();
        commit(state, room_id, |s, room, ev| {
            room.invited.remove(caller);
            room.members.insert(
                caller.to_string(),
                HostedMember {
                    role: Role::Member,
                    display_name: profile.display_name.clone(),
                    color: profile.color.clone(),
                },
            );
            let _ = (s, ev);
            Ok((state_event(s, room_id, room), ()))
        })
        .await?;
        commit(state, room_id, |_, _, ev| {
            let text = format!("{name} ({caller}) joined");
            Ok((Logged::Message(system_message(room_id, ev, text)), ()))
        })
        .await?;
    }
    state.with(|s| {
        let room = hosted(s, room_id)?;
        Ok(crate::types::Joined {
            state: room_state(s, room_id, room),
            last: room.last_ev,
        })
    })
}

/// `caller` leaves. An owner who leaves hands the room to an admin, else
/// to the longest member.
pub async fn leave(state: &State<Chat>, room_id: &str, caller: &str) -> Result<(), ChatError> {
    let name = state.with(|s| {
        let room = hosted(s, room_id)?;
        member_role(room, room_id, caller)?;
        Ok::<_, ChatError>(room.members[caller].display_name.clone())
    })?;
    commit(state, room_id, |_, _, ev| {
        let text = format!("{name} ({caller}) left");
        Ok((Logged::Message(system_message(room_id, ev, text)), ()))
    })
    .await?;
    commit(state, room_id, |s, room, _| {
        let was = room.members.remove(caller).map(|m| m.role);
        room.recent.remove(caller);
        if was == Some(Role::Owner) {
            let heir = room
                .members
                .iter()
                .find(|(_, m)| m.role == Role::Admin)
                .or_else(|| room.members.iter().next())
                .map(|(n, _)| n.clone());
            if let Some(heir) = heir {
                if let Some(m) = room.members.get_mut(&heir) {
                    m.role = Role::Owner;
                }
            }
        }
        Ok((state_event(s, room_id, room), ()))
    })
    .await
}

/// The public rooms we host.
pub fn public(chat: &Chat) -> Vec<PublicRoom> {
    chat.hosted
        .iter()
        .filter(|(_, r)| r.kind == RoomKind::Public)
        .map(|(id, r)| PublicRoom {
            address: address_of(id),
            name: r.name.clone(),
            member_count: r.members.len() as u32,
        })
        .collect()
}

/// Whether `node`'s chat may watch our room `room_id`.
pub fn admits(chat: &Chat, room_id: &str, node: &str) -> bool {
    chat.hosted
        .get(room_id)
        .is_some_and(|r| r.members.contains_key(node))
}
