//! The Hearth node as a library: the `hearth` binary, `kit` and the tests
//! all boot nodes through [`Node::start`].

pub mod api;
pub mod config;
pub mod http;
pub mod kernel;
pub mod kv;
pub mod metrics;
pub mod native;
pub mod net;
pub mod node;
pub mod package;
pub mod package_info;
pub mod process;
pub mod rooms;
pub mod rpc;
pub mod runtime;
pub mod services;
pub mod state;
pub mod timer;
pub mod types;
pub mod util;
pub mod vfs;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
