//! `chat`: rooms of people across nodes, live, kept durably.
//!
//! A user is a node. A room `room-id@host-node` is hosted by the node that
//! created it: the host's chat process checks every action (membership,
//! roles, content rules, the rate limit), numbers the room's durable events
//! (`ev` from 1), stores them in its kv and publishes them to a live room of
//! the node's rooms hub. Each member's chat process subscribes to that room
//! (across nodes), keeps a durable copy of the history (readable while the
//! host is offline), catches up from its cursor through `host_sync` after
//! any gap, counts unread messages and mentions, and queues its user's
//! messages while the host is unreachable.
//!
//! The browser talks only to its own node's chat: the `#[http]` methods
//! below (typed client `api/chat.ts`) and the live room `view` of this
//! process, watched with `/hearth.js`, which carries every change the page
//! shows ([`ViewEvent`]). Presence comes from the pages' `/presence`
//! WebSockets. The contract for the UI is in `/work/brief/chat-api.md`
//! while it is being built, then in the README.

mod copy;
mod error;
mod files;
mod host;
mod member;
mod model;
mod store;
mod turns;
mod types;
mod util;
mod view;

use hearth_sdk::rooms::RoomEvent;
use hearth_sdk::rpc::{Via, WsEvent};
use hearth_sdk::{app, log, Address, AppError, Ctx, State};

pub use error::ChatError;
pub use model::Chat;
pub use types::*;

/// The guard of host methods: the caller is the chat of another node;
/// attaches its node name.
pub struct Peer(pub String);

/// A room's host: its room id and node.
fn route(address: &str) -> Result<(String, String), AppError> {
    let (id, host) = util::parse_address(address)?;
    Ok((id.to_string(), host.to_string()))
}

/// Calls a room's host: ourselves directly, another node through the
/// generated client (unreachable: `host-offline`).
macro_rules! at_host {
    ($state:expr, $address:expr, local($room_id:ident) => $local:expr, remote($target:ident) => $remote:expr) => {{
        let state: &State<Chat> = $state;
        let address: &str = $address;
        let (room_id, host) = route(address)?;
        if host == copy::our_node() {
            let $room_id = room_id.as_str();
            $local.await.map_err(AppError::from)
        } else {
            let $target = copy::chat_at(&host)?;
            let $room_id = room_id;
            $remote
                .await
                .map_err(|e| member::unreachable_or(state, address, e))
        }
    }};
}

#[app(persist = "on_change")]
impl Chat {
    #[init]
    async fn started(state: State<Self>) {
        model::keep_state(&state);
        host::recover(&state).await;
        let rooms = state.update(|s| {
            s.live.recovered = true;
            s.rooms.len()
        });
        log::info!("chat started: {rooms} rooms");
        member::maintain(&state).await;
    }

    /// Every 2 s: reach hosts we lost (subscribe, catch up, send queues),
    /// expire members' presence; every 30 s: refresh ours at hosts.
    #[timer(every_ms = 2_000)]
    async fn tick(state: State<Self>) {
        member::maintain(&state).await;
        let refresh = state.update(|s| {
            s.live.ticks = s.live.ticks.wrapping_add(1);
            s.live.ticks % 15 == 0 && member::our_presence(s) != Presence::Offline
        });
        member::report_presence(&state, refresh).await;
    }

    /// Guard of the host methods: only another node's chat process.
    fn peer(&self, ctx: &mut Ctx) -> Result<(), AppError> {
        if ctx.via() != Via::Remote || ctx.caller().process() != hearth_sdk::our().process() {
            return Err(AppError::forbidden(
                "host methods are for other nodes' chat",
            ));
        }
        let node = ctx.caller().node().to_string();
        ctx.attach(Peer(node));
        Ok(())
    }

    // ---- The browser's API (and local processes'). ----

    /// Our profile: node name, display name and avatar colour.
    #[local]
    #[http(method = "GET", path = "/api/me")]
    fn me(&self) -> Profile {
        self.our_profile()
    }

    /// Sets our display name (1 to 40 characters) and avatar colour
    /// (`#rrggbb`); members of our rooms see it.
    #[local]
    #[http(method = "POST", path = "/api/profile")]
    async fn set_profile(
        state: State<Self>,
        display_name: String,
        color: String,
    ) -> Result<Profile, AppError> {
        util::check_profile(&display_name, &color)?;
        let profile = Profile {
            node: copy::our_node(),
            display_name: display_name.trim().to_string(),
            color: color.to_ascii_lowercase(),
        };
        state.update(|s| s.profile = Some(profile.clone()));
        view::emit(&ViewEvent::Profile {
            profile: profile.clone(),
        });
        member::report_presence(&state, true).await;
        Ok(profile)
    }

    /// Our rooms, direct rooms and invitations, most recent first.
    #[local]
    #[http(method = "GET", path = "/api/rooms")]
    fn rooms(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<&model::RoomCopy> = self.rooms.values().collect();
        rooms.sort_by_key(|r| std::cmp::Reverse(r.activity));
        rooms.into_iter().map(|r| self.summary(r)).collect()
    }

    /// Creates a room hosted by our node; we are its owner.
    #[local]
    #[http(method = "POST", path = "/api/rooms")]
    async fn create_room(
        state: State<Self>,
        name: String,
        kind: RoomKind,
    ) -> Result<RoomSummary, AppError> {
        if kind == RoomKind::Direct {
            return Err(AppError::bad_request("open a direct room with open_direct"));
        }
        let address = host::create(&state, &name, kind, None).await?;
        summary_of(&state, &address)
    }

    /// The direct room with `node` (created on our node if there is none;
    /// `node` joins it by itself when told).
    #[local]
    #[http(method = "POST", path = "/api/direct")]
    async fn open_direct(state: State<Self>, node: String) -> Result<RoomSummary, AppError> {
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
                return Self::join_room(&state, &summary.address).await;
            }
            return Ok(summary);
        }
        let address = host::create(&state, &node, RoomKind::Direct, Some(&node)).await?;
        let name = state.with(|s| s.our_profile().display_name);
        copy::notify_invite(&node, &address, &name, RoomKind::Direct).await;
        summary_of(&state, &address)
    }

    /// Joins `room-id@host-node` (a public room, or one we are invited to).
    #[local]
    #[http(method = "POST", path = "/api/join")]
    async fn join(state: State<Self>, address: String) -> Result<RoomSummary, AppError> {
        Self::join_room(&state, address.trim()).await
    }

    /// Leaves a room (its history goes from our node).
    #[local]
    #[http(method = "POST", path = "/api/leave")]
    async fn leave(state: State<Self>, room: String) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(id) => host::leave(&state, id, &our),
            remote(target) => client::host_leave_within(&target, id, copy::HOST_TIMEOUT_MS))?;
        copy::drop_room(&state, &room, "left").await;
        Ok(())
    }

    /// Declines an invitation.
    #[local]
    #[http(method = "POST", path = "/api/decline")]
    async fn decline(state: State<Self>, room: String) -> Result<(), AppError> {
        let invitation = state.with(|s| copy::joined(s, &room))?;
        if invitation.role.is_some() {
            return Err(AppError::bad_request("that is a room you are in: leave it"));
        }
        copy::drop_room(&state, &room, "declined").await;
        Ok(())
    }

    /// Invites `node` (owner and admins).
    #[local]
    #[http(method = "POST", path = "/api/invite")]
    async fn invite(state: State<Self>, room: String, node: String) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        let node = node.trim().to_ascii_lowercase();
        at_host!(&state, &room,
            local(id) => host::moderate(&state, id, &our, host::Moderation::Invite(node.clone())),
            remote(target) => client::host_invite_within(&target, id, node.clone(), copy::HOST_TIMEOUT_MS))
    }

    /// Removes `node` from the room (owner and admins; not the owner).
    #[local]
    #[http(method = "POST", path = "/api/remove")]
    async fn remove_member(state: State<Self>, room: String, node: String) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(id) => host::moderate(&state, id, &our, host::Moderation::Remove(node.clone())),
            remote(target) => client::host_remove_within(&target, id, node.clone(), copy::HOST_TIMEOUT_MS))
    }

    /// Makes `node` an admin or a member (owner only).
    #[local]
    #[http(method = "POST", path = "/api/role")]
    async fn set_role(
        state: State<Self>,
        room: String,
        node: String,
        role: Role,
    ) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(id) => host::moderate(&state, id, &our, host::Moderation::Role(node.clone(), role)),
            remote(target) => client::host_role_within(&target, id, node.clone(), role, copy::HOST_TIMEOUT_MS))
    }

    /// Renames the room (owner and admins).
    #[local]
    #[http(method = "POST", path = "/api/rename")]
    async fn rename(state: State<Self>, room: String, name: String) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(id) => host::moderate(&state, id, &our, host::Moderation::Rename(name.clone())),
            remote(target) => client::host_rename_within(&target, id, name.clone(), copy::HOST_TIMEOUT_MS))
    }

    /// The room's members with role, profile and presence (our copy).
    #[local]
    #[http(method = "POST", path = "/api/members")]
    fn members(&self, room: String) -> Result<Vec<Member>, AppError> {
        Ok(copy::member_of(self, &room)?.members)
    }

    /// A page of history from our node's copy, oldest first: the `limit`
    /// (1 to 100) messages before `before_id` (none: the latest), and
    /// whether older ones exist. The latest page ends with our pending and
    /// failed messages.
    #[local]
    #[http(method = "POST", path = "/api/messages")]
    async fn messages(
        state: State<Self>,
        room: String,
        limit: u32,
        before_id: Option<u64>,
    ) -> Result<Page, AppError> {
        let joined = state.with(|s| copy::member_of(s, &room))?;
        if !(1..=100).contains(&limit) {
            return Err(AppError::bad_request("limit is 1 to 100"));
        }
        let (mut messages, has_more) = store::page(&room, limit as usize, before_id).await?;
        if before_id.is_none() {
            messages.extend(joined.outbox.iter().cloned());
        }
        Ok(Page { messages, has_more })
    }

    /// Sends a message. Refused at once when empty, too long, rate-limited,
    /// or not allowed; queued as `pending` when the host is unreachable
    /// (delivered in order when it returns).
    #[local]
    #[http(method = "POST", path = "/api/send")]
    async fn send(
        state: State<Self>,
        room: String,
        text: String,
        reply_to: Option<u64>,
        attachment: Option<Attachment>,
    ) -> Result<Message, AppError> {
        if let Some(file) = &attachment {
            let ours = state.with(|s| s.files.get(&file.id) == Some(file));
            if !ours {
                return Err(
                    ChatError::NotFound("attach a file uploaded on this node".into()).into(),
                );
            }
        }
        let message = member::send(&state, &room, text, reply_to, attachment.clone()).await?;
        if let Some(file) = attachment {
            state.update(|s| s.file_rooms.entry(file.id).or_default().insert(room));
        }
        Ok(message)
    }

    /// Edits one of our messages.
    #[local]
    #[http(method = "POST", path = "/api/edit")]
    async fn edit(
        state: State<Self>,
        room: String,
        id: u64,
        text: String,
    ) -> Result<Message, AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(rid) => host::change(&state, rid, &our, id, host::Change::Edit(text.clone())),
            remote(target) => client::host_edit_within(&target, rid, id, text.clone(), copy::HOST_TIMEOUT_MS))
    }

    /// Deletes one of our messages (owner and admins may delete any).
    #[local]
    #[http(method = "POST", path = "/api/delete")]
    async fn delete_message(
        state: State<Self>,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(rid) => host::change(&state, rid, &our, id, host::Change::Delete),
            remote(target) => client::host_delete_within(&target, rid, id, copy::HOST_TIMEOUT_MS))
    }

    /// Adds our reaction `emoji` to a message, or takes it back.
    #[local]
    #[http(method = "POST", path = "/api/react")]
    async fn react(
        state: State<Self>,
        room: String,
        id: u64,
        emoji: String,
    ) -> Result<Message, AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(rid) => host::change(&state, rid, &our, id, host::Change::React(emoji.clone())),
            remote(target) => client::host_react_within(&target, rid, id, emoji.clone(), copy::HOST_TIMEOUT_MS))
    }

    /// We have read the room up to message `id`: unread and mention counts
    /// are those of later messages.
    #[local]
    #[http(method = "POST", path = "/api/read")]
    async fn mark_read(state: State<Self>, room: String, id: u64) -> Result<RoomSummary, AppError> {
        let joined = state.with(|s| copy::member_of(s, &room))?;
        let last_read = joined.last_read.max(id);
        let our = copy::our_node();
        let (mut unread, mut mentions, mut before) = (0u32, 0u32, None);
        // Count what is left after `last_read`, newest first, page by page.
        'pages: loop {
            let (page, more) = store::page(&room, 100, before).await?;
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
            let room = s.rooms.get_mut(&room)?;
            room.last_read = last_read;
            room.unread = unread;
            room.mentions = mentions;
            let room = room.clone();
            Some(s.summary(&room))
        });
        let summary = summary.ok_or_else(|| ChatError::UnknownRoom(room.clone()))?;
        view::emit(&ViewEvent::Room {
            room: summary.clone(),
        });
        Ok(summary)
    }

    /// We are typing in the room (call at most every 2 s while typing).
    #[local]
    #[http(method = "POST", path = "/api/typing")]
    async fn typing(state: State<Self>, room: String) -> Result<(), AppError> {
        state.with(|s| copy::member_of(s, &room))?;
        let our = copy::our_node();
        at_host!(&state, &room,
            local(id) => async { host::typing(&state, id, &our) },
            remote(target) => client::host_typing_within(&target, id, 5_000))
    }

    /// Sends a failed message again, at the end of the queue.
    #[local]
    #[http(method = "POST", path = "/api/retry")]
    async fn retry(
        state: State<Self>,
        room: String,
        client_id: String,
    ) -> Result<Message, AppError> {
        let failed = state.update(|s| {
            let room = s.rooms.get_mut(&room)?;
            let at = room.outbox.iter().position(|m| m.client_id == client_id)?;
            room.outbox.remove(at)
        });
        let failed =
            failed.ok_or_else(|| ChatError::NotFound(format!("no message {client_id} waits")))?;
        member::send(
            &state,
            &room,
            failed.text,
            failed.reply_to,
            failed.attachment,
        )
        .await
    }

    /// Drops a pending or failed message of ours.
    #[local]
    #[http(method = "POST", path = "/api/discard")]
    fn discard(&mut self, room: String, client_id: String) -> Result<(), AppError> {
        let joined = self
            .rooms
            .get_mut(&room)
            .ok_or_else(|| ChatError::UnknownRoom(room.clone()))?;
        let before = joined.outbox.len();
        joined.outbox.retain(|m| m.client_id != client_id);
        if joined.outbox.len() == before {
            return Err(ChatError::NotFound(format!("no message {client_id} waits")).into());
        }
        if let Some(summary) = self.rooms.get(&room).map(|r| self.summary(r)) {
            view::emit(&ViewEvent::Room { room: summary });
        }
        Ok(())
    }

    /// Stores a file on our node for a message; `data` is base64.
    #[local]
    #[http(method = "POST", path = "/api/upload")]
    async fn upload(
        state: State<Self>,
        name: String,
        mime: String,
        data: String,
    ) -> Result<Attachment, AppError> {
        files::upload(&state, name, mime, data)
            .await
            .map_err(AppError::from)
    }

    /// An attachment's bytes: ours, cached, or fetched from `node` (the
    /// sender's) and cached. `sender-offline` if it cannot be reached.
    #[local]
    #[http(method = "POST", path = "/api/attachment")]
    async fn attachment(
        state: State<Self>,
        node: String,
        id: String,
    ) -> Result<AttachmentData, AppError> {
        files::fetch(&state, &node, &id).await
    }

    /// The public rooms `node` hosts, for the join dialog.
    #[local]
    #[http(method = "POST", path = "/api/public")]
    async fn public_rooms(state: State<Self>, node: String) -> Result<Vec<PublicRoom>, AppError> {
        util::check_node(&node)?;
        if node == copy::our_node() {
            return Ok(state.with(host::public));
        }
        let target = copy::chat_at(&node)?;
        client::host_public_within(&target, copy::HOST_TIMEOUT_MS)
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
    /// limit: for imports, demos and benchmarks. Local processes only
    /// (the node's admin), never a page or another node. Returns the last
    /// message id.
    #[local]
    async fn import(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        texts: Vec<String>,
    ) -> Result<u64, AppError> {
        if ctx.via() != Via::Local {
            return Err(AppError::forbidden(
                "import is for this node's own processes",
            ));
        }
        let (room_id, host) = route(&room)?;
        if host != copy::our_node() {
            return Err(AppError::bad_request("import into a room this node hosts"));
        }
        if texts.len() > 1_000 {
            return Err(AppError::bad_request("at most 1,000 messages per import"));
        }
        let mut last = 0;
        for text in texts {
            last = host::import(&state, &room_id, text).await?.id;
        }
        Ok(last)
    }

    /// A page's presence socket: open while the page is, text frames
    /// `online` or `away` (page hidden).
    #[ws(path = "/presence")]
    fn presence(&mut self, event: WsEvent) {
        match event {
            WsEvent::Open { conn, .. } => {
                self.live.pages.insert(conn, Presence::Online);
            }
            WsEvent::Message { conn, payload, .. } => {
                let presence = match payload.trim_ascii() {
                    b"online" => Presence::Online,
                    b"away" => Presence::Away,
                    _ => return,
                };
                if let Some(p) = self.live.pages.get_mut(&conn) {
                    *p = presence;
                }
            }
            WsEvent::Close { conn } => {
                self.live.pages.remove(&conn);
            }
        }
        // Told to hosts by a task, outside this borrow.
        hearth_sdk::spawn_task(async {
            if let Some(state) = model::state() {
                member::report_presence(&state, false).await;
            }
        });
    }

    // ---- What other nodes' chat processes call on a room's host. ----

    /// Joins the caller's node to a room we host.
    #[remote(guard = Self::peer)]
    async fn host_join(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        profile: Profile,
    ) -> Result<Joined, AppError> {
        let caller = peer_of(&ctx)?;
        let profile = Profile {
            node: caller.clone(),
            ..profile
        };
        let profile = if util::check_profile(&profile.display_name, &profile.color).is_ok() {
            profile
        } else {
            util::default_profile(&caller)
        };
        Ok(host::join(&state, &room, &caller, profile).await?)
    }

    /// The caller's node leaves a room we host.
    #[remote(guard = Self::peer)]
    async fn host_leave(state: State<Self>, ctx: Ctx, room: String) -> Result<(), AppError> {
        Ok(host::leave(&state, &room, &peer_of(&ctx)?).await?)
    }

    /// A message from the caller's user; idempotent by `client_id`.
    #[remote(guard = Self::peer)]
    async fn host_send(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        client_id: String,
        text: String,
        reply_to: Option<u64>,
        attachment: Option<Attachment>,
    ) -> Result<Message, AppError> {
        let caller = peer_of(&ctx)?;
        Ok(host::send(
            &state, &room, &caller, &client_id, text, reply_to, attachment,
        )
        .await?)
    }

    /// Edits the caller's message.
    #[remote(guard = Self::peer)]
    async fn host_edit(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
        text: String,
    ) -> Result<Message, AppError> {
        Ok(host::change(&state, &room, &peer_of(&ctx)?, id, host::Change::Edit(text)).await?)
    }

    /// Deletes a message (its author, or the owner and admins).
    #[remote(guard = Self::peer)]
    async fn host_delete(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        Ok(host::change(&state, &room, &peer_of(&ctx)?, id, host::Change::Delete).await?)
    }

    /// Toggles the caller's reaction.
    #[remote(guard = Self::peer)]
    async fn host_react(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
        emoji: String,
    ) -> Result<Message, AppError> {
        Ok(host::change(
            &state,
            &room,
            &peer_of(&ctx)?,
            id,
            host::Change::React(emoji),
        )
        .await?)
    }

    /// Invites `node` (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_invite(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        Ok(host::moderate(
            &state,
            &room,
            &peer_of(&ctx)?,
            host::Moderation::Invite(node),
        )
        .await?)
    }

    /// Removes `node` (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_remove(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        Ok(host::moderate(
            &state,
            &room,
            &peer_of(&ctx)?,
            host::Moderation::Remove(node),
        )
        .await?)
    }

    /// Sets `node`'s role (the caller must be the owner).
    #[remote(guard = Self::peer)]
    async fn host_role(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
        role: Role,
    ) -> Result<(), AppError> {
        Ok(host::moderate(
            &state,
            &room,
            &peer_of(&ctx)?,
            host::Moderation::Role(node, role),
        )
        .await?)
    }

    /// Renames the room (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_rename(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        name: String,
    ) -> Result<(), AppError> {
        Ok(host::moderate(
            &state,
            &room,
            &peer_of(&ctx)?,
            host::Moderation::Rename(name),
        )
        .await?)
    }

    /// The caller's user is typing.
    #[remote(guard = Self::peer)]
    async fn host_typing(state: State<Self>, ctx: Ctx, room: String) -> Result<(), AppError> {
        Ok(host::typing(&state, &room, &peer_of(&ctx)?)?)
    }

    /// The caller's user's presence and profile, for every room of ours
    /// they are in.
    #[remote(guard = Self::peer)]
    async fn host_presence(
        state: State<Self>,
        ctx: Ctx,
        presence: Presence,
        profile: Profile,
    ) -> Result<(), AppError> {
        Ok(host::presence(&state, &peer_of(&ctx)?, presence, profile).await?)
    }

    /// The durable events after `after`, for a member catching up.
    #[remote(guard = Self::peer)]
    async fn host_sync(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        after: u64,
        limit: u32,
    ) -> Result<SyncPage, AppError> {
        Ok(host::sync(&state, &room, &peer_of(&ctx)?, after, limit).await?)
    }

    /// The public rooms we host.
    #[remote(guard = Self::peer)]
    fn host_public(&self) -> Vec<PublicRoom> {
        host::public(self)
    }

    /// A host tells us we are invited to `address` (a direct room is
    /// joined at once).
    #[remote(guard = Self::peer)]
    async fn invited(
        state: State<Self>,
        ctx: Ctx,
        address: String,
        name: String,
        kind: RoomKind,
    ) -> Result<(), AppError> {
        let caller = peer_of(&ctx)?;
        let (_, host) = route(&address)?;
        if host != caller {
            return Err(AppError::forbidden("only a room's host invites to it"));
        }
        let name = util::check_room_name(&name)?;
        copy::add_room(&state, &address, &name, kind, None, Some(caller))?;
        if kind == RoomKind::Direct {
            let _ = Self::join_room(&state, &address).await?;
        }
        Ok(())
    }

    /// A member of a room we share fetches a file we store.
    #[remote(guard = Self::peer)]
    async fn file(state: State<Self>, ctx: Ctx, id: String) -> Result<AttachmentData, AppError> {
        files::serve(&state, &peer_of(&ctx)?, &id).await
    }

    // ---- From our node's rooms hub. ----

    /// Who may watch one of our rooms: our own pages watch `view`; member
    /// nodes' chat processes watch the rooms we host.
    #[local]
    fn room_join(&self, ctx: &Ctx, room: String, subscriber: Address) -> Result<(), AppError> {
        if !is_hub(ctx.caller()) {
            return Err(AppError::forbidden("asked by the rooms hub only"));
        }
        let our = hearth_sdk::our();
        let admitted = if room == view::VIEW_ROOM {
            subscriber.node() == our.node()
        } else {
            subscriber.process() == our.process() && host::admits(self, &room, subscriber.node())
        };
        if admitted {
            Ok(())
        } else {
            Err(ChatError::NotMember(format!("{subscriber} may not watch {room}")).into())
        }
    }

    /// An event of a room we subscribed to.
    #[local]
    async fn room_event(
        state: State<Self>,
        ctx: Ctx,
        owner: Address,
        room: String,
        event: RoomEvent,
    ) -> Result<(), AppError> {
        if !is_hub(ctx.caller()) {
            return Err(AppError::forbidden("sent by the rooms hub only"));
        }
        member::on_stream(&state, &owner, &room, event).await;
        Ok(())
    }
}

impl Chat {
    /// Joins a room at its host, then holds its stream and catches up.
    async fn join_room(state: &State<Chat>, address: &str) -> Result<RoomSummary, AppError> {
        let (room_id, host) = route(address)?;
        if host == copy::our_node() {
            let known = state.with(|s| s.rooms.get(address).map(|r| s.summary(r)));
            return known.ok_or_else(|| ChatError::UnknownRoom(address.to_string()).into());
        }
        let profile = state.with(|s| s.our_profile());
        let target = copy::chat_at(&host)?;
        let joined = client::host_join_within(&target, room_id, profile, copy::HOST_TIMEOUT_MS)
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
        summary_of(state, address)
    }
}

/// Our summary of room `address`.
fn summary_of(state: &State<Chat>, address: &str) -> Result<RoomSummary, AppError> {
    state
        .with(|s| s.rooms.get(address).map(|r| s.summary(r)))
        .ok_or_else(|| ChatError::UnknownRoom(address.to_string()).into())
}

fn peer_of(ctx: &Ctx) -> Result<String, AppError> {
    ctx.get::<Peer>()
        .map(|p| p.0.clone())
        .ok_or_else(|| AppError::forbidden("no peer"))
}

/// Whether `source` is our node's rooms hub.
fn is_hub(source: &Address) -> bool {
    let id = source.process();
    source.node() == hearth_sdk::our().node()
        && id.process() == "rooms"
        && id.package() == "distro"
        && id.publisher() == "sys"
}
