//! The WebAssembly engine: one `Engine` per OS process, shared by every
//! node in it, with a pool of instance slots; components compiled once per
//! package version and kept pre-linked; and the epoch ticker that stops
//! guests that run too long.
//!
//! **Invariant (address space and the pool):** instances come from
//! wasmtime's pooling allocator, sized once per OS process at
//! [`config::max_processes_for_this_machine`] + [`POOL_SLACK`] slots. Each
//! slot reserves [`config::MEMORY_RESERVATION`] (256 MiB, the default
//! `Limits::max_memory_bytes`) + [`config::MEMORY_GUARD`] of address space,
//! not 4 GiB, so guest code carries explicit bounds checks, and a linear
//! memory never grows past the slot. The pool, not the node, is the
//! address-space owner: several nodes in one process share it, and a spawn
//! that finds it full gets the typed `node-full`, like one past
//! `Limits::max_processes`. A freed slot keeps up to
//! [`MEMORY_KEEP_RESIDENT`] of the pages its instance wrote (reset in
//! place, found with `PAGEMAP_SCAN`), so the next instance of the same
//! component starts without page faults; that memory stays with the OS
//! process until a slot is reused.
//!
//! Compiled code is also kept on disk in `<home>/compiled/`, named by the
//! SHA-256 of the component and this engine's compatibility hash, so a
//! restart does not compile again. **Invariant:** only files this node
//! wrote there are ever loaded as native code (`Component::deserialize_file`
//! trusts its input); nothing from a package upload is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config;
use crate::process::host::{HostState, ProcessPre};
use crate::process::inbox;

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
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
    #[error("{path} is larger than the {limit} bytes a component may have")]
    TooLarge { path: String, limit: usize },
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// The bytes of the component at `file`: a regular file (symlinks
/// followed) of at most `max_bytes`. Never opens a FIFO or a device, so a
/// read cannot block or run forever; the size is checked again while
/// reading, in case the file grows.
pub fn read_component(file: &Path, max_bytes: usize) -> Result<Vec<u8>, RuntimeError> {
    use std::io::Read;
    let path = file.display().to_string();
    let read_err = |source| RuntimeError::Read {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(file).map_err(read_err)?;
    if !meta.is_file() {
        return Err(RuntimeError::NotAFile { path });
    }
    let too_large = || RuntimeError::TooLarge {
        path: path.clone(),
        limit: max_bytes,
    };
    if meta.len() > max_bytes as u64 {
        return Err(too_large());
    }
    let handle = std::fs::File::open(file).map_err(read_err)?;
    // The file could have been swapped between the two looks.
    if !handle.metadata().map_err(read_err)?.is_file() {
        return Err(RuntimeError::NotAFile { path });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    handle
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Where compiled components are cached, below the node's home.
pub const COMPILED_DIR: &str = "compiled";

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    /// `<home>/compiled`, or `None` to compile every time.
    disk_cache: Option<PathBuf>,
    /// Keyed by `package:publisher@version/wasm-path`.
    compiled: Mutex<HashMap<String, ProcessPre<HostState>>>,
    /// Instance slots of the shared pool.
    pool_slots: usize,
    /// Whether processes may instantiate now: `false` while the node
    /// restores its processes at boot (see [`Runtime::hold_boots`]).
    boots: tokio::sync::watch::Sender<bool>,
}

/// While alive, processes of this node are registered and queue their
/// messages but do not instantiate; dropped, they all may.
pub struct BootHold<'a>(&'a Runtime);

impl Drop for BootHold<'_> {
    fn drop(&mut self) {
        self.0.boots.send_replace(true);
    }
}

/// Instance slots beyond the machine's process cap: a process that left
/// the kernel's table may hold its slot a moment longer (its store drops
/// after its askers are failed), and a new process must not find the
/// pool full then.
pub const POOL_SLACK: usize = 256;
/// Core wasm instances one component may hold (a Rust component has 3, a
/// componentize-py one 14).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memories one component may hold; every component seen has one.
/// The pool has one per slot, so processes of a two-memory component
/// fill it sooner (then spawns get `node-full`).
const MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables one component may hold (Rust and Python components have 2).
const TABLES_PER_COMPONENT: u32 = 8;
/// Table slots in the pool per process slot (address space only).
const TABLES_PER_SLOT: usize = 4;
/// Elements a table may have (componentize-py's starts at 5,678).
const TABLE_ELEMENTS: usize = 32 * 1024;
/// Bytes of a freed linear memory reset in place rather than given back to
/// the OS: the pages an echo process writes (about 16 KiB of its memory;
/// smaps) fit with room to spare.
pub const MEMORY_KEEP_RESIDENT: usize = 128 * 1024;
/// The same for a freed table.
const TABLE_KEEP_RESIDENT: usize = 16 * 1024;

/// The engine every node of this OS process shares, made on first use,
/// and its pool's instance slots.
static ENGINE: OnceLock<Result<(Engine, usize), String>> = OnceLock::new();

/// The shared engine: a pool of instance slots (the machine's process cap
/// plus [`POOL_SLACK`]), and one epoch ticker for all nodes (one ticker
/// per node would advance the epoch once per node each tick and cut every
/// call's time budget).
fn shared_engine() -> Result<(Engine, usize), RuntimeError> {
    ENGINE
        .get_or_init(|| {
            let slots = config::max_processes_for_this_machine() + POOL_SLACK;
            let engine = Engine::new(&engine_config(slots)).map_err(|e| format!("{e:#}"))?;
            spawn_epoch_ticker(engine.clone());
            Ok((engine, slots))
        })
        .clone()
        .map_err(RuntimeError::Engine)
}

fn engine_config(slots: usize) -> Config {
    let slots = u32::try_from(slots).unwrap_or(u32::MAX);
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.async_support(true);
    config.wasm_component_model(true);
    config.memory_reservation(config::MEMORY_RESERVATION);
    config.memory_guard_size(config::MEMORY_GUARD);
    config.memory_reservation_for_growth(0);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(slots)
        .total_tables(slots.saturating_mul(TABLES_PER_SLOT as u32))
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(config::MEMORY_RESERVATION as usize)
        .table_elements(TABLE_ELEMENTS)
        // Reuse a freed slot before touching a cold one: the slots ever
        // used are at most the most processes run at once.
        .max_unused_warm_slots(0)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // Reset only the pages an instance wrote (Linux 6.7+); without
        // it the low `keep_resident` bytes are reset, the rest madvised.
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl Runtime {
    /// An engine caching compiled code in `disk_cache` when given.
    pub fn new(disk_cache: Option<PathBuf>) -> Result<Self, RuntimeError> {
        let (engine, pool_slots) = shared_engine()?;
        let linker = inbox::linker(&engine).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        if let Some(dir) = &disk_cache {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), "no compile cache: {e}");
            }
        }
        Ok(Self {
            engine,
            linker,
            disk_cache,
            compiled: Mutex::default(),
            pool_slots,
            boots: tokio::sync::watch::Sender::new(true),
        })
    }

    /// Hold every process start of this node at its first instantiation
    /// until the returned guard drops. At boot the node registers all its
    /// processes first (so none is `unknown-process` to another), then
    /// they instantiate: instantiations no longer take the cores from the
    /// restore loop, and the node answers sooner.
    pub fn hold_boots(&self) -> BootHold<'_> {
        self.boots.send_replace(false);
        BootHold(self)
    }

    /// Wait until processes may instantiate (at once unless a
    /// [`BootHold`] is alive).
    pub async fn boots_open(&self) {
        let mut open = self.boots.subscribe();
        // Only an error if the sender dropped, i.e. the runtime is gone.
        let _ = open.wait_for(|open| *open).await;
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether every instance slot of the process-wide pool is taken (by
    /// this node or another in the same OS process).
    pub fn pool_full(&self) -> bool {
        self.engine
            .pooling_allocator_metrics()
            .is_some_and(|m| m.component_instances() >= self.pool_slots as u64)
    }

    /// Instance slots of the process-wide pool.
    pub fn pool_slots(&self) -> usize {
        self.pool_slots
    }

    /// [`Runtime::prepare_within`] the default `Limits::max_component_bytes`.
    pub fn prepare(&self, key: &str, file: &Path) -> Result<ProcessPre<HostState>, RuntimeError> {
        let max_bytes = crate::config::Limits::default().max_component_bytes;
        self.prepare_within(key, file, max_bytes)
    }

    /// The pre-linked component for `key`, compiling `file` (read only if
    /// it is a regular file of at most `max_bytes`) on first use.
    /// Compilation is slow (tens to hundreds of ms): call from a blocking
    /// context when the key may be new.
    pub fn prepare_within(
        &self,
        key: &str,
        file: &Path,
        max_bytes: usize,
    ) -> Result<ProcessPre<HostState>, RuntimeError> {
        if let Some(pre) = self.cached(key) {
            return Ok(pre);
        }
        let bytes = read_component(file, max_bytes)?;
        let pre = self.compile(&file.display().to_string(), &bytes)?;
        self.insert(key, pre.clone());
        Ok(pre)
    }

    /// `bytes` compiled and pre-linked, not cached under any key: an
    /// upload is checked this way before it replaces anything. `path`
    /// names the component in errors.
    pub fn compile(&self, path: &str, bytes: &[u8]) -> Result<ProcessPre<HostState>, RuntimeError> {
        let invalid = |e: wasmtime::Error| RuntimeError::Invalid {
            path: path.to_string(),
            reason: format!("{e:#}"),
        };
        let component = self.component(bytes).map_err(invalid)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        ProcessPre::new(instance_pre).map_err(invalid)
    }

    /// Keep `pre` as the component of `key`.
    pub fn insert(&self, key: &str, pre: ProcessPre<HostState>) {
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), pre);
    }

    /// `bytes` compiled, from the disk cache when this engine compiled
    /// them before.
    fn component(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.disk_cache else {
            return Component::from_binary(&self.engine, bytes);
        };
        let path = dir.join(self.cache_name(bytes));
        if path.is_file() {
            // SAFETY: files in the cache directory are written only by
            // `store` below, from `Component::serialize` of this engine's
            // own compilation; the name binds them to the exact component
            // bytes and engine configuration.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "compile cache entry unusable, compiling: {e:#}")
                }
            }
        }
        let component = Component::from_binary(&self.engine, bytes)?;
        if let Err(e) = component.serialize().map(|code| store(&path, &code)) {
            tracing::warn!(path = %path.display(), "cannot cache compiled code: {e:#}");
        }
        Ok(component)
    }

    /// `<sha256 of the component>-<engine compatibility hash>.cwasm`.
    fn cache_name(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut engine = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine);
        let component = crate::util::sha256_hex(bytes);
        format!("{component}-{:016x}.cwasm", engine.finish())
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

/// Compiled components kept on disk; past it the oldest entries go (a
/// reinstalled package leaves its old code behind).
const MAX_CACHED: usize = 64;

/// Write `code` to `path` whole or not at all (temporary file, then
/// rename), so a crash never leaves a truncated entry; then trim the cache.
fn store(path: &Path, code: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(&tmp, code).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), "cannot cache compiled code: {e}");
    }
    if let Some(dir) = path.parent() {
        trim(dir);
    }
}

/// Remove the oldest cache entries beyond [`MAX_CACHED`].
fn trim(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    if files.len() <= MAX_CACHED {
        return;
    }
    files.sort();
    for (_, old) in &files[..files.len() - MAX_CACHED] {
        let _ = std::fs::remove_file(old);
    }
}

/// The ticker lives as long as the OS process, like the engine.
fn spawn_epoch_ticker(engine: Engine) {
    let spawned = std::thread::Builder::new()
        .name("hearth-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, runaway guests will not be stopped: {e}");
    }
}
