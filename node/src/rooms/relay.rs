//! Relays to subscribing nodes: a room's live events go once to each node
//! that subscribes, and a burst's events leave together, in one `Relay`
//! (`RELAY_GAP`, the room's `Outbox`). Only one room's outbox holds a
//! burst at a time (`HubState::bursting`), so relays to a node keep
//! publish order across rooms too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::debug;

use super::room::{self, Room, RELAY_BYTES, RELAY_EVENTS};
use super::{as_text, Hub, HubState};
use crate::types::{Address, SendErrorKind};

/// A live event published this soon after the previous one (its relay's
/// end, or its queuing) is part of a burst: it waits in the room's outbox
/// and leaves with the burst in one relay per subscribing node.
const RELAY_GAP: Duration = Duration::from_micros(5);

impl Hub {
    /// Before an event of `owner`'s `room` fans out: the burst another
    /// room's outbox holds leaves first.
    pub(super) fn end_other_burst(&self, state: &mut HubState, owner: &Address, room: &str) {
        let Some((other_owner, other_room)) = state.bursting.take() else {
            return;
        };
        if other_owner.process == owner.process && other_room == room {
            state.bursting = Some((other_owner, other_room));
            return;
        }
        let key = (other_owner.process.clone(), other_room);
        if let Some(other) = state.owned.get_mut(&key) {
            self.send_outbox(&other_owner, &key.1, other);
        }
    }

    /// Relay live event `seq` of `room` to its subscribing nodes: at once,
    /// or with the rest of its burst.
    pub(super) fn relay_live(
        self: &Arc<Self>,
        owner: &Address,
        room_name: &str,
        room: &mut Room,
        seq: u64,
        payload: &Arc<Value>,
    ) {
        if room.nodes.is_empty() {
            return;
        }
        let now = Instant::now();
        let outbox = &mut room.outbox;
        let burst = outbox.sending
            || outbox
                .last
                .is_some_and(|t| now.duration_since(t) < RELAY_GAP);
        if !burst {
            self.relay(owner, room_name, room, &[(seq, payload.clone())]);
            room.outbox.last = Some(Instant::now());
            return;
        }
        let bytes = room
            .bytes_of(seq)
            .unwrap_or_else(|| room::encoded_len(payload));
        if room.outbox.events.len() >= RELAY_EVENTS || room.outbox.bytes + bytes > RELAY_BYTES {
            self.send_outbox(owner, room_name, room);
        }
        let outbox = &mut room.outbox;
        outbox.events.push((seq, payload.clone()));
        outbox.bytes += bytes;
        outbox.last = Some(now);
        if !outbox.sending {
            outbox.sending = true;
            let hub = self.clone();
            let owner = owner.clone();
            let key = (owner.process.clone(), room_name.to_string());
            self.spawn(async move {
                let mut state = hub.lock();
                if let Some(room) = state.owned.get_mut(&key) {
                    room.outbox.sending = false;
                    hub.send_outbox(&owner, &key.1, room);
                }
            });
        }
    }

    /// Relay the events of `room`'s outbox now, if any.
    pub(super) fn send_outbox(&self, owner: &Address, room_name: &str, room: &mut Room) {
        if room.outbox.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut room.outbox.events);
        room.outbox.bytes = 0;
        self.relay(owner, room_name, room, &events);
        room.outbox.last = Some(Instant::now());
    }

    /// Relay live `events` (in seq order, not empty) of `room` to each
    /// subscribing node: one body, encoded once.
    fn relay(
        &self,
        owner: &Address,
        room_name: &str,
        room: &mut Room,
        events: &[(u64, Arc<Value>)],
    ) {
        let Some(&(last, _)) = events.last() else {
            return;
        };
        let body = relay_body(owner, room_name, events, last + 1, room.incarnation);
        let n = events.len() as u64;
        room.nodes
            .retain(|node, _| match self.tell_hub_body(node, body.clone()) {
                Ok(()) => {
                    self.count_by(|m| &m.rooms_relays, n);
                    true
                }
                Err(SendErrorKind::MailboxFull) => true,
                Err(kind) => {
                    debug!(%node, kind = kind.as_str(), "subscribing node gone; its hub rejoins");
                    false
                }
            });
    }
}

/// `RoomsRequest::Relay` of live `events` for every subscriber (`to` is
/// null), written from borrowed parts: the same bytes as serializing the
/// request.
fn relay_body(
    owner: &Address,
    room: &str,
    events: &[(u64, Arc<Value>)],
    next: u64,
    incarnation: u64,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Event<'a> {
        Event { seq: u64, payload: &'a Value },
    }
    #[derive(serde::Serialize)]
    enum Request<'a> {
        Relay {
            #[serde(serialize_with = "as_text")]
            owner: &'a Address,
            room: &'a str,
            to: Option<&'a str>,
            events: Vec<Event<'a>>,
            next: u64,
            incarnation: u64,
        },
    }
    let request = Request::Relay {
        owner,
        room,
        to: None,
        events: events
            .iter()
            .map(|(seq, payload)| Event::Event { seq: *seq, payload })
            .collect(),
        next,
        incarnation,
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rooms::{RoomEvent, RoomsRequest};

    #[test]
    fn relay_body_is_the_relay_request_serialized() {
        let owner: Address = "a.os@owner:pkg:pub".parse().unwrap();
        let events = [
            (7, Arc::new(json!({"text": "one \"quoted\"", "n": [1, 2]}))),
            (8, Arc::new(json!("two"))),
        ];
        let request = RoomsRequest::Relay {
            owner: owner.to_string(),
            room: "lobby".into(),
            to: None,
            events: events
                .iter()
                .map(|(seq, payload)| RoomEvent::Event {
                    seq: *seq,
                    payload: (**payload).clone(),
                })
                .collect(),
            next: 9,
            incarnation: 42,
        };
        let body = relay_body(&owner, "lobby", &events, 9, 42);
        assert_eq!(body, serde_json::to_vec(&request).unwrap());
        let read: RoomsRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(read, request);
    }
}
