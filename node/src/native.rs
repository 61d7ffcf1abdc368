//! Native endpoints: parts of the node addressed like processes
//! (`name:distro:sys`), such as the admin injector and the runtime services.
//! One shared loop for all of them: each service only implements
//! [`Service::handle`].
//!
//! An endpoint can serve requests and ask other processes. Answers never
//! wait behind a request being served: the mailbox's answer hook hands
//! each response or failure to the caller awaiting it in the sender's own
//! call, with no task between (an HTTP request's answer goes from the
//! process's `respond` straight to the axum handler). The *dispatcher*
//! reads the mailbox and passes requests to the *worker*, which serves
//! them one at a time, in arrival order.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn, Instrument};

use crate::kernel::caps::ProcessCaps;
use crate::kernel::mailbox::{mailbox, AnswerHook, Envelope};
use crate::kernel::{Endpoint, FastMap};
use crate::services::Services;
use crate::types::{
    Address, Blob, KernelMessage, Message, ProcessId, Request, Response, SendError, SendErrorKind,
};

/// Requests accepted from the mailbox but not yet served. Past this the
/// asker gets `mailbox-full`; the mailbox itself admits
/// `Limits::mailbox_requests` more.
pub const SERVICE_BACKLOG: usize = 1024;
/// Payload bytes of the requests in a service's backlog. Past this the
/// asker gets `mailbox-full`: 64 MiB is four requests of the default
/// 16 MiB message limit, enough to keep a worker busy, while a flood of
/// large writes cannot pile up without bound. One request is always
/// accepted into an empty backlog, whatever its size.
pub const SERVICE_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// What a service answers: a body and an optional blob. `None` means the
/// request needs no answer (fire-and-forget requests get none anyway).
pub struct Reply {
    pub body: Vec<u8>,
    pub blob: Option<Blob>,
}

impl Reply {
    pub fn json<T: serde::Serialize>(value: &T) -> Self {
        Self {
            body: serde_json::to_vec(value).unwrap_or_else(|e| {
                format!(r#"{{"error":"cannot encode the reply: {e}"}}"#).into_bytes()
            }),
            blob: None,
        }
    }
}

pub type ReplyFuture<'a> = Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>>;

/// A runtime service. `handle` gets each request in arrival order.
pub trait Service: Send + Sync + 'static {
    fn handle(&self, request: KernelMessage) -> ReplyFuture<'_>;

    /// Serve `request` at once, in its sender's own `route` call, if it
    /// needs no waiting (no I/O, no await, only short locks that are never
    /// held while sending to this endpoint); it is then never queued.
    /// Give it back ([`Now::Later`]) to have it queued for [`Service::handle`]. A service
    /// must serve all of one sender's requests here or none, so that each
    /// sender's requests keep their order.
    fn handle_now(&self, request: KernelMessage) -> Now {
        Now::Later(request)
    }
}

/// What [`Service::handle_now`] did with a request.
// The message goes back by value: boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub enum Now {
    /// Served; the reply, if any, goes back to the sender.
    Served(Option<Reply>),
    /// Not served in the sender's call: queued for [`Service::handle`].
    Later(KernelMessage),
}

type Waiter = oneshot::Sender<Result<KernelMessage, SendError>>;

/// The callers awaiting an answer, by correlation id; shared by the
/// endpoint and its mailbox's answer hook.
#[derive(Default)]
struct Waiters(Mutex<FastMap<u64, Waiter>>);

impl Waiters {
    fn insert(&self, id: u64, waiter: Waiter) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, waiter);
    }

    fn take(&self, id: u64) -> Option<Waiter> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }

    /// Hand an answer to its caller; an answer nobody awaits (late, or
    /// a duplicate) is dropped here. Requests come back untouched.
    fn answer(&self, envelope: Envelope) -> Option<Envelope> {
        let (id, result) = match envelope {
            Envelope::Message(km) if km.is_request() => return Some(Envelope::Message(km)),
            Envelope::Message(km) => (km.id, Ok(km)),
            Envelope::Failed { id, error } => (id, Err(error)),
        };
        match self.take(id) {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => debug!(id, "answer nobody awaits (late or duplicate); discarded"),
        }
        None
    }
}

/// What a native endpoint takes at delivery, in the sender's own call
/// (the mailbox's answer hook): answers, handed to their callers, and the
/// requests its service serves at once ([`Service::handle_now`]).
/// It holds the endpoint weakly: the kernel's table holds the hook.
struct Inline {
    waiters: Arc<Waiters>,
    service: Option<Arc<dyn Service>>,
    endpoint: Arc<OnceLock<Weak<NativeEndpoint>>>,
}

impl Inline {
    fn take(&self, envelope: Envelope) -> Option<Envelope> {
        let km = match envelope {
            Envelope::Message(km) if km.is_request() => km,
            answer => return self.waiters.answer(answer),
        };
        let (Some(service), Some(endpoint)) =
            (&self.service, self.endpoint.get().and_then(Weak::upgrade))
        else {
            return Some(Envelope::Message(km));
        };
        let (id, rsvp) = (km.id, km.rsvp.clone());
        match service.handle_now(km) {
            Now::Served(reply) => {
                if let (Some(rsvp), Some(reply)) = (rsvp, reply) {
                    endpoint.answer(rsvp, id, reply);
                }
                None
            }
            Now::Later(km) => Some(Envelope::Message(km)),
        }
    }
}

pub struct NativeEndpoint {
    address: Address,
    services: Arc<Services>,
    waiters: Arc<Waiters>,
    /// Payload bytes of the requests queued for the worker.
    backlog_bytes: AtomicUsize,
}

impl NativeEndpoint {
    /// Register `id` with the kernel and start its tasks. Without a
    /// service, requests to it fail with `unknown-process`.
    pub fn start(
        services: &Arc<Services>,
        id: ProcessId,
        caps: ProcessCaps,
        service: Option<Arc<dyn Service>>,
    ) -> Result<Arc<Self>, crate::kernel::AlreadyRunning> {
        let limits = services.kernel.limits();
        let (tx, mut rx) = mailbox(limits.mailbox_requests, limits.mailbox_bytes);
        let waiters = Arc::new(Waiters::default());
        let me: Arc<OnceLock<Weak<Self>>> = Arc::default();
        let hook = Inline {
            waiters: waiters.clone(),
            service: service.clone(),
            endpoint: me.clone(),
        };
        let tx = tx.with_answer_hook(AnswerHook(Arc::new(move |e| hook.take(e))));
        services
            .kernel
            .register(id.clone(), Endpoint { mailbox: tx, caps })?;
        let endpoint = Arc::new(Self {
            address: services.kernel.address(&id),
            services: services.clone(),
            waiters,
            backlog_bytes: AtomicUsize::new(0),
        });
        let _ = me.set(Arc::downgrade(&endpoint));
        let (work_tx, work_rx) = mpsc::channel(SERVICE_BACKLOG);
        if let Some(service) = service {
            let worker = endpoint.clone();
            tokio::spawn(
                worker
                    .serve(service, work_rx)
                    .instrument(tracing::info_span!("service", %id)),
            );
        }
        let weak = Arc::downgrade(&endpoint);
        tokio::spawn(async move {
            while let Some(envelope) = rx.recv().await {
                let Some(endpoint) = weak.upgrade() else {
                    break;
                };
                endpoint.dispatch(envelope, &work_tx);
            }
        });
        Ok(endpoint)
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Requests go to the worker. Every delivery passes the answer hook,
    /// which takes answers before they are queued, so none is expected
    /// here; one that did arrive would still reach its caller.
    fn dispatch(&self, envelope: Envelope, work_tx: &mpsc::Sender<KernelMessage>) {
        if let Some(Envelope::Message(km)) = self.waiters.answer(envelope) {
            self.enqueue(km, work_tx);
        }
    }

    /// Queue a request for the worker, within [`SERVICE_BACKLOG`] requests
    /// and [`SERVICE_BACKLOG_BYTES`]; past either the asker gets
    /// `mailbox-full` at once.
    fn enqueue(&self, km: KernelMessage, work_tx: &mpsc::Sender<KernelMessage>) {
        let len = km.payload_len();
        let queued = self.backlog_bytes.fetch_add(len, Ordering::AcqRel);
        if queued > 0 && queued.saturating_add(len) > SERVICE_BACKLOG_BYTES {
            self.backlog_bytes.fetch_sub(len, Ordering::AcqRel);
            let detail = format!(
                "the service is overloaded ({queued} bytes queued, the limit is \
                 {SERVICE_BACKLOG_BYTES}); retry later"
            );
            return self.refuse(&km, SendErrorKind::MailboxFull, detail);
        }
        if let Err(e) = work_tx.try_send(km) {
            self.backlog_bytes.fetch_sub(len, Ordering::AcqRel);
            let (kind, km, detail) = match e {
                mpsc::error::TrySendError::Full(km) => (
                    SendErrorKind::MailboxFull,
                    km,
                    format!("the service is overloaded ({SERVICE_BACKLOG} requests queued); retry later"),
                ),
                mpsc::error::TrySendError::Closed(km) => (
                    SendErrorKind::UnknownProcess,
                    km,
                    "this endpoint serves no requests".to_string(),
                ),
            };
            self.refuse(&km, kind, detail);
        }
    }

    /// Tell the asker of `km` why it is not served; a fire-and-forget
    /// request has nobody to tell, so it is logged.
    fn refuse(&self, km: &KernelMessage, kind: SendErrorKind, detail: String) {
        match &km.rsvp {
            Some(rsvp) => {
                let error = SendError::new(kind, &self.address, detail);
                self.services.kernel.fail(rsvp, km.id, error);
            }
            None => {
                warn!(source = %km.source, kind = kind.as_str(), "fire-and-forget request dropped: {detail}")
            }
        }
    }

    async fn serve(
        self: Arc<Self>,
        service: Arc<dyn Service>,
        mut work_rx: mpsc::Receiver<KernelMessage>,
    ) {
        while let Some(km) = work_rx.recv().await {
            self.backlog_bytes
                .fetch_sub(km.payload_len(), Ordering::AcqRel);
            let (id, rsvp) = (km.id, km.rsvp.clone());
            let reply = service.handle(km).await;
            if let (Some(rsvp), Some(reply)) = (rsvp, reply) {
                self.answer(rsvp, id, reply);
            }
        }
    }

    /// Answer request `id` of `rsvp`; a reply the kernel refuses (larger
    /// than `Limits::max_message_bytes`, or the asker's mailbox full)
    /// reaches the asker as that typed failure, never only as a log line.
    pub fn answer(&self, rsvp: Address, id: u64, reply: Reply) {
        let Err(e) = self.respond(rsvp.clone(), id, reply) else {
            return;
        };
        match e.kind {
            SendErrorKind::UnknownProcess | SendErrorKind::ProcessExited => {
                debug!(%rsvp, id, %e, "asker gone before the reply")
            }
            kind => {
                warn!(%rsvp, id, %e, "service reply refused; the asker gets the failure");
                let detail = format!("the reply was refused: {}", e.detail);
                let error = SendError::new(kind, &self.address, detail);
                self.services.kernel.fail(&rsvp, id, error);
            }
        }
    }

    /// Answer request `id` of `rsvp`.
    pub fn respond(&self, rsvp: Address, id: u64, reply: Reply) -> Result<(), SendError> {
        self.services.kernel.route(KernelMessage {
            id,
            source: self.address.clone(),
            target: rsvp,
            rsvp: None,
            message: Message::Response(Response {
                body: reply.body,
                metadata: None,
            }),
            blob: reply.blob,
        })
    }

    fn request(
        &self,
        id: u64,
        target: Address,
        body: Vec<u8>,
        blob: Option<Blob>,
        timeout: Option<Duration>,
    ) -> KernelMessage {
        KernelMessage {
            id,
            source: self.address.clone(),
            target,
            rsvp: timeout.map(|_| self.address.clone()),
            message: Message::Request(Request {
                inherit: false,
                expects_response: timeout.map(|t| t.as_millis() as u64),
                body,
                metadata: None,
            }),
            blob,
        }
    }

    /// Fire-and-forget. Returns the correlation id once accepted.
    pub fn tell(
        &self,
        target: Address,
        body: Vec<u8>,
        blob: Option<Blob>,
    ) -> Result<u64, SendError> {
        let id = self.services.kernel.next_id();
        self.services
            .kernel
            .route(self.request(id, target, body, blob, None))
            .map(|()| id)
    }

    /// Send a request and await its answer for at most `timeout`. Returns
    /// the correlation id and the response message.
    pub async fn ask(
        &self,
        target: Address,
        body: Vec<u8>,
        blob: Option<Blob>,
        timeout: Duration,
    ) -> Result<(u64, KernelMessage), SendError> {
        let kernel = &self.services.kernel;
        let id = kernel.next_id();
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(id, tx);
        if let Err(e) = kernel.route(self.request(id, target.clone(), body, blob, Some(timeout))) {
            self.waiters.take(id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer.map(|km| (id, km)),
            Ok(Err(_)) => Err(SendError::new(
                SendErrorKind::Offline,
                &target,
                "the node is shutting down",
            )),
            Err(_) => {
                self.waiters.take(id);
                Err(SendError::new(
                    SendErrorKind::Timeout,
                    &target,
                    format!("no response within {} ms", timeout.as_millis()),
                ))
            }
        }
    }
}
