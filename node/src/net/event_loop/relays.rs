//! The event loop's relay side: keeping a reservation (connect to the
//! relay, then ask over that connection), failing over, and the events of
//! the relay client and of the relay we serve with `--relay`; relays
//! found among peers (identify lists the hop protocol).

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::ConnectionId;
use libp2p::{identify, relay, Multiaddr, PeerId};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::net::filter::is_relayed;
use crate::net::relay::Step;

/// Connected peers serving as relays that we remember as candidates for
/// a reservation (until they disconnect); the reservation list takes at
/// most `relay::MAX_DISCOVERED_RELAYS` of them.
pub(super) const MAX_RELAY_CANDIDATES: usize = 16;

impl EventLoop {
    /// `peer` told us (identify) what it runs: if it serves the relay hop
    /// protocol and we reached it directly at an address it announces,
    /// it is a relay candidate at that address. A node serving as a relay
    /// needs none (it is public).
    pub(super) fn relay_seen(&mut self, peer: PeerId, conn: ConnectionId, info: &identify::Info) {
        if self.serving_relay
            || !info.protocols.contains(&relay::HOP_PROTOCOL_NAME)
            || self.relay_candidates.len() >= MAX_RELAY_CANDIDATES
            || self.relay_candidates.iter().any(|(p, _)| *p == peer)
        {
            return;
        }
        let remote = self
            .shared
            .lock_peers()
            .get(&peer)
            .and_then(|state| state.conns.get(&conn).cloned());
        let Some(remote) = remote.map(|a| without_peer(&a)) else {
            return;
        };
        // We dialed it there (the far side of a connection it dialed is
        // an ephemeral port); that address reaches it from our network,
        // and our circuit address on it is what peers will dial.
        if is_relayed(&remote) || !info.listen_addrs.iter().any(|a| without_peer(a) == remote) {
            return;
        }
        debug!(%peer, addr = %remote, "a peer serves as a relay");
        self.relay_candidates
            .push((peer, remote.with(Protocol::P2p(peer))));
    }

    /// While we are private, put relay candidates into the reservation
    /// list (it takes what fits).
    fn adopt_relays(&mut self, now: Instant) {
        if self.relay_candidates.is_empty() || self.shared.lock_reach().status() != "private" {
            return;
        }
        for (peer, addr) in &self.relay_candidates {
            if !self.reservations.knows(peer)
                && self.reservations.discover(*peer, addr.clone(), now)
            {
                info!(relay = %addr, "found a relay among our peers");
            }
        }
    }

    /// Keep a reservation on one of our relays: the `--relay-via` ones,
    /// then those found among peers.
    pub(super) fn reserve(&mut self, now: Instant) {
        self.adopt_relays(now);
        if self.reservations.overdue(now) {
            if let Some(listener) = self.reservations.listener {
                self.swarm.remove_listener(listener);
            }
            warn!("the relay did not answer our reservation request in time");
            self.relay_failed(now);
        }
        let swarm = &self.swarm;
        let step = self
            .reservations
            .next_step(now, |peer| swarm.is_connected(peer));
        match step {
            None => return,
            Some(Step::Dial(peer, addr)) => {
                debug!(%addr, "connecting to the relay");
                let opts = DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .build();
                match self.swarm.dial(opts) {
                    Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
                    Err(e) => {
                        warn!(%addr, "cannot connect to the relay: {e}");
                        self.relay_failed(now);
                    }
                }
            }
            Some(Step::Listen(addr)) => match self.swarm.listen_on(addr.clone()) {
                Ok(listener) => {
                    debug!(%addr, "asking the relay for a reservation");
                    self.reservations.listener = Some(listener);
                }
                Err(e) => {
                    warn!(%addr, "cannot ask the relay for a reservation: {e}");
                    self.relay_failed(now);
                }
            },
        }
        self.shared.lock_reach().relays = self.reservations.describe();
    }

    pub(super) fn relay_failed(&mut self, now: Instant) {
        let relay = self.reservations.current().map(|(_, a)| a.to_string());
        if self.reservations.failed(now) {
            warn!(
                relay = relay.as_deref().unwrap_or("-"),
                "lost our relay reservation; moving to the next relay"
            );
            self.count(|net| &net.relays_lost);
        }
        let mut reach = self.shared.lock_reach();
        reach.relays = self.reservations.describe();
        reach.relays_lost = self.reservations.lost;
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                debug!(relay = %relay_peer_id, renewal, "relay reservation granted");
                self.count(|net| &net.relay_reservations);
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                debug!(relay = %relay_peer_id, "circuit through a relay opened");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                debug!(peer = %src_peer_id, "a peer reached us through our relay");
            }
        }
    }

    pub(super) fn on_relay(&mut self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => {
                debug!(peer = %src_peer_id, renewed, "reservation granted");
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                // Counted; a flood of them must not flood the log.
                debug!(peer = %src_peer_id, ?status, "reservation refused (over a relay limit)");
                self.count(|net| &net.relay_reservations_refused);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                debug!(src = %src_peer_id, dst = %dst_peer_id, "relaying a circuit");
                self.count(|net| &net.relay_circuits_served);
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                debug!(src = %src_peer_id, dst = %dst_peer_id, ?status, "circuit refused");
                self.count(|net| &net.relay_circuits_refused);
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                debug!(src = %src_peer_id, dst = %dst_peer_id, ?error, "circuit closed");
            }
            _ => {}
        }
    }
}

/// `addr` without a trailing `/p2p/<peer id>`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}
