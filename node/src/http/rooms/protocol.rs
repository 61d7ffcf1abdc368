//! The page side of `/hearth/ws`: what a page sends and is sent, and the
//! bounds on its frames (size, rate).

use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rooms::{RoomEvent, RoomsError};

/// Largest frame a page may send: a watch is an address, a room name and
/// a number; 4 KiB leaves room for long names and nothing else.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Largest frame the socket reads at all. A frame over
/// [`MAX_REQUEST_BYTES`] and up to this gets close code 1009 (too big); a
/// larger one ends the connection as the WebSocket layer reads it.
pub const MAX_READ_BYTES: usize = 64 * 1024;
/// Frames a page may send at once: a reconnecting page re-sends one watch
/// per room (`MAX_WATCHES_PER_CONNECTION`), four times that is a burst.
pub const FRAME_BURST: u32 = 256;
/// Frames per second a page may send after its burst; past it the
/// connection is closed with code 1008 (policy), so one tab cannot keep
/// the node busy with watch and unwatch.
pub const FRAMES_PER_SECOND: u32 = 64;
/// Close code for a frame over [`MAX_REQUEST_BYTES`].
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a page over its frame rate.
pub const CLOSE_POLICY: u16 = 1008;
/// What a page sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum PageRequest {
    Watch {
        address: String,
        room: String,
        #[serde(default)]
        from: Option<u64>,
    },
    Unwatch {
        address: String,
        room: String,
    },
}

/// What a page is sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum PageEvent<'a> {
    Joined {
        address: &'a str,
        room: &'a str,
        next: u64,
        snapshot: &'a Value,
    },
    Refused {
        address: &'a str,
        room: &'a str,
        error: &'a RoomsError,
    },
    Room {
        address: &'a str,
        room: &'a str,
        event: &'a RoomEvent,
    },
    Error {
        message: &'a str,
    },
}

/// The frame's text, made once and shared by every connection it goes to.
pub(super) fn encode(event: &PageEvent<'_>) -> Utf8Bytes {
    serde_json::to_string(event).unwrap_or_default().into()
}

/// A token bucket of [`FRAME_BURST`] frames refilled at
/// [`FRAMES_PER_SECOND`].
pub(super) struct FrameBudget {
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            tokens: f64::from(FRAME_BURST),
            at: now,
        }
    }

    /// One frame, if the budget has it.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens =
            (self.tokens + refill * f64::from(FRAMES_PER_SECOND)).min(f64::from(FRAME_BURST));
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frame_budget_takes_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(t0);
        assert!((0..FRAME_BURST).all(|_| budget.take(t0)));
        assert!(!budget.take(t0), "past the burst");
        let later = t0 + Duration::from_secs(1);
        let refilled = (0..FRAME_BURST).filter(|_| budget.take(later)).count();
        assert_eq!(refilled, FRAMES_PER_SECOND as usize);
    }
}
