//! The Hearth node as a library: the `hearth` binary, `kit` and the tests
//! all boot nodes through [`Node::start`].

pub mod api;
pub mod config;
pub mod http;
pub mod kernel;
pub mod native;
pub mod node;
pub mod package;
pub mod process;
pub mod rpc;
pub mod runtime;
pub mod services;
pub mod state;
pub mod types;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
