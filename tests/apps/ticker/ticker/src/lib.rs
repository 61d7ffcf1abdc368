//! `ticker`: a test app for `#[timer]` through `#[app]`. A timer method
//! counts ticks every 50 ms; the count is app state, so it is saved after
//! each tick and survives restarts.

use hearth_sdk::app;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Ticker {
    ticks: u64,
}

#[app]
impl Ticker {
    /// Every 50 ms.
    #[timer(every_ms = 50)]
    fn tick(&mut self) {
        self.ticks += 1;
    }

    /// How many ticks so far.
    #[local]
    fn ticks(&self) -> u64 {
        self.ticks
    }
}
