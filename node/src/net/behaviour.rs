//! The libp2p behaviour: identify and ping with their standard protocol
//! ids (so they interoperate with any libp2p peer), mDNS, a Kademlia DHT
//! under Hearth's own protocol id, raw streams for Hearth messages (opened
//! through libp2p-stream, one behaviour for direct connections, one for
//! relayed ones, see `filter`; accepted through our own, see `accept`),
//! circuit relay v2 (client always, server with `--relay`), DCUtR hole
//! punching and AutoNAT v2 (client and server).

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{autonat, connection_limits, dcutr, identify, mdns, ping, relay, StreamProtocol};

use super::accept;
use super::filter::{Only, QuietKad};
use super::relay::RelayLimits;

/// The message stream protocol.
pub const MESSAGES: StreamProtocol = StreamProtocol::new("/hearth/messages/0.1.0");
/// The message stream protocol with packed frames (`pack`): tried first;
/// a peer that does not speak it gets [`MESSAGES`].
pub const MESSAGES_PACKED: StreamProtocol = StreamProtocol::new("/hearth/messages/0.2.0");
/// Packed frames, and the stream's second frame offers a lane (`lane`):
/// tried before [`MESSAGES_PACKED`].
pub const MESSAGES_LANE: StreamProtocol = StreamProtocol::new("/hearth/messages/0.3.0");
/// The DHT protocol: Hearth nodes form their own DHT, not the IPFS one.
pub const KAD: StreamProtocol = StreamProtocol::new("/hearth/kad/1.0.0");
/// Connections to one peer: TCP and QUIC may both be up, plus one from
/// each side dialling at once.
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Sent in identify's `protocol_version`.
pub const IDENTIFY_VERSION: &str = "/hearth/0.1.0";

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub kad: QuietKad,
    /// Opening message streams over direct connections.
    pub stream: Only<libp2p_stream::Behaviour>,
    /// Opening message streams over relayed connections (until DCUtR upgrades).
    pub relayed_stream: Only<libp2p_stream::Behaviour>,
    /// Accepting message streams, over any connection (the only behaviour
    /// listening for the message protocols: libp2p-stream is never asked
    /// to accept them).
    pub accept: accept::Behaviour,
    pub relay_client: relay::client::Behaviour,
    /// Serving as a relay: only with `--relay`.
    pub relay: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
    pub autonat: autonat::v2::client::Behaviour,
    pub autonat_server: autonat::v2::server::Behaviour,
}

/// Settings of [`Behaviour::new`] beyond the key.
pub struct Settings {
    pub use_mdns: bool,
    pub ping_interval: Duration,
    pub max_connections: u32,
    pub relay: Option<RelayLimits>,
    /// Read-order places for inbound message streams (`accept`).
    pub tickets: accept::Tickets,
}

impl Behaviour {
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        settings: Settings,
    ) -> std::io::Result<Self> {
        let Settings {
            use_mdns,
            ping_interval,
            max_connections,
            relay,
            tickets,
        } = settings;
        let peer = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                .with_agent_version(format!("hearth/{}", env!("CARGO_PKG_VERSION"))),
        );
        let mut kad_config = kad::Config::new(KAD);
        kad_config.set_query_timeout(Duration::from_secs(10));
        // Records others ask us to store come to the event loop first
        // (`dht::check`); only valid name records are kept.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        // The event loop bootstraps on its own schedule, and only with
        // peers to ask (kad's own timer warns on an empty table).
        kad_config.set_periodic_bootstrap_interval(None);
        let store = MemoryStore::with_config(peer, super::dht::store_config());
        let mut kad = kad::Behaviour::with_config(peer, store, kad_config);
        // Nodes on loopback or a LAN have no confirmed external address;
        // serve the DHT anyway so small networks work.
        kad.set_mode(Some(kad::Mode::Server));
        let mdns = if use_mdns {
            Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
        } else {
            None
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(max_connections))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(max_connections));
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
            mdns: mdns.into(),
            kad: QuietKad(kad),
            stream: Only::direct(libp2p_stream::Behaviour::new()),
            relayed_stream: Only::relayed(libp2p_stream::Behaviour::new()),
            accept: accept::Behaviour::new(vec![MESSAGES_LANE, MESSAGES_PACKED, MESSAGES], tickets),
            relay_client,
            relay: relay
                .map(|limits| relay::Behaviour::new(peer, limits.config()))
                .into(),
            dcutr: dcutr::Behaviour::new(peer),
            // Probes one candidate address every 5 s (libp2p's default).
            autonat: autonat::v2::client::Behaviour::default(),
            autonat_server: autonat::v2::server::Behaviour::default(),
        })
    }
}
