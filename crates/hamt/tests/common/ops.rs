//! The map operations of the linearizability checker's model (`lincheck::map::Call`), run on
//! a `Hamt`: shared by the lincheck tests and the concurrent fuzz target (which includes this
//! folder by path).

use concurrent_hamt::Hamt;
use lincheck::map::{updated, Call, Ret};
use std::hash::BuildHasher;

/// Runs `call` on the map. `alt` picks between two ways of doing the same thing where there
/// are two (`iter` or a snapshot's iterator for `Contents`).
pub fn apply<S: BuildHasher + Clone>(map: &Hamt<u64, u64, S>, call: &Call, alt: bool) -> Ret {
    match *call {
        Call::Get(k) => Ret::Value(map.get(&k).map(|r| *r)),
        Call::ContainsKey(k) => Ret::Bool(map.contains_key(&k)),
        Call::Insert(k, v) => Ret::Value(map.insert(k, v).map(|r| *r)),
        Call::InsertIfAbsent(k, v) => Ret::Bool(map.insert_if_absent(k, v)),
        Call::Remove(k) => Ret::Value(map.remove(&k).map(|r| *r)),
        Call::RemoveIf { key, expected } => {
            Ret::Value(map.remove_if(&key, |v| *v == expected).map(|r| *r))
        }
        Call::CompareExchange { key, current, new } => Ret::Exchanged(
            map.compare_exchange(key, &current, new)
                .map(|r| *r)
                .map_err(|e| e.map(|r| *r)),
        ),
        Call::Update { key, delta } => {
            Ret::Value(map.update(key, |v| updated(v.copied(), delta)).map(|r| *r))
        }
        Call::SnapshotGet(k) => Ret::Value(map.read_only_snapshot().get(&k).copied()),
        Call::CopyGet(k) => {
            let copy = map.snapshot();
            let seen = copy.get(&k).map(|r| *r);
            // A write to the copy must never show in the map (no history writes this value).
            copy.insert(k, u64::MAX);
            Ret::Value(seen)
        }
        Call::Clear => {
            map.clear();
            Ret::Unit
        }
        Call::Contents => {
            let mut entries: Vec<(u64, u64)> = if alt {
                map.iter().map(|r| (*r.key(), *r.value())).collect()
            } else {
                map.read_only_snapshot()
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect()
            };
            entries.sort_unstable();
            Ret::Entries(entries)
        }
        Call::SnapshotLen => Ret::Count(map.read_only_snapshot().len()),
        Call::Len { .. } => Ret::Count(map.len()),
    }
}
