//! Raw libp2p peers of the relay tests: plain TCP/Noise/Yamux connections
//! that speak the relay protocols by hand (`proto`), and an honest client
//! that reaches a node through the relay with libp2p's own relay client.

use std::time::Duration;

use futures::StreamExt;
use hearth::net::record::NameRecord;
use hearth::net::wire::Frame;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, relay, tcp, yamux, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::proto::{self, Message, Status};
use crate::common::mallory::{now_millis, write, Inbox, MESSAGES};

/// How long a relay may take to answer one request on a loaded machine.
const ANSWER: Duration = Duration::from_secs(20);
/// Circuits a sink holds for the test before it takes them.
const SINK_QUEUE: usize = 256;

#[derive(NetworkBehaviour)]
struct Plain {
    stream: libp2p_stream::Behaviour,
}

/// One connection to the relay, with a swarm of its own: several `Conn`s
/// of one key are one peer holding several connections. Dropping it
/// closes the connection.
pub struct Conn {
    pub peer: PeerId,
    relay: PeerId,
    control: libp2p_stream::Control,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    pub async fn open(key: &Keypair, relay_addr: &Multiaddr) -> Result<Self, String> {
        let relay = relay_peer(relay_addr);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, || {
                let mut config = yamux::Config::default();
                config.set_max_num_streams(1024);
                config
            })
            .map_err(|e| e.to_string())?
            .with_behaviour(|_| Plain {
                stream: libp2p_stream::Behaviour::new(),
            })
            .map_err(|e| e.to_string())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        swarm.dial(relay_addr.clone()).map_err(|e| e.to_string())?;
        let control = swarm.behaviour().stream.new_control();
        let (up_tx, up_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut up_tx = Some(up_tx);
            loop {
                let outcome = match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => Ok(()),
                    SwarmEvent::OutgoingConnectionError { error, .. } => Err(error.to_string()),
                    SwarmEvent::ConnectionClosed { cause, .. } => {
                        Err(format!("connection closed: {cause:?}"))
                    }
                    _ => continue,
                };
                if let Some(tx) = up_tx.take() {
                    let _ = tx.send(outcome);
                }
            }
        });
        let up = tokio::time::timeout(ANSWER, up_rx)
            .await
            .map_err(|_| "no connection in time".to_string())?
            .map_err(|_| "swarm ended".to_string())?;
        up.map(|()| Self {
            peer: key.public().to_peer_id(),
            relay,
            control,
            task,
        })
    }

    /// Send one hop message on a new stream; the relay's answer, and the
    /// stream (after an accepted `CONNECT`, the circuit).
    pub async fn hop(&self, message: &[u8]) -> Result<(Message, libp2p::Stream), String> {
        let mut control = self.control.clone();
        let exchange = async move {
            let mut stream = control
                .open_stream(self.relay, proto::HOP)
                .await
                .map_err(|e| format!("no hop stream: {e}"))?;
            proto::send(&mut stream, message).await?;
            let answer = proto::receive(&mut stream, false).await?;
            Ok((answer, stream))
        };
        tokio::time::timeout(ANSWER, exchange)
            .await
            .map_err(|_| "no answer in time".to_string())?
    }

    /// Ask for a reservation: the relay's status.
    pub async fn reserve(&self) -> Result<Message, String> {
        self.hop(&proto::reserve()).await.map(|(m, _)| m)
    }

    /// Ask for a circuit to `to`: the relay's answer, and the circuit if
    /// it accepted.
    pub async fn connect(&self, to: PeerId) -> Result<(Message, Option<libp2p::Stream>), String> {
        let (answer, stream) = self.hop(&proto::connect(&to)).await?;
        let open = answer.status == Some(Status::Ok);
        Ok((answer, open.then_some(stream)))
    }

    /// Accept every circuit the relay brings us (answering `STATUS OK`):
    /// each comes with what the relay's `CONNECT` said.
    pub fn sink(&self) -> mpsc::Receiver<(Message, libp2p::Stream)> {
        let mut incoming = self
            .control
            .clone()
            .accept(proto::STOP)
            .expect("accept stop once");
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let Ok(connect) = proto::receive(&mut stream, true).await else {
                    continue;
                };
                if proto::send(&mut stream, &proto::stop_ok()).await.is_ok()
                    && tx.send((connect, stream)).await.is_err()
                {
                    break;
                }
            }
        });
        rx
    }
}

fn relay_peer(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => panic!("no /p2p/ in {addr}"),
    }
}

#[derive(NetworkBehaviour)]
struct Relayed {
    relay: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// An honest peer that reaches `target` only through the relay, with
/// libp2p's relay client, then says hello and asks `kv:distro:sys`, which
/// never accepts the network: the node must answer with a typed
/// `capability-missing` failure. `Err` says how it failed (a refused
/// circuit, no answer).
pub async fn ask_through_relay(relay_addr: &Multiaddr, target: PeerId) -> Result<Frame, String> {
    let key = Keypair::generate_ed25519();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|_, relay| Relayed {
            relay,
            stream: libp2p_stream::Behaviour::new(),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let circuit = relay_addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(target));
    swarm.dial(circuit).map_err(|e| e.to_string())?;
    let control = swarm.behaviour().stream.new_control();
    let mut inbox = Inbox::from_control(&control);
    let (up_tx, up_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut up_tx = Some(up_tx);
        loop {
            let outcome = match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => Ok(()),
                SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(peer),
                    error,
                    ..
                } if peer == target => Err(error.to_string()),
                _ => continue,
            };
            if let Some(tx) = up_tx.take() {
                let _ = tx.send(outcome);
            }
        }
    });
    let outcome = async {
        tokio::time::timeout(ANSWER, up_rx)
            .await
            .map_err(|_| "no circuit in time".to_string())?
            .map_err(|_| "swarm ended".to_string())??;
        let name = format!("client-{}.os", now_millis() % 1_000_000);
        let record =
            NameRecord::sign(&key, &name, vec![], now_millis()).map_err(|e| e.to_string())?;
        let mut control = control.clone();
        let mut stream = tokio::time::timeout(ANSWER, control.open_stream(target, MESSAGES))
            .await
            .map_err(|_| "no stream in time".to_string())?
            .map_err(|e| e.to_string())?;
        write(&mut stream, &Frame::Hello(record)).await;
        let ask = crate::common::mallory::request(
            7,
            &format!("{name}@p:q:r"),
            "honest.os@kv:distro:sys",
            serde_json::json!({}),
            5000,
        );
        write(&mut stream, &ask).await;
        inbox.try_next(ANSWER).await
    }
    .await;
    task.abort();
    outcome
}
