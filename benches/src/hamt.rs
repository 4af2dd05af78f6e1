//! The adapters for our map: `concurrent_hamt::Hamt<u64, u64>` (std `RandomState`) with its
//! entries inline in the trie's nodes (`Inline`, the layout for plain types such as `u64`:
//! the one the tables call "ours"), and with its entries in leaves of their own (`Leaves`,
//! the layout every other type uses, e.g. `String` or `AtomicU64` values: "ours (leaves)").

use crate::maps::ConcMap;
use concurrent_hamt::{Hamt, Inline, Leaves};
use std::hash::RandomState;

/// Whether the adapter for our map is compiled in.
pub const AVAILABLE: bool = true;
/// Table name of our map (inline entries).
pub const NAME: &str = "ours (Hamt)";
/// Table name of our map with leaves.
pub const NAME_LEAVES: &str = "ours (leaves)";
/// Our map has no capacity-hint constructor.
pub const TAKES_HINT: bool = false;

/// `concurrent_hamt::Hamt<u64, u64, RandomState, L>`.
pub struct OursIn<L: concurrent_hamt::layout::Layout<u64, u64>>(Hamt<u64, u64, RandomState, L>);

/// Inline entries.
pub type Ours = OursIn<Inline>;
/// Entries in leaves.
pub type OursLeaves = OursIn<Leaves>;

/// The name of each layout's adapter.
pub trait Named {
    /// Table name.
    const NAME: &'static str;
}
impl Named for Inline {
    const NAME: &'static str = NAME;
}
impl Named for Leaves {
    const NAME: &'static str = NAME_LEAVES;
}

impl<L> ConcMap for OursIn<L>
where
    L: concurrent_hamt::layout::Layout<u64, u64> + Named + Send + Sync,
{
    const NAME: &'static str = L::NAME;
    const TAKES_HINT: bool = TAKES_HINT;
    fn create(_hint: Option<usize>) -> Self {
        OursIn(Hamt::default())
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k).map(|r| *r)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) -> bool {
        self.0.insert(k, v).is_none()
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.0.remove(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        // Returns the entry stored: `Some` iff the key was present (absent keys stay absent).
        self.0.update(k, |v| v.map(|v| v + 1)).is_some()
    }
}
