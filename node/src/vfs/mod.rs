//! The file service `vfs:distro:sys`: a drive per package under
//! `<home>/vfs/<package:publisher>/`, with create, read, write, append,
//! list, metadata, rename and remove. Large files move in chunks: reads
//! take an offset and a length, writes append; no request holds a whole
//! large file.
//!
//! **Invariant:** every path is resolved by [`path::resolve`], which
//! refuses absolute paths, `..`/`.` and symlinks leading out of the drive.
//! A process may use its own package's drive, and the drive of a package
//! that granted its package access.

mod ops;
mod path;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

pub use ops::tree_bytes;
pub use types::{DirEntry, FileMetadata, VfsError, VfsRequest, VfsResponse};

use crate::kernel::caps::ProcessCaps;
use crate::native::{NativeEndpoint, Reply, ReplyFuture, Service};
use crate::services::Services;
use crate::types::{Blob, KernelMessage, Message, ProcessId};
use ops::Op;
use path::{Drive, Drives};

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
    let service = Arc::new(VfsService {
        services: services.clone(),
        drives: Arc::new(Drives::new(vfs_dir)),
        max_read: MAX_READ_CHUNK.min(max_message.saturating_sub(REPLY_HEADROOM).max(1)),
    });
    NativeEndpoint::start(services, process_id(), caps, Some(service))
}

struct VfsService {
    services: Arc<Services>,
    drives: Arc<Drives>,
    max_read: u64,
}

type VfsResult = Result<(VfsResponse, Option<Vec<u8>>), VfsError>;

impl Service for VfsService {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            Some(match self.serve(km).await {
                Ok((response, blob)) => Reply {
                    body: serde_json::to_vec(&Ok::<_, VfsError>(response)).unwrap_or_default(),
                    blob: blob.map(|bytes| Blob { mime: None, bytes }),
                },
                Err(error) => Reply::json(&Err::<VfsResponse, _>(error)),
            })
        })
    }
}

impl VfsService {
    async fn serve(&self, km: KernelMessage) -> VfsResult {
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
        let state = &self.services.state;
        let (drive, op) = match request {
            VfsRequest::Grant { to } => {
                state
                    .grant(GRANT_KIND, &caller, "", &to)
                    .await
                    .map_err(io)?;
                return Ok((VfsResponse::Ok, None));
            }
            VfsRequest::Revoke { to } => {
                state
                    .revoke(GRANT_KIND, &caller, "", &to)
                    .await
                    .map_err(io)?;
                return Ok((VfsResponse::Ok, None));
            }
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
        let owner = self.owner(&caller, drive)?;
        // Everything that touches the disk, the drive's paths included,
        // happens in one blocking task, off the async workers.
        let drives = self.drives.clone();
        tokio::task::spawn_blocking(move || {
            let drive = drives.open(&owner)?;
            ops::run(op.resolve(&drive)?, &drive.root)
        })
        .await
        .map_err(|e| VfsError::Io(format!("file task failed: {e}")))?
    }

    /// The owner of the drive `drive` names (default: the caller's
    /// package), if the caller may use it.
    fn owner(&self, caller: &str, drive: Option<String>) -> Result<String, VfsError> {
        let owner = drive.unwrap_or_else(|| caller.to_string());
        let valid = owner
            .split_once(':')
            .map(|(pkg, publisher)| ProcessId::new("x", pkg, publisher).is_valid())
            .unwrap_or(false);
        if !valid {
            return Err(VfsError::BadRequest(format!("bad drive name {owner:?}")));
        }
        if owner != caller
            && !self
                .services
                .state
                .is_granted(GRANT_KIND, &owner, "", caller)
        {
            return Err(VfsError::Forbidden(owner));
        }
        Ok(owner)
    }
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
