//! WIT records the node lowers into a guest and lifts out of it without
//! copying names into fresh `String`s.
//!
//! The records `wasmtime::component::bindgen!` generates own their strings,
//! so every event lowered four `String`s for its source address and every
//! `send-request` lifted four for its target. These mirror the WIT records
//! on the hot path instead: lowered addresses hold the node's shared
//! `Arc<str>` names (moved out of the message, no reference count
//! touched), and a lifted target is read in place from guest memory
//! (`WasmStr`) and compared with the last target before anything is built.
//! Their shapes are checked against the component's types when an instance
//! is loaded, like the generated ones.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::Arc;

use wasmtime::component::{ComponentType, Lift, Lower, WasmStr};
use wasmtime::StoreContext;

use super::bindings::wit;
use super::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use crate::types::{valid_name, Address, KernelMessage, ParseError, ProcessId, SendError};

/// `process-id`, lowered from shared names.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct ProcessIdOut {
    #[component(name = "process")]
    process: Arc<str>,
    #[component(name = "package")]
    package: Arc<str>,
    #[component(name = "publisher")]
    publisher: Arc<str>,
}

/// `address`, lowered from shared names.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct AddressOut {
    #[component(name = "node")]
    node: Arc<str>,
    #[component(name = "process")]
    process: ProcessIdOut,
}

impl From<Address> for AddressOut {
    fn from(a: Address) -> Self {
        Self {
            node: a.node.clone(),
            process: ProcessIdOut {
                process: a.process.process.clone(),
                package: a.process.package.clone(),
                publisher: a.process.publisher.clone(),
            },
        }
    }
}

/// `send-error`, with a shared target address.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct SendErrorOut {
    #[component(name = "kind")]
    kind: wit::SendErrorKind,
    #[component(name = "target")]
    target: AddressOut,
    #[component(name = "detail")]
    detail: String,
}

impl From<SendError> for SendErrorOut {
    fn from(e: SendError) -> Self {
        Self {
            kind: e.kind.into(),
            target: e.target.into(),
            detail: e.detail,
        }
    }
}

/// `incoming`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct IncomingOut {
    #[component(name = "id")]
    id: u64,
    #[component(name = "source")]
    source: AddressOut,
    #[component(name = "message")]
    message: wit::Message,
    #[component(name = "blob")]
    blob: Option<wit::Blob>,
    #[component(name = "context")]
    context: Option<Vec<u8>>,
}

/// `failure`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct FailureOut {
    #[component(name = "id")]
    id: u64,
    #[component(name = "error")]
    error: SendErrorOut,
    #[component(name = "context")]
    context: Option<Vec<u8>>,
}

/// A delivered message as the node holds it until it is lowered: its
/// source stays the message's shared [`Address`] (one reference), so an
/// event whose source the guest's peer table already holds never takes
/// the four names apart (four reference counts up, then down again).
pub struct Incoming {
    id: u64,
    source: Address,
    message: wit::Message,
    blob: Option<wit::Blob>,
    context: Option<Vec<u8>>,
}

/// An event for the guest: lowered as `event` ([`EventOut`], for `handle`
/// and `handle-batch`) or as `peer-event` ([`Peers::peer_event`]).
pub enum Event {
    Message(Incoming),
    Failed(FailureOut),
}

/// `event`: what `handle` and `handle-batch` take.
#[derive(ComponentType, Lower)]
#[component(variant)]
pub enum EventOut {
    #[component(name = "message")]
    Message(IncomingOut),
    #[component(name = "failed")]
    Failed(FailureOut),
}

impl From<Event> for EventOut {
    fn from(event: Event) -> Self {
        match event {
            Event::Message(m) => EventOut::Message(IncomingOut {
                id: m.id,
                source: m.source.into(),
                message: m.message,
                blob: m.blob,
                context: m.context,
            }),
            Event::Failed(f) => EventOut::Failed(f),
        }
    }
}

impl Event {
    /// The event for a delivered message; its names move over as they are.
    pub fn incoming(km: KernelMessage, context: Option<Vec<u8>>) -> Self {
        Event::Message(Incoming {
            id: km.id,
            source: km.source,
            message: km.message.into(),
            blob: km.blob.map(Into::into),
            context,
        })
    }

    /// The event for a failed request of the guest's own.
    pub fn failed(id: u64, error: SendError, context: Option<Vec<u8>>) -> Self {
        Event::Failed(FailureOut {
            id,
            error: error.into(),
            context,
        })
    }

    /// Payload bytes (bodies, blobs, failure details), for the batch bound.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Event::Message(m) => message_bytes(&m.message, m.blob.as_ref()),
            Event::Failed(f) => f.error.detail.len(),
        }
    }
}

/// A message's body and blob bytes.
fn message_bytes(message: &wit::Message, blob: Option<&wit::Blob>) -> usize {
    let body = match message {
        wit::Message::Request(r) => r.body.len(),
        wit::Message::Response(r) => r.body.len(),
    };
    body + blob.map_or(0, |b| b.bytes.len())
}

/// Slots of a process's peer table (WIT `peer-incoming`, since 0.1.2):
/// few, so the table stays small (about 1 KiB, made on the first event),
/// and a process that hears from more peers at once only sends more full
/// addresses, never a wrong one.
pub const PEER_SLOTS: usize = 16;

/// The node's side of one incarnation's peer table: which address each
/// slot holds in the guest. An address goes to the slot its hash picks
/// (a direct-mapped cache), replacing what was there; the slot hit last
/// is tried first, as most events come from the peer of the one before.
#[derive(Default)]
pub struct Peers {
    slots: Vec<Option<Address>>,
    last: usize,
    hasher: foldhash::fast::FixedState,
}

impl Peers {
    /// The slot for `source`, and whether the guest must be told the
    /// address (the slot held another, or nothing). A slot holding the
    /// same shared address matches by pointer; another equal one by its
    /// parts.
    fn place(&mut self, source: &Address) -> (usize, bool) {
        if self.slots.is_empty() {
            self.slots.resize(PEER_SLOTS, None);
        }
        let holds = |held: Option<&Address>| held.is_some_and(|held| held == source);
        if holds(self.slots.get(self.last).and_then(Option::as_ref)) {
            return (self.last, false);
        }
        let p = &source.process;
        let parts = (&*source.node, &*p.process, &*p.package, &*p.publisher);
        let slot = (self.hasher.hash_one(parts) % PEER_SLOTS as u64) as usize;
        self.last = slot;
        match self.slots.get_mut(slot) {
            Some(held) if holds(held.as_ref()) => (slot, false),
            Some(held) => {
                *held = Some(source.clone());
                (slot, true)
            }
            None => (slot, true), // unreachable: the table has PEER_SLOTS
        }
    }

    /// `event` with its source as a slot of this table; the table learns
    /// the address when the guest is told it, and only then are its names
    /// taken apart for lowering.
    pub fn peer_event(&mut self, event: Event) -> PeerEvent {
        match event {
            Event::Message(m) => {
                let (slot, tell) = self.place(&m.source);
                PeerEvent::Message(PeerIncomingOut {
                    id: m.id,
                    // Below PEER_SLOTS, so it fits.
                    source_slot: slot as u32,
                    source: tell.then(|| m.source.into()),
                    message: m.message,
                    blob: m.blob,
                    context: m.context,
                })
            }
            Event::Failed(f) => PeerEvent::Failed(f),
        }
    }
}

/// `peer-incoming`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct PeerIncomingOut {
    #[component(name = "id")]
    id: u64,
    #[component(name = "source-slot")]
    source_slot: u32,
    #[component(name = "source")]
    source: Option<AddressOut>,
    #[component(name = "message")]
    message: wit::Message,
    #[component(name = "blob")]
    blob: Option<wit::Blob>,
    #[component(name = "context")]
    context: Option<Vec<u8>>,
}

/// `peer-event`: what `deliver` and `deliver-batch` take.
#[derive(ComponentType, Lower)]
#[component(variant)]
pub enum PeerEvent {
    #[component(name = "message")]
    Message(PeerIncomingOut),
    #[component(name = "failed")]
    Failed(FailureOut),
}

impl PeerEvent {
    /// Payload bytes (bodies, blobs, failure details), as
    /// [`Event::payload_bytes`].
    fn payload_bytes(&self) -> usize {
        match self {
            PeerEvent::Message(m) => message_bytes(&m.message, m.blob.as_ref()),
            PeerEvent::Failed(f) => f.error.detail.len(),
        }
    }
}

/// What one `inbox.next-events` call gathers for the guest. Its `Vec` is
/// the thread's spare, and [`Events::hand_over`] gives it to wasmtime in
/// an `Arc` the thread keeps a second reference to: wasmtime drops its
/// reference once it has lowered the list (as the `list<peer-event>` it
/// is, through wasmtime's public `Lower` for `Arc<Vec<_>>`), so the buffer
/// and the `Arc` come back to the thread, and a call allocates nothing
/// once the thread has both (a new `Vec` per call cost an allocation, and
/// a batch's reallocations as it grew).
///
/// The events a thread handed over last stay in its `Arc` until that
/// thread hands over its next list (for any process), and only when their
/// payload is within [`MAX_BATCH_BYTES`]: a larger lone event is handed
/// over without a kept reference. So each runtime thread holds at most one
/// batch's bytes, and at most [`MAX_BATCH_EVENTS`] events' room.
pub struct Events(Vec<PeerEvent>);

thread_local! {
    /// Room for the next list, empty.
    static SPARE: Cell<Vec<PeerEvent>> = const { Cell::new(Vec::new()) };
    /// The list this thread handed over last (its kept reference).
    static HANDED: Cell<Option<Arc<Vec<PeerEvent>>>> = const { Cell::new(None) };
}

impl Events {
    /// An empty list, with the thread's spare room if it has one.
    pub fn new() -> Self {
        Events(SPARE.try_with(Cell::take).unwrap_or_default())
    }

    pub fn push(&mut self, event: PeerEvent) {
        self.0.push(event);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list to return from `next-events`. Reuses the `Arc` this thread
    /// handed over last when wasmtime has let it go; the events in it,
    /// lowered by now, are dropped, and its old buffer becomes the
    /// thread's spare.
    pub fn hand_over(mut self) -> Arc<Vec<PeerEvent>> {
        let mut events = std::mem::take(&mut self.0);
        let keep = events.capacity() <= MAX_BATCH_EVENTS
            && events.iter().map(PeerEvent::payload_bytes).sum::<usize>() <= MAX_BATCH_BYTES;
        let list = match HANDED.try_with(Cell::take).ok().flatten() {
            Some(mut handed) => match Arc::get_mut(&mut handed) {
                Some(old) => {
                    std::mem::swap(old, &mut events);
                    // Emptied and kept as the spare when `self` drops.
                    self.0 = events;
                    handed
                }
                None => Arc::new(events),
            },
            None => Arc::new(events),
        };
        if keep {
            let _ = HANDED.try_with(|slot| slot.set(Some(list.clone())));
        }
        list
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let mut spare = std::mem::take(&mut self.0);
        if spare.capacity() <= MAX_BATCH_EVENTS {
            spare.clear();
            // A thread being torn down has no spare to keep.
            let _ = SPARE.try_with(|slot| slot.set(spare));
        }
    }
}

/// `process-id` as it lies in guest memory.
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct ProcessIdIn {
    #[component(name = "process")]
    process: WasmStr,
    #[component(name = "package")]
    package: WasmStr,
    #[component(name = "publisher")]
    publisher: WasmStr,
}

/// `address` as it lies in guest memory: read in place, built into an
/// [`Address`] only when it is not the last target.
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct AddressIn {
    #[component(name = "node")]
    node: WasmStr,
    #[component(name = "process")]
    process: ProcessIdIn,
}

/// A guest-given target read out of guest memory.
pub enum Target {
    /// The same address as the last target (shared with it).
    Last(Address),
    /// A new, valid address.
    New(Address),
    /// A malformed address, as far as it could be read, and why.
    Bad(Address, String),
}

impl AddressIn {
    /// Read the address in place and compare it with `last`; an address
    /// that is not valid UTF-8 is an error (the guest broke the ABI).
    pub fn resolve<T: 'static>(
        &self,
        store: StoreContext<'_, T>,
        last: Option<&Address>,
    ) -> wasmtime::Result<Target> {
        let node = self.node.to_str(&store)?;
        let process = self.process.process.to_str(&store)?;
        let package = self.process.package.to_str(&store)?;
        let publisher = self.process.publisher.to_str(&store)?;
        if let Some(last) = last {
            if last.is(&node, &process, &package, &publisher) {
                return Ok(Target::Last(last.clone()));
            }
        }
        Ok(
            match checked_address(&node, &process, &package, &publisher) {
                Ok(address) => Target::New(address),
                Err((address, reason)) => Target::Bad(address, reason),
            },
        )
    }
}

/// `node@process:package:publisher` from its parts, each checked in place
/// (the rules of `Address::from_str`); refused with the address as far as
/// it could be read and the reason.
pub fn checked_address(
    node: &str,
    process: &str,
    package: &str,
    publisher: &str,
) -> Result<Address, (Address, String)> {
    let refusal = if !valid_name(node, true) {
        Some("node names are [a-z0-9-.]")
    } else if !valid_name(process, false)
        || !valid_name(package, false)
        || !valid_name(publisher, true)
    {
        Some("names are [a-z0-9-]; the publisher may also contain '.'")
    } else {
        None
    };
    let address = Address::new(node, ProcessId::new(process, package, publisher));
    match refusal {
        None => Ok(address),
        Some(reason) => {
            let error = ParseError {
                input: address.to_string(),
                reason,
            };
            Err((address, error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SendErrorKind;

    fn failure(detail_bytes: usize) -> PeerEvent {
        let target: Address = "n@a:b:c".parse().expect("an address");
        let error = SendError::new(SendErrorKind::Timeout, &target, "x".repeat(detail_bytes));
        Peers::default().peer_event(Event::failed(1, error, None))
    }

    fn detail(list: &[PeerEvent]) -> Vec<usize> {
        list.iter().map(PeerEvent::payload_bytes).collect()
    }

    #[test]
    fn a_thread_reuses_its_handed_list_once_wasmtime_lets_it_go() {
        std::thread::spawn(|| {
            let mut events = Events::new();
            events.push(failure(3));
            let first = events.hand_over();
            assert_eq!(detail(&first), vec![3]);
            let at = Arc::as_ptr(&first);
            // Still held (as while wasmtime lowers it): the next list is new.
            let mut events = Events::new();
            events.push(failure(4));
            let second = events.hand_over();
            assert_ne!(Arc::as_ptr(&second), at);
            assert_eq!(detail(&first), vec![3]);
            let at = Arc::as_ptr(&second);
            drop((first, second));
            // Let go: the next hand-over comes in the same `Arc`, and the
            // lowered events in it are gone.
            let mut events = Events::new();
            events.push(failure(5));
            events.push(failure(6));
            let third = events.hand_over();
            assert_eq!(Arc::as_ptr(&third), at);
            assert_eq!(detail(&third), vec![5, 6]);
            assert_eq!(Arc::strong_count(&third), 2, "the thread keeps one");
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn a_list_over_the_batch_bytes_is_not_kept_by_the_thread() {
        std::thread::spawn(|| {
            let mut events = Events::new();
            events.push(failure(MAX_BATCH_BYTES + 1));
            let big = events.hand_over();
            assert_eq!(Arc::strong_count(&big), 1);
            let mut events = Events::new();
            events.push(failure(1));
            let small = events.hand_over();
            assert_eq!(Arc::strong_count(&small), 2);
        })
        .join()
        .expect("the test thread");
    }
}
