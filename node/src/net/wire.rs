//! Frames on the per-peer stream: a big-endian `u32` length, then the
//! bincode of a [`Frame`]. The first frame on every stream is `Hello`.
//!
//! **Invariant:** a frame larger than the limit, or one that does not
//! decode, ends that stream only.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use super::record::NameRecord;
use crate::types::{Address, KernelMessage, SendError};

/// Room for the message envelope around the largest allowed payload.
pub const FRAME_OVERHEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Frame {
    /// Who opened this stream; verified against the connection's peer id.
    Hello(NameRecord),
    Deliver(KernelMessage),
    /// A request from the receiver of this frame failed here.
    Failed {
        id: u64,
        rsvp: Address,
        error: SendError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("stream closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Append the encoded frame to `buf`.
pub fn encode(frame: &Frame, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    if bincode::serde::encode_into_std_write(frame, buf, bincode::config::standard()).is_err() {
        buf.truncate(start);
        return;
    }
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
) -> Result<(), FrameError> {
    let mut buf = Vec::new();
    encode(frame, &mut buf);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len, max));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    let config = bincode::config::standard();
    bincode::serde::decode_from_slice(buf, config)
        .map(|(frame, _)| frame)
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let hello = Frame::Hello(NameRecord::sign(&key, "a.os", vec![], 1).unwrap());
        let mut bytes = Vec::new();
        encode(&hello, &mut bytes);
        let mut buf = Vec::new();
        let got = block_on(read_frame(&mut bytes.as_slice(), 1 << 20, &mut buf)).unwrap();
        assert!(matches!(got, Frame::Hello(r) if r.name == "a.os"));

        let huge = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            block_on(read_frame(&mut huge.as_slice(), 1024, &mut buf)),
            Err(FrameError::TooLarge(..))
        ));
        let junk = [0, 0, 0, 3, 0xee, 0xee, 0xee];
        assert!(matches!(
            block_on(read_frame(&mut junk.as_slice(), 1024, &mut buf)),
            Err(FrameError::Malformed(_))
        ));
    }
}
