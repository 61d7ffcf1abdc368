//! The host side of the WIT boundary: bindings generated from `wit/`, the
//! per-process store data, and the `kernel` interface a guest imports.
//!
//! Two error levels are kept apart: a guest that misbehaves traps, while
//! anything it may reasonably handle (a refused send, a missing asker)
//! comes back as a WIT `result`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, trace, warn};
use wasmtime::component::{ComponentExportIndex, InstancePre, Linker, ResourceTable, TypedFunc};
use wasmtime::{AsContext, Engine, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::abi::{AddressIn, AddressOut, Event, EventOut, PeerEvent, Peers, Target};
use super::asks::{Asks, Pending};
use super::bindings;
use super::{ProcessContext, SpawnRequest};
use crate::kernel::caps::ProcessCaps;
use crate::kernel::RouteMemo;
use crate::types::{self as t, Address, KernelMessage, ProcessId, SendError, SendErrorKind};

pub use super::bindings::wit;

/// The exports of the worlds `process`, `process-batch` (WIT 0.1.1),
/// `process-peers` (0.1.2) and `process-loop` (0.1.3).
const INIT: &str = "init";
const RUN: &str = "run";
const HANDLE: &str = "handle";
const HANDLE_BATCH: &str = "handle-batch";
const DELIVER: &str = "deliver";
const DELIVER_BATCH: &str = "deliver-batch";

/// The `kernel` interface the linker provides. Components built against
/// 0.1.0, 0.1.1 or 0.1.2 import `kernel@0.1.0`, `@0.1.1` or `@0.1.2`,
/// which the linker resolves to this semver-compatible version.
const KERNEL: &str = "hearth:process/kernel@0.1.3";
const TYPES: &str = "hearth:process/types@0.1.3";

/// A component compiled and pre-linked: what every start of its processes
/// instantiates. Knows whether the component exports `run` (the world
/// `process-loop`: it takes its events itself), or else `handle-batch`,
/// and `deliver` with `deliver-batch`; one built against the older world
/// `process` exports `handle` only, and gets every event through it.
pub struct ProcessPre<T: 'static> {
    instance_pre: InstancePre<T>,
    init: ComponentExportIndex,
    /// `run`, for a component that takes its events itself.
    run: Option<ComponentExportIndex>,
    /// `handle`: exported by every world but `process-loop`.
    handle: Option<ComponentExportIndex>,
    batch: Option<ComponentExportIndex>,
    /// `deliver` and `deliver-batch`, taken only when both are exported.
    deliver: Option<(ComponentExportIndex, ComponentExportIndex)>,
}

impl<T: 'static> Clone for ProcessPre<T> {
    fn clone(&self) -> Self {
        Self {
            instance_pre: self.instance_pre.clone(),
            init: self.init,
            run: self.run,
            handle: self.handle,
            batch: self.batch,
            deliver: self.deliver,
        }
    }
}

impl<T: Send + 'static> ProcessPre<T> {
    /// Checks that the component exports the world `process` (`init` and
    /// `handle` of the right types) or `process-loop` (`init` and `run`),
    /// and looks for `handle-batch`. The types of `run` and the other
    /// optional exports are checked when an instance is made.
    pub fn new(instance_pre: InstancePre<T>) -> wasmtime::Result<Self> {
        let component = instance_pre.component();
        let run = component.get_export_index(None, RUN);
        if run.is_none() {
            // The generated check of the world's exports and their types.
            bindings::ProcessIndices::new(&instance_pre)?;
        }
        let export = |name| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| anyhow::anyhow!("no export `{name}`"))
        };
        Ok(Self {
            init: export(INIT)?,
            run,
            handle: component.get_export_index(None, HANDLE),
            batch: component.get_export_index(None, HANDLE_BATCH),
            deliver: component
                .get_export_index(None, DELIVER)
                .zip(component.get_export_index(None, DELIVER_BATCH)),
            instance_pre,
        })
    }

    /// Whether the component takes batches.
    pub fn batches(&self) -> bool {
        self.batch.is_some() || self.deliver.is_some()
    }

    /// A new instance in `store`; an export of the wrong type is an error
    /// here, before the guest runs.
    pub async fn instantiate_async(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = T>,
    ) -> wasmtime::Result<Guest> {
        let instance = self.instance_pre.instantiate_async(&mut store).await?;
        let init = instance.get_typed_func(&mut store, self.init)?;
        let run = match &self.run {
            Some(index) => Some(instance.get_typed_func(&mut store, index)?),
            None => None,
        };
        let handle = match &self.handle {
            Some(index) => Some(instance.get_typed_func(&mut store, index)?),
            None => None,
        };
        let batch = match &self.batch {
            Some(index) => Some(instance.get_typed_func(&mut store, index)?),
            None => None,
        };
        let deliver = match &self.deliver {
            Some((one, many)) => Some((
                instance.get_typed_func(&mut store, one)?,
                instance.get_typed_func(&mut store, many)?,
            )),
            None => None,
        };
        Ok(Guest {
            init,
            run,
            handle,
            batch,
            deliver,
        })
    }
}

/// `deliver` and `deliver-batch` of the world `process-peers`.
type Deliver = (
    TypedFunc<(PeerEvent,), ()>,
    TypedFunc<(Vec<PeerEvent>,), ()>,
);

/// A running instance's exports, typed with the records of [`abi`]: events
/// are lowered from the node's shared names. A guest that exports
/// `deliver` gets every event through it (or `deliver-batch`), its source
/// as a slot of the incarnation's peer table (`HostState::peers`).
pub struct Guest {
    init: TypedFunc<(AddressOut,), ()>,
    /// `run` of the world `process-loop`: called once, takes its events.
    run: Option<TypedFunc<(), ()>>,
    handle: Option<TypedFunc<(EventOut,), ()>>,
    batch: Option<TypedFunc<(Vec<EventOut>,), ()>>,
    deliver: Option<Deliver>,
}

impl Guest {
    pub async fn call_init<T: Send>(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = T>,
        our: &Address,
    ) -> wasmtime::Result<()> {
        self.init
            .call_async(&mut store, (our.clone().into(),))
            .await?;
        self.init.post_return_async(&mut store).await
    }

    /// Whether this instance takes its events itself (`run`).
    pub fn loops(&self) -> bool {
        self.run.is_some()
    }

    /// Call `run`; it returns only when the guest gives up (or traps, or
    /// `next-events` ends it).
    pub async fn call_run(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = HostState>,
    ) -> wasmtime::Result<()> {
        let Some(run) = &self.run else {
            anyhow::bail!("the component exports no `run`");
        };
        run.call_async(&mut store, ()).await?;
        run.post_return_async(&mut store).await
    }

    /// Hand `event` to `deliver` (its source placed in the peer table), or
    /// to `handle`.
    pub async fn call_handle(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = HostState>,
        event: Event,
    ) -> wasmtime::Result<()> {
        if let Some((deliver, _)) = &self.deliver {
            let event = store.as_context_mut().data_mut().peers.peer_event(event);
            deliver.call_async(&mut store, (event,)).await?;
            return deliver.post_return_async(&mut store).await;
        }
        let Some(handle) = &self.handle else {
            anyhow::bail!("the component exports no `handle`");
        };
        handle.call_async(&mut store, (event.into(),)).await?;
        handle.post_return_async(&mut store).await
    }

    /// Whether this instance takes batches.
    pub fn batches(&self) -> bool {
        self.batch.is_some() || self.deliver.is_some()
    }

    /// Hand `events` to `deliver-batch` or `handle-batch` in one call; one
    /// by one through `handle` when the component has neither.
    pub async fn call_handle_batch(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = HostState>,
        events: Vec<Event>,
    ) -> wasmtime::Result<()> {
        if let Some((_, deliver)) = &self.deliver {
            let mut cx = store.as_context_mut();
            let peers = &mut cx.data_mut().peers;
            let events: Vec<PeerEvent> = events.into_iter().map(|e| peers.peer_event(e)).collect();
            deliver.call_async(&mut store, (events,)).await?;
            return deliver.post_return_async(&mut store).await;
        }
        match &self.batch {
            Some(func) => {
                let events: Vec<EventOut> = events.into_iter().map(Into::into).collect();
                func.call_async(&mut store, (events,)).await?;
                func.post_return_async(&mut store).await
            }
            None => {
                for event in events {
                    self.call_handle(&mut store, event).await?;
                }
                Ok(())
            }
        }
    }
}

/// WASI p2 plus `kernel`: the part of the linker this module provides
/// ([`super::inbox::linker`] adds `inbox`).
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    add_kernel(&mut linker)?;
    Ok(linker)
}

/// The `kernel` interface, defined function by function rather than
/// through the generated `add_to_linker`, so `send-request` can take its
/// target as [`AddressIn`] (read in place) instead of four new `String`s.
/// The other functions lift the generated records and call the generated
/// `Host` trait, as the generated code would.
fn add_kernel(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use bindings::hearth::process::kernel::Host;
    use wasmtime::StoreContextMut;
    type Cx<'a> = StoreContextMut<'a, HostState>;
    linker.instance(TYPES)?;
    let mut kernel = linker.instance(KERNEL)?;
    kernel.func_wrap("our", |mut cx: Cx<'_>, (): ()| Ok((cx.data_mut().our(),)))?;
    kernel.func_wrap(
        "send-request",
        |mut cx: Cx<'_>,
         (target, request, context, blob): (
            AddressIn,
            wit::Request,
            Option<Vec<u8>>,
            Option<wit::Blob>,
        )| {
            let target = target.resolve(cx.as_context(), cx.data().last_target.as_ref())?;
            let state = cx.data_mut();
            let target = state.target_of(target);
            Ok((state.send(target, request, context, blob),))
        },
    )?;
    kernel.func_wrap(
        "send-response",
        |mut cx: Cx<'_>, (answering, response, blob): (u64, wit::Response, Option<wit::Blob>)| {
            Ok((cx.data_mut().send_response(answering, response, blob),))
        },
    )?;
    kernel.func_wrap("get-state", |mut cx: Cx<'_>, (): ()| {
        Ok((cx.data_mut().get_state(),))
    })?;
    kernel.func_wrap_async("set-state", |mut cx: Cx<'_>, (bytes,): (Vec<u8>,)| {
        Box::new(async move { Ok((cx.data_mut().set_state(bytes).await,)) })
    })?;
    kernel.func_wrap_async("clear-state", |mut cx: Cx<'_>, (): ()| {
        Box::new(async move { Ok((cx.data_mut().clear_state().await,)) })
    })?;
    kernel.func_wrap_async(
        "spawn",
        |mut cx: Cx<'_>, (name, options): (String, wit::SpawnOptions)| {
            Box::new(async move { Ok((cx.data_mut().spawn(name, options).await,)) })
        },
    )?;
    kernel.func_wrap(
        "log",
        |mut cx: Cx<'_>, (level, message): (wit::LogLevel, String)| {
            cx.data_mut().log(level, message);
            Ok(())
        },
    )?;
    Ok(())
}

/// The request being handled, for `inherit`.
#[derive(Debug)]
pub struct Current {
    pub id: u64,
    pub rsvp: Option<Address>,
    pub blob: Option<t::Blob>,
}

/// Store data of one process incarnation.
pub struct HostState {
    pub ctx: Arc<ProcessContext>,
    pub asks: Asks,
    pub current: Option<Current>,
    pub limits: super::stats::Metered,
    /// Epoch ticks the running guest call has run through, for the call
    /// time limit.
    pub call_ticks: u32,
    /// Our registered capabilities, handed to `Kernel::route_from`.
    caps: ProcessCaps,
    /// Which address each slot of the guest's peer table holds (for a
    /// guest that exports `deliver`, or `run`).
    pub peers: Peers,
    /// The mailbox and timers of a guest in `run` (world `process-loop`),
    /// while it runs.
    pub inbox: Option<super::queue::Inbox>,
    /// The last target we sent to: a process usually sends many messages
    /// to the same peer, and reusing its (shared) address saves checking
    /// and allocating the four names per send.
    last_target: Option<Address>,
    /// The routes of our last request and our last response, so that
    /// sending again to the same process skips the kernel's look-ups.
    request_route: RouteMemo,
    response_route: RouteMemo,
    /// The guest's stderr: logged line by line, the last lines kept.
    pub stderr: super::stderr::GuestStderr,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(ctx: Arc<ProcessContext>) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(ctx.services.kernel.limits().max_memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let limits = super::stats::Metered::new(limits, ctx.services.stats.open(&ctx.spec.id));
        let stderr = super::stderr::GuestStderr::default();
        Self {
            caps: ctx.spec.caps(),
            ctx,
            asks: Asks::default(),
            current: None,
            limits,
            call_ticks: 0,
            peers: Peers::default(),
            inbox: None,
            last_target: None,
            request_route: RouteMemo::default(),
            response_route: RouteMemo::default(),
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            stderr,
            table: ResourceTable::new(),
        }
    }

    fn address(&self) -> &Address {
        &self.ctx.address
    }

    /// The address of a target read from guest memory; a new valid one
    /// becomes the last target.
    fn target_of(&mut self, target: Target) -> Result<Address, SendError> {
        match target {
            Target::Last(address) => Ok(address),
            Target::New(address) => {
                self.last_target = Some(address.clone());
                Ok(address)
            }
            Target::Bad(address, reason) => {
                Err(SendError::new(SendErrorKind::BadAddress, &address, reason))
            }
        }
    }

    fn error(
        &self,
        kind: SendErrorKind,
        target: &Address,
        detail: impl Into<String>,
    ) -> wit::SendError {
        SendError::new(kind, target, detail).into()
    }
}

/// Why a spawn was refused. The WIT result carries a string: it starts
/// with the kind (`bad-name: ...`), so a guest can tell the cases apart.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("bad-name: {0}")]
    BadName(String),
    #[error(transparent)]
    Wasm(#[from] super::ChildWasmError),
    #[error("already-running: {0} is running; a spawn never takes over a process")]
    AlreadyRunning(ProcessId),
    #[error("node-full: the node already runs {0} processes, its limit")]
    NodeFull(usize),
    #[error("start-failed: {0}")]
    Start(#[from] super::StartError),
}

impl HostState {
    /// Check the child's name and wasm path, compile its component on the
    /// blocking pool (a slow compile never holds an async worker), then
    /// start it; the child gets its capabilities only once registered.
    async fn spawn_child(
        &mut self,
        name: String,
        options: wit::SpawnOptions,
    ) -> Result<wit::ProcessId, SpawnError> {
        let parent = &self.ctx.address.process;
        let id = ProcessId::new(&name, &parent.package, &parent.publisher);
        if !id.is_valid() {
            let shown: String = name.chars().take(64).collect();
            return Err(SpawnError::BadName(format!(
                "{shown:?}: names are [a-z0-9-]"
            )));
        }
        let services = self.ctx.services.clone();
        if services.kernel.is_running(&id) {
            return Err(SpawnError::AlreadyRunning(id));
        }
        let on_exit = match options.on_exit {
            wit::OnExit::None => t::OnExit::None,
            wit::OnExit::Restart => t::OnExit::Restart,
            wit::OnExit::Requests(list) => t::OnExit::Requests(
                list.into_iter()
                    .map(|r| {
                        Address::try_from(r.target)
                            .map(|target| t::ExitRequest {
                                target,
                                body: r.request.body,
                            })
                            .map_err(|(_, reason)| SpawnError::BadName(reason))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let package = self.ctx.spec.package.clone();
        let wasm_path = options.wasm_path;
        let compile = move || super::prepare_child_wasm(&services, &package, &wasm_path);
        let wasm_path = tokio::task::spawn_blocking(compile)
            .await
            .map_err(|e| SpawnError::BadName(format!("compile task failed: {e}")))??;
        let request = SpawnRequest {
            id: id.clone(),
            wasm_path,
            on_exit,
            public: options.public,
            networking: options.request_networking,
        };
        super::spawn_child(&self.ctx, request).map_err(|e| match e {
            super::StartError::AlreadyRunning(_) => SpawnError::AlreadyRunning(id.clone()),
            super::StartError::NodeFull(n) => SpawnError::NodeFull(n),
            other => SpawnError::Start(other),
        })?;
        Ok((&id).into())
    }
}

impl HostState {
    /// `send-request` to a target already read and checked.
    // The error is the WIT record handed back to the guest as it is.
    #[allow(clippy::result_large_err)]
    fn send(
        &mut self,
        target: Result<Address, SendError>,
        request: wit::Request,
        context: Option<Vec<u8>>,
        blob: Option<wit::Blob>,
    ) -> Result<u64, wit::SendError> {
        let target = target.map_err(wit::SendError::from)?;
        let kernel = &self.ctx.services.kernel;
        let mut blob: Option<t::Blob> = blob.map(Into::into);
        let current = if request.inherit {
            self.current.as_ref()
        } else {
            None
        };
        if blob.is_none() {
            blob = current.and_then(|c| c.blob.clone());
        }
        // inherit without a timeout hands our duty to answer to the target.
        let forward = current
            .filter(|_| request.expects_response.is_none())
            .and_then(|c| c.rsvp.clone().map(|rsvp| (c.id, rsvp)));
        let (id, rsvp) = match &forward {
            Some((id, rsvp)) => (*id, Some(rsvp.clone())),
            None => (
                kernel.next_id(),
                request.expects_response.map(|_| self.address().clone()),
            ),
        };
        if request.expects_response.is_some()
            && self.asks.pending_len() >= kernel.limits().max_pending_asks
        {
            return Err(self.error(
                SendErrorKind::MailboxFull,
                &target,
                format!(
                    "{} requests already await a response; the limit is {}",
                    self.asks.pending_len(),
                    kernel.limits().max_pending_asks
                ),
            ));
        }
        let timeout = request.expects_response;
        let mut message: t::Request = request.into();
        if let Some((id, _)) = &forward {
            // The target owes the answer now, for as long as the asker
            // still waits (at least a millisecond).
            message.expects_response = self.asks.owed_deadline(*id).map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1)
            });
        }
        let km = KernelMessage {
            id,
            source: self.address().clone(),
            target: target.clone(),
            rsvp,
            message: t::Message::Request(message),
            blob,
        };
        kernel
            .route_remembered(km, &self.caps, &mut self.request_route)
            .map_err(wit::SendError::from)?;
        match (forward, timeout) {
            (Some((id, _)), _) => {
                self.asks.take_owed(id);
            }
            (None, Some(ms)) => {
                let deadline = Instant::now() + Duration::from_millis(ms);
                self.asks
                    .add_pending(id, Pending { target, context }, deadline);
            }
            (None, None) => {}
        }
        Ok(id)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for HostState {}

impl bindings::hearth::process::kernel::Host for HostState {
    fn our(&mut self) -> wit::Address {
        self.address().into()
    }

    fn send_request(
        &mut self,
        target: wit::Address,
        request: wit::Request,
        context: Option<Vec<u8>>,
        blob: Option<wit::Blob>,
    ) -> Result<u64, wit::SendError> {
        // The linker's `send-request` reads the target in place (see
        // `add_kernel`); this is the generated trait's path.
        let target = Address::try_from(target)
            .map_err(|(target, reason)| SendError::new(SendErrorKind::BadAddress, &target, reason));
        self.send(target, request, context, blob)
    }

    fn send_response(
        &mut self,
        answering: u64,
        response: wit::Response,
        blob: Option<wit::Blob>,
    ) -> Result<(), wit::SendError> {
        let Some(rsvp) = self.asks.take_owed(answering) else {
            let me = self.address().clone();
            return Err(self.error(
                SendErrorKind::NoAsker,
                &me,
                format!(
                    "request {answering} awaits no answer: it was fire-and-forget, already \
                     answered, forwarded, or its asker stopped waiting"
                ),
            ));
        };
        let km = KernelMessage {
            id: answering,
            source: self.address().clone(),
            target: rsvp.clone(),
            rsvp: None,
            message: t::Message::Response(t::Response {
                body: response.body,
                metadata: response.metadata,
            }),
            blob: blob.map(Into::into),
        };
        let kernel = &self.ctx.services.kernel;
        match kernel.route_remembered(km, &self.caps, &mut self.response_route) {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.kind == SendErrorKind::PayloadTooLarge {
                    // Still owed: the process may answer again, smaller. The
                    // deadline entry is gone, so give it a short grace.
                    let grace = Instant::now() + Duration::from_secs(30);
                    self.asks.add_owed(answering, rsvp, grace);
                }
                Err(e.into())
            }
        }
    }

    fn get_state(&mut self) -> Option<Vec<u8>> {
        match self.ctx.services.state.get(&self.ctx.address.process) {
            Ok(v) => v,
            Err(e) => {
                error!("get-state failed: {e}");
                None
            }
        }
    }

    async fn set_state(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.ctx
            .services
            .state
            .set(&self.ctx.address.process, &bytes)
            .await
            .map_err(|e| e.to_string())
    }

    async fn clear_state(&mut self) -> Result<(), String> {
        self.ctx
            .services
            .state
            .clear(&self.ctx.address.process)
            .await
            .map_err(|e| e.to_string())
    }

    async fn spawn(
        &mut self,
        name: String,
        options: wit::SpawnOptions,
    ) -> Result<wit::ProcessId, String> {
        self.spawn_child(name, options)
            .await
            .map_err(|e| e.to_string())
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let process = &self.ctx.address.process;
        match level {
            wit::LogLevel::Error => error!(%process, "{message}"),
            wit::LogLevel::Warn => warn!(%process, "{message}"),
            wit::LogLevel::Info => info!(%process, "{message}"),
            wit::LogLevel::Debug => debug!(%process, "{message}"),
            wit::LogLevel::Trace => trace!(%process, "{message}"),
        }
    }
}

// Conversions between WIT records and the node's types.

impl From<&ProcessId> for wit::ProcessId {
    fn from(p: &ProcessId) -> Self {
        Self {
            process: String::from(&*p.process),
            package: String::from(&*p.package),
            publisher: String::from(&*p.publisher),
        }
    }
}

impl From<&Address> for wit::Address {
    fn from(a: &Address) -> Self {
        Self {
            node: String::from(&*a.node),
            process: (&a.process).into(),
        }
    }
}

impl TryFrom<wit::Address> for Address {
    /// The address as far as it could be read, and why it is refused.
    type Error = (Address, String);
    /// Checks each part in place (the rules of `Address::from_str`).
    fn try_from(a: wit::Address) -> Result<Self, Self::Error> {
        let p = &a.process;
        super::abi::checked_address(&a.node, &p.process, &p.package, &p.publisher)
    }
}

impl From<wit::Blob> for t::Blob {
    fn from(b: wit::Blob) -> Self {
        Self {
            mime: b.mime,
            bytes: b.bytes,
        }
    }
}

impl From<t::Blob> for wit::Blob {
    fn from(b: t::Blob) -> Self {
        Self {
            mime: b.mime,
            bytes: b.bytes,
        }
    }
}

impl From<wit::Request> for t::Request {
    fn from(r: wit::Request) -> Self {
        Self {
            inherit: r.inherit,
            expects_response: r.expects_response,
            body: r.body,
            metadata: r.metadata,
        }
    }
}

impl From<t::Message> for wit::Message {
    fn from(m: t::Message) -> Self {
        match m {
            t::Message::Request(r) => wit::Message::Request(wit::Request {
                inherit: r.inherit,
                expects_response: r.expects_response,
                body: r.body,
                metadata: r.metadata,
            }),
            t::Message::Response(r) => wit::Message::Response(wit::Response {
                body: r.body,
                metadata: r.metadata,
            }),
        }
    }
}

impl From<SendErrorKind> for wit::SendErrorKind {
    fn from(k: SendErrorKind) -> Self {
        use wit::SendErrorKind as W;
        match k {
            SendErrorKind::UnknownProcess => W::UnknownProcess,
            SendErrorKind::CapabilityMissing => W::CapabilityMissing,
            SendErrorKind::PayloadTooLarge => W::PayloadTooLarge,
            SendErrorKind::MailboxFull => W::MailboxFull,
            SendErrorKind::Timeout => W::Timeout,
            SendErrorKind::Offline => W::Offline,
            SendErrorKind::ProcessExited => W::ProcessExited,
            SendErrorKind::NoAsker => W::NoAsker,
            SendErrorKind::BadAddress => W::BadAddress,
        }
    }
}

impl From<SendError> for wit::SendError {
    fn from(e: SendError) -> Self {
        Self {
            kind: e.kind.into(),
            target: (&e.target).into(),
            detail: e.detail,
        }
    }
}
