//! The vfs's own ordered queue. Requests are served one at a time, in the
//! order they arrived, by whoever holds the queue's *claim*: a blocking
//! task that drains it, or a sender whose small read is served in its own
//! call while nothing else is queued or running. Bounded in requests and
//! in payload bytes, like a native endpoint's backlog.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::native::{SERVICE_BACKLOG, SERVICE_BACKLOG_BYTES};

/// Something queued, with the payload bytes it holds.
pub struct Queued<J> {
    pub job: J,
    pub bytes: usize,
}

struct State<J> {
    jobs: VecDeque<Queued<J>>,
    /// Payload bytes of the queued jobs.
    bytes: usize,
    /// Someone holds the claim: it runs jobs, and takes the next one
    /// until the queue is empty.
    claimed: bool,
}

pub struct Queue<J> {
    state: Mutex<State<J>>,
}

/// What [`Queue::push`] did.
pub enum Pushed<J> {
    /// Queued behind a claim holder, who will run it.
    Queued,
    /// Queued, and the caller now holds the claim: it must start a drain.
    Claimed,
    /// Over a bound; the job comes back with the reason.
    Full(J, String),
}

impl<J> Queue<J> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                bytes: 0,
                claimed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the claim if nothing is queued or running, to serve a request
    /// in the caller's own call; give it back with [`Queue::release`].
    pub fn claim_idle(&self) -> bool {
        let mut state = self.lock();
        if state.claimed || !state.jobs.is_empty() {
            return false;
        }
        state.claimed = true;
        true
    }

    /// Give back a claim taken with [`Queue::claim_idle`]. True if jobs
    /// were queued meanwhile: the caller keeps the claim and must start a
    /// drain.
    pub fn release(&self) -> bool {
        let mut state = self.lock();
        if state.jobs.is_empty() {
            state.claimed = false;
            return false;
        }
        true
    }

    /// Queue `job` last, within [`SERVICE_BACKLOG`] jobs and
    /// [`SERVICE_BACKLOG_BYTES`] (one job is always taken into an empty
    /// queue, whatever its size).
    pub fn push(&self, job: J, bytes: usize) -> Pushed<J> {
        let mut state = self.lock();
        if state.jobs.len() >= SERVICE_BACKLOG {
            let why =
                format!("the vfs is overloaded ({SERVICE_BACKLOG} requests queued); retry later");
            return Pushed::Full(job, why);
        }
        if state.bytes > 0 && state.bytes.saturating_add(bytes) > SERVICE_BACKLOG_BYTES {
            let why = format!(
                "the vfs is overloaded ({} bytes queued, the limit is {SERVICE_BACKLOG_BYTES}); retry later",
                state.bytes
            );
            return Pushed::Full(job, why);
        }
        state.bytes += bytes;
        state.jobs.push_back(Queued { job, bytes });
        if state.claimed {
            return Pushed::Queued;
        }
        state.claimed = true;
        Pushed::Claimed
    }

    /// Queue `job` first, by the claim holder, who must then start a
    /// drain: it is the oldest request (it was taken while nothing else
    /// was queued), so it goes before anything queued since.
    pub fn push_first(&self, job: J, bytes: usize) {
        let mut state = self.lock();
        state.bytes += bytes;
        state.jobs.push_front(Queued { job, bytes });
    }

    /// The next job for the claim holder, or `None` and the claim is
    /// given back.
    pub fn next(&self) -> Option<J> {
        let mut state = self.lock();
        match state.jobs.pop_front() {
            Some(queued) => {
                state.bytes -= queued.bytes;
                Some(queued.job)
            }
            None => {
                state.claimed = false;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_order_kept() {
        let q = Queue::new();
        assert!(matches!(q.push(1, 10), Pushed::Claimed));
        assert!(matches!(q.push(2, 10), Pushed::Queued));
        assert!(!q.claim_idle());
        assert_eq!(q.next(), Some(1));
        assert_eq!(q.next(), Some(2));
        assert_eq!(q.next(), None);
        assert!(q.claim_idle());
        assert!(matches!(q.push(3, 10), Pushed::Queued));
        q.push_first(0, 1);
        assert!(q.release());
        assert_eq!(q.next(), Some(0));
        assert_eq!(q.next(), Some(3));
        assert_eq!(q.next(), None);
        assert!(q.claim_idle());
        assert!(!q.release());
    }

    #[test]
    fn bounded_in_jobs_and_bytes() {
        let q = Queue::new();
        assert!(matches!(
            q.push(0, SERVICE_BACKLOG_BYTES * 2),
            Pushed::Claimed
        ));
        assert!(matches!(q.push(1, 1), Pushed::Full(1, _)));
        assert_eq!(q.next(), Some(0));
        for i in 0..SERVICE_BACKLOG {
            assert!(!matches!(q.push(i, 0), Pushed::Full(..)));
        }
        assert!(matches!(q.push(9, 0), Pushed::Full(9, _)));
    }
}
