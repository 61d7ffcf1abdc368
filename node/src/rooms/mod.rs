//! The rooms hub `rooms:distro:sys`: live rooms across nodes.
//!
//! A process publishes to a room it owns with one message to its node's
//! hub; the hub numbers the event, keeps it in the room's bounded tail and
//! fans it out: to subscriber processes on this node, and once to each
//! subscribing node's hub, which fans out to its own subscribers. Joining
//! is a request to the owner process (`{"room_join": ..}`), so its
//! capabilities and its own decision apply. A subscribing hub holds one
//! request open at each owner node's hub (`Hold`); when that node goes away
//! the request fails with `offline` at once, subscribers hear `offline`,
//! and the hub rejoins by itself with every subscriber's cursor.
//!
//! The hub serves every request in its sender's own `route` call
//! ([`Service::handle_now`]): a publish is numbered and fanned out by the
//! publisher's call, a relay by the reader of the owner node's stream.
//! What waits (joins, subscribes, holds) goes on in tasks of its own. The
//! hub's lock is held while it delivers, so a native endpoint that
//! subscribes must not send to the hub from its own `handle_now` (the
//! HTTP server queues the hub's events).
//!
//! **Invariant:** every subscriber sees a room's events in sequence order,
//! each once; a resume past the tail gets an explicit `gap`; a subscriber
//! whose mailbox is full gets `lagged` and is replayed from the tail,
//! never stalling the publisher or the others. Bounds: [`room::TAIL_EVENTS`],
//! [`room::TAIL_BYTES`], [`room::MAX_SUBSCRIBERS`], [`MAX_ROOMS_PER_PROCESS`].

mod relay;
mod remote;
pub mod room;
mod tails;
pub mod types;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use crate::kernel::caps::{CapabilityTable, ProcessCaps};
use crate::metrics::Metrics;
use crate::native::{NativeEndpoint, Now, Reply, ReplyFuture, Service};
use crate::services::Services;
use crate::types::{Address, KernelMessage, Message, ProcessId, SendErrorKind};
use room::{Room, Watch, MAX_SUBSCRIBERS};
pub use types::{RoomDelivery, RoomEvent, RoomJoin, RoomsError, RoomsRequest, RoomsResponse};

/// Rooms one process may own.
pub const MAX_ROOMS_PER_PROCESS: usize = 256;
/// Subscribers one other node may hold in the rooms of this node, all
/// rooms together: a node's whole population of watching processes and
/// pages, without letting one peer fill every room.
pub const MAX_SUBSCRIBERS_PER_NODE: usize = 4096;
/// Joins one other node may have waiting here for the owner's decision:
/// a burst of a node's subscribers (the bench joins 100 at once); past it
/// a join is refused with `Limit` at once.
pub const MAX_JOINS_IN_FLIGHT_PER_NODE: usize = 256;
/// `Hold`s one other node may keep open here: its hub holds one, and a
/// second covers the moment one is answered and asked again.
pub const MAX_HOLDS_PER_NODE: usize = 2;
/// How long the owner has to decide a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a hub-to-hub join may take (it includes the owner's decision).
const HUB_TIMEOUT: Duration = Duration::from_secs(10);
/// A `Hold` is answered after this, and asked with a longer timeout
/// ([`HOLD_DEADLINE`]).
const HOLD_FOR: Duration = Duration::from_secs(20);
/// The slow path to `offline`: a held request that got no answer at all
/// (the owner's node vanished without its connection closing) fails at
/// this deadline. The fast path is the connection's close, which fails the
/// held request at once (`net/links.rs`).
pub const HOLD_DEADLINE: Duration = Duration::from_secs(40);
/// Backoff between rejoin attempts while an owner node is offline.
const REJOIN_FIRST: Duration = Duration::from_millis(250);
const REJOIN_MAX: Duration = Duration::from_secs(5);
/// How long a subscribing hub waits before it rejoins for a subscriber
/// whose mailbox was full: time for it to drain, so that a subscriber that
/// does not read costs one replay per this, not a loop of them.
const LAG_RETRY: Duration = Duration::from_millis(200);
/// How often waiting tasks look whether the node is stopping.
const CLOSE_POLL: Duration = Duration::from_millis(100);

/// The hub's name: process, package, publisher.
const HUB: (&str, &str, &str) = ("rooms", "distro", "sys");

pub fn process_id() -> ProcessId {
    ProcessId::new(HUB.0, HUB.1, HUB.2)
}

/// Whether `id` is the hub's, compared without building an id.
pub fn is_hub(id: &ProcessId) -> bool {
    (&*id.process, &*id.package, &*id.publisher) == HUB
}

/// Register `rooms:distro:sys` (public; takes requests from other nodes'
/// hubs only, see [`Hub::serve`]).
pub fn start(
    services: &Arc<Services>,
) -> Result<Arc<NativeEndpoint>, crate::kernel::AlreadyRunning> {
    let caps = ProcessCaps {
        public: true,
        networking: true,
        system: true,
    };
    let (tails_tx, tails_rx) = tails::channel();
    let mut state = HubState::default();
    state.owned.extend(tails::restore(&services.state));
    let hub = Arc::new(Hub {
        endpoint: OnceLock::new(),
        services: Arc::downgrade(services),
        state: Mutex::new(state),
        tails_tx,
        runtime: tokio::runtime::Handle::current(),
    });
    let endpoint = NativeEndpoint::start(
        services,
        process_id(),
        caps,
        Some(Arc::new(HubService(hub.clone()))),
    )?;
    let _ = hub.endpoint.set(Arc::downgrade(&endpoint));
    tokio::spawn(hub.write_tails(tails_rx));
    Ok(endpoint)
}

struct HubService(Arc<Hub>);

impl HubService {
    /// Serve one request; its answer, if it has one now.
    fn answer(&self, km: KernelMessage) -> Option<Reply> {
        let hub = &self.0;
        let from_peer = hub.our().is_some_and(|our| km.source.node != our);
        let outcome = hub.serve(km);
        if from_peer && outcome.is_err() {
            hub.count(|m| &m.rooms_refused);
        }
        match outcome {
            Ok(Some(response)) => Some(Reply::json(&Ok::<_, RoomsError>(response))),
            Ok(None) => None,
            Err(error) => Some(Reply::json(&Err::<RoomsResponse, _>(error))),
        }
    }
}

impl Service for HubService {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move { self.answer(km) })
    }

    /// Every request is served in its sender's own call: a publish is
    /// numbered and fanned out in the publisher's `route` call, a relay
    /// from another node's hub in the reader of that node's stream. No
    /// request waits in `serve` (joins, subscribes and holds go on in
    /// tasks of their own), and the hub's lock is never held while
    /// sending to the hub.
    fn handle_now(&self, km: KernelMessage) -> Now {
        Now::Served(self.answer(km))
    }
}

pub struct Hub {
    /// Weak, so that tasks waiting on other nodes never keep the node's
    /// services alive after shutdown; they also stop at [`Hub::closed`].
    endpoint: OnceLock<std::sync::Weak<NativeEndpoint>>,
    services: std::sync::Weak<Services>,
    state: Mutex<HubState>,
    /// Events of durable rooms, to the writer (`tails.rs`).
    tails_tx: tokio::sync::mpsc::Sender<tails::TailWrite>,
    /// Where the hub's waiting work runs: requests are served in their
    /// senders' calls, which need not be on a runtime thread.
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct HubState {
    /// Rooms owned by processes of this node.
    owned: HashMap<(ProcessId, String), Room>,
    /// Rooms on other nodes watched for local subscribers.
    watched: HashMap<(Address, String), Watch>,
    /// Nodes we hold a request open at.
    held: HashSet<Arc<str>>,
    /// Other nodes' joins and holds being served here, per node.
    in_flight: HashMap<(Arc<str>, remote::Pending), usize>,
    /// The room whose outbox may hold a burst's events (owner, room).
    /// Only one at a time: an event of another room sends it first, so
    /// relays leave in the order their events were published, across
    /// rooms too.
    bursting: Option<(Address, String)>,
}

type Answer = (u64, Address);

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint(&self) -> Option<Arc<NativeEndpoint>> {
        self.endpoint.get()?.upgrade()
    }

    /// Resolves once the hub is unregistered (the node is stopping).
    async fn closed(&self) {
        loop {
            let open = self
                .services
                .upgrade()
                .is_some_and(|s| s.kernel.is_running(&process_id()));
            if !open {
                return;
            }
            tokio::time::sleep(CLOSE_POLL).await;
        }
    }

    /// Run `work` unless the hub closes first.
    async fn until_closed<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            _ = self.closed() => None,
            out = work => Some(out),
        }
    }

    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(work);
    }

    fn our(&self) -> Option<Arc<str>> {
        Some(self.endpoint()?.address().node.clone())
    }

    fn hub_at(node: &str) -> Address {
        Address::new(node, process_id())
    }

    /// Serve one request; `None` when the answer comes later (joins).
    fn serve(self: &Arc<Self>, km: KernelMessage) -> Result<Option<RoomsResponse>, RoomsError> {
        let Message::Request(request) = &km.message else {
            return Err(RoomsError::BadRequest("expected a request".into()));
        };
        let request: RoomsRequest = serde_json::from_slice(&request.body)
            .map_err(|e| RoomsError::BadRequest(e.to_string()))?;
        let our = self
            .our()
            .ok_or_else(|| RoomsError::Unreachable("stopping".into()))?;
        let source = km.source.clone();
        let local = source.node == our;
        let from_hub = source.process == process_id();
        let answer = km.rsvp.clone().map(|rsvp| (km.id, rsvp));
        match request {
            RoomsRequest::Publish { room, payload, durable } if local => {
                let published = self.publish(&source, room, payload, durable, answer)?;
                Ok(published.map(|seq| RoomsResponse::Published { seq }))
            }
            RoomsRequest::Subscribe { owner, room, from } if local => {
                let owner: Address = owner.parse().map_err(|e| RoomsError::BadRequest(format!("owner: {e}")))?;
                let hub = self.clone();
                self.spawn(async move {
                    let work = hub.subscribe(source, owner, room, from);
                    if let Some(result) = hub.until_closed(work).await {
                        hub.reply(answer, result);
                    }
                });
                Ok(None)
            }
            RoomsRequest::Unsubscribe { owner, room } if local => {
                let owner: Address = owner.parse().map_err(|e| RoomsError::BadRequest(format!("owner: {e}")))?;
                self.unsubscribe(&source.process, &owner, &room);
                Ok(Some(RoomsResponse::Left))
            }
            RoomsRequest::Join {
                owner,
                room,
                subscriber,
                from,
                incarnation,
            } if from_hub => {
                let owner: ProcessId = owner.parse().map_err(|e| RoomsError::BadRequest(format!("owner: {e}")))?;
                let subscriber: Address = subscriber.parse().map_err(|e| RoomsError::BadRequest(format!("subscriber: {e}")))?;
                if subscriber.node != source.node {
                    return Err(RoomsError::Forbidden("a node's own subscribers".into()));
                }
                let slot = self.take_slot(&source.node, remote::Pending::Join)?;
                let hub = self.clone();
                self.spawn(async move {
                    let _slot = slot;
                    let work = hub.join_remote(source.node.clone(), owner, room, subscriber, (from, incarnation));
                    if let Some(result) = hub.until_closed(work).await {
                        hub.reply(answer, result);
                    }
                });
                Ok(None)
            }
            RoomsRequest::Leave { owner, room, subscriber } if from_hub => {
                let owner: ProcessId = owner.parse().map_err(|e| RoomsError::BadRequest(format!("owner: {e}")))?;
                let mut state = self.lock();
                if let Some(room) = state.owned.get_mut(&(owner, room)) {
                    if let Some(subs) = room.nodes.get_mut(&source.node) {
                        subs.remove(&subscriber);
                        if subs.is_empty() {
                            room.nodes.remove(&source.node);
                        }
                    }
                }
                Ok(Some(RoomsResponse::Left))
            }
            RoomsRequest::Relay {
                owner,
                room,
                to,
                events,
                next,
                incarnation,
            } if from_hub => {
                let owner: Address = owner.parse().map_err(|e| RoomsError::BadRequest(format!("owner: {e}")))?;
                if owner.node != source.node {
                    return Err(RoomsError::Forbidden("the owner's own node".into()));
                }
                self.on_relay(&owner, &room, to, events, (next, incarnation))?;
                Ok(None)
            }
            RoomsRequest::Hold if from_hub => {
                if answer.is_none() {
                    return Err(RoomsError::BadRequest("a hold is a request that awaits its answer".into()));
                }
                let slot = self.take_slot(&source.node, remote::Pending::Hold)?;
                let hub = self.clone();
                self.spawn(async move {
                    let _slot = slot;
                    if hub.until_closed(tokio::time::sleep(HOLD_FOR)).await.is_some() {
                        hub.reply(answer, Ok(RoomsResponse::Held));
                    }
                });
                Ok(None)
            }
            _ => Err(RoomsError::Forbidden(
                "local processes (publish, subscribe) or other nodes' hubs (join, leave, relay, hold)".into(),
            )),
        }
    }

    fn reply(&self, answer: Option<Answer>, result: Result<RoomsResponse, RoomsError>) {
        if let (Some((id, rsvp)), Some(endpoint)) = (answer, self.endpoint()) {
            endpoint.answer(rsvp, id, Reply::json(&result));
        }
    }

    /// Add one to the counter `which` picks.
    fn count(&self, which: impl Fn(&Metrics) -> &AtomicU64) {
        self.count_by(which, 1);
    }

    fn count_by(&self, which: impl Fn(&Metrics) -> &AtomicU64, n: u64) {
        if let Some(services) = self.services.upgrade() {
            which(&services.kernel.metrics).fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Hand `event` to a local subscriber process.
    fn deliver(
        &self,
        to: &ProcessId,
        owner: &Address,
        room: &str,
        event: &RoomEvent,
    ) -> Result<(), SendErrorKind> {
        self.deliver_body(to, delivery_body(owner, room, event))
    }

    /// Hand a subscriber the body [`delivery_body`] made: one event's body
    /// is made once and copied to each of its subscribers.
    fn deliver_body(&self, to: &ProcessId, body: Vec<u8>) -> Result<(), SendErrorKind> {
        let Some(endpoint) = self.endpoint() else {
            return Err(SendErrorKind::Offline);
        };
        let target = Address::new(endpoint.address().node.clone(), to.clone());
        endpoint
            .tell(target, body, None)
            .map(|_| ())
            .map_err(|e| e.kind)
    }

    fn tell_hub(&self, node: &str, request: &RoomsRequest) -> Result<(), SendErrorKind> {
        self.tell_hub_body(node, serde_json::to_vec(request).unwrap_or_default())
    }

    /// Tell `node`'s hub an encoded request: a relay to several nodes is
    /// encoded once.
    fn tell_hub_body(&self, node: &str, body: Vec<u8>) -> Result<(), SendErrorKind> {
        let Some(endpoint) = self.endpoint() else {
            return Err(SendErrorKind::Offline);
        };
        endpoint
            .tell(Self::hub_at(node), body, None)
            .map(|_| ())
            .map_err(|e| e.kind)
    }

    async fn ask(
        &self,
        target: Address,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Value, RoomsError> {
        let endpoint = self
            .endpoint()
            .ok_or_else(|| RoomsError::Unreachable("stopping".into()))?;
        let (_, km) = endpoint
            .ask(target, body, None, timeout)
            .await
            .map_err(|e| RoomsError::Unreachable(e.to_string()))?;
        match km.message {
            Message::Response(r) => serde_json::from_slice(&r.body)
                .map_err(|e| RoomsError::Unreachable(format!("answer is not JSON: {e}"))),
            Message::Request(_) => Err(RoomsError::Unreachable("not an answer".into())),
        }
    }

    /// Ask the owner process whether `subscriber` may join; its snapshot.
    async fn ask_owner(
        &self,
        owner: &Address,
        room: &str,
        subscriber: &Address,
    ) -> Result<Value, RoomsError> {
        let join = RoomJoin {
            room: room.to_string(),
            subscriber: subscriber.to_string(),
        };
        let body = serde_json::to_vec(&json!({ "room_join": join })).unwrap_or_default();
        let answer = self.ask(owner.clone(), body, JOIN_TIMEOUT).await?;
        if answer.get("error").is_some() {
            return Err(RoomsError::Refused(answer));
        }
        Ok(answer.get("ok").cloned().unwrap_or(Value::Null))
    }

    /// Number and keep an event; fan it out at once, or for a durable
    /// room once the writer has it on disk (then `None`: the writer
    /// answers).
    fn publish(
        self: &Arc<Self>,
        owner: &Address,
        room: String,
        payload: Value,
        durable: bool,
        answer: Option<Answer>,
    ) -> Result<Option<u64>, RoomsError> {
        let mut state = self.lock();
        let key = (owner.process.clone(), room);
        if !state.owned.contains_key(&key) {
            let owned = state.owned.keys().filter(|(p, _)| *p == key.0).count();
            if owned >= MAX_ROOMS_PER_PROCESS {
                return Err(RoomsError::Limit(format!(
                    "{MAX_ROOMS_PER_PROCESS} rooms per process"
                )));
            }
        }
        self.end_other_burst(&mut state, owner, &key.1);
        let room = state.owned.entry(key.clone()).or_default();
        if durable && !room.durable {
            tails::check_name(&key.1)?;
            room.durable = true;
            room.committed = room.next() - 1;
        }
        if room.durable {
            let permit = self.tails_tx.try_reserve().map_err(|_| {
                RoomsError::Limit(format!(
                    "{} durable events waiting for the disk",
                    tails::WRITE_QUEUE
                ))
            })?;
            let first = room.first().unwrap_or(1);
            let (seq, payload) = room.push(payload);
            let dropped = first..room.first().unwrap_or(first);
            permit.send(tails::TailWrite {
                owner: owner.clone(),
                room: key.1,
                seq,
                payload,
                incarnation: room.incarnation,
                dropped,
                answer,
            });
            return Ok(None);
        }
        let (seq, payload) = room.push(payload);
        self.fan_out(owner, &key.1, room, seq, &payload);
        if !room.outbox.events.is_empty() {
            state.bursting = Some((owner.clone(), key.1));
        }
        Ok(Some(seq))
    }

    /// Hand event `seq` of `room` to its local subscribers and, once per
    /// node, to its subscribing nodes (a burst's events in one relay).
    fn fan_out(
        self: &Arc<Self>,
        owner: &Address,
        room_name: &str,
        room: &mut Room,
        seq: u64,
        payload: &Arc<Value>,
    ) {
        // Local subscribers; a lagging one gets `lagged` and its replay.
        // The event's body is made once, for the first live one; the last
        // subscriber takes it, not a copy.
        let mut body: Option<Vec<u8>> = None;
        let make = || {
            let event = RoomEvent::Event {
                seq,
                payload: (**payload).clone(),
            };
            delivery_body(owner, room_name, &event)
        };
        let subs: Vec<(ProcessId, Option<u64>)> =
            room.locals.iter().map(|(p, l)| (p.clone(), *l)).collect();
        let final_sub = subs.len().saturating_sub(1);
        for (i, (pid, lagged)) in subs.into_iter().enumerate() {
            let outcome = match lagged {
                None => {
                    let body = shared_body(&mut body, i == final_sub, make);
                    self.deliver_body(&pid, body).map_err(|k| (k, seq))
                }
                Some(from) => self.catch_up(&pid, owner, room_name, room, from),
            };
            match outcome {
                Ok(()) if lagged.is_none() => {}
                Ok(()) => {
                    room.locals.insert(pid, None);
                }
                // Lagging from `at`, the first event it did not get: the
                // next publish tells it and replays from there.
                Err((SendErrorKind::MailboxFull, at)) => {
                    room.locals.insert(pid, Some(at));
                }
                Err(_) => {
                    room.locals.remove(&pid);
                }
            }
        }
        self.relay_live(owner, room_name, room, seq, payload);
    }

    /// Tell a lagging subscriber, then replay the tail after `from - 1`.
    fn catch_up(
        &self,
        pid: &ProcessId,
        owner: &Address,
        room_name: &str,
        room: &Room,
        from: u64,
    ) -> Result<(), (SendErrorKind, u64)> {
        self.deliver(pid, owner, room_name, &RoomEvent::Lagged { from })
            .map_err(|k| (k, from))?;
        for event in room.replay(from.saturating_sub(1)) {
            let at = match &event {
                RoomEvent::Event { seq, .. } => *seq,
                _ => from,
            };
            self.deliver(pid, owner, room_name, &event)
                .map_err(|k| (k, at))?;
        }
        Ok(())
    }

    async fn subscribe(
        self: &Arc<Self>,
        subscriber: Address,
        owner: Address,
        room: String,
        from: Option<u64>,
    ) -> Result<RoomsResponse, RoomsError> {
        if owner.node == subscriber.node {
            let snapshot = self.ask_owner(&owner, &room, &subscriber).await?;
            let mut state = self.lock();
            let next = {
                let room_state = self.admit(&mut state, &owner.process, &room)?;
                room_state.locals.insert(subscriber.process.clone(), None);
                let replay = from.map(|f| room_state.replay(f)).unwrap_or_default();
                let next = room_state.live_next();
                for event in replay {
                    let at = match &event {
                        RoomEvent::Event { seq, .. } => *seq,
                        _ => from.map_or(next, |f| f + 1),
                    };
                    if self.deliver(&subscriber.process, &owner, &room, &event)
                        == Err(SendErrorKind::MailboxFull)
                    {
                        room_state
                            .locals
                            .insert(subscriber.process.clone(), Some(at));
                        break;
                    }
                }
                next
            };
            return Ok(RoomsResponse::Joined { next, snapshot });
        }
        self.check_networking(&subscriber.process)?;
        self.lock()
            .watched
            .entry((owner.clone(), room.clone()))
            .or_default()
            .subs
            .insert(subscriber.process.clone(), None);
        let result = self.join_at(&owner, &room, &subscriber, from).await;
        match &result {
            Ok(_) => self.hold(owner.node.clone()),
            Err(_) => {
                let mut state = self.lock();
                if let Some(watch) = state.watched.get_mut(&(owner.clone(), room.clone())) {
                    watch.subs.remove(&subscriber.process);
                    if watch.subs.is_empty() {
                        state.watched.remove(&(owner, room));
                    }
                }
            }
        }
        result
    }

    fn check_networking(&self, pid: &ProcessId) -> Result<(), RoomsError> {
        let services = self
            .services
            .upgrade()
            .ok_or_else(|| RoomsError::Unreachable("stopping".into()))?;
        // The outbound rule: a system endpoint (the HTTP server watching
        // for browsers) may subscribe too; it never takes peers' requests.
        let networked = services
            .kernel
            .caps_of(pid)
            .is_some_and(|caps| CapabilityTable::check_network(&caps).is_ok());
        if networked {
            Ok(())
        } else {
            Err(RoomsError::Forbidden(format!(
                "processes with request_networking ({pid} has not)"
            )))
        }
    }

    /// The owner's room, if it may take one more subscriber.
    fn admit<'s>(
        &self,
        state: &'s mut HubState,
        owner: &ProcessId,
        room: &str,
    ) -> Result<&'s mut Room, RoomsError> {
        let key = (owner.clone(), room.to_string());
        if !state.owned.contains_key(&key)
            && state.owned.keys().filter(|(p, _)| p == owner).count() >= MAX_ROOMS_PER_PROCESS
        {
            return Err(RoomsError::Limit(format!(
                "{MAX_ROOMS_PER_PROCESS} rooms per process"
            )));
        }
        let room = state.owned.entry(key).or_default();
        if room.subscribers() >= MAX_SUBSCRIBERS {
            return Err(RoomsError::Limit(format!(
                "{MAX_SUBSCRIBERS} subscribers per room"
            )));
        }
        Ok(room)
    }

    fn unsubscribe(&self, subscriber: &ProcessId, owner: &Address, room: &str) {
        let mut state = self.lock();
        if let Some(room_state) = state
            .owned
            .get_mut(&(owner.process.clone(), room.to_string()))
        {
            room_state.locals.remove(subscriber);
        }
        let key = (owner.clone(), room.to_string());
        if let Some(watch) = state.watched.get_mut(&key) {
            if watch.subs.remove(subscriber).is_some() {
                if watch.subs.is_empty() {
                    state.watched.remove(&key);
                }
                let Some(our) = self.our() else { return };
                let leave = RoomsRequest::Leave {
                    owner: owner.process.to_string(),
                    room: room.to_string(),
                    subscriber: Address::new(our, subscriber.clone()).to_string(),
                };
                let _ = self.tell_hub(&owner.node, &leave);
            }
        }
    }
}

/// One event's delivery body for one of its receivers: made once (by
/// `make`) and copied for each, except the last, which takes it.
fn shared_body(body: &mut Option<Vec<u8>>, last: bool, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    if last {
        body.take().unwrap_or_else(make)
    } else {
        body.get_or_insert_with(make).clone()
    }
}

/// Bytes of a usual delivery body besides the room's name: the JSON
/// around the event, the owner's address and a short payload (the bench's
/// 64-byte string makes about 170).
const DELIVERY_BODY_BYTES: usize = 240;

/// What a subscriber process receives for one entry of a room's stream:
/// `{"room_event": RoomDelivery}`, written from borrowed parts (the same
/// bytes as serializing a [`RoomDelivery`]).
fn delivery_body(owner: &Address, room: &str, event: &RoomEvent) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Delivery<'a> {
        #[serde(serialize_with = "as_text")]
        owner: &'a Address,
        room: &'a str,
        event: &'a RoomEvent,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        room_event: Delivery<'a>,
    }
    let body = Body {
        room_event: Delivery { owner, room, event },
    };
    // Sized for a usual event at once, not grown past serde_json's first
    // 128 bytes by a copy.
    let mut bytes = Vec::with_capacity(DELIVERY_BODY_BYTES + room.len());
    match serde_json::to_writer(&mut bytes, &body) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

fn as_text<S: serde::Serializer>(address: &&Address, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(address)
}
