//! Correlation ids: a counter passed through a keyed permutation of the
//! 64-bit space, so ids are unique for a boot (the map is one-to-one) yet a
//! peer that has seen some of them cannot predict the others.
//!
//! The permutation is a three-round Feistel network on 32-bit halves whose
//! round function is SipHash-1-3 (std's `RandomState`, a random key) of
//! the round number and the half. With pseudorandom round functions (the
//! round number in the input keeps the three apart) three rounds are a
//! pseudorandom permutation (Luby and Rackoff) against anyone who may
//! choose inputs and sees outputs; the fourth round the network used to
//! run buys only security against someone who may also ask for the
//! inverse, i.e. hand us an id and learn the counter behind it. Nobody
//! can: ids only ever leave the node, and the input is a counter nobody
//! chooses. Both bounds are the same birthday bound on 32-bit halves, so
//! the fourth round bought nothing here, and it cost a quarter of the
//! ~30 ns an id (minted twice per cross-node message: the sender's, and
//! the receiver's fresh local one). A SipHash written out for the one
//! 8-byte input was no faster than std's (round eight, and again here).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const ROUNDS: u32 = 3;

pub struct IdMinter {
    counter: AtomicU64,
    key: std::hash::RandomState,
}

impl IdMinter {
    pub fn new() -> Self {
        Self {
            counter: AtomicU64::new(0),
            key: std::hash::RandomState::new(),
        }
    }

    pub fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.permute(n)
    }

    fn permute(&self, n: u64) -> u64 {
        let (mut left, mut right) = ((n >> 32) as u32, n as u32);
        for round in 0..ROUNDS {
            let f = self.key.hash_one((round, right)) as u32;
            (left, right) = (right, left ^ f);
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_and_not_sequential() {
        let ids = IdMinter::new();
        let minted: Vec<u64> = (0..100_000).map(|_| ids.next()).collect();
        let distinct: HashSet<u64> = minted.iter().copied().collect();
        assert_eq!(distinct.len(), minted.len());
        let close = minted
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1 << 20)
            .count();
        assert!(close < 10, "{close} consecutive ids lie close together");
    }

    #[test]
    fn two_minters_mint_different_ids() {
        let (a, b) = (IdMinter::new(), IdMinter::new());
        let first: HashSet<u64> = (0..64).map(|_| a.next()).collect();
        let shared = (0..64).filter(|_| first.contains(&b.next())).count();
        assert_eq!(shared, 0, "two boots' keys gave the same ids");
    }

    #[test]
    fn the_permutation_is_one_to_one_on_a_spread_of_inputs() {
        let ids = IdMinter::new();
        let inputs: Vec<u64> = (0..50_000u64)
            .flat_map(|i| {
                [
                    i,
                    i << 32,
                    u64::MAX - i,
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ]
            })
            .collect();
        let unique_inputs: HashSet<u64> = inputs.iter().copied().collect();
        let outputs: HashSet<u64> = unique_inputs.iter().map(|&n| ids.permute(n)).collect();
        assert_eq!(outputs.len(), unique_inputs.len());
    }
}
