//! Running processes: one tokio task per process owns its wasm store and
//! its mailbox, hands each delivered envelope to the guest's `handle`, and
//! applies the process's `on_exit` policy when the guest traps. A guest of
//! the world `process-loop` (WIT 0.1.3) is called once, in `run`, and
//! takes its envelopes itself through `inbox.next-events` ([`inbox`]).
//!
//! **Invariant:** a guest never takes the node down. A trap, a call that
//! runs past `Limits::max_call_time` (epoch interruption) or a memory grow
//! past `Limits::max_memory_bytes` ends that incarnation only; every
//! request it owed an answer to gets `process-exited` at once.

mod abi;
pub mod asks;
mod bindings;
pub mod host;
pub mod inbox;
mod queue;
pub mod stats;
mod stderr;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};
use wasmtime::{Store, UpdateDeadline};

use crate::kernel::caps::ProcessCaps;
use crate::kernel::mailbox::{mailbox, Envelope};
use crate::kernel::{AlreadyRunning, Endpoint, RegisterError};
use crate::package_info::PackageInfo;
use crate::runtime::RuntimeError;
use crate::services::{Running, Services};
use crate::types::{
    Address, KernelMessage, Message, OnExit, ProcessId, Request, SendError, SendErrorKind,
};
use abi::Event;
use host::{Guest, HostState, ProcessPre};
use queue::{Inbox, Queue};

/// Envelopes handled per wake-up before the task checks its timers and
/// yields; keeps one busy process from starving its own deadlines.
const BATCH: usize = 64;

/// The most events one `handle-batch` call carries. With the byte bound
/// below it keeps a batch a short call: a batch runs under the time limit
/// of one call, so a guest never gets more time by being batched.
pub const MAX_BATCH_EVENTS: usize = 32;

/// The most payload bytes (bodies and blobs) one `handle-batch` call
/// carries; an envelope larger than this is handed alone.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// What a process is: everything needed to (re)start it.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub id: ProcessId,
    pub package: Arc<PackageInfo>,
    pub wasm_path: String,
    pub on_exit: OnExit,
    pub public: bool,
    pub networking: bool,
}

impl ProcessSpec {
    /// The capabilities the kernel registers for this process.
    pub fn caps(&self) -> ProcessCaps {
        ProcessCaps {
            public: self.public,
            networking: self.networking,
            system: false,
        }
    }
}

/// Read-only facts about a running process, shared with its host state.
pub struct ProcessContext {
    pub address: Address,
    pub spec: ProcessSpec,
    pub services: Arc<Services>,
}

/// A child asked for by a running process.
pub struct SpawnRequest {
    pub id: ProcessId,
    pub wasm_path: String,
    pub on_exit: OnExit,
    pub public: bool,
    pub networking: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    #[error("node-full: the node already runs {0} processes, its `max_processes` limit")]
    NodeFull(usize),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<RegisterError> for StartError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::AlreadyRunning(e) => Self::AlreadyRunning(e),
            RegisterError::NodeFull(n) => Self::NodeFull(n),
        }
    }
}

/// Why a child's component could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum ChildWasmError {
    #[error("bad-wasm-path: {0}")]
    Path(#[from] crate::package_info::WasmPathError),
    #[error("bad-component: {0}")]
    Component(#[from] RuntimeError),
}

/// Check a child's `wasm_path` inside `package` and compile its component
/// (read only if a regular file within the size cap). Slow on first use:
/// call on the blocking pool. Returns the path in its normal form.
pub fn prepare_child_wasm(
    services: &Services,
    package: &PackageInfo,
    wasm_path: &str,
) -> Result<String, ChildWasmError> {
    let (file, normal) = package.wasm_within(wasm_path)?;
    let key = package.component_key(&normal);
    let max = services.kernel.limits().max_component_bytes;
    services.runtime.prepare_within(&key, &file, max)?;
    Ok(normal)
}

/// Register `spec` with the kernel and start its task.
pub fn start(services: &Arc<Services>, spec: ProcessSpec) -> Result<(), StartError> {
    start_then(services, spec, || ())
}

/// [`start`], calling `registered` once the kernel has registered the new
/// process and before its task runs. Capabilities granted there reach only
/// the process just started: never one already running under that name
/// (registration fails first), and the child has them before it runs.
pub fn start_then(
    services: &Arc<Services>,
    spec: ProcessSpec,
    registered: impl FnOnce(),
) -> Result<(), StartError> {
    let key = spec.package.component_key(&spec.wasm_path);
    let pre = services.runtime.prepare_within(
        &key,
        &spec.package.wasm_file(&spec.wasm_path),
        services.kernel.limits().max_component_bytes,
    )?;
    // Several nodes in one OS process share the instance pool: when the
    // others hold every slot, refuse here, typed, rather than fail the boot.
    if services.runtime.pool_full() {
        return Err(StartError::NodeFull(services.runtime.pool_slots()));
    }
    let limits = services.kernel.limits();
    let (mailbox_tx, mailbox_rx) = mailbox(limits.mailbox_requests, limits.mailbox_bytes);
    let caps = spec.caps();
    services.kernel.register_within_limit(
        spec.id.clone(),
        Endpoint {
            mailbox: mailbox_tx,
            caps,
        },
    )?;
    registered();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(ProcessContext {
        address: services.kernel.address(&spec.id),
        spec: spec.clone(),
        services: services.clone(),
    });
    let span = tracing::info_span!("process", id = %spec.id);
    let runner = Runner {
        ctx,
        pre,
        queue: Some(Queue::new(mailbox_rx)),
        stop: stop_rx,
        in_table: true,
    };
    let task = tokio::spawn(runner.run().instrument(span));
    services.add_running(
        spec.id,
        Running {
            stop: stop_tx,
            task,
        },
    );
    Ok(())
}

/// Start a child of the process `parent`, from a wasm file of its package.
/// The child holds the parent's capabilities; each may message the other.
pub fn spawn_child(parent: &ProcessContext, req: SpawnRequest) -> Result<(), StartError> {
    let services = &parent.services;
    let parent_id = &parent.address.process;
    let spec = ProcessSpec {
        id: req.id,
        package: parent.spec.package.clone(),
        wasm_path: req.wasm_path,
        on_exit: req.on_exit,
        public: req.public,
        networking: req.networking && parent.spec.networking,
    };
    let record = crate::state::table::ChildRecord {
        id: spec.id.clone(),
        parent: parent_id.clone(),
        wasm_path: spec.wasm_path.clone(),
        on_exit: spec.on_exit.clone(),
        public: spec.public,
        networking: spec.networking,
    };
    let child = spec.id.clone();
    start_then(services, spec, || {
        let caps = &services.kernel.caps;
        // A fresh child holds what its parent gives, nothing an earlier
        // process of that name was left with.
        caps.revoke_all(&child);
        caps.inherit(parent_id, &child);
        caps.grant_messaging(parent_id, &child);
        caps.grant_messaging(&child, parent_id);
    })?;
    // Persisted for restart recovery; on disk at the next group commit.
    if let Err(e) = services.state.record_child_soon(&record) {
        warn!(child = %record.id, "spawned child not persisted: {e}");
    }
    Ok(())
}

const OWED: &str = "the process exited before it answered";
const NEVER_STARTED: &str = "the process failed to start";
const UNHANDLED: &str = "the process exited before it handled the request";

/// Why an incarnation ended.
enum Exit {
    /// Instantiation or `init` failed: the guest never served.
    InitFailed(String),
    /// The guest trapped, ran too long or outgrew its memory.
    Crashed(String),
    /// The node or an admin stopped the process.
    Stopped,
}

/// The message of the `process-exited` failures a dead incarnation leaves:
/// local askers also learn what the guest last printed (its panic
/// message); remote ones do not, as it may reveal the app's insides.
struct ExitNotice {
    plain: &'static str,
    detailed: Option<String>,
}

impl ExitNotice {
    fn new(plain: &'static str, last_words: Option<&str>) -> Self {
        let detailed = last_words.map(|words| format!("{plain}; it printed: {words}"));
        Self { plain, detailed }
    }

    fn for_asker(&self, asker: &Address, ours: &Address) -> &str {
        match &self.detailed {
            Some(detailed) if asker.node == ours.node => detailed,
            _ => self.plain,
        }
    }
}

struct Runner {
    ctx: Arc<ProcessContext>,
    pre: ProcessPre<HostState>,
    /// The mailbox; lent to each incarnation while it runs.
    queue: Option<Queue>,
    stop: watch::Receiver<bool>,
    /// Still in the kernel's process table (left once, on the way out).
    in_table: bool,
}

impl Runner {
    async fn run(mut self) {
        self.ctx.services.runtime.boots_open().await;
        let restart = self.ctx.services.restart.clone();
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let (exit, mut state) = self.incarnation().await;
            let last_words = state.as_ref().and_then(|s| s.stderr.last_words());
            let words = last_words.as_deref();
            // A process that stays down leaves the table before its askers
            // hear `process-exited`, so their next ask gets `unknown-process`.
            let for_good =
                matches!(exit, Exit::Stopped) || !matches!(self.ctx.spec.on_exit, OnExit::Restart);
            if for_good {
                self.leave_table();
            }
            self.fail_owed(&mut state, &ExitNotice::new(OWED, words));
            let reason = match exit {
                Exit::Stopped => break,
                Exit::Crashed(reason) => reason,
                // It cannot serve what waits for it: fail that now rather
                // than let it wait through restarts that fail the same way.
                Exit::InitFailed(reason) => {
                    self.fail_queued(&ExitNotice::new(NEVER_STARTED, words));
                    reason
                }
            };
            let reason = match words {
                Some(words) => format!("{reason}; it printed: {words}"),
                None => reason,
            };
            match &self.ctx.spec.on_exit {
                OnExit::Restart => {
                    if started.elapsed() >= restart.stable_after {
                        attempt = 0;
                    }
                    attempt = attempt.saturating_add(1);
                    self.ctx
                        .services
                        .stats
                        .restarting(&self.ctx.address.process);
                    let backoff = restart.backoff(attempt);
                    warn!(%reason, attempt, backoff_ms = backoff.as_millis() as u64, "process crashed; restarting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        _ = self.stop.changed() => break,
                    }
                }
                OnExit::None => {
                    warn!(%reason, "process crashed; on_exit is None, it stays down");
                    self.ctx.services.stats.crashed(&self.ctx.address.process);
                    self.forget_child();
                    break;
                }
                OnExit::Requests(requests) => {
                    warn!(%reason, count = requests.len(), "process crashed; sending its on_exit requests");
                    self.ctx.services.stats.crashed(&self.ctx.address.process);
                    self.send_exit_requests(requests);
                    self.forget_child();
                    break;
                }
            }
        }
        self.retire();
    }

    /// Run one instance of the guest until it crashes or is stopped.
    async fn incarnation(&mut self) -> (Exit, Option<HostState>) {
        let Some(queue) = self.queue.take() else {
            return (Exit::Stopped, None); // lent and never given back: cannot happen
        };
        let (exit, state, queue) = self.incarnation_with(queue).await;
        self.queue = queue;
        (exit, state)
    }

    /// [`Self::incarnation`] with the mailbox lent to it; gives it back.
    async fn incarnation_with(
        &mut self,
        mut queue: Queue,
    ) -> (Exit, Option<HostState>, Option<Queue>) {
        let (store, guest) = match boot(self.ctx.clone(), &self.pre).await {
            Ok(booted) => booted,
            Err((reason, store)) => {
                return (
                    Exit::InitFailed(reason),
                    Some(store.into_data()),
                    Some(queue),
                )
            }
        };
        debug!("process started");
        store.data().limits.stats().running();
        if guest.loops() {
            return self.run_loop(store, &guest, queue).await;
        }
        let (exit, state) = self.serve_calls(store, &guest, &mut queue).await;
        (exit, state, Some(queue))
    }

    /// A guest of the world `process-loop`: one call of `run`, in which
    /// the guest takes its events through `next-events` ([`inbox`]).
    async fn run_loop(
        &mut self,
        mut store: Store<HostState>,
        guest: &Guest,
        queue: Queue,
    ) -> (Exit, Option<HostState>, Option<Queue>) {
        store.data_mut().inbox = Some(Inbox::new(queue, self.stop.clone()));
        store.data_mut().call_ticks = 0;
        store.set_epoch_deadline(1);
        // Boxed: wasmtime's call future is large (see `call`).
        let result = Box::pin(guest.call_run(&mut store)).await;
        let (queue, ended) = match store.data_mut().inbox.take() {
            Some(inbox) => {
                let (queue, ended) = inbox.into_queue();
                (Some(queue), ended)
            }
            None => (None, true),
        };
        let exit = match result {
            _ if ended => Exit::Stopped,
            Ok(()) => Exit::Crashed("`run` returned".into()),
            Err(e) => Exit::Crashed(format!("{e:#}")),
        };
        (exit, Some(store.into_data()), queue)
    }

    /// A guest called once per event (or batch): `handle`, `handle-batch`,
    /// `deliver`, `deliver-batch`.
    async fn serve_calls(
        &mut self,
        mut store: Store<HostState>,
        guest: &Guest,
        queue: &mut Queue,
    ) -> (Exit, Option<HostState>) {
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let next = store.data_mut().asks.next_deadline();
            if next != armed {
                if let Some(at) = next {
                    timer.as_mut().reset(at);
                }
                armed = next;
            }
            let outcome = tokio::select! {
                biased;
                _ = self.stop.changed() => return (Exit::Stopped, Some(store.into_data())),
                envelope = queue.recv() => match envelope {
                    Some(envelope) => deliver_batch(queue, &mut store, guest, envelope).await,
                    None => return (Exit::Stopped, Some(store.into_data())),
                },
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    expire(&mut store, guest).await
                }
            };
            if let Err(reason) = outcome {
                return (Exit::Crashed(reason), Some(store.into_data()));
            }
        }
    }
}

/// Handle `first` and what else waits, up to [`BATCH`] envelopes, in
/// mailbox order. Runs of envelopes that need no request context go
/// to `handle-batch` together (when the guest exports it and its last
/// call was quick); any other envelope is handed alone.
async fn deliver_batch(
    queue: &mut Queue,
    store: &mut Store<HostState>,
    guest: &Guest,
    first: Envelope,
) -> Result<(), String> {
    if !guest.batches() {
        deliver(store, guest, first).await?;
        for _ in 1..BATCH {
            match queue.try_recv() {
                Some(envelope) => deliver(store, guest, envelope).await?,
                None => break,
            }
        }
        return Ok(());
    }
    let mut batch = Batch::default();
    let mut next = Some(first);
    let mut taken = 1;
    while let Some(envelope) = next.take() {
        // A guest whose calls run through epoch ticks gets events one
        // by one: a batch of slow events would strain its call budget.
        let quick = store.data().call_ticks == 0;
        if quick && batchable(&envelope) && batch.fits(&envelope) {
            if let Some(event) = event_of(store.data_mut(), envelope) {
                batch.push(event);
            }
        } else {
            batch.flush(store, guest).await?;
            if quick && batchable(&envelope) {
                if let Some(event) = event_of(store.data_mut(), envelope) {
                    batch.push(event);
                }
            } else {
                deliver(store, guest, envelope).await?;
            }
        }
        if taken < BATCH {
            next = queue.try_recv();
            taken += 1;
        }
    }
    batch.flush(store, guest).await
}

impl Runner {
    /// Every request the dead incarnation owed an answer to fails at once.
    fn fail_owed(&self, state: &mut Option<HostState>, notice: &ExitNotice) {
        let Some(state) = state else { return };
        let kernel = &self.ctx.services.kernel;
        for (id, rsvp) in state.asks.drain_owed() {
            let message = notice.for_asker(&rsvp, &self.ctx.address);
            let error = SendError::new(SendErrorKind::ProcessExited, &self.ctx.address, message);
            kernel.fail(&rsvp, id, error);
        }
    }

    /// Every request still queued fails at once.
    fn fail_queued(&mut self, notice: &ExitNotice) {
        let kernel = &self.ctx.services.kernel;
        let Some(queue) = &mut self.queue else { return };
        while let Some(envelope) = queue.try_recv() {
            if let Envelope::Message(km) = envelope {
                if let (Some(rsvp), true) = (&km.rsvp, km.is_request()) {
                    let message = notice.for_asker(rsvp, &self.ctx.address);
                    let error =
                        SendError::new(SendErrorKind::ProcessExited, &self.ctx.address, message);
                    kernel.fail(rsvp, km.id, error);
                }
            }
        }
    }

    fn send_exit_requests(&self, requests: &[crate::types::ExitRequest]) {
        let kernel = &self.ctx.services.kernel;
        for r in requests {
            let km = KernelMessage {
                id: kernel.next_id(),
                source: self.ctx.address.clone(),
                target: r.target.clone(),
                rsvp: None,
                message: Message::Request(Request {
                    inherit: false,
                    expects_response: None,
                    body: r.body.clone(),
                    metadata: None,
                }),
                blob: None,
            };
            if let Err(e) = kernel.route(km) {
                warn!(%e, "on_exit request refused");
            }
        }
    }

    /// A spawned child that exited for good is not restored at boot.
    fn forget_child(&self) {
        if let Err(e) = self
            .ctx
            .services
            .state
            .forget_child(&self.ctx.address.process)
        {
            warn!("process table: {e}");
        }
    }

    /// Leave the kernel's process table, once: a later incarnation
    /// registered under the same id is not ours to remove.
    fn leave_table(&mut self) {
        if std::mem::take(&mut self.in_table) {
            self.ctx
                .services
                .kernel
                .unregister(&self.ctx.address.process);
        }
    }

    /// Leave the process table; fail whatever is still queued.
    fn retire(mut self) {
        self.leave_table();
        let services = &self.ctx.services;
        let id = &self.ctx.address.process;
        services.remove_running(id);
        services.stats.retire(id);
        if let Some(queue) = &mut self.queue {
            queue.close();
        }
        self.fail_queued(&ExitNotice::new(UNHANDLED, None));
        info!("process stopped");
    }
}

/// Epoch ticks one guest call may run through before it is interrupted.
fn call_tick_budget(max_call_time: Duration) -> u32 {
    let ticks = max_call_time.as_millis() / crate::runtime::EPOCH_TICK.as_millis().max(1);
    u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
}

/// A fresh instance of the process's component with its `init` run: what
/// every start and restart costs.
pub async fn boot(
    ctx: Arc<ProcessContext>,
    pre: &ProcessPre<HostState>,
) -> Result<(Store<HostState>, Guest), (String, Store<HostState>)> {
    let services = ctx.services.clone();
    let max_ticks = call_tick_budget(services.kernel.limits().max_call_time);
    let our = ctx.address.clone();
    let mut store = Store::new(services.runtime.engine(), HostState::new(ctx));
    store.limiter(|s| &mut s.limits);
    // Every epoch tick a running guest yields to the scheduler, so a long
    // call never blocks a worker thread; past its tick budget it is
    // interrupted (a trap). A guest parked (descheduled, or awaiting a host
    // call) sees at most one deadline on resuming, so only running time
    // adds up.
    store.epoch_deadline_callback(move |mut ctx| {
        let ticks = &mut ctx.data_mut().call_ticks;
        *ticks = ticks.saturating_add(1);
        if *ticks > max_ticks {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store.set_epoch_deadline(1);
    store.data_mut().call_ticks = 0;
    let guest = match pre.instantiate_async(&mut store).await {
        Ok(guest) => guest,
        Err(e)
            if e.chain()
                .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>()) =>
        {
            return Err((
                format!("node-full: no free wasm instance slot: {e:#}"),
                store,
            ))
        }
        Err(e) => return Err((format!("instantiate: {e:#}"), store)),
    };
    if let Err(e) = guest.call_init(&mut store, &our).await {
        return Err((format!("init: {e:#}"), store));
    }
    Ok((store, guest))
}

/// Events gathered for one `handle-batch` call.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    bytes: usize,
}

impl Batch {
    /// Whether `envelope` may join without passing the batch bounds.
    fn fits(&self, envelope: &Envelope) -> bool {
        self.events.len() < MAX_BATCH_EVENTS
            && self.bytes + payload_bytes(envelope) <= MAX_BATCH_BYTES
    }

    fn push(&mut self, event: Event) {
        self.bytes += event.payload_bytes();
        self.events.push(event);
    }

    /// Hand what is gathered to the guest: one event through `handle`,
    /// more through `handle-batch`.
    async fn flush(&mut self, store: &mut Store<HostState>, guest: &Guest) -> Result<(), String> {
        self.bytes = 0;
        match self.events.len() {
            0 => Ok(()),
            1 => match self.events.pop() {
                Some(event) => call(store, guest, event).await,
                None => Ok(()),
            },
            _ => call_batch(store, guest, std::mem::take(&mut self.events)).await,
        }
    }
}

/// Whether the guest may get `envelope` in a batch: only what needs no
/// request context for `inherit` (which takes the asker and blob of the
/// request being handled): responses, failures, and fire-and-forget
/// requests without a blob.
fn batchable(envelope: &Envelope) -> bool {
    match envelope {
        Envelope::Message(km) => match &km.message {
            Message::Request(_) => km.rsvp.is_none() && km.blob.is_none(),
            Message::Response(_) => true,
        },
        Envelope::Failed { .. } => true,
    }
}

fn payload_bytes(envelope: &Envelope) -> usize {
    match envelope {
        Envelope::Message(km) => km.payload_len(),
        Envelope::Failed { error, .. } => error.detail.len(),
    }
}

/// Hand one envelope to the guest.
async fn deliver(
    store: &mut Store<HostState>,
    guest: &Guest,
    envelope: Envelope,
) -> Result<(), String> {
    match event_of(store.data_mut(), envelope) {
        Some(event) => call(store, guest, event).await,
        None => Ok(()),
    }
}

/// The event for `envelope`, with the store's bookkeeping done: a request
/// becomes owed (when it expects an answer) and the current request; a
/// response or failure takes its pending ask. `None` for a response or
/// failure that no pending ask awaits (late or duplicate): discarded.
fn event_of(state: &mut HostState, envelope: Envelope) -> Option<Event> {
    match envelope {
        Envelope::Message(km) => match &km.message {
            Message::Request(req) => {
                if let (Some(rsvp), Some(ms)) = (&km.rsvp, req.expects_response) {
                    let deadline = Instant::now() + Duration::from_millis(ms);
                    state.asks.add_owed(km.id, rsvp.clone(), deadline);
                }
                state.current = Some(host::Current {
                    id: km.id,
                    rsvp: km.rsvp.clone(),
                    blob: km.blob.clone(),
                });
                Some(Event::incoming(km, None))
            }
            Message::Response(_) => match state.asks.take_pending(km.id) {
                Some(pending) => Some(Event::incoming(km, pending.context)),
                None => {
                    debug!(id = km.id, source = %km.source, "response to no pending request (late or duplicate); discarded");
                    None
                }
            },
        },
        Envelope::Failed { id, error } => match state.asks.take_pending(id) {
            Some(pending) => Some(Event::failed(id, error, pending.context)),
            None => {
                debug!(id, %error, "failure for no pending request; discarded");
                None
            }
        },
    }
}

/// Report every ask whose deadline passed as a `timeout` failure.
async fn expire(store: &mut Store<HostState>, guest: &Guest) -> Result<(), String> {
    let expired = store.data_mut().asks.expire(Instant::now());
    for (id, pending) in expired {
        let error = SendError::new(
            SendErrorKind::Timeout,
            &pending.target,
            "no response within the request's timeout",
        );
        call(store, guest, Event::failed(id, error, pending.context)).await?;
    }
    Ok(())
}

async fn call(store: &mut Store<HostState>, guest: &Guest, event: Event) -> Result<(), String> {
    store.data().limits.stats().handled(1);
    store.data_mut().call_ticks = 0;
    store.set_epoch_deadline(1);
    // Boxed: wasmtime's call future is large, and keeping it out of the
    // runner's own future measured a lower round trip (p50 median 7.6 vs
    // 10.8 µs over 7 alternating `kit bench local` runs).
    let result = Box::pin(guest.call_handle(&mut *store, event)).await;
    store.data_mut().current = None;
    result.map_err(|e| format!("{e:#}"))
}

/// One `handle-batch` call, under the limits of one call.
async fn call_batch(
    store: &mut Store<HostState>,
    guest: &Guest,
    events: Vec<Event>,
) -> Result<(), String> {
    store.data().limits.stats().handled(events.len() as u64);
    store.data_mut().call_ticks = 0;
    store.set_epoch_deadline(1);
    // No request context in a batch: `inherit` sees none, as for a
    // response.
    store.data_mut().current = None;
    let result = Box::pin(guest.call_handle_batch(&mut *store, events)).await;
    store.data_mut().current = None;
    result.map_err(|e| format!("{e:#}"))
}
