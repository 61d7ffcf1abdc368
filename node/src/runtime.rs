//! The WebAssembly engine: one `Engine` per node, components compiled once
//! per package version and kept pre-linked, and the epoch ticker that stops
//! guests that run too long.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::process::host::{self, HostState, ProcessPre};

/// How often the epoch advances. At each tick a running guest yields to
/// the scheduler, and one past `Limits::max_call_time` is interrupted.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Hearth process component: {reason}")]
    Invalid { path: String, reason: String },
    #[error("wasm engine: {0}")]
    Engine(String),
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    /// Keyed by `package:publisher@version/wasm-path`.
    compiled: Mutex<HashMap<String, ProcessPre<HostState>>>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new() -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.async_support(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let linker = host::linker(&engine).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            engine,
            linker,
            compiled: Mutex::default(),
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pre-linked component for `key`, compiling `file` on first use.
    /// Compilation is slow (tens to hundreds of ms): call from a blocking
    /// context when the key may be new.
    pub fn prepare(&self, key: &str, file: &Path) -> Result<ProcessPre<HostState>, RuntimeError> {
        if let Some(pre) = self.cached(key) {
            return Ok(pre);
        }
        let path = file.display().to_string();
        let bytes = std::fs::read(file).map_err(|source| RuntimeError::Read {
            path: path.clone(),
            source,
        })?;
        let invalid = |e: wasmtime::Error| RuntimeError::Invalid {
            path: path.clone(),
            reason: format!("{e:#}"),
        };
        let component = Component::from_binary(&self.engine, &bytes).map_err(invalid)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = ProcessPre::new(instance_pre).map_err(invalid)?;
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), pre.clone());
        Ok(pre)
    }

    pub fn cached(&self, key: &str) -> Option<ProcessPre<HostState>> {
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Drop compiled components whose key starts with `prefix` (a package
    /// being replaced).
    pub fn evict(&self, prefix: &str) {
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(prefix));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("hearth-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, runaway guests will not be stopped: {e}");
    }
}
