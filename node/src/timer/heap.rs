//! Pending timers: one binary heap ordered by deadline and one sleep until
//! the earliest, in one task. A timer is an entry, never a task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::{TimerError, TimerResponse};
use crate::kernel::Kernel;
use crate::services::Services;
use crate::types::{Address, KernelMessage, Message, Response};

/// A timer waiting to fire: answer request `id` of `rsvp` at `at`.
#[derive(Debug)]
pub struct Timer {
    pub at: Instant,
    /// Arrival order, so timers with the same deadline fire in order.
    pub seq: u64,
    pub ms: u64,
    pub id: u64,
    pub rsvp: Address,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Runs until every sender of `rx` is gone. `pending` counts timers queued
/// or in the heap, for admission.
pub async fn run(
    services: Arc<Services>,
    address: Address,
    mut rx: mpsc::Receiver<Timer>,
    pending: Arc<AtomicUsize>,
) {
    let mut heap: BinaryHeap<Reverse<Timer>> = BinaryHeap::new();
    let sleep = tokio::time::sleep(std::time::Duration::from_secs(3600));
    tokio::pin!(sleep);
    loop {
        if let Some(Reverse(first)) = heap.peek() {
            if sleep.deadline() != first.at {
                sleep.as_mut().reset(first.at);
            }
        }
        tokio::select! {
            timer = rx.recv() => match timer {
                Some(timer) => heap.push(Reverse(timer)),
                None => break,
            },
            () = &mut sleep, if !heap.is_empty() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(t)| t.at <= now) {
                    if let Some(Reverse(timer)) = heap.pop() {
                        pending.fetch_sub(1, Ordering::Relaxed);
                        fire(&services.kernel, &address, timer);
                    }
                }
            }
        }
    }
}

fn fire(kernel: &Kernel, address: &Address, timer: Timer) {
    let body = serde_json::to_vec(&Ok::<_, TimerError>(TimerResponse::Fired { ms: timer.ms }))
        .unwrap_or_default();
    let km = KernelMessage {
        id: timer.id,
        source: address.clone(),
        target: timer.rsvp,
        rsvp: None,
        message: Message::Response(Response {
            body,
            metadata: None,
        }),
        blob: None,
    };
    if let Err(e) = kernel.route(km) {
        debug!(%e, "timer fired for an asker that is gone");
    }
}
