//! Our outbound message stream to one peer, shared by the routing call and
//! the peer's writer task.
//!
//! A frame sent while the stream is free (direct connection, writer idle,
//! nothing queued) is encoded and handed to the stream by the routing call
//! itself, with no task in between. Otherwise it is encoded onto the
//! outlet's queue and the writer task takes the whole queue in one write:
//! frames coalesce under load and go at once when idle, with no waiting.
//! A frame sent within [`BURST_GAP`] of the routing call's previous frame
//! (the end of its direct write, or its queuing) counts as load: it is
//! queued, and the writer sends the burst in one write (on a lane, one
//! Noise frame and one `write` for all of it). The gap counts from a
//! write's end, not its start: a direct write (a system call that also
//! runs the loopback peer's receive path) often takes longer than the gap,
//! and counted from its start every frame of a burst went out in a write
//! of its own (`kit bench net` fire-and-forget: one write per ~15 frames
//! and 2.6 µs of CPU per message, against one per ~250 and 2.2 µs).
//!
//! Why it matters: tokio runs at most three tasks in a row from a worker's
//! LIFO slot; the fourth wake in a chain goes to the shared queue and wakes
//! the other worker, which costs a halted core's wake-up. A one-way trip
//! through a writer task (process -> writer -> connection -> peer's
//! connection -> reader -> process) overran that at every hop's end; written
//! from the routing call, a round trip stays on one worker.
//!
//! **Invariant:** bytes reach the stream in the order frames were sent:
//! the routing call writes only while the writer holds nothing and the
//! queue is empty, and whatever a write leaves unwritten goes to the front
//! of the queue. **Invariant:** nothing queued is lost with a stream that
//! breaks: the queue keeps each frame beside its encoding until the writer
//! takes it, and answers handed to the stream until a flush completes; once
//! broken the outlet takes no more, and the link carries both (`carry`),
//! in order, ahead of everything sent later, onto the next stream. An
//! answer may so arrive twice; the second finds no awaited request and is
//! dropped. **Invariant:** the queue is bounded in frames and bytes
//! ([`CONNECT_QUEUE`], [`LINK_QUEUE_BYTES`]); one frame always fits into an
//! empty queue. The byte count is what the outlet holds: a queued frame
//! twice (decoded and encoded), an unsettled answer once. Beside it the
//! writer holds the batch it writes (at most half the bound), and frames a
//! link hands over (`enqueue`: a carried queue) are taken past the bound,
//! refusing new frames until they drain: about 2 x [`LINK_QUEUE_BYTES`]
//! per peer at most, for a moment after a stream breaks. A relayed stream never takes direct writes: the writer
//! writes (and counts) every byte that crosses a relay.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::lane::Pipe;
use super::pack::Packer;
use super::wire::{self, Frame};

/// Frames queued for a peer while its link is being set up, and in its
/// outlet's queue once up: one mailbox's worth of requests.
pub const CONNECT_QUEUE: usize = 4096;
/// Bytes queued for one peer (either queue): four maximum-size messages
/// in a link's queue, two in an outlet's (it holds each twice; see the
/// module doc). A single frame is always admitted into an empty queue.
pub const LINK_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// A reused encode buffer keeps at most this much capacity when idle.
const IDLE_SCRATCH: usize = 64 * 1024;
/// A frame sent this soon after the previous one (its direct write's end,
/// or its queuing) is part of a burst: it goes to the queue, and the
/// writer sends the burst in one write.
const BURST_GAP: Duration = Duration::from_micros(5);

/// Serials of outlets: a request awaited from a peer names the outlet its
/// frame went to, so it fails when that outlet's stream ends.
static SERIALS: AtomicU64 = AtomicU64::new(1);

/// Why the outlet did not take a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full, in frames or in bytes.
    Full,
    /// The writer ended: the stream is gone.
    Closed,
}

/// Whether `frame` answers a request (a response or a failure): sent twice,
/// the second copy finds no awaited request at the asker and is dropped.
fn is_answer(frame: &Frame) -> bool {
    match frame {
        Frame::Deliver(km) => !km.is_request(),
        Frame::Failed { .. } => true,
        Frame::Hello(_) | Frame::Moved => false,
    }
}

#[derive(Default)]
struct Inner {
    /// The stream, while it is free for the routing call to write to. The
    /// writer holds it otherwise (writing, relayed, or moving).
    stream: Option<Pipe>,
    /// Encoded bytes for the writer, in order: first what a direct write
    /// left unwritten, then the frames of `frames`.
    queue: Vec<u8>,
    /// The frames encoded in `queue` (never written): if the stream breaks
    /// they go again on the next one (`carry`).
    frames: Vec<Frame>,
    /// The bytes this outlet holds, by the frames' weight: each frame of
    /// `frames` twice (it is also encoded in `queue`), and each answer of
    /// `unsettled` once. Checked against [`LINK_QUEUE_BYTES`].
    weight: usize,
    /// Answers handed to the stream and not known flushed (a direct write
    /// whose flush did not complete, the batch the writer writes): carried
    /// with the queue if the stream breaks.
    unsettled: Vec<Frame>,
    /// The part of `weight` that `unsettled` holds.
    unsettled_weight: usize,
    /// A routing call's flush did not complete; the writer finishes it.
    flush: bool,
    /// A routing call's write failed, or the stream was ended: it is dead.
    broken: bool,
    /// The writer ended.
    closed: bool,
    /// A write of frames completed and flushed on this stream: it carried
    /// traffic (a link's redial back-off starts over, see `links`).
    delivered: bool,
    scratch: Vec<u8>,
    /// When the routing call last sent a frame (written or queued).
    last_send: Option<Instant>,
    /// The stream's address table, on a packed stream (see `pack`).
    packer: Option<Packer>,
}

impl Inner {
    /// Keep `answer` until a flush completes.
    fn unsettle(&mut self, answer: Frame) {
        let weight = answer.weight();
        self.weight += weight;
        self.unsettled_weight += weight;
        self.unsettled.push(answer);
    }

    /// Everything handed to the stream is flushed: drop the answers kept.
    fn settle(&mut self) {
        self.unsettled.clear();
        self.weight -= self.unsettled_weight;
        self.unsettled_weight = 0;
    }

    /// Swap the queue into `batch` for the writer: its answers stay as
    /// unsettled, the rest go to `spent` (dropped by the writer).
    fn take_queue(&mut self, batch: &mut Vec<u8>, spent: &mut Vec<Frame>) {
        batch.clear();
        std::mem::swap(batch, &mut self.queue);
        self.weight = self.unsettled_weight;
        self.flush = false;
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            if is_answer(&frame) {
                self.unsettle(frame);
            } else {
                spent.push(frame);
            }
        }
        // The emptied vector keeps its capacity for the next batch.
        self.frames = frames;
    }

    /// Append `frame` to `buf`, packed on a packed stream. False if it
    /// could not be encoded (a packed stream then breaks).
    fn encode(&mut self, frame: &Frame, to_queue: bool) -> bool {
        let buf = if to_queue {
            &mut self.queue
        } else {
            &mut self.scratch
        };
        match self.packer.as_mut() {
            Some(packer) => packer.encode(frame, buf),
            None => {
                wire::encode(frame, buf);
                true
            }
        }
    }
}

/// See the module doc.
pub struct Outlet {
    inner: Mutex<Inner>,
    /// Wakes the writer: frames queued, a flush owed, or the stream broke.
    wake: Notify,
    serial: u64,
}

impl Default for Outlet {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            wake: Notify::new(),
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// What the writer should do next.
pub enum Work {
    /// Write these bytes (the queue, taken whole) on the stream it holds.
    Write,
    /// Flush the stream.
    Flush,
    /// Nothing to do: the stream is parked in the outlet (or kept).
    Idle,
    /// The stream broke under a routing call's write, or was ended.
    Broken,
}

impl Outlet {
    /// An outlet for a stream that packs `Deliver` frames (see `pack`).
    pub fn packed() -> Self {
        let outlet = Self::default();
        outlet.pack();
        outlet
    }

    /// This outlet's serial, unique in the process (never 0).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// From the next frame on, pack with a fresh address table (a new
    /// packed stream, whose reader starts empty).
    fn pack(&self) {
        self.lock().packer = Some(Packer::default());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `frame`: written now if the stream is free, else queued for the
    /// writer. A full queue is refused at once; a refused frame comes back
    /// (moved back, not boxed: refusals are rare, sends are the hot path).
    #[allow(clippy::result_large_err)]
    pub fn send(&self, frame: Frame) -> Result<(), (Refused, Frame)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.closed || inner.broken {
            return Err((Refused::Closed, frame));
        }
        let now = Instant::now();
        let apart = inner
            .last_send
            .replace(now)
            .is_none_or(|t| now.duration_since(t) >= BURST_GAP);
        if inner.queue.is_empty() && inner.stream.is_some() && apart {
            inner.scratch.clear();
            if !inner.encode(&frame, false) {
                return Err((self.broke(inner), frame));
            }
            let Some(stream) = inner.stream.as_mut() else {
                return Err((self.broke(inner), frame));
            };
            let lane = stream.is_lane();
            let wrote = write_now(stream, &inner.scratch);
            // The gap to the next frame counts from the write's end: a
            // write can take longer than the gap itself.
            inner.last_send = Some(Instant::now());
            let (written, flushed) = match wrote {
                Ok(done) => done,
                Err(()) => {
                    // The writer sees it, ends, and fails what awaits.
                    inner.broken = true;
                    self.wake.notify_one();
                    // On a lane this frame's Noise frame did not leave
                    // whole, so the peer cannot have read it: the caller
                    // sends it again on a new stream. A libp2p stream may
                    // have taken its bytes, so a message is not sent twice
                    // there; an answer is kept to be carried, like every
                    // answer not known flushed (a second copy is dropped).
                    if lane {
                        return Err((Refused::Closed, frame));
                    }
                    if is_answer(&frame) {
                        inner.unsettle(frame);
                    }
                    return Ok(());
                }
            };
            if written < inner.scratch.len() {
                inner.queue.extend_from_slice(&inner.scratch[written..]);
                self.wake.notify_one();
            } else if !flushed {
                inner.flush = true;
                self.wake.notify_one();
            }
            if written < inner.scratch.len() || !flushed {
                if is_answer(&frame) {
                    inner.unsettle(frame);
                }
            } else {
                // Flushed: what was written before is out too.
                inner.settle();
                inner.delivered = true;
            }
            if inner.scratch.capacity() > IDLE_SCRATCH {
                inner.scratch = Vec::new();
            }
            return Ok(());
        }
        // Held twice while queued: decoded (to carry) and encoded.
        let weight = 2 * frame.weight();
        let over_bytes = inner.weight > 0 && inner.weight + weight > LINK_QUEUE_BYTES;
        if inner.frames.len() >= CONNECT_QUEUE || over_bytes {
            return Err((Refused::Full, frame));
        }
        let first = inner.queue.is_empty();
        if !inner.encode(&frame, true) {
            return Err((self.broke(inner), frame));
        }
        inner.frames.push(frame);
        inner.weight += weight;
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queue `frames` behind what is queued, past the bounds (they were
    /// admitted by a link's queue, bounded the same): a link that comes up
    /// hands its queue over this way, in order. On an ended outlet they
    /// stay queued, to be carried on.
    pub fn enqueue(&self, frames: Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        for frame in frames {
            if !inner.encode(&frame, true) {
                inner.broken = true;
            }
            inner.weight += 2 * frame.weight();
            inner.frames.push(frame);
        }
        self.wake.notify_one();
    }

    /// A frame could not be encoded onto a packed stream: the reader's
    /// table may no longer match ours, so the stream ends.
    fn broke(&self, inner: &mut Inner) -> Refused {
        inner.broken = true;
        self.wake.notify_one();
        Refused::Closed
    }

    /// End the stream from outside (its lane's peer is gone): the writer
    /// sees it broken and ends. The queue stays, to be carried.
    pub fn end(&self) {
        let mut inner = self.lock();
        inner.broken = true;
        self.wake.notify_one();
    }

    /// End the stream and take what must go again on the next one, in
    /// order: the answers handed to it but not known flushed (sent twice
    /// at worst, and a second answer is dropped), then the frames queued
    /// behind it (never written). The outlet takes no more frames.
    pub fn carry(&self) -> Vec<Frame> {
        let mut inner = self.lock();
        inner.broken = true;
        self.wake.notify_one();
        inner.queue = Vec::new();
        (inner.weight, inner.unsettled_weight) = (0, 0);
        let mut out = std::mem::take(&mut inner.unsettled);
        out.append(&mut inner.frames);
        out
    }

    /// Whether a write of frames completed and flushed on this stream.
    pub fn delivered(&self) -> bool {
        self.lock().delivered
    }

    /// Whether the writer ended.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Whether the writer ended or is ending (its stream broke).
    pub fn is_ended(&self) -> bool {
        let inner = self.lock();
        inner.closed || inner.broken
    }

    /// The writer's next step. It holds `held` (or not); `settled` says
    /// it held the stream since its last call and that call's write or
    /// flush completed, so everything handed to the stream is flushed. Given queued bytes it takes
    /// the stream back and swaps the queue into `batch` (the answers among
    /// its frames stay as unsettled, the rest go to `spent`, for the
    /// writer to drop); with nothing to do it parks the stream here for
    /// direct writes, unless `keep` (a relayed stream, which only the
    /// writer writes).
    pub fn next(
        &self,
        held: &mut Option<Pipe>,
        batch: &mut Vec<u8>,
        spent: &mut Vec<Frame>,
        settled: bool,
        keep: bool,
    ) -> Work {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if settled {
            inner.settle();
            inner.delivered = true;
        }
        if inner.broken {
            return Work::Broken;
        }
        if held.is_none() {
            *held = inner.stream.take();
        }
        if !inner.queue.is_empty() {
            inner.take_queue(batch, spent);
            return Work::Write;
        }
        if std::mem::take(&mut inner.flush) {
            return Work::Flush;
        }
        if !keep {
            inner.stream = held.take();
        }
        Work::Idle
    }

    /// Take the stream back to move to a new one that is `packed` (or
    /// not): routing calls queue from now on, encoded for the new stream
    /// (a fresh address table), and what was queued for the old stream is
    /// swapped into `batch` (its frames into `spent`, answers kept as
    /// unsettled), for the writer to write there before `Moved`.
    pub fn hold_to_move(
        &self,
        held: &mut Option<Pipe>,
        batch: &mut Vec<u8>,
        spent: &mut Vec<Frame>,
        packed: bool,
    ) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if held.is_none() {
            *held = inner.stream.take();
        }
        inner.take_queue(batch, spent);
        inner.packer = packed.then(Packer::default);
    }

    /// Wait for work (a permit left by a send counts).
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// Resolves once the peer ended our libp2p stream, parked here or in
    /// the writer's `held` (see [`poll_peer_ended`]).
    pub async fn peer_ended(&self, held: &mut Option<Pipe>) {
        std::future::poll_fn(|cx| match held.as_mut() {
            Some(stream) => poll_peer_ended(stream, cx),
            None => match self.lock().stream.as_mut() {
                Some(stream) => poll_peer_ended(stream, cx),
                None => Poll::Pending,
            },
        })
        .await
    }

    /// The writer ended: refuse every later frame. What is queued stays
    /// for the link to carry to the next stream.
    pub fn close(&self) -> Option<Pipe> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.stream.take()
    }

    /// The queued frames (tests).
    #[cfg(test)]
    pub fn queued(&self) -> Vec<Frame> {
        self.lock().frames.clone()
    }
}

/// Write what the stream takes now, without waiting: bytes written, and
/// whether the flush completed. An error or a zero write is a dead stream.
fn write_now(stream: &mut Pipe, bytes: &[u8]) -> Result<(usize, bool), ()> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < bytes.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &bytes[written..]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Pending => return Ok((written, false)),
        }
    }
    match Pin::new(&mut *stream).poll_flush(&mut cx) {
        Poll::Ready(Ok(())) => Ok((written, true)),
        Poll::Ready(Err(_)) => Err(()),
        Poll::Pending => Ok((written, false)),
    }
}

/// Whether the peer ended `stream`, a libp2p stream we opened: closed or
/// reset it. The peer never writes to it, so a read that returns at all
/// (an end, an error, or bytes it had no business sending) ends it. A lane
/// is watched through a second handle on its socket (`lane::ended`), so
/// here it never ends.
fn poll_peer_ended(stream: &mut Pipe, cx: &mut Context<'_>) -> Poll<()> {
    let Pipe::Stream(stream) = stream else {
        return Poll::Pending;
    };
    let mut byte = [0u8; 1];
    Pin::new(stream).poll_read(cx, &mut byte).map(|_| ())
}

/// Write `bytes` and flush, waiting as needed (the writer's path).
pub async fn write_all(stream: &mut Pipe, bytes: &[u8]) -> bool {
    stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::{Address, KernelMessage, Message, Response};

    /// A frame delivering `message` (addresses do not matter here).
    pub(crate) fn deliver(id: u64, message: Message) -> Frame {
        let a: Address = "a.os@x:y:z".parse().unwrap();
        Frame::Deliver(KernelMessage {
            id,
            source: a.clone(),
            target: a,
            rsvp: None,
            message,
            blob: None,
        })
    }

    /// An answer carrying `bytes` of body.
    pub(crate) fn answer(id: u64, bytes: usize) -> Frame {
        let body = vec![0; bytes];
        deliver(
            id,
            Message::Response(Response {
                body,
                metadata: None,
            }),
        )
    }

    /// One step of a writer that holds no stream (it is never parked in
    /// these outlets), dropping the batch.
    pub(crate) fn step(outlet: &Outlet, settled: bool) -> Work {
        let (mut held, mut batch, mut spent) = (None, Vec::new(), Vec::new());
        outlet.next(&mut held, &mut batch, &mut spent, settled, true)
    }

    #[test]
    fn queued_frames_count_twice_and_unsettled_answers_once() {
        let outlet = Outlet::default();
        let full = |id| {
            outlet
                .send(answer(id, LINK_QUEUE_BYTES / 4))
                .map_err(|e| e.0)
                == Err(Refused::Full)
        };
        // Queued, a frame is held decoded and encoded: two quarters fill
        // the bound, not four.
        assert!(!full(1));
        assert!(full(2));
        // The writer takes the batch; the answer in it stays unsettled
        // (one quarter) until the write is flushed: one frame fits, not two.
        assert!(matches!(step(&outlet, false), Work::Write));
        assert!(!full(3));
        assert!(full(4));
        assert!(outlet.lock().weight <= LINK_QUEUE_BYTES);
        // Flushed: the unsettled answer is let go, and the carry holds only
        // the queued one.
        assert!(matches!(step(&outlet, true), Work::Write));
        assert!(matches!(step(&outlet, true), Work::Idle));
        assert_eq!(outlet.lock().weight, 0);
        assert!(outlet.carry().is_empty());
    }
}
