//! The kernel: the process table and the one function that decides
//! delivery, [`Kernel::route`].
//!
//! **Invariant:** every message between processes passes through
//! `route`, which checks size, address and capabilities and either queues
//! the message in the target's mailbox or returns a typed [`SendError`] to
//! the caller at once. Nothing is dropped silently.

pub mod caps;
mod ids;
pub mod mailbox;
pub mod trace;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

/// The hash map of the kernel's hot tables: foldhash, seeded per map, in
/// place of std's SipHash (keys are process ids and correlation ids, looked
/// up on every message).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// The set of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

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

/// An endpoint as the table keeps it: the sender shared, so a routing call
/// takes one reference (one atomic add and one subtract) to push outside
/// the table's lock, where cloning the sender itself took several.
struct Entry {
    mailbox: Arc<MailboxTx>,
    caps: ProcessCaps,
}

impl From<Endpoint> for Entry {
    fn from(endpoint: Endpoint) -> Self {
        Self {
            mailbox: Arc::new(endpoint.mailbox),
            caps: endpoint.caps,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("process {0} is already running")]
pub struct AlreadyRunning(pub ProcessId);

/// Why a guest process could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    #[error("node-full: the node already runs {0} processes, its `max_processes` limit")]
    NodeFull(usize),
}

pub struct Kernel {
    our: Arc<str>,
    limits: Limits,
    table: RwLock<FastMap<ProcessId, Entry>>,
    /// Changes to `table` so far (register, unregister): with the
    /// capability table's revocations, what a [`RouteMemo`] is checked
    /// against.
    table_changes: AtomicU64,
    pub caps: CapabilityTable,
    ids: ids::IdMinter,
    /// Counters rendered at `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The message tap behind `kit m` (one atomic load when unwatched).
    pub trace: Arc<trace::Tap>,
    /// The network, for targets on other nodes.
    remote: std::sync::OnceLock<Arc<dyn Remote>>,
}

/// How the kernel hands messages to other nodes (implemented by `net`).
pub trait Remote: Send + Sync {
    /// Send to a remote target; errors the network can see at once come
    /// back here, later ones arrive as failures.
    fn send(&self, km: KernelMessage) -> Result<(), SendError>;
    /// Tell a remote asker that its request failed here.
    fn fail(&self, rsvp: &Address, id: u64, error: SendError);
}

impl Kernel {
    pub fn new(our: impl Into<Arc<str>>, limits: Limits) -> Self {
        Self {
            our: our.into(),
            limits,
            table: RwLock::default(),
            table_changes: AtomicU64::new(0),
            caps: CapabilityTable::default(),
            ids: ids::IdMinter::new(),
            metrics: crate::metrics::Metrics::default(),
            trace: Arc::default(),
            remote: std::sync::OnceLock::new(),
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

    /// A fresh correlation id: unique for this boot and not guessable
    /// from the ids a peer has seen.
    pub fn next_id(&self) -> u64 {
        self.ids.next()
    }

    pub fn register(&self, id: ProcessId, endpoint: Endpoint) -> Result<(), AlreadyRunning> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.contains_key(&id) {
            return Err(AlreadyRunning(id));
        }
        table.insert(id, endpoint.into());
        self.table_changed();
        Ok(())
    }

    /// [`Kernel::register`] for guest processes, which installs and spawns
    /// can create without end: refused past `Limits::max_processes`,
    /// checked under the table's lock so racing spawns cannot pass it.
    pub fn register_within_limit(
        &self,
        id: ProcessId,
        endpoint: Endpoint,
    ) -> Result<(), RegisterError> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.contains_key(&id) {
            return Err(AlreadyRunning(id).into());
        }
        if table.len() >= self.limits.max_processes {
            return Err(RegisterError::NodeFull(table.len()));
        }
        table.insert(id, endpoint.into());
        self.table_changed();
        Ok(())
    }

    pub fn unregister(&self, id: &ProcessId) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table.remove(id);
        self.table_changed();
    }

    /// Counted under the table's write lock, so a routing call that finds
    /// the table changed also finds the count moved (and its memo stale).
    fn table_changed(&self) {
        self.table_changes.fetch_add(1, Ordering::Release);
    }

    /// Moves whenever a route a [`RouteMemo`] holds could have changed: an
    /// endpoint registered or gone, or a holder's capabilities revoked.
    /// (Grants only add: a route allowed stays allowed until a revocation.)
    fn routes_generation(&self) -> u64 {
        self.table_changes
            .load(Ordering::Acquire)
            .wrapping_add(self.caps.revocations())
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

    /// Every registered endpoint with its mailbox depth (queued requests,
    /// queued bytes), sorted by id.
    pub fn process_depths(&self) -> Vec<(ProcessId, ProcessCaps, usize, usize)> {
        let mut all: Vec<_> = self
            .read_table()
            .iter()
            .map(|(id, e)| {
                let (requests, bytes) = e.mailbox.depth();
                (id.clone(), e.caps.clone(), requests, bytes)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The capabilities of a registered endpoint.
    pub fn caps_of(&self, id: &ProcessId) -> Option<ProcessCaps> {
        self.read_table().get(id).map(|e| e.caps.clone())
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, FastMap<ProcessId, Entry>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide delivery of one message: queue it in the target's mailbox or
    /// say at once why not. The sender's capabilities are looked up in the
    /// process table.
    pub fn route(&self, km: KernelMessage) -> Result<(), SendError> {
        let result = self.route_with(km, None, None);
        self.metrics.route_result(&result);
        result
    }

    /// [`Kernel::route`] for a sender that is a registered process of this
    /// node and passes its own registered capabilities, which saves a
    /// table lookup per message. The decision is the same.
    pub fn route_from(
        &self,
        km: KernelMessage,
        source_caps: &ProcessCaps,
    ) -> Result<(), SendError> {
        let result = self.route_with(km, Some(source_caps), None);
        self.metrics.route_result(&result);
        result
    }

    /// [`Kernel::route_from`] for a sender that keeps a [`RouteMemo`]
    /// (one per kind of message it sends, for the life of its
    /// capabilities): a message to the target it remembers, while no
    /// endpoint came or went and no capability was revoked, skips the
    /// process table and the capability look-ups. The decision is the
    /// same.
    pub fn route_remembered(
        &self,
        km: KernelMessage,
        source_caps: &ProcessCaps,
        memo: &mut RouteMemo,
    ) -> Result<(), SendError> {
        let result = match memo.route_for(&km, self.routes_generation()) {
            Some(mailbox) => {
                self.trace.message(&km);
                match self.check_size(&km) {
                    Ok(()) => self.deliver_to(&mailbox, km),
                    Err(e) => Err(e),
                }
            }
            None => self.route_with(km, Some(source_caps), Some(memo)),
        };
        self.metrics.route_result(&result);
        result
    }

    fn check_size(&self, km: &KernelMessage) -> Result<(), SendError> {
        let len = km.payload_len();
        if len > self.limits.max_message_bytes {
            return Err(SendError::new(
                SendErrorKind::PayloadTooLarge,
                &km.target,
                format!(
                    "{len} bytes exceed the limit of {} bytes",
                    self.limits.max_message_bytes
                ),
            ));
        }
        Ok(())
    }

    fn route_with(
        &self,
        km: KernelMessage,
        known_caps: Option<&ProcessCaps>,
        memo: Option<&mut RouteMemo>,
    ) -> Result<(), SendError> {
        self.trace.message(&km);
        let fail = |kind, detail: String| Err(SendError::new(kind, &km.target, detail));
        self.check_size(&km)?;
        // Read before the table: a change after this read moves the
        // generation past what the memo keeps.
        let generation = memo.is_some().then(|| self.routes_generation());
        let table = self.read_table();
        let no_caps = ProcessCaps::default();
        let source_caps = match known_caps {
            Some(caps) => caps,
            _ => match table.get(&km.source.process) {
                Some(e) if km.source.node == self.our => &e.caps,
                _ => &no_caps,
            },
        };
        if km.target.node != self.our {
            if CapabilityTable::check_network(source_caps) == Err(Denied::Networking) {
                return fail(
                    SendErrorKind::CapabilityMissing,
                    format!("{} lacks the network capability", km.source.process),
                );
            }
            drop(table);
            return match self.remote.get() {
                Some(remote) => remote.send(km),
                None => fail(
                    SendErrorKind::Offline,
                    format!("node {} has no network", self.our),
                ),
            };
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
        let mailbox = Arc::clone(&target.mailbox);
        drop(table);
        if let (Some(memo), Some(generation)) = (memo, generation) {
            memo.remember(&km, generation, &mailbox);
        }
        self.deliver_to(&mailbox, km)
    }

    fn deliver_to(&self, mailbox: &MailboxTx, km: KernelMessage) -> Result<(), SendError> {
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

    /// Deliver a message that arrived from another node (already checked
    /// to come from the node it names, and, for an answer, to answer a
    /// request awaited from that node). A request needs its target to hold
    /// the network capability itself: being a system service is not
    /// enough, since services trust the sender's process id.
    pub fn deliver_from_network(&self, km: KernelMessage) -> Result<(), SendError> {
        if km.target.node != self.our {
            return Err(SendError::new(
                SendErrorKind::BadAddress,
                &km.target,
                format!("this node is {}, not {}", self.our, km.target.node),
            ));
        }
        if km.is_request() {
            if let Some(caps) = self.caps_of(&km.target.process) {
                if CapabilityTable::accepts_network(&caps) == Err(Denied::Networking) {
                    return Err(SendError::new(
                        SendErrorKind::CapabilityMissing,
                        &km.target,
                        format!(
                            "{} does not accept messages from other nodes",
                            km.target.process
                        ),
                    ));
                }
            }
        }
        // The sender is remote: no local capabilities, and none needed
        // beyond the target's network capability checked above.
        let system = ProcessCaps {
            system: true,
            ..ProcessCaps::default()
        };
        let result = self.route_with(km, Some(&system), None);
        self.metrics.route_result(&result);
        result
    }

    /// Attach the network. Set once at boot.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// Tell the asker `rsvp` that its request `id` failed. If the asker is
    /// gone there is nobody left to tell.
    pub fn fail(&self, rsvp: &Address, id: u64, error: SendError) {
        self.metrics.error(error.kind);
        self.trace.failure(rsvp, id, &error);
        if rsvp.node != self.our {
            match self.remote.get() {
                Some(remote) => remote.fail(rsvp, id, error),
                None => debug!(%rsvp, id, %error, "failure for a remote asker dropped: no network"),
            }
            return;
        }
        let mailbox = self
            .read_table()
            .get(&rsvp.process)
            .map(|e| Arc::clone(&e.mailbox));
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

/// A sender's memo of its last local route: the target, its mailbox, and
/// whether requests to it were allowed, valid while the kernel's routes
/// generation stays where it was when the route was looked up. Kept by a
/// process for its own sends ([`Kernel::route_remembered`]); a process
/// usually sends many messages to the same peer.
#[derive(Debug, Default)]
pub struct RouteMemo {
    last: Option<Remembered>,
}

#[derive(Debug)]
struct Remembered {
    generation: u64,
    target: Address,
    /// Weak: a memo never keeps a gone endpoint's sender alive (its
    /// receiver ends when the last sender goes).
    mailbox: Weak<MailboxTx>,
    /// A request to `target` passed the capability check (only a response
    /// was routed otherwise, which needs none).
    requests: bool,
}

impl RouteMemo {
    /// The mailbox to deliver `km` to, if this memo decides its route.
    fn route_for(&self, km: &KernelMessage, generation: u64) -> Option<Arc<MailboxTx>> {
        let last = self.last.as_ref()?;
        let fits = last.generation == generation
            && last.target == km.target
            && (last.requests || !km.is_request());
        if fits {
            last.mailbox.upgrade()
        } else {
            None
        }
    }

    /// Keep the route `km` just passed (local, and allowed).
    fn remember(&mut self, km: &KernelMessage, generation: u64, mailbox: &Arc<MailboxTx>) {
        let requests = km.is_request();
        if let Some(last) = &mut self.last {
            if last.generation == generation && last.target == km.target {
                last.requests |= requests;
                return;
            }
        }
        self.last = Some(Remembered {
            generation,
            target: km.target.clone(),
            mailbox: Arc::downgrade(mailbox),
            requests,
        });
    }
}

#[cfg(test)]
#[path = "memo_tests.rs"]
mod memo_tests;
