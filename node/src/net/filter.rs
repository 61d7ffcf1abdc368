//! Two thin wrappers around libp2p behaviours:
//!
//! - [`QuietKad`]: Kademlia without its bootstrap on a new listen address.
//!   libp2p-kad starts a bootstrap whenever an address comes up while no
//!   peer is connected, which at every boot fails with a warning ("No
//!   known peers"). We bootstrap ourselves, only once the routing table
//!   has peers (`event_loop`), and kad still bootstraps by itself when a
//!   peer enters its table.
//! - [`Only`]: a behaviour that sees only direct connections, or only
//!   relayed ones. The node runs two stream behaviours this way, so a
//!   message stream is opened on the kind of connection it asks for (the
//!   stream behaviour alone picks any connection to the peer at random).

use std::collections::HashSet;
use std::task::{Context, Poll};

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Whether a connection a peer opened to us runs over a relay. The relay
/// client gives such a connection a bare `/p2p/<peer>` as its remote
/// address: only our local (circuit) address says it is relayed.
pub fn inbound_relayed(local: &Multiaddr, remote: &Multiaddr) -> bool {
    is_relayed(local) || is_relayed(remote)
}

/// The address a connection to `peer` runs over, as the node records it:
/// the remote address, except for a relayed connection the peer opened
/// to us, whose bare `/p2p/<peer>` becomes our circuit address plus the
/// peer, so that [`is_relayed`] tells it apart from a direct one.
pub fn connection_addr(endpoint: &ConnectedPoint, peer: PeerId) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Listener {
            local_addr,
            send_back_addr,
        } if !is_relayed(send_back_addr) && is_relayed(local_addr) => {
            local_addr.clone().with(Protocol::P2p(peer))
        }
        _ => endpoint.get_remote_address().clone(),
    }
}

/// Kademlia, minus the bootstrap kad starts when an address comes up with
/// no peer connected (see the module doc).
pub struct QuietKad(pub kad::Behaviour<MemoryStore>);

impl std::ops::Deref for QuietKad {
    type Target = kad::Behaviour<MemoryStore>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for QuietKad {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl NetworkBehaviour for QuietKad {
    type ConnectionHandler = THandler<kad::Behaviour<MemoryStore>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0.handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addrs: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0
            .handle_pending_outbound_connection(id, peer, addrs, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // The one event kad uses only to start a bootstrap.
        if !matches!(event, FromSwarm::NewListenAddr(_)) {
            self.0.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, id, event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<kad::Event, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// A behaviour shown only the connections of one kind: direct
/// (`relayed == false`) or through a relay. Others get a handler that
/// does nothing, and their events are not passed on.
pub struct Only<B> {
    inner: B,
    relayed: bool,
    ours: HashSet<ConnectionId>,
}

impl<B> Only<B> {
    pub fn direct(inner: B) -> Self {
        Self {
            inner,
            relayed: false,
            ours: HashSet::new(),
        }
    }

    pub fn relayed(inner: B) -> Self {
        Self {
            inner,
            relayed: true,
            ours: HashSet::new(),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Only<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if inbound_relayed(local, remote) != self.relayed {
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        let handler = self
            .inner
            .handle_established_inbound_connection(id, peer, local, remote)?;
        self.ours.insert(id);
        Ok(Either::Left(handler))
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if is_relayed(addr) != self.relayed {
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        let handler = self
            .inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)?;
        self.ours.insert(id);
        Ok(Either::Left(handler))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionEstablished(e) if !self.ours.contains(&e.connection_id) => return,
            FromSwarm::AddressChange(e) if !self.ours.contains(&e.connection_id) => return,
            FromSwarm::ConnectionClosed(e) if !self.ours.remove(&e.connection_id) => return,
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(event) => self.inner.on_connection_handler_event(peer, id, event),
            Either::Right(never) => libp2p::core::util::unreachable(never),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<B::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx).map(|e| e.map_in(Either::Left))
    }
}
