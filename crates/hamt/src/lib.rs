//! A lock-free concurrent hash array mapped trie.
//!
//! (The crate guide is written in `guide.md` and included below once the API settles.)

#![cfg_attr(not(test), warn(missing_docs))]

mod count;
mod iter;
mod map;
mod node;
mod raw;
mod sync;

pub use hazard::Stats as ReclaimStats;
pub use iter::Iter;
pub use map::{Hamt, Ref};
