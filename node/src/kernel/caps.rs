//! Capabilities: the one place where the kernel decides whether a process
//! may message another or the network.
//!
//! A process may send a request to a local target when the target is
//! public, when the sender holds a messaging capability for the target
//! (from its manifest's `request_capabilities`, from the target's
//! `grant_capabilities`, or from a spawn), or when the sender is a system
//! endpoint of the node. Responses need no capability: the kernel only lets
//! a process answer requests it received. Messages to or from other nodes
//! need the `network` capability (`request_networking`).

use std::sync::RwLock;

use super::{FastMap, FastSet};

use crate::types::ProcessId;

#[derive(Debug, Clone, Default)]
pub struct ProcessCaps {
    pub public: bool,
    pub networking: bool,
    /// System endpoints (such as the admin injector) may message anyone.
    pub system: bool,
}

#[derive(Debug, Default)]
pub struct CapabilityTable {
    /// sender -> targets it may message.
    messaging: RwLock<FastMap<ProcessId, FastSet<ProcessId>>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Messaging,
    Networking,
}

impl CapabilityTable {
    pub fn grant_messaging(&self, holder: &ProcessId, target: &ProcessId) {
        self.messaging
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(holder.clone())
            .or_default()
            .insert(target.clone());
    }

    /// Give `child` every messaging capability `parent` holds.
    pub fn inherit(&self, parent: &ProcessId, child: &ProcessId) {
        let mut map = self.messaging.write().unwrap_or_else(|e| e.into_inner());
        let inherited = map.get(parent).cloned().unwrap_or_default();
        map.entry(child.clone()).or_default().extend(inherited);
    }

    pub fn revoke_all(&self, holder: &ProcessId) {
        self.messaging
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(holder);
    }

    pub fn holds(&self, holder: &ProcessId, target: &ProcessId) -> bool {
        self.messaging
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(holder)
            .is_some_and(|set| set.contains(target))
    }

    /// May `source` send a request to the local process `target`?
    pub fn check_local(
        &self,
        source: &ProcessId,
        source_caps: &ProcessCaps,
        target: &ProcessId,
        target_caps: &ProcessCaps,
    ) -> Result<(), Denied> {
        if target_caps.public || source_caps.system || self.holds(source, target) {
            Ok(())
        } else {
            Err(Denied::Messaging)
        }
    }

    /// May a request from another node reach a process with these
    /// capabilities? Only if it asked for the network: system services
    /// (kv, vfs, http) act for the sender's process id, which a peer
    /// could name freely.
    pub fn accepts_network(caps: &ProcessCaps) -> Result<(), Denied> {
        if caps.networking {
            Ok(())
        } else {
            Err(Denied::Networking)
        }
    }

    /// May a process with these capabilities talk to another node?
    pub fn check_network(caps: &ProcessCaps) -> Result<(), Denied> {
        if caps.networking || caps.system {
            Ok(())
        } else {
            Err(Denied::Networking)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> ProcessId {
        s.parse().unwrap()
    }

    #[test]
    fn public_granted_and_system_pass_others_fail() {
        let t = CapabilityTable::default();
        let (a, b) = (pid("a:p:x"), pid("b:p:x"));
        let private = ProcessCaps::default();
        let public = ProcessCaps {
            public: true,
            ..Default::default()
        };
        let system = ProcessCaps {
            system: true,
            ..Default::default()
        };
        assert_eq!(
            t.check_local(&a, &private, &b, &private),
            Err(Denied::Messaging)
        );
        assert!(t.check_local(&a, &private, &b, &public).is_ok());
        assert!(t.check_local(&a, &system, &b, &private).is_ok());
        t.grant_messaging(&a, &b);
        assert!(t.check_local(&a, &private, &b, &private).is_ok());
        let c = pid("c:p:x");
        t.inherit(&a, &c);
        assert!(t.holds(&c, &b));
        t.revoke_all(&a);
        assert!(!t.holds(&a, &b));
    }
}
