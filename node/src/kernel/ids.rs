//! Correlation ids: a counter passed through a keyed permutation of the
//! 64-bit space, so ids are unique for a boot (the map is one-to-one) yet a
//! peer that has seen some of them cannot predict the others.
//!
//! The permutation is a three-round Feistel network on 32-bit halves whose
//! round function is SipHash-1-3 of the round number and the half, under a
//! random 128-bit key. With pseudorandom round functions (the round number
//! in the input keeps the three apart) three rounds are a pseudorandom
//! permutation (Luby and Rackoff) against anyone who may choose inputs and
//! sees outputs; the fourth round the network used to run buys only
//! security against someone who may also ask for the inverse, i.e. hand
//! us an id and learn the counter behind it. Nobody can: ids only ever
//! leave the node, and the input is a counter nobody chooses. Both bounds
//! are the same birthday bound on 32-bit halves, so the fourth round
//! bought nothing here. Ids are minted twice per cross-node message (the
//! sender's, and the fresh local one at the receiver), so the round
//! function is SipHash written out for its one 8-byte input, not std's
//! streaming hasher.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const ROUNDS: u64 = 3;

pub struct IdMinter {
    counter: AtomicU64,
    key: (u64, u64),
}

impl IdMinter {
    pub fn new() -> Self {
        // Two SipHash outputs under std's random per-process key are a
        // random key of our own, without a fallible call to the OS.
        let seed = std::hash::RandomState::new();
        Self {
            counter: AtomicU64::new(0),
            key: (seed.hash_one(0u8), seed.hash_one(1u8)),
        }
    }

    pub fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.permute(n)
    }

    fn permute(&self, n: u64) -> u64 {
        let (mut left, mut right) = ((n >> 32) as u32, n as u32);
        for round in 0..ROUNDS {
            let f = sip::<1, 3>(self.key, (round << 32) | u64::from(right)) as u32;
            (left, right) = (right, left ^ f);
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

/// SipHash-C-D of the 8 bytes of `m` (little-endian) under `key`: one
/// message block, then the block that holds only the length (8).
#[inline(always)]
fn sip<const C: usize, const D: usize>(key: (u64, u64), m: u64) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    for block in [m, 8 << 56] {
        v[3] ^= block;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= block;
    }
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
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

    /// The written-out SipHash is the standard one: with SipHash-2-4's
    /// rounds it gives std's (deprecated, but fixed-key) `SipHasher`, on
    /// the paper's key and on others; 1-3 differs only in the counts.
    #[test]
    #[allow(deprecated)]
    fn sip_matches_std_siphash_2_4() {
        use std::hash::Hasher;
        let paper = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let keys = [paper, (0, 0), (u64::MAX, 1), (0x9e37_79b9_7f4a_7c15, 7)];
        for key in keys {
            for m in [0, 1, 0x0706_0504_0302_0100, u64::MAX, 2 << 32 | 12345] {
                let mut std_sip = std::hash::SipHasher::new_with_keys(key.0, key.1);
                std_sip.write(&m.to_le_bytes());
                assert_eq!(
                    sip::<2, 4>(key, m),
                    std_sip.finish(),
                    "key {key:?} m {m:#x}"
                );
            }
        }
        // The reference vector for the 8 bytes 00..07 under key 00..0f.
        assert_eq!(
            sip::<2, 4>(paper, 0x0706_0504_0302_0100),
            0x93f5_f579_9a93_2462
        );
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
