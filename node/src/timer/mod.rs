//! The timer service `timer:distro:sys`: "answer me after N ms". Pending
//! timers are entries of one heap served by one task sleeping until the
//! earliest ([`heap`]); thousands of timers cost no task each.

mod heap;
mod types;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

pub use types::{TimerError, TimerRequest, TimerResponse};

use crate::kernel::caps::ProcessCaps;
use crate::native::{NativeEndpoint, Reply, ReplyFuture, Service};
use crate::services::Services;
use crate::types::{KernelMessage, Message, ProcessId};
use heap::Timer;

/// New timers handed to the heap task before the service waits; the heap
/// task only pushes them, so this absorbs bursts.
const TIMER_INBOX: usize = 1024;
/// Timers pending at once on a node; past this a request gets `TooMany`.
pub const MAX_PENDING_TIMERS: usize = 100_000;
/// Longest delay: 30 days.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

pub fn process_id() -> ProcessId {
    ProcessId::new("timer", "distro", "sys")
}

/// Register `timer:distro:sys` (public) and start its heap task.
pub fn start(
    services: &Arc<Services>,
) -> Result<Arc<NativeEndpoint>, crate::kernel::AlreadyRunning> {
    let caps = ProcessCaps {
        public: true,
        networking: false,
        system: false,
    };
    let (timer_tx, timer_rx) = mpsc::channel(TIMER_INBOX);
    let pending = Arc::new(AtomicUsize::new(0));
    let service = Arc::new(TimerService {
        timer_tx,
        pending: pending.clone(),
        seq: AtomicUsize::new(0),
    });
    let endpoint = NativeEndpoint::start(services, process_id(), caps, Some(service))?;
    let address = endpoint.address().clone();
    tokio::spawn(heap::run(services.clone(), address, timer_rx, pending));
    Ok(endpoint)
}

struct TimerService {
    timer_tx: mpsc::Sender<Timer>,
    pending: Arc<AtomicUsize>,
    seq: AtomicUsize,
}

impl Service for TimerService {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            match self.admit(km).await {
                Ok(()) => None,
                Err(error) => Some(Reply::json(&Err::<TimerResponse, _>(error))),
            }
        })
    }
}

impl TimerService {
    /// Queue a timer; its answer is sent when it fires.
    async fn admit(&self, km: KernelMessage) -> Result<(), TimerError> {
        let Message::Request(request) = &km.message else {
            return Err(TimerError::BadRequest("expected a request".into()));
        };
        let TimerRequest::SetTimer { ms } = serde_json::from_slice(&request.body)
            .map_err(|e| TimerError::BadRequest(e.to_string()))?;
        if ms > MAX_DELAY_MS {
            return Err(TimerError::TooLong(MAX_DELAY_MS));
        }
        let rsvp = km.rsvp.clone().ok_or(TimerError::NoAsker)?;
        let count = self.pending.fetch_add(1, Ordering::Relaxed);
        if count >= MAX_PENDING_TIMERS {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(TimerError::TooMany(count));
        }
        let timer = Timer {
            at: Instant::now() + Duration::from_millis(ms),
            seq: self.seq.fetch_add(1, Ordering::Relaxed) as u64,
            ms,
            id: km.id,
            rsvp,
        };
        if self.timer_tx.send(timer).await.is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(TimerError::BadRequest(
                "the timer service is stopping".into(),
            ));
        }
        Ok(())
    }
}
