//! Starting child processes from our package's wasm files.

use crate::address::check_name;
use crate::bindings::hearth::process::kernel;
use crate::{wit, AddressError, ProcessId, Request, SendError};

/// What the node does when a process exits.
#[derive(Debug, Clone, Default)]
pub enum OnExit {
    /// Stay down.
    #[default]
    None,
    /// Restart with exponential backoff.
    Restart,
    /// Send these requests, then stay down.
    Requests(Vec<Request>),
}

/// How to start a child process: [`SpawnOptions::new`] then setters.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    wasm_path: String,
    on_exit: OnExit,
    public: bool,
    networking: bool,
}

impl SpawnOptions {
    /// Runs the wasm file at `wasm_path` in our package (for example
    /// `/echo.wasm`); not public, no networking, stays down on exit.
    pub fn new(wasm_path: &str) -> Self {
        SpawnOptions {
            wasm_path: wasm_path.to_string(),
            on_exit: OnExit::None,
            public: false,
            networking: false,
        }
    }

    /// Sets what happens when the child exits.
    pub fn on_exit(mut self, on_exit: OnExit) -> Self {
        self.on_exit = on_exit;
        self
    }

    /// Lets any local process message the child.
    pub fn public(mut self, public: bool) -> Self {
        self.public = public;
        self
    }

    /// Lets the child talk to other nodes.
    pub fn networking(mut self, networking: bool) -> Self {
        self.networking = networking;
        self
    }
}

/// Why a child could not be spawned.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The name is not a valid process name.
    #[error(transparent)]
    Name(#[from] AddressError),
    /// An on-exit request could not be encoded.
    #[error("on-exit request: {0}")]
    OnExitRequest(#[from] SendError),
    /// The node refused.
    #[error("spawn refused: {0}")]
    Node(String),
}

/// Starts child process `name:our-package:our-publisher`. The child holds
/// our capabilities and we may message it.
pub fn spawn(name: &str, options: SpawnOptions) -> Result<ProcessId, SpawnError> {
    check_name("process", name)?;
    let on_exit = match options.on_exit {
        OnExit::None => wit::OnExit::None,
        OnExit::Restart => wit::OnExit::Restart,
        OnExit::Requests(requests) => wit::OnExit::Requests(
            requests
                .into_iter()
                .map(Request::into_outgoing)
                .collect::<Result<_, _>>()?,
        ),
    };
    let options = wit::SpawnOptions {
        wasm_path: options.wasm_path,
        on_exit,
        public: options.public,
        request_networking: options.networking,
    };
    kernel::spawn(name, &options)
        .map(ProcessId::from)
        .map_err(SpawnError::Node)
}
