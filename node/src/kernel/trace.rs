//! The message tap behind `kit m`: metadata of the messages the kernel
//! routes (time, source, target, size, kind), never their bodies, handed
//! to a few local watchers.
//!
//! **Cost:** with nobody watching, [`Tap::message`] and [`Tap::failure`]
//! are one relaxed atomic load. With a watcher on, each routed message
//! takes the tap's lock and is matched against each watcher.
//!
//! **Bounds:** at most [`MAX_WATCHERS`] watchers; each gets one event in
//! `sample` of those that match it, at most [`MAX_EVENTS_PER_SECOND`] a
//! second, through a channel of [`WATCH_BUFFER`] events. An event past the
//! rate or into a full channel is dropped and counted, never waited for:
//! a slow watcher never slows the node.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::types::{Address, KernelMessage, Message, ProcessId, SendError};

/// Watchers at once; one more is refused.
pub const MAX_WATCHERS: usize = 4;
/// Events queued for one watcher before new ones are dropped.
pub const WATCH_BUFFER: usize = 1024;
/// Events one watcher is sent per second at most.
pub const MAX_EVENTS_PER_SECOND: u32 = 2_000;

/// What kind of message an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request whose sender waits for a response.
    Request,
    /// A request nobody waits an answer for.
    FireAndForget,
    Response,
    /// A typed failure the kernel hands an asker (timeout, exited, ...).
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::FireAndForget => "fire-and-forget",
            Kind::Response => "response",
            Kind::Error => "error",
        }
    }
}

/// One routed message, as a watcher sees it: metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the Unix epoch, when the kernel routed it.
    pub at_us: u64,
    pub id: u64,
    pub source: String,
    pub target: String,
    /// Payload bytes (body, metadata and blob; for an error, its detail).
    pub bytes: usize,
    pub kind: Kind,
    /// For an error: its kind (`timeout`, `process-exited`, ...).
    pub error: Option<&'static str>,
}

/// A watcher refused: too many already.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_WATCHERS} watchers already follow this node's messages; stop one first")]
pub struct Busy;

/// What one watcher asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only messages from or to this process; `None`: all.
    pub process: Option<ProcessId>,
    /// One event in `sample` (1: every one).
    pub sample: u32,
}

struct Slot {
    key: u64,
    filter: Filter,
    seen: u64,
    window: Instant,
    in_window: u32,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

#[derive(Default)]
pub struct Tap {
    /// Watchers registered; the only thing the hot path reads when zero.
    watching: AtomicUsize,
    slots: Mutex<Vec<Slot>>,
    next_key: AtomicU64,
}

/// A registered watcher: its events, and the count of those dropped.
/// Dropping it unregisters the watcher.
pub struct Watch {
    pub events: mpsc::Receiver<Event>,
    pub dropped: Arc<AtomicU64>,
    key: u64,
    tap: Arc<Tap>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.tap.remove(self.key);
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Tap {
    /// A message the kernel is routing.
    #[inline]
    pub fn message(&self, km: &KernelMessage) {
        if self.watching.load(Ordering::Relaxed) != 0 {
            self.offer_message(km);
        }
    }

    /// A failure the kernel hands the asker `rsvp`.
    #[inline]
    pub fn failure(&self, rsvp: &Address, id: u64, error: &SendError) {
        if self.watching.load(Ordering::Relaxed) != 0 {
            self.offer_failure(rsvp, id, error);
        }
    }

    /// Start watching. The tap is shared (`Arc`) so the watch can
    /// unregister itself when dropped.
    pub fn watch(self: &Arc<Self>, filter: Filter) -> Result<Watch, Busy> {
        let mut slots = self.lock();
        if slots.len() >= MAX_WATCHERS {
            return Err(Busy);
        }
        let (tx, events) = mpsc::channel(WATCH_BUFFER);
        let dropped = Arc::new(AtomicU64::new(0));
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        slots.push(Slot {
            key,
            filter: Filter {
                sample: filter.sample.max(1),
                ..filter
            },
            seen: 0,
            window: Instant::now(),
            in_window: 0,
            tx,
            dropped: dropped.clone(),
        });
        self.watching.store(slots.len(), Ordering::Relaxed);
        Ok(Watch {
            events,
            dropped,
            key,
            tap: self.clone(),
        })
    }

    /// Watchers now.
    pub fn watchers(&self) -> usize {
        self.watching.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, key: u64) {
        let mut slots = self.lock();
        slots.retain(|s| s.key != key);
        self.watching.store(slots.len(), Ordering::Relaxed);
    }

    #[cold]
    fn offer_message(&self, km: &KernelMessage) {
        let kind = match &km.message {
            Message::Request(r) if r.expects_response.is_some() || km.rsvp.is_some() => {
                Kind::Request
            }
            Message::Request(_) => Kind::FireAndForget,
            Message::Response(_) => Kind::Response,
        };
        self.offer(&km.source, &km.target, || Event {
            at_us: now_us(),
            id: km.id,
            source: km.source.to_string(),
            target: km.target.to_string(),
            bytes: km.payload_len(),
            kind,
            error: None,
        });
    }

    #[cold]
    fn offer_failure(&self, rsvp: &Address, id: u64, error: &SendError) {
        self.offer(&error.target, rsvp, || Event {
            at_us: now_us(),
            id,
            source: error.target.to_string(),
            target: rsvp.to_string(),
            bytes: error.detail.len(),
            kind: Kind::Error,
            error: Some(error.kind.as_str()),
        });
    }

    fn offer(&self, source: &Address, target: &Address, event: impl Fn() -> Event) {
        let mut slots = self.lock();
        for slot in slots.iter_mut() {
            if let Some(p) = &slot.filter.process {
                if source.process != *p && target.process != *p {
                    continue;
                }
            }
            slot.seen += 1;
            if (slot.seen - 1) % u64::from(slot.filter.sample) != 0 {
                continue;
            }
            if slot.window.elapsed() >= Duration::from_secs(1) {
                slot.window = Instant::now();
                slot.in_window = 0;
            }
            if slot.in_window >= MAX_EVENTS_PER_SECOND {
                slot.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            slot.in_window += 1;
            // Full or gone: dropped and counted (a gone watcher is removed
            // by its own `Drop`).
            if slot.tx.try_send(event()).is_err() {
                slot.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Request, Response, SendErrorKind};

    fn addr(process: &str) -> Address {
        Address::new("a.os", ProcessId::new(process, "pkg", "pub"))
    }

    fn request(from: &str, to: &str, body: &[u8], waits: bool) -> KernelMessage {
        KernelMessage {
            id: 7,
            source: addr(from),
            target: addr(to),
            rsvp: waits.then(|| addr(from)),
            message: Message::Request(Request {
                inherit: false,
                expects_response: waits.then_some(1000),
                body: body.to_vec(),
                metadata: None,
            }),
            blob: None,
        }
    }

    #[test]
    fn off_costs_nothing_and_on_sees_metadata_only() {
        let tap = Arc::new(Tap::default());
        tap.message(&request("x", "y", b"secret", true));
        assert_eq!(tap.watchers(), 0);
        let mut watch = tap
            .watch(Filter {
                process: Some(ProcessId::new("y", "pkg", "pub")),
                sample: 1,
            })
            .unwrap();
        tap.message(&request("x", "y", b"secret", true));
        tap.message(&request("x", "z", b"other", false));
        tap.message(&request("y", "x", b"ff", false));
        let mut answer = request("y", "x", b"ok", false);
        answer.message = Message::Response(Response {
            body: b"ok!".to_vec(),
            metadata: None,
        });
        tap.message(&answer);
        let error = SendError::new(SendErrorKind::Timeout, &addr("y"), "late");
        tap.failure(&addr("x"), 9, &error);
        let mut seen = Vec::new();
        while let Ok(e) = watch.events.try_recv() {
            seen.push((e.kind, e.bytes, e.source, e.target));
        }
        assert_eq!(
            seen,
            [
                (
                    Kind::Request,
                    6,
                    "a.os@x:pkg:pub".into(),
                    "a.os@y:pkg:pub".into()
                ),
                (
                    Kind::FireAndForget,
                    2,
                    "a.os@y:pkg:pub".into(),
                    "a.os@x:pkg:pub".into()
                ),
                (
                    Kind::Response,
                    3,
                    "a.os@y:pkg:pub".into(),
                    "a.os@x:pkg:pub".into()
                ),
                (
                    Kind::Error,
                    4,
                    "a.os@y:pkg:pub".into(),
                    "a.os@x:pkg:pub".into()
                ),
            ]
        );
        drop(watch);
        assert_eq!(tap.watchers(), 0, "a dropped watch unregisters");
    }

    #[test]
    fn bounded_sampled_and_capped() {
        let tap = Arc::new(Tap::default());
        let watches: Vec<_> = (0..MAX_WATCHERS)
            .map(|_| {
                tap.watch(Filter {
                    process: None,
                    sample: 1,
                })
                .unwrap()
            })
            .collect();
        assert!(tap
            .watch(Filter {
                process: None,
                sample: 1
            })
            .is_err());
        drop(watches);
        let mut sampled = tap
            .watch(Filter {
                process: None,
                sample: 10,
            })
            .unwrap();
        for _ in 0..100 {
            tap.message(&request("x", "y", b"", false));
        }
        let mut n = 0;
        while sampled.events.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 10);
        drop(sampled);
        let full = tap
            .watch(Filter {
                process: None,
                sample: 1,
            })
            .unwrap();
        for _ in 0..WATCH_BUFFER + 10 {
            tap.message(&request("x", "y", b"", false));
        }
        assert_eq!(
            full.dropped.load(Ordering::Relaxed),
            10,
            "full: dropped and counted"
        );
    }
}
