//! The persisted process table: processes that a package's manifest does
//! not name, that is children spawned at run time, with what is needed to
//! start them again and restore their capabilities after a node restart.
//! Manifest processes come back from `<home>/packages` at boot; their
//! capabilities are granted again from the manifest.

use serde::{Deserialize, Serialize};

use super::{io, StateError, StateStore};
use crate::types::{OnExit, ProcessId};

/// A spawned process as persisted. The child holds its parent's messaging
/// capabilities and each may message the other; a restore grants the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    pub id: ProcessId,
    pub parent: ProcessId,
    pub wasm_path: String,
    pub on_exit: OnExit,
    pub public: bool,
    pub networking: bool,
}

impl StateStore {
    /// Remember a spawned child; durable when it returns.
    pub async fn record_child(&self, record: &ChildRecord) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(record).map_err(io)?;
        self.table
            .insert(record.id.to_string(), bytes)
            .map_err(io)?;
        self.durable().await
    }

    /// Record without waiting for the flush: the caller cannot await (a
    /// synchronous host call). The next group commit makes it durable.
    pub fn record_child_soon(&self, record: &ChildRecord) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(record).map_err(io)?;
        self.table
            .insert(record.id.to_string(), bytes)
            .map_err(io)?;
        Ok(())
    }

    /// Forget a child (it exited for good, or its package was replaced).
    pub fn forget_child(&self, id: &ProcessId) -> Result<(), StateError> {
        self.table.remove(id.to_string()).map_err(io)?;
        Ok(())
    }

    /// Every persisted child, in id order.
    pub fn children(&self) -> Result<Vec<ChildRecord>, StateError> {
        self.table
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(io)?;
                serde_json::from_slice(&value).map_err(|e| StateError::Table {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Children of `package:publisher`.
    pub fn children_of_package(&self, package: &str) -> Result<Vec<ChildRecord>, StateError> {
        Ok(self
            .children()?
            .into_iter()
            .filter(|c| c.id.package_id() == package)
            .collect())
    }

    /// At open: every table entry must decode, or the node says which one
    /// is broken instead of starting with a partial table.
    pub(super) fn check_table(&self) -> Result<(), StateError> {
        self.children().map(|_| ()).map_err(|e| match e {
            StateError::Table { key, reason } => StateError::Open {
                path: self.path.clone(),
                reason: format!(
                    "process table entry {key:?} is unreadable ({reason}); \
                     the store may be corrupt"
                ),
            },
            other => other,
        })
    }
}
