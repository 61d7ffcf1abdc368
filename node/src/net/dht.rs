//! The name records Hearth keeps in its Kademlia DHT, and what a node
//! agrees to store for others.
//!
//! **Invariant:** the DHT store holds only records under `/hearth/name/<name>`
//! whose value is a [`NameRecord`] for that name that verifies. A record
//! replaces a stored one only if it comes from the same key with a higher
//! `seq`; another key never does, and neither does a name our address book
//! binds to another key. Each peer may store at most [`PUTS_PER_SECOND`]
//! records a second (burst [`PUT_BURST`]); the rest are refused.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::kad::{self, store::MemoryStoreConfig};
use libp2p::PeerId;

use super::book::AddressBook;
use super::record::{NameRecord, MAX_RECORD_BYTES};

const NAME_PREFIX: &str = "/hearth/name/";
/// Records one peer may store with us per second, on average.
pub const PUTS_PER_SECOND: f64 = 2.0;
/// Records one peer may store in a burst (a node republishing after a
/// restart puts one; a few renames fit).
pub const PUT_BURST: f64 = 8.0;
/// Peers whose put budget is remembered; past this the oldest are
/// forgotten (a forgotten peer starts again with a full burst).
const LIMITED_PEERS: usize = 4096;
/// Records the store holds: every name of a large network, at most
/// 8 KiB each.
const MAX_STORED_RECORDS: usize = 8 * 1024;

pub fn name_key(name: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("{NAME_PREFIX}{name}"))
}

/// The store's limits: name records only, no provider records.
pub fn store_config() -> MemoryStoreConfig {
    MemoryStoreConfig {
        max_records: MAX_STORED_RECORDS,
        max_value_bytes: MAX_RECORD_BYTES,
        max_providers_per_key: 0,
        max_provided_keys: 0,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("not a name key")]
    Key,
    #[error("record: {0}")]
    Record(String),
    #[error("the name is held by another key")]
    Taken,
    #[error("not newer than the stored record")]
    Stale,
    #[error("too many records from this peer")]
    RateLimited,
}

/// Whether `incoming` may be stored, given what is stored under its key
/// and what our book binds.
pub fn check(
    incoming: &kad::Record,
    stored: Option<&kad::Record>,
    book: &AddressBook,
) -> Result<NameRecord, Refusal> {
    let key = std::str::from_utf8(incoming.key.as_ref()).map_err(|_| Refusal::Key)?;
    let name = key.strip_prefix(NAME_PREFIX).ok_or(Refusal::Key)?;
    let record =
        NameRecord::from_bytes(&incoming.value).map_err(|e| Refusal::Record(e.to_string()))?;
    if record.name != name {
        return Err(Refusal::Record("it names another node".into()));
    }
    record
        .verify()
        .map_err(|e| Refusal::Record(e.to_string()))?;
    if book
        .get(name)
        .is_some_and(|bound| bound.peer_id != record.peer_id)
    {
        return Err(Refusal::Taken);
    }
    if let Some(stored) = stored.and_then(|s| NameRecord::from_bytes(&s.value).ok()) {
        if stored.peer_id != record.peer_id {
            return Err(Refusal::Taken);
        }
        if stored.seq >= record.seq {
            return Err(Refusal::Stale);
        }
    }
    Ok(record)
}

/// A token bucket per peer for inbound puts.
#[derive(Default)]
pub struct PutLimiter {
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl PutLimiter {
    /// Take one put from `peer`'s budget.
    pub fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.buckets.len() >= LIMITED_PEERS && !self.buckets.contains_key(&peer) {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.buckets.remove(&oldest);
            }
        }
        let (tokens, at) = self.buckets.entry(peer).or_insert((PUT_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * PUTS_PER_SECOND).min(PUT_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn kad_record(key: &Keypair, name: &str, seq: u64) -> kad::Record {
        let record = NameRecord::sign(key, name, vec![], seq).unwrap();
        kad::Record::new(name_key(name), record.to_bytes())
    }

    #[test]
    fn only_valid_records_from_the_holder_are_stored() {
        let home = std::env::temp_dir().join(format!("hearth-dht-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let book = AddressBook::open(&home);
        let (alice, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let first = kad_record(&alice, "alice.os", 1);
        assert!(check(&first, None, &book).is_ok());
        assert_eq!(
            check(&kad_record(&mallory, "alice.os", 5), Some(&first), &book),
            Err(Refusal::Taken)
        );
        assert_eq!(
            check(&kad_record(&alice, "alice.os", 1), Some(&first), &book),
            Err(Refusal::Stale)
        );
        assert!(check(&kad_record(&alice, "alice.os", 2), Some(&first), &book).is_ok());
        // A record under another name's key, and junk.
        let mut moved = kad_record(&mallory, "mallory.os", 1);
        moved.key = name_key("alice.os");
        assert!(matches!(
            check(&moved, None, &book),
            Err(Refusal::Record(_))
        ));
        let junk = kad::Record::new(name_key("x.os"), vec![0xff; 40]);
        assert!(matches!(check(&junk, None, &book), Err(Refusal::Record(_))));
        let other = kad::Record::new(kad::RecordKey::new(&"/ipfs/x"), vec![]);
        assert_eq!(check(&other, None, &book), Err(Refusal::Key));
        // The book's binding wins over an empty store.
        book.bind(&NameRecord::sign(&alice, "alice.os", vec![], 1).unwrap())
            .unwrap();
        assert_eq!(
            check(&kad_record(&mallory, "alice.os", 9), None, &book),
            Err(Refusal::Taken)
        );
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn puts_are_rate_limited_per_peer() {
        let mut limiter = PutLimiter::default();
        let (peer, other, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        let allowed = (0..100).filter(|_| limiter.allow(peer, t0)).count();
        assert_eq!(allowed, PUT_BURST as usize);
        assert!(limiter.allow(other, t0));
        assert!(limiter.allow(peer, t0 + std::time::Duration::from_secs(1)));
    }
}
