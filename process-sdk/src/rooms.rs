//! Live rooms across nodes: a typed client of the node's rooms hub
//! `rooms:distro:sys`.
//!
//! A process owns the rooms it publishes to; processes on any node
//! subscribe through their own node's hub and receive the room's events
//! in order, each with its sequence number, as fire-and-forget requests.
//!
//! ```ignore
//! // The owner.
//! let seq = rooms::publish_acked("lobby", &json!({"text": "hi"})).await?;
//!
//! // A subscriber, anywhere (it needs `request_networking` for another node).
//! let joined = rooms::subscribe(&owner, "lobby", None).await?;
//!
//! // In `handle`, before anything else:
//! if let Some(delivery) = rooms::delivery(&msg) {
//!     match delivery.event {
//!         RoomEvent::Event { seq, payload } => { /* save seq as the cursor */ }
//!         RoomEvent::Gap { next } => { /* events before `next` are gone */ }
//!         _ => {}
//!     }
//! }
//! // The owner is asked before anyone joins:
//! if let Some(join) = rooms::join_request(&msg) {
//!     let _ = rooms::admit(msg.id(), &json!({"members": 3}));
//! }
//! ```
//!
//! Events with a sequence number above the `from` given to [`subscribe`]
//! are replayed from the owner's bounded tail first (or a
//! [`RoomEvent::Gap`] says they are gone), then live ones follow, each
//! exactly once. Save the last `seq` seen (durably, for a restart) and pass
//! it as `from` to resume. The wire mirrors `node/src/rooms/types.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kv::{call, service, DecodeError};
use crate::{Address, Incoming, Request, SendError, SendErrorKind};

/// How long a rooms call waits for its hub. A subscription may cross to
/// the owner's node and ask the owner (which has 5 s to answer), so this
/// leaves room for a dial as well.
pub const ROOMS_TIMEOUT_MS: u64 = 20_000;

/// The hub's name: `rooms:distro:sys` on our own node.
const HUB: &str = "rooms";

/// Why a rooms call failed. The first variants come from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum RoomsError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The owner refused the join; its answer (the `{"error": ..}` object)
    /// is attached.
    #[error("the owner refused: {0}")]
    Refused(Value),
    /// The owner could not be asked (it is not running, its node is
    /// offline, or it did not answer in time).
    #[error("the owner cannot be reached: {0}")]
    Unreachable(String),
    /// A bound of the hub was reached: rooms per process, subscribers per
    /// room, ...
    #[error("limit reached: {0}")]
    Limit(String),
    #[error("only {0} may do that")]
    Forbidden(String),
    /// The request could not be delivered or answered.
    #[serde(skip)]
    #[error("rooms hub unreachable: {0}")]
    Send(SendError),
    /// The reply did not decode, or was not the answer to this request.
    #[serde(skip)]
    #[error("rooms reply unreadable: {0}")]
    Decode(String),
}

impl From<SendError> for RoomsError {
    fn from(e: SendError) -> Self {
        RoomsError::Send(e)
    }
}

impl From<DecodeError> for RoomsError {
    fn from(e: DecodeError) -> Self {
        RoomsError::Decode(e.0)
    }
}

/// What a process asks its hub.
#[derive(Serialize)]
enum RoomsRequest<'a, P: Serialize + ?Sized> {
    Publish {
        room: &'a str,
        payload: &'a P,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        durable: bool,
    },
    Subscribe {
        owner: &'a Address,
        room: &'a str,
        from: Option<u64>,
    },
    Unsubscribe {
        owner: &'a Address,
        room: &'a str,
    },
}

/// The requests without a payload.
type Plain<'a> = RoomsRequest<'a, ()>;

/// What the hub answers.
#[derive(Debug, Deserialize)]
enum RoomsResponse {
    Published { seq: u64 },
    Joined { next: u64, snapshot: Value },
    Left,
}

/// A subscription the owner agreed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    /// The sequence number of the next live event.
    pub next: u64,
    /// The `"ok"` value of the owner's answer to the join, or null.
    pub snapshot: Value,
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
    /// This subscriber fell behind and missed events from `from` on; the
    /// hub resumes it from the tail (a `Gap` follows if they are gone).
    Lagged { from: u64 },
    /// The owner's node cannot be reached; the hub resubscribes by itself.
    Offline,
    /// Back after `Offline`, resuming from the cursor.
    Online,
    /// The room ended (the owner's node restarted without a durable tail).
    Ended,
}

/// An event of a room we subscribed to: the body of a fire-and-forget
/// request `{"room_event": RoomDelivery}` from our hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomDelivery {
    pub owner: Address,
    pub room: String,
    pub event: RoomEvent,
}

/// Someone asks to join one of our rooms: the body of a request
/// `{"room_join": RoomJoin}` from our hub. Answer it with [`admit`] or
/// [`refuse`] within 5 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomJoin {
    pub room: String,
    pub subscriber: Address,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FromHub {
    RoomEvent(RoomDelivery),
    RoomJoin(RoomJoin),
}

/// Our hub's address. The names are valid constants, so this fails only
/// if our own node name is invalid, which the node never gives us.
fn hub() -> Result<Address, SendError> {
    service(HUB).map_err(|e| SendError::new(SendErrorKind::BadAddress, crate::our(), e.0))
}

/// Publishes `payload` to our room `room`, fire-and-forget. Errors are
/// those the kernel sees at once (a full hub backlog is `mailbox-full`).
pub fn publish<P: Serialize + ?Sized>(room: &str, payload: &P) -> Result<(), SendError> {
    let body = RoomsRequest::Publish {
        room,
        payload,
        durable: false,
    };
    Request::to(hub()?).json(&body).send().map(|_| ())
}

/// Publishes `payload` to our room `room` and returns its sequence number
/// (the first event of a room is 1).
pub async fn publish_acked<P: Serialize + ?Sized>(
    room: &str,
    payload: &P,
) -> Result<u64, RoomsError> {
    publish_with(room, payload, false).await
}

/// [`publish_acked`] to a durable room: from its first durable publish on,
/// the room keeps its tail in the node's state store, so it survives a
/// restart of the node (subscribers resume from their cursor, no `ended`).
/// The event reaches subscribers, and this returns, once it is on disk.
pub async fn publish_durable<P: Serialize + ?Sized>(
    room: &str,
    payload: &P,
) -> Result<u64, RoomsError> {
    publish_with(room, payload, true).await
}

async fn publish_with<P: Serialize + ?Sized>(
    room: &str,
    payload: &P,
    durable: bool,
) -> Result<u64, RoomsError> {
    let body = RoomsRequest::Publish {
        room,
        payload,
        durable,
    };
    match ask(&body).await? {
        RoomsResponse::Published { seq } => Ok(seq),
        other => Err(unexpected("Published", &other)),
    }
}

/// Subscribes to `room` of the process `owner` (on any node), resuming
/// after `from`, the last sequence number seen (`None`: only events
/// published from now on). Events then arrive as requests that
/// [`delivery`] recognises.
pub async fn subscribe(
    owner: &Address,
    room: &str,
    from: Option<u64>,
) -> Result<Joined, RoomsError> {
    let body: Plain = RoomsRequest::Subscribe { owner, room, from };
    match ask(&body).await? {
        RoomsResponse::Joined { next, snapshot } => Ok(Joined { next, snapshot }),
        other => Err(unexpected("Joined", &other)),
    }
}

/// Stops the delivery of `room` of `owner` to us.
pub async fn unsubscribe(owner: &Address, room: &str) -> Result<(), RoomsError> {
    let body: Plain = RoomsRequest::Unsubscribe { owner, room };
    match ask(&body).await? {
        RoomsResponse::Left => Ok(()),
        other => Err(unexpected("Left", &other)),
    }
}

async fn ask<P: Serialize + ?Sized>(
    body: &RoomsRequest<'_, P>,
) -> Result<RoomsResponse, RoomsError> {
    let (response, _) =
        call::<RoomsResponse, RoomsError>(hub()?, body, None, ROOMS_TIMEOUT_MS).await?;
    Ok(response)
}

fn unexpected(wanted: &str, got: &RoomsResponse) -> RoomsError {
    RoomsError::Decode(format!("expected {wanted}, got {got:?}"))
}

/// Whether `source` is the rooms hub of the node `our_node`.
fn is_hub(source: &Address, our_node: &str) -> bool {
    is_hub_process(source) && source.node() == our_node
}

/// The cheap part of [`is_hub`], checked first on every message.
fn is_hub_process(source: &Address) -> bool {
    let id = source.process();
    id.process() == HUB && id.package() == "distro" && id.publisher() == "sys"
}

/// What a request from our hub carries, if it is one the SDK knows. Costs
/// three string comparisons for any other message.
fn from_hub(msg: &Incoming) -> Option<FromHub> {
    if !msg.is_request() || !is_hub_process(msg.source()) {
        return None;
    }
    if !is_hub(msg.source(), crate::our().node()) {
        return None;
    }
    msg.json().ok()
}

/// A room event delivered to us by our hub; `None` for any other message.
pub fn delivery(msg: &Incoming) -> Option<RoomDelivery> {
    match from_hub(msg)? {
        FromHub::RoomEvent(delivery) => Some(delivery),
        FromHub::RoomJoin(_) => None,
    }
}

/// A join request for one of our rooms; `None` for any other message.
/// Answer it (`msg.id()`) with [`admit`] or [`refuse`].
pub fn join_request(msg: &Incoming) -> Option<RoomJoin> {
    match from_hub(msg)? {
        FromHub::RoomJoin(join) => Some(join),
        FromHub::RoomEvent(_) => None,
    }
}

/// Admits the subscriber of join request `id`, giving it `snapshot` (the
/// subscriber's [`Joined::snapshot`]).
pub fn admit<S: Serialize + ?Sized>(id: u64, snapshot: &S) -> Result<(), SendError> {
    crate::respond_json(id, &Admit { ok: snapshot })
}

/// Refuses the subscriber of join request `id`; it gets
/// [`RoomsError::Refused`] with `{"error": {"code", "message"}}`.
pub fn refuse(id: u64, code: &str, message: &str) -> Result<(), SendError> {
    crate::respond_json(id, &refusal(code, message))
}

#[derive(Serialize)]
struct Admit<'a, S: Serialize + ?Sized> {
    ok: &'a S,
}

fn refusal(code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Address {
        "alice.os@owner:probe:test".parse().unwrap()
    }

    #[test]
    fn requests_have_the_node_shapes() {
        let publish = RoomsRequest::Publish {
            room: "lobby",
            payload: &json!({"n": 1}),
            durable: false,
        };
        assert_eq!(
            serde_json::to_value(&publish).unwrap(),
            json!({"Publish": {"room": "lobby", "payload": {"n": 1}}})
        );
        let durable = RoomsRequest::Publish {
            room: "lobby",
            payload: &json!({"n": 1}),
            durable: true,
        };
        assert_eq!(
            serde_json::to_value(&durable).unwrap(),
            json!({"Publish": {"room": "lobby", "payload": {"n": 1}, "durable": true}})
        );
        let owner = owner();
        let subscribe: Plain = RoomsRequest::Subscribe {
            owner: &owner,
            room: "lobby",
            from: None,
        };
        assert_eq!(
            serde_json::to_value(&subscribe).unwrap(),
            json!({"Subscribe": {"owner": "alice.os@owner:probe:test", "room": "lobby", "from": null}})
        );
        let unsubscribe: Plain = RoomsRequest::Unsubscribe {
            owner: &owner,
            room: "lobby",
        };
        assert_eq!(
            serde_json::to_value(&unsubscribe).unwrap(),
            json!({"Unsubscribe": {"owner": "alice.os@owner:probe:test", "room": "lobby"}})
        );
    }

    #[test]
    fn replies_decode() {
        let ok: Result<RoomsResponse, RoomsError> =
            serde_json::from_value(json!({"Ok": {"Joined": {"next": 4, "snapshot": null}}}))
                .unwrap();
        assert!(matches!(ok, Ok(RoomsResponse::Joined { next: 4, .. })));
        let ok: Result<RoomsResponse, RoomsError> =
            serde_json::from_value(json!({"Ok": {"Published": {"seq": 1}}})).unwrap();
        assert!(matches!(ok, Ok(RoomsResponse::Published { seq: 1 })));
        let refused: Result<RoomsResponse, RoomsError> =
            serde_json::from_value(json!({"Err": {"Refused": refusal("forbidden", "no")}}))
                .unwrap();
        match refused {
            Err(RoomsError::Refused(answer)) => assert_eq!(answer["error"]["code"], "forbidden"),
            other => panic!("{other:?}"),
        }
        let unreachable: Result<RoomsResponse, RoomsError> =
            serde_json::from_value(json!({"Err": {"Unreachable": "offline"}})).unwrap();
        assert!(matches!(unreachable, Err(RoomsError::Unreachable(_))));
    }

    #[test]
    fn events_use_external_snake_case_tags() {
        let cases = [
            (
                json!({"event": {"seq": 3, "payload": [1]}}),
                RoomEvent::Event {
                    seq: 3,
                    payload: json!([1]),
                },
            ),
            (json!({"gap": {"next": 7}}), RoomEvent::Gap { next: 7 }),
            (
                json!({"lagged": {"from": 5}}),
                RoomEvent::Lagged { from: 5 },
            ),
            (json!("offline"), RoomEvent::Offline),
            (json!("online"), RoomEvent::Online),
            (json!("ended"), RoomEvent::Ended),
        ];
        for (wire, event) in cases {
            assert_eq!(serde_json::to_value(&event).unwrap(), wire);
            assert_eq!(serde_json::from_value::<RoomEvent>(wire).unwrap(), event);
        }
    }

    #[test]
    fn hub_bodies_are_told_apart() {
        let body = json!({"room_event": {"owner": "alice.os@owner:probe:test", "room": "r", "event": "offline"}});
        match serde_json::from_value::<FromHub>(body).unwrap() {
            FromHub::RoomEvent(d) => {
                assert_eq!(
                    (d.owner, d.room, d.event),
                    (owner(), "r".into(), RoomEvent::Offline)
                )
            }
            FromHub::RoomJoin(_) => panic!("a delivery"),
        }
        let body = json!({"room_join": {"room": "r", "subscriber": "bob.os@sub:probe:test"}});
        assert!(matches!(
            serde_json::from_value::<FromHub>(body).unwrap(),
            FromHub::RoomJoin(j) if j.subscriber.node() == "bob.os"
        ));
        assert!(serde_json::from_value::<FromHub>(json!({"echo": 1})).is_err());
        let hub: Address = "a.os@rooms:distro:sys".parse().unwrap();
        assert!(is_hub(&hub, "a.os"));
        assert!(!is_hub(&hub, "b.os"));
        assert!(!is_hub(&owner(), "alice.os"));
    }

    #[test]
    fn admit_wraps_the_snapshot_in_ok() {
        let body = serde_json::to_value(Admit {
            ok: &json!({"x": 1}),
        })
        .unwrap();
        assert_eq!(body, json!({"ok": {"x": 1}}));
    }
}
