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

use tokio::time::Instant;
use wasmtime::component::Linker;
use wasmtime::{Engine, StoreContextMut};

use super::abi::{Event, Events};
use super::host::HostState;
use super::queue::Inbox;
use super::{batchable, event_of, payload_bytes, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use crate::types::{SendError, SendErrorKind};

/// The interface a `process-loop` component takes its events from.
const INBOX: &str = "hearth:process/inbox@0.1.3";

/// The linker every process is instantiated with: WASI p2 and `kernel`
/// ([`super::host::linker`]), plus `inbox.next-events`. Async: a guest
/// with nothing to do waits in it, its fiber suspended.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    type Cx<'a> = StoreContextMut<'a, HostState>;
    let mut linker = super::host::linker(engine)?;
    let mut inbox = linker.instance(INBOX)?;
    inbox.func_wrap_async("next-events", |mut cx: Cx<'_>, (): ()| {
        Box::new(async move { Ok((next_events(&mut cx).await?.hand_over(),)) })
    })?;
    Ok(linker)
}

/// What one look at the inbox found.
enum Step {
    Events(Events),
    Wait,
    Ended,
}

impl Inbox {
    /// Look for events without waiting.
    fn step(&mut self, state: &mut HostState) -> Step {
        if self.ended || self.stop_requested() {
            self.ended = true;
            return Step::Ended;
        }
        // A guest whose last delivery ran through epoch ticks gets its
        // events one by one, as with `deliver-batch`.
        let quick = state.call_ticks == 0;
        self.collect_expired(state);
        if !self.expired.is_empty() {
            let take = if quick { MAX_BATCH_EVENTS } else { 1 };
            let n = take.min(self.expired.len());
            let mut events = Events::new();
            for event in self.expired.drain(..n) {
                events.push(state.peers.peer_event(event));
            }
            state.limits.stats().handled(n as u64);
            return Step::Events(events);
        }
        let mut events = Events::new();
        let mut bytes = 0;
        let mut next = self.queue.try_recv();
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
                        events.push(state.peers.peer_event(event));
                        return Step::Events(events);
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
}

/// `inbox.next-events`: the guest's next events, waiting for them. Ends
/// the handling of the last ones (no current request from here on).
/// Errors (a trap in the guest) when the process is stopped, or when the
/// guest calls it outside `run`.
pub async fn next_events(cx: &mut StoreContextMut<'_, HostState>) -> wasmtime::Result<Events> {
    // A guest that always finds events waiting still yields to the other
    // tasks now and then, as a `recv` in the per-event runner does.
    tokio::task::coop::consume_budget().await;
    let state = cx.data_mut();
    state.current = None;
    let events = loop {
        // Taken out and put back with no await between, so a dropped call
        // never loses it.
        let Some(mut inbox) = state.inbox.take() else {
            anyhow::bail!("`next-events` is only for a process in `run`");
        };
        let step = inbox.step(state);
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
        // Whatever woke it, the next step looks again.
        inbox.wait(deadline).await;
    };
    // The call time limit starts again for these events.
    cx.data_mut().call_ticks = 0;
    cx.set_epoch_deadline(1);
    Ok(events)
}
