//! The app's state, shared by the handlers in flight.
//!
//! Every handler of an app runs on one thread, but async handlers
//! interleave at their `.await`s. The state therefore lives in one
//! [`State`] handle (an `Rc<RefCell<_>>`) that gives access only inside
//! synchronous closures: [`State::with`] to read, [`State::update`] to
//! change. A closure cannot `.await`, so no borrow of the state is ever
//! held while another handler runs, and the compiler enforces it: nothing
//! borrowed from the state can escape a closure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Encodes the state; `None` when it is not persisted.
pub(crate) type Encode<S> = fn(&S) -> Option<Result<Vec<u8>, String>>;

/// When the app's state is saved (`set_state`, durable when it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// After every handled message, changed or not.
    Always,
    /// After a handler that had mutable access (`&mut self` or
    /// [`State::update`]), and only if the encoded state differs from what
    /// was saved last. The default.
    OnChange,
    /// Never; the app starts from `Default` each time.
    Never,
}

/// A handle on the app's state, for async handlers: `state: State<Self>`.
/// Cloning it is cheap and gives another handle on the same state.
pub struct State<S> {
    inner: Rc<Inner<S>>,
}

struct Inner<S> {
    value: RefCell<S>,
    /// Set by mutable access since the last save.
    dirty: Cell<bool>,
    /// The bytes saved last, to skip saving an unchanged state.
    saved: RefCell<Option<Vec<u8>>>,
}

impl<S> Clone for State<S> {
    fn clone(&self) -> Self {
        State {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<S> State<S> {
    pub(crate) fn new(value: S, saved: Option<Vec<u8>>) -> Self {
        State {
            inner: Rc::new(Inner {
                value: RefCell::new(value),
                dirty: Cell::new(false),
                saved: RefCell::new(saved),
            }),
        }
    }

    /// Reads the state. The closure cannot `.await`; do not call `with` or
    /// `update` on the same state inside it (that is a borrow conflict and
    /// traps, like a nested `RefCell` borrow).
    pub fn with<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.inner.value.borrow())
    }

    /// Changes the state and marks it for saving when the handler
    /// completes. Same rules as [`State::with`].
    pub fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.inner.dirty.set(true);
        f(&mut self.inner.value.borrow_mut())
    }

    /// Saves the state per `policy` with `encode`. Returns an error text if
    /// it had to be saved and could not be.
    pub(crate) fn persist(&self, policy: Persist, encode: Encode<S>) -> Result<(), String> {
        if policy == Persist::Never || (policy == Persist::OnChange && !self.inner.dirty.get()) {
            return Ok(());
        }
        let bytes = match self.with(encode) {
            None => return Ok(()),
            Some(encoded) => encoded?,
        };
        self.inner.dirty.set(false);
        if policy == Persist::OnChange
            && self.inner.saved.borrow().as_deref() == Some(bytes.as_slice())
        {
            return Ok(());
        }
        crate::state::set_state_bytes(&bytes).map_err(|e| e.to_string())?;
        *self.inner.saved.borrow_mut() = Some(bytes);
        Ok(())
    }
}
