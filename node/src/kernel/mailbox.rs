//! A process's mailbox: one FIFO per process, so every pair of processes
//! sees its messages in the order they were sent.
//!
//! **Invariant:** the mailbox is bounded in count and in bytes. Requests
//! are admitted only while fewer than `capacity` requests and fewer than
//! `byte_capacity` bytes are queued; past that the sender gets
//! `mailbox-full` at once and nothing is queued. Responses are never
//! refused for count (each answers one pending ask of the receiver, and
//! pending asks are capped per process by `Limits::max_pending_asks`), but
//! a response that does not fit in bytes is replaced by a small failure
//! (`mailbox-full`) for the asker, and its sender is told too. Failures are
//! small and always admitted. One message always fits into an empty
//! mailbox. Keeping everything in one FIFO keeps pair order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::types::{KernelMessage, SendError, SendErrorKind};

/// What a mailbox carries.
// Not boxed: boxing the message would cost an allocation per message on
// the hot path to save moving ~300 bytes once into the queue.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Envelope {
    Message(KernelMessage),
    /// A request of the receiver's failed after it was accepted.
    Failed {
        id: u64,
        error: SendError,
    },
}

impl Envelope {
    fn is_request(&self) -> bool {
        matches!(self, Envelope::Message(km) if km.is_request())
    }

    /// Bytes this envelope holds in the queue.
    fn weight(&self) -> usize {
        /// What an envelope costs beyond its payload.
        const FIXED: usize = 128;
        FIXED
            + match self {
                Envelope::Message(km) => km.payload_len(),
                Envelope::Failed { error, .. } => error.detail.len(),
            }
    }
}

#[derive(Debug)]
pub struct MailboxTx {
    shared: Arc<Shared>,
    capacity: usize,
    byte_capacity: usize,
    answers: Option<AnswerHook>,
}

/// Takes envelopes sent to a native endpoint in the sender's own call,
/// instead of queueing them: the endpoint hands each answer (response or
/// failure) to the caller awaiting it, and serves the requests it can
/// serve at once, with no task between (`native::NativeEndpoint`). It
/// gives back what it does not take, which is then queued as usual.
#[derive(Clone)]
pub struct AnswerHook(pub Arc<dyn Fn(Envelope) -> Option<Envelope> + Send + Sync>);

impl std::fmt::Debug for AnswerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerHook")
    }
}

#[derive(Debug)]
pub struct MailboxRx {
    shared: Arc<Shared>,
}

/// What both halves share: the accounting word, the count of senders,
/// and the queue itself.
///
/// The queue is a `VecDeque` under a mutex, not tokio's channel: tokio's
/// unbounded channel allocates its first block of 32 envelopes (4.9 KiB)
/// when made and keeps at least one block for good, so every process
/// paid that even when it had only ever had one message. This queue
/// starts with no buffer, grows as envelopes wait, and gives back a
/// large buffer once drained (see [`SHRINK_ABOVE`]). Both sides hold the
/// lock only to push or pop one envelope and to swap the waker.
#[derive(Debug, Default)]
struct Shared {
    queued: Queued,
    /// Live `MailboxTx` handles; at zero a drained mailbox reads as ended.
    senders: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Envelope>,
    /// The receiver waiting for the next envelope, if it waits.
    waker: Option<Waker>,
    /// The receiver closed or dropped: deliveries are refused.
    closed: bool,
}

/// A drained queue whose buffer holds more envelopes than this gives the
/// rest back, keeping [`KEEP`]: a burst does not pin its peak for the
/// life of the process, and the common case (a queue of one or two at a
/// time) never reallocates.
const SHRINK_ABOVE: usize = 64;
/// Envelopes of buffer a drained queue keeps after a burst.
const KEEP: usize = 4;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the queue consistent
        // (each critical section is one push or pop), so poisoning is
        // ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn pop(&mut self) -> Option<Envelope> {
        let envelope = self.queue.pop_front();
        if self.queue.is_empty() && self.queue.capacity() > SHRINK_ABOVE {
            self.queue.shrink_to(KEEP);
        }
        envelope
    }
}

/// Queued requests (top 16 bits) and bytes (low 48 bits) in one word:
/// one atomic add to admit an envelope and one to take it, as cheap as the
/// count alone was.
#[derive(Debug, Default)]
struct Queued(AtomicU64);

const REQUEST_SHIFT: u32 = 48;
const BYTES_MASK: u64 = (1 << REQUEST_SHIFT) - 1;
/// The most requests a mailbox can count.
pub const MAX_CAPACITY: usize = (1 << (64 - REQUEST_SHIFT)) - 1;

impl Queued {
    /// What `envelope` adds to the word.
    fn delta(request: bool, weight: usize) -> u64 {
        (u64::from(request) << REQUEST_SHIFT) | (weight as u64 & BYTES_MASK)
    }

    /// Add `delta`; returns (requests, bytes) before.
    fn add(&self, delta: u64) -> (usize, usize) {
        let before = self.0.fetch_add(delta, Ordering::AcqRel);
        (
            (before >> REQUEST_SHIFT) as usize,
            (before & BYTES_MASK) as usize,
        )
    }

    fn sub(&self, delta: u64) {
        self.0.fetch_sub(delta, Ordering::AcqRel);
    }
}

/// A mailbox admitting `capacity` queued requests and `byte_capacity`
/// queued bytes. It allocates no queue buffer until the first envelope.
pub fn mailbox(capacity: usize, byte_capacity: usize) -> (MailboxTx, MailboxRx) {
    let shared = Arc::new(Shared {
        senders: AtomicUsize::new(1),
        ..Shared::default()
    });
    (
        MailboxTx {
            shared: shared.clone(),
            capacity: capacity.min(MAX_CAPACITY),
            byte_capacity,
            answers: None,
        },
        MailboxRx { shared },
    )
}

impl Clone for MailboxTx {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
            capacity: self.capacity,
            byte_capacity: self.byte_capacity,
            answers: self.answers.clone(),
        }
    }
}

impl Drop for MailboxTx {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: a receiver waiting on an empty queue ends.
            let waker = self.shared.lock().waker.take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Why a mailbox refused an envelope; the envelope comes back.
#[derive(Debug)]
pub struct Refused {
    pub kind: SendErrorKind,
    pub envelope: Envelope,
}

impl MailboxTx {
    /// This mailbox with its answers taken by `hook` at delivery.
    pub fn with_answer_hook(mut self, hook: AnswerHook) -> Self {
        self.answers = Some(hook);
        self
    }

    /// Queued requests and bytes right now (for `kit ps`).
    pub fn depth(&self) -> (usize, usize) {
        let word = self.shared.queued.0.load(Ordering::Relaxed);
        (
            (word >> REQUEST_SHIFT) as usize,
            (word & BYTES_MASK) as usize,
        )
    }

    // The refused envelope comes back by value, unboxed, for the same reason.
    #[allow(clippy::result_large_err)]
    pub fn deliver(&self, envelope: Envelope) -> Result<(), Refused> {
        let envelope = match &self.answers {
            Some(hook) => match (hook.0)(envelope) {
                None => return Ok(()),
                Some(envelope) => envelope,
            },
            None => envelope,
        };
        let request = envelope.is_request();
        let weight = envelope.weight();
        let full = |envelope| {
            Err(Refused {
                kind: SendErrorKind::MailboxFull,
                envelope,
            })
        };
        let delta = Queued::delta(request, weight);
        let queued = &self.shared.queued;
        let (requests, bytes) = queued.add(delta);
        if request && requests >= self.capacity {
            queued.sub(delta);
            return full(envelope);
        }
        let failure = matches!(envelope, Envelope::Failed { .. });
        if !failure && bytes > 0 && bytes + weight > self.byte_capacity {
            queued.sub(delta);
            if let Envelope::Message(km) = &envelope {
                if !request {
                    // The asker still hears, at once and in a few bytes.
                    let error = SendError::new(
                        SendErrorKind::MailboxFull,
                        &km.source,
                        format!(
                            "a response of {} bytes did not fit in the asker's mailbox",
                            km.payload_len()
                        ),
                    );
                    let failed = Envelope::Failed { id: km.id, error };
                    if let Err(refused) = self.deliver(failed) {
                        return Err(Refused {
                            kind: refused.kind,
                            envelope,
                        });
                    }
                }
            }
            return full(envelope);
        }
        let mut inner = self.shared.lock();
        if inner.closed {
            drop(inner);
            self.shared.queued.sub(delta);
            return Err(Refused {
                kind: SendErrorKind::ProcessExited,
                envelope,
            });
        }
        inner.queue.push_back(envelope);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl MailboxRx {
    /// The next envelope, waiting for one; `None` once the mailbox is
    /// closed (or every sender is gone) and drained. Like tokio's
    /// receivers, it spends the task's cooperative budget, so a task whose
    /// mailbox never empties still yields to others.
    pub async fn recv(&mut self) -> Option<Envelope> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Wait until an envelope is queued (`true`, and [`Self::try_recv`]
    /// takes it) or the mailbox is closed and drained (`false`). Takes
    /// nothing out: an envelope stays in place until its taker wants it,
    /// instead of moving through every layer of the wait.
    pub async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    pub fn try_recv(&mut self) -> Option<Envelope> {
        // Nothing counted means nothing queued (a sender counts its
        // envelope before it pushes it): no need to take the lock, which
        // the next sender's core would then have to win back.
        if self.shared.queued.0.load(Ordering::Acquire) == 0 {
            return None;
        }
        let envelope = self.shared.lock().pop();
        self.account(envelope)
    }

    /// Refuse all further deliveries; what is queued can still be drained.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut inner = self.shared.lock();
        if let Some(envelope) = inner.pop() {
            drop(inner);
            coop.made_progress();
            return Poll::Ready(self.account(Some(envelope)));
        }
        if inner.closed || self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut inner = self.shared.lock();
        if !inner.queue.is_empty() {
            return Poll::Ready(true);
        }
        if inner.closed || self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(false);
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn account(&self, envelope: Option<Envelope>) -> Option<Envelope> {
        if let Some(envelope) = &envelope {
            self.shared
                .queued
                .sub(Queued::delta(envelope.is_request(), envelope.weight()));
        }
        envelope
    }
}

impl Drop for MailboxRx {
    /// Refuse further deliveries and drop what is queued (outside the
    /// lock: an envelope's drop may be any amount of work).
    fn drop(&mut self) {
        let queue = {
            let mut inner = self.shared.lock();
            inner.closed = true;
            inner.waker = None;
            std::mem::take(&mut inner.queue)
        };
        drop(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, KernelMessage, Message, Request, Response};

    fn message(id: u64, request: bool, bytes: usize) -> Envelope {
        let a: Address = "n@a:b:c".parse().unwrap();
        let body = vec![0; bytes];
        let message = if request {
            Message::Request(Request {
                inherit: false,
                expects_response: Some(1000),
                body,
                metadata: None,
            })
        } else {
            Message::Response(Response {
                body,
                metadata: None,
            })
        };
        Envelope::Message(KernelMessage {
            id,
            source: a.clone(),
            target: a.clone(),
            rsvp: Some(a),
            message,
            blob: None,
        })
    }

    #[test]
    fn an_answer_hook_takes_what_it_wants_and_the_rest_is_queued() {
        let taken = Arc::new(AtomicU64::new(0));
        let count = taken.clone();
        let hook = AnswerHook(Arc::new(move |e: Envelope| {
            if e.is_request() {
                return Some(e);
            }
            count.fetch_add(1, Ordering::Relaxed);
            None
        }));
        let (tx, mut rx) = mailbox(1, 1000);
        let tx = tx.with_answer_hook(hook);
        tx.deliver(message(1, false, 5000)).unwrap();
        tx.deliver(message(2, true, 10)).unwrap();
        // Taken answers are never queued, so they count against nothing.
        assert_eq!(tx.depth(), (1, 138));
        assert_eq!(taken.load(Ordering::Relaxed), 1);
        assert!(matches!(rx.try_recv(), Some(Envelope::Message(km)) if km.id == 2));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn the_queue_starts_without_a_buffer_and_gives_a_burst_back_once_drained() {
        let (tx, mut rx) = mailbox(10_000, usize::MAX);
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        tx.deliver(message(1, true, 0)).unwrap();
        assert!(rx.try_recv().is_some());
        let small = rx.shared.lock().queue.capacity();
        assert!((1..=SHRINK_ABOVE).contains(&small), "{small}");
        for id in 0..1_000 {
            tx.deliver(message(id, true, 0)).unwrap();
        }
        assert!(rx.shared.lock().queue.capacity() >= 1_000);
        for id in 0..1_000 {
            // In order, one at a time.
            assert!(matches!(rx.try_recv(), Some(Envelope::Message(km)) if km.id == id));
        }
        assert!(rx.try_recv().is_none());
        assert!(rx.shared.lock().queue.capacity() <= SHRINK_ABOVE);
        assert_eq!(tx.depth(), (0, 0));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_delivery_and_ends_with_the_last_sender() {
        let (tx, mut rx) = mailbox(10, 10_000);
        let second = tx.clone();
        let waiting = tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Some(Envelope::Message(km)) = rx.recv().await {
                ids.push(km.id);
            }
            ids
        });
        tokio::task::yield_now().await;
        tx.deliver(message(1, true, 0)).unwrap();
        second.deliver(message(2, false, 0)).unwrap();
        drop(tx);
        tokio::task::yield_now().await;
        second.deliver(message(3, true, 0)).unwrap();
        // Queued envelopes still come out after the last sender went.
        drop(second);
        let ids = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
            .await
            .expect("the receiver ends once every sender is gone")
            .unwrap();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_closed_or_dropped_receiver_refuses_deliveries_and_drains_what_it_had() {
        let (tx, mut rx) = mailbox(10, 10_000);
        tx.deliver(message(1, true, 0)).unwrap();
        rx.close();
        let refused = tx.deliver(message(2, true, 0)).unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::ProcessExited);
        assert!(matches!(refused.envelope, Envelope::Message(km) if km.id == 2));
        assert!(matches!(rx.recv().await, Some(Envelope::Message(km)) if km.id == 1));
        assert!(rx.recv().await.is_none());
        // Refusals are not counted as queued.
        assert_eq!(tx.depth(), (0, 0));

        let (tx, rx) = mailbox(10, 10_000);
        tx.deliver(message(1, true, 0)).unwrap();
        drop(rx);
        let refused = tx.deliver(message(2, true, 0)).unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::ProcessExited);
    }

    #[tokio::test]
    async fn ready_waits_for_an_envelope_and_leaves_it_queued() {
        let (tx, mut rx) = mailbox(10, 10_000);
        let waiting = tokio::spawn(async move {
            let ready = rx.ready().await;
            // Nothing was taken out: the envelope is still counted.
            let id = match rx.try_recv() {
                Some(Envelope::Message(km)) => Some(km.id),
                _ => None,
            };
            (ready, id, rx)
        });
        tokio::task::yield_now().await;
        tx.deliver(message(7, true, 0)).unwrap();
        let (ready, id, mut rx) = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
            .await
            .expect("a delivery wakes the wait")
            .unwrap();
        assert!(ready);
        assert_eq!(id, Some(7));
        tx.deliver(message(8, true, 0)).unwrap();
        rx.close();
        // Closed, but not drained: still ready, and the envelope comes out.
        assert!(rx.ready().await);
        assert!(rx.try_recv().is_some());
        assert!(!rx.ready().await);
        assert_eq!(tx.depth(), (0, 0));
    }

    #[test]
    fn bounded_in_bytes_and_an_oversized_response_becomes_a_failure() {
        let (tx, mut rx) = mailbox(100, 1000);
        // One message always fits into an empty mailbox, whatever its size.
        tx.deliver(message(1, true, 5000)).unwrap();
        let refused = tx.deliver(message(2, true, 10)).unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::MailboxFull);
        // A response that does not fit: its sender hears, and the asker
        // gets a failure for that id instead.
        let refused = tx.deliver(message(3, false, 5000)).unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::MailboxFull);
        assert!(matches!(rx.try_recv(), Some(Envelope::Message(km)) if km.id == 1));
        match rx.try_recv() {
            Some(Envelope::Failed { id, error }) => {
                assert_eq!(id, 3);
                assert_eq!(error.kind, SendErrorKind::MailboxFull);
            }
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_none());
        // Drained: room again.
        tx.deliver(message(4, true, 900)).unwrap();
        assert!(rx.try_recv().is_some());
    }
}
