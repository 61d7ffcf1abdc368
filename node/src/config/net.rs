//! Peer-to-peer settings: plain data, read by `net`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct NetConfig {
    /// TCP and UDP (QUIC) port to listen on; 0 picks free ones.
    pub port: u16,
    /// Address to listen on.
    pub listen_ip: std::net::IpAddr,
    /// TCP port for lanes (our own connection per peer, `net/lane.rs`) on
    /// `listen_ip`; 0 picks a free one. A port set here that cannot be
    /// bound stops the node from starting.
    pub lane_port: u16,
    /// Peers to join at boot (multiaddrs ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    /// How long a dial or stream open may take before pending requests
    /// fail with `offline`.
    pub dial_timeout: Duration,
    /// Connections idle this long are closed.
    pub idle_timeout: Duration,
    /// Established connections at most (and pending inbound ones).
    pub max_connections: u32,
    pub ping_interval: Duration,
    /// Serve as a relay with these limits (`--relay`); `None`: refuse
    /// reservations.
    pub relay: Option<RelayLimits>,
    /// Relays to reserve a slot on (multiaddrs ending in `/p2p/<peer id>`),
    /// tried in order, one reservation at a time.
    pub relay_via: Vec<String>,
    /// Addresses peers can dial us at, known beforehand (a relay on a
    /// public host): taken as confirmed.
    pub external_addrs: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            port: 0,
            listen_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            lane_port: 0,
            bootstrap: Vec::new(),
            mdns: true,
            dial_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
            ping_interval: Duration::from_secs(10),
            relay: None,
            relay_via: Vec::new(),
            external_addrs: Vec::new(),
        }
    }
}

/// What a relay grants, each limit named. Defaults: see each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayLimits {
    /// Reservations held at once, all peers (128).
    pub max_reservations: usize,
    /// Reservations one peer may hold (4).
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the client renews it (1 hour).
    pub reservation_secs: u64,
    /// Circuits open at once, all peers (64).
    pub max_circuits: usize,
    /// Fairness: circuits one peer may have open at once (4).
    pub max_circuits_per_peer: usize,
    /// Fairness: new circuits one source peer may open per minute (30).
    pub circuits_per_peer_per_minute: u32,
    /// A circuit is closed after this long (10 minutes).
    pub max_circuit_secs: u64,
    /// A circuit is closed after relaying this many bytes, both directions
    /// counted (16 MiB).
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_secs: 3600,
            max_circuits: 64,
            max_circuits_per_peer: 4,
            circuits_per_peer_per_minute: 30,
            max_circuit_secs: 600,
            max_circuit_bytes: 16 * 1024 * 1024,
        }
    }
}
