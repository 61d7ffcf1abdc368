//! A process's mailbox: one FIFO per process, so every pair of processes
//! sees its messages in the order they were sent.
//!
//! **Invariant:** the mailbox is bounded. Requests are admitted only while
//! fewer than `capacity` requests are queued; past that the sender gets
//! `mailbox-full` at once and nothing is queued. Responses and failures are
//! never refused for space: each answers one pending ask of the receiver,
//! and pending asks are capped per process (`Limits::max_pending_asks`), so
//! they are bounded too. Keeping them in the same FIFO keeps pair order.

use std::sync::atomic::{AtomicUsize, Ordering};
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
}

#[derive(Debug, Clone)]
pub struct MailboxTx {
    tx: mpsc::UnboundedSender<Envelope>,
    queued_requests: Arc<AtomicUsize>,
    capacity: usize,
}

#[derive(Debug)]
pub struct MailboxRx {
    rx: mpsc::UnboundedReceiver<Envelope>,
    queued_requests: Arc<AtomicUsize>,
}

pub fn mailbox(capacity: usize) -> (MailboxTx, MailboxRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued_requests = Arc::new(AtomicUsize::new(0));
    (
        MailboxTx {
            tx,
            queued_requests: queued_requests.clone(),
            capacity,
        },
        MailboxRx {
            rx,
            queued_requests,
        },
    )
}

/// Why a mailbox refused an envelope; the envelope comes back.
#[derive(Debug)]
pub struct Refused {
    pub kind: SendErrorKind,
    pub envelope: Envelope,
}

impl MailboxTx {
    // The refused envelope comes back by value, unboxed, for the same reason.
    #[allow(clippy::result_large_err)]
    pub fn deliver(&self, envelope: Envelope) -> Result<(), Refused> {
        let request = envelope.is_request();
        if request && self.queued_requests.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued_requests.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused {
                kind: SendErrorKind::MailboxFull,
                envelope,
            });
        }
        self.tx.send(envelope).map_err(|e| {
            if request {
                self.queued_requests.fetch_sub(1, Ordering::AcqRel);
            }
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
        if envelope.as_ref().is_some_and(Envelope::is_request) {
            self.queued_requests.fetch_sub(1, Ordering::AcqRel);
        }
        envelope
    }
}
