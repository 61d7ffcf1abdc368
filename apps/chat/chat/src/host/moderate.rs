//! What the owner and admins do to a room we host: invite, remove, change
//! roles, rename; each a notice (when members should read one) and a
//! state event.

use hearth_sdk::State;

use super::commit::{
    address_of, commit, hosted, member_role, need_moderator, state_event, system_message,
};
use crate::error::ChatError;
use crate::model::*;
use crate::types::*;
use crate::{copy, util};

/// What the owner or an admin may do to a member.
pub enum Moderation {
    Invite(String),
    Remove(String),
    Role(String, Role),
    Rename(String),
}

pub async fn moderate(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    action: Moderation,
) -> Result<(), ChatError> {
    let (notice, invitee) = state.with(|s| {
        let room = hosted(s, room_id)?;
        let role = match &action {
            Moderation::Invite(_) => need_moderator(room, room_id, caller, "invite")?,
            Moderation::Remove(_) => need_moderator(room, room_id, caller, "remove members")?,
            Moderation::Rename(_) => need_moderator(room, room_id, caller, "rename the room")?,
            Moderation::Role(..) => {
                let role = member_role(room, room_id, caller)?;
                if role != Role::Owner {
                    return Err(ChatError::Forbidden(
                        "only the owner may change roles".into(),
                    ));
                }
                role
            }
        };
        if room.kind == RoomKind::Direct && !matches!(action, Moderation::Rename(_)) {
            return Err(ChatError::Forbidden(
                "a direct room has its two members only".into(),
            ));
        }
        Ok::<_, ChatError>(match &action {
            Moderation::Invite(node) => {
                util::check_node(node)?;
                if room.members.contains_key(node) {
                    return Err(ChatError::Invalid(format!("{node} is a member already")));
                }
                (None, Some(node.clone()))
            }
            Moderation::Remove(node) => {
                let target = member_role(room, room_id, node)?;
                if target == Role::Owner || (target == Role::Admin && role != Role::Owner) {
                    return Err(ChatError::Forbidden(format!(
                        "{node} cannot be removed by {caller}"
                    )));
                }
                (Some(format!("{caller} removed {node}")), None)
            }
            Moderation::Role(node, new) => {
                member_role(room, room_id, node)?;
                if *new == Role::Owner || node == caller {
                    return Err(ChatError::Forbidden("the owner stays the owner".into()));
                }
                (None, None)
            }
            Moderation::Rename(name) => {
                let name = util::check_room_name(name)?;
                (Some(format!("{caller} renamed the room to {name}")), None)
            }
        })
    })?;
    if let Some(text) = notice {
        commit(state, room_id, |_, _, ev| {
            Ok((Logged::Message(system_message(room_id, ev, text)), ()))
        })
        .await?;
    }
    commit(state, room_id, |s, room, _| {
        match &action {
            Moderation::Invite(node) => {
                room.invited.insert(node.clone(), caller.to_string());
            }
            Moderation::Remove(node) => {
                room.members.remove(node);
                room.invited.remove(node);
                room.recent.remove(node);
            }
            Moderation::Role(node, role) => {
                if let Some(m) = room.members.get_mut(node) {
                    m.role = *role;
                }
            }
            Moderation::Rename(name) => room.name = name.trim().to_string(),
        }
        Ok((state_event(s, room_id, room), ()))
    })
    .await?;
    if let Some(node) = invitee {
        let (name, kind) = state.with(|s| {
            s.hosted
                .get(room_id)
                .map_or((String::new(), RoomKind::Private), |r| {
                    (r.name.clone(), r.kind)
                })
        });
        copy::notify_invite(&node, &address_of(room_id), &name, kind).await;
    }
    Ok(())
}
