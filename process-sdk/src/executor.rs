//! A small single-threaded executor for async handlers.
//!
//! [`spawn_task`] parks a future; [`Ask`] is the future of one request's
//! reply. Each waiting `Ask` owns a slot keyed by its correlation id. When
//! the node delivers a response or failure carrying that id, the reply is
//! stored in the slot and only the task that awaits it is woken (its waker
//! puts its task id on the ready queue). Nothing is polled on other
//! messages, and no queue of messages is ever scanned.
//!
//! The [`crate::process!`] glue feeds replies in with [`claim_response`] /
//! [`claim_failure`] and polls woken tasks with [`run_ready`] at the end of
//! `init` and after every event.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::{Failure, Incoming, SendError};

/// What arrives for a request we await.
type Reply = Result<Incoming, Failure>;

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
}

/// The slot of one awaited request.
#[derive(Default)]
struct ReplySlot {
    reply: Option<Reply>,
    /// The waker of the task awaiting it, once polled.
    waker: Option<Waker>,
}

/// Hashes the executor's `u64` keys with one multiply, not SipHash: the
/// keys are task ids we count and correlation ids the node mints, neither
/// chosen by a peer, so there is no flooding to resist, and a round trip
/// hashes one key six times.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        // An odd multiplier (2^64 / golden ratio) spreads the key over the
        // high bits; folding them down gives the table's bucket (low bits)
        // and tag (top bits) a share of every key bit.
        let mixed = (self.0 ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Executor {
    next_task: u64,
    /// Parked tasks; a task is absent while it is being polled.
    tasks: IdMap<Task>,
    /// Correlation id -> the slot its `Ask` reads.
    replies: IdMap<ReplySlot>,
}

thread_local! {
    static EXECUTOR: RefCell<Executor> = RefCell::new(Executor::default());
    /// Ids of woken tasks, in wake order. Kept apart from `EXECUTOR` so a
    /// waker may fire while the executor is borrowed.
    static READY: RefCell<VecDeque<u64>> = const { RefCell::new(VecDeque::new()) };
}

struct TaskWaker {
    task: u64,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        READY.with(|ready| ready.borrow_mut().push_back(self.task));
    }
}

/// Runs `future` as a task of this process. It first runs when `init` or
/// the handling of the current event returns to the SDK, then each time a reply it
/// awaits arrives.
///
/// ```ignore
/// let asker = msg.id();
/// hearth_sdk::spawn_task(async move {
///     let reply = Request::to(target).body(b"ping".to_vec()).ask().await;
///     let _ = hearth_sdk::respond(asker, reply.map(Incoming::into_body).unwrap_or_default());
/// });
/// ```
pub fn spawn_task(future: impl Future<Output = ()> + 'static) {
    let task = EXECUTOR.with(|executor| {
        let mut executor = executor.borrow_mut();
        let task = executor.next_task;
        executor.next_task += 1;
        let waker = Waker::from(Arc::new(TaskWaker { task }));
        let future = Box::pin(future);
        executor.tasks.insert(task, Task { future, waker });
        task
    });
    READY.with(|ready| ready.borrow_mut().push_back(task));
}

/// Polls every woken task until none is left. Called by the
/// [`crate::process!`] glue; call it yourself only if you export `init` and
/// `handle` by hand.
pub fn run_ready() {
    while let Some(id) = READY.with(|ready| ready.borrow_mut().pop_front()) {
        let Some(mut task) = EXECUTOR.with(|executor| executor.borrow_mut().tasks.remove(&id))
        else {
            continue; // finished already, or a second wake of one poll
        };
        let mut cx = Context::from_waker(&task.waker);
        if task.future.as_mut().poll(&mut cx).is_pending() {
            EXECUTOR.with(|executor| executor.borrow_mut().tasks.insert(id, task));
        }
    }
}

/// Hands a response to the `Ask` waiting for its id and wakes that task.
/// Gives the response back when no `Ask` waits for it.
pub fn claim_response(incoming: Incoming) -> Option<Incoming> {
    claim(incoming.id(), incoming, Ok)
}

/// Hands a failure to the `Ask` waiting for its id and wakes that task.
/// Gives the failure back when no `Ask` waits for it.
pub fn claim_failure(failure: Failure) -> Option<Failure> {
    claim(failure.id(), failure, Err)
}

fn claim<T>(id: u64, value: T, into_reply: impl FnOnce(T) -> Reply) -> Option<T> {
    let claimed = EXECUTOR.with(
        |executor| match executor.borrow_mut().replies.get_mut(&id) {
            Some(slot) => {
                slot.reply = Some(into_reply(value));
                Ok(slot.waker.take())
            }
            None => Err(value),
        },
    );
    match claimed {
        Ok(waker) => {
            // Woken outside the borrow; an `Ask` not yet polled finds its
            // reply on its first poll.
            if let Some(waker) = waker {
                waker.wake();
            }
            None
        }
        Err(value) => Some(value),
    }
}

/// The future of one request's reply, made by [`crate::Request::ask`].
///
/// Resolves to the response, or to the error: either one found when
/// sending, or the failure the node reported later (timeout, offline,
/// process exited...). Dropping it stops waiting: a reply that arrives
/// afterwards goes to the app's `handle` or `failed`.
#[must_use = "an Ask does nothing unless awaited"]
pub struct Ask {
    state: AskState,
}

enum AskState {
    /// Sent; waiting in the slot for this correlation id.
    Waiting(u64),
    /// Resolved at once (the send failed), not yet returned.
    Failed(SendError),
    /// The result was returned.
    Done,
}

impl Ask {
    /// Waits for the reply to the request with correlation id `id`.
    pub(crate) fn waiting(id: u64) -> Self {
        EXECUTOR.with(|executor| {
            executor
                .borrow_mut()
                .replies
                .insert(id, ReplySlot::default())
        });
        Ask {
            state: AskState::Waiting(id),
        }
    }

    /// Resolves at once with `error`.
    pub(crate) fn failed(error: SendError) -> Self {
        Ask {
            state: AskState::Failed(error),
        }
    }

    /// The correlation id of the request, or `None` if sending it failed at
    /// once (then the future resolves to that error on first poll).
    pub fn id(&self) -> Option<u64> {
        match self.state {
            AskState::Waiting(id) => Some(id),
            AskState::Failed(_) | AskState::Done => None,
        }
    }
}

impl Future for Ask {
    type Output = Result<Incoming, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::mem::replace(&mut self.state, AskState::Done) {
            AskState::Waiting(id) => {
                let reply = EXECUTOR.with(|executor| {
                    let mut executor = executor.borrow_mut();
                    let slot = executor.replies.get_mut(&id)?;
                    match slot.reply.take() {
                        Some(reply) => {
                            executor.replies.remove(&id);
                            Some(reply)
                        }
                        None => {
                            slot.waker = Some(cx.waker().clone());
                            None
                        }
                    }
                });
                match reply {
                    Some(reply) => Poll::Ready(reply.map_err(Failure::into_error)),
                    None => {
                        self.state = AskState::Waiting(id);
                        Poll::Pending
                    }
                }
            }
            AskState::Failed(error) => Poll::Ready(Err(error)),
            // Polled after completion: never resolves again.
            AskState::Done => Poll::Pending,
        }
    }
}

impl Drop for Ask {
    fn drop(&mut self) {
        if let AskState::Waiting(id) = self.state {
            // `try_with`: the thread-local may already be gone at exit.
            let _ = EXECUTOR.try_with(|executor| executor.borrow_mut().replies.remove(&id));
        }
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
