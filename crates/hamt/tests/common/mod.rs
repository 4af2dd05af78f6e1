//! Helpers shared by the integration tests: a seeded PRNG and the hashers that force the
//! trie's unusual shapes (collision lists, deep chains, collisions in the top levels).
#![allow(dead_code)] // each test binary uses a different subset

pub mod ops;

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hasher};

/// SplitMix64 for seeding, xorshift64* for the stream: small, fast, reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(z | 1) // xorshift must not start at zero
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A deterministic SipHash (`DefaultHasher::new()` has fixed keys) whose 64-bit result is
/// reshaped: `(hash & keep) | fixed`. Bits outside `keep` take the value they have in
/// `fixed`, so keys agree on them.
#[derive(Clone, Copy, Debug)]
pub struct Masked {
    pub keep: u64,
    pub fixed: u64,
}

impl Masked {
    /// Every key hashes to the same value: everything lands in one collision list.
    pub const CONSTANT: Masked = Masked {
        keep: 0,
        fixed: 0xDEAD_BEEF_0BAD_F00D,
    };
    /// Only the low 8 bits vary: keys agree from level 2 down (bits 8..64 are zero), so
    /// every pair with equal low bytes builds a chain through all 13 levels to a collision
    /// list.
    pub const LOW_BITS: Masked = Masked {
        keep: 0xFF,
        fixed: 0,
    };
    /// The low 30 bits (levels 0 to 5) are constant and the rest is a real hash: every key
    /// goes down the same path for six levels, then spreads.
    pub const TOP_LEVELS_COLLIDE: Masked = Masked {
        keep: !0x3FFF_FFFF,
        fixed: 0x1555_5555,
    };
    /// Only the 4 highest bits vary: keys agree on levels 0 to 11 and spread over 16 slots
    /// of the last, partial level (bits 60..64), with collision lists below it.
    pub const LAST_LEVEL_ONLY: Masked = Masked {
        keep: 0xF << 60,
        fixed: 0x0123_4567_89AB_CDEF & !(0xF << 60),
    };
}

impl BuildHasher for Masked {
    type Hasher = MaskedHasher;

    fn build_hasher(&self) -> MaskedHasher {
        MaskedHasher {
            inner: DefaultHasher::new(),
            keep: self.keep,
            fixed: self.fixed,
        }
    }
}

/// The hasher built by [`Masked`].
pub struct MaskedHasher {
    inner: DefaultHasher,
    keep: u64,
    fixed: u64,
}

impl Hasher for MaskedHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.inner.write(bytes);
    }

    fn finish(&self) -> u64 {
        (self.inner.finish() & self.keep) | (self.fixed & !self.keep)
    }
}

/// Joins every handle, propagating the first panic with its message.
pub fn join_all<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, T>>) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        })
        .collect()
}

/// Runs its closure when dropped, also while unwinding: used to release waiting threads
/// (set a "done" flag) even when the thread that should set it panics, so that a failing
/// test fails instead of hanging.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
