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

mod error;
mod types;

use hearth_sdk::rooms::RoomEvent;
use hearth_sdk::rpc::WsEvent;
use hearth_sdk::{app, log, Address, AppError, Ctx, State};
use serde::{Deserialize, Serialize};

pub use error::ChatError;
pub use types::*;

/// The persisted state of one node's chat.
#[derive(Default, Serialize, Deserialize)]
pub struct Chat {
    #[serde(default)]
    profile: Option<Profile>,
}

fn not_yet(what: &str) -> AppError {
    AppError::new("not-yet", format!("{what} is not built yet"))
}

#[app(persist = "on_change")]
impl Chat {
    #[init]
    fn started(&mut self) {
        log::info!("chat started");
    }

    // ---- The browser's API (and local processes'). ----

    /// Our profile: node name, display name and avatar colour.
    #[local]
    #[http(method = "GET", path = "/api/me")]
    fn me(&self) -> Result<Profile, AppError> {
        Err(not_yet("me"))
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
        let _ = (state, display_name, color);
        Err(not_yet("set_profile"))
    }

    /// Our rooms, direct rooms and invitations, most recent first.
    #[local]
    #[http(method = "GET", path = "/api/rooms")]
    fn rooms(&self) -> Result<Vec<RoomSummary>, AppError> {
        Err(not_yet("rooms"))
    }

    /// Creates a room hosted by our node; we are its owner.
    #[local]
    #[http(method = "POST", path = "/api/rooms")]
    async fn create_room(
        state: State<Self>,
        name: String,
        kind: RoomKind,
    ) -> Result<RoomSummary, AppError> {
        let _ = (state, name, kind);
        Err(not_yet("create_room"))
    }

    /// The direct room with `node` (created on our node if there is none).
    #[local]
    #[http(method = "POST", path = "/api/direct")]
    async fn open_direct(state: State<Self>, node: String) -> Result<RoomSummary, AppError> {
        let _ = (state, node);
        Err(not_yet("open_direct"))
    }

    /// Joins `room-id@host-node` (a public room, or one we are invited to).
    #[local]
    #[http(method = "POST", path = "/api/join")]
    async fn join(state: State<Self>, address: String) -> Result<RoomSummary, AppError> {
        let _ = (state, address);
        Err(not_yet("join"))
    }

    /// Leaves a room (its history goes from our node).
    #[local]
    #[http(method = "POST", path = "/api/leave")]
    async fn leave(state: State<Self>, room: String) -> Result<(), AppError> {
        let _ = (state, room);
        Err(not_yet("leave"))
    }

    /// Declines an invitation.
    #[local]
    #[http(method = "POST", path = "/api/decline")]
    async fn decline(state: State<Self>, room: String) -> Result<(), AppError> {
        let _ = (state, room);
        Err(not_yet("decline"))
    }

    /// Invites `node` (owner and admins).
    #[local]
    #[http(method = "POST", path = "/api/invite")]
    async fn invite(state: State<Self>, room: String, node: String) -> Result<(), AppError> {
        let _ = (state, room, node);
        Err(not_yet("invite"))
    }

    /// Removes `node` from the room (owner and admins; not the owner).
    #[local]
    #[http(method = "POST", path = "/api/remove")]
    async fn remove_member(state: State<Self>, room: String, node: String) -> Result<(), AppError> {
        let _ = (state, room, node);
        Err(not_yet("remove_member"))
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
        let _ = (state, room, node, role);
        Err(not_yet("set_role"))
    }

    /// Renames the room (owner and admins).
    #[local]
    #[http(method = "POST", path = "/api/rename")]
    async fn rename(state: State<Self>, room: String, name: String) -> Result<(), AppError> {
        let _ = (state, room, name);
        Err(not_yet("rename"))
    }

    /// The room's members with role, profile and presence.
    #[local]
    #[http(method = "POST", path = "/api/members")]
    fn members(&self, room: String) -> Result<Vec<Member>, AppError> {
        let _ = room;
        Err(not_yet("members"))
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
        let _ = (state, room, limit, before_id);
        Err(not_yet("messages"))
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
        let _ = (state, room, text, reply_to, attachment);
        Err(not_yet("send"))
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
        let _ = (state, room, id, text);
        Err(not_yet("edit"))
    }

    /// Deletes one of our messages (owner and admins may delete any).
    #[local]
    #[http(method = "POST", path = "/api/delete")]
    async fn delete_message(
        state: State<Self>,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        let _ = (state, room, id);
        Err(not_yet("delete_message"))
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
        let _ = (state, room, id, emoji);
        Err(not_yet("react"))
    }

    /// We have read the room up to message `id`.
    #[local]
    #[http(method = "POST", path = "/api/read")]
    async fn mark_read(state: State<Self>, room: String, id: u64) -> Result<RoomSummary, AppError> {
        let _ = (state, room, id);
        Err(not_yet("mark_read"))
    }

    /// We are typing in the room (call at most every 2 s while typing).
    #[local]
    #[http(method = "POST", path = "/api/typing")]
    async fn typing(state: State<Self>, room: String) -> Result<(), AppError> {
        let _ = (state, room);
        Err(not_yet("typing"))
    }

    /// Sends a failed message again, at the end of the queue.
    #[local]
    #[http(method = "POST", path = "/api/retry")]
    async fn retry(
        state: State<Self>,
        room: String,
        client_id: String,
    ) -> Result<Message, AppError> {
        let _ = (state, room, client_id);
        Err(not_yet("retry"))
    }

    /// Drops a pending or failed message of ours.
    #[local]
    #[http(method = "POST", path = "/api/discard")]
    async fn discard(state: State<Self>, room: String, client_id: String) -> Result<(), AppError> {
        let _ = (state, room, client_id);
        Err(not_yet("discard"))
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
        let _ = (state, name, mime, data);
        Err(not_yet("upload"))
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
        let _ = (state, node, id);
        Err(not_yet("attachment"))
    }

    /// The public rooms `node` hosts, for the join dialog.
    #[local]
    #[http(method = "POST", path = "/api/public")]
    async fn public_rooms(state: State<Self>, node: String) -> Result<Vec<PublicRoom>, AppError> {
        let _ = (state, node);
        Err(not_yet("public_rooms"))
    }

    /// A page's presence socket: open while the page is, text frames
    /// `online` or `away` (page hidden).
    #[ws(path = "/presence")]
    fn presence(&mut self, event: WsEvent) {
        let _ = event;
    }

    // ---- What other nodes' chat processes call on a room's host. ----

    /// Joins the caller's node to a room we host.
    #[remote]
    async fn host_join(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        profile: Profile,
    ) -> Result<Joined, AppError> {
        let _ = (state, ctx, room, profile);
        Err(not_yet("host_join"))
    }

    /// The caller's node leaves a room we host.
    #[remote]
    async fn host_leave(state: State<Self>, ctx: Ctx, room: String) -> Result<(), AppError> {
        let _ = (state, ctx, room);
        Err(not_yet("host_leave"))
    }

    /// A message from the caller's user; idempotent by `client_id`.
    #[remote]
    async fn host_send(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        client_id: String,
        text: String,
        reply_to: Option<u64>,
        attachment: Option<Attachment>,
    ) -> Result<Message, AppError> {
        let _ = (state, ctx, room, client_id, text, reply_to, attachment);
        Err(not_yet("host_send"))
    }

    /// Edits the caller's message.
    #[remote]
    async fn host_edit(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
        text: String,
    ) -> Result<Message, AppError> {
        let _ = (state, ctx, room, id, text);
        Err(not_yet("host_edit"))
    }

    /// Deletes a message (its author, or the owner and admins).
    #[remote]
    async fn host_delete(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
    ) -> Result<Message, AppError> {
        let _ = (state, ctx, room, id);
        Err(not_yet("host_delete"))
    }

    /// Toggles the caller's reaction.
    #[remote]
    async fn host_react(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        id: u64,
        emoji: String,
    ) -> Result<Message, AppError> {
        let _ = (state, ctx, room, id, emoji);
        Err(not_yet("host_react"))
    }

    /// Invites `node` (the caller must be owner or admin).
    #[remote]
    async fn host_invite(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        let _ = (state, ctx, room, node);
        Err(not_yet("host_invite"))
    }

    /// Removes `node` (the caller must be owner or admin).
    #[remote]
    async fn host_remove(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
    ) -> Result<(), AppError> {
        let _ = (state, ctx, room, node);
        Err(not_yet("host_remove"))
    }

    /// Sets `node`'s role (the caller must be the owner).
    #[remote]
    async fn host_role(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        node: String,
        role: Role,
    ) -> Result<(), AppError> {
        let _ = (state, ctx, room, node, role);
        Err(not_yet("host_role"))
    }

    /// Renames the room (the caller must be owner or admin).
    #[remote]
    async fn host_rename(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        name: String,
    ) -> Result<(), AppError> {
        let _ = (state, ctx, room, name);
        Err(not_yet("host_rename"))
    }

    /// The caller's user is typing.
    #[remote]
    fn host_typing(&mut self, ctx: &Ctx, room: String) -> Result<(), AppError> {
        let _ = (ctx, room);
        Err(not_yet("host_typing"))
    }

    /// The caller's user's presence and profile, for every room of ours
    /// they are in.
    #[remote]
    async fn host_presence(
        state: State<Self>,
        ctx: Ctx,
        presence: Presence,
        profile: Profile,
    ) -> Result<(), AppError> {
        let _ = (state, ctx, presence, profile);
        Err(not_yet("host_presence"))
    }

    /// The durable events after `after`, for a member catching up.
    #[remote]
    async fn host_sync(
        state: State<Self>,
        ctx: Ctx,
        room: String,
        after: u64,
        limit: u32,
    ) -> Result<SyncPage, AppError> {
        let _ = (state, ctx, room, after, limit);
        Err(not_yet("host_sync"))
    }

    /// The public rooms we host.
    #[remote]
    fn host_public(&self) -> Vec<PublicRoom> {
        Vec::new()
    }

    /// A host tells us we are invited to `address`.
    #[remote]
    fn invited(
        &mut self,
        ctx: &Ctx,
        address: String,
        name: String,
        kind: RoomKind,
    ) -> Result<(), AppError> {
        let _ = (ctx, address, name, kind);
        Err(not_yet("invited"))
    }

    /// A member fetches a file we store.
    #[remote]
    async fn file(state: State<Self>, ctx: Ctx, id: String) -> Result<AttachmentData, AppError> {
        let _ = (state, ctx, id);
        Err(not_yet("file"))
    }

    // ---- From our node's rooms hub. ----

    /// Who may watch one of our rooms: our own pages watch `view`; member
    /// nodes' chat processes watch the rooms we host.
    #[local]
    fn room_join(
        &self,
        room: String,
        subscriber: Address,
    ) -> Result<hearth_sdk::json::Value, AppError> {
        let _ = (room, subscriber);
        Err(not_yet("room_join"))
    }

    /// An event of a room we subscribed to.
    #[local]
    async fn room_event(
        state: State<Self>,
        owner: Address,
        room: String,
        event: RoomEvent,
    ) -> Result<(), AppError> {
        let _ = (state, owner, room, event);
        Err(not_yet("room_event"))
    }
}
