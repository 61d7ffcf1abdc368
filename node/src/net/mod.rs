//! The network: nodes find each other by name and exchange kernel messages
//! over libp2p (TCP and QUIC, Noise, Yamux), with no central server.
//!
//! - `identity`: the node's key pair; `record`: signed name records;
//!   `book`: names seen and verified (first key to claim a name keeps it).
//! - `behaviour`: identify, ping, mDNS, Kademlia, raw streams.
//! - `event_loop`: owns the `Swarm`; resolves names, dials, publishes our
//!   record, tracks peers.
//! - `stream`: a message stream's kinds, opening and closing one;
//!   `outbound`: one long-lived outbound stream per peer, and the moves to
//!   a better one; `writer`: the task that writes length-prefixed frames
//!   (`wire`) to it; `outlet`: the outbound stream shared by the routing
//!   call (which writes to it while it is free) and the writer.
//! - `reader`: accepts inbound streams, one reader each; `read_order`: a
//!   peer's streams are read one at a time, in the order they were sent;
//!   `inbound`: what a verified stream's frames may do.
//! - `lane`: our own Noise-authenticated TCP connection per peer, which a
//!   message stream moves onto when both nodes speak it.
//! - `links`: the send path by node name, with the requests awaiting an
//!   answer from each peer.
//! - `relay`: relay limits and our reservations; `reach`: reachability
//!   (AutoNAT) and how each peer is reached; `filter`: behaviour wrappers
//!   (kad without its empty-table bootstrap, streams per connection kind).
//!
//! The kernel reaches the network through [`Net`], which implements
//! `kernel::Remote`.

mod accept;
mod behaviour;
pub mod book;
mod dht;
mod event_loop;
mod filter;
pub mod identity;
mod inbound;
mod lane;
pub mod links;
mod outbound;
mod outlet;
mod owed;
mod pack;
mod reach;
mod read_order;
mod reader;
pub mod record;
pub mod relay;
mod stream;
pub mod wire;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::api::PeerInfo;
pub use crate::config::NetConfig;
use crate::services::Services;
use crate::types::{Address, KernelMessage, Message, SendError, SendErrorKind};
use book::AddressBook;
use links::{Links, Orphans, Sent};
use owed::Owed;
use record::NameRecord;
use wire::Frame;

/// Bytes of partly received frames across all inbound streams: a few
/// maximum-size messages arriving at once; a stream that would need more
/// is closed and its peer retries.
const INBOUND_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Commands queued for the event loop. Only connection set-up and queries
/// go through it; messages to connected peers do not.
const COMMANDS: usize = 1024;

/// The first redial after a stream that ended with frames queued and none
/// delivered waits this long, each further one twice as long: long enough
/// that a peer resetting our streams cannot make us reopen one (and look
/// its name up) every round trip, short enough that a lane cut mid-burst
/// costs nothing felt.
const REDIAL_FIRST: Duration = Duration::from_millis(5);
/// The redial back-off stops growing here.
const REDIAL_MAX: Duration = Duration::from_secs(1);
/// After this many such streams in a row (about 3.5 s of back-off), the
/// node is given up: its queued frames are dropped (logged) and its
/// requests fail `offline`.
const MAX_REDIALS: u32 = 10;

/// How long to wait before the `n`-th redial in a row (0: at once).
fn redial_delay(n: u32) -> Duration {
    match n {
        0 => Duration::ZERO,
        n => REDIAL_FIRST
            .saturating_mul(1 << (n - 1).min(16))
            .min(REDIAL_MAX),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("node identity at {path}: {reason}")]
    Identity { path: String, reason: String },
    #[error("network transport: {0}")]
    Transport(String),
    #[error("bad bootstrap address {0:?}: expected a multiaddr ending in /p2p/<peer id>")]
    Bootstrap(String),
    #[error("{0}")]
    Relay(String),
}

enum Command {
    /// Set up a link to this node (resolve, dial, open the stream).
    Connect(String),
    /// Close every connection, so peers learn at once that we left, and
    /// stop.
    Shutdown(oneshot::Sender<()>),
}

/// An outbound stream to a peer, being opened or open.
enum Outbound {
    Opening,
    Open(OpenStream),
}

/// Our open message stream to a peer.
struct OpenStream {
    /// Where frames to the peer go: straight to the stream, or queued for
    /// its writer.
    outlet: Arc<outlet::Outlet>,
    /// It runs over a relayed connection.
    relayed: bool,
    /// Hands the writer a stream to move to (on a direct connection, or a
    /// lane), and what it carries.
    switch: mpsc::Sender<stream::Switch>,
    /// A direct stream or a lane is being opened for it.
    moving: bool,
    /// It was handed a lane.
    lane: bool,
}

impl OpenStream {
    /// End the stream if it runs on a lane.
    fn end_lane(&self) {
        if self.lane {
            self.outlet.end();
        }
    }
}

/// State shared by the event loop, the stream tasks and [`Net`].
struct Shared {
    our: String,
    keypair: Keypair,
    book: AddressBook,
    links: Links,
    /// Requests from peers that local processes owe answers to.
    owed: Owed,
    /// Inbound message streams open per peer.
    inbound: reader::InboundStreams,
    /// Bytes of frames being received, across all inbound streams.
    inbound_bytes: wire::Budget,
    outbound: Mutex<HashMap<PeerId, Outbound>>,
    record: Mutex<NameRecord>,
    services: Weak<Services>,
    max_frame: usize,
    dial_timeout: Duration,
    commands: mpsc::Sender<Command>,
    /// Connected peers: addresses seen and the last ping round trip.
    peers: Mutex<HashMap<PeerId, PeerState>>,
    /// Reachability, our relays and circuits.
    reach: Mutex<reach::Reach>,
    /// The order in which each peer's inbound streams are read: a stream
    /// that replaces another (moved off a relay) is read only once the old
    /// one ended or stalled, so frames keep their order.
    read_order: Mutex<HashMap<PeerId, Arc<read_order::ReadOrder>>>,
    /// Our lane listener's port, offered to peers (none if it could not
    /// listen: messages then stay on libp2p streams).
    lane_port: Option<u16>,
    lane_slots: lane::Slots,
}

#[derive(Default)]
struct PeerState {
    addrs: Vec<libp2p::Multiaddr>,
    rtt: Option<Duration>,
    /// Open connections and their remote addresses.
    conns: HashMap<libp2p::swarm::ConnectionId, libp2p::Multiaddr>,
    /// The port of the lane the peer offered (`lane`).
    lane: Option<u16>,
}

impl PeerState {
    /// A direct connection if there is one, else any.
    fn best(&self) -> Option<&libp2p::Multiaddr> {
        self.conns
            .values()
            .find(|a| !filter::is_relayed(a))
            .or_else(|| self.conns.values().next())
    }
}

/// The stream behaviours' handles: one for direct connections, one for
/// relayed ones.
#[derive(Clone)]
struct Controls {
    direct: libp2p_stream::Control,
    relayed: libp2p_stream::Control,
}

impl Shared {
    /// Count one on a net counter, while the node runs.
    fn count(
        &self,
        counter: impl Fn(&crate::metrics::NetCounters) -> &std::sync::atomic::AtomicU64,
    ) {
        self.count_by(counter, 1);
    }

    /// Add `n` to the counter `counter` picks.
    fn count_by(
        &self,
        counter: impl Fn(&crate::metrics::NetCounters) -> &std::sync::atomic::AtomicU64,
        n: u64,
    ) {
        if let Some(services) = self.services.upgrade() {
            counter(&services.kernel.metrics.net)
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, PeerState>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peer_connected(
        &self,
        peer: PeerId,
        conn: libp2p::swarm::ConnectionId,
        addr: &libp2p::Multiaddr,
    ) {
        let mut peers = self.lock_peers();
        let state = peers.entry(peer).or_default();
        if !state.addrs.contains(addr) && state.addrs.len() < record::MAX_ADDRS {
            state.addrs.push(addr.clone());
        }
        state.conns.insert(conn, addr.clone());
    }

    fn connection_closed(&self, peer: &PeerId, conn: libp2p::swarm::ConnectionId) {
        if let Some(state) = self.lock_peers().get_mut(peer) {
            state.conns.remove(&conn);
        }
    }

    /// Whether a direct (not relayed) connection to `peer` is open.
    fn has_direct(&self, peer: &PeerId) -> bool {
        self.lock_peers()
            .get(peer)
            .is_some_and(|s| s.conns.values().any(|a| !filter::is_relayed(a)))
    }

    /// The peer's last connection closed: its lanes end with it (our
    /// writer's, and the reader of its lane).
    fn peer_gone(&self, peer: &PeerId) {
        self.lock_peers().remove(peer);
        self.end_lane(peer);
        let order = self
            .read_order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(peer);
        if let Some(order) = order {
            order.stop_holder();
        }
    }

    /// End our lane to `peer`, if our stream runs on one.
    fn end_lane(&self, peer: &PeerId) {
        let outbound = self.outbound.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Outbound::Open(open)) = outbound.get(peer) {
            open.end_lane();
        }
    }

    /// Leaving the network: every lane ends, both ways.
    fn end_all_lanes(&self) {
        {
            let outbound = self.outbound.lock().unwrap_or_else(|e| e.into_inner());
            for out in outbound.values() {
                if let Outbound::Open(open) = out {
                    open.end_lane();
                }
            }
        }
        let orders: Vec<_> = {
            let orders = self.read_order.lock().unwrap_or_else(|e| e.into_inner());
            orders.values().cloned().collect()
        };
        for order in orders {
            order.stop_holder();
        }
    }

    /// `peer` offered a lane at `port` (or none).
    fn lane_offered(&self, peer: PeerId, port: Option<u16>) {
        self.lock_peers().entry(peer).or_default().lane = port;
    }

    fn lane_failed(&self, peer: &PeerId) {
        if let Some(state) = self.lock_peers().get_mut(peer) {
            state.lane = None;
        }
    }

    /// Where `peer`'s lane is: the port it offered, at the IP of our
    /// direct connection to it.
    fn lane_addr(&self, peer: &PeerId) -> Option<std::net::SocketAddr> {
        let peers = self.lock_peers();
        let state = peers.get(peer)?;
        let port = state.lane?;
        let ip = state
            .conns
            .values()
            .filter(|a| !filter::is_relayed(a))
            .find_map(lane::ip_of)?;
        Some(std::net::SocketAddr::new(ip, port))
    }

    /// The first frames of a stream of `kind`: our `Hello`, and on a
    /// lane-offering stream our lane's port.
    fn hello(&self, kind: stream::Kind, buf: &mut Vec<u8>) {
        wire::encode(&Frame::Hello(self.our_record()), buf);
        if kind == stream::Kind::Lanes {
            lane::offer(self.lane_port, buf);
        }
    }

    fn lock_reach(&self) -> std::sync::MutexGuard<'_, reach::Reach> {
        self.reach.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The read order of `peer`'s inbound message streams.
    fn read_order(&self, peer: PeerId) -> Arc<read_order::ReadOrder> {
        self.read_order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_default()
            .clone()
    }

    fn peer_rtt(&self, peer: PeerId, rtt: Duration) {
        self.lock_peers().entry(peer).or_default().rtt = Some(rtt);
    }
    fn our_record(&self) -> NameRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fail requests that can no longer be answered.
    fn fail_orphans(&self, orphans: Orphans, why: &str) {
        let Some(services) = self.services.upgrade() else {
            return;
        };
        for (id, awaited) in orphans {
            let error = SendError::new(SendErrorKind::Offline, &awaited.target, why);
            services.kernel.fail(&awaited.rsvp, id, error);
        }
    }

    /// Ask the event loop to connect `node` (frames wait in its link);
    /// if it cannot take the command, fail everything waiting for `node`
    /// (false).
    fn connect(&self, node: &str) -> bool {
        let taken = self
            .commands
            .try_send(Command::Connect(node.to_string()))
            .is_ok();
        if !taken {
            self.unreachable(node, "the network is overloaded");
        }
        taken
    }

    /// A stream to `node` ended with frames still queued for it: connect
    /// again, after the back-off its streams that delivered nothing earned
    /// ([`redial_delay`]), or give `node` up past [`MAX_REDIALS`].
    fn redial(self: &Arc<Self>, node: &str) {
        let n = self.links.redials(node);
        if n > MAX_REDIALS {
            warn!(
                node,
                redials = n,
                "the peer keeps ending our streams unread"
            );
            return self.unreachable(node, "the peer keeps closing our stream");
        }
        let delay = redial_delay(n);
        if delay.is_zero() {
            self.connect(node);
            return;
        }
        debug!(node, redials = n, ?delay, "redialing after a back-off");
        let (shared, node) = (self.clone(), node.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            shared.connect(&node);
        });
    }

    /// Send a frame to `node`, asking the event loop to connect if needed.
    fn send_frame(
        &self,
        node: &str,
        frame: Frame,
        awaited: Option<(u64, Address, Address, Instant)>,
    ) -> Result<(), SendErrorKind> {
        match self.links.send(node, frame, awaited)? {
            Sent::Written | Sent::Queued => Ok(()),
            Sent::Connect if self.connect(node) => Ok(()),
            Sent::Connect => Err(SendErrorKind::MailboxFull),
        }
    }

    /// `node` cannot be reached: fail everything waiting for it.
    fn unreachable(&self, node: &str, why: &str) {
        let (orphans, lost) = self.links.unreachable(node);
        if lost > 0 {
            warn!(node, lost, why, "frames for an unreachable node dropped");
        }
        self.fail_orphans(orphans, &format!("node {node} is unreachable: {why}"));
    }
}

/// The kernel's handle on the network.
pub struct Net {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
}

impl Net {
    /// Start listening, join the bootstrap peers and run the event loop.
    pub fn start(
        config: &NetConfig,
        home: &std::path::Path,
        services: &Arc<Services>,
    ) -> Result<Arc<Self>, NetError> {
        let keypair = identity::load_or_create(home)?;
        let our = services.kernel.our().to_string();
        let record = NameRecord::sign(&keypair, &our, Vec::new(), now_millis())
            .map_err(|e| NetError::Transport(e.to_string()))?;
        let (commands, commands_rx) = mpsc::channel(COMMANDS);
        // Without a lane listener messages stay on libp2p streams; a port
        // asked for by the operator must be had.
        let lanes = match lane::bind(config.listen_ip, config.lane_port) {
            Ok(listener) => Some(listener),
            Err(e) if config.lane_port != 0 => {
                let at = std::net::SocketAddr::new(config.listen_ip, config.lane_port);
                return Err(NetError::Transport(format!(
                    "cannot listen for lanes at {at}: {e}"
                )));
            }
            Err(e) => {
                warn!(ip = %config.listen_ip, "no lane listener: {e}");
                None
            }
        };
        let lane_port = lanes
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let shared = Arc::new(Shared {
            our,
            commands: commands.clone(),
            peers: Mutex::default(),
            reach: Mutex::default(),
            read_order: Mutex::default(),
            book: AddressBook::open(home),
            links: Links::default(),
            owed: Owed::default(),
            inbound: reader::InboundStreams::default(),
            inbound_bytes: wire::Budget::new(INBOUND_FRAME_BYTES),
            outbound: Mutex::default(),
            record: Mutex::new(record),
            services: Arc::downgrade(services),
            max_frame: services.kernel.limits().max_message_bytes + wire::FRAME_OVERHEAD,
            dial_timeout: config.dial_timeout,
            keypair: keypair.clone(),
            lane_port,
            lane_slots: lane::Slots::default(),
        });
        let event_loop = event_loop::EventLoop::new(
            config,
            keypair.clone(),
            shared.clone(),
            commands_rx,
            lanes,
        )?;
        tokio::spawn(event_loop.run());
        Ok(Arc::new(Self {
            shared,
            commands,
            peer_id: keypair.public().to_peer_id(),
        }))
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A TCP address other nodes can `--bootstrap` from, once listening:
    /// `/ip4/.../tcp/PORT/p2p/PEER_ID`.
    pub fn bootstrap_addr(&self) -> Option<String> {
        let record = self.shared.our_record();
        // A direct TCP address: a circuit address already ends in a
        // `/p2p/` of its own, and dials through a relay.
        let tcp = record
            .addrs
            .iter()
            .find(|a| a.contains("/tcp/") && !a.contains("/p2p-circuit"))?;
        Some(format!("{tcp}/p2p/{}", self.peer_id))
    }

    /// The port of our lane listener (`lane`), if it listens.
    pub fn lane_port(&self) -> Option<u16> {
        self.shared.lane_port
    }

    /// How many of our message streams to peers run on a lane.
    pub fn lanes(&self) -> usize {
        let outbound = self
            .shared
            .outbound
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        outbound
            .values()
            .filter(|o| matches!(o, Outbound::Open(open) if open.lane && !open.outlet.is_closed()))
            .count()
    }

    /// Our signed name record (addresses fill in once listening).
    pub fn record(&self) -> NameRecord {
        self.shared.our_record()
    }

    /// Leave the network: close all connections and stop the event loop.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Connected peers with their names, addresses and round-trip times.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let peers = self.shared.lock_peers();
        peers
            .iter()
            .map(|(peer, state)| {
                let best = state.best();
                PeerInfo {
                    name: self.shared.book.name_of(peer),
                    peer_id: peer.to_base58(),
                    addrs: state.addrs.iter().map(ToString::to_string).collect(),
                    rtt_ms: state.rtt.map(|d| d.as_secs_f64() * 1e3),
                    connection: best.map(|a| {
                        if filter::is_relayed(a) {
                            "relayed".to_string()
                        } else {
                            "direct".to_string()
                        }
                    }),
                    transport: best.map(|a| reach::transport(a).to_string()),
                }
            })
            .collect()
    }

    /// Whether peers can dial us, our relays and circuit addresses.
    pub fn reachability(&self) -> crate::api::Reachability {
        self.shared.lock_reach().to_api()
    }
}

impl crate::kernel::Remote for Net {
    fn send(&self, mut km: KernelMessage) -> Result<(), SendError> {
        let target = km.target.clone();
        if !km.is_request() {
            // An answer to a peer's request: back under the peer's own id.
            match self.shared.owed.take(km.id) {
                Some(owed) if owed.rsvp == target => km.id = owed.id,
                _ => {
                    debug!(%target, id = km.id, "answer for a peer that stopped waiting; dropped");
                    return Ok(());
                }
            }
        }
        let awaited = match (&km.message, &km.rsvp) {
            (Message::Request(r), Some(rsvp)) if *rsvp.node == *self.shared.our => {
                r.expects_response.map(|ms| {
                    (
                        km.id,
                        rsvp.clone(),
                        target.clone(),
                        Instant::now() + Duration::from_millis(ms),
                    )
                })
            }
            _ => None,
        };
        self.shared
            .send_frame(&target.node, Frame::Deliver(km), awaited)
            .map_err(|kind| {
                SendError::new(kind, &target, "the link to that node is full; retry later")
            })
    }

    fn fail(&self, rsvp: &Address, id: u64, error: SendError) {
        let Some(owed) = self.shared.owed.take(id).filter(|o| o.rsvp == *rsvp) else {
            return debug!(%rsvp, id, "failure for a peer that stopped waiting; dropped");
        };
        let frame = Frame::Failed {
            id: owed.id,
            rsvp: rsvp.clone(),
            error,
        };
        if self.shared.send_frame(&rsvp.node, frame, None).is_err() {
            warn!(%rsvp, id, "could not tell a remote asker that its request failed");
        }
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_back_off_doubling_up_to_a_cap() {
        assert_eq!(redial_delay(0), Duration::ZERO);
        assert_eq!(redial_delay(1), REDIAL_FIRST);
        assert_eq!(redial_delay(2), REDIAL_FIRST * 2);
        assert_eq!(redial_delay(MAX_REDIALS), REDIAL_MAX);
        assert_eq!(redial_delay(u32::MAX), REDIAL_MAX);
    }
}
