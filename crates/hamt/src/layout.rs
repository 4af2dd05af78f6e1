//! Where a map keeps its entries: in leaves of their own ([`Leaves`], for every type), or
//! inline in the trie's nodes ([`Inline`], for [`Plain`] keys and values).
//!
//! # Why two layouts
//!
//! A main node of the trie is immutable: a write copies it. With [`Leaves`], a node holds a
//! pointer per entry, and a copy copies pointers: every entry keeps its address for as long
//! as it is in the map, so a [`Ref`](crate::Ref) can hand out `&V` and a value with interior
//! mutability (`AtomicU64`, `Mutex<T>`) can be changed in place through it, by any thread,
//! while writers copy the nodes around it. With [`Inline`], a node holds the entries
//! themselves: a lookup reads the key and value from the node it has already loaded (one
//! cache miss fewer per lookup, one allocation fewer per insert, 16 bytes instead of 40 per
//! `u64 -> u64` entry, plus the node's share). But a copy of the node copies the entry bit
//! for bit, which is only right for types where a bitwise copy is the same value and nothing
//! is lost by writing to the old copy:
//!
//! - **no drop glue**: a copied key or value is never dropped (the trie frees a node's memory
//!   without running destructors for its entries), so dropping must not matter;
//! - **no interior mutability**: a `Ref` into a node points to *that* copy; a write through
//!   it (an `AtomicU64::fetch_add`) would be lost at the next copy of the node, and would race
//!   with the copy itself.
//!
//! Stable Rust cannot test either property in generic code (`Copy` cannot be asked of a type
//! parameter without a bound, and "contains no `UnsafeCell`" cannot be asked at all), so the
//! layout is a type parameter of the map, chosen by the user, and [`Inline`] requires
//! `K: Plain, V: Plain`, an `unsafe` marker trait implemented here for the primitive types
//! (integers, floats, `bool`, `char`, `()`) and for arrays and tuples of `Plain` types.
//! Users may implement it for their own types (an `unsafe impl`), promising both properties.
//!
//! | map | entries | for |
//! |---|---|---|
//! | `Hamt<K, V>` = `Hamt<K, V, RandomState, Leaves>` | one leaf allocation each | any `K`, `V` (`String`, `Vec`, `AtomicU64`, ...) |
//! | `Hamt<K, V, S, Inline>` | inline in the nodes | `K: Plain, V: Plain` (`u64`, `(u32, f64)`, `[u8; 16]`, ...) |
//!
//! `Hamt<u64, AtomicU64>` therefore stays on leaves (`AtomicU64` is not `Plain`, and cannot
//! be made so outside this crate), and `map.get(&k).unwrap().fetch_add(1, ..)` keeps working.
//! Everything else (the API, the guarantees, snapshots) is the same for both layouts.

pub(crate) mod private {
    /// Seals [`Layout`](super::Layout): the trie's node code relies on the two layouts it
    /// knows.
    pub trait Sealed<K, V>: 'static {
        /// Whether entries are stored inline in the main nodes.
        const INLINE: bool;
        /// What a main node stores per entry.
        type Entry: crate::node::EntryOps<K, V>;
    }
}

/// A layout of a map's entries: [`Leaves`] or [`Inline`] (see the [module](self) docs).
pub trait Layout<K, V>: private::Sealed<K, V> {}

/// Entries in leaves of their own: for any key and value type. The default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Leaves;

/// Entries inline in the trie's nodes: for [`Plain`] keys and values (see the [module](self)
/// docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Inline;

impl<K, V> private::Sealed<K, V> for Leaves {
    const INLINE: bool = false;
    type Entry = crate::node::LeafPtr<K, V>;
}
impl<K, V> Layout<K, V> for Leaves {}

impl<K: Plain, V: Plain> private::Sealed<K, V> for Inline {
    const INLINE: bool = true;
    type Entry = crate::node::Pair<K, V>;
}
impl<K: Plain, V: Plain> Layout<K, V> for Inline {}

/// Types that the [`Inline`] layout may copy bit for bit: no drop glue, and no interior
/// mutability.
///
/// # Safety
///
/// Implementing it promises that a bitwise copy of a value is an equal, independent value,
/// and that forgetting either copy loses nothing:
///
/// 1. The type has no drop glue (`std::mem::needs_drop::<T>()` is false): the trie frees
///    copies without dropping them. (`Copy` implies this and is required.)
/// 2. The type has no interior mutability, directly or in any field stored by value (no
///    `UnsafeCell`, `Cell`, atomics, locks, ...; a shared *reference* to such a type is fine,
///    since the mutation goes to the referent): the trie hands out `&T` into a node that it
///    may copy at any moment, on another thread.
///
/// ```
/// use concurrent_hamt::{layout::{Inline, Plain}, Hamt};
///
/// #[derive(Clone, Copy, PartialEq, Eq, Hash)]
/// struct Point { x: i32, y: i32 }
/// // Safety: two `i32`s: no drop glue, no interior mutability.
/// unsafe impl Plain for Point {}
///
/// let map: Hamt<Point, u64, _, Inline> = Hamt::default();
/// map.insert(Point { x: 1, y: 2 }, 3);
/// assert_eq!(*map.get(&Point { x: 1, y: 2 }).unwrap(), 3);
/// ```
///
/// Types with interior mutability are refused by the bound (they are not `Copy`):
///
/// ```compile_fail
/// use concurrent_hamt::{layout::Inline, Hamt};
/// let map: Hamt<u64, std::sync::atomic::AtomicU64, _, Inline> = Hamt::default();
/// ```
pub unsafe trait Plain: Copy {}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            // Safety: a primitive: no drop glue, no interior mutability.
            unsafe impl Plain for $t {}
        )*
    };
}

plain!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);

// Safety: an array of `Plain` values has neither drop glue nor interior mutability.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}
// Safety: a shared reference to `Plain` data: copying it copies the address only, and the
// referent has no interior mutability.
unsafe impl<T: Plain> Plain for &T {}
// Safety: string slices are immutable bytes.
unsafe impl Plain for &str {}

macro_rules! plain_tuples {
    ($(($($t:ident),+)),*) => {
        $(
            // Safety: a tuple of `Plain` values has neither drop glue nor interior
            // mutability.
            unsafe impl<$($t: Plain),+> Plain for ($($t,)+) {}
        )*
    };
}

plain_tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F)
);
