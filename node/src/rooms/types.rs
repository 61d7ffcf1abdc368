//! The wire of `rooms:distro:sys`: JSON bodies, mirrored by
//! `process-sdk/src/rooms.rs`. Replies are `{"Ok": ..}` / `{"Err": ..}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request to a node's rooms hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoomsRequest {
    /// From a local process: publish `payload` to its room `room`. As a
    /// request with a timeout it is answered with `Published { seq }`.
    /// With `durable`, the room keeps its tail in the node's state store
    /// from then on (see `rooms/tails.rs`): it survives a restart of the
    /// owner's node, and its events are fanned out and acknowledged once
    /// on disk.
    Publish {
        room: String,
        payload: Value,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        durable: bool,
    },
    /// From a local process: subscribe to `room` of the process `owner`
    /// (`node@process:package:publisher`), resuming after `from` (the last
    /// sequence number seen; `None` starts with the next event). Answered
    /// with `Joined` once the owner agreed, or an error.
    Subscribe {
        owner: String,
        room: String,
        from: Option<u64>,
    },
    /// From a local process: stop receiving `room` of `owner`.
    Unsubscribe { owner: String, room: String },
    /// Hub to hub: a process of the sending node asks to join `room` of
    /// the local process `owner` (a process id), resuming after `from`.
    Join {
        owner: String,
        room: String,
        subscriber: String,
        from: Option<u64>,
        /// The room's incarnation `from` counts in, if known: another one
        /// means the room restarted (`ended`, then the new stream).
        #[serde(default)]
        incarnation: Option<u64>,
    },
    /// Hub to hub: `subscriber` (on the sending node) left `room`.
    Leave {
        owner: String,
        room: String,
        subscriber: String,
    },
    /// Hub to hub: events of a room the sending node owns, for the
    /// receiving node's subscribers: one copy per node. With `to`, a replay
    /// for that one subscriber, after which it is live at `next`.
    Relay {
        owner: String,
        room: String,
        to: Option<String>,
        events: Vec<RoomEvent>,
        next: u64,
        /// Which life of the room these events belong to.
        incarnation: u64,
    },
    /// Hub to hub: held unanswered by the owner's hub (until shortly before
    /// its timeout) so that the subscribing hub learns at once, through
    /// `offline`, when the owner's node goes away.
    Hold,
}

/// What the hub answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoomsResponse {
    Published {
        seq: u64,
    },
    /// Subscribed. `next` is the sequence number of the next live event;
    /// `snapshot` is what the owner answered to the join, if anything.
    Joined {
        next: u64,
        snapshot: Value,
    },
    Left,
    Held,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum RoomsError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The owner refused the join; its answer is attached.
    #[error("the owner refused: {0}")]
    Refused(Value),
    /// The owner could not be asked (it is not running, or did not answer).
    #[error("the owner cannot be reached: {0}")]
    Unreachable(String),
    /// A bound was reached: rooms per process, subscribers per room, ...
    #[error("limit reached: {0}")]
    Limit(String),
    #[error("only {0} may do that")]
    Forbidden(String),
}

/// One entry of a room's stream, as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomEvent {
    /// A published event.
    Event { seq: u64, payload: Value },
    /// Events up to `next - 1` are gone from the owner's tail; the stream
    /// goes on at `next`.
    Gap { next: u64 },
    /// This subscriber fell behind and missed events from `from` on; it is
    /// resumed from the tail (a `gap` follows if they are gone).
    Lagged { from: u64 },
    /// The owner's node cannot be reached; the hub resubscribes by itself.
    Offline,
    /// Back after `offline`, resuming from the cursor.
    Online,
    /// The room the subscriber knew ended: its node restarted and its
    /// history is gone (tails are kept in memory). A `gap` with the new
    /// first sequence number follows, and the stream starts over.
    Ended,
}

/// What a subscriber process receives: a fire-and-forget request whose
/// body is `{"room_event": RoomDelivery}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomDelivery {
    pub owner: String,
    pub room: String,
    pub event: RoomEvent,
}

/// What the owner process is asked when someone joins one of its rooms:
/// a request with body `{"room_join": RoomJoin}`. Any answer without an
/// `"error"` field admits the subscriber (`{"ok": snapshot}` gives the
/// snapshot); an answer with one refuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomJoin {
    pub room: String,
    pub subscriber: String,
}
