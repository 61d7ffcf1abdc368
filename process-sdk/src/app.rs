//! The app entry point: the [`Process`] trait and the [`crate::process!`]
//! macro that wires it to the exported `init` and `run` (WIT world
//! `process-loop`): `run` takes events from the node with
//! `inbox.next-events` and handles them one by one, never returning.
//!
//! Every event goes first to the executor: a response or failure whose
//! correlation id an [`crate::Ask`] awaits wakes that task. Everything else
//! (all requests, and replies no one awaits) goes to the app. Woken and
//! newly spawned tasks run after the app returns, before the next event.

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

/// The exported `run` (WIT 0.1.3): takes the next events from the node
/// and hands each to `deliver`, in order, for ever. The node ends the
/// process while it waits in `next-events`.
#[doc(hidden)]
pub fn run_events(mut deliver: impl FnMut(wit::PeerEvent)) {
    loop {
        for event in crate::bindings::hearth::process::inbox::next_events() {
            deliver(event);
        }
    }
}

/// One event of `run`, for [`crate::process!`]: its source read from the
/// peer table; then every task it woke runs.
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

/// Exports a [`Process`] type as this component's `init` and `run`.
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

                fn run() {
                    $crate::app::run_events(|event| {
                        $crate::app::run_deliver::<$app>(&HEARTH_APP, event)
                    });
                }
            }

    $crate::bindings::export!(HearthExports with_types_in $crate::bindings);
        };
    };
}
