//! The messages of `timer:distro:sys`. A reply body is
//! `{"Ok": TimerResponse}` or `{"Err": TimerError}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TimerRequest {
    /// Answer this request after `ms` milliseconds. The request's own
    /// timeout must be longer than `ms`.
    SetTimer { ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerResponse {
    /// The timer of `ms` milliseconds fired.
    Fired { ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TimerError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0} timers are pending already; retry later")]
    TooMany(usize),
    #[error("a timer must expect a response (set a timeout longer than its delay)")]
    NoAsker,
    #[error("delays are at most {0} ms")]
    TooLong(u64),
}
