//! The network event loop: owns the `Swarm`, resolves names (address book,
//! then the DHT), dials, publishes our signed record, and tracks peers.
//! Messages do not pass through it; only connection set-up and queries do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::kad::{self, QueryId, QueryResult};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{autonat, dcutr, identify, mdns, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent, Settings};
use super::dht::{name_key, PutLimiter};
use super::filter::{connection_addr, is_relayed};
use super::record::{NameRecord, MAX_ADDRS};
use super::relay::Reservations;
use super::{accept, now_millis, outbound, reader, Command, Controls, NetConfig, NetError, Shared};
use crate::metrics::NetCounters;

mod names;
mod relays;

/// How often the loop sweeps expired state and checks deadlines.
const TICK: Duration = Duration::from_millis(250);
/// Substreams one connection may hold open (messages, DHT, identify and
/// ping need a handful; yamux's default is 512).
const MAX_STREAMS_PER_CONNECTION: usize = 128;
/// How often our name record is put into the DHT again.
const REPUBLISH: Duration = Duration::from_secs(60);
/// How often the DHT routing table is refreshed (only with peers in it).
const BOOTSTRAP_EVERY: Duration = Duration::from_secs(300);

/// A node we are connecting to.
struct Pending {
    /// When its senders get `offline`.
    deadline: Instant,
    /// A DHT lookup for its name runs: it may find a newer record than the
    /// address book's (a record is a cache: the node may have moved, or
    /// reserved on another relay, since).
    looking_up: bool,
    /// `seq` of the newest record we dialed.
    dialed: Option<u64>,
    /// Our dials in flight.
    dials: Vec<ConnectionId>,
    /// Why the last dial failed.
    failed: Option<String>,
    /// Connected to the peer already: its message stream is opening.
    linking: bool,
}

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    controls: Controls,
    /// DHT lookups in flight: query -> node name.
    lookups: HashMap<QueryId, String>,
    /// Nodes we are connecting to.
    waiting: HashMap<String, Pending>,
    listen_addrs: Vec<Multiaddr>,
    publish_at: Option<Instant>,
    puts: PutLimiter,
    reservations: Reservations,
    /// Connected peers serving as relays (see `relays::relay_seen`).
    relay_candidates: Vec<(PeerId, Multiaddr)>,
    serving_relay: bool,
    bootstrap_at: Instant,
    /// The lane listener's task (`reader::accept_lanes`).
    lanes: Option<tokio::task::AbortHandle>,
}

impl EventLoop {
    pub(super) fn new(
        config: &NetConfig,
        keypair: Keypair,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
        lanes: Option<std::net::TcpListener>,
    ) -> Result<Self, NetError> {
        let transport = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
        let reservations = Reservations::new(&config.relay_via).map_err(NetError::Relay)?;
        let settings = Settings {
            use_mdns: config.mdns,
            ping_interval: config.ping_interval,
            max_connections: config.max_connections,
            relay: config.relay,
            tickets: {
                let shared = shared.clone();
                Arc::new(move |peer| shared.read_order(peer).ticket())
            },
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                || {
                    let mut config = yamux::Config::default();
                    config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
                    config
                },
            )
            .map_err(|e| transport(&e))?
            .with_quic()
            .with_relay_client(noise::Config::new, || {
                let mut config = yamux::Config::default();
                config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
                config
            })
            .map_err(|e| transport(&e))?
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, relay_client, settings)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| transport(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        let ip = match config.listen_ip {
            std::net::IpAddr::V4(ip) => Protocol::Ip4(ip),
            std::net::IpAddr::V6(ip) => Protocol::Ip6(ip),
        };
        let tcp_addr = Multiaddr::empty()
            .with(ip.clone())
            .with(Protocol::Tcp(config.port));
        let quic_addr = Multiaddr::empty()
            .with(ip)
            .with(Protocol::Udp(config.port))
            .with(Protocol::QuicV1);
        for addr in [tcp_addr, quic_addr] {
            // libp2p's listen errors print empty: show what failed, and why.
            let failed = |e| NetError::Transport(format!("cannot listen on {addr}: {e:?}"));
            swarm.listen_on(addr.clone()).map_err(failed)?;
        }
        for addr in &config.bootstrap {
            let parsed: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::Bootstrap(addr.clone()))?;
            let Some(Protocol::P2p(peer)) = parsed.iter().last() else {
                return Err(NetError::Bootstrap(addr.clone()));
            };
            swarm.behaviour_mut().kad.add_address(&peer, parsed.clone());
            if let Err(e) = swarm.dial(parsed) {
                warn!(%addr, "bootstrap dial failed: {e}");
            }
        }
        for text in &config.external_addrs {
            let addr: Multiaddr = text
                .parse()
                .map_err(|_| NetError::Relay(format!("bad external address {text:?}")))?;
            swarm.add_external_address(addr.clone());
            shared.lock_reach().confirmed(&addr);
        }
        let controls = Controls {
            direct: swarm.behaviour().stream.inner().new_control(),
            relayed: swarm.behaviour().relayed_stream.inner().new_control(),
        };
        match swarm.behaviour_mut().accept.take_incoming() {
            Some(incoming) => {
                tokio::spawn(reader::accept_loop(
                    shared.clone(),
                    controls.clone(),
                    incoming,
                ));
            }
            None => warn!("no accept queue: peers' message streams will not be read"),
        }
        let lanes = lanes
            .and_then(|l| {
                tokio::net::TcpListener::from_std(l)
                    .map_err(|e| warn!("no lane listener: {e}"))
                    .ok()
            })
            .map(|l| {
                tokio::spawn(reader::accept_lanes(shared.clone(), controls.clone(), l))
                    .abort_handle()
            });
        {
            let mut reach = shared.lock_reach();
            reach.serving_relay = config.relay.is_some();
            reach.relays = reservations.describe();
        }
        Ok(Self {
            swarm,
            shared,
            commands,
            controls,
            lookups: HashMap::new(),
            waiting: HashMap::new(),
            listen_addrs: Vec::new(),
            publish_at: None,
            puts: PutLimiter::default(),
            reservations,
            relay_candidates: Vec::new(),
            serving_relay: config.relay.is_some(),
            bootstrap_at: Instant::now() + BOOTSTRAP_EVERY,
            lanes,
        })
    }

    /// Stop taking lanes and end every lane open.
    fn end_lanes(&mut self) {
        if let Some(lanes) = self.lanes.take() {
            lanes.abort();
        }
        self.shared.end_all_lanes();
    }

    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                        for peer in peers {
                            let _ = self.swarm.disconnect_peer_id(peer);
                        }
                        self.end_lanes();
                        // Let the close frames (and lane closes) go out before the swarm drops.
                        let flush = tokio::time::sleep(Duration::from_millis(50));
                        tokio::pin!(flush);
                        loop {
                            tokio::select! {
                                _ = &mut flush => break,
                                _ = self.swarm.select_next_some() => {}
                            }
                        }
                        let _ = done.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.end_lanes();
        debug!("network event loop ended");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect(name) => self.connect(name),
            Command::Shutdown(_) => {}
        }
    }

    /// Resolve and dial `name`: the address book's record at once, and a
    /// DHT lookup alongside, whose newer records are dialed too. The name
    /// is given up when every dial failed and the lookup ended, or at the
    /// deadline.
    fn connect(&mut self, name: String) {
        if self.shared.links.is_connected(&name) {
            return;
        }
        let deadline = Instant::now() + self.shared.dial_timeout;
        let pending = self.waiting.entry(name.clone()).or_insert(Pending {
            deadline,
            looking_up: false,
            dialed: None,
            dials: Vec::new(),
            failed: None,
            linking: false,
        });
        if !pending.looking_up {
            pending.looking_up = true;
            let query = self.swarm.behaviour_mut().kad.get_record(name_key(&name));
            self.lookups.insert(query, name.clone());
        }
        if let Some(record) = self.shared.book.get(&name) {
            self.dial_record(&name, &record);
        }
    }

    /// Dial the addresses of `record` (verified, bound) for `name`.
    fn dial_record(&mut self, name: &str, record: &NameRecord) {
        let peer = match record.verify() {
            Ok(peer) => peer,
            Err(e) => return self.give_up(name, &e.to_string()),
        };
        let Some(pending) = self.waiting.get_mut(name) else {
            return;
        };
        if self.swarm.is_connected(&peer) {
            pending.linking = true;
            return outbound::open_link(&self.shared, &self.controls, peer);
        }
        let addrs: Vec<Multiaddr> = record.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        for addr in &addrs {
            self.swarm.add_peer_address(peer, addr.clone());
        }
        // A newer record's addresses are dialed even while a dial from an
        // older one is in flight (it may hang on an address that moved).
        let condition = if pending.dialed.is_some() {
            PeerCondition::Always
        } else {
            PeerCondition::DisconnectedAndNotDialing
        };
        pending.dialed = Some(record.seq);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(condition)
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => pending.dials.push(id),
            // A dial to that peer is in flight: its outcome (or the
            // waiting deadline) settles this name too.
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                pending.failed = Some(format!("dial failed: {e}"));
                self.settle(name);
            }
        }
    }

    /// Give `name` up if nothing can still connect it: no dial of ours in
    /// flight and no lookup running.
    fn settle(&mut self, name: &str) {
        if self.shared.links.is_connected(name) {
            return;
        }
        let Some(pending) = self.waiting.get(name) else {
            return;
        };
        // A link being opened over a connection is settled by its
        // outcome or the deadline.
        if pending.looking_up || pending.linking || !pending.dials.is_empty() {
            return;
        }
        let why = pending
            .failed
            .clone()
            .unwrap_or_else(|| "no record for that name in the DHT".into());
        self.give_up(name, &why);
    }

    fn give_up(&mut self, name: &str, why: &str) {
        self.waiting.remove(name);
        debug!(name, why, "cannot reach node");
        self.shared.unreachable(name, why);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.shared.links.sweep(now);
        self.shared.owed.sweep(now);
        let links = &self.shared.links;
        self.waiting.retain(|name, _| !links.is_connected(name));
        let expired: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.give_up(&name, "timed out connecting");
        }
        if self.publish_at.is_some_and(|at| at <= now) {
            self.publish();
        }
        if self.bootstrap_at <= now {
            self.bootstrap_at = now + BOOTSTRAP_EVERY;
            let kad = &mut self.swarm.behaviour_mut().kad;
            if kad.kbuckets().any(|b| b.num_entries() > 0) {
                let _ = kad.bootstrap();
            }
        }
        self.reserve(now);
    }

    /// A node behind a NAT serves no DHT requests (peers could not dial
    /// it back): it runs Kademlia as a client, and peers drop it from
    /// their routing tables. Otherwise it serves, also without a confirmed
    /// address, so loopback and LAN networks have a DHT.
    fn reach_changed(&mut self) {
        let mode = if self.shared.lock_reach().status() == "private" {
            kad::Mode::Client
        } else {
            kad::Mode::Server
        };
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.mode() != mode {
            info!(?mode, "DHT mode follows reachability");
            kad.set_mode(Some(mode));
        }
    }

    fn count(&self, counter: impl Fn(&NetCounters) -> &std::sync::atomic::AtomicU64) {
        self.shared.count(counter);
    }

    /// Sign our record again with what peers can dial: circuits on our
    /// relays first, then confirmed external addresses, then listeners.
    fn refresh_record(&mut self) {
        let mut addrs: Vec<String> = Vec::new();
        {
            let reach = self.shared.lock_reach();
            // Loopback listeners reach another node only on this machine:
            // published only when there is nothing else (tests on
            // loopback). Elsewhere a dial there finds another node, or none.
            let wide: Vec<&Multiaddr> = self
                .listen_addrs
                .iter()
                .filter(|a| !is_loopback(a))
                .collect();
            let listeners: Vec<&Multiaddr> = if wide.is_empty() {
                self.listen_addrs.iter().collect()
            } else {
                wide
            };
            for addr in reach
                .circuits()
                .iter()
                .chain(reach.confirmed_addrs())
                .chain(listeners)
            {
                let text = addr.to_string();
                if !addrs.contains(&text) && addrs.len() < MAX_ADDRS {
                    addrs.push(text);
                }
            }
        }
        match NameRecord::sign(&self.shared.keypair, &self.shared.our, addrs, now_millis()) {
            Ok(record) => *self.shared.record.lock().unwrap_or_else(|e| e.into_inner()) = record,
            Err(e) => warn!("cannot sign our name record: {e}"),
        }
        self.publish_at = Some(Instant::now());
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                let mut first_circuit = false;
                if is_relayed(&address) {
                    info!(%address, "reserved on a relay; reachable through it");
                    if self.reservations.listener == Some(listener_id) {
                        self.reservations.accepted();
                    }
                    let mut reach = self.shared.lock_reach();
                    reach.circuit(&address);
                    reach.relays = self.reservations.describe();
                    first_circuit = reach.circuits().len() == 1;
                } else {
                    info!(%address, "listening");
                    self.listen_addrs.push(address);
                }
                self.refresh_record();
                // Until this record is in the DHT, peers find only our
                // private addresses: put it now, not at the next tick.
                if first_circuit {
                    self.publish();
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
                self.shared.lock_reach().expired(&address);
                self.refresh_record();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                for address in &addresses {
                    self.listen_addrs.retain(|a| a != address);
                    self.shared.lock_reach().expired(address);
                }
                if self.reservations.listener == Some(listener_id) {
                    debug!(?reason, "relay listener closed");
                    self.relay_failed(Instant::now());
                }
                self.refresh_record();
            }
            SwarmEvent::ExternalAddrConfirmed { address } if !is_relayed(&address) => {
                info!(%address, "a peer confirmed it can dial us here");
                self.shared.lock_reach().confirmed(&address);
                self.refresh_record();
                self.reach_changed();
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                let mut reach = self.shared.lock_reach();
                let before = reach.status();
                reach.observed(&address, &self.listen_addrs);
                if before != reach.status() {
                    info!(%address, reachability = reach.status(), "a peer sees us behind a NAT");
                }
                drop(reach);
                self.reach_changed();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.shared.lock_reach().expired(&address);
                self.reach_changed();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                let remote = connection_addr(&endpoint, peer_id);
                self.shared.peer_connected(peer_id, connection_id, &remote);
                if self.reservations.connecting_to(&peer_id) {
                    self.reserve(Instant::now());
                }
                if endpoint.is_dialer() {
                    outbound::open_link(&self.shared, &self.controls, peer_id);
                }
                if !is_relayed(&remote) {
                    outbound::upgrade(&self.shared, &self.controls, peer_id);
                }
                // A new neighbour: make sure our record reaches the DHT.
                self.publish_at = Some(Instant::now() + Duration::from_millis(200));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.shared.connection_closed(&peer_id, connection_id);
                if num_established > 0 {
                    return;
                }
                debug!(%peer_id, ?cause, "disconnected");
                self.relay_candidates.retain(|(p, _)| *p != peer_id);
                self.shared.peer_gone(&peer_id);
                let (orphans, again) = self.shared.links.disconnected(&peer_id);
                self.shared.fail_orphans(orphans, "the peer disconnected");
                // Frames queued behind the closed streams: dial again (they
                // fail typed with the name if the peer is gone).
                for name in again {
                    self.shared.redial(&name);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                connection_id,
                error,
            } => {
                if self.reservations.connecting_to(&peer) && !self.swarm.is_connected(&peer) {
                    warn!(%peer, "cannot connect to the relay: {error}");
                    self.relay_failed(Instant::now());
                }
                let ours = self.waiting.iter_mut().find_map(|(name, pending)| {
                    let at = pending.dials.iter().position(|d| *d == connection_id)?;
                    pending.dials.swap_remove(at);
                    pending.failed = Some(format!("dial failed: {error}"));
                    Some(name.clone())
                });
                if let Some(name) = ours {
                    self.settle(&name);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                connection_id,
            }) => {
                self.relay_seen(peer_id, connection_id, &info);
                // Only peers serving the DHT go into its routing table: a
                // node behind a NAT runs it as a client (see
                // `reach_changed`), so lookups never wait on dials to
                // its private addresses.
                let kad = &mut self.swarm.behaviour_mut().kad;
                if info.protocols.contains(&super::behaviour::KAD) {
                    for addr in info.listen_addrs {
                        kad.add_address(&peer_id, addr);
                    }
                } else {
                    kad.remove_peer(&peer_id);
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.shared.peer_rtt(peer, rtt);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetRecord(result),
                step,
                ..
            }) => self.on_lookup(id, result, step.last),
            BehaviourEvent::Kad(kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            }) => self.on_put(source, record),
            // A new DHT server in our table: our record may not be on
            // it yet (a put runs over the table of its moment).
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                is_new_peer: true, ..
            }) => {
                let soon = Instant::now() + Duration::from_millis(200);
                if self.publish_at.is_none_or(|at| at > soon) {
                    self.publish_at = Some(soon);
                }
            }
            BehaviourEvent::Accept(accept::Event::Refused(n)) => {
                self.shared.count_by(|net| &net.streams_refused, n);
            }
            BehaviourEvent::RelayClient(event) => self.on_relay_client(event),
            BehaviourEvent::Relay(event) => self.on_relay(event),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                self.count(|net| &net.hole_punch_attempts);
                match result {
                    Ok(_) => {
                        info!(peer = %remote_peer_id, "hole punch succeeded: direct connection");
                        self.count(|net| &net.hole_punch_successes);
                    }
                    Err(e) => {
                        info!(peer = %remote_peer_id, "hole punch failed, staying relayed: {e}")
                    }
                }
            }
            BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            }) => {
                debug!(%tested_addr, %server, ok = result.is_ok(), "reachability test");
                if is_relayed(&tested_addr) {
                    // Reachable through a relay says nothing about us.
                    return;
                }
                let mut reach = self.shared.lock_reach();
                let before = reach.status();
                reach.tested(result.is_ok());
                let after = reach.status();
                drop(reach);
                if before != after {
                    info!(reachability = after, "reachability changed");
                }
                self.reach_changed();
            }
            _ => {}
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
