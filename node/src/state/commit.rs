//! Group commit: one dedicated thread flushes sled for many writers at once.
//!
//! A writer alone (no other writer waiting for durability) flushes on its
//! own thread instead (`block_in_place`, multi-thread runtimes only): the
//! hand-off to the flusher thread and back costs two cross-thread wake-ups,
//! which on a loaded machine cost about as much as the flush itself.
//! Writers that arrive meanwhile queue for the flusher as below; any flush
//! that starts after a write was applied covers it.
//!
//! A writer first applies its write in memory (sled `insert`, fast), then
//! hands a one-shot sender to the flusher and awaits it. The flusher takes
//! the first waiter, drains every other waiter already queued, calls
//! `flush()` once, and acks them all with its result. Writes that arrive
//! during a flush wait for the next one, which therefore covers them: a
//! write is always applied before its waiter is queued, and a flush starts
//! after the waiters of its batch were taken.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, trace};

/// Writers queued for the next flush before new writers wait to queue.
/// A flush of a few thousand writes still takes about one fdatasync, so this
/// bounds memory, not throughput.
pub const COMMIT_QUEUE: usize = 8192;

type Ack = oneshot::Sender<Result<(), String>>;

/// Counters of the flusher, for benchmarks and logs.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub flushes: AtomicU64,
    pub writes: AtomicU64,
}

pub struct Committer {
    tx: Option<mpsc::Sender<Ack>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<CommitStats>,
    db: sled::Db,
    /// Writers inside [`Committer::durable`] now.
    waiting: AtomicUsize,
}

/// One writer's place in [`Committer::waiting`]; given back on drop.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether this task may block its thread with `block_in_place`.
fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

impl Committer {
    pub fn start(db: sled::Db) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(COMMIT_QUEUE);
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("state-commit".into())
            .spawn({
                let db = db.clone();
                move || flusher(db, rx, &thread_stats)
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            stats,
            db,
            waiting: AtomicUsize::new(0),
        })
    }

    /// Resolves once every write applied before this call is on disk.
    pub async fn durable(&self) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("the state store is closed".into());
        };
        let alone = self.waiting.fetch_add(1, Ordering::AcqRel) == 0;
        let _waiting = Waiting(&self.waiting);
        if alone && may_block_in_place() {
            let result = tokio::task::block_in_place(|| self.db.flush());
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            self.stats.writes.fetch_add(1, Ordering::Relaxed);
            return result.map(|_| ()).map_err(|e| {
                error!("state flush failed: {e}");
                format!("flush failed: {e}")
            });
        }
        let (ack_tx, ack_rx) = oneshot::channel();
        tx.send(ack_tx)
            .await
            .map_err(|_| "the state flusher stopped".to_string())?;
        ack_rx
            .await
            .map_err(|_| "the state flusher stopped before flushing".to_string())?
    }
}

impl Drop for Committer {
    /// Stop the flusher (it flushes whatever is queued first) and wait for
    /// it, so its handle on the store is gone when this returns.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn flusher(db: sled::Db, mut rx: mpsc::Receiver<Ack>, stats: &CommitStats) {
    let mut batch: Vec<Ack> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let result = db.flush().map(|_| ()).map_err(|e| {
            error!("state flush failed: {e}");
            format!("flush failed: {e}")
        });
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        trace!(writers = batch.len(), "group commit");
        for ack in batch.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
    let _ = db.flush();
}
