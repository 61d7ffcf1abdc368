//! What our user does to a room, done at the room's host: directly when
//! our node hosts it, else through the generated client. An unreachable
//! host is `host-offline` (and the room is shown offline until it is back).

use hearth_sdk::{Address, AppError, State};

use crate::copy::{self, HOST_TIMEOUT_MS};
use crate::error::{self, ChatError};
use crate::host::{self, Change, Moderation};
use crate::model::Chat;
use crate::types::*;
use crate::{client, member, util};

/// Who hosts a room, with the room's id there.
enum Host {
    /// Our node.
    Ours(String),
    /// Another node's chat process.
    At(Address, String),
}

/// A room's host: its room id and node.
pub fn route(address: &str) -> Result<(String, String), AppError> {
    let (id, host) = util::parse_address(address)?;
    Ok((id.to_string(), host.to_string()))
}

fn host_of(address: &str) -> Result<Host, AppError> {
    let (room_id, node) = route(address)?;
    if node == copy::our_node() {
        Ok(Host::Ours(room_id))
    } else {
        Ok(Host::At(copy::chat_at(&node)?, room_id))
    }
}

/// Joins a room at its host, then holds its stream and catches up.
pub async fn join_room(state: &State<Chat>, address: &str) -> Result<RoomSummary, AppError> {
    let (room_id, host) = route(address)?;
    if host == copy::our_node() {
        let known = state.with(|s| s.rooms.get(address).map(|r| s.summary(r)));
        return known.ok_or_else(|| ChatError::UnknownRoom(address.to_string()).into());
    }
    let profile = state.with(|s| s.our_profile());
    let target = copy::chat_at(&host)?;
    let joined = client::host_join_within(&target, room_id, profile, HOST_TIMEOUT_MS)
        .await
        .map_err(|e| member::unreachable_or(state, address, e))?;
    let our = copy::our_node();
    let role = joined
        .state
        .members
        .iter()
        .find(|m| m.node == our)
        .map_or(Role::Member, |m| m.role);
    copy::add_room(
        state,
        address,
        &joined.state.name,
        joined.state.kind,
        Some(role),
        None,
    )?;
    state.update(|s| {
        if let Some(room) = s.rooms.get_mut(address) {
            room.members = joined.state.members.clone();
            room.joined_ev = room.joined_ev.max(joined.last);
        }
    });
    member::ensure_subscribed(state, address).await;
    member::report_presence(state, true).await;
    copy::summary_of(state, address)
}

/// The direct room with `node`: ours or theirs if there is one, else a
/// new one hosted here, which `node` joins by itself when told.
pub async fn open_direct(state: &State<Chat>, node: String) -> Result<RoomSummary, AppError> {
    util::check_node(&node)?;
    if node == copy::our_node() {
        return Err(AppError::bad_request("a direct room is with another node"));
    }
    let existing = state.with(|s| {
        s.rooms
            .values()
            .find(|r| r.kind == RoomKind::Direct && s.summary(r).peer.as_deref() == Some(&node))
            .map(|r| s.summary(r))
    });
    if let Some(summary) = existing {
        if summary.role.is_none() {
            return join_room(state, &summary.address).await;
        }
        return Ok(summary);
    }
    let address = host::create(state, &node, RoomKind::Direct, Some(&node)).await?;
    let name = state.with(|s| s.our_profile().display_name);
    copy::notify_invite(&node, &address, &name, RoomKind::Direct).await;
    copy::summary_of(state, &address)
}

/// A host told us we are invited to `address` (a direct room is joined
/// at once). Only the room's own host may.
pub async fn invited(
    state: &State<Chat>,
    caller: String,
    address: &str,
    name: &str,
    kind: RoomKind,
) -> Result<(), AppError> {
    let (_, host) = route(address)?;
    if host != caller {
        return Err(AppError::forbidden("only a room's host invites to it"));
    }
    let name = util::check_room_name(name)?;
    copy::add_room(state, address, &name, kind, None, Some(caller))?;
    if kind == RoomKind::Direct {
        let _ = join_room(state, address).await?;
    }
    Ok(())
}

/// Leaves a room at its host, then drops our copy.
pub async fn leave(state: &State<Chat>, room: &str) -> Result<(), AppError> {
    state.with(|s| copy::member_of(s, room))?;
    let our = copy::our_node();
    match host_of(room)? {
        Host::Ours(id) => host::leave(state, &id, &our).await?,
        Host::At(target, id) => client::host_leave_within(&target, id, HOST_TIMEOUT_MS)
            .await
            .map_err(|e| member::unreachable_or(state, room, e))?,
    }
    copy::drop_room(state, room, "left").await;
    Ok(())
}

/// Invites, removes, changes a role or renames, as the host allows us.
pub async fn moderate(state: &State<Chat>, room: &str, action: Moderation) -> Result<(), AppError> {
    state.with(|s| copy::member_of(s, room))?;
    let our = copy::our_node();
    let (target, id) = match host_of(room)? {
        Host::Ours(id) => return Ok(host::moderate(state, &id, &our, action).await?),
        Host::At(target, id) => (target, id),
    };
    let t = HOST_TIMEOUT_MS;
    match action {
        Moderation::Invite(node) => client::host_invite_within(&target, id, node, t).await,
        Moderation::Remove(node) => client::host_remove_within(&target, id, node, t).await,
        Moderation::Role(node, role) => client::host_role_within(&target, id, node, role, t).await,
        Moderation::Rename(name) => client::host_rename_within(&target, id, name, t).await,
    }
    .map_err(|e| member::unreachable_or(state, room, e))
}

/// Edits, deletes or reacts to message `id`, as the host allows us.
pub async fn change(
    state: &State<Chat>,
    room: &str,
    id: u64,
    change: Change,
) -> Result<Message, AppError> {
    state.with(|s| copy::member_of(s, room))?;
    let our = copy::our_node();
    let (target, rid) = match host_of(room)? {
        Host::Ours(rid) => return Ok(host::change(state, &rid, &our, id, change).await?),
        Host::At(target, rid) => (target, rid),
    };
    let t = HOST_TIMEOUT_MS;
    match change {
        Change::Edit(text) => client::host_edit_within(&target, rid, id, text, t).await,
        Change::Delete => client::host_delete_within(&target, rid, id, t).await,
        Change::React(emoji) => client::host_react_within(&target, rid, id, emoji, t).await,
    }
    .map_err(|e| member::unreachable_or(state, room, e))
}

/// Tells the room's members we are typing.
pub async fn typing(state: &State<Chat>, room: &str) -> Result<(), AppError> {
    state.with(|s| copy::member_of(s, room))?;
    match host_of(room)? {
        Host::Ours(id) => Ok(host::typing(state, &id, &copy::our_node())?),
        Host::At(target, id) => client::host_typing_within(&target, id, 5_000)
            .await
            .map_err(|e| member::unreachable_or(state, room, e)),
    }
}

/// The public rooms `node` hosts.
pub async fn public_rooms(state: &State<Chat>, node: String) -> Result<Vec<PublicRoom>, AppError> {
    util::check_node(&node)?;
    if node == copy::our_node() {
        return Ok(state.with(host::public));
    }
    let target = copy::chat_at(&node)?;
    client::host_public_within(&target, HOST_TIMEOUT_MS)
        .await
        .map_err(|e| {
            if error::is_unreachable(&e) {
                ChatError::HostOffline(node.clone()).into()
            } else {
                error::remote_refusal(e)
            }
        })
}

/// Adds `texts` as our messages to a room we host, without the rate
/// limit; returns the last message id.
pub async fn import(state: &State<Chat>, room: &str, texts: Vec<String>) -> Result<u64, AppError> {
    let (room_id, host) = route(room)?;
    if host != copy::our_node() {
        return Err(AppError::bad_request("import into a room this node hosts"));
    }
    if texts.len() > 1_000 {
        return Err(AppError::bad_request("at most 1,000 messages per import"));
    }
    let mut last = 0;
    for text in texts {
        last = host::import(state, &room_id, text).await?.id;
    }
    Ok(last)
}
