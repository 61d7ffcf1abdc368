//! Procedural macros for Hearth apps, re-exported by `hearth-sdk`.
//!
//! [`macro@app`] turns the `impl` of an app's state type into a process:
//! method dispatch from `{"method": {"arg": ..}}` messages, typed error
//! replies, HTTP/WebSocket bindings, timers, persisted state, guards, a
//! typed Rust client module and a machine-readable API description.
//! Misuse is reported as compile errors on the offending tokens.

mod describe;
mod expand;
mod model;

use proc_macro::TokenStream;

/// Makes an app of the state type whose `impl` it decorates.
///
/// Arguments: `persist = "on_change" | "always" | "never"` (default
/// `on_change`), `guard = Self::check` (runs before every method call).
///
/// Method attributes: `#[init]`, `#[local]`, `#[remote]`,
/// `#[http(method = "GET", path = "/api/x", access = "authenticated")]`,
/// `#[ws(path = "/ws")]`, `#[timer(every_ms = 1000)]`, `#[fallback]`;
/// `#[local(guard = Self::admin)]` adds a per-method guard. Methods without
/// these attributes are ordinary helpers. See `hearth_sdk::rpc` for the
/// wire format and the runtime.
#[proc_macro_attribute]
pub fn app(args: TokenStream, item: TokenStream) -> TokenStream {
    match model::App::parse(args.into(), item.into()) {
        Ok(app) => expand::expand(&app).into(),
        Err(error) => error.to_compile_error().into(),
    }
}
