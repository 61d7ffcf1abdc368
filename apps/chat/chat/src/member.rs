//! The member side: following the rooms of other hosts (and sending to
//! any host, ours included). Our copy of each room is `copy.rs`. Events from a room's
//! host are applied in `ev` order, each once (a [`turns`] turn per room;
//! older ones are skipped, a hole is filled from the host's log through
//! `host_sync` before going on), stored in our kv, counted as unread or
//! mentions, and shown to our pages. Our messages go through the room's
//! outbox, in order, and wait there while the host is unreachable.

use hearth_sdk::rooms::{self, RoomEvent};
use hearth_sdk::rpc::{ClientError, WsEvent};
use hearth_sdk::{log, Address, AppError, State};

use crate::copy::{
    apply, chat_at, drop_room, emit_room, is_local, on_live, our_node, HOST_TIMEOUT_MS,
};
use crate::error::{is_unreachable, remote_refusal, ChatError};
use crate::model::*;
use crate::types::*;
use crate::util::{self, now_ms};
use crate::view::emit;
use crate::{client, host, turns};

/// First and longest wait between attempts to reach a host.
const RETRY_FIRST_MS: u64 = 1_000;
const RETRY_MAX_MS: u64 = 15_000;
/// A message pending longer than this is marked failed.
const PENDING_MAX_MS: u64 = 24 * 3_600_000;

/// An event of a room of another host, from our hub.
pub async fn on_stream(state: &State<Chat>, owner: &Address, room_id: &str, event: RoomEvent) {
    let address = format!("{room_id}@{}", owner.node());
    if owner.process() != hearth_sdk::our().process()
        || !state.with(|s| s.rooms.contains_key(&address))
    {
        return;
    }
    match event {
        RoomEvent::Event { payload, .. } => {
            let Ok(event) = serde_json::from_value::<RoomStreamEvent>(payload) else {
                log::warn!("{address}: an event that is not a chat event; ignored");
                return;
            };
            let (ev, logged) = match event {
                RoomStreamEvent::Message { ev, message } => (ev, Logged::Message(message)),
                RoomStreamEvent::State { ev, state: st } => (ev, Logged::State(st)),
                live => return on_live(state, &address, &live),
            };
            set_online(state, &address, true);
            let _turn = turns::take(format!("copy/{address}")).await;
            let cursor = state.with(|s| s.rooms.get(&address).map_or(u64::MAX, |r| r.cursor));
            if ev <= cursor {
                return;
            }
            if ev == cursor + 1 {
                if let Err(error) = apply(state, &address, ev, logged, true).await {
                    log::warn!("{address}: event {ev} not applied: {error}");
                }
                return;
            }
            catch_up_locked(state, &address).await;
        }
        RoomEvent::Gap { .. } | RoomEvent::Lagged { .. } => {
            let _turn = turns::take(format!("copy/{address}")).await;
            catch_up_locked(state, &address).await;
        }
        RoomEvent::Offline => set_online(state, &address, false),
        RoomEvent::Online => {
            set_online(state, &address, true);
            {
                let _turn = turns::take(format!("copy/{address}")).await;
                catch_up_locked(state, &address).await;
            }
            flush(state, &address).await;
        }
        RoomEvent::Ended => {
            state.update(|s| s.live.subscribed.remove(&address));
        }
    }
}

pub fn set_online(state: &State<Chat>, address: &str, online: bool) {
    let changed = state.update(|s| match s.rooms.get_mut(address) {
        Some(room) if room.host_online != online => {
            room.host_online = online;
            true
        }
        _ => false,
    });
    if changed {
        emit_room(state, address);
    }
}

/// Catches our copy up with the host's log (call with the copy's turn).
async fn catch_up_locked(state: &State<Chat>, address: &str) {
    let Ok((room_id, host)) = util::parse_address(address) else {
        return;
    };
    let (room_id, host) = (room_id.to_string(), host.to_string());
    loop {
        let Some(cursor) = state.with(|s| s.rooms.get(address).map(|r| r.cursor)) else {
            return;
        };
        let page = if host == our_node() {
            host::sync(state, &room_id, &our_node(), cursor, host::SYNC_PAGE as u32)
                .await
                .map_err(AppError::from)
        } else {
            let Ok(target) = chat_at(&host) else { return };
            client::host_sync_within(
                &target,
                room_id.clone(),
                cursor,
                host::SYNC_PAGE as u32,
                HOST_TIMEOUT_MS,
            )
            .await
            .map_err(|e| unreachable_or(state, address, e))
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                if error.code == "not-member" {
                    drop_room(state, address, "removed").await;
                } else {
                    log::info!("{address}: catch-up stopped: {error}");
                }
                return;
            }
        };
        set_online(state, address, true);
        let mut at = cursor;
        for (ev, logged) in page.events {
            if ev <= at {
                continue;
            }
            if let Err(error) = apply(state, address, ev, logged, host != our_node()).await {
                log::warn!("{address}: event {ev} not applied: {error}");
                return;
            }
            at = ev;
        }
        if at >= page.last || at == cursor {
            return;
        }
    }
}

/// Catches our copy up (takes the copy's turn).
pub async fn catch_up(state: &State<Chat>, address: &str) {
    let _turn = turns::take(format!("copy/{address}")).await;
    catch_up_locked(state, address).await;
}

/// A failed call to a host: unreachable marks it offline (`host-offline`),
/// a refusal passes through.
pub fn unreachable_or(state: &State<Chat>, address: &str, error: ClientError) -> AppError {
    if is_unreachable(&error) {
        set_online(state, address, false);
        let host = util::parse_address(address).map_or("the host", |(_, h)| h);
        ChatError::HostOffline(host.to_string()).into()
    } else {
        remote_refusal(error)
    }
}

/// Subscribes to a room of another host if we do not hold its stream,
/// then catches up and sends what waits.
pub async fn ensure_subscribed(state: &State<Chat>, address: &str) {
    let Ok((room_id, host)) = util::parse_address(address) else {
        return;
    };
    if host == our_node() {
        return;
    }
    let go = state.update(|s| {
        let member = s.rooms.get(address).is_some_and(|r| r.role.is_some());
        member
            && !s.live.subscribed.contains(address)
            && s.live.subscribing.insert(address.to_string())
    });
    if !go {
        return;
    }
    let result = match chat_at(host) {
        Ok(owner) => rooms::subscribe(&owner, room_id, None)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    let now = now_ms();
    let ok = result.is_ok();
    state.update(|s| {
        s.live.subscribing.remove(address);
        if ok {
            s.live.subscribed.insert(address.to_string());
            s.live.retry.remove(address);
        } else {
            let backoff = s
                .live
                .retry
                .get(address)
                .map_or(RETRY_FIRST_MS, |(_, b)| (b * 2).min(RETRY_MAX_MS));
            s.live
                .retry
                .insert(address.to_string(), (now + backoff, backoff));
        }
    });
    match result {
        Ok(_) => {
            set_online(state, address, true);
            catch_up(state, address).await;
            flush(state, address).await;
        }
        Err(error) => {
            log::info!("{address}: host not reached ({error}); retrying");
            set_online(state, address, false);
        }
    }
}

/// Sends our queued messages of a room in order, while the host answers.
pub async fn flush(state: &State<Chat>, address: &str) {
    let _turn = turns::take(format!("outbox/{address}")).await;
    loop {
        let next = state.with(|s| {
            s.rooms.get(address).and_then(|r| {
                r.outbox
                    .iter()
                    .find(|m| m.delivery == Delivery::Pending)
                    .cloned()
            })
        });
        let Some(pending) = next else { return };
        if now_ms().saturating_sub(pending.sent_at) > PENDING_MAX_MS {
            fail(
                state,
                address,
                &pending.client_id,
                AppError::new("expired", "the host stayed unreachable for a day"),
            );
            continue;
        }
        match deliver(state, address, &pending).await {
            Ok(message) => {
                state.update(|s| {
                    if let Some(room) = s.rooms.get_mut(address) {
                        room.outbox.retain(|m| m.client_id != message.client_id);
                    }
                    if s.live.delivered.len() >= MAX_OUTBOX {
                        s.live.delivered.pop_first();
                    }
                    s.live
                        .delivered
                        .insert(message.client_id.clone(), message.clone());
                });
                emit(&ViewEvent::Message { message });
                emit_room(state, address);
            }
            Err(error) if error.code == "host-offline" => return,
            Err(error) => fail(state, address, &pending.client_id, error),
        }
    }
}

fn fail(state: &State<Chat>, address: &str, client_id: &str, error: AppError) {
    let failed = state.update(|s| {
        let room = s.rooms.get_mut(address)?;
        let m = room.outbox.iter_mut().find(|m| m.client_id == client_id)?;
        m.delivery = Delivery::Failed;
        m.error = Some(Failure {
            code: error.code.clone(),
            message: error.message.clone(),
            retry_ms: error
                .details
                .as_ref()
                .and_then(|d| d.get("retry_ms"))
                .and_then(|ms| ms.as_u64()),
        });
        Some(m.clone())
    });
    if let Some(message) = failed {
        emit(&ViewEvent::Message { message });
        emit_room(state, address);
    }
}

/// One message to its host.
async fn deliver(state: &State<Chat>, address: &str, m: &Message) -> Result<Message, AppError> {
    let (room_id, host) = util::parse_address(address)?;
    if host == our_node() {
        return host::send(
            state,
            room_id,
            host,
            &m.client_id,
            m.text.clone(),
            m.reply_to,
            m.attachment.clone(),
        )
        .await
        .map_err(AppError::from);
    }
    let target = chat_at(host)?;
    client::host_send_within(
        &target,
        room_id.to_string(),
        m.client_id.clone(),
        m.text.clone(),
        m.reply_to,
        m.attachment.clone(),
        HOST_TIMEOUT_MS,
    )
    .await
    .map_err(|e| unreachable_or(state, address, e))
}

/// Queues a message of ours and tries to send the queue; returns it as it
/// stands (see [`settle`]). An error means nothing was queued.
pub async fn send(
    state: &State<Chat>,
    address: &str,
    text: String,
    reply_to: Option<u64>,
    attachment: Option<Attachment>,
) -> Result<Message, AppError> {
    util::check_text(&text, attachment.is_some())?;
    let client_id = util::random_id();
    let message = Message {
        id: 0,
        room: address.to_string(),
        from: our_node(),
        kind: match &attachment {
            Some(a) if a.mime.starts_with("image/") => MessageKind::Image,
            Some(_) => MessageKind::File,
            None => MessageKind::Text,
        },
        text,
        reply_to,
        attachment,
        mentions: Vec::new(),
        reactions: Default::default(),
        sent_at: now_ms(),
        edited_at: None,
        deleted: false,
        version: 0,
        client_id: client_id.clone(),
        delivery: Delivery::Pending,
        error: None,
    };
    state.update(|s| {
        let room = s
            .rooms
            .get_mut(address)
            .ok_or_else(|| ChatError::UnknownRoom(address.to_string()))?;
        if room.role.is_none() {
            return Err(ChatError::NotMember(format!("join {address} first")));
        }
        if room.outbox.len() >= MAX_OUTBOX {
            return Err(ChatError::Limit(format!(
                "{MAX_OUTBOX} messages wait already"
            )));
        }
        room.outbox.push_back(message.clone());
        Ok(())
    })?;
    emit(&ViewEvent::Message {
        message: message.clone(),
    });
    settle(state, address, message).await
}

/// Sends the room's queue if its host answers, then returns our queued
/// `message` as it stands: sent (as the host stored it), pending (the
/// host unreachable), or failed with the host's refusal (kept in the
/// outbox, like any refusal, until retried or discarded).
pub async fn settle(
    state: &State<Chat>,
    address: &str,
    message: Message,
) -> Result<Message, AppError> {
    let online = state.with(|s| s.rooms.get(address).is_some_and(|r| r.host_online));
    if online {
        flush(state, address).await;
    }
    let now = state.with(|s| {
        s.rooms.get(address).and_then(|r| {
            r.outbox
                .iter()
                .find(|m| m.client_id == message.client_id)
                .cloned()
        })
    });
    match now {
        Some(m) => {
            emit_room(state, address);
            Ok(m)
        }
        None => {
            // Delivered: as the host stored it.
            let delivered = state.update(|s| s.live.delivered.remove(&message.client_id));
            Ok(delivered.unwrap_or(Message {
                delivery: Delivery::Sent,
                ..message
            }))
        }
    }
}

/// Every few seconds: reach hosts we lost, send queues, refresh presence.
pub async fn maintain(state: &State<Chat>) {
    let now = now_ms();
    let due: Vec<String> = state.with(|s| {
        s.rooms
            .values()
            .filter(|r| r.role.is_some() && !is_local(&r.address))
            .filter(|r| !s.live.subscribed.contains(&r.address))
            .filter(|r| {
                s.live
                    .retry
                    .get(&r.address)
                    .is_none_or(|(at, _)| *at <= now)
            })
            .map(|r| r.address.clone())
            .collect()
    });
    for address in due {
        ensure_subscribed(state, &address).await;
    }
    let waiting: Vec<String> = state.with(|s| {
        s.rooms
            .values()
            .filter(|r| s.live.subscribed.contains(&r.address) || is_local(&r.address))
            .filter(|r| r.outbox.iter().any(|m| m.delivery == Delivery::Pending))
            .map(|r| r.address.clone())
            .collect()
    });
    for address in waiting {
        flush(state, &address).await;
    }
    host::expire_presence(state);
}

/// Our presence from our open pages.
pub fn our_presence(chat: &Chat) -> Presence {
    if chat.live.pages.values().any(|p| *p == Presence::Online) {
        Presence::Online
    } else if chat.live.pages.is_empty() {
        Presence::Offline
    } else {
        Presence::Away
    }
}

/// A frame of a page's presence socket: open, `online`, `away` (page
/// hidden), close. What changed is told to hosts by a task, outside the
/// caller's borrow of the state.
pub fn page_presence(chat: &mut Chat, event: WsEvent) {
    match event {
        WsEvent::Open { conn, .. } => {
            chat.live.pages.insert(conn, Presence::Online);
        }
        WsEvent::Message { conn, payload, .. } => {
            let presence = match payload.trim_ascii() {
                b"online" => Presence::Online,
                b"away" => Presence::Away,
                _ => return,
            };
            if let Some(p) = chat.live.pages.get_mut(&conn) {
                *p = presence;
            }
        }
        WsEvent::Close { conn } => {
            chat.live.pages.remove(&conn);
        }
    }
    hearth_sdk::spawn_task(async {
        if let Some(state) = crate::model::state() {
            report_presence(&state, false).await;
        }
    });
}

/// Tells the hosts of our rooms our presence and profile.
pub async fn report_presence(state: &State<Chat>, force: bool) {
    let (presence, profile, hosts) = state.update(|s| {
        let presence = our_presence(s);
        let changed = s.live.reported != Some(presence);
        s.live.reported = Some(presence);
        let mut hosts: Vec<String> = s
            .rooms
            .values()
            .filter(|r| r.role.is_some())
            .map(|r| r.host.clone())
            .collect();
        hosts.sort();
        hosts.dedup();
        if !changed && !force {
            hosts.clear();
        }
        (presence, s.our_profile(), hosts)
    });
    for host in hosts {
        if host == our_node() {
            if let Err(error) = host::presence(state, &host, presence, profile.clone()).await {
                log::warn!("presence at our rooms: {error:?}");
            }
            continue;
        }
        let Ok(target) = chat_at(&host) else { continue };
        if let Err(error) =
            client::host_presence_within(&target, presence, profile.clone(), HOST_TIMEOUT_MS).await
        {
            log::debug!("presence not told to {host}: {error}");
        }
    }
}
