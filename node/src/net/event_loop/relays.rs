//! The event loop's relay side: keeping a reservation (connect to the
//! relay, then ask over that connection), failing over, and the events of
//! the relay client and of the relay we serve with `--relay`.

use libp2p::relay;
use libp2p::swarm::dial_opts::DialOpts;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::net::relay::Step;

impl EventLoop {
    /// Keep a reservation on one of the `--relay-via` relays.
    pub(super) fn reserve(&mut self, now: Instant) {
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
                info!(peer = %src_peer_id, ?status, "reservation refused (over a relay limit)");
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
                info!(src = %src_peer_id, dst = %dst_peer_id, ?status, "circuit refused");
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
