//! A hosted room's durable event log as others read it: pages of events
//! for members catching up, and the counters recovered from it at boot.

use hearth_sdk::{log, State};

use super::commit::{hosted, member_role};
use crate::error::ChatError;
use crate::model::*;
use crate::store;
use crate::types::*;

/// Events `host_sync` returns at most per call.
pub const SYNC_PAGE: usize = 200;

/// Durable events after `after`, for a member (or a node that was one and
/// must learn it was removed: the last state event tells it).
pub async fn sync(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    after: u64,
    limit: u32,
) -> Result<SyncPage, ChatError> {
    let last = state.with(|s| {
        let room = hosted(s, room_id)?;
        member_role(room, room_id, caller)?;
        Ok::<_, ChatError>(room.last_ev)
    })?;
    let limit = (limit as usize).clamp(1, SYNC_PAGE);
    let events = store::events_after(room_id, after, limit).await?;
    let events = events.into_iter().filter(|(ev, _)| *ev <= last).collect();
    Ok(SyncPage { events, last })
}

/// After a restart: event counters ahead of the saved state (stored, but
/// the state was not saved before the stop) are taken from the store.
pub async fn recover(state: &State<Chat>) {
    let rooms: Vec<(String, u64)> = state.with(|s| {
        s.hosted
            .iter()
            .map(|(id, r)| (id.clone(), r.last_ev))
            .collect()
    });
    for (room_id, known) in rooms {
        match store::last_event(&room_id, known).await {
            Ok(last) if last > known => {
                log::warn!(
                    "room {room_id}: events {}..={last} recovered from the store",
                    known + 1
                );
                if let Ok(events) = store::events_after(&room_id, known, SYNC_PAGE).await {
                    state.update(|s| {
                        if let Some(room) = s.hosted.get_mut(&room_id) {
                            for (_, event) in &events {
                                if let Logged::State(st) = event {
                                    room.name = st.name.clone();
                                    room.members = st
                                        .members
                                        .iter()
                                        .map(|m| {
                                            (
                                                m.node.clone(),
                                                HostedMember {
                                                    role: m.role,
                                                    display_name: m.display_name.clone(),
                                                    color: m.color.clone(),
                                                },
                                            )
                                        })
                                        .collect();
                                }
                            }
                        }
                    });
                }
                state.update(|s| {
                    if let Some(room) = s.hosted.get_mut(&room_id) {
                        room.last_ev = last;
                    }
                });
            }
            Ok(_) => {}
            Err(error) => log::error!("room {room_id}: cannot check its events: {error}"),
        }
    }
}
