//! A typed client of the node's timer service `timer:distro:sys`.
//!
//! ```ignore
//! hearth_sdk::spawn_task(async move {
//!     hearth_sdk::timer::sleep_ms(250).await?;
//!     // 250 ms later
//! });
//! ```
//!
//! A pending timer costs the node one heap entry, not a task.

use serde::{Deserialize, Serialize};

use crate::kv::{call, service, DecodeError};
use crate::SendError;

/// Extra time the request waits beyond the delay for the answer to arrive.
const SLACK_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
pub enum TimerError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0} timers are pending already")]
    TooMany(usize),
    #[error("a timer must expect a response")]
    NoAsker,
    #[error("delays are at most {0} ms")]
    TooLong(u64),
    #[serde(skip)]
    #[error("timer service unreachable: {0}")]
    Send(SendError),
    #[serde(skip)]
    #[error("timer reply unreadable: {0}")]
    Decode(String),
}

impl From<SendError> for TimerError {
    fn from(e: SendError) -> Self {
        TimerError::Send(e)
    }
}

impl From<DecodeError> for TimerError {
    fn from(e: DecodeError) -> Self {
        TimerError::Decode(e.0)
    }
}

#[derive(Serialize)]
enum TimerRequest {
    SetTimer { ms: u64 },
}

#[derive(Deserialize)]
enum TimerResponse {
    Fired {
        #[allow(dead_code)]
        ms: u64,
    },
}

/// Resolves after `ms` milliseconds (as the node's timer service counts).
pub async fn sleep_ms(ms: u64) -> Result<(), TimerError> {
    let body = TimerRequest::SetTimer { ms };
    let timeout = ms.saturating_add(SLACK_MS);
    let (TimerResponse::Fired { .. }, _) =
        call::<TimerResponse, TimerError>(service("timer")?, &body, None, timeout).await?;
    Ok(())
}
