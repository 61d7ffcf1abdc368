//! A process built against WIT 0.1.2 (world `process-peers`: `init`,
//! `handle`, `handle-batch`, `deliver` and `deliver-batch`), with
//! wit-bindgen and no SDK, as an app built before 0.1.3 was. A node of
//! 0.1.2 or later hands it every event through `deliver` or
//! `deliver-batch`, its source as a slot of the peer table kept here.

// The generated bindings take many arguments in one import.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "wit", world: "process-peers" });

include!("../../common.rs");

use hearth::process::types::{Incoming, PeerIncoming};

/// Slots a 0.1.2 node may name (the WIT's bound).
const SLOTS: usize = 1024;

thread_local! {
    /// Which address each slot of the peer table holds.
    static PEERS: RefCell<Vec<Option<Address>>> = const { RefCell::new(Vec::new()) };
}

/// `event` as `handle` would take it: the source read from the peer table
/// (updated first when the event names it). `None` for a slot the node
/// never filled (a broken promise of the node's).
fn from_peer(event: PeerEvent) -> Option<Event> {
    let incoming = match event {
        PeerEvent::Failed(failure) => return Some(Event::Failed(failure)),
        PeerEvent::Message(incoming) => incoming,
    };
    let PeerIncoming {
        id,
        source_slot,
        source,
        message,
        blob,
        context,
    } = incoming;
    let slot = source_slot as usize;
    if slot >= SLOTS {
        return None;
    }
    let source = PEERS.with(|peers| {
        let mut peers = peers.borrow_mut();
        if peers.len() <= slot {
            peers.resize(slot + 1, None);
        }
        if let Some(source) = source {
            peers[slot] = Some(source);
        }
        peers[slot].clone()
    })?;
    Some(Event::Message(Incoming {
        id,
        source,
        message,
        blob,
        context,
    }))
}

struct Compat;

impl Guest for Compat {
    fn init(our: Address) {
        on_init(our);
    }

    fn handle(event: Event) {
        count_call(false, 1);
        on_event(event, "handle");
    }

    fn handle_batch(events: Vec<Event>) {
        count_call(true, events.len() as u64);
        for event in events {
            on_event(event, "handle-batch");
        }
    }

    fn deliver(event: PeerEvent) {
        count_call(false, 1);
        if let Some(event) = from_peer(event) {
            on_event(event, "deliver");
        }
    }

    fn deliver_batch(events: Vec<PeerEvent>) {
        count_call(true, events.len() as u64);
        for event in events {
            if let Some(event) = from_peer(event) {
                on_event(event, "deliver-batch");
            }
        }
    }
}

export!(Compat);
