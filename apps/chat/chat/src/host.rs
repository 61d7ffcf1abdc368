//! The host side of rooms: every action on a room we host is checked here
//! (membership, roles, content rules, rate limit), given the next event
//! number, stored, then published to the room's live stream and applied
//! to our own copy, one room at a time (a [`turns`] turn per room), so
//! the stream carries events in `ev` order without holes.

use hearth_sdk::{log, rooms, State};

use crate::error::{ChatError, RATE_PER_MINUTE};
use crate::model::*;
use crate::types::*;
use crate::util::{self, now_ms};
use crate::{copy, store, turns};

/// Events `host_sync` returns at most per call.
pub const SYNC_PAGE: usize = 200;
/// How long a member's reported presence holds without a refresh.
pub const PRESENCE_LEASE_MS: u64 = 90_000;

fn address_of(room_id: &str) -> String {
    format!("{room_id}@{}", hearth_sdk::our().node())
}

fn turn_key(room_id: &str) -> String {
    format!("host/{room_id}")
}

/// The room as members see its state.
pub fn room_state(chat: &Chat, room_id: &str, room: &Hosted) -> RoomState {
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

fn hosted<'a>(chat: &'a Chat, room_id: &str) -> Result<&'a Hosted, ChatError> {
    chat.hosted
        .get(room_id)
        .ok_or_else(|| ChatError::UnknownRoom(address_of(room_id)))
}

fn member_role(room: &Hosted, room_id: &str, node: &str) -> Result<Role, ChatError> {
    room.members.get(node).map(|m| m.role).ok_or_else(|| {
        ChatError::NotMember(format!("{node} is not a member of {}", address_of(room_id)))
    })
}

fn need_moderator(room: &Hosted, room_id: &str, node: &str, what: &str) -> Result<Role, ChatError> {
    let role = member_role(room, room_id, node)?;
    if role < Role::Admin {
        return Err(ChatError::Forbidden(format!(
            "only the owner and admins may {what}"
        )));
    }
    Ok(role)
}

/// Checks and changes a copy of the room, stores the event it makes,
/// then keeps the change, publishes the event and applies it to our copy.
async fn commit<T>(
    state: &State<Chat>,
    room_id: &str,
    change: impl FnOnce(&Chat, &mut Hosted, u64) -> Result<(Logged, T), ChatError>,
) -> Result<T, ChatError> {
    let _turn = turns::take(turn_key(room_id)).await;
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

fn state_event(chat: &Chat, room_id: &str, room: &Hosted) -> Logged {
    Logged::State(room_state(chat, room_id, room))
}

fn system_message(room_id: &str, ev: u64, text: String) -> Message {
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
        client_id: String::new(),
        delivery: Delivery::Sent,
        error: None,
    }
}

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

/// Edits, deletes or reacts to message `id`.
pub async fn change(
    state: &State<Chat>,
    room_id: &str,
    caller: &str,
    id: u64,
    change: Change,
) -> Result<Message, ChatError> {
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
    commit(state, room_id, |_, room, _| {
        member_role(room, room_id, caller)?;
        Ok((Logged::Message(message.clone()), message))
    })
    .await
}

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
