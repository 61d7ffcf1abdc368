//! Lanes: our own Noise-authenticated TCP connection to a peer, carrying
//! the same packed frames as a message stream, without libp2p's
//! connection task (Yamux, its swarm poll) in between.
//!
//! How one comes up: a node listens on one more TCP port (the same IP as
//! libp2p, an ephemeral port) and offers it on each message stream it opens
//! with the lane protocol (`/hearth/messages/0.3.0`: its second frame is
//! the offer). The peer that reads the offer, and has a direct connection
//! to us, dials our IP (as its libp2p connection sees it) at that port,
//! runs libp2p's Noise handshake (with a prologue of our own) expecting
//! our peer id, and waits for our one-byte acceptance. Only then does its
//! writer move its message stream onto the lane, the way a stream moves
//! off a relay (`Moved` on the old stream, `Hello` on the new one, read
//! in turn), so no frame is lost, reordered or sent twice. A dial that
//! fails leaves the stream where it was.
//!
//! Why: every frame on a Yamux stream passes through libp2p's connection
//! task on both nodes (Yamux framing, a Noise frame and a flush per Yamux
//! frame, and libp2p-swarm rebuilding its protocol set on each poll). On a
//! lane the routing call encrypts and writes the frame itself, and the
//! peer's reader decrypts it and delivers it: two task wake-ups fewer per
//! one-way trip.
//!
//! **Invariant (hostile input):** before its handshake a lane connection
//! holds one of [`LANE_HANDSHAKES`] slots and must finish within
//! `HELLO_TIMEOUT`; Noise bounds each handshake message (64 KiB). An
//! authenticated lane is kept only if its peer has a direct libp2p
//! connection to us (so libp2p's connection limits bound who may hold
//! one) and a free slot of [`MAX_LANES`]; its stream then obeys every rule
//! of an inbound message stream (`Hello` first, per-peer stream cap,
//! frame limits). A lane ends when its peer's last libp2p connection
//! closes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{noise, Multiaddr, PeerId};
use tokio::sync::Semaphore;
use tracing::debug;

/// Lane connections in their handshake at once; more are closed at once.
pub const LANE_HANDSHAKES: usize = 16;
/// Lanes accepted and open at once, across all peers.
pub const MAX_LANES: usize = 256;
/// Mixed into the Noise handshake: a lane's handshake is no libp2p one.
const PROLOGUE: &[u8] = b"/hearth/lane/1";
/// The byte that tells the dialer its lane was taken.
const ACCEPTED: u8 = 0x4c;

/// A lane: Noise over a TCP socket.
pub type LaneIo = noise::Output<libp2p::tcp::tokio::TcpStream>;

/// A message stream: a libp2p stream, or a lane.
pub enum Pipe {
    Stream(libp2p::Stream),
    Lane(Box<LaneIo>),
}

impl Pipe {
    pub fn is_lane(&self) -> bool {
        matches!(self, Pipe::Lane(_))
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Pipe::Stream(s) => Pin::new(s).poll_read(cx, buf),
            Pipe::Lane(l) => Pin::new(&mut **l).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Pipe::Stream(s) => Pin::new(s).poll_write(cx, buf),
            Pipe::Lane(l) => Pin::new(&mut **l).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Pipe::Stream(s) => Pin::new(s).poll_flush(cx),
            Pipe::Lane(l) => Pin::new(&mut **l).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Pipe::Stream(s) => Pin::new(s).poll_close(cx),
            Pipe::Lane(l) => Pin::new(&mut **l).poll_close(cx),
        }
    }
}

/// The lane listener's slots.
pub struct Slots {
    handshakes: Arc<Semaphore>,
    lanes: Arc<Semaphore>,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            handshakes: Arc::new(Semaphore::new(LANE_HANDSHAKES)),
            lanes: Arc::new(Semaphore::new(MAX_LANES)),
        }
    }
}

/// Bind the lane listener on `ip` at `port` (0: a free one).
pub fn bind(ip: IpAddr, port: u16) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn noise_config(keypair: &Keypair) -> io::Result<noise::Config> {
    Ok(noise::Config::new(keypair)
        .map_err(io::Error::other)?
        .with_prologue(PROLOGUE.to_vec()))
}

/// An accepted lane from an authenticated peer, holding its lane slot.
pub struct Accepted {
    pub peer: PeerId,
    pub io: Box<LaneIo>,
    pub slot: tokio::sync::OwnedSemaphorePermit,
}

/// Run the handshake of one accepted socket, within `within`. `admit`
/// says whether the authenticated peer may hold a lane (a direct libp2p
/// connection); a refused peer gets no acceptance byte.
pub async fn accept(
    slots: &Slots,
    keypair: &Keypair,
    socket: tokio::net::TcpStream,
    within: Duration,
    admit: impl FnOnce(&PeerId) -> bool,
) -> Result<Accepted, String> {
    let Ok(_handshake) = slots.handshakes.clone().try_acquire_owned() else {
        return Err("too many lane handshakes at once".into());
    };
    let _ = socket.set_nodelay(true);
    let socket = libp2p::tcp::tokio::TcpStream(socket);
    let config = noise_config(keypair).map_err(|e| e.to_string())?;
    let shake = config.upgrade_inbound(socket, "/noise");
    let (peer, mut io) = match tokio::time::timeout(within, shake).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(format!("lane handshake failed: {e}")),
        Err(_) => return Err("lane handshake timed out".into()),
    };
    if !admit(&peer) {
        return Err(format!("{peer} has no direct connection; lane refused"));
    }
    let Ok(slot) = slots.lanes.clone().try_acquire_owned() else {
        return Err("every lane slot is taken".into());
    };
    let said = async {
        io.write_all(&[ACCEPTED]).await?;
        io.flush().await
    };
    match tokio::time::timeout(within, said).await {
        Ok(Ok(())) => Ok(Accepted {
            peer,
            io: Box::new(io),
            slot,
        }),
        Ok(Err(e)) => Err(format!("lane acceptance not sent: {e}")),
        Err(_) => Err("lane acceptance timed out".into()),
    }
}

/// Dial `peer`'s lane at `addr` and wait for its acceptance (the caller
/// bounds the time). The handshake proves the peer's key. Also returns a
/// second handle on the socket, for [`ended`].
pub async fn dial(
    keypair: &Keypair,
    addr: SocketAddr,
    peer: PeerId,
) -> Result<(LaneIo, tokio::net::TcpStream), String> {
    let socket = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("lane connect to {addr}: {e}"))?;
    let _ = socket.set_nodelay(true);
    let (socket, watch) = twin(socket).map_err(|e| format!("lane socket at {addr}: {e}"))?;
    let socket = libp2p::tcp::tokio::TcpStream(socket);
    let config = noise_config(keypair).map_err(|e| e.to_string())?;
    let (got, mut io) = config
        .upgrade_outbound(socket, "/noise")
        .await
        .map_err(|e| format!("lane handshake with {addr}: {e}"))?;
    if got != peer {
        return Err(format!("lane at {addr} is {got}, not {peer}"));
    }
    let mut byte = [0u8; 1];
    io.read_exact(&mut byte)
        .await
        .map_err(|e| format!("lane at {addr} refused: {e}"))?;
    if byte[0] != ACCEPTED {
        return Err(format!("lane at {addr} answered {:#x}", byte[0]));
    }
    debug!(%peer, %addr, "lane up");
    Ok((io, watch))
}

/// Two handles on one socket (the second a duplicate descriptor).
fn twin(
    socket: tokio::net::TcpStream,
) -> io::Result<(tokio::net::TcpStream, tokio::net::TcpStream)> {
    let socket = socket.into_std()?;
    let other = socket.try_clone()?;
    Ok((
        tokio::net::TcpStream::from_std(socket)?,
        tokio::net::TcpStream::from_std(other)?,
    ))
}

/// Resolves once the lane behind `watch` (a handle from [`dial`]) can be
/// read from: the peer closed or reset it (it never writes to a lane it
/// accepted after its acceptance byte, so anything read ends it too).
/// Without a lane, never.
pub async fn ended(watch: Option<&tokio::net::TcpStream>) {
    match watch {
        Some(watch) => {
            let _ = watch.peek(&mut [0u8; 1]).await;
        }
        None => std::future::pending().await,
    }
}

/// The IP of a direct connection's remote address.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// A lane offer: the second frame of a lane-protocol stream, the port
/// (two bytes, big-endian), or empty for none.
pub fn offer(port: Option<u16>, buf: &mut Vec<u8>) {
    match port {
        Some(port) => {
            buf.extend_from_slice(&2u32.to_be_bytes());
            buf.extend_from_slice(&port.to_be_bytes());
        }
        None => buf.extend_from_slice(&0u32.to_be_bytes()),
    }
}

/// Read a lane offer's body: a port, none, or malformed.
pub fn read_offer(body: &[u8]) -> Result<Option<u16>, super::wire::FrameError> {
    match body {
        [] => Ok(None),
        [0, 0] => Err(super::wire::FrameError::Malformed("lane port 0".into())),
        [hi, lo] => Ok(Some(u16::from_be_bytes([*hi, *lo]))),
        _ => Err(super::wire::FrameError::Malformed(format!(
            "lane offer of {} bytes",
            body.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_and_junk_is_malformed() {
        let mut buf = Vec::new();
        offer(Some(4242), &mut buf);
        assert_eq!(buf.len(), 6);
        assert_eq!(read_offer(&buf[4..]).unwrap(), Some(4242));
        buf.clear();
        offer(None, &mut buf);
        assert_eq!(read_offer(&buf[4..]).unwrap(), None);
        assert!(read_offer(&[0, 0]).is_err());
        assert!(read_offer(&[1, 2, 3]).is_err());
        assert!(read_offer(&[7]).is_err());
    }

    /// Two keys over real loopback sockets: the right peer gets a lane
    /// both ways; a dial expecting another peer id, a refused peer, and
    /// junk instead of a handshake all fail without a lane.
    #[tokio::test]
    async fn handshake_admits_the_right_peer_only() {
        let (ours, theirs) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Arc::new(Slots::default());
        let their_id = theirs.public().to_peer_id();
        let our_id = ours.public().to_peer_id();
        let server = {
            let slots = slots.clone();
            let ours = ours.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                for admit in [true, false, true] {
                    let (socket, _) = listener.accept().await.unwrap();
                    let got = accept(&slots, &ours, socket, Duration::from_secs(5), |_| admit)
                        .await
                        .map(|a| {
                            let mut io = a.io;
                            tokio::spawn(async move {
                                let mut b = [0u8; 5];
                                if io.read_exact(&mut b).await.is_ok() {
                                    let _ = io.write_all(&b).await;
                                    let _ = io.flush().await;
                                }
                            });
                            a.peer
                        });
                    results.push(got);
                }
                results
            })
        };
        let (mut io, watch) = dial(&theirs, addr, our_id).await.unwrap();
        // An open, quiet lane has not ended.
        let quiet = tokio::time::timeout(Duration::from_millis(50), ended(Some(&watch)));
        assert!(quiet.await.is_err(), "a live lane looked ended");
        io.write_all(b"hello").await.unwrap();
        io.flush().await.unwrap();
        let mut b = [0u8; 5];
        io.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        // The peer's side closes once it answered: the watch sees it.
        let gone = tokio::time::timeout(Duration::from_secs(5), ended(Some(&watch)));
        assert!(gone.await.is_ok(), "a closed lane was not seen ending");
        assert!(dial(&theirs, addr, our_id).await.is_err(), "refused peer");
        // Expecting another peer id: our side gives up after the handshake.
        assert!(dial(&theirs, addr, their_id).await.is_err());
        let results = server.await.unwrap();
        assert_eq!(results[0].as_ref().unwrap(), &their_id);
        assert!(results[1].is_err());
        // Junk instead of a handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let junk = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::AsyncWriteExt as _;
            let _ = s.write_all(&[0xff; 4096]).await;
            s
        });
        let (socket, _) = listener.accept().await.unwrap();
        let got = accept(&slots, &ours, socket, Duration::from_secs(5), |_| true).await;
        assert!(got.is_err());
        drop(junk.await);
        // Silence: the handshake times out.
        let silent = tokio::net::TcpStream::connect(addr);
        let (silent, accepted) = tokio::join!(silent, listener.accept());
        let _silent = silent.unwrap();
        let got = accept(
            &slots,
            &ours,
            accepted.unwrap().0,
            Duration::from_millis(200),
            |_| true,
        )
        .await;
        assert!(matches!(got, Err(e) if e.contains("timed out")));
    }
}
