//! The key-value service `kv:distro:sys`: databases per package on the
//! node's store, get/set/delete, prefix scans and atomic batches. Writes are
//! durable when answered (the store's group commit).
//!
//! Access: a process may use the databases of its own package, and those of
//! a package that granted its package access (`Grant`, by the owner). Only
//! processes of this node are served.

mod scan;
mod types;

use std::sync::Arc;

pub use types::{BatchOp, KvError, KvRequest, KvResponse, ScanEntry};

use crate::kernel::caps::ProcessCaps;
use crate::native::{NativeEndpoint, Reply, ReplyFuture, Service};
use crate::services::Services;
use crate::state::kv::{KvDb, KvWrite};
use crate::types::{Blob, KernelMessage, Message, ProcessId};

/// Grant kind under which kv grants are stored.
const GRANT_KIND: &str = "kv";
pub use scan::{MAX_SCAN, SCAN_REPLY_RESERVE};

pub fn process_id() -> ProcessId {
    ProcessId::new("kv", "distro", "sys")
}

/// Register `kv:distro:sys`. Public: access is checked per database.
pub fn start(
    services: &Arc<Services>,
) -> Result<Arc<NativeEndpoint>, crate::kernel::AlreadyRunning> {
    let caps = ProcessCaps {
        public: true,
        networking: false,
        system: false,
    };
    let service = Arc::new(KvService {
        services: services.clone(),
    });
    NativeEndpoint::start(services, process_id(), caps, Some(service))
}

struct KvService {
    services: Arc<Services>,
}

type KvResult = Result<(KvResponse, Option<Vec<u8>>), KvError>;

impl Service for KvService {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            let result = self.serve(km).await;
            Some(reply(result))
        })
    }
}

fn reply(result: KvResult) -> Reply {
    match result {
        Ok((response, blob)) => Reply {
            body: serde_json::to_vec(&Ok::<_, KvError>(response)).unwrap_or_default(),
            blob: blob.map(|bytes| Blob { mime: None, bytes }),
        },
        Err(error) => Reply::json(&Err::<KvResponse, _>(error)),
    }
}

fn valid_db(db: &str) -> bool {
    (1..=64).contains(&db.len())
        && db
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

fn store_err(e: crate::state::StateError) -> KvError {
    KvError::Store(e.to_string())
}

impl KvService {
    async fn serve(&self, km: KernelMessage) -> KvResult {
        let Message::Request(request) = &km.message else {
            return Err(KvError::BadRequest("expected a request".into()));
        };
        if km.source.node != self.services.kernel.our().into() {
            return Err(KvError::BadRequest(
                "only local processes are served".into(),
            ));
        }
        let request: KvRequest = serde_json::from_slice(&request.body)
            .map_err(|e| KvError::BadRequest(e.to_string()))?;
        let caller = km.source.process.package_id();
        let blob = km.blob.map(|b| b.bytes);
        let state = &self.services.state;
        match request {
            KvRequest::Grant { db, to } | KvRequest::Revoke { db, to }
                if !valid_db(&db) || to.is_empty() =>
            {
                Err(KvError::BadName(format!("{db} / {to}")))
            }
            KvRequest::Grant { db, to } => {
                state
                    .grant(GRANT_KIND, &caller, &db, &to)
                    .await
                    .map_err(store_err)?;
                Ok((KvResponse::Ok, None))
            }
            KvRequest::Revoke { db, to } => {
                state
                    .revoke(GRANT_KIND, &caller, &db, &to)
                    .await
                    .map_err(store_err)?;
                Ok((KvResponse::Ok, None))
            }
            KvRequest::Open { package, db } => {
                self.open(&caller, package, &db)?;
                Ok((KvResponse::Ok, None))
            }
            KvRequest::Get { package, db, key } => {
                let value = self
                    .open(&caller, package, &db)?
                    .get(key.as_bytes())
                    .map_err(store_err)?;
                Ok((
                    KvResponse::Value {
                        found: value.is_some(),
                    },
                    value,
                ))
            }
            KvRequest::Set { package, db, key } => {
                let value = blob.ok_or(KvError::MissingBlob)?;
                let db = self.open(&caller, package, &db)?;
                db.set(key.as_bytes(), &value).await.map_err(store_err)?;
                Ok((KvResponse::Ok, None))
            }
            KvRequest::Delete { package, db, key } => {
                let db = self.open(&caller, package, &db)?;
                let existed = db.delete(key.as_bytes()).await.map_err(store_err)?;
                Ok((KvResponse::Deleted { existed }, None))
            }
            KvRequest::Scan {
                package,
                db,
                prefix,
                limit,
                start,
                max_bytes,
            } => {
                let db = self.open(&caller, package, &db)?;
                let budget =
                    scan::budget(max_bytes, self.services.kernel.limits().max_message_bytes);
                let found = db.scan_from(prefix.as_bytes(), start.as_ref().map(|s| s.as_bytes()));
                let page = scan::page(found, limit, budget)?;
                let response = KvResponse::Entries {
                    entries: page.entries,
                    next: page.next,
                };
                Ok((response, Some(page.values)))
            }
            KvRequest::Batch { package, db, ops } => {
                let writes = split_batch(ops, blob.unwrap_or_default())?;
                let db = self.open(&caller, package, &db)?;
                db.batch(writes).await.map_err(store_err)?;
                Ok((KvResponse::Ok, None))
            }
        }
    }

    /// The database `db` of `package` (default: the caller's), if the
    /// caller may use it. The owner creates it on first use.
    fn open(&self, caller: &str, package: Option<String>, db: &str) -> Result<KvDb<'_>, KvError> {
        if !valid_db(db) {
            return Err(KvError::BadName(db.to_string()));
        }
        let owner = package.unwrap_or_else(|| caller.to_string());
        let state = &self.services.state;
        let own = owner == caller;
        if !own && !state.is_granted(GRANT_KIND, &owner, db, caller) {
            return Err(KvError::Forbidden {
                package: owner,
                db: db.into(),
            });
        }
        state
            .kv_db(&owner, db, own)
            .map_err(store_err)?
            .ok_or(KvError::NoSuchDb {
                package: owner,
                db: db.into(),
            })
    }
}

/// Cut the concatenated values of a batch into its writes.
fn split_batch(ops: Vec<BatchOp>, values: Vec<u8>) -> Result<Vec<KvWrite>, KvError> {
    let mut at = 0usize;
    let mut writes = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            BatchOp::Delete { key } => writes.push(KvWrite::Delete(key.into_bytes())),
            BatchOp::Set { key, len } => {
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| at.checked_add(len))
                    .filter(|end| *end <= values.len())
                    .ok_or_else(|| KvError::BadRequest("batch lengths exceed the blob".into()))?;
                writes.push(KvWrite::Set(key.into_bytes(), values[at..end].to_vec()));
                at = end;
            }
        }
    }
    if at != values.len() {
        return Err(KvError::BadRequest(
            "the blob is longer than the batch".into(),
        ));
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_by_lengths_and_refuse_mismatches() {
        let ops = vec![
            BatchOp::Set {
                key: "a".into(),
                len: 2,
            },
            BatchOp::Delete { key: "b".into() },
            BatchOp::Set {
                key: "c".into(),
                len: 1,
            },
        ];
        let writes = split_batch(ops.clone(), b"xyz".to_vec()).unwrap();
        assert!(matches!(&writes[2], KvWrite::Set(k, v) if k == b"c" && v == b"z"));
        assert!(split_batch(ops.clone(), b"xy".to_vec()).is_err());
        assert!(split_batch(ops, b"xyzw".to_vec()).is_err());
        assert!(valid_db("notes-1") && !valid_db("../x") && !valid_db(""));
    }
}
