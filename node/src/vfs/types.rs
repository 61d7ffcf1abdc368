//! The messages of `vfs:distro:sys`. Bodies are JSON; file contents travel
//! as blobs. A reply body is `{"Ok": VfsResponse}` or `{"Err": VfsError}`.
//! Paths are relative to the drive root, `/`-separated (`notes/a.txt`);
//! `""` is the root.

use serde::{Deserialize, Serialize};

/// `drive` names the package whose drive is used (`package:publisher`);
/// without it, the sender's own package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum VfsRequest {
    /// Create an empty file; fails if it exists.
    Create {
        drive: Option<String>,
        path: String,
    },
    /// Create a directory and its missing parents.
    CreateDir {
        drive: Option<String>,
        path: String,
    },
    /// Replace the file's contents with the blob (creating it).
    Write {
        drive: Option<String>,
        path: String,
    },
    /// Append the blob to the file (creating it). Large files are written
    /// as a series of appends.
    Append {
        drive: Option<String>,
        path: String,
    },
    /// Read up to `length` bytes from `offset` (capped at the chunk limit);
    /// the bytes come back as the blob.
    Read {
        drive: Option<String>,
        path: String,
        #[serde(default)]
        offset: u64,
        length: Option<u64>,
    },
    List {
        drive: Option<String>,
        path: String,
    },
    Metadata {
        drive: Option<String>,
        path: String,
    },
    Rename {
        drive: Option<String>,
        from: String,
        to: String,
    },
    /// Remove a file, or a directory with everything in it.
    Remove {
        drive: Option<String>,
        path: String,
    },
    /// Let package `to` use our drive (owner only).
    Grant {
        to: String,
    },
    Revoke {
        to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VfsResponse {
    Ok,
    /// For `Read`: bytes in the blob, and whether the file ends there.
    Read {
        len: u64,
        eof: bool,
    },
    List {
        entries: Vec<DirEntry>,
    },
    Metadata(FileMetadata),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    pub is_dir: bool,
    pub len: u64,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VfsError {
    #[error("path {0:?} leaves the drive (`..`, `.` or a symlink out of it)")]
    Traversal(String),
    #[error("path {0:?} is absolute; paths are relative to the drive root")]
    Absolute(String),
    #[error("package {0} has not granted access to its drive")]
    Forbidden(String),
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("this request needs its contents as a blob")]
    MissingBlob,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("io error: {0}")]
    Io(String),
}
