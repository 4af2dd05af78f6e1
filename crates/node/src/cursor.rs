//! Iteration: a cursor over a read-only snapshot, read by the JavaScript layer in batches.
//!
//! `keys()`, `values()`, `entries()` and `[Symbol.iterator]()` take a read-only snapshot
//! when they are called (O(1)), and fetch its entries through [`NativeCursor::next`], many
//! per call, rather than one native call per entry. The snapshot is frozen, so the entries
//! are exactly those present at that instant, each once, whatever writers do meanwhile.
//! A cursor keeps its snapshot (and so the entries in it) alive until it is closed (the
//! JavaScript iterator closes it when it finishes or is abandoned with `break`/`return`) or
//! collected.

use crate::env;
use crate::error::{finish, Failure, Res, INVALID_ARGUMENT};
use crate::js::Js;
use crate::key::Key;
use crate::registry::Snap;
use crate::value::{Out, Value};
use concurrent_hamt::SnapshotIter;
use napi::bindgen_prelude::{Env, Result, Unknown};
use napi_derive::napi;
use self_cell::self_cell;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

type Entries<'a> = SnapshotIter<'a, Key, Value>;

self_cell!(
    /// A snapshot and an iterator over it.
    struct Walk {
        owner: Snap,
        #[covariant]
        dependent: Entries,
    }
);

/// What a batch holds per entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Entries,
    Keys,
    Values,
}

/// The largest batch a call may ask for.
const MAX_BATCH: u32 = 1 << 16;

/// A cursor's walk, shared with its environment's list of things to release at tear-down:
/// `None` once finished, closed or released.
struct WalkCell(RefCell<Option<Walk>>);

impl env::Release for WalkCell {
    fn release(&self) {
        // Never borrowed across JavaScript (see `batch`), so never busy here; if it were,
        // keeping the walk is safe (its finalizer or the thread's exit frees it).
        if let Ok(mut w) = self.0.try_borrow_mut() {
            *w = None;
        }
    }
}

/// A cursor over a read-only snapshot (the JavaScript layer's iterators wrap one).
#[napi(js_name = "NativeCursor")]
pub struct NativeCursor {
    walk: Rc<WalkCell>,
}

impl NativeCursor {
    /// A cursor of this environment over `snapshot`.
    pub(crate) fn open(js: Js<'_>, snapshot: Snap) -> Res<Self> {
        let state = env::state(js)?;
        let walk = Rc::new(WalkCell(RefCell::new(Some(Walk::new(snapshot, |s| {
            s.iter()
        })))));
        state.register(Rc::downgrade(&walk) as Weak<dyn env::Release>);
        Ok(NativeCursor { walk })
    }
}

#[napi]
impl NativeCursor {
    /// Up to `count` entries, as a flat array: `[k0, v0, k1, v1, ...]` in mode 0, keys only in
    /// mode 1, values only in mode 2. Fewer than `count` entries means the end (the cursor is
    /// then closed).
    #[napi(catch_unwind, ts_return_type = "unknown[]")]
    pub fn next<'s>(&mut self, env: &'s Env, count: u32, mode: u32) -> Result<Unknown<'s>> {
        let js = Js::new(env);
        finish(js.raw(), self.batch(js, count, mode))
    }

    /// Lets go of the snapshot (idempotent).
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        env::Release::release(&*self.walk);
    }
}

impl NativeCursor {
    fn batch<'s>(&mut self, js: Js<'s>, count: u32, mode: u32) -> Res<Unknown<'s>> {
        let mode = match mode {
            0 => Mode::Entries,
            1 => Mode::Keys,
            2 => Mode::Values,
            _ => {
                return Err(Failure::range_error(
                    INVALID_ARGUMENT,
                    "cursor mode must be 0, 1 or 2",
                ))
            }
        };
        if count == 0 || count > MAX_BATCH {
            return Err(Failure::range_error(
                INVALID_ARGUMENT,
                format!("cursor batch must be 1 to {MAX_BATCH} entries"),
            ));
        }
        // Convert the batch while the snapshot is borrowed (no JavaScript runs), and
        // deserialize structured values after.
        let mut outs: SmallVec<[Out<'s>; 64]> = SmallVec::new();
        let mut ended = true;
        let mut slot = self.walk.0.borrow_mut();
        if let Some(walk) = slot.as_mut() {
            let mut got = 0;
            let mut converted = Ok(());
            walk.with_dependent_mut(|_, entries| {
                while got < count {
                    let Some((k, v)) = entries.next() else { return };
                    got += 1;
                    converted = (|| {
                        if mode != Mode::Values {
                            outs.push(Out::Ready(k.to_js(js)?));
                        }
                        if mode != Mode::Keys {
                            outs.push(v.to_js(js)?);
                        }
                        Ok(())
                    })();
                    if converted.is_err() {
                        return;
                    }
                }
            });
            converted?;
            ended = got < count;
        }
        if ended {
            *slot = None;
        }
        drop(slot); // before any JavaScript runs (deserialization below)
        let array = js.array(outs.len())?;
        for (i, out) in outs.into_iter().enumerate() {
            js.set_element(array, i as u32, out.finish(js)?)?;
        }
        Ok(js.unknown(array))
    }
}
