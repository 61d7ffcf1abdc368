//! Logging through the node's `log` host function.
//!
//! Functions take a ready message; the macros format like `format!`:
//!
//! ```ignore
//! hearth_sdk::log::info!("got {} bytes from {}", msg.body().len(), msg.source());
//! hearth_sdk::log::warn("disk almost full");
//! ```

use crate::bindings::hearth::process::kernel;
use crate::wit;

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for developers.
    Debug,
    /// Even more detail.
    Trace,
}

impl From<Level> for wit::LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Error => wit::LogLevel::Error,
            Level::Warn => wit::LogLevel::Warn,
            Level::Info => wit::LogLevel::Info,
            Level::Debug => wit::LogLevel::Debug,
            Level::Trace => wit::LogLevel::Trace,
        }
    }
}

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    kernel::log(level.into(), message);
}

/// Logs at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hearth_log_error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hearth_log_warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hearth_log_info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hearth_log_debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hearth_log_trace {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Debug`].
pub use crate::__hearth_log_debug as debug;
/// Logs a `format!`-style message at [`Level::Error`].
pub use crate::__hearth_log_error as error;
/// Logs a `format!`-style message at [`Level::Info`].
pub use crate::__hearth_log_info as info;
/// Logs a `format!`-style message at [`Level::Trace`].
pub use crate::__hearth_log_trace as trace;
/// Logs a `format!`-style message at [`Level::Warn`].
pub use crate::__hearth_log_warn as warn;
