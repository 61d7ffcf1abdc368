//! A message stream to or from a peer: what it carries by the protocol it
//! was opened with ([`Kind`]), opening one, handing one to a writer to
//! move to ([`Switch`]), and closing one we are done with. Each node opens one long-lived stream per peer (`outbound`) and
//! writes length-prefixed frames to it (`writer`), starting with its signed
//! `Hello`; the other side reads them (`reader`). Order on a stream is the
//! order of sending, so order holds between any pair of processes while the
//! connection lives.

use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::PeerId;

use super::behaviour::{MESSAGES, MESSAGES_LANE, MESSAGES_PACKED};
use super::lane::Pipe;

/// How long writing the `Moved` frame to the old stream, or closing a
/// stream we are done with, may take; past it the stream is dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a message stream carries, by the protocol it was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `0.1.0`: plain frames.
    Plain,
    /// `0.2.0`, or a lane: packed frames.
    Packed,
    /// `0.3.0`: packed frames, and the second frame offers a lane.
    Lanes,
}

impl Kind {
    pub fn packed(self) -> bool {
        self != Kind::Plain
    }
}

/// What a writer is handed to move to: a stream, what it carries, and on
/// a lane a second handle on its socket that sees the lane end.
pub type Switch = (Pipe, Kind, Option<tokio::net::TcpStream>);

/// Open a message stream to `peer`: offering a lane, else packed, if it
/// speaks those protocols (a direct connection only: a relayed stream may
/// move, and its queue with it, so it stays plain), else plain.
pub async fn open(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    relayed: bool,
) -> Result<(Pipe, Kind), libp2p_stream::OpenStreamError> {
    if !relayed {
        for (protocol, kind) in [
            (MESSAGES_LANE, Kind::Lanes),
            (MESSAGES_PACKED, Kind::Packed),
        ] {
            match control.open_stream(peer, protocol).await {
                Ok(stream) => return Ok((Pipe::Stream(stream), kind)),
                Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let stream = control.open_stream(peer, MESSAGES).await?;
    Ok((Pipe::Stream(stream), Kind::Plain))
}

/// Close a stream we are done with, within [`CLOSE_WAIT`], off the caller.
pub fn close_soon(mut stream: Pipe) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_WAIT, stream.close()).await;
    });
}
