//! The waiting side of a process that stays in one guest call (WIT world
//! `process-loop`): its mailbox lent to the incarnation, and the wait for
//! an envelope, the next ask deadline or a stop. What is handed to the
//! guest, and how, is [`super::inbox`]'s; this module needs no store, so
//! the store data ([`super::host::HostState`]) can hold an [`Inbox`].

use std::collections::VecDeque;
use std::pin::Pin;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::abi::Event;
use crate::kernel::mailbox::{Envelope, MailboxRx};

/// A process's mailbox, plus the one envelope taken out of it but not yet
/// handed over (it could not join the events before it). Outlives the
/// incarnations: what one leaves goes to the next.
pub struct Queue {
    mailbox: MailboxRx,
    /// Boxed: rare, and a process's idle size stays small.
    held: Option<Box<Envelope>>,
}

impl Queue {
    pub fn new(mailbox: MailboxRx) -> Self {
        Self {
            mailbox,
            held: None,
        }
    }

    /// The next envelope, waiting for one; `None` once the mailbox is
    /// closed and empty.
    pub async fn recv(&mut self) -> Option<Envelope> {
        match self.held.take() {
            Some(held) => Some(*held),
            None => self.mailbox.recv().await,
        }
    }

    /// Wait until an envelope waits (`true`) or the mailbox is closed and
    /// empty (`false`); [`Self::try_recv`] then takes it.
    pub async fn ready(&mut self) -> bool {
        self.held.is_some() || self.mailbox.ready().await
    }

    /// The next envelope, if one waits.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        match self.held.take() {
            Some(held) => Some(*held),
            None => self.mailbox.try_recv(),
        }
    }

    /// Keep `envelope` to be the next one taken.
    pub(super) fn hold(&mut self, envelope: Envelope) {
        debug_assert!(self.held.is_none());
        self.held = Some(Box::new(envelope));
    }

    pub fn close(&mut self) {
        self.mailbox.close();
    }
}

/// The loop's side of one incarnation, kept in its store while `run` runs.
pub struct Inbox {
    pub(super) queue: Queue,
    pub(super) stop: watch::Receiver<bool>,
    /// Timeouts found but not yet handed over (more than one batch).
    pub(super) expired: VecDeque<Event>,
    /// Wakes a waiting guest at its next ask deadline; made on first use.
    pub(super) timer: Option<Pin<Box<Sleep>>>,
    pub(super) armed: Option<Instant>,
    /// The process was stopped, or its mailbox closed.
    pub(super) ended: bool,
}

/// What ended a wait.
enum Woke {
    /// An envelope waits in the queue.
    Envelope,
    Timer,
    Ended,
}

impl Inbox {
    pub fn new(queue: Queue, stop: watch::Receiver<bool>) -> Self {
        Self {
            queue,
            stop,
            expired: VecDeque::new(),
            timer: None,
            armed: None,
            ended: false,
        }
    }

    /// The queue back, and whether the process was stopped (or its
    /// mailbox closed) while it waited.
    pub fn into_queue(self) -> (Queue, bool) {
        (self.queue, self.ended)
    }

    pub(super) fn stop_requested(&self) -> bool {
        // A dropped sender is a stop too, as for the per-event runner.
        self.stop.has_changed().unwrap_or(true)
    }

    /// Wait for an envelope, the next ask deadline, or a stop.
    pub(super) async fn wait(&mut self, deadline: Option<Instant>) {
        // The timer moves only to an earlier deadline: one that fires
        // early finds nothing due and is set again, which is rarer than
        // a new ask (and a timer reset) per round trip.
        if let Some(at) = deadline {
            if self.armed.is_none_or(|armed| at < armed) {
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(at),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                }
                self.armed = Some(at);
            }
        }
        let armed = self.armed.is_some();
        let timer = &mut self.timer;
        let timer = async move {
            match timer.as_mut() {
                Some(timer) => timer.as_mut().await,
                None => std::future::pending().await,
            }
        };
        let woke = tokio::select! {
            biased;
            _ = self.stop.changed() => Woke::Ended,
            ready = self.queue.ready() => match ready {
                true => Woke::Envelope,
                false => Woke::Ended,
            },
            _ = timer, if armed => Woke::Timer,
        };
        match woke {
            Woke::Ended => self.ended = true,
            Woke::Timer => self.armed = None,
            Woke::Envelope => {}
        }
    }
}
