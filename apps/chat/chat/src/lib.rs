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

mod actions;
mod copy;
mod error;
mod files;
mod guards;
mod host;
mod member;
mod model;
mod outbox;
mod reading;
mod store;
mod turns;
mod types;
mod util;
mod view;

use hearth_sdk::rooms::RoomEvent;
use hearth_sdk::rpc::{Via, WsEvent};
use hearth_sdk::{app, log, Address, AppError, Ctx, State};

use guards::peer_of;
use host::{Change, Moderation};

pub use error::ChatError;
pub use model::Chat;
pub use types::*;

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
        guards::peer(ctx)
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
        copy::summary_of(&state, &address)
    }

    /// The direct room with `node` (created on our node if there is none;
    /// `node` joins it by itself when told).
    #[local]
    #[http(method = "POST", path = "/api/direct")]
    async fn open_direct(state: State<Self>, node: String) -> Result<RoomSummary, AppError> {
        actions::open_direct(&state, node).await
    }

    /// Joins `room-id@host-node` (a public room, or one we are invited to).
    #[local]
    #[http(method = "POST", path = "/api/join")]
    async fn join(state: State<Self>, address: String) -> Result<RoomSummary, AppError> {
        actions::join_room(&state, address.trim()).await
    }

    /// Leaves a room (its history goes from our node).
    #[local]
    #[http(method = "POST", path = "/api/leave")]
    async fn leave(state: State<Self>, room: String) -> Result<(), AppError> {
        actions::leave(&state, &room).await
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
        let node = node.trim().to_ascii_lowercase();
        actions::moderate(&state, &room, Moderation::Invite(node)).await
    }

    /// Removes `node` from the room (owner and admins; not the owner).
    #[local]
    #[http(method = "POST", path = "/api/remove")]
    async fn remove_member(state: State<Self>, room: String, node: String) -> Result<(), AppError> {
        actions::moderate(&state, &room, Moderation::Remove(node)).await
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
        actions::moderate(&state, &room, Moderation::Role(node, role)).await
    }

    /// Renames the room (owner and admins).
    #[local]
    #[http(method = "POST", path = "/api/rename")]
    async fn rename(state: State<Self>, room: String, name: String) -> Result<(), AppError> {
        actions::moderate(&state, &room, Moderation::Rename(name)).await
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
        reading::messages(&state, &room, limit, before_id).await
    }

    /// Sends a message, answered as it stands: `sent` (stored by the
    /// host), `pending` (the host unreachable; delivered in order when it
    /// returns) or `failed` with the host's refusal in `error` (rate
    /// limit, a reply to no message...; kept for `retry` or `discard`).
    /// An error (empty, too long, not a member) means nothing was queued.
    #[local]
    #[http(method = "POST", path = "/api/send")]
    async fn send(
        state: State<Self>,
        room: String,
        text: String,
        reply_to: Option<u64>,
        attachment: Option<Attachment>,
    ) -> Result<Message, AppError> {
        outbox::send(&state, room, text, reply_to, attachment).await
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
        actions::change(&state, &room, id, Change::Edit(text)).await
    }

    /// Deletes one of our messages (owner and admins may delete any).
    #[local]
    #[http(method = "POST", path = "/api/delete")]
    async fn delete_message(
        state: State<Self>,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        actions::change(&state, &room, id, Change::Delete).await
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
        actions::change(&state, &room, id, Change::React(emoji)).await
    }

    /// We have read the room up to message `id`: unread and mention counts
    /// are those of later messages.
    #[local]
    #[http(method = "POST", path = "/api/read")]
    async fn mark_read(state: State<Self>, room: String, id: u64) -> Result<RoomSummary, AppError> {
        reading::mark_read(&state, &room, id).await
    }

    /// We are typing in the room (call at most every 2 s while typing).
    #[local]
    #[http(method = "POST", path = "/api/typing")]
    async fn typing(state: State<Self>, room: String) -> Result<(), AppError> {
        actions::typing(&state, &room).await
    }

    /// Sends a failed message again: the same message (the host dedups
    /// by its `client_id`), at the end of the queue; answered as `send`.
    #[local]
    #[http(method = "POST", path = "/api/retry")]
    async fn retry(
        state: State<Self>,
        room: String,
        client_id: String,
    ) -> Result<Message, AppError> {
        outbox::retry(&state, &room, &client_id).await
    }

    /// Drops a pending or failed message of ours.
    #[local]
    #[http(method = "POST", path = "/api/discard")]
    fn discard(&mut self, room: String, client_id: String) -> Result<(), AppError> {
        outbox::discard(self, &room, &client_id)
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
        actions::public_rooms(&state, node).await
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
        actions::import(&state, &room, texts).await
    }

    /// A page's presence socket: open while the page is, text frames
    /// `online` or `away` (page hidden).
    #[ws(path = "/presence")]
    fn presence(&mut self, event: WsEvent) {
        member::page_presence(self, event);
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
        let profile = guards::peer_profile(&caller, profile);
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
        Ok(host::change(&state, &room, &peer_of(&ctx)?, id, Change::Edit(text)).await?)
    }

    /// Deletes a message (its author, or the owner and admins).
    #[remote(guard = Self::peer)]
    async fn host_delete(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        Ok(host::change(&state, &room, &peer_of(&ctx)?, id, Change::Delete).await?)
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
        Ok(host::change(&state, &room, &peer_of(&ctx)?, id, Change::React(emoji)).await?)
    }

    /// Invites `node` (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_invite(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        let caller = peer_of(&ctx)?;
        Ok(host::moderate(&state, &room, &caller, Moderation::Invite(node)).await?)
    }

    /// Removes `node` (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_remove(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        let caller = peer_of(&ctx)?;
        Ok(host::moderate(&state, &room, &caller, Moderation::Remove(node)).await?)
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
        let caller = peer_of(&ctx)?;
        Ok(host::moderate(&state, &room, &caller, Moderation::Role(node, role)).await?)
    }

    /// Renames the room (the caller must be owner or admin).
    #[remote(guard = Self::peer)]
    async fn host_rename(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        name: String,
    ) -> Result<(), AppError> {
        let caller = peer_of(&ctx)?;
        Ok(host::moderate(&state, &room, &caller, Moderation::Rename(name)).await?)
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
        actions::invited(&state, peer_of(&ctx)?, &address, &name, kind).await
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
        if !guards::is_hub(ctx.caller()) {
            return Err(AppError::forbidden("asked by the rooms hub only"));
        }
        guards::may_watch(self, &room, &subscriber)
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
        if !guards::is_hub(ctx.caller()) {
            return Err(AppError::forbidden("sent by the rooms hub only"));
        }
        member::on_stream(&state, &owner, &room, event).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The page calls the client `kit b` generates, copied unchanged into
    /// `pkg/ui/` (pages are served as they are, with no build step).
    #[test]
    fn the_page_uses_the_generated_client() {
        assert!(
            include_str!("../../pkg/ui/chat.js") == include_str!("../../api/chat.js"),
            "apps/chat/pkg/ui/chat.js differs from apps/chat/api/chat.js: \
             run `kit b apps/chat` and copy api/chat.js into pkg/ui/"
        );
    }
}
