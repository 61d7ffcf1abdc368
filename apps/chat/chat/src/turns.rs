//! One task at a time per key: the host's writes to one room, a member's
//! applies to its copy of one room, one room's outbox. Handlers in flight
//! interleave at their awaits; a turn keeps a room's steps in order
//! (check, store, publish) without holding the state across an await.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Slot {
    busy: bool,
    /// Tasks waiting, in arrival order; each entry is woken once.
    waiting: VecDeque<(u64, Waker)>,
}

thread_local! {
    static SLOTS: RefCell<BTreeMap<String, Slot>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT: RefCell<u64> = const { RefCell::new(0) };
}

/// Held while it is this task's turn on `key`; the next one goes on drop.
pub struct Turn {
    key: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        SLOTS.with(|s| {
            let mut slots = s.borrow_mut();
            let Some(slot) = slots.get_mut(&self.key) else {
                return;
            };
            slot.busy = false;
            match slot.waiting.front() {
                Some((_, waker)) => waker.wake_by_ref(),
                None => {
                    slots.remove(&self.key);
                }
            }
        });
    }
}

/// Waits for the turn on `key`.
pub fn take(key: String) -> TakeTurn {
    let ticket = NEXT.with(|n| {
        let mut n = n.borrow_mut();
        *n += 1;
        *n
    });
    TakeTurn { key, ticket }
}

pub struct TakeTurn {
    key: String,
    ticket: u64,
}

impl Future for TakeTurn {
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let this = self.get_mut();
        let got = SLOTS.with(|s| {
            let mut slots = s.borrow_mut();
            let slot = slots.entry(this.key.clone()).or_default();
            let first = slot.waiting.front().is_none_or(|(t, _)| *t == this.ticket);
            if !slot.busy && first {
                if slot.waiting.front().is_some() {
                    slot.waiting.pop_front();
                }
                slot.busy = true;
                return true;
            }
            match slot.waiting.iter_mut().find(|(t, _)| *t == this.ticket) {
                Some(entry) => entry.1 = cx.waker().clone(),
                None => slot.waiting.push_back((this.ticket, cx.waker().clone())),
            }
            false
        });
        if got {
            Poll::Ready(Turn {
                key: std::mem::take(&mut this.key),
            })
        } else {
            Poll::Pending
        }
    }
}
