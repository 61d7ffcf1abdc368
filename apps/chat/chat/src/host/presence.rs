//! Live, unstored signals of a room we host: typing, and members'
//! presence under a lease that runs out when their node stops reporting.

use hearth_sdk::{log, rooms, State};

use super::commit::{address_of, commit, hosted, member_role, state_event};
use crate::copy;
use crate::error::ChatError;
use crate::model::*;
use crate::types::*;
use crate::util::{self, now_ms};

/// How long a member's reported presence holds without a refresh.
pub const PRESENCE_LEASE_MS: u64 = 90_000;

/// `caller` is typing: published live, not stored.
pub fn typing(state: &State<Chat>, room_id: &str, caller: &str) -> Result<(), ChatError> {
    state.with(|s| member_role(hosted(s, room_id)?, room_id, caller))?;
    let event = RoomStreamEvent::Typing {
        node: caller.to_string(),
    };
    if let Err(error) = rooms::publish(room_id, &event) {
        log::warn!("typing not published: {error}");
    }
    let address = address_of(room_id);
    copy::on_live(state, &address, &event);
    Ok(())
}

/// `caller`'s presence and profile, for every room we host that they are in.
pub async fn presence(
    state: &State<Chat>,
    caller: &str,
    presence: Presence,
    profile: Profile,
) -> Result<(), ChatError> {
    let until = now_ms() + PRESENCE_LEASE_MS;
    let (changed, renamed) = state.update(|s| {
        // Only members of our rooms are tracked: a stranger's report
        // would grow the map.
        if !s.hosted.values().any(|r| r.members.contains_key(caller)) {
            return (Vec::new(), Vec::new());
        }
        let before = s
            .live
            .presence
            .insert(caller.to_string(), (presence, until));
        let changed = before.map(|(p, _)| p) != Some(presence);
        let rooms: Vec<String> = s
            .hosted
            .iter()
            .filter(|(_, r)| r.members.contains_key(caller))
            .map(|(id, _)| id.clone())
            .collect();
        let renamed: Vec<String> = rooms
            .iter()
            .filter(|id| {
                s.hosted
                    .get(*id)
                    .and_then(|r| r.members.get(caller))
                    .is_some_and(|m| {
                        m.display_name != profile.display_name || m.color != profile.color
                    })
            })
            .cloned()
            .collect();
        (if changed { rooms } else { Vec::new() }, renamed)
    });
    for room_id in changed {
        publish_presence(state, &room_id, caller, presence);
    }
    if util::check_profile(&profile.display_name, &profile.color).is_ok() {
        for room_id in renamed {
            commit(state, &room_id, |s, room, _| {
                if let Some(m) = room.members.get_mut(caller) {
                    m.display_name = profile.display_name.clone();
                    m.color = profile.color.clone();
                }
                Ok((state_event(s, &room_id, room), ()))
            })
            .await?;
        }
    }
    Ok(())
}

fn publish_presence(state: &State<Chat>, room_id: &str, node: &str, presence: Presence) {
    let event = RoomStreamEvent::Presence {
        node: node.to_string(),
        presence,
    };
    if let Err(error) = rooms::publish(room_id, &event) {
        log::warn!("presence not published: {error}");
    }
    copy::on_live(state, &address_of(room_id), &event);
}

/// Members whose lease ran out are offline (their node stopped
/// reporting: closed pages, or unreachable).
pub fn expire_presence(state: &State<Chat>) {
    let now = now_ms();
    let expired: Vec<(String, Vec<String>)> = state.update(|s| {
        let gone: Vec<String> = s
            .live
            .presence
            .iter()
            .filter(|(_, (p, until))| *until <= now && *p != Presence::Offline)
            .map(|(n, _)| n.clone())
            .collect();
        gone.into_iter()
            .map(|node| {
                s.live
                    .presence
                    .insert(node.clone(), (Presence::Offline, u64::MAX));
                let rooms = s
                    .hosted
                    .iter()
                    .filter(|(_, r)| r.members.contains_key(&node))
                    .map(|(id, _)| id.clone())
                    .collect();
                (node, rooms)
            })
            .collect()
    });
    for (node, rooms) in expired {
        for room_id in rooms {
            publish_presence(state, &room_id, &node, Presence::Offline);
        }
    }
}
