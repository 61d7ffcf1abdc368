//! The NAT test network (`kit::netns`, shared with `kit bench nat`), and
//! what the NAT tests add to it: nodes at debug log level, and waits that
//! fail the test by name.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

pub use kit::netns::{Nat, NatNet, NsNode, NET_IP, RELAY2_IP, RELAY_IP};

/// Start a node in `ns`, or fail the test with its log.
pub fn start(hearth: &Path, ns: &str, home: &Path, name: &str, extra: &[String]) -> NsNode {
    NsNode::start(hearth, ns, home, name, extra, "info,hearth=debug")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `/admin/status`, or fail the test.
pub fn status(node: &NsNode) -> serde_json::Value {
    node.status()
        .unwrap_or_else(|e| panic!("{} status: {e}\n{}", node.name, node.log()))
}

/// `/admin/peers`, or fail the test.
pub fn peers(node: &NsNode) -> Vec<hearth::api::PeerInfo> {
    node.peers()
        .unwrap_or_else(|e| panic!("{} peers: {e}", node.name))
}

/// Wait until `check` gives `Some`, or fail naming `what`.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            t.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
