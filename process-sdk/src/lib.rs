//! The guest library for Hearth processes.
//!
//! A process is a WebAssembly component that talks only by messages. The
//! node calls its `run` once; the SDK takes events there and calls the app
//! once per event; the app itself has no blocking receive.
//! This crate wraps the `hearth:process` WIT world (`wit/process.wit`) in
//! typed Rust:
//!
//! - [`ProcessId`] and [`Address`], parsed from and shown as
//!   `process:package:publisher` and `node@process:package:publisher`;
//! - [`Request`] and [`Response`] builders, [`respond`], and [`Incoming`] /
//!   [`Failure`] for what arrives;
//! - [`Request::ask`], a future resolved by the correlated response or
//!   failure, run with [`spawn_task`] on a small single-threaded executor
//!   that wakes a task only when its own reply arrives;
//! - typed state ([`get_state`], [`set_state`], [`clear_state`]), [`spawn`]
//!   of child processes, and the [`log`] module;
//! - the [`Process`] trait and the [`process!`] macro, the app entry point.
//!
//! ```ignore
//! use hearth_sdk::{Address, Incoming, Process};
//!
//! struct Hello;
//!
//! impl Process for Hello {
//!     fn init(_our: Address) -> Self {
//!         Hello
//!     }
//!     fn handle(&mut self, msg: Incoming) {
//!         if msg.expects_response().is_some() {
//!             let _ = hearth_sdk::respond(msg.id(), b"hello".to_vec());
//!         }
//!     }
//! }
//!
//! hearth_sdk::process!(Hello);
//! ```

pub mod address;
pub mod app;
pub mod error;
pub mod executor;
pub mod http;
pub mod json;
pub mod kv;
pub mod log;
pub mod message;
mod peers;
pub mod request;
pub mod rooms;
pub mod rpc;
pub mod spawn;
pub mod state;
pub mod timer;
pub mod vfs;

/// Raw bindings generated from `wit/process.wit`.
///
/// Public so that [`process!`] can reach the generated `export!` macro and
/// so that a process may call the kernel directly; prefer the typed API.
#[doc(hidden)]
#[allow(clippy::all)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        // `init`, then `run` once (WIT 0.1.3): the process stays in
        // `run` and takes its events with `inbox.next-events`, each
        // naming its source by a peer-table slot.
        world: "process-loop",
        pub_export_macro: true,
        default_bindings_module: "hearth_sdk::bindings",
        generate_all,
    });
}

/// The WIT records of `hearth:process/types`, for conversions.
pub(crate) use bindings::hearth::process::types as wit;

pub use address::{Address, AddressError, ProcessId};
pub use app::{our, Process};
pub use error::{SendError, SendErrorKind};
pub use executor::{spawn_task, Ask};
pub use kv::{Kv, KvBatch, KvError};
pub use message::{Blob, Failure, Incoming};
pub use request::{respond, respond_json, Request, Response, DEFAULT_ASK_TIMEOUT_MS};
pub use spawn::{spawn, OnExit, SpawnError, SpawnOptions};
pub use state::{clear_state, get_state, set_state, StateError};
pub use vfs::{Vfs, VfsError};

/// The app macro: see [`rpc`] for the wire format and runtime.
pub use hearth_macros::app;
pub use rpc::{AppError, Ctx, State};
