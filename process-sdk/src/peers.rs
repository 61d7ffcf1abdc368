//! The guest's side of the peer table (WIT 0.1.2, world `process-peers`):
//! an event delivered through `deliver` names its source by a slot, and
//! carries the full address only when the slot is new or changed. The
//! table lives as long as the instance; the node starts a new, empty one
//! with each incarnation.

use std::cell::RefCell;

use crate::{wit, Address};

/// Slots the node may use (the WIT says slots are below 1024).
const MAX_SLOTS: usize = 1024;

thread_local! {
    static PEERS: RefCell<Vec<Option<Address>>> = const { RefCell::new(Vec::new()) };
}

/// The source of an event: `address`, which slot `slot` holds from now
/// on, or else what the slot holds. `None` (logged) when the slot is out
/// of range or was never filled: the node broke the protocol.
pub(crate) fn source(slot: u32, address: Option<wit::Address>) -> Option<Address> {
    match lookup(slot, address) {
        Ok(address) => Some(address),
        Err(why) => {
            crate::log::error(&format!("peer slot {slot} {why}; event dropped"));
            None
        }
    }
}

fn lookup(slot: u32, address: Option<wit::Address>) -> Result<Address, &'static str> {
    let index = usize::try_from(slot)
        .ok()
        .filter(|i| *i < MAX_SLOTS)
        .ok_or("out of range")?;
    PEERS.with(|peers| {
        let mut peers = peers.borrow_mut();
        match address {
            Some(address) => {
                let address = Address::from(address);
                if peers.len() <= index {
                    peers.resize(index + 1, None);
                }
                peers[index] = Some(address.clone());
                Ok(address)
            }
            None => peers.get(index).cloned().flatten().ok_or("is empty"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(process: &str) -> wit::Address {
        wit::Address {
            node: "n".into(),
            process: wit::ProcessId {
                process: process.into(),
                package: "k".into(),
                publisher: "p".into(),
            },
        }
    }

    #[test]
    fn a_slot_holds_the_last_address_given() {
        let first = lookup(3, Some(raw("a"))).unwrap();
        assert_eq!(first.to_string(), "n@a:k:p");
        assert_eq!(lookup(3, None).unwrap(), first);
        let second = lookup(3, Some(raw("b"))).unwrap();
        assert_eq!(lookup(3, None).unwrap(), second);
    }

    #[test]
    fn empty_or_out_of_range_slots_give_nothing() {
        assert_eq!(lookup(7, None), Err("is empty"));
        assert_eq!(lookup(1024, Some(raw("a"))), Err("out of range"));
        assert_eq!(lookup(u32::MAX, None), Err("out of range"));
    }
}
