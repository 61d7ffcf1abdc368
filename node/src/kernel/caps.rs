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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::FastMap;

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
    /// sender -> what it may message.
    messaging: RwLock<FastMap<ProcessId, Arc<RwLock<Grants>>>>,
    /// `revoke_all` calls so far: the only way an allowed route becomes
    /// refused (grants only add), so remembered routes check it.
    revocations: AtomicU64,
}

/// What one holder may message: the targets granted to it, each with its
/// place in grant order, and what it inherited, as snapshots of the
/// grants of the processes it inherited from.
///
/// A child inherits its parent's capabilities as they are at its spawn.
/// Copying them made spawning N children of one parent O(N²) in time and
/// memory (each new child copied a set holding every earlier sibling);
/// a snapshot is a shared reference and a length instead: grants are
/// only ever appended, and `revoke_all` drops the holder's whole entry
/// (a snapshot keeps what it points to), so "granted before the
/// snapshot" is "placed below its length".
#[derive(Debug, Default)]
struct Grants {
    /// target -> its place in grant order.
    own: FastMap<ProcessId, u32>,
    /// Flattened: a child takes its parent's snapshots and one of its
    /// parent's own grants, so a look-up never recurses.
    inherited: Vec<Snapshot>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    grants: Arc<RwLock<Grants>>,
    /// Grants placed below this were held when the snapshot was taken.
    len: u32,
}

impl Grants {
    fn grant(&mut self, target: &ProcessId) {
        let next = u32::try_from(self.own.len()).unwrap_or(u32::MAX);
        self.own.entry(target.clone()).or_insert(next);
    }

    fn holds(&self, target: &ProcessId) -> bool {
        self.own.contains_key(target)
            || self.inherited.iter().any(|snapshot| {
                let grants = snapshot.grants.read().unwrap_or_else(|e| e.into_inner());
                grants
                    .own
                    .get(target)
                    .is_some_and(|place| *place < snapshot.len)
            })
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Messaging,
    Networking,
}

impl CapabilityTable {
    pub fn grant_messaging(&self, holder: &ProcessId, target: &ProcessId) {
        let grants = self
            .messaging
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(holder.clone())
            .or_default()
            .clone();
        grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .grant(target);
    }

    /// Give `child` every messaging capability `parent` holds now (a
    /// snapshot: what `parent` is granted later does not reach `child`).
    pub fn inherit(&self, parent: &ProcessId, child: &ProcessId) {
        if parent == child {
            return;
        }
        let mut map = self.messaging.write().unwrap_or_else(|e| e.into_inner());
        let Some(from) = map.get(parent).cloned() else {
            return;
        };
        let taken: Vec<Snapshot> = {
            let from_grants = from.read().unwrap_or_else(|e| e.into_inner());
            let mut taken = from_grants.inherited.clone();
            if !from_grants.own.is_empty() {
                taken.push(Snapshot {
                    len: u32::try_from(from_grants.own.len()).unwrap_or(u32::MAX),
                    grants: from.clone(),
                });
            }
            taken
        };
        let to = map.entry(child.clone()).or_default();
        to.write()
            .unwrap_or_else(|e| e.into_inner())
            .inherited
            .extend(taken);
    }

    pub fn revoke_all(&self, holder: &ProcessId) {
        let mut map = self.messaging.write().unwrap_or_else(|e| e.into_inner());
        map.remove(holder);
        self.revocations.fetch_add(1, Ordering::Release);
    }

    /// How many revocations there have been.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    pub fn holds(&self, holder: &ProcessId, target: &ProcessId) -> bool {
        // Lock order, here and in `inherit`: the table, then one holder's
        // grants, then the grants its snapshots point to.
        self.messaging
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(holder)
            .is_some_and(|grants| {
                grants
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .holds(target)
            })
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

    #[test]
    fn a_child_inherits_a_snapshot_of_its_parent() {
        let t = CapabilityTable::default();
        let (parent, early, late) = (pid("p:p:x"), pid("e:p:x"), pid("l:p:x"));
        let (child, grandchild) = (pid("c:p:x"), pid("g:p:x"));
        t.grant_messaging(&parent, &early);
        t.inherit(&parent, &child);
        t.grant_messaging(&parent, &late);
        assert!(t.holds(&child, &early));
        assert!(!t.holds(&child, &late), "granted after the spawn");
        t.grant_messaging(&child, &parent);
        t.inherit(&child, &grandchild);
        assert!(t.holds(&grandchild, &early));
        assert!(t.holds(&grandchild, &parent));
        assert!(!t.holds(&grandchild, &late));
        // A parent's revocation leaves what its children already hold.
        t.revoke_all(&parent);
        assert!(!t.holds(&parent, &early));
        assert!(t.holds(&child, &early));
        // A name spawned again starts from nothing.
        t.revoke_all(&child);
        assert!(!t.holds(&child, &early));
        assert!(t.holds(&grandchild, &early));
        t.inherit(&child, &child);
        assert!(!t.holds(&child, &early));
    }
}
