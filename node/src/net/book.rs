//! The address book: names seen and verified, persisted in
//! `<home>/peers.json`.
//!
//! **Invariant:** a name, once bound to a key, stays bound to it. A record
//! for the same name from another key is refused and logged; a newer record
//! (higher `seq`) from the same key replaces the old one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use libp2p::PeerId;
use tracing::warn;

use super::record::NameRecord;

pub const BOOK_FILE: &str = "peers.json";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name} is bound to {bound}; refused a record from {claimed}")]
pub struct Impersonation {
    pub name: String,
    pub bound: String,
    pub claimed: String,
}

pub struct AddressBook {
    path: PathBuf,
    entries: Mutex<Entries>,
}

/// Records by name, and the name last bound to each peer id (looked up
/// for every connected peer and every hello).
#[derive(Default)]
struct Entries {
    by_name: HashMap<String, NameRecord>,
    name_by_peer: HashMap<String, String>,
}

impl Entries {
    fn insert(&mut self, record: NameRecord) {
        self.name_by_peer
            .insert(record.peer_id.clone(), record.name.clone());
        self.by_name.insert(record.name.clone(), record);
    }
}

impl AddressBook {
    pub fn open(home: &std::path::Path) -> Self {
        let path = home.join(BOOK_FILE);
        let mut entries = Entries::default();
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<NameRecord>>(&bytes).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.verify().is_ok())
            .for_each(|r| entries.insert(r));
        Self {
            path,
            entries: Mutex::new(entries),
        }
    }

    pub fn get(&self, name: &str) -> Option<NameRecord> {
        self.lock().by_name.get(name).cloned()
    }

    pub fn name_of(&self, peer: &PeerId) -> Option<String> {
        self.lock().name_by_peer.get(&peer.to_base58()).cloned()
    }

    /// Bind a verified record's name to its key, first come first served.
    pub fn bind(&self, record: &NameRecord) -> Result<(), Impersonation> {
        let mut entries = self.lock();
        if let Some(existing) = entries.by_name.get(&record.name) {
            if existing.peer_id != record.peer_id {
                let refused = Impersonation {
                    name: record.name.clone(),
                    bound: existing.peer_id.clone(),
                    claimed: record.peer_id.clone(),
                };
                warn!(%refused, "impersonation attempt refused");
                return Err(refused);
            }
            if existing.seq >= record.seq {
                return Ok(());
            }
        }
        entries.insert(record.clone());
        let snapshot: Vec<NameRecord> = entries.by_name.values().cloned().collect();
        drop(entries);
        self.persist(&snapshot);
        Ok(())
    }

    fn persist(&self, records: &[NameRecord]) {
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(records)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!("cannot save the address book {}: {e}", self.path.display());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
