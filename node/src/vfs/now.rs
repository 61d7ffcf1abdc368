//! Small reads served in the sender's own call, when the kernel can prove
//! they need no waiting: every path component already in its lookup cache
//! (`openat2` with `RESOLVE_CACHED`), no symlink anywhere in the path
//! (`RESOLVE_NO_SYMLINKS`), a regular file, and every byte already in the
//! page cache (`preadv2` with `RWF_NOWAIT`). Anything else (a missing or
//! cold file, a symlink, a short read, an old kernel) gives `None`, and
//! the request takes the blocking path, which makes every check again.
//!
//! Why this cannot hold a sender's worker for long: none of these calls
//! sleeps on a disk, and the copy is at most [`READ_NOW_MAX`] bytes from
//! memory, a few microseconds. Only on local disk file systems, where
//! `open` itself does no I/O once the lookup is cached (a FUSE or network
//! file system may ask its server on every open).

use std::io::IoSliceMut;
use std::path::Path;

use rustix::fs::ResolveFlags;
use rustix::io::ReadWriteFlags;

use super::path::open_plain;
use super::VfsResponse;

/// Largest read served in the sender's call: about 5 µs of copying.
pub const READ_NOW_MAX: u64 = 64 * 1024;

/// `statfs` magic numbers of the local file systems this path trusts:
/// ext2/3/4, xfs, btrfs, tmpfs, f2fs.
const LOCAL_FS: [u64; 5] = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0xF2F5_2010];

/// Whether `dir` is on a file system whose cached opens and reads never
/// wait ([`LOCAL_FS`]).
pub fn local_fs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| LOCAL_FS.contains(&(s.f_type as u64)))
}

/// Up to `length` (at most [`READ_NOW_MAX`]) bytes of `path` from
/// `offset`, with the same reply as the blocking read, if no step can
/// wait. `path` must be absolute, with no symlink in it, and its part
/// below the drive made of checked plain names.
pub fn read(path: &Path, offset: u64, length: u64) -> Option<(VfsResponse, Vec<u8>)> {
    if length > READ_NOW_MAX {
        return None;
    }
    let (fd, size) = open_plain(path, ResolveFlags::CACHED)?;
    let want = length.min(size.saturating_sub(offset));
    let mut bytes = vec![0; want as usize];
    if want > 0 {
        let read = rustix::io::preadv2(
            &fd,
            &mut [IoSliceMut::new(&mut bytes)],
            offset,
            ReadWriteFlags::NOWAIT,
        );
        // Short: part of it is not cached, or the file shrank; the
        // blocking path reads it whole.
        if read.ok()? as u64 != want {
            return None;
        }
    }
    let eof = offset.saturating_add(want) >= size;
    Some((VfsResponse::Read { len: want, eof }, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_reads_match_and_refusals_fall_back() {
        let dir = std::env::temp_dir().join(format!("hearth-vfs-now-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let file = dir.join("f.bin");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        // Written just now, so cached (unless the kernel refuses
        // RESOLVE_CACHED or RWF_NOWAIT here, when every read falls back).
        if let Some((response, got)) = read(&file, 100, 4096) {
            assert_eq!(
                response,
                VfsResponse::Read {
                    len: 4096,
                    eof: false
                }
            );
            assert_eq!(got, bytes[100..4196]);
            let (response, got) = read(&file, 9_000, 4096).unwrap();
            assert_eq!(
                response,
                VfsResponse::Read {
                    len: 1000,
                    eof: true
                }
            );
            assert_eq!(got, bytes[9_000..]);
            let (response, got) = read(&file, 20_000, 4096).unwrap();
            assert_eq!(response, VfsResponse::Read { len: 0, eof: true });
            assert!(got.is_empty());
        }
        assert!(read(&file, 0, READ_NOW_MAX + 1).is_none());
        assert!(read(&dir, 0, 10).is_none(), "a directory");
        assert!(read(&dir.join("missing"), 0, 10).is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
            assert!(read(&dir.join("link"), 0, 10).is_none(), "a symlink");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
