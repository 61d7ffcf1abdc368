//! The chat's persisted state: rooms we host, our rooms (copies), our
//! files, and the live-only parts (pages, rate windows, subscriptions).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::types::*;

/// Most rooms one node hosts.
pub const MAX_HOSTED: usize = 1_000;
/// Most rooms (and invitations) one node is in.
pub const MAX_ROOMS: usize = 2_000;
/// Most members of one room.
pub const MAX_MEMBERS: usize = 1_000;
/// Most invitations waiting for an answer (any node may invite us).
pub const MAX_INVITATIONS: usize = 100;
/// Most of our messages queued or failed in one room.
pub const MAX_OUTBOX: usize = 500;
/// Client ids remembered per member for idempotent sends.
pub const RECENT_SENDS: usize = 256;
/// Bytes of other nodes' files cached.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Default, Serialize, Deserialize)]
pub struct Chat {
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Rooms we host, by room id.
    #[serde(default)]
    pub hosted: BTreeMap<String, Hosted>,
    /// Rooms we are in or invited to, by address.
    #[serde(default)]
    pub rooms: BTreeMap<String, RoomCopy>,
    #[serde(default)]
    pub next_room: u64,
    /// Files we shared, by id.
    #[serde(default)]
    pub files: BTreeMap<String, Attachment>,
    /// Files of others we cached, oldest first: (node, id, size).
    #[serde(default)]
    pub cache: VecDeque<(String, String, u64)>,
    /// Our file id -> rooms it was sent to (who may fetch it).
    #[serde(default)]
    pub file_rooms: BTreeMap<String, BTreeSet<String>>,
    #[serde(skip)]
    pub live: Live,
}

/// A room we host.
#[derive(Clone, Serialize, Deserialize)]
pub struct Hosted {
    pub name: String,
    pub kind: RoomKind,
    pub members: BTreeMap<String, HostedMember>,
    /// Invited node -> who invited it.
    #[serde(default)]
    pub invited: BTreeMap<String, String>,
    /// The last durable event number.
    pub last_ev: u64,
    /// Per member: recent (client id, message id), for idempotent sends.
    #[serde(default)]
    pub recent: BTreeMap<String, VecDeque<(String, u64)>>,
    #[serde(default)]
    pub created_at: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct HostedMember {
    pub role: Role,
    pub display_name: String,
    pub color: String,
}

/// A room we are in (or invited to): our copy's bookkeeping.
#[derive(Clone, Serialize, Deserialize)]
pub struct RoomCopy {
    pub address: String,
    pub host: String,
    pub name: String,
    pub kind: RoomKind,
    /// `None`: an invitation.
    pub role: Option<Role>,
    #[serde(default)]
    pub members: Vec<Member>,
    /// The last host event applied to our copy.
    #[serde(default)]
    pub cursor: u64,
    /// The host's last event when we joined: older room states, from
    /// before we were a member, are history, not our removal.
    #[serde(default)]
    pub joined_ev: u64,
    #[serde(default)]
    pub last_read: u64,
    #[serde(default)]
    pub unread: u32,
    #[serde(default)]
    pub mentions: u32,
    #[serde(default)]
    pub last_message: Option<Message>,
    /// Our messages not yet stored by the host, in order (pending first
    /// in send order; failed ones stay until retried or discarded).
    #[serde(default)]
    pub outbox: VecDeque<Message>,
    #[serde(default)]
    pub invited_by: Option<String>,
    /// Last activity, for the sidebar order.
    #[serde(default)]
    pub activity: u64,
    #[serde(skip, default = "yes")]
    pub host_online: bool,
}

fn yes() -> bool {
    true
}

/// What lives only while the process runs.
#[derive(Default)]
pub struct Live {
    /// Our open pages' presence sockets.
    pub pages: BTreeMap<u64, Presence>,
    /// What we last told hosts about our presence.
    pub reported: Option<Presence>,
    /// Per sender node: when its recent messages arrived (ms), at a host.
    pub rate: BTreeMap<String, VecDeque<u64>>,
    /// Presence of members at our hosted rooms: node -> (presence, lease
    /// end in ms).
    pub presence: BTreeMap<String, (Presence, u64)>,
    /// Rooms of other hosts whose live stream we hold.
    pub subscribed: BTreeSet<String>,
    /// Address -> (next attempt at, backoff ms) for subscriptions.
    pub retry: BTreeMap<String, (u64, u64)>,
    /// Subscriptions in flight.
    pub subscribing: BTreeSet<String>,
    /// Whether counters were checked against the store after boot.
    pub recovered: bool,
    /// Our messages the host just stored, by client id, for `send`'s
    /// answer (taken by it; bounded by `MAX_OUTBOX`).
    pub delivered: BTreeMap<String, Message>,
    /// Timer ticks since start.
    pub ticks: u64,
}

thread_local! {
    /// The app's state, for tasks started where no handler hands it over
    /// (the presence socket).
    static STATE: std::cell::RefCell<Option<hearth_sdk::State<Chat>>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps the state for [`state`] (at init).
pub fn keep_state(state: &hearth_sdk::State<Chat>) {
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
}

pub fn state() -> Option<hearth_sdk::State<Chat>> {
    STATE.with(|s| s.borrow().clone())
}

impl Chat {
    pub fn our_profile(&self) -> Profile {
        self.profile
            .clone()
            .unwrap_or_else(|| crate::util::default_profile(hearth_sdk::our().node()))
    }

    pub fn summary(&self, room: &RoomCopy) -> RoomSummary {
        let our = hearth_sdk::our().node().to_string();
        let peer = (room.kind == RoomKind::Direct)
            .then(|| {
                room.members
                    .iter()
                    .map(|m| m.node.clone())
                    .find(|n| *n != our)
                    .or_else(|| {
                        // Before the peer joined: the invited node.
                        self.hosted
                            .get(crate::util::room_id(&room.address))
                            .and_then(|h| h.invited.keys().next().cloned())
                    })
            })
            .flatten();
        RoomSummary {
            address: room.address.clone(),
            host: room.host.clone(),
            name: room.name.clone(),
            kind: room.kind,
            role: room.role,
            member_count: room.members.len() as u32,
            unread: room.unread,
            mentions: room.mentions,
            last_read: room.last_read,
            last_message: room.last_message.clone(),
            pending: room
                .outbox
                .iter()
                .filter(|m| m.delivery == Delivery::Pending)
                .count() as u32,
            host_online: room.host_online,
            peer,
            invited_by: room.invited_by.clone(),
        }
    }
}
