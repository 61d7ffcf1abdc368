//! Frames on the per-peer stream: a big-endian `u32` length, then the
//! bincode of a [`Frame`]. The first frame on every stream is `Hello`.
//!
//! **Invariant:** a frame larger than the limit, or one that does not
//! decode, ends that stream only. A frame body is read as it arrives (the
//! buffer grows with the bytes received, never to the announced length up
//! front), and decoding claims at most a bounded multiple of the frame's
//! own length, so no length field inside a frame can make the node
//! allocate more than that.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use super::record::NameRecord;
use crate::types::{Address, KernelMessage, SendError};

/// Room for the message envelope around the largest allowed payload.
pub const FRAME_OVERHEAD: usize = 64 * 1024;

/// The largest frame any configuration may allow: the top decode tier.
pub const MAX_FRAME_LIMIT: usize = 1 << 28;

/// Bytes read from the stream at a time while a frame body arrives.
const READ_CHUNK: usize = 64 * 1024;

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
    /// The last frame of a stream whose sender moved to a new stream (off
    /// a relay): read nothing more here, the rest comes on the new one.
    Moved,
}

impl Frame {
    /// Bytes this frame holds, for byte-bounded queues (payload plus a
    /// fixed allowance for the envelope).
    pub fn weight(&self) -> usize {
        const ENVELOPE: usize = 256;
        ENVELOPE
            + match self {
                Frame::Hello(_) | Frame::Moved => 0,
                Frame::Deliver(km) => km.payload_len(),
                Frame::Failed { error, .. } => error.detail.len(),
            }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("stream closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("the node's buffer for frames being received is full")]
    Busy,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of partly received frames, across every inbound stream of the
/// node: a stream that would take more is closed (`FrameError::Busy`).
pub struct Budget {
    used: std::sync::atomic::AtomicUsize,
    cap: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Self {
        Self {
            used: std::sync::atomic::AtomicUsize::new(0),
            cap,
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Bytes one frame holds of a [`Budget`]; given back on drop.
struct Held<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Held<'_> {
    fn take(&mut self, more: usize) -> Result<(), FrameError> {
        use std::sync::atomic::Ordering;
        let before = self.budget.used.fetch_add(more, Ordering::AcqRel);
        if before + more > self.budget.cap {
            self.budget.used.fetch_sub(more, Ordering::AcqRel);
            return Err(FrameError::Busy);
        }
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
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

/// Read one frame of at most `max` bytes into `buf` and decode it; the
/// body's bytes count against `budget` while it arrives and decodes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
    budget: &Budget,
) -> Result<Frame, FrameError> {
    read_frame_with(r, max, buf, budget, decode).await
}

/// [`read_frame`], decoding the body with `decode` (a packed stream's
/// decoder, which keeps the stream's address table).
pub async fn read_frame_with<R: AsyncRead + Unpin, T>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
    budget: &Budget,
    decode: impl FnOnce(&[u8]) -> Result<T, FrameError>,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    let max = max.min(MAX_FRAME_LIMIT);
    if len > max {
        return Err(FrameError::TooLarge(len, max));
    }
    let mut held = Held { budget, bytes: 0 };
    read_body(r, len, buf, &mut held).await?;
    decode(buf)
}

/// Fill `buf` with exactly `len` bytes, growing it only as they arrive.
async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    len: usize,
    buf: &mut Vec<u8>,
    held: &mut Held<'_>,
) -> Result<(), FrameError> {
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let want = (len - start).min(READ_CHUNK);
        held.take(want)?;
        buf.resize(start + want, 0);
        let n = r.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
        if n == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(())
}

/// Decode a frame body. Every length inside it is checked against a
/// limit of at most four times the body's own size (at least 64 KiB)
/// before anything is allocated.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    decode_borrowed(bytes)
}

/// Decode `T` from `bytes`, borrowing strings from them, within the same
/// limits as [`decode`]: every length inside is checked against at most
/// four times the body's own size (at least 64 KiB).
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FrameError> {
    macro_rules! tiers {
        ($($limit:expr),*) => {
            $(if bytes.len().saturating_mul(4) <= $limit {
                return borrowed_within::<T, { $limit }>(bytes);
            })*
        };
    }
    tiers!(
        1 << 16,
        1 << 18,
        1 << 20,
        1 << 22,
        1 << 24,
        1 << 26,
        1 << 28,
        1 << 30
    );
    Err(FrameError::TooLarge(bytes.len(), MAX_FRAME_LIMIT))
}

fn borrowed_within<'a, T: Deserialize<'a>, const LIMIT: usize>(
    bytes: &'a [u8],
) -> Result<T, FrameError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    match bincode::serde::borrow_decode_from_slice(bytes, config) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(FrameError::Malformed(format!(
            "{} bytes after the frame",
            bytes.len() - used
        ))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use proptest::prelude::*;

    fn budget() -> Budget {
        Budget::new(1 << 30)
    }

    fn hello_bytes() -> Vec<u8> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let hello = Frame::Hello(NameRecord::sign(&key, "a.os", vec![], 1).unwrap());
        let mut bytes = Vec::new();
        encode(&hello, &mut bytes);
        bytes
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let bytes = hello_bytes();
        let mut buf = Vec::new();
        let got = block_on(read_frame(
            &mut bytes.as_slice(),
            1 << 20,
            &mut buf,
            &budget(),
        ))
        .unwrap();
        assert!(matches!(got, Frame::Hello(r) if r.name == "a.os"));

        let huge = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            block_on(read_frame(&mut huge.as_slice(), 1024, &mut buf, &budget())),
            Err(FrameError::TooLarge(..))
        ));
        let junk = [0, 0, 0, 3, 0xee, 0xee, 0xee];
        assert!(matches!(
            block_on(read_frame(&mut junk.as_slice(), 1024, &mut buf, &budget())),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn a_huge_length_inside_a_frame_is_refused_without_allocating_it() {
        // Hello (variant 0), then a string claiming 2^60 bytes (varint
        // 0xFD + u64 LE).
        let mut body = vec![0u8, 0xfd];
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        body.extend_from_slice(b"abcd");
        assert!(matches!(decode(&body), Err(FrameError::Malformed(_))));
        // The same inside a Deliver: a body Vec claiming 2^40 bytes.
        let mut body = vec![1u8];
        body.extend_from_slice(&[0xfd]);
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode(&body).is_err());
    }

    #[test]
    fn a_stalled_body_grows_the_buffer_only_by_what_arrived() {
        // Announces 16 MiB, sends 10 bytes, then the stream ends.
        let mut bytes = (16u32 << 20).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[7; 10]);
        let mut buf = Vec::new();
        let budget = budget();
        let got = block_on(read_frame(
            &mut bytes.as_slice(),
            32 << 20,
            &mut buf,
            &budget,
        ));
        assert!(matches!(got, Err(FrameError::Io(_))));
        assert!(buf.capacity() <= 2 * READ_CHUNK, "{}", buf.capacity());
        assert_eq!(budget.used(), 0, "the budget is given back");
        // A full budget closes the stream instead of buffering more.
        let small = Budget::new(READ_CHUNK / 2);
        let got = block_on(read_frame(
            &mut bytes.as_slice(),
            32 << 20,
            &mut buf,
            &small,
        ));
        assert!(matches!(got, Err(FrameError::Busy)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Random bodies never panic and never decode past their limit.
        #[test]
        fn random_bodies_decode_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body);
        }

        /// A real frame with bytes flipped, cut or appended.
        #[test]
        fn mutated_frames_decode_or_fail_cleanly(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let framed = hello_bytes();
            let mut body = framed[4..].to_vec();
            for (at, byte) in flips {
                let i = at.index(body.len());
                body[i] ^= byte;
            }
            let _ = decode(&body);
            let _ = decode(&body[..cut.index(body.len() + 1)]);
            let mut buf = Vec::new();
            let mut stream = framed.clone();
            stream[4..].copy_from_slice(&body);
            let _ = block_on(read_frame(&mut stream.as_slice(), 1 << 16, &mut buf, &budget()));
        }
    }
}
