//! The injector `rpc:distro:sys`: a native endpoint through which the admin
//! API sends requests on behalf of `kit i` and awaits their answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::debug;

use crate::kernel::caps::ProcessCaps;
use crate::kernel::mailbox::{mailbox, Envelope};
use crate::kernel::Endpoint;
use crate::services::Services;
use crate::types::{Address, KernelMessage, Message, ProcessId, Request, SendError, SendErrorKind};

/// Answers awaited at once through the injector; each is also an HTTP
/// request in flight, so this bounds admin concurrency as well.
const INJECTOR_MAILBOX: usize = 1024;

type Waiter = oneshot::Sender<Result<KernelMessage, SendError>>;

pub struct Injector {
    address: Address,
    services: Arc<Services>,
    waiters: Mutex<HashMap<u64, Waiter>>,
}

impl Injector {
    pub fn process_id() -> ProcessId {
        ProcessId::new("rpc", "distro", "sys")
    }

    /// Register the endpoint and start the task that matches answers to
    /// waiting callers.
    pub fn start(services: &Arc<Services>) -> Arc<Self> {
        let (tx, mut rx) = mailbox(INJECTOR_MAILBOX);
        let caps = ProcessCaps {
            public: false,
            networking: true,
            system: true,
        };
        let id = Self::process_id();
        // A fresh kernel has no endpoint of this name.
        let _ = services
            .kernel
            .register(id.clone(), Endpoint { mailbox: tx, caps });
        let injector = Arc::new(Self {
            address: services.kernel.address(&id),
            services: services.clone(),
            waiters: Mutex::default(),
        });
        let weak = Arc::downgrade(&injector);
        tokio::spawn(async move {
            while let Some(envelope) = rx.recv().await {
                let Some(injector) = weak.upgrade() else {
                    break;
                };
                injector.on_envelope(envelope);
            }
        });
        injector
    }

    fn on_envelope(&self, envelope: Envelope) {
        let (id, result) = match envelope {
            Envelope::Message(km) if !km.is_request() => (km.id, Ok(km)),
            Envelope::Message(km) => {
                if let Some(rsvp) = &km.rsvp {
                    let error = SendError::new(
                        SendErrorKind::UnknownProcess,
                        &self.address,
                        "the injector accepts no requests",
                    );
                    self.services.kernel.fail(rsvp, km.id, error);
                }
                return;
            }
            Envelope::Failed { id, error } => (id, Err(error)),
        };
        match self.take_waiter(id) {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => debug!(
                id,
                "answer for an injected request nobody awaits; discarded"
            ),
        }
    }

    fn take_waiter(&self, id: u64) -> Option<Waiter> {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }

    /// Send `body` to `target`. With a timeout, wait for the answer;
    /// without, return once the message is accepted.
    pub async fn inject(
        &self,
        target: Address,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<(u64, Option<KernelMessage>), SendError> {
        let kernel = &self.services.kernel;
        let id = kernel.next_id();
        let km = KernelMessage {
            id,
            source: self.address.clone(),
            target: target.clone(),
            rsvp: timeout.map(|_| self.address.clone()),
            message: Message::Request(Request {
                inherit: false,
                expects_response: timeout.map(|t| t.as_millis() as u64),
                body,
                metadata: None,
            }),
            blob: None,
        };
        let Some(timeout) = timeout else {
            return kernel.route(km).map(|()| (id, None));
        };
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if let Err(e) = kernel.route(km) {
            self.take_waiter(id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer.map(|km| (id, Some(km))),
            Ok(Err(_)) => Err(SendError::new(
                SendErrorKind::Offline,
                &target,
                "the node is shutting down",
            )),
            Err(_) => {
                self.take_waiter(id);
                Err(SendError::new(
                    SendErrorKind::Timeout,
                    &target,
                    format!("no response within {} ms", timeout.as_millis()),
                ))
            }
        }
    }
}
