//! Circuit relay v2: the limits of a node serving as a relay (`--relay`),
//! and the client side's reservations (`--relay-via`, repeatable).
//!
//! **Relayed app traffic.** Hearth lets relayed circuits carry messages as
//! a fallback, so a node behind a symmetric NAT stays reachable. The
//! relay bounds what each circuit costs it: [`RelayLimits`] (by default
//! 10 minutes and 16 MiB per circuit, 4 circuits per peer, 64 in all).
//! When a circuit hits a limit the relay closes it; requests awaiting an
//! answer over it fail with `offline` and the next message opens a new
//! circuit. Hole punching (DCUtR) is tried on every relayed connection;
//! once a direct connection exists the message stream moves to it.
//!
//! **Reservations.** A node keeps one reservation at a time, on the first
//! relay of its `--relay-via` list that accepts it. libp2p renews it
//! before it expires. When the relay goes away the node says so, moves to
//! the next relay of the list, and cycles through the list with a pause
//! after each full round.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::relay;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

pub use crate::config::RelayLimits;

/// Pause after every relay of the list failed once.
pub const RETRY_ROUND: Duration = Duration::from_secs(3);
/// A relay that neither grants nor refuses a reservation by then counts
/// as failed.
pub const RESERVE_TIMEOUT: Duration = Duration::from_secs(20);

impl RelayLimits {
    pub fn config(&self) -> relay::Config {
        let per_minute =
            NonZeroU32::new(self.circuits_per_peer_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let defaults = relay::Config::default();
        let mut config = relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(self.reservation_secs.max(1)),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(
                self.max_circuit_secs.clamp(1, u32::MAX as u64),
            ),
            max_circuit_bytes: self.max_circuit_bytes,
            reservation_rate_limiters: defaults.reservation_rate_limiters,
            circuit_src_rate_limiters: Vec::new(),
        };
        config = config.circuit_src_per_peer(per_minute, Duration::from_secs(60));
        config
    }
}

/// Where our reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// No relay configured.
    None,
    /// Asking the current relay, until the instant.
    Reserving(Instant),
    /// The relay at this index holds a slot for us.
    Reserved,
    /// Every relay failed this round; trying again at the instant.
    Waiting(Instant),
}

/// Our reservations on the relays of `--relay-via`.
pub struct Reservations {
    relays: Vec<(PeerId, Multiaddr)>,
    at: usize,
    tried_this_round: usize,
    pub listener: Option<ListenerId>,
    pub state: Reservation,
    /// Relays lost since boot (a reservation we held went away).
    pub lost: u64,
}

impl Reservations {
    /// `relays` end in `/p2p/<relay peer id>`; others are refused.
    pub fn new(relays: &[String]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for text in relays {
            let addr: Multiaddr = text
                .parse()
                .map_err(|_| format!("bad relay address {text:?}: not a multiaddr"))?;
            let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(format!(
                    "bad relay address {text:?}: expected one ending in /p2p/<peer id>"
                ));
            };
            parsed.push((peer, addr));
        }
        let state = if parsed.is_empty() {
            Reservation::None
        } else {
            Reservation::Waiting(Instant::now())
        };
        Ok(Self {
            relays: parsed,
            at: 0,
            tried_this_round: 0,
            listener: None,
            state,
            lost: 0,
        })
    }

    pub fn relays(&self) -> &[(PeerId, Multiaddr)] {
        &self.relays
    }

    /// The relay we hold or ask a reservation on.
    pub fn current(&self) -> Option<&(PeerId, Multiaddr)> {
        match self.state {
            Reservation::Reserving(_) | Reservation::Reserved => self.relays.get(self.at),
            _ => None,
        }
    }

    /// The address to listen on for the next try, if it is time.
    pub fn next_try(&mut self, now: Instant) -> Option<Multiaddr> {
        match self.state {
            Reservation::Waiting(at) if at <= now => {}
            _ => return None,
        }
        let (_, addr) = self.relays.get(self.at)?;
        self.state = Reservation::Reserving(now + RESERVE_TIMEOUT);
        Some(addr.clone().with(Protocol::P2pCircuit))
    }

    /// Asking for longer than [`RESERVE_TIMEOUT`].
    pub fn overdue(&self, now: Instant) -> bool {
        matches!(self.state, Reservation::Reserving(deadline) if deadline <= now)
    }

    pub fn accepted(&mut self) {
        self.state = Reservation::Reserved;
        self.tried_this_round = 0;
    }

    /// The listener on the current relay closed or failed: move to the
    /// next relay; after a full round, wait [`RETRY_ROUND`]. Returns
    /// whether we had held a reservation there.
    pub fn failed(&mut self, now: Instant) -> bool {
        let held = self.state == Reservation::Reserved;
        if held {
            self.lost += 1;
        }
        self.listener = None;
        if self.relays.is_empty() {
            self.state = Reservation::None;
            return held;
        }
        self.at = (self.at + 1) % self.relays.len();
        self.tried_this_round += 1;
        self.state = if self.tried_this_round >= self.relays.len() {
            self.tried_this_round = 0;
            Reservation::Waiting(now + RETRY_ROUND)
        } else {
            Reservation::Waiting(now)
        };
        held
    }

    /// What `/admin/status` shows.
    pub fn describe(&self) -> Vec<crate::api::RelayInfo> {
        self.relays
            .iter()
            .enumerate()
            .map(|(i, (_, addr))| {
                let state = match self.state {
                    _ if i != self.at => "standby",
                    Reservation::Reserved => "reserved",
                    Reservation::Reserving(_) => "reserving",
                    Reservation::Waiting(_) => "retrying",
                    Reservation::None => "none",
                };
                crate::api::RelayInfo {
                    addr: addr.to_string(),
                    state: state.to_string(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(port: u16) -> String {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        format!("/ip4/198.51.100.1/tcp/{port}/p2p/{peer}")
    }

    #[test]
    fn relay_addresses_must_name_the_peer() {
        assert!(Reservations::new(&["/ip4/1.2.3.4/tcp/5".into()]).is_err());
        assert!(Reservations::new(&["nonsense".into()]).is_err());
        assert!(Reservations::new(&[relay(1)]).is_ok());
    }

    #[test]
    fn fails_over_then_waits_after_a_round() {
        let mut r = Reservations::new(&[relay(1), relay(2)]).unwrap();
        let now = Instant::now();
        let first = r.next_try(now).unwrap();
        assert!(
            first.to_string().contains("/tcp/1/") && first.to_string().ends_with("/p2p-circuit")
        );
        r.accepted();
        assert_eq!(r.describe()[0].state, "reserved");
        assert!(r.failed(now), "a held reservation was lost");
        assert_eq!(r.lost, 1);
        let second = r.next_try(now).unwrap();
        assert!(second.to_string().contains("/tcp/2/"));
        assert!(!r.failed(now));
        // Both failed in this round: wait before the next.
        assert!(r.next_try(now).is_none());
        assert!(r.next_try(now + RETRY_ROUND).is_some());
        assert!(!r.overdue(now + RETRY_ROUND));
        assert!(r.overdue(now + RETRY_ROUND + RESERVE_TIMEOUT));
    }

    #[test]
    fn limits_map_to_the_relay_config() {
        let limits = RelayLimits::default();
        let config = limits.config();
        assert_eq!(config.max_circuit_bytes, 16 * 1024 * 1024);
        assert_eq!(config.max_circuit_duration, Duration::from_secs(600));
        assert_eq!(config.max_circuits_per_peer, 4);
        assert_eq!(config.circuit_src_rate_limiters.len(), 1);
    }
}
