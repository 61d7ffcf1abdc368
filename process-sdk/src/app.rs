//! The app entry point: the [`Process`] trait and the [`crate::process!`]
//! macro that wires it to the exported `init`, `handle`, `handle-batch`,
//! `deliver` and `deliver-batch`.
//!
//! Every event goes first to the executor: a response or failure whose
//! correlation id an [`crate::Ask`] awaits wakes that task. Everything else
//! (all requests, and replies no one awaits) goes to the app. Woken and
//! newly spawned tasks run after the app returns.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::hearth::process::kernel;
use crate::{executor, wit, Address, Failure, Incoming};

/// A process: built once by `init`, then called once per delivered event.
///
/// ```ignore
/// struct Counter { seen: u64 }
///
/// impl hearth_sdk::Process for Counter {
///     fn init(_our: hearth_sdk::Address) -> Self {
///         Counter { seen: 0 }
///     }
///     fn handle(&mut self, msg: hearth_sdk::Incoming) {
///         self.seen += 1;
///         if msg.expects_response().is_some() {
///             let _ = hearth_sdk::respond_json(msg.id(), &self.seen);
///         }
///     }
/// }
///
/// hearth_sdk::process!(Counter);
/// ```
pub trait Process: Sized + 'static {
    /// Builds the process when it starts (or restarts).
    fn init(our: Address) -> Self;

    /// Handles a request, or a response that no awaiting task claimed
    /// (for example one sent with [`crate::Request::send`] and a timeout).
    fn handle(&mut self, msg: Incoming);

    /// Handles a failure of one of our requests that no awaiting task
    /// claimed. By default it is logged as a warning.
    fn failed(&mut self, failure: Failure) {
        crate::log::warn!("request {} failed: {}", failure.id(), failure.error());
    }
}

thread_local! {
    static OUR: RefCell<Option<Address>> = const { RefCell::new(None) };
}

/// Our own address: remembered from `init`, else asked of the node.
pub fn our() -> Address {
    with_our(Address::clone)
}

/// `f` of our own address, without copying it (the per-request checks of
/// `http` compare node names this way). `f` must not call [`our`].
pub(crate) fn with_our<R>(f: impl FnOnce(&Address) -> R) -> R {
    OUR.with(|cell| {
        if cell.borrow().is_none() {
            let our = Address::from(kernel::our());
            *cell.borrow_mut() = Some(our);
        }
        match cell.borrow().as_ref() {
            Some(our) => f(our),
            None => f(&Address::from(kernel::our())),
        }
    })
}

/// Where [`crate::process!`] keeps the app between calls.
#[doc(hidden)]
pub type AppCell<P> = RefCell<Option<P>>;

/// The exported `init`, for [`crate::process!`].
#[doc(hidden)]
pub fn run_init<P: Process>(app: &'static LocalKey<AppCell<P>>, our: wit::Address) {
    let our = Address::from(our);
    OUR.with(|cell| *cell.borrow_mut() = Some(our.clone()));
    let built = P::init(our);
    app.with(|cell| *cell.borrow_mut() = Some(built));
    executor::run_ready();
}

/// The exported `handle`, for [`crate::process!`].
#[doc(hidden)]
pub fn run_handle<P: Process>(app: &'static LocalKey<AppCell<P>>, event: wit::Event) {
    match event {
        wit::Event::Message(incoming) => on_incoming(app, Incoming::from(incoming)),
        wit::Event::Failed(failure) => on_failure(app, Failure::from(failure)),
    }
    executor::run_ready();
}

/// The exported `handle-batch`, for [`crate::process!`]: each event in
/// order, exactly as if each had come through `handle`.
#[doc(hidden)]
pub fn run_handle_batch<P: Process>(app: &'static LocalKey<AppCell<P>>, events: Vec<wit::Event>) {
    for event in events {
        run_handle(app, event);
    }
}

/// The exported `deliver` (WIT 0.1.2), for [`crate::process!`]: as
/// `handle`, the source read from the peer table.
#[doc(hidden)]
pub fn run_deliver<P: Process>(app: &'static LocalKey<AppCell<P>>, event: wit::PeerEvent) {
    match event {
        wit::PeerEvent::Message(incoming) => {
            if let Some(incoming) = Incoming::from_peer(incoming) {
                on_incoming(app, incoming);
            }
        }
        wit::PeerEvent::Failed(failure) => on_failure(app, Failure::from(failure)),
    }
    executor::run_ready();
}

/// The exported `deliver-batch`, for [`crate::process!`]: each event in
/// order, as `deliver` would.
#[doc(hidden)]
pub fn run_deliver_batch<P: Process>(
    app: &'static LocalKey<AppCell<P>>,
    events: Vec<wit::PeerEvent>,
) {
    for event in events {
        run_deliver(app, event);
    }
}

fn on_incoming<P: Process>(app: &'static LocalKey<AppCell<P>>, incoming: Incoming) {
    // Request ids belong to the asker, so only responses can match an
    // `Ask` of ours.
    let unclaimed = if incoming.is_request() {
        Some(incoming)
    } else {
        executor::claim_response(incoming)
    };
    if let Some(msg) = unclaimed {
        with_app(app, |process| process.handle(msg));
    }
}

fn on_failure<P: Process>(app: &'static LocalKey<AppCell<P>>, failure: Failure) {
    if let Some(failure) = executor::claim_failure(failure) {
        with_app(app, |process| process.failed(failure));
    }
}

fn with_app<P: Process>(app: &'static LocalKey<AppCell<P>>, f: impl FnOnce(&mut P)) {
    app.with(|cell| match cell.borrow_mut().as_mut() {
        Some(process) => f(process),
        None => crate::log::error("event delivered before init; dropped"),
    });
}

/// Exports a [`Process`] type as this component's `init` and `handle`.
/// Use it once, in the crate root of a `cdylib`:
///
/// ```ignore
/// hearth_sdk::process!(MyApp);
/// ```
#[macro_export]
macro_rules! process {
    ($app:ty) => {
        const _: () = {
            ::std::thread_local! {
                static HEARTH_APP: $crate::app::AppCell<$app> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct HearthExports;

            impl $crate::bindings::Guest for HearthExports {
                fn init(our: $crate::bindings::Address) {
                    $crate::app::run_init::<$app>(&HEARTH_APP, our);
                }

                fn handle(event: $crate::bindings::Event) {
                    $crate::app::run_handle::<$app>(&HEARTH_APP, event);
                }

                fn handle_batch(events: ::std::vec::Vec<$crate::bindings::Event>) {
                    $crate::app::run_handle_batch::<$app>(&HEARTH_APP, events);
                }

                fn deliver(event: $crate::bindings::PeerEvent) {
                    $crate::app::run_deliver::<$app>(&HEARTH_APP, event);
                }

                fn deliver_batch(events: ::std::vec::Vec<$crate::bindings::PeerEvent>) {
                    $crate::app::run_deliver_batch::<$app>(&HEARTH_APP, events);
                }
            }

    $crate::bindings::export!(HearthExports with_types_in $crate::bindings);
        };
    };
}
