//! The process-wide registry of native maps, and the tokens that name them.
//!
//! A native map is a [`Shared`]: the trie and its token. Every JavaScript handle on it, in any
//! thread, holds one strong reference (`Arc<Shared>`); the registry holds only a weak one, so
//! the map is freed when its last handle goes, and a token then names nothing.
//!
//! A token is 128 bits from the operating system's random source, as 32 hexadecimal digits:
//! unguessable, and holding no reference. `attach` looks it up; a token that was never made,
//! or whose map has no handle left, is an error, never a crash.
//!
//! The registry's lock is taken when a map is created, attached to or freed, and by `stats`,
//! never by a map operation.
//!
//! A map and the writable snapshots taken from it share one reclamation domain (the trie's
//! nodes pass between them), so they form a *family*: `stats` counts each family's retired
//! nodes once.

use crate::error::{Failure, Res, INVALID_TOKEN, STALE_TOKEN};
use crate::key::Key;
use crate::value::Value;
use concurrent_hamt::Hamt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

/// The trie every JavaScript map is, hashed with foldhash (a fast hash with a random seed
/// per map, the seed `hashbrown` uses): keys here are short byte strings, where the trie's
/// default SipHash-1-3 cost about 200 instructions of a 1,800-instruction `has` (callgrind).
/// foldhash is not a cryptographic PRF; with the seed unknown to callers, crafting keys that
/// collide is impractical, and a collision costs the trie a deeper path or a collision list,
/// never correctness.
pub type Map = Hamt<Key, Value, foldhash::fast::RandomState>;

/// A read-only snapshot of a [`Map`].
pub type Snap = concurrent_hamt::Snapshot<Key, Value, foldhash::fast::RandomState>;

/// A new, empty map with a fresh seed.
pub fn new_map() -> Map {
    Map::with_hasher(foldhash::fast::RandomState::default())
}

type Token = [u8; 16];

/// A native map and its name.
pub struct Shared {
    pub map: Map,
    token: Token,
    family: u64,
}

static MAPS: LazyLock<Mutex<HashMap<Token, Weak<Shared>>>> = LazyLock::new(Default::default);

/// Families handed out so far. Relaxed: a unique number is all that is needed.
static FAMILIES: AtomicU64 = AtomicU64::new(0);

/// Live JavaScript handles in the process (all threads). Relaxed: a statistic, read alone.
pub static HANDLES: AtomicUsize = AtomicUsize::new(0);

/// Bytes that live handles report to V8, summed over every thread. Relaxed: a statistic.
pub static REPORTED: AtomicI64 = AtomicI64::new(0);

fn maps() -> MutexGuard<'static, HashMap<Token, Weak<Shared>>> {
    // A panic while the lock was held cannot leave the map half-changed (each critical
    // section is one insert, remove or read), so a poisoned lock is still good.
    MAPS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Registers a new map of a new family.
    pub fn new_family(map: Map) -> Res<Arc<Shared>> {
        Shared::register(map, FAMILIES.fetch_add(1, Relaxed))
    }

    /// Registers a map of `self`'s family (a writable snapshot of it).
    pub fn relative(&self, map: Map) -> Res<Arc<Shared>> {
        Shared::register(map, self.family)
    }

    fn register(map: Map, family: u64) -> Res<Arc<Shared>> {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| {
            Failure::error(
                crate::error::INTERNAL,
                format!("no random bytes for a token: {e}"),
            )
        })?;
        let shared = Arc::new(Shared { map, token, family });
        maps().insert(token, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// The token, as `share()` gives it.
    pub fn token(&self) -> String {
        self.token.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        maps().remove(&self.token);
    }
}

/// The map named by `token` (a string `share()` made), for `attach`.
pub fn attach(token: &str) -> Res<Arc<Shared>> {
    let parsed = parse(token).ok_or_else(|| {
        Failure::type_error(
            INVALID_TOKEN,
            "Hamt.attach: handle.token is not a token made by share() (32 hexadecimal digits)",
        )
    })?;
    let found = maps().get(&parsed).and_then(Weak::upgrade);
    found.ok_or_else(|| {
        Failure::error(
            STALE_TOKEN,
            "Hamt.attach: no live map has this token: its last handle was closed or collected \
             before the receiver attached (keep a handle open until then), or it comes from \
             another process",
        )
    })
}

fn parse(token: &str) -> Option<Token> {
    let b = token.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// What `Hamt.stats()` reports.
#[napi_derive::napi(object)]
pub struct HamtStats {
    /// Native maps alive in the process (each has at least one handle).
    pub maps: u32,
    /// Live handles in the process, in every thread.
    pub handles: u32,
    /// Trie nodes retired (unlinked) and not yet freed, over all maps.
    pub unfreed_nodes: f64,
    /// Trie nodes retired since the process started, over the maps alive.
    pub retired_nodes: f64,
    /// Hazard records allocated in the process (a pool: never freed).
    pub hazard_records: u32,
    /// Of those, records held by a live thread.
    pub hazard_records_in_use: u32,
    /// Bytes the live handles report to V8 as the native memory they keep alive (each handle
    /// reports its whole map's estimate), summed over every thread.
    pub reported_memory: f64,
}

pub fn stats() -> HamtStats {
    // Take strong references under the lock, and drop them after it: dropping the last one
    // frees the map, which takes the lock.
    let live: Vec<Arc<Shared>> = maps().values().filter_map(Weak::upgrade).collect();
    let mut families = HashMap::new();
    for s in &live {
        families.entry(s.family).or_insert_with(|| s.map.stats());
    }
    let records = match live.first() {
        Some(s) => s.map.stats(),
        None => new_map().stats(),
    };
    HamtStats {
        maps: live.len() as u32,
        handles: HANDLES.load(Relaxed) as u32,
        unfreed_nodes: families.values().map(|s| s.pending).sum::<u64>() as f64,
        retired_nodes: families.values().map(|s| s.retired).sum::<u64>() as f64,
        hazard_records: records.records_allocated as u32,
        hazard_records_in_use: records.records_in_use as u32,
        reported_memory: REPORTED.load(Relaxed) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_malformed_input() {
        let shared = Shared::new_family(new_map()).unwrap();
        let token = shared.token();
        assert_eq!(token.len(), 32);
        assert_eq!(parse(&token), Some(shared.token));
        assert!(Arc::ptr_eq(&attach(&token).unwrap(), &shared));
        for bad in [
            "",
            "xyz",
            &token[..31],
            &token.to_uppercase(),
            &format!("{token}0"),
        ] {
            if bad != token {
                assert!(matches!(
                    attach(bad),
                    Err(Failure::New {
                        code: INVALID_TOKEN,
                        ..
                    })
                ));
            }
        }
        drop(shared);
        assert!(matches!(
            attach(&token),
            Err(Failure::New {
                code: STALE_TOKEN,
                ..
            })
        ));
    }

    #[test]
    fn families_share_one_count() {
        let a = Shared::new_family(new_map()).unwrap();
        let b = a.relative(a.map.snapshot()).unwrap();
        let c = Shared::new_family(new_map()).unwrap();
        assert_eq!(a.family, b.family);
        assert_ne!(a.family, c.family);
        assert_ne!(a.token, b.token);
    }
}
