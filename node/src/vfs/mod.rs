//! The file service `vfs:distro:sys`: a drive per package under
//! `<home>/vfs/<package:publisher>/`, with create, read, write, append,
//! list, metadata, rename and remove. Large files move in chunks: reads
//! take an offset and a length, writes append; no request holds a whole
//! large file.
//!
//! **Invariant:** every path is made of plain names, and either resolved
//! by [`path::resolve_in`], which refuses absolute paths, `..`/`.` and
//! symlinks leading out of the drive, or (a read) opened by
//! [`path::open_plain`] under the canonical drive with no symlink on the
//! way, which cannot leave it.
//! A process may use its own package's drive, and the drive of a package
//! that granted its package access.

mod now;
mod ops;
mod path;
mod queue;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

pub use ops::tree_bytes;
pub use types::{DirEntry, FileMetadata, VfsError, VfsRequest, VfsResponse};

use crate::kernel::caps::ProcessCaps;
use crate::native::{NativeEndpoint, Now, Reply, ReplyFuture, Service};
use crate::services::Services;
use crate::types::{Address, Blob, KernelMessage, Message, ProcessId, SendError, SendErrorKind};
use ops::Op;
use path::{Drive, Drives};
use queue::{Pushed, Queue};
use rustix::fs::ResolveFlags;

/// Drives live under `<home>/vfs`.
pub const VFS_DIR: &str = "vfs";
/// Largest read chunk; a read asking more gets this much (and less if the
/// node's message limit is lower).
pub const MAX_READ_CHUNK: u64 = 4 * 1024 * 1024;
/// Room left in a message for the body beside a read chunk.
const REPLY_HEADROOM: u64 = 64 * 1024;
const GRANT_KIND: &str = "vfs";

pub fn process_id() -> ProcessId {
    ProcessId::new("vfs", "distro", "sys")
}

/// Register `vfs:distro:sys`. Public: access is checked per drive.
/// Must be called inside the node's tokio runtime.
pub fn start(
    services: &Arc<Services>,
    vfs_dir: PathBuf,
) -> Result<Arc<NativeEndpoint>, crate::kernel::AlreadyRunning> {
    let caps = ProcessCaps {
        public: true,
        networking: false,
        system: false,
    };
    let max_message = services.kernel.limits().max_message_bytes as u64;
    let vfs = Arc::new(Vfs {
        services: services.clone(),
        drives: Drives::new(vfs_dir),
        max_read: MAX_READ_CHUNK.min(max_message.saturating_sub(REPLY_HEADROOM).max(1)),
        queue: Queue::new(),
        endpoint: OnceLock::new(),
        runtime: tokio::runtime::Handle::current(),
    });
    let endpoint = NativeEndpoint::start(
        services,
        process_id(),
        caps,
        Some(Arc::new(VfsService(vfs.clone()))),
    )?;
    let _ = vfs.endpoint.set(Arc::downgrade(&endpoint));
    Ok(endpoint)
}

/// The service as the native endpoint sees it.
struct VfsService(Arc<Vfs>);

/// Requests are taken in their sender's own call ([`Service::handle_now`])
/// into the vfs's ordered [`Queue`], and served one at a time by a
/// blocking task that answers each straight into the asker's mailbox: no
/// task of the native endpoint sits between the asker and the file.
struct Vfs {
    services: Arc<Services>,
    drives: Drives,
    max_read: u64,
    queue: Queue<Job>,
    /// Set once the endpoint is registered; the drain answers through it.
    endpoint: OnceLock<Weak<NativeEndpoint>>,
    runtime: tokio::runtime::Handle,
}

/// A checked request waiting its turn, and where its answer goes.
struct Job {
    work: Work,
    answer: Answer,
}

enum Work {
    Grant {
        owner: String,
        to: String,
    },
    Revoke {
        owner: String,
        to: String,
    },
    File {
        caller: String,
        owner: String,
        pending: Pending,
    },
}

enum Answer {
    /// Routed to the asker (none for a fire-and-forget request).
    Route { rsvp: Option<Address>, id: u64 },
    /// Handed to the native endpoint's worker, which routes it.
    Worker(tokio::sync::oneshot::Sender<Reply>),
}

/// A response, and the bytes of a read.
type Served = (VfsResponse, Option<Vec<u8>>);
type VfsResult = Result<Served, VfsError>;

impl Service for VfsService {
    fn handle_now(&self, km: KernelMessage) -> Now {
        // Before the endpoint is known the drain could not answer.
        if self.0.endpoint.get().is_none() {
            return Now::Later(km);
        }
        let (rsvp, id) = (km.rsvp.clone(), km.id);
        let bytes = km.payload_len();
        let work = match self.0.check(km) {
            Ok(work) => work,
            Err(error) => return Now::Served(Some(reply(Err(error)))),
        };
        let answer = Answer::Route {
            rsvp: rsvp.clone(),
            id,
        };
        let job = match self.0.clone().read_now(Job { work, answer }, bytes) {
            Ok(Some(read)) => return Now::Served(Some(reply(Ok(read)))),
            // Queued first by `read_now`, which could not finish it.
            Ok(None) => return Now::Served(None),
            Err(job) => job,
        };
        if let Err(why) = self.0.clone().take(job, bytes) {
            self.0.refuse(rsvp, id, why);
        }
        Now::Served(None)
    }

    /// Only requests that arrived before the endpoint was known come
    /// here; they join the same queue.
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            let (rsvp, id) = (km.rsvp.clone(), km.id);
            let bytes = km.payload_len();
            let work = match self.0.check(km) {
                Ok(work) => work,
                Err(error) => return Some(reply(Err(error))),
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let answer = Answer::Worker(tx);
            if let Err(why) = self.0.clone().take(Job { work, answer }, bytes) {
                self.0.refuse(rsvp, id, why);
                return None;
            }
            rx.await.ok()
        })
    }
}

/// A reply body `{"Ok": ..}` or `{"Err": ..}`, with the read bytes as
/// the blob.
fn reply(result: VfsResult) -> Reply {
    match result {
        Ok((response, blob)) => Reply {
            body: serde_json::to_vec(&Ok::<_, VfsError>(response)).unwrap_or_default(),
            blob: blob.map(|bytes| Blob { mime: None, bytes }),
        },
        Err(error) => Reply::json(&Err::<VfsResponse, _>(error)),
    }
}

impl Vfs {
    /// Parse and check a request (a local sender, a well-formed drive
    /// name) without touching the disk or the store.
    fn check(&self, km: KernelMessage) -> Result<Work, VfsError> {
        let Message::Request(request) = &km.message else {
            return Err(VfsError::BadRequest("expected a request".into()));
        };
        if *km.source.node != *self.services.kernel.our() {
            return Err(VfsError::BadRequest(
                "only local processes are served".into(),
            ));
        }
        let request: VfsRequest = serde_json::from_slice(&request.body)
            .map_err(|e| VfsError::BadRequest(e.to_string()))?;
        let caller = km.source.process.package_id();
        let blob = km.blob.map(|b| b.bytes);
        let (drive, pending) = match request {
            VfsRequest::Grant { to } => return Ok(Work::Grant { owner: caller, to }),
            VfsRequest::Revoke { to } => return Ok(Work::Revoke { owner: caller, to }),
            VfsRequest::Create { drive, path } => (drive, Pending::One(path, Op::Create)),
            VfsRequest::CreateDir { drive, path } => (drive, Pending::One(path, Op::CreateDir)),
            VfsRequest::Write { drive, path } => {
                let bytes = blob.ok_or(VfsError::MissingBlob)?;
                (drive, Pending::Bytes(path, bytes, Op::Write))
            }
            VfsRequest::Append { drive, path } => {
                let bytes = blob.ok_or(VfsError::MissingBlob)?;
                (drive, Pending::Bytes(path, bytes, Op::Append))
            }
            VfsRequest::Read {
                drive,
                path,
                offset,
                length,
            } => {
                let length = length.unwrap_or(self.max_read).min(self.max_read);
                (drive, Pending::Read(path, offset, length))
            }
            VfsRequest::List { drive, path } => (drive, Pending::One(path, Op::List)),
            VfsRequest::Metadata { drive, path } => (drive, Pending::One(path, Op::Metadata)),
            VfsRequest::Remove { drive, path } => (drive, Pending::One(path, Op::Remove)),
            VfsRequest::Rename { drive, from, to } => (drive, Pending::Two(from, to)),
        };
        let owner = drive_name(&caller, drive)?;
        Ok(Work::File {
            caller,
            owner,
            pending,
        })
    }

    /// Serve a small read of the caller's own drive in its own call, if
    /// nothing is queued or running (so nothing is overtaken) and the
    /// kernel can do it without waiting ([`now::read`]). `Ok(None)`: the
    /// read was tried, could not finish, and is queued first. `Err`: not
    /// tried; the job comes back.
    #[allow(clippy::result_large_err)]
    fn read_now(self: Arc<Self>, job: Job, bytes: usize) -> Result<Option<Served>, Job> {
        let Work::File {
            caller,
            owner,
            pending: Pending::Read(path, offset, length),
        } = &job.work
        else {
            return Err(job);
        };
        if caller != owner || *length > now::READ_NOW_MAX {
            return Err(job);
        }
        let Some(full) = self.drives.now_path(owner, path) else {
            return Err(job);
        };
        if !self.queue.claim_idle() {
            return Err(job);
        }
        match now::read(&full, *offset, *length) {
            Some((response, bytes)) => {
                if self.queue.release() {
                    self.start_drain();
                }
                Ok(Some((response, Some(bytes))))
            }
            None => {
                self.queue.push_first(job, bytes);
                self.start_drain();
                Ok(None)
            }
        }
    }

    /// Queue `job` (starting a drain if none runs); past the queue's
    /// bounds, the reason it was refused.
    fn take(self: Arc<Self>, job: Job, bytes: usize) -> Result<(), String> {
        match self.queue.push(job, bytes) {
            Pushed::Queued => Ok(()),
            Pushed::Claimed => {
                self.start_drain();
                Ok(())
            }
            Pushed::Full(_, why) => Err(why),
        }
    }

    /// Serve queued jobs in order, off the async workers, until the queue
    /// is empty. Only the claim holder calls this.
    fn start_drain(self: Arc<Self>) {
        let runtime = self.runtime.clone();
        runtime.spawn_blocking(move || {
            while let Some(job) = self.queue.next() {
                let result = self.serve(job.work);
                self.answer(job.answer, reply(result));
            }
        });
    }

    /// Do one checked request; blocking.
    fn serve(&self, work: Work) -> VfsResult {
        let state = &self.services.state;
        match work {
            Work::Grant { owner, to } => {
                let granted = state.grant(GRANT_KIND, &owner, "", &to);
                self.runtime.block_on(granted).map_err(io)?;
                Ok((VfsResponse::Ok, None))
            }
            Work::Revoke { owner, to } => {
                let revoked = state.revoke(GRANT_KIND, &owner, "", &to);
                self.runtime.block_on(revoked).map_err(io)?;
                Ok((VfsResponse::Ok, None))
            }
            Work::File {
                caller,
                owner,
                pending,
            } => {
                self.may_use(&caller, &owner)?;
                if let Pending::Read(rel, offset, length) = &pending {
                    if let Some(read) = self.read_plain(&owner, rel, *offset, *length) {
                        return read;
                    }
                }
                let drive = self.drives.open(&owner)?;
                ops::run(pending.resolve(&drive)?, &drive.root)
            }
        }
    }

    /// A read whose file the kernel opens with no symlink anywhere on the
    /// way from the canonical vfs directory ([`path::open_plain`]): one
    /// `openat2` instead of an `lstat` of the drive, one per component and
    /// an `open`, with no gap between the check and the open. `None`
    /// (nothing done) for anything else, which takes the checked path and
    /// gets its usual answer or error.
    fn read_plain(&self, owner: &str, rel: &str, offset: u64, length: u64) -> Option<VfsResult> {
        let full = self.drives.plain_path(owner, rel)?;
        let (file, size) = path::open_plain(&full, ResolveFlags::empty())?;
        let read = ops::read_open(&file, size, offset, length);
        Some(read.map_err(|e| ops::io(Path::new(rel), e)))
    }

    fn answer(&self, answer: Answer, reply: Reply) {
        match answer {
            Answer::Route { rsvp: None, .. } => {}
            Answer::Route {
                rsvp: Some(rsvp),
                id,
            } => match self.endpoint.get().and_then(Weak::upgrade) {
                Some(endpoint) => endpoint.answer(rsvp, id, reply),
                None => tracing::debug!(%rsvp, id, "vfs answer after the endpoint stopped"),
            },
            Answer::Worker(tx) => {
                let _ = tx.send(reply);
            }
        }
    }

    /// Tell the asker its request was not taken; a fire-and-forget one
    /// has nobody to tell, so it is logged.
    fn refuse(&self, rsvp: Option<Address>, id: u64, why: String) {
        let kernel = &self.services.kernel;
        match rsvp {
            Some(rsvp) => {
                let me = kernel.address(&process_id());
                let error = SendError::new(SendErrorKind::MailboxFull, &me, why);
                kernel.fail(&rsvp, id, error);
            }
            None => tracing::warn!("fire-and-forget vfs request dropped: {why}"),
        }
    }

    /// Whether `caller` may use the drive of `owner`: its own, or one
    /// whose owner granted its package access (a store lookup, so it runs
    /// in the blocking task).
    fn may_use(&self, caller: &str, owner: &str) -> Result<(), VfsError> {
        let state = &self.services.state;
        if owner != caller && !state.is_granted(GRANT_KIND, owner, "", caller) {
            return Err(VfsError::Forbidden(owner.to_string()));
        }
        Ok(())
    }
}

/// The owner of the drive `drive` names (default: the caller's package),
/// if it is a well-formed `package:publisher`.
fn drive_name(caller: &str, drive: Option<String>) -> Result<String, VfsError> {
    let owner = drive.unwrap_or_else(|| caller.to_string());
    let valid = owner
        .split_once(':')
        .map(|(pkg, publisher)| ProcessId::new("x", pkg, publisher).is_valid())
        .unwrap_or(false);
    if !valid {
        return Err(VfsError::BadRequest(format!("bad drive name {owner:?}")));
    }
    Ok(owner)
}

/// A request whose paths are not resolved yet.
enum Pending {
    One(String, fn(PathBuf) -> Op),
    Bytes(String, Vec<u8>, fn(PathBuf, Vec<u8>) -> Op),
    Read(String, u64, u64),
    Two(String, String),
}

impl Pending {
    fn resolve(self, drive: &Drive) -> Result<Op, VfsError> {
        let at = |p: &str| path::resolve_in(drive, p);
        Ok(match self {
            Pending::One(p, make) => make(at(&p)?),
            Pending::Bytes(p, bytes, make) => make(at(&p)?, bytes),
            Pending::Read(p, offset, length) => Op::Read {
                path: at(&p)?,
                offset,
                length,
            },
            Pending::Two(from, to) => Op::Rename(at(&from)?, at(&to)?),
        })
    }
}

fn io(e: crate::state::StateError) -> VfsError {
    VfsError::Io(e.to_string())
}
