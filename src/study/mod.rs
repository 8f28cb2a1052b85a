//! Studies built on many simulations: parameter sweeps with Monte Carlo
//! replicates.
//!
//! Determinism rule: every (point, replicate) draws from its own ChaCha8
//! stream derived from the master seed and its indices, never from a thread;
//! results are gathered in point order and reduced sequentially. The same
//! scenario and seed therefore give byte-identical outputs whatever the
//! number of threads.

pub mod compare;
pub mod design;
pub mod fit;
pub mod sensitivity;
pub mod slurm;
pub mod sweep;
pub mod tune;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The RNG stream of task `(point, replicate)` under `seed`.
pub fn task_rng(seed: u64, point: u64, replicate: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(splitmix(seed ^ 0x6d65_736f_6265_6e63));
    // 2^64 streams: point in the high bits, replicate in the low ones.
    r.set_stream((point << 24) ^ replicate);
    r
}

/// SplitMix64 finaliser: spreads a seed over all bits.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
