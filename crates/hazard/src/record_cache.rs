//! A per-thread cache of retired-list records, so that retiring an object allocates nothing
//! in the steady state: a scan returns the records of the objects it frees to its own thread's
//! cache, and the next retires take them from there. (Every write of a data structure
//! retires at least one node; a `malloc` and a `free` per retire showed as a sixth of a
//! trie write's time.)

use crate::domain::Retired;
use crate::sync::{thread_local, LOOM};
use std::cell::Cell;
use std::ptr;

/// Records kept per thread at most (a scan frees about one threshold's worth at a time).
const CAPACITY: usize = if LOOM { 4 } else { 1024 };

struct Cache {
    /// A stack linked through `Retired::next`.
    head: Cell<*mut Retired>,
    len: Cell<usize>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        let mut p = self.head.get();
        while !p.is_null() {
            // Safety: every record in the cache came from `Box::into_raw` in `take` and is
            // owned by the cache alone.
            let record = unsafe { Box::from_raw(p) };
            p = record.next;
        }
    }
}

thread_local! {
    // Not `const { .. }`: loom's `thread_local!` does not accept that form.
    #[allow(clippy::missing_const_for_thread_local)]
    static CACHE: Cache = Cache { head: Cell::new(ptr::null_mut()), len: Cell::new(0) };
}

/// A record holding `value`: a cached one, or a new allocation.
pub(crate) fn take(value: Retired) -> *mut Retired {
    let cached = CACHE
        .try_with(|c| {
            let p = c.head.get();
            if !p.is_null() {
                // Safety: `p` is owned by the cache (see `give`).
                c.head.set(unsafe { (*p).next });
                c.len.set(c.len.get() - 1);
            }
            p
        })
        .unwrap_or(ptr::null_mut());
    if cached.is_null() {
        Box::into_raw(Box::new(value))
    } else {
        // Safety: owned by us now; a `Retired` is plain data, so overwriting drops nothing.
        unsafe { cached.write(value) };
        cached
    }
}

/// Returns a record that its owner no longer needs.
///
/// # Safety
/// 1. `record` came from [`take`], and the caller owns it and does not use it afterwards.
pub(crate) unsafe fn give(record: *mut Retired) {
    let kept = CACHE
        .try_with(|c| {
            if c.len.get() >= CAPACITY {
                return false;
            }
            // Safety: 1. we own the record; linking it into the cache hands it over.
            unsafe { (*record).next = c.head.get() };
            c.head.set(record);
            c.len.set(c.len.get() + 1);
            true
        })
        .unwrap_or(false);
    if !kept {
        // Safety: 1. from `Box::into_raw` in `take`.
        drop(unsafe { Box::from_raw(record) });
    }
}
