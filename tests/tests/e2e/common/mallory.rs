//! Mallory: a raw libp2p peer written for the tests (TCP, Noise, Yamux,
//! the Hearth message protocol and Kademlia) that dials a real node on
//! loopback and sends whatever frames a test hands it, as an attacker
//! would. Used by `hostile_peer` and `rooms_hostile`.

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use hearth::net::record::NameRecord;
use hearth::net::wire::{self, Budget, Frame};
use hearth::types::{Address, KernelMessage, Message, Request, Response};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub const MESSAGES: StreamProtocol = StreamProtocol::new("/hearth/messages/0.1.0");
pub const KAD: StreamProtocol = StreamProtocol::new("/hearth/kad/1.0.0");
#[derive(NetworkBehaviour)]
struct Attack {
    stream: libp2p_stream::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
}

/// One attacking identity, connected to the victim.
pub struct Mallory {
    pub key: Keypair,
    pub victim: PeerId,
    pub control: libp2p_stream::Control,
    pub puts: mpsc::Sender<kad::Record>,
}

impl Mallory {
    pub async fn connect(victim_addr: &str) -> Self {
        let addr: Multiaddr = victim_addr.parse().expect("victim multiaddr");
        let Some(libp2p::multiaddr::Protocol::P2p(victim)) = addr.iter().last() else {
            panic!("no /p2p/ in {victim_addr}");
        };
        let key = Keypair::generate_ed25519();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|key| {
                let peer = key.public().to_peer_id();
                let kad = kad::Behaviour::with_config(
                    peer,
                    MemoryStore::new(peer),
                    kad::Config::new(KAD),
                );
                Attack {
                    stream: libp2p_stream::Behaviour::new(),
                    kad,
                }
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm.behaviour_mut().kad.add_address(&victim, addr.clone());
        swarm.dial(addr).expect("dial");
        let control = swarm.behaviour().stream.new_control();
        let (puts, mut put_rx) = mpsc::channel::<kad::Record>(4096);
        let (up_tx, up_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut up_tx = Some(up_tx);
            loop {
                tokio::select! {
                    record = put_rx.recv() => match record {
                        Some(record) => {
                            let _ = swarm.behaviour_mut().kad.put_record_to(
                                record,
                                std::iter::once(victim),
                                kad::Quorum::One,
                            );
                        }
                        None => break,
                    },
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::ConnectionEstablished { .. } = event {
                            if let Some(tx) = up_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), up_rx)
            .await
            .expect("connected in time")
            .expect("swarm alive");
        Self {
            key,
            victim,
            control,
            puts,
        }
    }

    pub async fn stream(&self) -> Option<libp2p::Stream> {
        let mut control = self.control.clone();
        tokio::time::timeout(
            Duration::from_secs(5),
            control.open_stream(self.victim, MESSAGES),
        )
        .await
        .ok()?
        .ok()
    }

    pub fn record(&self, name: &str) -> NameRecord {
        NameRecord::sign(&self.key, name, vec![], now_millis()).expect("sign")
    }

    /// A stream that has said hello as `name`.
    pub async fn hello_stream(&self, name: &str) -> libp2p::Stream {
        let mut stream = self.stream().await.expect("stream opens");
        write(&mut stream, &Frame::Hello(self.record(name))).await;
        stream
    }

    /// A stream that has said hello as `name`, once the victim has read
    /// that hello and bound the name to our key. A hello written is not
    /// yet a hello read: until then, a message the victim sends to `name`
    /// looks it up in the DHT and fails `offline`. A stream can still be
    /// refused (a peer's streams past the reader's cap, or a node
    /// stopping): a real node sees its stream reset and opens another; so
    /// does this, closing the one not read. (Before `net::accept`, the
    /// one-deep accept queue of libp2p-stream dropped streams under load.)
    pub async fn heard_stream(&self, net: &hearth::net::Net, name: &str) -> libp2p::Stream {
        const TRIES: usize = 3;
        for _ in 0..TRIES {
            let mut stream = self.hello_stream(name).await;
            if self.heard_as(net, name, Duration::from_secs(5)).await {
                return stream;
            }
            let _ = stream.close().await;
        }
        panic!("the victim never read the hello of {name} ({TRIES} streams)");
    }

    /// Whether the victim binds `name` to our key `within`.
    async fn heard_as(&self, net: &hearth::net::Net, name: &str, within: Duration) -> bool {
        let peer = self.key.public().to_peer_id().to_base58();
        let started = std::time::Instant::now();
        loop {
            let peers = net.peers();
            if peers
                .iter()
                .any(|p| p.peer_id == peer && p.name.as_deref() == Some(name))
            {
                return true;
            }
            if started.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

pub async fn write(stream: &mut libp2p::Stream, frame: &Frame) {
    let mut bytes = Vec::new();
    wire::encode(frame, &mut bytes);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.flush().await;
}

pub fn request(id: u64, from: &str, to: &str, body: Value, ms: u64) -> Frame {
    let source: Address = from.parse().expect("source");
    Frame::Deliver(KernelMessage {
        id,
        source: source.clone(),
        target: to.parse().expect("target"),
        rsvp: Some(source),
        message: Message::Request(Request {
            inherit: false,
            expects_response: Some(ms),
            body: serde_json::to_vec(&body).expect("json"),
            metadata: None,
        }),
        blob: None,
    })
}

pub fn response(id: u64, from: &str, to: &str, body: Value) -> Frame {
    Frame::Deliver(KernelMessage {
        id,
        source: from.parse().expect("source"),
        target: to.parse().expect("target"),
        rsvp: None,
        message: Message::Response(Response {
            body: serde_json::to_vec(&body).expect("json"),
            metadata: None,
        }),
        blob: None,
    })
}

/// Frames the victim sends back to `mallory` (on the stream it opens).
pub struct Inbox(pub mpsc::Receiver<Frame>);

impl Inbox {
    pub fn listen(mallory: &Mallory) -> Self {
        Self::from_control(&mallory.control)
    }

    /// Frames any peer sends on streams `control`'s swarm accepts.
    pub fn from_control(control: &libp2p_stream::Control) -> Self {
        let mut incoming = control.clone().accept(MESSAGES).expect("accept once");
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (mut buf, budget) = (Vec::new(), Budget::new(1 << 26));
                    while let Ok(frame) =
                        wire::read_frame(&mut stream, 1 << 24, &mut buf, &budget).await
                    {
                        if tx.send(frame).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self(rx)
    }

    /// The next frame that is not a hello, or why none came `within`.
    pub async fn try_next(&mut self, within: Duration) -> Result<Frame, String> {
        loop {
            match tokio::time::timeout(within, self.0.recv()).await {
                Err(_) => return Err(format!("no frame within {within:?}")),
                Ok(None) => return Err("the stream closed".into()),
                Ok(Some(Frame::Hello(_))) => {}
                Ok(Some(frame)) => return Ok(frame),
            }
        }
    }

    /// The next frame that is not a hello.
    pub async fn next(&mut self) -> Frame {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.0.recv())
                .await
                .expect("a frame from the victim in time")
                .expect("victim stream open");
            if !matches!(frame, Frame::Hello(_)) {
                return frame;
            }
        }
    }
}
