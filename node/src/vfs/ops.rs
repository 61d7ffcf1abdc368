//! The file operations of the vfs, blocking, run off the async workers.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rustix::buffer::spare_capacity;

use super::{DirEntry, FileMetadata, VfsError, VfsResponse};

/// What one request does, with its paths already resolved.
pub enum Op {
    Create(PathBuf),
    CreateDir(PathBuf),
    Write(PathBuf, Vec<u8>),
    Append(PathBuf, Vec<u8>),
    Read {
        path: PathBuf,
        offset: u64,
        length: u64,
    },
    List(PathBuf),
    Metadata(PathBuf),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
}

pub fn io(shown: &Path, e: std::io::Error) -> VfsError {
    let shown = shown.display().to_string();
    match e.kind() {
        ErrorKind::NotFound => VfsError::NotFound(shown),
        ErrorKind::AlreadyExists => VfsError::AlreadyExists(shown),
        _ => VfsError::Io(format!("{shown}: {e}")),
    }
}

/// Run `op`; `rel` strips the drive root from paths shown in errors.
pub fn run(op: Op, root: &Path) -> Result<(VfsResponse, Option<Vec<u8>>), VfsError> {
    let shown = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
    let ok = |r: Result<(), std::io::Error>, p: &Path| {
        r.map(|()| (VfsResponse::Ok, None))
            .map_err(|e| io(&shown(p), e))
    };
    match op {
        Op::Create(p) => ok(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .map(|_| ()),
            &p,
        ),
        Op::CreateDir(p) => ok(fs::create_dir_all(&p), &p),
        Op::Write(p, bytes) => ok(write_synced(&p, &bytes, false), &p),
        Op::Append(p, bytes) => ok(write_synced(&p, &bytes, true), &p),
        Op::Read {
            path,
            offset,
            length,
        } => read(&path, offset, length).map_err(|e| io(&shown(&path), e)),
        Op::List(p) => list(&p).map_err(|e| io(&shown(&p), e)),
        Op::Metadata(p) => {
            let m = fs::metadata(&p).map_err(|e| io(&shown(&p), e))?;
            let modified_ms = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let meta = FileMetadata {
                is_dir: m.is_dir(),
                len: m.len(),
                modified_ms,
            };
            Ok((VfsResponse::Metadata(meta), None))
        }
        Op::Rename(from, to) => ok(fs::rename(&from, &to), &from),
        Op::Remove(p) => {
            let r = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                Ok(_) => fs::remove_file(&p),
                Err(e) => Err(e),
            };
            ok(r, &p)
        }
    }
}

/// Write (or append) and `fdatasync`: the reply means the bytes are on disk.
fn write_synced(path: &Path, bytes: &[u8], append: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

fn read(path: &Path, offset: u64, length: u64) -> std::io::Result<(VfsResponse, Option<Vec<u8>>)> {
    let file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    read_open(&file, size, offset, length)
}

/// Up to `length` bytes from `offset` of an open file of `size` bytes.
pub fn read_open(
    file: impl AsFd,
    size: u64,
    offset: u64,
    length: u64,
) -> std::io::Result<(VfsResponse, Option<Vec<u8>>)> {
    let want = length.min(size.saturating_sub(offset)) as usize;
    // `pread` straight into the reply's buffer: not zero-filled first, and
    // one call for the whole chunk (`read_to_end` on a `Take` made ten,
    // doubling from 8 KiB). The file may have shrunk since its size was
    // read, so a short read is fine.
    let mut bytes = Vec::with_capacity(want);
    while bytes.len() < want {
        let at = offset + bytes.len() as u64;
        match rustix::io::pread(&file, spare_capacity(&mut bytes), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    bytes.truncate(want);
    let want = bytes.len();
    let eof = offset.saturating_add(want as u64) >= size;
    Ok((
        VfsResponse::Read {
            len: want as u64,
            eof,
        },
        Some(bytes),
    ))
}

fn list(path: &Path) -> std::io::Result<(VfsResponse, Option<Vec<u8>>)> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        entries.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            is_dir: meta.is_dir(),
            len: meta.len(),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((VfsResponse::List { entries }, None))
}

/// Bytes of every file under `dir`, not following symlinks.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m)))
        .map(|(p, m)| if m.is_dir() { tree_bytes(&p) } else { m.len() })
        .sum()
}
