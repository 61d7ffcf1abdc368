//! Per-process state on sled. This is the only module that opens sled; the
//! rest of the node sees `get`, `set` and `clear`.
//!
//! **Invariant:** when `set` or `clear` returns `Ok`, the write is on disk
//! (sled `flush`), so an acknowledged write survives `kill -9`.

use std::path::{Path, PathBuf};

use crate::types::ProcessId;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state store at {path}: {reason}. If the node crashed while \
         writing, move that directory aside and start again; it is not deleted for you"
    )]
    Open { path: PathBuf, reason: String },
    #[error("state store: {0}")]
    Io(String),
}

pub struct StateStore {
    db: sled::Db,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("state.sled");
        // sled may panic on some corruptions instead of returning an error;
        // turn that into a clear error naming the store.
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(&path).open());
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => {
                return Err(StateError::Open {
                    path,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(StateError::Open {
                    path,
                    reason: "the store is corrupt (sled panicked while opening it)".into(),
                })
            }
        };
        Ok(Self { db })
    }

    pub fn get(&self, process: &ProcessId) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get(process.to_string())
            .map(|v| v.map(|ivec| ivec.to_vec()))
            .map_err(|e| StateError::Io(e.to_string()))
    }

    pub fn set(&self, process: &ProcessId, bytes: &[u8]) -> Result<(), StateError> {
        self.db
            .insert(process.to_string(), bytes)
            .map_err(|e| StateError::Io(e.to_string()))?;
        self.flush()
    }

    pub fn clear(&self, process: &ProcessId) -> Result<(), StateError> {
        self.db
            .remove(process.to_string())
            .map_err(|e| StateError::Io(e.to_string()))?;
        self.flush()
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StateError::Io(e.to_string()))
    }
}
