//! Per-process counters for `kit ps` and `kit top`: state, restarts,
//! messages handled and guest linear memory.
//!
//! **Cost:** the hot path pays one relaxed `fetch_add` per guest call
//! ([`ProcessStats::handled`]); no lock, no allocation. Memory is counted
//! by the store's resource limiter ([`Metered`]) only when a memory is
//! created or grows. The table's lock is taken once per incarnation (its
//! start), at state changes (crash, restart, exit) and by readers.
//!
//! **Bound:** the table holds the registered processes plus at most
//! [`MAX_CRASHED`] processes that crashed and stay down (so `kit ps` can
//! show them); past that the oldest crashed entry goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::{ResourceLimiter, StoreLimits};

use crate::types::ProcessId;

/// Crashed processes kept in the table after they went down for good.
pub const MAX_CRASHED: usize = 64;

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Life {
    /// Registered; its first incarnation is instantiating or in `init`.
    Starting = 0,
    /// Serving its mailbox.
    Running = 1,
    /// Crashed; waiting out its restart backoff.
    Restarting = 2,
    /// Crashed with `on_exit` `None` or `Requests`: down for good.
    Crashed = 3,
}

impl Life {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Life::Running,
            2 => Life::Restarting,
            3 => Life::Crashed,
            _ => Life::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Life::Starting => "starting",
            Life::Running => "running",
            Life::Restarting => "restarting",
            Life::Crashed => "crashed",
        }
    }
}

/// The counters of one process, shared by its task (writer) and the admin
/// API (reader). Survives restarts; a fresh install starts from zero.
#[derive(Debug, Default)]
pub struct ProcessStats {
    handled: AtomicU64,
    restarts: AtomicU64,
    /// Bytes of the current incarnation's linear memories (all of them:
    /// a component may hold several), as the limiter granted them.
    memory: AtomicU64,
    life: AtomicU8,
    /// When it crashed for good (table order), for evicting the oldest.
    crashed_seq: AtomicU64,
}

/// A copy of one process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub life: Life,
    pub handled: u64,
    pub restarts: u64,
    pub memory_bytes: u64,
}

impl ProcessStats {
    /// `n` more events handed to the guest (messages, failures, timeouts).
    #[inline]
    pub fn handled(&self, n: u64) {
        self.handled.fetch_add(n, Ordering::Relaxed);
    }

    /// The guest booted and serves its mailbox.
    pub fn running(&self) {
        self.set(Life::Running);
    }

    fn set(&self, life: Life) {
        self.life.store(life as u8, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            life: Life::from_u8(self.life.load(Ordering::Relaxed)),
            handled: self.handled.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            memory_bytes: self.memory.load(Ordering::Relaxed),
        }
    }
}

/// Every process's counters, by id.
#[derive(Debug, Default)]
pub struct StatsTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<ProcessId, Arc<ProcessStats>>,
    crashed: u64,
}

impl StatsTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters of `id` for a new incarnation: the existing ones
    /// (restart counts add up), or fresh ones for a process that is new or
    /// had crashed for good (started again by an install).
    pub fn open(&self, id: &ProcessId) -> Arc<ProcessStats> {
        let mut inner = self.lock();
        if let Some(stats) = inner.by_id.get(id) {
            if stats.snapshot().life != Life::Crashed {
                return stats.clone();
            }
        }
        let stats = Arc::new(ProcessStats::default());
        inner.by_id.insert(id.clone(), stats.clone());
        stats
    }

    /// `id` crashed and will start again after its backoff.
    pub fn restarting(&self, id: &ProcessId) {
        if let Some(stats) = self.lock().by_id.get(id) {
            stats.restarts.fetch_add(1, Ordering::Relaxed);
            stats.set(Life::Restarting);
        }
    }

    /// `id` crashed and stays down: kept (bounded) so it can be seen.
    pub fn crashed(&self, id: &ProcessId) {
        let mut inner = self.lock();
        inner.crashed += 1;
        let seq = inner.crashed;
        if let Some(stats) = inner.by_id.get(id) {
            stats.crashed_seq.store(seq, Ordering::Relaxed);
            stats.memory.store(0, Ordering::Relaxed);
            stats.set(Life::Crashed);
        }
        let down: Vec<(u64, ProcessId)> = inner
            .by_id
            .iter()
            .filter(|(_, s)| s.snapshot().life == Life::Crashed)
            .map(|(id, s)| (s.crashed_seq.load(Ordering::Relaxed), id.clone()))
            .collect();
        if down.len() > MAX_CRASHED {
            if let Some((_, oldest)) = down.into_iter().min_by_key(|(seq, _)| *seq) {
                inner.by_id.remove(&oldest);
            }
        }
    }

    /// `id` left the process table: forgotten unless it crashed for good.
    pub fn retire(&self, id: &ProcessId) {
        let mut inner = self.lock();
        let stopped = inner
            .by_id
            .get(id)
            .is_some_and(|s| s.snapshot().life != Life::Crashed);
        if stopped {
            inner.by_id.remove(id);
        }
    }

    /// Every process's counters, sorted by id.
    pub fn snapshot(&self) -> Vec<(ProcessId, Snapshot)> {
        let mut all: Vec<_> = self
            .lock()
            .by_id
            .iter()
            .map(|(id, s)| (id.clone(), s.snapshot()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The store's resource limiter: the node's [`StoreLimits`], and a count of
/// the linear memory they grant into the process's [`ProcessStats`].
pub struct Metered {
    limits: StoreLimits,
    stats: Arc<ProcessStats>,
}

impl Metered {
    /// For a new incarnation, whose memories start from nothing.
    pub fn new(limits: StoreLimits, stats: Arc<ProcessStats>) -> Self {
        stats.memory.store(0, Ordering::Relaxed);
        Self { limits, stats }
    }

    pub fn stats(&self) -> &ProcessStats {
        &self.stats
    }
}

impl ResourceLimiter for Metered {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum)?;
        if granted {
            let added = desired.saturating_sub(current) as u64;
            self.stats.memory.fetch_add(added, Ordering::Relaxed);
        }
        Ok(granted)
    }

    fn memory_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ProcessId {
        ProcessId::new(name, "pkg", "pub")
    }

    #[test]
    fn restarts_add_up_and_a_crashed_process_starts_fresh() {
        let table = StatsTable::default();
        let a = table.open(&id("a"));
        a.running();
        a.handled(3);
        table.restarting(&id("a"));
        let again = table.open(&id("a"));
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(a.snapshot().restarts, 1);
        assert_eq!(a.snapshot().life, Life::Restarting);
        table.crashed(&id("a"));
        table.retire(&id("a"));
        assert_eq!(table.snapshot()[0].1.life, Life::Crashed, "kept");
        let fresh = table.open(&id("a"));
        assert_eq!(fresh.snapshot().handled, 0);
        table.retire(&id("a"));
        assert!(
            table.snapshot().is_empty(),
            "a stopped process is forgotten"
        );
    }

    #[test]
    fn crashed_entries_are_bounded() {
        let table = StatsTable::default();
        for i in 0..MAX_CRASHED + 5 {
            let name = format!("p{i}");
            table.open(&id(&name));
            table.crashed(&id(&name));
        }
        let all = table.snapshot();
        assert_eq!(all.len(), MAX_CRASHED);
        assert!(!all.iter().any(|(p, _)| *p == id("p0")), "oldest went");
    }

    #[test]
    fn memory_counts_what_the_limiter_grants() {
        let stats = Arc::new(ProcessStats::default());
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(1 << 20)
            .build();
        let mut metered = Metered::new(limits, stats.clone());
        assert!(metered.memory_growing(0, 65536, None).unwrap());
        assert!(metered.memory_growing(65536, 131072, None).unwrap());
        assert!(!metered.memory_growing(131072, 2 << 20, None).unwrap());
        assert_eq!(stats.snapshot().memory_bytes, 131072);
        Metered::new(wasmtime::StoreLimits::default(), stats.clone());
        assert_eq!(stats.snapshot().memory_bytes, 0, "a new incarnation");
    }
}
