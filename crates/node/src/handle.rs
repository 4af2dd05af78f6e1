//! Handles: the JavaScript objects through which a thread uses a native map.
//!
//! A [`NativeHamt`] holds one strong reference on its map, in a [`HandleCell`] that it shares
//! with its environment's list of handles (see [`crate::env`]). The reference is released
//! exactly once, by whichever comes first:
//! - `close()` (and `Symbol.dispose`, which the JavaScript layer maps to it);
//! - the object's finalizer, when the garbage collector frees it;
//! - the environment's tear-down (the thread exits, or `worker.terminate()`).
//!
//! A closed handle fails every operation with `ERR_HAMT_CLOSED`. Operations borrow the cell
//! only while no JavaScript can run (user code runs in `update`'s function and in the
//! getters `v8.serialize` calls; the operations that run it hold a clone of the `Arc`
//! instead), so `close()` from inside user code is safe and takes effect at once.
//!
//! Each handle reports an estimate of its map's memory to V8
//! (`napi_adjust_external_memory`), so that a small handle on a big map weighs what it keeps
//! alive: the entry count times a per-entry estimate (the trie's nodes, plus a moving average
//! of the key and value bytes this handle wrote), brought up to date every
//! [`SYNC_EVERY`] writes, and given back when the handle is released.

use crate::cursor::NativeCursor;
use crate::env;
use crate::error::{finish, Failure, Res, CLOSED};
use crate::js::Js;
use crate::reentry;
use crate::registry::{self, HamtStats, Map, Shared, HANDLES, REPORTED};
use napi::bindgen_prelude::{Env, ObjectFinalize, Result, Unknown};
use napi_derive::napi;
use std::cell::{Cell, Ref, RefCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The trie's own bytes per entry, an estimate for the memory reported to V8 (a leaf, its
/// share of the branch nodes, and the allocator's headers of the key and value boxes).
const ENTRY_OVERHEAD: u64 = 128;

/// Writes between two updates of the memory reported to V8.
const SYNC_EVERY: u32 = 1024;

/// One handle's reference on a map.
pub struct HandleCell {
    /// Invariant: `Some` until the handle is released, then `None` for good.
    map: RefCell<Option<Arc<Shared>>>,
    /// Bytes reported to V8 for this handle.
    reported: Cell<i64>,
    writes: Cell<u32>,
    /// Moving average of the key and value bytes of this handle's writes.
    entry_bytes: Cell<u32>,
}

impl HandleCell {
    fn new(shared: Arc<Shared>) -> Rc<Self> {
        HANDLES.fetch_add(1, Relaxed); // Relaxed: a statistic (see `HANDLES`).
        Rc::new(HandleCell {
            map: RefCell::new(Some(shared)),
            reported: Cell::new(0),
            writes: Cell::new(0),
            entry_bytes: Cell::new(32),
        })
    }

    /// Gives up the reference (once); returns the bytes reported to V8, to give back.
    pub fn release(&self) -> i64 {
        let Ok(mut map) = self.map.try_borrow_mut() else {
            // Only `close()` from inside an operation that borrows could get here, and no
            // operation runs JavaScript while it borrows; keep the reference rather than panic.
            return 0;
        };
        if map.take().is_some() {
            HANDLES.fetch_sub(1, Relaxed); // Relaxed: a statistic.
        }
        let reported = self.reported.replace(0);
        REPORTED.fetch_sub(reported, Relaxed); // Relaxed: a statistic (see `REPORTED`).
        reported
    }

    /// The map, for an operation that runs no JavaScript while it holds it.
    pub fn map(&self) -> Res<Ref<'_, Shared>> {
        Ref::filter_map(self.map.borrow(), |m| m.as_deref()).map_err(|_| closed())
    }

    /// The map, for a write or a snapshot (`what` names the call): not from inside an
    /// `update` function of the same map (see [`crate::reentry`]).
    pub fn writable(&self, what: &str) -> Res<Ref<'_, Shared>> {
        let s = self.map()?;
        reentry::check(&s, what)?;
        Ok(s)
    }

    /// A reference of its own on the map, for a write that runs JavaScript.
    pub fn arc(&self, what: &str) -> Res<Arc<Shared>> {
        let s = self.map.borrow().clone().ok_or_else(closed)?;
        reentry::check(&s, what)?;
        Ok(s)
    }

    /// Counts a write of `bytes` of key and value; now and then, updates the memory reported.
    pub fn wrote(&self, js: Js<'_>, bytes: usize) {
        let avg = self.entry_bytes.get() as u64;
        self.entry_bytes.set(((avg * 7 + bytes as u64) / 8).min(u32::MAX as u64) as u32);
        let n = self.writes.get().wrapping_add(1);
        self.writes.set(n);
        if n % SYNC_EVERY == 0 {
            self.sync_memory(js);
        }
    }

    /// Brings the memory reported to V8 up to date (when it is off by more than an eighth).
    pub fn sync_memory(&self, js: Js<'_>) {
        let Ok(len) = self.map().map(|s| s.map.len() as u64) else {
            return;
        };
        let estimate = (len * (ENTRY_OVERHEAD + self.entry_bytes.get() as u64)).min(i64::MAX as u64) as i64;
        let reported = self.reported.get();
        if (estimate - reported).abs() > reported / 8 + (64 << 10) {
            adjust_memory(js, estimate - reported);
            REPORTED.fetch_add(estimate - reported, Relaxed); // Relaxed: a statistic.
            self.reported.set(estimate);
        }
    }
}

impl Drop for HandleCell {
    fn drop(&mut self) {
        self.release();
    }
}

impl env::Release for HandleCell {
    fn release(&self) {
        HandleCell::release(self);
    }
}

fn closed() -> Failure {
    Failure::error(
        CLOSED,
        "this Hamt handle is closed (close(), Symbol.dispose, or its thread's exit)",
    )
}

fn adjust_memory(js: Js<'_>, delta: i64) {
    if delta != 0 {
        let mut total = 0;
        // Safety: the running callback's environment, on its thread (`Js`'s invariant). A
        // failure changes nothing but V8's heuristics, so its status is not checked.
        unsafe { napi::sys::napi_adjust_external_memory(js.raw(), delta, &mut total) };
    }
}

/// A handle on a native map (the JavaScript layer's `Hamt` wraps one).
#[napi(js_name = "NativeHamt", custom_finalize)]
pub struct NativeHamt {
    pub(crate) cell: Rc<HandleCell>,
}

impl NativeHamt {
    /// A new handle of this environment on `shared`.
    pub(crate) fn open(js: Js<'_>, shared: Arc<Shared>) -> Res<NativeHamt> {
        let state = env::state(js)?;
        let cell = HandleCell::new(shared);
        let weak: Weak<dyn env::Release> = Rc::downgrade(&cell) as Weak<dyn env::Release>;
        state.register(weak);
        cell.sync_memory(js);
        Ok(NativeHamt { cell })
    }
}

impl ObjectFinalize for NativeHamt {
    fn finalize(self, env: Env) -> Result<()> {
        let reported = self.cell.release();
        let js = Js::new(&env);
        adjust_memory(js, -reported);
        Ok(())
    }
}

#[napi]
impl NativeHamt {
    /// A new, empty map.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env) -> Result<Self> {
        let js = Js::new(&env);
        finish(js.raw(), Shared::new_family(Map::new()).and_then(|s| NativeHamt::open(js, s)))
    }

    /// A new handle on the map named by `token`.
    #[napi(factory, catch_unwind)]
    pub fn attach(env: Env, token: String) -> Result<Self> {
        let js = Js::new(&env);
        finish(js.raw(), registry::attach(&token).and_then(|s| NativeHamt::open(js, s)))
    }

    /// The map's token (the same for every handle on it).
    #[napi(getter, catch_unwind)]
    pub fn token(&self, env: Env) -> Result<String> {
        finish(env.raw(), self.cell.map().map(|s| s.token()))
    }

    /// Whether this handle is closed.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.cell.map().is_err()
    }

    /// Releases this handle's reference (idempotent).
    #[napi(catch_unwind)]
    pub fn close(&self, env: Env) {
        let reported = self.cell.release();
        adjust_memory(Js::new(&env), -reported);
    }

    /// A writable, independent copy of the map, in O(1): a new map of the same family.
    #[napi(catch_unwind)]
    pub fn snapshot(&self, env: Env) -> Result<NativeHamt> {
        let js = Js::new(&env);
        let result = (|| {
            let copy = {
                let s = self.cell.writable("Hamt.snapshot")?;
                s.relative(s.map.snapshot())?
            };
            NativeHamt::open(js, copy)
        })();
        finish(js.raw(), result)
    }

    /// A cursor over a read-only snapshot taken now.
    #[napi(catch_unwind)]
    pub fn cursor(&self, env: Env) -> Result<NativeCursor> {
        let js = Js::new(&env);
        let result = (|| {
            let snapshot = self.cell.writable("Hamt iteration")?.map.read_only_snapshot();
            NativeCursor::open(js, snapshot)
        })();
        finish(js.raw(), result)
    }

    /// Process-wide statistics.
    #[napi(catch_unwind)]
    pub fn stats() -> HamtStats {
        registry::stats()
    }

    /// The binding's floor for benchmarks: a method call with one argument that does nothing.
    #[napi(catch_unwind, ts_args_type = "key: unknown")]
    pub fn noop(&self, _key: Unknown<'_>) {}
}

/// Hands the JavaScript layer's structured-clone functions to the binding, once per thread.
#[napi(catch_unwind, ts_args_type = "serialize: (value: unknown) => Uint8Array, deserialize: (bytes: Uint8Array) => unknown")]
pub fn configure(env: Env, serialize: Unknown<'_>, deserialize: Unknown<'_>) -> Result<()> {
    let js = Js::new(&env);
    finish(js.raw(), env::configure(js, js.arg(serialize), js.arg(deserialize)))
}
