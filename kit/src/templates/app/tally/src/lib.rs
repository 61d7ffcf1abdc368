//! `tally`: named counters, kept across restarts. Any node may count
//! here (`#[remote]`); the state is saved after every call that changed
//! it, before the answer goes out, so an answered `add` survives a crash.

use std::collections::BTreeMap;

use hearth_sdk::{app, log, AppError};
use serde::{Deserialize, Serialize};

/// Longest counter name, in bytes.
const MAX_NAME_BYTES: usize = 64;

/// Most counters kept: every input is bounded.
const MAX_COUNTERS: usize = 1000;

/// Why a call failed; callers get `{"error": {"code": "empty-name", ..}}`.
#[derive(Debug)]
pub enum TallyError {
    EmptyName,
    NameTooLong,
    Full,
    Unknown(String),
}

impl From<TallyError> for AppError {
    fn from(error: TallyError) -> Self {
        match error {
            TallyError::EmptyName => AppError::new("empty-name", "a counter needs a name"),
            TallyError::NameTooLong => AppError::new(
                "name-too-long",
                format!("a counter name is at most {MAX_NAME_BYTES} bytes"),
            ),
            TallyError::Full => AppError::new("full", format!("at most {MAX_COUNTERS} counters")),
            TallyError::Unknown(name) => AppError::not_found(format!("no counter `{name}`")),
        }
    }
}

/// The state: saved on change, loaded at start.
#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    counts: BTreeMap<String, u64>,
}

#[app(persist = "on_change")]
impl Tally {
    #[init]
    fn started(&mut self) {
        log::info!("tally started with {} counters", self.counts.len());
    }

    /// Adds `by` to the counter `name` (made at 0) and answers its value.
    #[local]
    #[remote]
    fn add(&mut self, name: String, by: u64) -> Result<u64, TallyError> {
        if name.is_empty() {
            return Err(TallyError::EmptyName);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(TallyError::NameTooLong);
        }
        if !self.counts.contains_key(&name) && self.counts.len() >= MAX_COUNTERS {
            return Err(TallyError::Full);
        }
        let count = self.counts.entry(name).or_default();
        *count = count.saturating_add(by);
        Ok(*count)
    }

    /// The value of the counter `name`.
    #[local]
    #[remote]
    fn get(&self, name: String) -> Result<u64, TallyError> {
        self.counts
            .get(&name)
            .copied()
            .ok_or(TallyError::Unknown(name))
    }

    /// Every counter, by name.
    #[local]
    fn all(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }
}
