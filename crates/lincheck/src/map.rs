//! The sequential model of a map from `u64` to `u64`, the operations histories record, and the
//! per-key split.
//!
//! Two models share one definition of each operation ([`Call::apply`]):
//! - [`PerKey`]: the state of one key (`Option<u64>`), for histories split per key;
//! - [`WholeMap`]: the whole map, for short unsplit histories with operations that observe
//!   several keys at one instant (a snapshot's contents, its exact `len`) or the count
//!   (`Hamt::len`, which is exact only at rest: see [`Call::Len`]).

use crate::search::{check_parts, Failure, Model, Operation, Stats};
use std::collections::BTreeMap;

/// An operation on the map, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `get(k)`: `Ret::Value`.
    Get(u64),
    /// `contains_key(k)`: `Ret::Bool`.
    ContainsKey(u64),
    /// `insert(k, v)`: the previous value, `Ret::Value`.
    Insert(u64, u64),
    /// `insert_if_absent(k, v)`: whether it inserted, `Ret::Bool`.
    InsertIfAbsent(u64, u64),
    /// `remove(k)`: the removed value, `Ret::Value`.
    Remove(u64),
    /// `remove_if(k, |v| v == expected)`: the removed value, `Ret::Value`.
    RemoveIf {
        /// The key.
        key: u64,
        /// The value that allows the removal.
        expected: u64,
    },
    /// `compare_exchange(k, &current, new)`: `Ret::Exchanged` (`Ok(new)` or `Err(present)`).
    CompareExchange {
        /// The key.
        key: u64,
        /// The value expected.
        current: u64,
        /// The value stored if it matches.
        new: u64,
    },
    /// `update(k, f)` with `f` = [`updated`]`(_, delta)`: the value stored, `Ret::Value`.
    Update {
        /// The key.
        key: u64,
        /// What `f` adds.
        delta: u64,
    },
    /// A read of `k` in a read-only snapshot taken by the operation (the interval is the
    /// snapshot's): `Ret::Value`.
    SnapshotGet(u64),
    /// A read of `k` in a writable snapshot taken by the operation: `Ret::Value`.
    CopyGet(u64),
    /// `clear()`: `Ret::Unit`.
    Clear,
    /// The entries of a read-only snapshot taken by the operation (or of `iter`), sorted:
    /// `Ret::Entries`. Split per key, it becomes one [`Call::SnapshotGet`] per key.
    Contents,
    /// The exact `len` of a read-only snapshot taken by the operation: `Ret::Count`.
    SnapshotLen,
    /// `Hamt::len`: `Ret::Count`. Exact at rest, otherwise off by at most the writes in
    /// flight: the model accepts a count within `tolerance` of the size, where `tolerance`
    /// is set after recording by [`set_len_tolerances`] to the number of writes whose
    /// intervals overlap this one.
    Len {
        /// Writes in flight during the call.
        tolerance: usize,
    },
}

/// An operation's result, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A value or its absence.
    Value(Option<u64>),
    /// A yes or no.
    Bool(bool),
    /// `compare_exchange`'s result.
    Exchanged(Result<u64, Option<u64>>),
    /// Entries sorted by key.
    Entries(Vec<(u64, u64)>),
    /// A count.
    Count(usize),
    /// No result.
    Unit,
}

/// The function that [`Call::Update`] passes to `update`: adds `delta` (inserts `delta` if
/// absent), and removes the entry when the sum is a multiple of 4, so that updates also
/// remove.
pub fn updated(v: Option<u64>, delta: u64) -> Option<u64> {
    let n = v.unwrap_or(0).wrapping_add(delta);
    (n % 4 != 0).then_some(n)
}

impl Call {
    /// The key of a single-key operation.
    pub fn key(&self) -> Option<u64> {
        match *self {
            Call::Get(k)
            | Call::ContainsKey(k)
            | Call::Insert(k, _)
            | Call::InsertIfAbsent(k, _)
            | Call::Remove(k)
            | Call::RemoveIf { key: k, .. }
            | Call::CompareExchange { key: k, .. }
            | Call::Update { key: k, .. }
            | Call::SnapshotGet(k)
            | Call::CopyGet(k) => Some(k),
            Call::Clear | Call::Contents | Call::SnapshotLen | Call::Len { .. } => None,
        }
    }

    /// Whether it may change the map.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Call::Insert(..)
                | Call::InsertIfAbsent(..)
                | Call::Remove(_)
                | Call::RemoveIf { .. }
                | Call::CompareExchange { .. }
                | Call::Update { .. }
                | Call::Clear
        )
    }

    /// The single-key semantics: given the key's value before, the value after and the
    /// result the sequential map returns. `None` for operations on the whole map.
    pub fn apply(&self, before: Option<u64>) -> Option<(Option<u64>, Ret)> {
        Some(match *self {
            Call::Get(_) | Call::SnapshotGet(_) | Call::CopyGet(_) => (before, Ret::Value(before)),
            Call::ContainsKey(_) => (before, Ret::Bool(before.is_some())),
            Call::Insert(_, v) => (Some(v), Ret::Value(before)),
            Call::InsertIfAbsent(_, v) => match before {
                None => (Some(v), Ret::Bool(true)),
                Some(_) => (before, Ret::Bool(false)),
            },
            Call::Remove(_) => (None, Ret::Value(before)),
            Call::RemoveIf { expected, .. } => {
                if before == Some(expected) {
                    (None, Ret::Value(before))
                } else {
                    (before, Ret::Value(None))
                }
            }
            Call::CompareExchange { current, new, .. } => {
                if before == Some(current) {
                    (Some(new), Ret::Exchanged(Ok(new)))
                } else {
                    (before, Ret::Exchanged(Err(before)))
                }
            }
            Call::Update { delta, .. } => {
                let after = updated(before, delta);
                (after, Ret::Value(after))
            }
            Call::Clear | Call::Contents | Call::SnapshotLen | Call::Len { .. } => return None,
        })
    }
}

/// The model of one key, for histories split per key ([`check_per_key`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerKey;

impl Model for PerKey {
    type State = Option<u64>;
    type Input = Call;
    type Output = Ret;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(&self, state: &Option<u64>, call: &Call, ret: &Ret) -> Option<Option<u64>> {
        match call {
            // The projection of a clear on one key: it removes it.
            Call::Clear => (*ret == Ret::Unit).then_some(None),
            _ => {
                let (after, expected) = call.apply(*state)?;
                (*ret == expected).then_some(after)
            }
        }
    }
}

/// The model of the whole map, for short unsplit histories ([`check_whole`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct WholeMap;

impl Model for WholeMap {
    type State = BTreeMap<u64, u64>;
    type Input = Call;
    type Output = Ret;

    fn init(&self) -> BTreeMap<u64, u64> {
        BTreeMap::new()
    }

    fn step(
        &self,
        state: &BTreeMap<u64, u64>,
        call: &Call,
        ret: &Ret,
    ) -> Option<BTreeMap<u64, u64>> {
        match *call {
            Call::Clear => (*ret == Ret::Unit).then(BTreeMap::new),
            Call::Contents => {
                let entries: Vec<_> = state.iter().map(|(&k, &v)| (k, v)).collect();
                (*ret == Ret::Entries(entries)).then(|| state.clone())
            }
            Call::SnapshotLen => (*ret == Ret::Count(state.len())).then(|| state.clone()),
            Call::Len { tolerance } => match *ret {
                Ret::Count(n) if n.abs_diff(state.len()) <= tolerance => Some(state.clone()),
                _ => None,
            },
            _ => {
                let key = call.key().expect("single-key operation");
                let (after, expected) = call.apply(state.get(&key).copied())?;
                if *ret != expected {
                    return None;
                }
                let mut next = state.clone();
                match after {
                    Some(v) => next.insert(key, v),
                    None => next.remove(&key),
                };
                Some(next)
            }
        }
    }
}

/// A recorded map operation.
pub type MapOperation = Operation<Call, Ret>;

/// Sets each [`Call::Len`]'s tolerance to the number of writes whose intervals overlap it (a
/// `clear` counts as `keys` writes: it may remove that many entries at once).
pub fn set_len_tolerances(history: &mut [MapOperation], keys: usize) {
    let writes: Vec<(u64, u64, usize)> = history
        .iter()
        .filter(|o| o.input.writes())
        .map(|o| (o.call, o.ret, if o.input == Call::Clear { keys } else { 1 }))
        .collect();
    for o in history.iter_mut() {
        if let Call::Len { tolerance } = &mut o.input {
            *tolerance = writes
                .iter()
                .filter(|&&(call, ret, _)| call < o.ret && ret > o.call)
                .map(|w| w.2)
                .sum();
        }
    }
}

/// Checks a history split per key: every single-key operation in its key's part, a `clear`
/// and a snapshot's contents projected on every key of `keys` (`Contents` as a
/// [`Call::SnapshotGet`] of each key, with the same interval). `Len` and `SnapshotLen` say
/// nothing about one key and are left out: check them with [`check_whole`].
pub fn check_per_key(history: &[MapOperation], keys: &[u64]) -> Result<Stats, Failure> {
    let mut parts: BTreeMap<u64, Vec<MapOperation>> = BTreeMap::new();
    let mut add = |k: u64, o: MapOperation| parts.entry(k).or_default().push(o);
    for o in history {
        match (&o.input, &o.output) {
            (Call::Clear, _) => {
                for &k in keys {
                    add(k, o.clone());
                }
            }
            (Call::Contents, Ret::Entries(entries)) => {
                for &k in keys {
                    let v = entries.iter().find(|e| e.0 == k).map(|e| e.1);
                    let projected = Operation {
                        input: Call::SnapshotGet(k),
                        output: Ret::Value(v),
                        ..o.clone()
                    };
                    add(k, projected);
                }
            }
            (Call::Contents, other) => panic!("Contents returned {other:?}"),
            (Call::SnapshotLen | Call::Len { .. }, _) => {}
            (call, _) => add(call.key().expect("single-key"), o.clone()),
        }
    }
    check_parts(
        &PerKey,
        parts.iter().map(|(k, ops)| (*k, ops.iter().collect())),
    )
}

/// Checks an unsplit history against the whole-map model (keep it short: the search is over
/// every operation at once).
pub fn check_whole(history: &[MapOperation]) -> Result<Stats, Failure> {
    crate::search::check(&WholeMap, history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: u64, ret: u64, input: Call, output: Ret) -> MapOperation {
        Operation {
            client,
            call,
            ret,
            input,
            output,
        }
    }

    #[test]
    fn update_adds_and_removes_on_multiples_of_four() {
        assert_eq!(updated(None, 3), Some(3));
        assert_eq!(updated(Some(3), 1), None);
        assert_eq!(updated(Some(3), 2), Some(5));
    }

    #[test]
    fn a_lost_update_is_rejected() {
        // Two updates that both read the initial absence (both return delta alone): one of
        // them must have seen the other.
        let h = [
            op(
                0,
                0,
                3,
                Call::Update { key: 1, delta: 1 },
                Ret::Value(Some(1)),
            ),
            op(
                1,
                1,
                2,
                Call::Update { key: 1, delta: 2 },
                Ret::Value(Some(2)),
            ),
        ];
        assert!(check_per_key(&h, &[1]).is_err());
        let ok = [
            op(
                0,
                0,
                3,
                Call::Update { key: 1, delta: 1 },
                Ret::Value(Some(3)),
            ),
            op(
                1,
                1,
                2,
                Call::Update { key: 1, delta: 2 },
                Ret::Value(Some(2)),
            ),
        ];
        check_per_key(&ok, &[1]).unwrap();
    }

    #[test]
    fn a_torn_snapshot_is_rejected_unsplit_but_not_split() {
        // Thread 0 inserts 1 then 2; a concurrent snapshot sees 2 without 1: each key alone
        // is fine, the two together are not.
        let h = [
            op(0, 0, 1, Call::Insert(1, 10), Ret::Value(None)),
            op(0, 2, 3, Call::Remove(1), Ret::Value(Some(10))),
            op(0, 4, 5, Call::Insert(2, 20), Ret::Value(None)),
            op(1, 6, 7, Call::Contents, Ret::Entries(vec![(2, 20)])),
        ];
        check_per_key(&h, &[1, 2]).unwrap();
        check_whole(&h).unwrap();
        // Torn: sees 1 (removed before 2 was inserted) and 2 together.
        let torn = [
            op(0, 0, 1, Call::Insert(1, 10), Ret::Value(None)),
            op(
                1,
                2,
                9,
                Call::Contents,
                Ret::Entries(vec![(1, 10), (2, 20)]),
            ),
            op(0, 3, 4, Call::Remove(1), Ret::Value(Some(10))),
            op(0, 5, 6, Call::Insert(2, 20), Ret::Value(None)),
        ];
        check_per_key(&torn, &[1, 2]).unwrap();
        assert!(check_whole(&torn).is_err());
    }

    #[test]
    fn len_is_exact_at_rest_and_tolerant_under_writes() {
        let mut h = vec![
            op(0, 0, 1, Call::Insert(1, 10), Ret::Value(None)),
            op(1, 2, 3, Call::Len { tolerance: 0 }, Ret::Count(2)),
        ];
        set_len_tolerances(&mut h, 4);
        assert!(check_whole(&h).is_err(), "one entry at rest, len 2");
        let mut h = vec![
            op(0, 0, 5, Call::Insert(1, 10), Ret::Value(None)),
            op(0, 6, 7, Call::Insert(2, 20), Ret::Value(None)),
            op(1, 1, 4, Call::Len { tolerance: 0 }, Ret::Count(1)),
            op(1, 8, 9, Call::Len { tolerance: 0 }, Ret::Count(2)),
            op(1, 10, 11, Call::SnapshotLen, Ret::Count(2)),
        ];
        set_len_tolerances(&mut h, 4);
        assert_eq!(h[2].input, Call::Len { tolerance: 1 });
        check_whole(&h).unwrap();
    }

    #[test]
    fn clear_is_projected_on_every_key() {
        let h = [
            op(0, 0, 1, Call::Insert(1, 10), Ret::Value(None)),
            op(0, 2, 3, Call::Insert(2, 20), Ret::Value(None)),
            op(1, 4, 5, Call::Clear, Ret::Unit),
            op(0, 6, 7, Call::Get(2), Ret::Value(Some(20))),
        ];
        let f = check_per_key(&h, &[1, 2]).unwrap_err();
        assert_eq!(f.partition, "2");
    }
}
