//! The address book: names seen and verified, persisted in
//! `<home>/peers.json`.
//!
//! **Invariant:** a name, once bound to a key, stays bound to it. A record
//! for the same name from another key is refused and logged; a newer record
//! (higher `seq`) from the same key replaces the old one. One key binds at
//! most [`MAX_NAMES_PER_KEY`] names, and the book holds at most
//! [`MAX_ENTRIES`] names. The file is written by the book's own thread,
//! batched, never on a runtime worker.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use tracing::warn;

use super::record::{NameRecord, MAX_RECORD_BYTES};

pub const BOOK_FILE: &str = "peers.json";
/// Names one key may bind: a node renamed a few times, not a squatter's
/// list.
pub const MAX_NAMES_PER_KEY: usize = 4;
/// Names the book holds at most (each record is at most 8 KiB; typical
/// ones are ~300 bytes).
pub const MAX_ENTRIES: usize = 16 * 1024;
/// Binds within this window share one write of the file.
const WRITE_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    #[error("{name} is bound to {bound}; refused a record from {claimed}")]
    Impersonation {
        name: String,
        bound: String,
        claimed: String,
    },
    #[error("key {0} already binds {MAX_NAMES_PER_KEY} names")]
    TooManyNames(String),
    #[error("the address book is full ({MAX_ENTRIES} names)")]
    Full,
}

pub struct AddressBook {
    entries: Arc<Mutex<Entries>>,
    /// Wakes the writer thread; dropping it ends the thread.
    dirty: SyncSender<()>,
}

/// Records by name, and the names bound to each peer id (looked up for
/// every connected peer and every hello).
#[derive(Default)]
struct Entries {
    by_name: HashMap<String, NameRecord>,
    names_by_peer: HashMap<String, Vec<String>>,
}

impl Entries {
    fn insert(&mut self, record: NameRecord) {
        let names = self
            .names_by_peer
            .entry(record.peer_id.clone())
            .or_default();
        // The last bound name comes last: it is the peer's name now.
        names.retain(|n| *n != record.name);
        names.push(record.name.clone());
        self.by_name.insert(record.name.clone(), record);
    }

    fn check(&self, record: &NameRecord) -> Result<bool, BindError> {
        if let Some(existing) = self.by_name.get(&record.name) {
            if existing.peer_id != record.peer_id {
                return Err(BindError::Impersonation {
                    name: record.name.clone(),
                    bound: existing.peer_id.clone(),
                    claimed: record.peer_id.clone(),
                });
            }
            return Ok(existing.seq < record.seq);
        }
        let names = self.names_by_peer.get(&record.peer_id).map_or(0, Vec::len);
        if names >= MAX_NAMES_PER_KEY {
            return Err(BindError::TooManyNames(record.peer_id.clone()));
        }
        if self.by_name.len() >= MAX_ENTRIES {
            return Err(BindError::Full);
        }
        Ok(true)
    }
}

impl AddressBook {
    pub fn open(home: &std::path::Path) -> Self {
        let path = home.join(BOOK_FILE);
        let mut entries = Entries::default();
        for record in load(&path) {
            if record.verify().is_ok() && entries.check(&record) == Ok(true) {
                entries.insert(record);
            }
        }
        let entries = Arc::new(Mutex::new(entries));
        let (dirty, wake) = sync_channel::<()>(1);
        let shared = entries.clone();
        let spawned = std::thread::Builder::new()
            .name("hearth-book".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    std::thread::sleep(WRITE_DELAY);
                    let _ = wake.try_recv();
                    let snapshot: Vec<NameRecord> =
                        lock(&shared).by_name.values().cloned().collect();
                    persist(&path, &snapshot);
                }
            });
        if let Err(e) = spawned {
            warn!("cannot start the address book writer: {e}; names will not be saved");
        }
        Self { entries, dirty }
    }

    pub fn get(&self, name: &str) -> Option<NameRecord> {
        lock(&self.entries).by_name.get(name).cloned()
    }

    /// The name the peer bound last.
    pub fn name_of(&self, peer: &PeerId) -> Option<String> {
        lock(&self.entries)
            .names_by_peer
            .get(&peer.to_base58())
            .and_then(|names| names.last().cloned())
    }

    /// Bind a verified record's name to its key, first come first served.
    pub fn bind(&self, record: &NameRecord) -> Result<(), BindError> {
        let mut entries = lock(&self.entries);
        match entries.check(record) {
            Ok(true) => entries.insert(record.clone()),
            Ok(false) => return Ok(()),
            Err(refused) => {
                warn!(%refused, "name record refused");
                return Err(refused);
            }
        }
        drop(entries);
        // A wake-up already pending covers this change too.
        if let Err(TrySendError::Disconnected(_)) = self.dirty.try_send(()) {
            warn!("the address book writer stopped; this name is not saved");
        }
        Ok(())
    }
}

fn lock(entries: &Mutex<Entries>) -> std::sync::MutexGuard<'_, Entries> {
    entries.lock().unwrap_or_else(|e| e.into_inner())
}

/// The saved records; a file too large to be a book is ignored.
fn load(path: &std::path::Path) -> Vec<NameRecord> {
    let too_large = (MAX_ENTRIES * MAX_RECORD_BYTES * 2) as u64;
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > too_large => {
            warn!(path = %path.display(), "address book too large; ignored");
            return Vec::new();
        }
        Ok(_) => {}
        Err(_) => return Vec::new(),
    }
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<NameRecord>>(&bytes).ok())
        .unwrap_or_default()
}

fn persist(path: &std::path::Path, records: &[NameRecord]) {
    let tmp = path.with_extension("json.tmp");
    let written = serde_json::to_vec_pretty(records)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        warn!("cannot save the address book {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    #[test]
    fn first_key_keeps_a_name_and_one_key_binds_few_names() {
        let home = std::env::temp_dir().join(format!("hearth-book-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let book = AddressBook::open(&home);
        let (alice, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        book.bind(&NameRecord::sign(&alice, "alice.os", vec![], 1).unwrap())
            .unwrap();
        let squat = NameRecord::sign(&mallory, "alice.os", vec![], 9).unwrap();
        assert!(matches!(
            book.bind(&squat),
            Err(BindError::Impersonation { .. })
        ));
        for i in 0..MAX_NAMES_PER_KEY {
            let record = NameRecord::sign(&mallory, &format!("m{i}.os"), vec![], 1).unwrap();
            book.bind(&record).unwrap();
        }
        let one_more = NameRecord::sign(&mallory, "m9.os", vec![], 1).unwrap();
        assert!(matches!(
            book.bind(&one_more),
            Err(BindError::TooManyNames(_))
        ));
        let peer = PeerId::from(mallory.public());
        assert_eq!(book.name_of(&peer).as_deref(), Some("m3.os"));
        drop(book);
        std::thread::sleep(WRITE_DELAY * 3);
        let again = AddressBook::open(&home);
        assert_eq!(
            again.get("alice.os").unwrap().peer_id,
            PeerId::from(alice.public()).to_base58()
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
