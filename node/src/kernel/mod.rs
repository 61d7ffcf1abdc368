//! The kernel: the process table and the one function that decides
//! delivery, [`Kernel::route`].
//!
//! **Invariant:** every message between processes passes through
//! `route`, which checks size, address and capabilities and either queues
//! the message in the target's mailbox or returns a typed [`SendError`] to
//! the caller at once. Nothing is dropped silently.

pub mod caps;
pub mod mailbox;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use tracing::debug;

use crate::config::Limits;
use crate::types::{Address, KernelMessage, ProcessId, SendError, SendErrorKind};
use caps::{CapabilityTable, Denied, ProcessCaps};
use mailbox::{Envelope, MailboxTx};

/// A registered endpoint: a WASM process or a native service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub mailbox: MailboxTx,
    pub caps: ProcessCaps,
}

#[derive(Debug, thiserror::Error)]
#[error("process {0} is already running")]
pub struct AlreadyRunning(pub ProcessId);

pub struct Kernel {
    our: String,
    limits: Limits,
    table: RwLock<HashMap<ProcessId, Endpoint>>,
    pub caps: CapabilityTable,
    next_id: AtomicU64,
}

impl Kernel {
    pub fn new(our: impl Into<String>, limits: Limits) -> Self {
        // Correlation ids start at a random point so that ids minted by
        // different nodes (or by this node before a restart) do not meet.
        let mut seed = [0u8; 8];
        let start = match getrandom::fill(&mut seed) {
            Ok(()) => u64::from_le_bytes(seed) >> 2,
            Err(_) => 1,
        };
        Self {
            our: our.into(),
            limits,
            table: RwLock::default(),
            caps: CapabilityTable::default(),
            next_id: AtomicU64::new(start.max(1)),
        }
    }

    /// This node's name.
    pub fn our(&self) -> &str {
        &self.our
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn address(&self, process: &ProcessId) -> Address {
        Address::new(self.our.clone(), process.clone())
    }

    /// A fresh correlation id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn register(&self, id: ProcessId, endpoint: Endpoint) -> Result<(), AlreadyRunning> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.contains_key(&id) {
            return Err(AlreadyRunning(id));
        }
        table.insert(id, endpoint);
        Ok(())
    }

    pub fn unregister(&self, id: &ProcessId) {
        self.table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    pub fn is_running(&self, id: &ProcessId) -> bool {
        self.read_table().contains_key(id)
    }

    /// Every registered endpoint, sorted by id.
    pub fn processes(&self) -> Vec<(ProcessId, ProcessCaps)> {
        let mut all: Vec<_> = self
            .read_table()
            .iter()
            .map(|(id, e)| (id.clone(), e.caps.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ProcessId, Endpoint>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide delivery of one message: queue it in the target's mailbox or
    /// say at once why not.
    pub fn route(&self, km: KernelMessage) -> Result<(), SendError> {
        let fail = |kind, detail: String| Err(SendError::new(kind, &km.target, detail));
        let len = km.payload_len();
        if len > self.limits.max_message_bytes {
            return fail(
                SendErrorKind::PayloadTooLarge,
                format!(
                    "{len} bytes exceed the limit of {} bytes",
                    self.limits.max_message_bytes
                ),
            );
        }
        let table = self.read_table();
        let no_caps = ProcessCaps::default();
        let source_caps = match table.get(&km.source.process) {
            Some(e) if km.source.node == self.our => &e.caps,
            _ => &no_caps,
        };
        if km.target.node != self.our {
            if CapabilityTable::check_network(source_caps) == Err(Denied::Networking) {
                return fail(
                    SendErrorKind::CapabilityMissing,
                    format!("{} lacks the network capability", km.source.process),
                );
            }
            return fail(
                SendErrorKind::Offline,
                format!("node {} is not reachable from {}", km.target.node, self.our),
            );
        }
        let Some(target) = table.get(&km.target.process) else {
            return fail(
                SendErrorKind::UnknownProcess,
                format!("no process {} on {}", km.target.process, self.our),
            );
        };
        if km.is_request() {
            if let Err(denied) = self.caps.check_local(
                &km.source.process,
                source_caps,
                &km.target.process,
                &target.caps,
            ) {
                debug!(source = %km.source, target = %km.target, ?denied, "request refused");
                return fail(
                    SendErrorKind::CapabilityMissing,
                    format!(
                        "{} may not message {}: it is not public and no capability was granted",
                        km.source.process, km.target.process
                    ),
                );
            }
        }
        let mailbox = target.mailbox.clone();
        drop(table);
        mailbox.deliver(Envelope::Message(km)).map_err(|refused| {
            let target = match &refused.envelope {
                Envelope::Message(km) => km.target.clone(),
                Envelope::Failed { error, .. } => error.target.clone(),
            };
            let detail = match refused.kind {
                SendErrorKind::MailboxFull => format!(
                    "mailbox holds {} requests already; retry later",
                    self.limits.mailbox_requests
                ),
                _ => "the process exited".to_string(),
            };
            SendError::new(refused.kind, &target, detail)
        })
    }

    /// Tell the asker `rsvp` that its request `id` failed. If the asker is
    /// gone there is nobody left to tell.
    pub fn fail(&self, rsvp: &Address, id: u64, error: SendError) {
        if rsvp.node != self.our {
            debug!(%rsvp, id, %error, "failure for a remote asker dropped: no network yet");
            return;
        }
        let mailbox = self
            .read_table()
            .get(&rsvp.process)
            .map(|e| e.mailbox.clone());
        match mailbox {
            Some(mailbox) => {
                if mailbox.deliver(Envelope::Failed { id, error }).is_err() {
                    debug!(%rsvp, id, "asker exited before its failure arrived");
                }
            }
            None => debug!(%rsvp, id, "asker gone before its failure arrived"),
        }
    }
}
