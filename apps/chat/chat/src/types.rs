//! What crosses the chat's interfaces: the browser API (through the
//! generated TypeScript client), the host methods other nodes' chat
//! processes call, and the events of the rooms it publishes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Anyone who knows the address may join.
    Public,
    /// Only invited nodes may join.
    Private,
    /// Two members, neither may invite.
    Direct,
}

/// What a member may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

/// A user's presence: from their open pages, and whether their node is
/// reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
    #[default]
    Offline,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    Text,
    Image,
    File,
    /// Said by the room itself: joins, leaves, renames.
    System,
}

/// Where a message of ours is on its way to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Ordered and stored by the host.
    #[default]
    Sent,
    /// Queued on our node while the host is unreachable.
    Pending,
    /// The host refused it, or it waited too long; `error` says why.
    Failed,
}

/// A file stored on the node of the member who shared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    /// The node that stores it (the sender's).
    pub node: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// An attachment's bytes, as the browser gets them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentData {
    pub attachment: Attachment,
    /// The bytes, base64 (standard alphabet, padded).
    pub data: String,
}

/// Why a message failed, for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// For `rate-limited`: how long the host said to wait, in ms from
    /// its refusal, so the page can count it down; `null` otherwise, and
    /// in failures stored before it was kept.
    #[serde(default)]
    pub retry_ms: Option<u64>,
}

/// One message of a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The host's number for it, increasing in the room; 0 while pending.
    pub id: u64,
    /// The room's address, `room-id@host-node`.
    pub room: String,
    /// The sender's node.
    pub from: String,
    pub kind: MessageKind,
    pub text: String,
    #[serde(default)]
    pub reply_to: Option<u64>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    /// Nodes named with `@node` in the text that are members.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Emoji -> nodes that reacted with it.
    #[serde(default)]
    pub reactions: BTreeMap<String, Vec<String>>,
    /// Milliseconds since the Unix epoch, by the host's clock (the
    /// sender's while pending).
    pub sent_at: u64,
    #[serde(default)]
    pub edited_at: Option<u64>,
    #[serde(default)]
    pub deleted: bool,
    /// The room's event number (`ev`) of the last change to it: its send,
    /// an edit, the delete or a reaction. Of two copies of a message the
    /// one with the higher version is the newer. 0 while pending, and in
    /// copies stored before messages had versions.
    #[serde(default)]
    pub version: u64,
    /// Chosen by the sender's node; a pending message is known by it.
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub error: Option<Failure>,
}

/// A page of history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub messages: Vec<Message>,
    /// Older messages exist before the first of this page.
    pub has_more: bool,
}

/// A member of a room, as the room's host knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub node: String,
    pub role: Role,
    pub display_name: String,
    /// `#rrggbb`.
    pub color: String,
    pub presence: Presence,
    /// When the member was last online or away (ms since the epoch), 0 if
    /// never seen.
    #[serde(default)]
    pub last_seen: u64,
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub node: String,
    pub display_name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// A room in the sidebar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// `room-id@host-node`.
    pub address: String,
    pub host: String,
    pub name: String,
    pub kind: RoomKind,
    /// Our role; `None` for an invitation not yet accepted.
    pub role: Option<Role>,
    pub member_count: u32,
    /// Messages from others after `last_read`.
    pub unread: u32,
    /// Those of them that mention us.
    pub mentions: u32,
    /// The id of the last message we read.
    pub last_read: u64,
    pub last_message: Option<Message>,
    /// Our messages still queued for the host.
    pub pending: u32,
    /// Whether the host's node answers (false while it is offline: the
    /// history is read from our copy and sends are queued).
    pub host_online: bool,
    /// For a direct room: the other member.
    #[serde(default)]
    pub peer: Option<String>,
    /// Who invited us, for an invitation.
    #[serde(default)]
    pub invited_by: Option<String>,
}

/// A public room another node hosts, for the join dialog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicRoom {
    pub address: String,
    pub name: String,
    pub member_count: u32,
}

/// What our page hears on our `view` room: every change it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ViewEvent {
    /// A new or changed message (sent, edited, deleted, reacted, pending
    /// turned sent or failed). Match it by `client_id` first (a pending
    /// message has id 0), then by `id`.
    Message { message: Message },
    /// One of our pending or failed messages was discarded (on any of our
    /// pages): it is no longer shown.
    Discarded { address: String, client_id: String },
    /// A room appeared or changed (name, unread, role, host reachability,
    /// invitation).
    Room { room: RoomSummary },
    /// A room is no longer ours: we left, were removed, or declined.
    RoomGone { address: String, reason: String },
    /// The members of a room changed.
    Members {
        address: String,
        members: Vec<Member>,
    },
    /// A member's presence in a room changed.
    Presence {
        address: String,
        node: String,
        presence: Presence,
    },
    /// A member is typing in a room (shown for a few seconds).
    Typing { address: String, node: String },
    /// Our profile changed.
    Profile { profile: Profile },
}

/// What a room's host publishes to the room, in order. `ev` numbers the
/// durable ones (messages and room state) from 1 without holes; typing and
/// presence are live only.
// Wire types, made once per event and serialised at once: boxing the large
// variant would cost an allocation for nothing. (Only 64-bit hosts warn;
// the app itself is built for wasm32.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomStreamEvent {
    Message { ev: u64, message: Message },
    State { ev: u64, state: RoomState },
    Typing { node: String },
    Presence { node: String, presence: Presence },
}

/// A room's settings and members, as its host publishes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    pub address: String,
    pub name: String,
    pub kind: RoomKind,
    pub members: Vec<Member>,
}

/// A durable event of a room, as `host_sync` returns it.
#[allow(clippy::large_enum_variant)] // as RoomStreamEvent
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logged {
    Message(Message),
    State(RoomState),
}

/// What `host_sync` answers: events after the asked cursor, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPage {
    /// `(ev, event)`, ascending.
    pub events: Vec<(u64, Logged)>,
    /// The host's last `ev`: more follow if it is above the last given.
    pub last: u64,
}

/// What a host answers to a join: the room as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    pub state: RoomState,
    pub last: u64,
}
