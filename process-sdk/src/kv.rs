//! A typed client of the node's key-value service `kv:distro:sys`.
//!
//! ```ignore
//! hearth_sdk::spawn_task(async move {
//!     let kv = Kv::open("notes").await?;
//!     kv.set("a", b"1".to_vec()).await?;
//!     let value = kv.get("a").await?;
//!     kv.batch().set("x", b"1".to_vec()).delete("a").commit().await?;
//! });
//! ```
//!
//! Databases belong to a package. A process may use its own package's
//! databases, and those of a package that granted its package access.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Address, Blob, ProcessId, Request, SendError};

/// How long a kv or vfs call waits for the service.
pub const SERVICE_TIMEOUT_MS: u64 = 30_000;

/// Why a kv call failed. The first variants come from the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
pub enum KvError {
    #[error("no database {db} of package {package}")]
    NoSuchDb { package: String, db: String },
    #[error("package {package} has not granted access to its database {db}")]
    Forbidden { package: String, db: String },
    #[error("bad name {0:?}")]
    BadName(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("this request needs its value as a blob")]
    MissingBlob,
    #[error("store error: {0}")]
    Store(String),
    #[error("entry {key:?} ({len} bytes) does not fit a scan reply of {budget} bytes")]
    EntryTooLarge { key: String, len: u64, budget: u64 },
    /// The request could not be delivered or answered.
    #[serde(skip)]
    #[error("kv service unreachable: {0}")]
    Send(SendError),
    /// The reply did not decode.
    #[serde(skip)]
    #[error("kv reply unreadable: {0}")]
    Decode(String),
}

impl From<SendError> for KvError {
    fn from(e: SendError) -> Self {
        KvError::Send(e)
    }
}

impl From<DecodeError> for KvError {
    fn from(e: DecodeError) -> Self {
        KvError::Decode(e.0)
    }
}

/// A reply that is not the service's JSON.
#[derive(Debug)]
pub(crate) struct DecodeError(pub String);

/// The address of the node service `name:distro:sys` on our node.
pub(crate) fn service(name: &str) -> Result<Address, DecodeError> {
    ProcessId::new(name, "distro", "sys")
        .and_then(|id| id.on(crate::our().node()))
        .map_err(|e| DecodeError(e.to_string()))
}

/// Ask a node service and decode its `{"Ok": R}` / `{"Err": E}` reply;
/// returns the reply's blob bytes beside `R`.
pub(crate) async fn call<R, E>(
    target: Address,
    body: &impl Serialize,
    blob: Option<Vec<u8>>,
    timeout_ms: u64,
) -> Result<(R, Option<Vec<u8>>), E>
where
    R: DeserializeOwned,
    E: DeserializeOwned + From<SendError> + From<DecodeError>,
{
    let mut request = Request::to(target).json(body).timeout_ms(timeout_ms);
    if let Some(bytes) = blob {
        request = request.blob(Blob::new(None, bytes));
    }
    let mut reply = request.ask().await?;
    let blob = reply.take_blob().map(|b| b.bytes);
    let result: Result<R, E> = reply
        .json()
        .map_err(|e| DecodeError(format!("{e}: {}", String::from_utf8_lossy(reply.body()))))?;
    result.map(|r| (r, blob))
}

#[derive(Serialize)]
enum KvRequest<'a> {
    Open {
        package: Option<&'a str>,
        db: &'a str,
    },
    Get {
        package: Option<&'a str>,
        db: &'a str,
        key: &'a str,
    },
    Set {
        package: Option<&'a str>,
        db: &'a str,
        key: &'a str,
    },
    Delete {
        package: Option<&'a str>,
        db: &'a str,
        key: &'a str,
    },
    Scan {
        package: Option<&'a str>,
        db: &'a str,
        prefix: &'a str,
        limit: usize,
        start: Option<&'a str>,
        max_bytes: Option<u64>,
    },
    Batch {
        package: Option<&'a str>,
        db: &'a str,
        ops: &'a [BatchOp],
    },
    Grant {
        db: &'a str,
        to: &'a str,
    },
    Revoke {
        db: &'a str,
        to: &'a str,
    },
}

#[derive(Debug, Clone, Serialize)]
enum BatchOp {
    Set { key: String, len: u64 },
    Delete { key: String },
}

#[derive(Deserialize)]
enum KvResponse {
    Ok,
    Value {
        found: bool,
    },
    Deleted {
        existed: bool,
    },
    Entries {
        entries: Vec<ScanEntry>,
        #[serde(default)]
        next: Option<String>,
    },
}

/// One page of a scan: entries in key order and, when more match, the key
/// to continue from (pass it as `start`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub entries: Vec<(String, Vec<u8>)>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct ScanEntry {
    key: String,
    len: u64,
}

/// An open database.
#[derive(Debug, Clone)]
pub struct Kv {
    service: Address,
    /// The owner when it is another package.
    package: Option<String>,
    db: String,
}

impl Kv {
    /// Opens (creating it if needed) the database `db` of our package.
    pub async fn open(db: &str) -> Result<Kv, KvError> {
        Self::open_in(None, db).await
    }

    /// Opens the database `db` of `package` (`package:publisher`), which
    /// must have granted our package access.
    pub async fn open_of(package: &str, db: &str) -> Result<Kv, KvError> {
        Self::open_in(Some(package), db).await
    }

    async fn open_in(package: Option<&str>, db: &str) -> Result<Kv, KvError> {
        let kv = Kv {
            service: service("kv")?,
            package: package.map(str::to_string),
            db: db.to_string(),
        };
        kv.request(&KvRequest::Open { package, db }, None).await?;
        Ok(kv)
    }

    async fn request(
        &self,
        body: &KvRequest<'_>,
        blob: Option<Vec<u8>>,
    ) -> Result<(KvResponse, Option<Vec<u8>>), KvError> {
        call(self.service.clone(), body, blob, SERVICE_TIMEOUT_MS).await
    }

    fn owner(&self) -> Option<&str> {
        self.package.as_deref()
    }

    /// The value of `key`, if set.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let body = KvRequest::Get {
            package: self.owner(),
            db: &self.db,
            key,
        };
        match self.request(&body, None).await? {
            (KvResponse::Value { found: true }, blob) => Ok(Some(blob.unwrap_or_default())),
            _ => Ok(None),
        }
    }

    /// Sets `key`; durable when it returns.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), KvError> {
        let body = KvRequest::Set {
            package: self.owner(),
            db: &self.db,
            key,
        };
        self.request(&body, Some(value.into())).await.map(|_| ())
    }

    /// Removes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let body = KvRequest::Delete {
            package: self.owner(),
            db: &self.db,
            key,
        };
        match self.request(&body, None).await? {
            (KvResponse::Deleted { existed }, _) => Ok(existed),
            _ => Ok(false),
        }
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order,
    /// fetched in as many pages as their size needs.
    pub async fn scan(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        while out.len() < limit {
            let page = self
                .scan_page(prefix, start.as_deref(), limit - out.len(), None)
                .await?;
            out.extend(page.entries);
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// One page of a scan: up to `limit` entries whose keys start with
    /// `prefix`, from `start` (inclusive) on, within `max_bytes` of reply
    /// (default and most: what one message may carry).
    pub async fn scan_page(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        max_bytes: Option<u64>,
    ) -> Result<ScanPage, KvError> {
        let body = KvRequest::Scan {
            package: self.owner(),
            db: &self.db,
            prefix,
            limit,
            start,
            max_bytes,
        };
        let (response, blob) = self.request(&body, None).await?;
        let KvResponse::Entries { entries, next } = response else {
            return Err(KvError::Decode("expected entries".into()));
        };
        let values = blob.unwrap_or_default();
        let mut at = 0usize;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let end = usize::try_from(entry.len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .ok_or_else(|| KvError::Decode("scan value length overflows".into()))?;
            let value = values
                .get(at..end)
                .ok_or_else(|| KvError::Decode("scan values shorter than announced".into()))?;
            out.push((entry.key, value.to_vec()));
            at = end;
        }
        Ok(ScanPage { entries: out, next })
    }

    /// A batch of writes applied atomically by [`KvBatch::commit`].
    pub fn batch(&self) -> KvBatch<'_> {
        KvBatch {
            kv: self,
            ops: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Lets `package` (`package:publisher`) use this database (owner only).
    pub async fn grant(&self, package: &str) -> Result<(), KvError> {
        let body = KvRequest::Grant {
            db: &self.db,
            to: package,
        };
        self.request(&body, None).await.map(|_| ())
    }

    /// Withdraws a grant.
    pub async fn revoke(&self, package: &str) -> Result<(), KvError> {
        let body = KvRequest::Revoke {
            db: &self.db,
            to: package,
        };
        self.request(&body, None).await.map(|_| ())
    }
}

/// Writes applied all together or not at all.
#[must_use = "a batch does nothing until committed"]
pub struct KvBatch<'a> {
    kv: &'a Kv,
    ops: Vec<BatchOp>,
    values: Vec<u8>,
}

impl KvBatch<'_> {
    pub fn set(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        self.ops.push(BatchOp::Set {
            key: key.into(),
            len: value.len() as u64,
        });
        self.values.extend_from_slice(value);
        self
    }

    pub fn delete(mut self, key: &str) -> Self {
        self.ops.push(BatchOp::Delete { key: key.into() });
        self
    }

    /// Applies every write or none; durable when it returns.
    pub async fn commit(self) -> Result<(), KvError> {
        let body = KvRequest::Batch {
            package: self.kv.owner(),
            db: &self.kv.db,
            ops: &self.ops,
        };
        self.kv.request(&body, Some(self.values)).await.map(|_| ())
    }
}
