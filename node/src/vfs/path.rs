//! Resolving a drive-relative path to a file of that drive, refusing
//! anything that could leave it.

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, CWD};

use super::VfsError;

/// The directory that holds every drive, and its canonical form, found
/// once (symlinks above it are the operator's, and do not change while the
/// node runs).
pub struct Drives {
    dir: PathBuf,
    canonical: OnceLock<PathBuf>,
    /// Whether `canonical` is on a local disk file system, where small
    /// cached reads may be served in the sender's call ([`super::now`]).
    local: OnceLock<bool>,
}

/// One drive: its root, and the root with symlinks resolved, under which
/// every resolved path must stay.
pub struct Drive {
    pub root: PathBuf,
    canonical: PathBuf,
}

impl Drives {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            canonical: OnceLock::new(),
            local: OnceLock::new(),
        }
    }

    fn canonical(&self) -> Result<&Path, VfsError> {
        if let Some(found) = self.canonical.get() {
            return Ok(found);
        }
        let found = std::fs::create_dir_all(&self.dir)
            .and_then(|()| self.dir.canonicalize())
            .map_err(|e| VfsError::Io(format!("vfs directory: {e}")))?;
        let _ = self.local.set(super::now::local_fs(&found));
        Ok(self.canonical.get_or_init(|| found))
    }

    /// Where `rel` is in the drive of `owner` for a read served in the
    /// sender's call: under the canonical vfs directory, so that the open
    /// may refuse every symlink. `None` before the directory was resolved
    /// (the blocking path does it), off a local file system, or for a
    /// path [`resolve_in`] would refuse.
    pub fn now_path(&self, owner: &str, rel: &str) -> Option<PathBuf> {
        if self.local.get() != Some(&true) {
            return None;
        }
        self.plain_path(owner, rel)
    }

    /// Where `rel` is in the drive of `owner`, under the canonical vfs
    /// directory, for [`open_plain`]: opened with no symlink on the way,
    /// it is inside the drive with no further check. `None` before the
    /// directory was resolved ([`Drives::open`] does it), or for a path
    /// [`resolve_in`] would refuse.
    pub fn plain_path(&self, owner: &str, rel: &str) -> Option<PathBuf> {
        let canonical = self.canonical.get()?;
        Some(canonical.join(owner).join(plain_relative(rel).ok()?))
    }

    /// The drive of package `owner` (a checked `package:publisher`, so a
    /// single plain name), created on first use. A plain directory costs
    /// one `lstat`; a drive the operator made a symlink is resolved.
    pub fn open(&self, owner: &str) -> Result<Drive, VfsError> {
        let io = |e: std::io::Error| VfsError::Io(format!("drive {owner}: {e}"));
        let root = self.dir.join(owner);
        let canonical = match root.symlink_metadata() {
            Ok(m) if m.is_dir() => self.canonical()?.join(owner),
            Ok(m) if m.file_type().is_symlink() => root.canonicalize().map_err(io)?,
            Ok(_) => return Err(VfsError::Io(format!("drive {owner} is not a directory"))),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&root).map_err(io)?;
                self.canonical()?.join(owner)
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Drive { root, canonical })
    }
}

/// `path` opened read-only, with its size, if the kernel finds a regular
/// file there with no symlink anywhere on the way (`RESOLVE_NO_SYMLINKS`
/// makes the check and the open one step, so nothing can be swapped for a
/// symlink in between), under the extra `resolve` flags. `None` for
/// anything else: a symlink, a missing file, not a regular file, an old
/// kernel without `openat2`.
pub fn open_plain(path: &Path, resolve: ResolveFlags) -> Option<(OwnedFd, u64)> {
    // O_NONBLOCK: opening a FIFO (never made by the vfs, but an operator
    // could) must not wait for a writer; it is refused below anyway.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let resolve = resolve | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = rustix::fs::openat2(CWD, path, flags, Mode::empty(), resolve).ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    Some((fd, u64::try_from(stat.st_size).ok()?))
}

/// `root/rel` for a relative `rel` made of plain names only, whose deepest
/// existing ancestor (symlinks resolved) is still inside `root`.
#[cfg(test)]
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, VfsError> {
    let canonical = root
        .canonicalize()
        .map_err(|e| VfsError::Io(format!("drive root: {e}")))?;
    resolve_in(
        &Drive {
            root: root.to_path_buf(),
            canonical,
        },
        rel,
    )
}

/// [`resolve`] in an opened drive. The walk `lstat`s each existing
/// component below the root: while none is a symlink, the path is inside.
/// At the first symlink, the deepest existing part is resolved and must
/// stay under the drive's canonical root.
pub fn resolve_in(drive: &Drive, rel: &str) -> Result<PathBuf, VfsError> {
    let relative = plain_relative(rel)?;
    let full = drive.root.join(relative);
    let mut at = drive.root.clone();
    for component in relative.components() {
        at.push(component);
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return resolved_inside(drive, full, rel),
            Ok(_) => {}
            // Nothing deeper exists, so nothing deeper can be a symlink.
            Err(_) => break,
        }
    }
    Ok(full)
}

/// `rel` as a path, if it is relative and made of plain names only (no
/// `.`, `..`, NUL or root).
fn plain_relative(rel: &str) -> Result<&Path, VfsError> {
    if rel.starts_with('/') || rel.starts_with('\\') || Path::new(rel).is_absolute() {
        return Err(VfsError::Absolute(rel.into()));
    }
    let relative = Path::new(rel);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || rel.contains('\0')
    {
        return Err(VfsError::Traversal(rel.into()));
    }
    Ok(relative)
}

/// `full` if its deepest existing ancestor, symlinks resolved, is under
/// the drive's canonical root.
fn resolved_inside(drive: &Drive, full: PathBuf, rel: &str) -> Result<PathBuf, VfsError> {
    let mut existing = full.as_path();
    loop {
        if existing.symlink_metadata().is_ok() {
            let resolved = existing
                .canonicalize()
                .map_err(|_| VfsError::Traversal(rel.into()))?;
            if !resolved.starts_with(&drive.canonical) {
                return Err(VfsError::Traversal(rel.into()));
            }
            return Ok(full);
        }
        match existing.parent() {
            Some(parent) if parent.starts_with(&drive.root) => existing = parent,
            _ => return Ok(full),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dots_absolute_and_escaping_symlinks() {
        let base = std::env::temp_dir().join(format!("hearth-vfs-path-{}", std::process::id()));
        let root = base.join("drive");
        std::fs::create_dir_all(root.join("a")).unwrap();
        assert!(resolve(&root, "a/b.txt").is_ok());
        assert!(resolve(&root, "").is_ok());
        assert_eq!(
            resolve(&root, "../x"),
            Err(VfsError::Traversal("../x".into()))
        );
        assert_eq!(
            resolve(&root, "a/../../x"),
            Err(VfsError::Traversal("a/../../x".into()))
        );
        assert_eq!(
            resolve(&root, "./a"),
            Err(VfsError::Traversal("./a".into()))
        );
        assert_eq!(
            resolve(&root, "/etc/passwd"),
            Err(VfsError::Absolute("/etc/passwd".into()))
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&base, root.join("out")).unwrap();
            std::os::unix::fs::symlink(root.join("a"), root.join("in")).unwrap();
            assert!(matches!(
                resolve(&root, "out/x"),
                Err(VfsError::Traversal(_))
            ));
            assert!(matches!(resolve(&root, "out"), Err(VfsError::Traversal(_))));
            assert!(resolve(&root, "in/x").is_ok());
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn open_plain_takes_only_regular_files_reached_without_symlinks() {
        let base = std::env::temp_dir().join(format!("hearth-vfs-plain-{}", std::process::id()));
        std::fs::create_dir_all(base.join("a")).unwrap();
        let base = base.canonicalize().unwrap();
        std::fs::write(base.join("a/f.bin"), [7u8; 300]).unwrap();
        let none = ResolveFlags::empty();
        // An old kernel without openat2 refuses everything (the checked
        // path serves it), so only a success is checked for its size.
        if let Some((_, size)) = open_plain(&base.join("a/f.bin"), none) {
            assert_eq!(size, 300);
        }
        assert!(open_plain(&base.join("a"), none).is_none(), "a directory");
        assert!(open_plain(&base.join("a/missing"), none).is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("a"), base.join("dir-link")).unwrap();
            std::os::unix::fs::symlink(base.join("a/f.bin"), base.join("file-link")).unwrap();
            assert!(open_plain(&base.join("dir-link/f.bin"), none).is_none());
            assert!(open_plain(&base.join("file-link"), none).is_none());
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Cases per property: each is a few `stat`s in a temp dir.
        const CASES: u32 = 512;

        fn drive() -> (PathBuf, PathBuf) {
            let base = std::env::temp_dir().join(format!(
                "hearth-vfs-prop-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let root = base.join("drive");
            std::fs::create_dir_all(root.join("a")).unwrap();
            #[cfg(unix)]
            {
                let _ = std::os::unix::fs::symlink(&base, root.join("out"));
            }
            (base, root)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            /// Whatever a guest names, the result is a typed error or a
            /// path inside the drive (symlinks resolved).
            #[test]
            fn guest_paths_never_leave_the_drive(
                rel in "(a|out|\\.\\.|\\.|/|x|\\\\|\\x00|[a-z]{1,4}){0,10}"
            ) {
                let (_base, root) = drive();
                if let Ok(full) = resolve(&root, &rel) {
                    prop_assert!(full.starts_with(&root));
                    prop_assert!(!rel.split('/').any(|c| c == ".."));
                    let canonical_root = root.canonicalize().unwrap();
                    let mut existing = full.as_path();
                    while existing.symlink_metadata().is_err() {
                        existing = existing.parent().unwrap();
                    }
                    prop_assert!(existing.canonicalize().unwrap().starts_with(&canonical_root));
                }
            }

            #[test]
            fn random_bytes_as_paths_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let (_base, root) = drive();
                let rel = String::from_utf8_lossy(&bytes);
                let _ = resolve(&root, &rel);
            }
        }
    }
}
