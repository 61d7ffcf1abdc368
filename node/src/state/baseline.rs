//! The baseline of `kit bench state`: raw sled, one `insert` + `flush()`
//! per operation, with the same number of concurrent writers. Here because
//! only this module opens sled.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{io, StateError};

/// `writers` threads each insert then flush `ops_each` times into a fresh
/// store in `dir`. Returns the total writes and the elapsed time.
pub fn raw_insert_flush(
    dir: &Path,
    writers: usize,
    ops_each: usize,
) -> Result<(u64, Duration), StateError> {
    let db = sled::Config::new().path(dir).open().map_err(io)?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let db = db.clone();
                scope.spawn(move || -> Result<(), sled::Error> {
                    for i in 0..ops_each {
                        db.insert(format!("w{w}"), &(i as u64).to_le_bytes())?;
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
    Ok(((writers * ops_each) as u64, started.elapsed()))
}
