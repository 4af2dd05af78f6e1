//! The adapter for our map, `concurrent_hamt::Hamt<u64, u64>` (std `RandomState`).

use crate::maps::ConcMap;
use concurrent_hamt::Hamt;

/// Whether the adapter for our map is compiled in.
pub const AVAILABLE: bool = true;
/// Table name of our map.
pub const NAME: &str = "ours (Hamt)";
/// Our map has no capacity-hint constructor.
pub const TAKES_HINT: bool = false;

/// `concurrent_hamt::Hamt<u64, u64>`.
pub struct Ours(Hamt<u64, u64>);

impl ConcMap for Ours {
    const NAME: &'static str = NAME;
    const TAKES_HINT: bool = TAKES_HINT;
    fn create(_hint: Option<usize>) -> Self {
        Ours(Hamt::new())
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
