//! Per-request information for guards and handlers.

use std::any::Any;

use crate::Address;

/// How a call reached the app; a method is callable only the ways its
/// attributes allow (`#[local]`, `#[remote]`, `#[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// From a process (or the injector) on this node.
    Local,
    /// From another node.
    Remote,
    /// From a browser or HTTP client through the node's HTTP server.
    Http,
    /// Internal: `#[init]`, `#[timer]`, `#[ws]`.
    Internal,
}

impl Via {
    /// `local`, `remote`, `http` or `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Local => "local",
            Via::Remote => "remote",
            Via::Http => "http",
            Via::Internal => "internal",
        }
    }
}

/// The context of one request: who sent it, how, and anything a guard
/// attached. Guards take `&mut Ctx`, sync handlers `&Ctx`, async handlers
/// `Ctx` by value.
pub struct Ctx {
    id: u64,
    caller: Address,
    via: Via,
    method: String,
    user: Option<String>,
    attached: Vec<Box<dyn Any>>,
}

impl Ctx {
    pub(crate) fn new(id: u64, caller: Address, via: Via) -> Self {
        Ctx {
            id,
            caller,
            via,
            method: String::new(),
            user: None,
            attached: Vec::new(),
        }
    }

    /// The context of internal calls (`#[timer]`): caller is this process.
    #[doc(hidden)]
    pub fn internal() -> Self {
        Ctx::new(0, crate::our(), Via::Internal)
    }

    pub(crate) fn set_method(&mut self, method: &str) {
        self.method = method.to_string();
    }

    pub(crate) fn set_user(&mut self, user: Option<String>) {
        self.user = user;
    }

    /// The request's correlation id (0 for internal calls).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address of the process that sent the request; for HTTP calls,
    /// the node's HTTP server.
    pub fn caller(&self) -> &Address {
        &self.caller
    }

    /// How the call arrived.
    pub fn via(&self) -> Via {
        self.via
    }

    /// The method called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// For HTTP calls: the logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Attaches a value for the handler (one per type; a second replaces
    /// the first). Guards use it to pass on who the caller is.
    pub fn attach<T: Any>(&mut self, value: T) {
        self.attached.retain(|v| !v.is::<T>());
        self.attached.push(Box::new(value));
    }

    /// The value of type `T` a guard attached.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.attached.iter().find_map(|v| v.downcast_ref::<T>())
    }
}
