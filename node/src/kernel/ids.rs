//! Correlation ids: a counter passed through a keyed permutation of the
//! 64-bit space, so ids are unique for a boot (the map is one-to-one) yet a
//! peer that has seen some of them cannot predict the others.
//!
//! The permutation is a four-round Feistel network whose round function is
//! SipHash-1-3 under a random key (std's `RandomState`), which is a
//! pseudorandom permutation as long as the round function is a PRF.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const ROUNDS: u32 = 4;

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
}
