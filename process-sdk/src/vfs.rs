//! A typed client of the node's file service `vfs:distro:sys`.
//!
//! ```ignore
//! let drive = Vfs::own()?;
//! drive.write("notes/a.txt", b"hello".to_vec()).await?;
//! let bytes = drive.read("notes/a.txt", 0, 1 << 20).await?;
//! ```
//!
//! Paths are relative to the drive root (`notes/a.txt`); absolute paths,
//! `..` and symlinks out of the drive are refused with
//! [`VfsError::Traversal`] or [`VfsError::Absolute`]. Large files move in
//! chunks: [`Vfs::append`] to write, [`Vfs::read`] with an offset to read.

use serde::{Deserialize, Serialize};

use crate::kv::{call, service, DecodeError, SERVICE_TIMEOUT_MS};
use crate::{Address, SendError};

/// Why a vfs call failed. The first variants come from the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
pub enum VfsError {
    #[error("path {0:?} leaves the drive")]
    Traversal(String),
    #[error("path {0:?} is absolute")]
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
    #[serde(skip)]
    #[error("vfs service unreachable: {0}")]
    Send(SendError),
    #[serde(skip)]
    #[error("vfs reply unreadable: {0}")]
    Decode(String),
}

impl From<SendError> for VfsError {
    fn from(e: SendError) -> Self {
        VfsError::Send(e)
    }
}

impl From<DecodeError> for VfsError {
    fn from(e: DecodeError) -> Self {
        VfsError::Decode(e.0)
    }
}

#[derive(Serialize)]
enum VfsRequest<'a> {
    Create {
        drive: Option<&'a str>,
        path: &'a str,
    },
    CreateDir {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Write {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Append {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Read {
        drive: Option<&'a str>,
        path: &'a str,
        offset: u64,
        length: Option<u64>,
    },
    List {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Metadata {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Rename {
        drive: Option<&'a str>,
        from: &'a str,
        to: &'a str,
    },
    Remove {
        drive: Option<&'a str>,
        path: &'a str,
    },
    Grant {
        to: &'a str,
    },
    Revoke {
        to: &'a str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
enum VfsResponse {
    Ok,
    Read { len: u64, eof: bool },
    List { entries: Vec<DirEntry> },
    Metadata(FileMetadata),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileMetadata {
    pub is_dir: bool,
    pub len: u64,
    pub modified_ms: u64,
}

/// A chunk read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// Whether the file ends with this chunk.
    pub eof: bool,
}

/// A package's drive.
#[derive(Debug, Clone)]
pub struct Vfs {
    service: Address,
    drive: Option<String>,
}

impl Vfs {
    /// Our package's drive.
    pub fn own() -> Result<Vfs, VfsError> {
        Ok(Vfs {
            service: service("vfs")?,
            drive: None,
        })
    }

    /// The drive of `package` (`package:publisher`), usable once it granted
    /// our package access.
    pub fn of(package: &str) -> Result<Vfs, VfsError> {
        Ok(Vfs {
            service: service("vfs")?,
            drive: Some(package.to_string()),
        })
    }

    fn drive(&self) -> Option<&str> {
        self.drive.as_deref()
    }

    async fn request(
        &self,
        body: &VfsRequest<'_>,
        blob: Option<Vec<u8>>,
    ) -> Result<(VfsResponse, Option<Vec<u8>>), VfsError> {
        call(self.service.clone(), body, blob, SERVICE_TIMEOUT_MS).await
    }

    async fn unit(&self, body: VfsRequest<'_>, blob: Option<Vec<u8>>) -> Result<(), VfsError> {
        self.request(&body, blob).await.map(|_| ())
    }

    /// Creates an empty file; fails if it exists.
    pub async fn create(&self, path: &str) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::Create {
                drive: self.drive(),
                path,
            },
            None,
        )
        .await
    }

    /// Creates a directory and its missing parents.
    pub async fn create_dir(&self, path: &str) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::CreateDir {
                drive: self.drive(),
                path,
            },
            None,
        )
        .await
    }

    /// Replaces the file's contents; on disk when it returns.
    pub async fn write(&self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::Write {
                drive: self.drive(),
                path,
            },
            Some(bytes.into()),
        )
        .await
    }

    /// Appends to the file; on disk when it returns.
    pub async fn append(&self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::Append {
                drive: self.drive(),
                path,
            },
            Some(bytes.into()),
        )
        .await
    }

    /// Reads up to `length` bytes at `offset` (the service caps a chunk).
    pub async fn read(&self, path: &str, offset: u64, length: u64) -> Result<Chunk, VfsError> {
        let body = VfsRequest::Read {
            drive: self.drive(),
            path,
            offset,
            length: Some(length),
        };
        match self.request(&body, None).await? {
            (VfsResponse::Read { eof, .. }, blob) => Ok(Chunk {
                bytes: blob.unwrap_or_default(),
                eof,
            }),
            _ => Err(VfsError::Decode("expected a read reply".into())),
        }
    }

    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>, VfsError> {
        match self
            .request(
                &VfsRequest::List {
                    drive: self.drive(),
                    path,
                },
                None,
            )
            .await?
        {
            (VfsResponse::List { entries }, _) => Ok(entries),
            _ => Err(VfsError::Decode("expected a listing".into())),
        }
    }

    pub async fn metadata(&self, path: &str) -> Result<FileMetadata, VfsError> {
        match self
            .request(
                &VfsRequest::Metadata {
                    drive: self.drive(),
                    path,
                },
                None,
            )
            .await?
        {
            (VfsResponse::Metadata(meta), _) => Ok(meta),
            _ => Err(VfsError::Decode("expected metadata".into())),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::Rename {
                drive: self.drive(),
                from,
                to,
            },
            None,
        )
        .await
    }

    /// Removes a file, or a directory with everything in it.
    pub async fn remove(&self, path: &str) -> Result<(), VfsError> {
        self.unit(
            VfsRequest::Remove {
                drive: self.drive(),
                path,
            },
            None,
        )
        .await
    }

    /// Lets `package` use our drive.
    pub async fn grant(&self, package: &str) -> Result<(), VfsError> {
        self.unit(VfsRequest::Grant { to: package }, None).await
    }

    pub async fn revoke(&self, package: &str) -> Result<(), VfsError> {
        self.unit(VfsRequest::Revoke { to: package }, None).await
    }
}
