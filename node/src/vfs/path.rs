//! Resolving a drive-relative path to a file of that drive, refusing
//! anything that could leave it.

use std::path::{Component, Path, PathBuf};

use super::VfsError;

/// `root/rel` for a relative `rel` made of plain names only, whose deepest
/// existing ancestor (symlinks resolved) is still inside `root`.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, VfsError> {
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
    let full = root.join(relative);
    let canonical_root = root
        .canonicalize()
        .map_err(|e| VfsError::Io(format!("drive root: {e}")))?;
    // Symlinks can only exist in the part of the path that exists; resolve
    // that part and check it stays inside.
    let mut existing = full.as_path();
    loop {
        if existing.symlink_metadata().is_ok() {
            let resolved = existing
                .canonicalize()
                .map_err(|_| VfsError::Traversal(rel.into()))?;
            if !resolved.starts_with(&canonical_root) {
                return Err(VfsError::Traversal(rel.into()));
            }
            return Ok(full);
        }
        match existing.parent() {
            Some(parent) if parent.starts_with(root) => existing = parent,
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
