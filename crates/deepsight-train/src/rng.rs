//! Seeded randomness that depends only on the seed and the position in the run (epoch, image),
//! never on threads or on where a run was resumed: a resumed run draws what an uninterrupted one
//! would have drawn.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mixes several words into one seed (splitmix64 over the words).
pub fn mix(words: &[u64]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &w in words {
        h ^= w;
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
    }
    h
}

/// A generator seeded by `seed`.
pub fn generator(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Fisher-Yates shuffle with a seeded generator.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut r = generator(seed);
    for i in (1..v.len()).rev() {
        let j = r.random_range(0..=i);
        v.swap(i, j);
    }
}
