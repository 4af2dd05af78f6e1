//! One adapter per benchmarked map, all `u64 -> u64`, all with the map's **default hasher**:
//!
//! | map | hasher |
//! | --- | --- |
//! | ours (`concurrent_hamt::Hamt`) | std `RandomState` (SipHash-1-3) |
//! | `dashmap::DashMap` | std `RandomState` |
//! | `papaya::HashMap` | std `RandomState` |
//! | `scc::HashMap` | std `RandomState` |
//! | `flurry::HashMap` | flurry's `DefaultHashBuilder` = **ahash** (not SipHash) |
//! | `contrie::ConMap` | std `RandomState` |
//! | `RwLock<std::collections::HashMap>` | std `RandomState` |
//!
//! The adapters call each map the way its documentation suggests for one-off operations:
//! papaya and flurry `pin()` per operation, scc uses its `*_sync` methods, dashmap its
//! `get`/`get_mut` guards. `update` adds 1 to the value of a present key and does nothing for
//! an absent one; contrie has no in-place update, so its adapter does `get` then `insert`
//! (two operations, not atomic; fine here because each key is only ever touched by one
//! thread).

use std::collections::HashMap as StdHashMap;
use std::sync::RwLock;

pub use crate::traits::{ConcMap, SeqMap};

/// `std::sync::RwLock<std::collections::HashMap>`.
pub struct StdRwLock(RwLock<StdHashMap<u64, u64>>);

impl ConcMap for StdRwLock {
    const NAME: &'static str = "RwLock<HashMap>";
    const TAKES_HINT: bool = true;
    fn create(hint: Option<usize>) -> Self {
        StdRwLock(RwLock::new(match hint {
            Some(n) => StdHashMap::with_capacity(n),
            None => StdHashMap::new(),
        }))
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.read().unwrap().get(&k).copied()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) -> bool {
        self.0.write().unwrap().insert(k, v).is_none()
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.0.write().unwrap().remove(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        match self.0.write().unwrap().get_mut(&k) {
            Some(v) => {
                *v += 1;
                true
            }
            None => false,
        }
    }
}

/// `dashmap::DashMap` (default shard count: 4 x cores rounded up to a power of two).
pub struct Dash(dashmap::DashMap<u64, u64>);

impl ConcMap for Dash {
    const NAME: &'static str = "dashmap";
    const TAKES_HINT: bool = true;
    fn create(hint: Option<usize>) -> Self {
        Dash(match hint {
            Some(n) => dashmap::DashMap::with_capacity(n),
            None => dashmap::DashMap::new(),
        })
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
        match self.0.get_mut(&k) {
            Some(mut r) => {
                *r += 1;
                true
            }
            None => false,
        }
    }
}

/// `papaya::HashMap` (default builder: incremental resizing, its own collector).
pub struct Papaya(papaya::HashMap<u64, u64>);

impl ConcMap for Papaya {
    const NAME: &'static str = "papaya";
    const TAKES_HINT: bool = true;
    fn create(hint: Option<usize>) -> Self {
        Papaya(match hint {
            Some(n) => papaya::HashMap::with_capacity(n),
            None => papaya::HashMap::new(),
        })
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.pin().get(&k).copied()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) -> bool {
        self.0.pin().insert(k, v).is_none()
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.0.pin().remove(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        self.0.pin().update(k, |v| v + 1).is_some()
    }
}

/// `scc::HashMap` (synchronous API).
pub struct Scc(scc::HashMap<u64, u64>);

impl ConcMap for Scc {
    const NAME: &'static str = "scc";
    const TAKES_HINT: bool = true;
    fn create(hint: Option<usize>) -> Self {
        Scc(match hint {
            Some(n) => scc::HashMap::with_capacity(n),
            None => scc::HashMap::new(),
        })
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.read_sync(&k, |_, v| *v)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) -> bool {
        // `upsert_sync` has the same insert-or-replace meaning as the other maps' `insert`.
        self.0.upsert_sync(k, v).is_none()
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.0.remove_sync(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        self.0.update_sync(&k, |_, v| *v += 1).is_some()
    }
}

/// `flurry::HashMap` (its default hasher is ahash).
pub struct Flurry(flurry::HashMap<u64, u64>);

impl ConcMap for Flurry {
    const NAME: &'static str = "flurry";
    const TAKES_HINT: bool = true;
    fn create(hint: Option<usize>) -> Self {
        Flurry(match hint {
            Some(n) => flurry::HashMap::with_capacity(n),
            None => flurry::HashMap::new(),
        })
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.pin().get(&k).copied()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) -> bool {
        self.0.pin().insert(k, v).is_none()
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.0.pin().remove(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        self.0
            .pin()
            .compute_if_present(&k, |_, v| Some(v + 1))
            .is_some()
    }
}

/// `contrie::ConMap` (a concurrent hash trie; every entry is an `Arc<Element>`; no capacity
/// hint, no in-place update).
pub struct Contrie(contrie::ConMap<u64, u64>);

impl ConcMap for Contrie {
    const NAME: &'static str = "contrie";
    const TAKES_HINT: bool = false;
    fn create(_hint: Option<usize>) -> Self {
        Contrie(contrie::ConMap::new())
    }
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k).map(|e| *e.value())
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
        match self.0.get(&k) {
            Some(e) => {
                self.0.insert(k, *e.value() + 1);
                true
            }
            None => false,
        }
    }
}

/// Plain `std::collections::HashMap` (SipHash-1-3), no lock: the single-thread baseline.
pub struct StdSeq(StdHashMap<u64, u64>);

impl SeqMap for StdSeq {
    const NAME: &'static str = "std HashMap";
    fn create() -> Self {
        StdSeq(StdHashMap::new())
    }
    #[inline]
    fn get(&mut self, k: u64) -> Option<u64> {
        self.0.get(&k).copied()
    }
    #[inline]
    fn insert(&mut self, k: u64, v: u64) -> bool {
        self.0.insert(k, v).is_none()
    }
    #[inline]
    fn remove(&mut self, k: u64) -> bool {
        self.0.remove(&k).is_some()
    }
}

/// Any concurrent map used from one thread.
pub struct Seq<M>(pub M);

impl<M: ConcMap> SeqMap for Seq<M> {
    const NAME: &'static str = M::NAME;
    fn create() -> Self {
        Seq(M::create(None))
    }
    #[inline]
    fn get(&mut self, k: u64) -> Option<u64> {
        self.0.get(k)
    }
    #[inline]
    fn insert(&mut self, k: u64, v: u64) -> bool {
        self.0.insert(k, v)
    }
    #[inline]
    fn remove(&mut self, k: u64) -> bool {
        self.0.remove(k)
    }
}

/// The concurrent maps, in table order. `Ours` is first; `Dashmap` is the reference for ratios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `concurrent_hamt::Hamt` with inline entries (the layout for `u64`).
    Ours,
    /// `concurrent_hamt::Hamt` with entries in leaves (the layout of non-`Plain` types).
    OursLeaves,
    /// `dashmap::DashMap`.
    Dashmap,
    /// `papaya::HashMap`.
    Papaya,
    /// `scc::HashMap`.
    Scc,
    /// `flurry::HashMap`.
    Flurry,
    /// `contrie::ConMap`.
    Contrie,
    /// `RwLock<std::collections::HashMap>`.
    StdRwLock,
}

impl Kind {
    /// Every concurrent map whose adapter is compiled in.
    pub fn all() -> Vec<Kind> {
        let mut v = Vec::new();
        if crate::hamt::AVAILABLE {
            v.push(Kind::Ours);
            v.push(Kind::OursLeaves);
        }
        v.extend([
            Kind::Dashmap,
            Kind::Papaya,
            Kind::Scc,
            Kind::Flurry,
            Kind::Contrie,
            Kind::StdRwLock,
        ]);
        v
    }

    /// Table name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => crate::hamt::NAME,
            Kind::OursLeaves => crate::hamt::NAME_LEAVES,
            Kind::Dashmap => Dash::NAME,
            Kind::Papaya => Papaya::NAME,
            Kind::Scc => Scc::NAME,
            Kind::Flurry => Flurry::NAME,
            Kind::Contrie => Contrie::NAME,
            Kind::StdRwLock => StdRwLock::NAME,
        }
    }

    /// Short lowercase id for command-line filters (`MAP_BENCH_MAPS=ours,dashmap`).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::OursLeaves => "leaves",
            Kind::Dashmap => "dashmap",
            Kind::Papaya => "papaya",
            Kind::Scc => "scc",
            Kind::Flurry => "flurry",
            Kind::Contrie => "contrie",
            Kind::StdRwLock => "rwlock",
        }
    }

    /// Whether the map takes a capacity hint.
    pub fn takes_hint(self) -> bool {
        match self {
            Kind::Ours | Kind::OursLeaves => crate::hamt::TAKES_HINT,
            Kind::Dashmap => Dash::TAKES_HINT,
            Kind::Papaya => Papaya::TAKES_HINT,
            Kind::Scc => Scc::TAKES_HINT,
            Kind::Flurry => Flurry::TAKES_HINT,
            Kind::Contrie => Contrie::TAKES_HINT,
            Kind::StdRwLock => StdRwLock::TAKES_HINT,
        }
    }
}

/// Call a generic function with the adapter type of a [`Kind`]:
/// `with_map!(kind, M => run::<M>(args))`.
#[macro_export]
macro_rules! with_map {
    ($kind:expr, $m:ident => $body:expr) => {
        match $kind {
            $crate::maps::Kind::Ours => {
                type $m = $crate::hamt::Ours;
                $body
            }
            $crate::maps::Kind::OursLeaves => {
                type $m = $crate::hamt::OursLeaves;
                $body
            }
            $crate::maps::Kind::Dashmap => {
                type $m = $crate::maps::Dash;
                $body
            }
            $crate::maps::Kind::Papaya => {
                type $m = $crate::maps::Papaya;
                $body
            }
            $crate::maps::Kind::Scc => {
                type $m = $crate::maps::Scc;
                $body
            }
            $crate::maps::Kind::Flurry => {
                type $m = $crate::maps::Flurry;
                $body
            }
            $crate::maps::Kind::Contrie => {
                type $m = $crate::maps::Contrie;
                $body
            }
            $crate::maps::Kind::StdRwLock => {
                type $m = $crate::maps::StdRwLock;
                $body
            }
        }
    };
}
