//! What every part of a running node shares: the kernel, the wasm runtime,
//! the state store, and the registry of running processes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{NodeConfig, RestartPolicy};
use crate::kernel::Kernel;
use crate::runtime::Runtime;
use crate::state::StateStore;
use crate::types::ProcessId;

pub struct Services {
    pub kernel: Kernel,
    pub runtime: Runtime,
    pub state: StateStore,
    pub restart: RestartPolicy,
    /// `<home>/packages`.
    pub packages_dir: PathBuf,
    running: Mutex<HashMap<ProcessId, Running>>,
    /// Per-process counters for `kit ps`/`kit top` (`process/stats.rs`).
    pub stats: crate::process::stats::StatsTable,
}

/// A running process task and the switch that stops it.
pub struct Running {
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl Services {
    pub fn new(config: &NodeConfig, runtime: Runtime, state: StateStore) -> Arc<Self> {
        Arc::new(Self {
            kernel: Kernel::new(config.name.clone(), config.limits.clone()),
            runtime,
            state,
            restart: config.restart.clone(),
            packages_dir: config.home.join("packages"),
            running: Mutex::default(),
            stats: Default::default(),
        })
    }

    pub fn add_running(&self, id: ProcessId, running: Running) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, running);
    }

    /// Forget a process that ended by itself.
    pub fn remove_running(&self, id: &ProcessId) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Stop the processes matching `filter` and wait until they are gone;
    /// returns their ids.
    pub async fn stop_where(&self, filter: impl Fn(&ProcessId) -> bool) -> Vec<ProcessId> {
        let stopping: Vec<(ProcessId, Running)> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<ProcessId> = running.keys().filter(|id| filter(id)).cloned().collect();
            ids.into_iter()
                .filter_map(|id| running.remove(&id).map(|r| (id, r)))
                .collect()
        };
        for (_, r) in &stopping {
            let _ = r.stop.send(true);
        }
        let mut ids = Vec::with_capacity(stopping.len());
        for (id, r) in stopping {
            let _ = r.task.await;
            ids.push(id);
        }
        ids
    }
}
