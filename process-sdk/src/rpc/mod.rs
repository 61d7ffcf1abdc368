//! Apps written with [`macro@crate::app`]: typed methods called by JSON
//! messages, typed error replies, async handlers, persisted state, guards
//! and generated clients.
//!
//! # Wire format
//!
//! A call is a JSON object with one key, the method name, whose value is an
//! object of named arguments: `{"put": {"key": "a", "text": "hi"}}`. A
//! method without arguments takes `{"stats": {}}` (or `null`).
//!
//! Every reply is an envelope:
//!
//! - success: `{"ok": <the handler's value>}`;
//! - failure: `{"error": {"code": "<stable-code>", "message": "<text>"}}`,
//!   with an optional `"details"` value.
//!
//! Codes raised by the SDK itself are in [`codes`]; handlers add their own
//! through [`AppError::new`] or `From<TheirError> for AppError`. HTTP
//! handlers answer the plain value with status 200, and the error envelope
//! with a status derived from the code ([`AppError::http_status`]).

mod client;
mod ctx;
mod http_args;
mod runtime;
mod state;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use client::{call, call_within, ClientError};
pub use ctx::{Ctx, Via};
pub use runtime::{App, Outcome, Route, RouteKind, WsEvent};
pub use state::{Persist, State};

/// Glue used by the code [`macro@crate::app`] generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use super::http_args::Args;
    pub use super::runtime::{
        export_deliver, export_init, ok_json, parse_args, persisted_decode, persisted_encode,
        publish_resource, AppCell, Reply,
    };
    pub use serde;
    pub use serde_json;
}

/// Exports an [`App`] as this component's `init` and `run` (which takes
/// the events from the node and handles each in order, sources from the
/// peer table); emitted by [`macro@crate::app`].
#[doc(hidden)]
#[macro_export]
macro_rules! __export_app {
    ($app:ty) => {
        const _: () = {
            ::std::thread_local! {
                static HEARTH_APP: $crate::rpc::__private::AppCell<$app> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct HearthExports;

            impl $crate::bindings::Guest for HearthExports {
                fn init(our: $crate::bindings::Address) {
                    $crate::rpc::__private::export_init::<$app>(&HEARTH_APP, our);
                }

                fn run() {
                    $crate::app::run_events(|event| {
                        $crate::rpc::__private::export_deliver::<$app>(&HEARTH_APP, event)
                    });
                }
            }

    $crate::bindings::export!(HearthExports with_types_in $crate::bindings);
        };
    };
}

/// Stable error codes raised by the SDK before or around a handler.
pub mod codes {
    /// The body is not a call, or its arguments do not fit the method.
    pub const BAD_REQUEST: &str = "bad-request";
    /// No method of that name.
    pub const UNKNOWN_METHOD: &str = "unknown-method";
    /// The method exists but not for this kind of caller (local, remote, HTTP).
    pub const NOT_ALLOWED: &str = "not-allowed";
    /// A guard rejected the caller.
    pub const FORBIDDEN: &str = "forbidden";
    /// Something the handler looked for does not exist.
    pub const NOT_FOUND: &str = "not-found";
    /// The handler's state could not be saved; its effect is not durable.
    pub const STATE_NOT_SAVED: &str = "state-not-saved";
    /// The reply could not be encoded, or another internal failure.
    pub const INTERNAL: &str = "internal";
    /// The reply of a called app could not be read.
    pub const BAD_REPLY: &str = "bad-reply";
}

/// A typed error reply: a stable `code`, a human `message`, and optional
/// structured `details`. Serialized inside `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppError {
    /// Stable, kebab-case, for programs: `not-found`, `forbidden`...
    pub code: String,
    /// For people.
    pub message: String,
    /// Optional structured data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl AppError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        AppError {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details (any serde value; dropped if it cannot be
    /// encoded).
    pub fn with_details<T: Serialize>(mut self, details: &T) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// `bad-request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::new(codes::BAD_REQUEST, message)
    }

    /// `forbidden`, for guards.
    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(codes::FORBIDDEN, message)
    }

    /// `not-found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        AppError::new(codes::NOT_FOUND, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        AppError::new(codes::INTERNAL, message)
    }

    /// The HTTP status an `#[http]` handler answers with this error:
    /// 400 `bad-request`, 403 `forbidden`, 404 `unknown-method`/`not-found`,
    /// 405 `not-allowed`, 500 `internal`/`state-not-saved`, 502 `bad-reply`
    /// and errors of called processes, 422 for any code of the app's own.
    pub fn http_status(&self) -> u16 {
        match self.code.as_str() {
            codes::BAD_REQUEST => 400,
            codes::FORBIDDEN => 403,
            codes::UNKNOWN_METHOD | codes::NOT_FOUND => 404,
            codes::NOT_ALLOWED => 405,
            codes::INTERNAL | codes::STATE_NOT_SAVED => 500,
            codes::BAD_REPLY => 502,
            "timeout" => 504,
            "offline" | "unknown-process" | "process-exited" | "mailbox-full" => 502,
            _ => 422,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl From<crate::SendError> for AppError {
    /// The send error's kind (`timeout`, `offline`...) becomes the code.
    fn from(error: crate::SendError) -> Self {
        AppError::new(error.kind().as_str(), error.to_string())
    }
}

impl From<crate::StateError> for AppError {
    fn from(error: crate::StateError) -> Self {
        AppError::new(codes::STATE_NOT_SAVED, error.to_string())
    }
}

#[cfg(test)]
mod tests;
