//! Handles: the values through which a thread uses a native map.
//!
//! A handle is a JavaScript *external* value (the JavaScript layer keeps it, hidden, in its
//! `Hamt` object) that names a slot of its thread's [`SLOTS`]; the slot holds a
//! [`HandleCell`], which holds one strong reference on the map. The binding's functions take
//! the handle as their first argument. This costs a thread-local lookup per call where a
//! method of a wrapped class would cost `napi_unwrap` (a private-property lookup: about 800
//! of the 1,100 instructions of a no-op method call, measured with callgrind), and it is safe
//! whatever external is passed: an index that names no slot of this thread is an error.
//!
//! The reference is released exactly once, by whichever comes first:
//! - `close()` (and `Symbol.dispose`, which the JavaScript layer maps to it);
//! - the external's finalizer, when the garbage collector frees it;
//! - the environment's tear-down (the thread exits, or `worker.terminate()`; see
//!   [`crate::env`]).
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
//! [`SYNC_EVERY`] writes and by `clear()`, and given back when the handle is released.

use crate::cursor::NativeCursor;
use crate::env;
use crate::error::{finish, Failure, Res, CLOSED};
use crate::js::{Js, Val};
use crate::reentry;
use crate::registry::{self, HamtStats, Shared, HANDLES, REPORTED};
use napi::bindgen_prelude::{Env, Result, Unknown};
use napi_derive::napi;
use std::cell::{Cell, Ref, RefCell};
use std::ffi::c_void;
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
        Ref::filter_map(self.map.borrow(), |m| m.as_deref()).map_err(|_| closed_error())
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
        let s = self.map.borrow().clone().ok_or_else(closed_error)?;
        reentry::check(&s, what)?;
        Ok(s)
    }

    /// Counts a write of `bytes` of key and value; now and then, updates the memory reported.
    pub fn wrote(&self, js: Js<'_>, bytes: usize) {
        let avg = self.entry_bytes.get() as u64;
        self.entry_bytes
            .set(((avg * 7 + bytes as u64) / 8).min(u32::MAX as u64) as u32);
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
        let estimate =
            (len * (ENTRY_OVERHEAD + self.entry_bytes.get() as u64)).min(i64::MAX as u64) as i64;
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

fn closed_error() -> Failure {
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

/// This thread's handles, by the index their external values carry (Node runs one
/// environment per thread, so a thread's slots are its environment's).
struct Slots {
    cells: Vec<Option<Rc<HandleCell>>>,
    free: Vec<usize>,
}

thread_local! {
    static SLOTS: RefCell<Slots> = const { RefCell::new(Slots { cells: Vec::new(), free: Vec::new() }) };
}

/// A new handle of this environment on `shared`: an external value naming its slot.
pub(crate) fn open<'s>(js: Js<'s>, shared: Arc<Shared>) -> Res<Val<'s>> {
    let state = env::state(js)?;
    let cell = HandleCell::new(shared);
    state.register(Rc::downgrade(&cell) as Weak<dyn env::Release>);
    cell.sync_memory(js);
    let index = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        match s.free.pop() {
            Some(i) => {
                s.cells[i] = Some(Rc::clone(&cell));
                i
            }
            None => {
                s.cells.push(Some(Rc::clone(&cell)));
                s.cells.len() - 1
            }
        }
    });
    let mut out = std::ptr::null_mut();
    // Safety: the running callback's environment (`Js`'s invariant). The external carries
    // the slot index as its data (not a pointer: nothing is ever dereferenced through it),
    // and `finalize` frees that slot once, when the value is collected.
    let status = unsafe {
        napi::sys::napi_create_external(
            js.raw(),
            index as *mut c_void,
            Some(finalize),
            std::ptr::null_mut(),
            &mut out,
        )
    };
    if status != napi::sys::Status::napi_ok {
        free_slot(index);
        return Err(Failure::napi(status, "external"));
    }
    Ok(js.val(out))
}

fn free_slot(index: usize) -> Option<Rc<HandleCell>> {
    // `try_with`: at a thread's very end the slots may be gone already (then so are the cells).
    SLOTS
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let cell = s.cells.get_mut(index).and_then(Option::take);
            if cell.is_some() {
                s.free.push(index);
            }
            cell
        })
        .ok()
        .flatten()
}

/// The collection of a handle's external value: its slot is freed and its reference released.
unsafe extern "C" fn finalize(env: napi::sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        if let Some(cell) = free_slot(data as usize) {
            let reported = cell.release();
            if reported != 0 {
                let mut total = 0;
                // Safety: a finalizer of `env`, on its thread. As in `adjust_memory`.
                unsafe { napi::sys::napi_adjust_external_memory(env, -reported, &mut total) };
            }
        }
    });
}

/// The cell of the handle `v` (the first argument of every map function).
pub(crate) fn cell<'s>(js: Js<'s>, v: Unknown<'s>) -> Res<Rc<HandleCell>> {
    let mut data: *mut c_void = std::ptr::null_mut();
    // Safety: the running callback's environment and one of its values (`Js`'s invariant).
    let status =
        unsafe { napi::sys::napi_get_value_external(js.raw(), js.arg(v).raw(), &mut data) };
    let found = if status == napi::sys::Status::napi_ok {
        SLOTS.with(|s| s.borrow().cells.get(data as usize).cloned().flatten())
    } else {
        None
    };
    found.ok_or_else(|| {
        Failure::type_error(
            crate::error::INVALID_ARGUMENT,
            "not a Hamt handle of this thread (the binding's functions take the handle a Hamt keeps)",
        )
    })
}

/// A new, empty map.
#[napi(catch_unwind, js_name = "mapCreate", ts_return_type = "object")]
pub fn create(env: &Env) -> Result<Unknown<'_>> {
    let js = Js::new(env);
    finish(
        js.raw(),
        Shared::new_family(registry::new_map())
            .and_then(|s| open(js, s))
            .map(|v| js.unknown(v)),
    )
}

/// A new handle on the map named by `token`.
#[napi(catch_unwind, js_name = "mapAttach", ts_return_type = "object")]
pub fn attach(env: &Env, token: String) -> Result<Unknown<'_>> {
    let js = Js::new(env);
    finish(
        js.raw(),
        registry::attach(&token)
            .and_then(|s| open(js, s))
            .map(|v| js.unknown(v)),
    )
}

/// The map's token (the same for every handle on it).
#[napi(catch_unwind, js_name = "mapToken", ts_args_type = "map: object")]
pub fn token<'s>(env: &'s Env, map: Unknown<'s>) -> Result<String> {
    let js = Js::new(env);
    finish(
        js.raw(),
        cell(js, map).and_then(|c| c.map().map(|s| s.token())),
    )
}

/// Whether this handle is closed.
#[napi(catch_unwind, js_name = "mapClosed", ts_args_type = "map: object")]
pub fn is_closed<'s>(env: &'s Env, map: Unknown<'s>) -> Result<bool> {
    let js = Js::new(env);
    finish(js.raw(), cell(js, map).map(|c| c.map().is_err()))
}

/// Releases this handle's reference (idempotent).
#[napi(catch_unwind, js_name = "mapClose", ts_args_type = "map: object")]
pub fn close<'s>(env: &'s Env, map: Unknown<'s>) -> Result<()> {
    let js = Js::new(env);
    finish(
        js.raw(),
        cell(js, map).map(|c| {
            let reported = c.release();
            adjust_memory(js, -reported);
        }),
    )
}

/// A writable, independent copy of the map, in O(1): a new map of the same family.
#[napi(
    catch_unwind,
    js_name = "mapSnapshot",
    ts_args_type = "map: object",
    ts_return_type = "object"
)]
pub fn snapshot<'s>(env: &'s Env, map: Unknown<'s>) -> Result<Unknown<'s>> {
    let js = Js::new(env);
    let result = (|| {
        let copy = {
            let c = cell(js, map)?;
            let s = c.writable("Hamt.snapshot")?;
            s.relative(s.map.snapshot())?
        };
        open(js, copy).map(|v| js.unknown(v))
    })();
    finish(js.raw(), result)
}

/// A cursor over a read-only snapshot taken now.
#[napi(catch_unwind, js_name = "mapCursor", ts_args_type = "map: object")]
pub fn cursor<'s>(env: &'s Env, map: Unknown<'s>) -> Result<NativeCursor> {
    let js = Js::new(env);
    let result = (|| {
        let c = cell(js, map)?;
        let snapshot = c.writable("Hamt iteration")?.map.read_only_snapshot();
        NativeCursor::open(js, snapshot)
    })();
    finish(js.raw(), result)
}

/// Process-wide statistics.
#[napi(catch_unwind)]
pub fn stats() -> HamtStats {
    registry::stats()
}

/// The binding's floor for benchmarks: a call with the arguments of `mapGet` that does nothing.
#[napi(catch_unwind, ts_args_type = "map: object, key: unknown")]
pub fn noop(_map: Unknown<'_>, _key: Unknown<'_>) {}

/// Hands the JavaScript layer's structured-clone functions and its refusal counter (see
/// [`env`](crate::env)) to the binding, once per thread.
#[napi(
    catch_unwind,
    ts_args_type = "serialize: (value: unknown) => Uint8Array, deserialize: (bytes: Uint8Array) => unknown, refusals: ArrayBuffer"
)]
pub fn configure(
    env: Env,
    serialize: Unknown<'_>,
    deserialize: Unknown<'_>,
    refusals: Unknown<'_>,
) -> Result<()> {
    let js = Js::new(&env);
    finish(
        js.raw(),
        env::configure(js, js.arg(serialize), js.arg(deserialize), js.arg(refusals)),
    )
}
