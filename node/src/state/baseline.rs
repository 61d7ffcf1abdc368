//! The baseline of `kit bench state`: raw sled, one `insert` + `flush()`
//! per operation, with the same number of concurrent writers, the same
//! default sled configuration as the node's store, and keys and values
//! shaped like the bench's (the caller names them). Here because only this
//! module opens sled.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{io, StateError};

/// A plain sled store kept open across the bench's rounds, as the node's
/// store is.
pub struct RawSled {
    db: sled::Db,
}

impl RawSled {
    /// Open (or create) a store in `dir` with sled's default configuration,
    /// the one [`super::StateStore::open`] uses.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let db = sled::Config::new().path(dir).open().map_err(io)?;
        Ok(Self { db })
    }

    /// `writers` threads each insert then flush `ops_each` times: writer
    /// `w` writes key `key(w)`, its `i`-th write the value `value(i)`.
    /// Returns the elapsed time.
    pub fn insert_flush(
        &self,
        writers: usize,
        ops_each: u64,
        key: &(dyn Fn(usize) -> String + Sync),
        value: &(dyn Fn(u64) -> Vec<u8> + Sync),
    ) -> Result<Duration, StateError> {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let db = &self.db;
                    scope.spawn(move || -> Result<(), sled::Error> {
                        let key = key(w);
                        for i in 0..ops_each {
                            db.insert(key.as_bytes(), value(i))?;
                            db.flush()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(sled::Error::ReportableBug("writer panicked".into())))
            })
        })
        .map_err(io)?;
        Ok(started.elapsed())
    }
}
