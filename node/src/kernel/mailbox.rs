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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::types::{KernelMessage, SendError, SendErrorKind};

/// What a mailbox carries.
// Not boxed: boxing the message would cost an allocation per message on
// the hot path to save moving ~300 bytes once into the channel.
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

#[derive(Debug, Clone)]
pub struct MailboxTx {
    tx: mpsc::UnboundedSender<Envelope>,
    queued: Arc<Queued>,
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
    rx: mpsc::UnboundedReceiver<Envelope>,
    queued: Arc<Queued>,
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
/// queued bytes.
pub fn mailbox(capacity: usize, byte_capacity: usize) -> (MailboxTx, MailboxRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued::default());
    (
        MailboxTx {
            tx,
            queued: queued.clone(),
            capacity: capacity.min(MAX_CAPACITY),
            byte_capacity,
            answers: None,
        },
        MailboxRx { rx, queued },
    )
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
        let word = self.queued.0.load(Ordering::Relaxed);
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
        let (requests, bytes) = self.queued.add(delta);
        if request && requests >= self.capacity {
            self.queued.sub(delta);
            return full(envelope);
        }
        let failure = matches!(envelope, Envelope::Failed { .. });
        if !failure && bytes > 0 && bytes + weight > self.byte_capacity {
            self.queued.sub(delta);
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
        self.tx.send(envelope).map_err(|e| {
            self.queued.sub(delta);
            Refused {
                kind: SendErrorKind::ProcessExited,
                envelope: e.0,
            }
        })
    }
}

impl MailboxRx {
    pub async fn recv(&mut self) -> Option<Envelope> {
        let envelope = self.rx.recv().await;
        self.account(envelope)
    }

    pub fn try_recv(&mut self) -> Option<Envelope> {
        let envelope = self.rx.try_recv().ok();
        self.account(envelope)
    }

    /// Refuse all further deliveries; what is queued can still be drained.
    pub fn close(&mut self) {
        self.rx.close();
    }

    fn account(&self, envelope: Option<Envelope>) -> Option<Envelope> {
        if let Some(envelope) = &envelope {
            self.queued
                .sub(Queued::delta(envelope.is_request(), envelope.weight()));
        }
        envelope
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
