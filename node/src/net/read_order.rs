//! The order in which one peer's inbound message streams are read: one at
//! a time, in the order they were sent, so frames keep their order when
//! the peer's writer moves from one stream to the next.
//!
//! A stream opened over a relayed connection moves to a direct connection
//! once one exists (DCUtR), and a direct libp2p stream moves to a lane: the
//! writer ends the old stream with a `Moved` frame and goes on with the
//! same queue on the new one (`writer`). The reader of the new stream waits
//! until the old stream's reader read `Moved` (or its end). So nothing is
//! lost, reordered or sent twice across the move.
//!
//! **Invariant:** the wait does not depend on the old stream's close ever
//! arriving, and is bounded: an old stream that brings no bytes for
//! [`REPLACE_STALL`] (or holds on past [`REPLACE_WAIT`]) is cut, and
//! whatever it brings later is dropped, never delivered after the new
//! stream's frames.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::AsyncRead;

/// How long the reader of a new stream waits for the reader of the stream
/// it replaces to finish at most, however slowly that one still reads.
pub const REPLACE_WAIT: Duration = Duration::from_secs(30);
/// How long the stream being replaced may bring no bytes at all before the
/// new stream's reader cuts it (its sender moved on, or its path died).
pub const REPLACE_STALL: Duration = Duration::from_secs(5);
/// How often a waiting reader looks at the old stream's progress.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// The order in which one peer's inbound streams are read: one at a time,
/// in the order they were sent. A libp2p stream takes its [`Ticket`] when
/// accepted, before its `Hello`. A lane replaces the direct libp2p stream
/// that ended with `Moved`, but may reach us first (its handshake can beat
/// that stream's delivery): the n-th lane takes its ticket only once the
/// n-th such `Moved` was read. A waiting stream watches the reading one's
/// progress, and cuts it if it stalls.
///
/// Weak: lanes pair with moves by count. A `Moved` read whose lane never
/// says `Hello` (it broke first, or hit the per-peer stream cap) leaves
/// `moves` ahead: a later lane then skips its wait and may read before the
/// libp2p stream it replaces (which may cost a [`REPLACE_STALL`] cut). And
/// `wait_turn` reports a cut when the turn's holder is a stream still
/// before its `Hello`.
#[derive(Default)]
pub struct ReadOrder {
    /// Tickets of the streams not done yet; the lowest holds the turn.
    live: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
    /// Wakes waiting streams when a ticket is done or a stream moved.
    done: tokio::sync::Notify,
    /// Direct libp2p streams read to their `Moved` (each moved to a lane),
    /// and lanes that said hello: the n-th lane reads after the n-th move.
    moves: AtomicU64,
    lanes: AtomicU64,
    /// Bytes read by the stream holding the turn, plus one per hand-over.
    progress: AtomicU64,
    /// Wakes the stream holding the turn to give it up.
    holder: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

/// A stream's place in its peer's [`ReadOrder`]; dropped, the turn passes
/// on.
pub struct Ticket {
    order: Arc<ReadOrder>,
    number: u64,
}

impl Ticket {
    /// The read order this ticket belongs to.
    pub fn order(&self) -> &Arc<ReadOrder> {
        &self.order
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.lock_live().remove(&self.number);
        self.order.done.notify_waiters();
    }
}

impl ReadOrder {
    /// A place behind every stream of this peer accepted so far.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock_live().insert(number);
        Ticket {
            order: self.clone(),
            number,
        }
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for `ticket`'s turn to read; true if an older stream was cut.
    /// An older stream that stalls for [`REPLACE_STALL`], or still reads
    /// after [`REPLACE_WAIT`], is told to stop; it gives the turn up at
    /// once.
    pub async fn wait_turn(&self, ticket: &Ticket) -> bool {
        let first = || self.lock_live().first() == Some(&ticket.number);
        self.wait_watching(first, false).await
    }

    /// A direct libp2p stream read its `Moved`: the lane it moved to reads.
    pub fn moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
        self.done.notify_waiters();
    }

    /// A lane said hello: wait for the `Moved` of the stream it replaces
    /// before it takes its place. A stream holding the turn that stalls
    /// for [`REPLACE_STALL`] meanwhile is cut, and the lane goes on.
    pub async fn wait_move(&self) -> bool {
        let index = self.lanes.fetch_add(1, Ordering::Relaxed) + 1;
        let moved = || self.moves.load(Ordering::Relaxed) >= index;
        let cut = self.wait_watching(moved, true).await;
        if cut {
            self.moves.fetch_max(index, Ordering::Relaxed);
        }
        cut
    }

    /// Wait until `ready`, woken when a ticket is done or a stream moved,
    /// watching the progress of the stream holding the turn meanwhile:
    /// one that brings no bytes for [`REPLACE_STALL`], or still reads after
    /// [`REPLACE_WAIT`], is told to stop. True if one was; with
    /// `done_at_cut` the wait ends there, else it goes on until `ready`.
    async fn wait_watching(&self, ready: impl Fn() -> bool, done_at_cut: bool) -> bool {
        let started = tokio::time::Instant::now();
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut quiet_since = started;
        let mut cut = false;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if ready() {
                return cut;
            }
            tokio::select! {
                _ = &mut done => {}
                _ = tokio::time::sleep(STALL_CHECK) => {
                    let now = self.progress.load(Ordering::Relaxed);
                    if now != seen {
                        (seen, quiet_since) = (now, tokio::time::Instant::now());
                    }
                    if quiet_since.elapsed() >= REPLACE_STALL || started.elapsed() >= REPLACE_WAIT {
                        cut = true;
                        self.stop_holder();
                        if done_at_cut {
                            return true;
                        }
                    }
                }
            }
        }
    }

    /// The caller holds the turn; `stop` wakes it to give the turn up.
    pub fn hold(&self, stop: Arc<tokio::sync::Notify>) {
        *self.holder.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// The caller, holding the turn with `stop`, is done reading.
    pub fn release(&self, stop: &Arc<tokio::sync::Notify>) {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if holder.as_ref().is_some_and(|h| Arc::ptr_eq(h, stop)) {
            *holder = None;
        }
    }

    /// Tell the stream holding the turn to stop reading.
    pub fn stop_holder(&self) {
        if let Some(stop) = &*self.holder.lock().unwrap_or_else(|e| e.into_inner()) {
            stop.notify_one();
        }
    }

    /// `stream`, counting the bytes read from it as the turn holder's
    /// progress (which waiting streams watch for a stall).
    pub fn counted<'a, S>(&'a self, stream: &'a mut S) -> Counted<'a, S> {
        Counted {
            stream,
            progress: &self.progress,
        }
    }
}

/// A stream that counts the bytes read from it into a [`ReadOrder`].
pub struct Counted<'a, S> {
    stream: &'a mut S,
    progress: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let read = Pin::new(&mut *self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            self.progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        read
    }
}
