//! Accepting inbound message streams: a behaviour of our own that listens
//! for the message protocols (given by `behaviour`) on every connection
//! and hands each negotiated stream to the accept loop
//! (`reader::accept_loop`) through a bounded queue. libp2p-stream only
//! opens our streams (`stream::open`).
//!
//! Why: libp2p-stream's accept queue holds one stream per protocol, and a
//! stream that arrives while another waits there is dropped (two peers'
//! streams a few milliseconds apart on a loaded node). Here a stream that
//! finds the queue full waits in its connection's handler, which hands it
//! on as soon as the queue has room.
//!
//! **Invariant:** a connection has at most [`MAX_PENDING_PER_CONNECTION`]
//! streams not yet taken by the accept loop (waiting in its handler or in
//! the queue); a stream past that is refused (reset), warned about (the
//! first of a connection, then at each power of two) and counted
//! (`hearth_net_streams_refused_total`). The queue holds
//! [`ACCEPT_QUEUE`] streams plus one per connection (each connection's
//! own slot), and connections waiting for room are served in turn, so a
//! peer flooding streams neither grows memory past these counts nor keeps
//! other peers' streams out.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::channel::mpsc;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tracing::{debug, warn};

use super::filter::{inbound_relayed, is_relayed};
use super::read_order::Ticket;

/// Streams handed to the accept loop and not yet taken, across all
/// connections (the queue adds one slot per connection).
pub const ACCEPT_QUEUE: usize = 64;
/// Streams of one connection not yet taken by the accept loop. A peer
/// opens one stream at a time, plus one per move (off a relay, onto a
/// lane) or reconnect: this is far past that, and far below yamux's
/// stream cap per connection.
pub const MAX_PENDING_PER_CONNECTION: usize = 16;

/// One negotiated inbound message stream.
pub struct Inbound {
    pub peer: PeerId,
    pub stream: Stream,
    /// The protocol it was negotiated with.
    pub protocol: StreamProtocol,
    /// Over a relayed connection.
    pub relayed: bool,
    /// Its place in the peer's read order.
    pub ticket: Ticket,
    /// Frees the stream's place in its connection's count when dropped.
    _pending: Pending,
}

/// The accept loop's end of the queue.
pub type Incoming = mpsc::Receiver<Inbound>;

/// Gives a stream of `peer` its place in the peer's read order
/// (`Shared::read_order`). It is taken when the stream is negotiated, not
/// when the accept loop takes it: a connection's stream that waited for
/// room in the queue must not be read after a newer one of another
/// connection that found room at once.
pub type Tickets = Arc<dyn Fn(PeerId) -> Ticket + Send + Sync>;

/// A stream's place in its connection's count of pending streams.
struct Pending(Arc<AtomicUsize>);

impl Pending {
    /// A place in `count`, unless it holds `max` already.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the behaviour reports to the event loop.
#[derive(Debug)]
pub enum Event {
    /// Streams refused over [`MAX_PENDING_PER_CONNECTION`] since the last report.
    Refused(u64),
}

/// The behaviour: one [`Handler`] per connection, all feeding one queue.
pub struct Behaviour {
    /// The protocols listened for, preferred first.
    protocols: Vec<StreamProtocol>,
    tickets: Tickets,
    queue: mpsc::Sender<Inbound>,
    incoming: Option<Incoming>,
    /// Refusals handlers reported, not yet passed to the swarm.
    refused: u64,
    waker: Option<Waker>,
}

impl Behaviour {
    /// Listening for `protocols` (preferred first) on every connection;
    /// each stream gets its read-order place from `tickets`.
    pub fn new(protocols: Vec<StreamProtocol>, tickets: Tickets) -> Self {
        let (queue, incoming) = mpsc::channel(ACCEPT_QUEUE);
        Self {
            protocols,
            tickets,
            queue,
            incoming: Some(incoming),
            refused: 0,
            waker: None,
        }
    }

    /// The queue's receiving end, once (for the accept loop).
    pub fn take_incoming(&mut self) -> Option<Incoming> {
        self.incoming.take()
    }

    fn handler(&self, peer: PeerId, relayed: bool) -> Handler {
        Handler {
            protocols: self.protocols.clone(),
            tickets: self.tickets.clone(),
            peer,
            relayed,
            queue: self.queue.clone(),
            waiting: VecDeque::new(),
            pending: Arc::new(AtomicUsize::new(0)),
            refused: 0,
            unreported: 0,
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, inbound_relayed(local, remote)))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, is_relayed(addr)))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        refused: THandlerOutEvent<Self>,
    ) {
        self.refused = self.refused.saturating_add(refused);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        if self.refused > 0 {
            let n = std::mem::take(&mut self.refused);
            return Poll::Ready(ToSwarm::GenerateEvent(Event::Refused(n)));
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One connection's side: negotiates the message protocols on inbound
/// streams and hands each stream to the queue, in arrival order.
pub struct Handler {
    protocols: Vec<StreamProtocol>,
    tickets: Tickets,
    peer: PeerId,
    relayed: bool,
    queue: mpsc::Sender<Inbound>,
    /// Streams that found the queue full, oldest first.
    waiting: VecDeque<Inbound>,
    /// This connection's streams not yet taken by the accept loop.
    pending: Arc<AtomicUsize>,
    /// Streams refused on this connection (for the warnings).
    refused: u64,
    /// Refusals not yet reported to the behaviour.
    unreported: u64,
}

impl Handler {
    fn on_stream(&mut self, stream: Stream, protocol: StreamProtocol) {
        let Some(pending) = Pending::take(&self.pending, MAX_PENDING_PER_CONNECTION) else {
            // Dropping the stream resets it.
            self.refused += 1;
            self.unreported += 1;
            if self.refused.is_power_of_two() {
                warn!(
                    peer = %self.peer,
                    refused = self.refused,
                    "peer opened more than {MAX_PENDING_PER_CONNECTION} message streams \
                     on one connection before we took them; refused"
                );
            }
            return;
        };
        self.waiting.push_back(Inbound {
            peer: self.peer,
            stream,
            protocol,
            relayed: self.relayed,
            ticket: (self.tickets)(self.peer),
            _pending: pending,
        });
    }

    /// Move waiting streams into the queue while it has room.
    fn hand_on(&mut self, cx: &mut Context<'_>) {
        while !self.waiting.is_empty() {
            match self.queue.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(inbound) = self.waiting.pop_front() else {
                        return;
                    };
                    if self.queue.start_send(inbound).is_err() {
                        return self.queue_gone();
                    }
                }
                Poll::Ready(Err(_)) => return self.queue_gone(),
                Poll::Pending => return,
            }
        }
    }

    /// The accept loop ended (the node is stopping): nothing takes streams.
    fn queue_gone(&mut self) {
        debug!(peer = %self.peer, "accept loop gone; inbound streams dropped");
        self.waiting.clear();
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    /// Streams refused since the last report.
    type ToBehaviour = u64;
    type InboundProtocol = Protocols;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Protocols> {
        SubstreamProtocol::new(Protocols(self.protocols.clone()), ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, u64>> {
        self.hand_on(cx);
        if self.unreported > 0 {
            let n = std::mem::take(&mut self.unreported);
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(n));
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        libp2p::core::util::unreachable(event)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Protocols, DeniedUpgrade, (), Infallible>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            self.on_stream(stream, protocol);
        }
    }
}

/// The inbound upgrade: the protocols listened for, preferred first.
pub struct Protocols(Vec<StreamProtocol>);

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Protocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{noise, tcp, yamux, Swarm};
    use tokio::sync::mpsc as tokio_mpsc;

    use super::*;
    use crate::net::read_order::ReadOrder;

    const PLAIN: StreamProtocol = StreamProtocol::new("/test/plain");
    const PACKED: StreamProtocol = StreamProtocol::new("/test/packed");

    #[test]
    fn a_connection_holds_at_most_its_cap_of_pending_streams() {
        let count = Arc::new(AtomicUsize::new(0));
        let taken: Vec<Pending> = (0..MAX_PENDING_PER_CONNECTION)
            .map(|_| Pending::take(&count, MAX_PENDING_PER_CONNECTION).expect("room"))
            .collect();
        assert!(Pending::take(&count, MAX_PENDING_PER_CONNECTION).is_none());
        drop(taken);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(Pending::take(&count, MAX_PENDING_PER_CONNECTION).is_some());
    }

    fn swarm<B: NetworkBehaviour + Send>(behaviour: B) -> Swarm<B> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|_| behaviour)
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build()
    }

    /// A peer opens streams while nothing takes them from the queue: the
    /// connection's first `MAX_PENDING_PER_CONNECTION` wait, in order and
    /// tagged; the rest are refused and reported; once taken, room frees.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_past_a_connections_cap_are_refused_and_reported() {
        const EXTRA: usize = 8;
        let order = Arc::new(ReadOrder::default());
        let tickets: Tickets = {
            let order = order.clone();
            Arc::new(move |_| order.ticket())
        };
        let mut server = swarm(Behaviour::new(vec![PACKED, PLAIN], tickets));
        let mut incoming = server.behaviour_mut().take_incoming().expect("the queue");
        assert!(
            server.behaviour_mut().take_incoming().is_none(),
            "taken once"
        );
        let server_peer = *server.local_peer_id();
        server
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
            .expect("listen");
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                break address;
            }
        };
        let (refused_tx, mut refused_rx) = tokio_mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::Behaviour(Event::Refused(n)) = server.select_next_some().await {
                    let _ = refused_tx.send(n).await;
                }
            }
        });
        let mut client = swarm(libp2p_stream::Behaviour::new());
        let mut control = client.behaviour().new_control();
        let client_peer = *client.local_peer_id();
        client.dial(addr).expect("dial");
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = client.select_next_some().await {
                break;
            }
        }
        tokio::spawn(async move {
            loop {
                client.select_next_some().await;
            }
        });
        let mut held = Vec::new();
        for _ in 0..MAX_PENDING_PER_CONNECTION + EXTRA {
            let stream = control.open_stream(server_peer, PACKED).await;
            held.push(stream.expect("negotiated"));
        }
        let mut refused = 0;
        while refused < EXTRA as u64 {
            let n = tokio::time::timeout(Duration::from_secs(10), refused_rx.recv())
                .await
                .expect("refusals reported in time")
                .expect("server running");
            refused += n;
        }
        assert_eq!(refused, EXTRA as u64);
        let mut taken = Vec::new();
        while let Ok(inbound) = incoming.try_recv() {
            assert_eq!(inbound.peer, client_peer);
            assert_eq!(inbound.protocol, PACKED);
            assert!(!inbound.relayed);
            taken.push(inbound);
        }
        assert_eq!(taken.len(), MAX_PENDING_PER_CONNECTION);
        // Taken (and read or dropped): the connection has room again.
        drop(taken);
        let stream = control.open_stream(server_peer, PLAIN).await;
        held.push(stream.expect("negotiated"));
        let inbound = tokio::time::timeout(Duration::from_secs(10), incoming.next())
            .await
            .expect("handed on in time")
            .expect("queue open");
        assert_eq!(inbound.protocol, PLAIN);
        assert!(refused_rx.try_recv().is_err(), "nothing more refused");
    }
}
