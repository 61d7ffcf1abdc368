//! The messages of `kv:distro:sys`. Bodies are JSON; values travel as
//! blobs. A reply body is `{"Ok": KvResponse}` or `{"Err": KvError}`.

use serde::{Deserialize, Serialize};

/// A request to the key-value service. `package` names the owner of the
/// database (`package:publisher`); without it, the sender's own package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KvRequest {
    /// Open a database, creating it if the sender owns it.
    Open {
        package: Option<String>,
        db: String,
    },
    /// The value comes back as the reply's blob.
    Get {
        package: Option<String>,
        db: String,
        key: String,
    },
    /// The value is the request's blob.
    Set {
        package: Option<String>,
        db: String,
        key: String,
    },
    Delete {
        package: Option<String>,
        db: String,
        key: String,
    },
    /// Up to `limit` entries with keys starting with `prefix`, in key
    /// order, from `start` (inclusive) when given; their values come back
    /// concatenated in the blob. The reply holds at most `max_bytes`
    /// (default and most: what one message may carry); `next` in the
    /// reply is where to continue.
    Scan {
        package: Option<String>,
        db: String,
        prefix: String,
        limit: usize,
        #[serde(default)]
        start: Option<String>,
        #[serde(default)]
        max_bytes: Option<u64>,
    },
    /// All writes or none. The values of `Set` ops are concatenated in the
    /// request's blob, in op order.
    Batch {
        package: Option<String>,
        db: String,
        ops: Vec<BatchOp>,
    },
    /// Let package `to` use our database `db` (owner only).
    Grant {
        db: String,
        to: String,
    },
    Revoke {
        db: String,
        to: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BatchOp {
    Set { key: String, len: u64 },
    Delete { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    Ok,
    /// For `Get`: whether the key exists (its value is the blob).
    Value {
        found: bool,
    },
    /// For `Delete`: whether the key existed.
    Deleted {
        existed: bool,
    },
    /// For `Scan`: keys and value lengths, values in the blob; `next` is
    /// the first key not returned (pass it as `start`), `None` when no
    /// more entries match.
    Entries {
        entries: Vec<ScanEntry>,
        #[serde(default)]
        next: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEntry {
    pub key: String,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    #[error("no database {db} of package {package}")]
    NoSuchDb { package: String, db: String },
    #[error("package {package} has not granted access to its database {db}")]
    Forbidden { package: String, db: String },
    #[error("bad name {0:?}: database names are 1-64 of [a-z0-9-_.]")]
    BadName(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("this request needs its value as a blob")]
    MissingBlob,
    #[error("store error: {0}")]
    Store(String),
    #[error(
        "entry {key:?} ({len} bytes) does not fit a scan reply of {budget} bytes; get it alone"
    )]
    EntryTooLarge { key: String, len: u64, budget: u64 },
}
