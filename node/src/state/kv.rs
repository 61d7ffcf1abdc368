//! Storage of the key-value service: one sled tree per database, named
//! after the owning package and the database. The kv service sees
//! [`KvDb`], never a sled type.

use super::{io, StateError, StateStore};

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum KvWrite {
    Set(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// An open key-value database. Writes are durable when they return.
pub struct KvDb<'a> {
    store: &'a StateStore,
    tree: sled::Tree,
}

fn tree_name(owner: &str, db: &str) -> String {
    format!("kv\0{owner}\0{db}")
}

impl StateStore {
    /// The database `db` of package `owner`. With `create`, it is made if
    /// missing; otherwise a missing database is `None`.
    pub fn kv_db(
        &self,
        owner: &str,
        db: &str,
        create: bool,
    ) -> Result<Option<KvDb<'_>>, StateError> {
        let name = tree_name(owner, db);
        if !create && !self.db.tree_names().iter().any(|n| n == name.as_bytes()) {
            return Ok(None);
        }
        let tree = self.db.open_tree(name).map_err(io)?;
        Ok(Some(KvDb { store: self, tree }))
    }

    /// Names of the databases of `owner`.
    pub fn kv_databases(&self, owner: &str) -> Vec<String> {
        let prefix = format!("kv\0{owner}\0");
        self.db
            .tree_names()
            .iter()
            .filter_map(|n| n.strip_prefix(prefix.as_bytes()))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    /// Bytes of keys and values in every database of `owner`.
    pub fn kv_bytes(&self, owner: &str) -> u64 {
        self.kv_databases(owner)
            .iter()
            .filter_map(|db| self.kv_db(owner, db, false).ok().flatten())
            .map(|db| db.bytes())
            .sum()
    }
}

impl KvDb<'_> {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(io)
    }

    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.tree.insert(key, value).map_err(io)?;
        self.store.durable().await
    }

    /// Returns whether the key was present.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, StateError> {
        let old = self.tree.remove(key).map_err(io)?;
        self.store.durable().await?;
        Ok(old.is_some())
    }

    /// Entries whose key starts with `prefix`, in key order, from `start`
    /// on (inclusive) when given: one page of a scan, read lazily.
    pub fn scan_from<'s>(
        &'s self,
        prefix: &'s [u8],
        start: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Entry, StateError>> + 's {
        let from = match start {
            Some(start) if start > prefix => start.to_vec(),
            _ => prefix.to_vec(),
        };
        self.tree
            .range(from..)
            .take_while(move |e| e.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io))
    }

    /// Apply every write or none, even across a crash (sled batches are
    /// atomic); durable when it returns.
    pub async fn batch(&self, writes: Vec<KvWrite>) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                KvWrite::Set(k, v) => batch.insert(k, v),
                KvWrite::Delete(k) => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch).map_err(io)?;
        self.store.durable().await
    }

    pub fn bytes(&self) -> u64 {
        self.tree
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}
