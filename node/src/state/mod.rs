//! Durable storage on sled. This is the only module that opens sled; the
//! rest of the node sees per-process state ([`StateStore::get`], `set`,
//! `clear`), the persisted process table ([`table`]), key-value databases
//! ([`kv`]) and grants, never a sled type.
//!
//! **Invariant:** when `set`, `clear` or any kv write returns `Ok`, the write
//! is on disk, so an acknowledged write survives `kill -9`. Durability is a
//! group commit ([`commit`]): one flush acks every writer queued behind it.

pub mod baseline;
pub mod commit;
pub mod disk;
pub mod kv;
pub mod table;

use std::path::{Path, PathBuf};

use crate::types::ProcessId;
use commit::Committer;

/// The store's directory under the node home.
pub const STORE_DIR: &str = "state.sled";
/// File in the node home holding the PID of the process that has the store
/// open, so that a second node on the same home can say who holds it.
pub const PID_FILE: &str = "node.pid";
/// Tree of the persisted process table.
const TABLE_TREE: &str = "process-table";
/// Tree of grants (kv databases and vfs drives shared with other packages).
const GRANTS_TREE: &str = "grants";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state store at {path}: {reason}. If the node crashed while \
         writing, move that directory aside (for example `mv {path} {path}.broken`) and \
         start again to get an empty store; it is never deleted for you"
    )]
    Open { path: PathBuf, reason: String },
    /// Another node (or another instance in this process) holds the store.
    #[error(
        "the home {home} is in use by {}: one node per home; stop that node or pick another \
         --home",
        match pid { Some(pid) => format!("PID {pid}"), None => "another process".to_string() }
    )]
    InUse { home: PathBuf, pid: Option<u32> },
    #[error("state store: {0}")]
    Io(String),
    #[error("the process table entry {key} is unreadable: {reason}")]
    Table { key: String, reason: String },
}

fn io(e: impl std::fmt::Display) -> StateError {
    StateError::Io(e.to_string())
}

pub struct StateStore {
    path: PathBuf,
    /// Per-process state, keyed by process id (the default tree).
    db: sled::Db,
    table: sled::Tree,
    grants: sled::Tree,
    commit: Committer,
}

impl StateStore {
    /// Open (or create) `<home>/state.sled`. A corrupt or unreadable store
    /// is an error naming the directory, never a panic.
    pub fn open(home: &Path) -> Result<Self, StateError> {
        let path = home.join(STORE_DIR);
        let open_err = |reason: String| StateError::Open {
            path: path.clone(),
            reason,
        };
        // sled may panic on some corruptions instead of returning an error.
        let opened = std::panic::catch_unwind(|| {
            let db = sled::Config::new().path(&path).open()?;
            let table = db.open_tree(TABLE_TREE)?;
            let grants = db.open_tree(GRANTS_TREE)?;
            Ok::<_, sled::Error>((db, table, grants))
        });
        let (db, table, grants) = match opened {
            Ok(Ok(trees)) => trees,
            // sled says so only in its message (kind `Other`).
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                let pid = std::fs::read_to_string(home.join(PID_FILE))
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                return Err(StateError::InUse {
                    home: home.to_path_buf(),
                    pid,
                });
            }
            Ok(Err(e)) => return Err(open_err(e.to_string())),
            Err(_) => {
                return Err(open_err(
                    "the store is corrupt (sled panicked while reading it)".into(),
                ))
            }
        };
        // Best effort: only used to name the holder in `InUse`.
        let _ = std::fs::write(home.join(PID_FILE), std::process::id().to_string());
        let commit = Committer::start(db.clone()).map_err(|e| open_err(e.to_string()))?;
        let store = Self {
            path,
            db,
            table,
            grants,
            commit,
        };
        store.check_table()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, process: &ProcessId) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get(process.to_string())
            .map(|v| v.map(|ivec| ivec.to_vec()))
            .map_err(io)
    }

    /// Store the state of `process`; durable when it returns.
    pub async fn set(&self, process: &ProcessId, bytes: &[u8]) -> Result<(), StateError> {
        self.db.insert(process.to_string(), bytes).map_err(io)?;
        self.durable().await
    }

    /// Remove the state of `process`; durable when it returns.
    pub async fn clear(&self, process: &ProcessId) -> Result<(), StateError> {
        self.db.remove(process.to_string()).map_err(io)?;
        self.durable().await
    }

    /// Wait until every write applied so far is on disk (group commit).
    pub async fn durable(&self) -> Result<(), StateError> {
        self.commit.durable().await.map_err(StateError::Io)
    }

    /// Flushes done and writes they covered since the store opened.
    pub fn commit_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.commit.stats;
        (s.flushes.load(Relaxed), s.writes.load(Relaxed))
    }

    /// Bytes of per-process state (keys and values) held for `package`
    /// (`package:publisher`).
    pub fn state_bytes(&self, package: &str) -> u64 {
        let suffix = format!(":{package}");
        self.db
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.ends_with(suffix.as_bytes()))
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }

    /// Bytes the store's files take on disk, all packages together.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn grant_key(kind: &str, owner: &str, resource: &str, grantee: &str) -> Vec<u8> {
        format!("{kind}\0{owner}\0{resource}\0{grantee}").into_bytes()
    }

    /// Let package `grantee` use `resource` (a kv database, a drive) of
    /// package `owner`. Durable when it returns.
    pub async fn grant(
        &self,
        kind: &str,
        owner: &str,
        resource: &str,
        grantee: &str,
    ) -> Result<(), StateError> {
        let key = Self::grant_key(kind, owner, resource, grantee);
        self.grants.insert(key, &[]).map_err(io)?;
        self.durable().await
    }

    pub async fn revoke(
        &self,
        kind: &str,
        owner: &str,
        resource: &str,
        grantee: &str,
    ) -> Result<(), StateError> {
        let key = Self::grant_key(kind, owner, resource, grantee);
        self.grants.remove(key).map_err(io)?;
        self.durable().await
    }

    pub fn is_granted(&self, kind: &str, owner: &str, resource: &str, grantee: &str) -> bool {
        let key = Self::grant_key(kind, owner, resource, grantee);
        self.grants.contains_key(key).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn temp_home(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-state-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_flush_covers_many_concurrent_writers_and_writes_persist() {
        let home = temp_home("group");
        let store = Arc::new(StateStore::open(&home).unwrap());
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let id = ProcessId::new(&format!("p{i}"), "pkg", "pub");
                    for n in 0..20u32 {
                        store.set(&id, &n.to_le_bytes()).await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let (flushes, writes) = store.commit_stats();
        assert_eq!(writes, 64 * 20);
        assert!(
            flushes < writes,
            "group commit: {flushes} flushes for {writes} writes"
        );
        drop(Arc::try_unwrap(store).ok().expect("last handle"));
        let reopened = StateStore::open(&home).unwrap();
        let id = ProcessId::new("p7", "pkg", "pub");
        assert_eq!(
            reopened.get(&id).unwrap(),
            Some(19u32.to_le_bytes().to_vec())
        );
        assert!(reopened.state_bytes("pkg:pub") > 0);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&home);
    }

    #[tokio::test]
    async fn process_table_round_trips_and_a_bad_entry_names_itself() {
        let home = temp_home("table");
        let store = StateStore::open(&home).unwrap();
        let record = table::ChildRecord {
            id: ProcessId::new("kid", "pkg", "pub"),
            parent: ProcessId::new("main", "pkg", "pub"),
            wasm_path: "/kid.wasm".into(),
            on_exit: crate::types::OnExit::Restart,
            public: false,
            networking: false,
        };
        store.record_child(&record).await.unwrap();
        assert_eq!(store.children().unwrap(), vec![record.clone()]);
        store
            .table
            .insert("bad:pkg:pub", b"not json".as_slice())
            .unwrap();
        store.durable().await.unwrap();
        drop(store);
        let error = StateStore::open(&home)
            .err()
            .expect("a bad entry refuses to open")
            .to_string();
        assert!(
            error.contains("bad:pkg:pub") && error.contains("state.sled"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
