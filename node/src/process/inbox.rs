//! Events for a process that stays in one guest call (WIT world
//! `process-loop`, since 0.1.3): the node calls its `run` once, and the
//! guest takes its events from the async import `inbox.next-events`.
//!
//! An event then costs a return from a host call (and, when the mailbox
//! was empty, one fiber suspend and resume) instead of a guest call of its
//! own, which in wasmtime means a boxed call future, a fiber for the call
//! and another for `post_return`.
//!
//! The rules are those of the per-event calls (`deliver`,
//! `deliver-batch`), kept in the same order:
//! - a stop is seen before the mailbox, and while waiting;
//! - an event that needs the request context (`inherit`) comes alone and
//!   stays the current request until the guest asks again; runs of other
//!   events come together within [`MAX_BATCH_EVENTS`] and
//!   [`MAX_BATCH_BYTES`], and only while the guest is quick;
//! - asks past their deadline come as `timeout` failures;
//! - the call time limit runs from each return of `next-events` to the
//!   next call (the runner's epoch callback counts the ticks; they are
//!   reset here).

use std::collections::VecDeque;
use std::pin::Pin;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use wasmtime::StoreContextMut;

use super::abi::{Event, PeerEvent};
use super::host::HostState;
use super::{batchable, event_of, payload_bytes, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use crate::kernel::mailbox::{Envelope, MailboxRx};
use crate::types::{SendError, SendErrorKind};

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

    /// The next envelope, if one waits.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        match self.held.take() {
            Some(held) => Some(*held),
            None => self.mailbox.try_recv(),
        }
    }

    /// Keep `envelope` to be the next one taken.
    fn hold(&mut self, envelope: Envelope) {
        debug_assert!(self.held.is_none());
        self.held = Some(Box::new(envelope));
    }

    pub fn close(&mut self) {
        self.mailbox.close();
    }
}

/// The loop's side of one incarnation, kept in its store while `run` runs.
pub struct Inbox {
    queue: Queue,
    stop: watch::Receiver<bool>,
    /// Timeouts found but not yet handed over (more than one batch).
    expired: VecDeque<Event>,
    /// Wakes a waiting guest at its next ask deadline; made on first use.
    timer: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    /// The process was stopped, or its mailbox closed.
    ended: bool,
}

/// What one look at the inbox found.
enum Step {
    Events(Vec<PeerEvent>),
    Wait,
    Ended,
}

/// What ended a wait.
enum Woke {
    Envelope(Envelope),
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

    fn stop_requested(&self) -> bool {
        // A dropped sender is a stop too, as for the per-event runner.
        self.stop.has_changed().unwrap_or(true)
    }

    /// Look for events without waiting. `first` is an envelope a wait
    /// just took out of the mailbox.
    fn step(&mut self, state: &mut HostState, first: Option<Envelope>) -> Step {
        if self.ended || self.stop_requested() {
            self.ended = true;
            if let Some(envelope) = first {
                self.queue.hold(envelope);
            }
            return Step::Ended;
        }
        // A guest whose last delivery ran through epoch ticks gets its
        // events one by one, as with `deliver-batch`.
        let quick = state.call_ticks == 0;
        self.collect_expired(state);
        if !self.expired.is_empty() {
            if let Some(envelope) = first {
                self.queue.hold(envelope);
            }
            let take = if quick { MAX_BATCH_EVENTS } else { 1 };
            let n = take.min(self.expired.len());
            let mut events = Vec::with_capacity(n);
            for event in self.expired.drain(..n) {
                events.push(state.peers.peer_event(event));
            }
            state.limits.stats().handled(n as u64);
            return Step::Events(events);
        }
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut next = first.or_else(|| self.queue.try_recv());
        while let Some(envelope) = next.take() {
            let size = payload_bytes(&envelope);
            let joins = quick
                && batchable(&envelope)
                && events.len() < MAX_BATCH_EVENTS
                && bytes + size <= MAX_BATCH_BYTES;
            if !joins {
                if !events.is_empty() {
                    self.queue.hold(envelope);
                    break;
                }
                // Alone: it sets the current request, kept until the
                // guest asks again.
                match event_of(state, envelope) {
                    Some(event) => {
                        state.limits.stats().handled(1);
                        return Step::Events(vec![state.peers.peer_event(event)]);
                    }
                    None => {
                        next = self.queue.try_recv();
                        continue;
                    }
                }
            }
            if let Some(event) = event_of(state, envelope) {
                bytes += size;
                events.push(state.peers.peer_event(event));
            }
            if events.len() < MAX_BATCH_EVENTS {
                next = self.queue.try_recv();
            }
        }
        match events.len() {
            0 => Step::Wait,
            n => {
                // No request context in a batch: `inherit` sees none.
                if n > 1 {
                    state.current = None;
                }
                state.limits.stats().handled(n as u64);
                Step::Events(events)
            }
        }
    }

    /// Every ask past its deadline becomes a `timeout` failure to hand
    /// over.
    fn collect_expired(&mut self, state: &mut HostState) {
        if !self.expired.is_empty() {
            return;
        }
        let Some(at) = state.asks.next_deadline() else {
            return;
        };
        let now = Instant::now();
        if at > now {
            return;
        }
        for (id, pending) in state.asks.expire(now) {
            let error = SendError::new(
                SendErrorKind::Timeout,
                &pending.target,
                "no response within the request's timeout",
            );
            self.expired
                .push_back(Event::failed(id, error, pending.context));
        }
    }

    /// Wait for an envelope, the next ask deadline, or a stop.
    async fn wait(&mut self, deadline: Option<Instant>) -> Woke {
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
            envelope = self.queue.recv() => match envelope {
                Some(envelope) => Woke::Envelope(envelope),
                None => Woke::Ended,
            },
            _ = timer, if armed => Woke::Timer,
        };
        match woke {
            Woke::Ended => self.ended = true,
            Woke::Timer => self.armed = None,
            Woke::Envelope(_) => {}
        }
        woke
    }
}

/// `inbox.next-events`: the guest's next events, waiting for them. Ends
/// the handling of the last ones (no current request from here on).
/// Errors (a trap in the guest) when the process is stopped, or when the
/// guest calls it outside `run`.
pub async fn next_events(
    cx: &mut StoreContextMut<'_, HostState>,
) -> wasmtime::Result<Vec<PeerEvent>> {
    // A guest that always finds events waiting still yields to the other
    // tasks now and then, as a `recv` in the per-event runner does.
    tokio::task::coop::consume_budget().await;
    let state = cx.data_mut();
    state.current = None;
    let mut first = None;
    let events = loop {
        // Taken out and put back with no await between, so a dropped call
        // never loses it.
        let Some(mut inbox) = state.inbox.take() else {
            anyhow::bail!("`next-events` is only for a process in `run`");
        };
        let step = inbox.step(state, first.take());
        state.inbox = Some(inbox);
        match step {
            Step::Events(events) => break events,
            Step::Ended => anyhow::bail!("the process was stopped"),
            Step::Wait => {}
        }
        let deadline = state.asks.next_deadline();
        let Some(inbox) = state.inbox.as_mut() else {
            anyhow::bail!("`next-events` is only for a process in `run`");
        };
        match inbox.wait(deadline).await {
            Woke::Envelope(envelope) => first = Some(envelope),
            Woke::Timer | Woke::Ended => {}
        }
    };
    // The call time limit starts again for these events.
    cx.data_mut().call_ticks = 0;
    cx.set_epoch_deadline(1);
    Ok(events)
}
