//! What the binding keeps per JavaScript environment (the main thread, and each worker).
//!
//! - The structured-clone functions (`v8.serialize`, `v8.deserialize`) that the JavaScript
//!   layer hands over once per environment ([`configure`]), and `Buffer.prototype` (to tell a
//!   `Buffer` from a plain `Uint8Array`).
//! - The refusal counter, an `ArrayBuffer` the JavaScript layer also hands over: a call that
//!   fails while the environment is shutting down cannot throw (Node-API refuses to throw
//!   then, as it refuses to run JavaScript), so it returns to JavaScript as if it had
//!   succeeded, and V8 may run the caller's next statements before it stops the thread. The
//!   binding counts such a call in that buffer ([`note_refusal`]), and the JavaScript layer,
//!   which reads it after every call that may run JavaScript, throws in its place.
//! - The environment's live handles and iteration cursors, so that its tear-down (the
//!   thread's exit, or `worker.terminate()`) releases their references on the native maps
//!   and the snapshots and hazard records of cursors, even when their finalizers never run
//!   (after `terminate()` they may not): an environment clean-up hook releases them all.
//!
//! The state is the addon's instance data, created on first use. It is reference-counted:
//! the instance data holds one count and the clean-up hook another, so it stays valid
//! whichever of the two Node runs first at tear-down.

use crate::error::{Failure, Res, INVALID_ARGUMENT};
use crate::js::{Js, Persistent, Type, Val};
use napi::sys;
use std::cell::{OnceCell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::rc::{Rc, Weak};

/// The binding's state for one environment.
#[derive(Default)]
pub struct EnvState {
    serialize: OnceCell<Persistent>,
    deserialize: OnceCell<Persistent>,
    buffer_prototype: OnceCell<Persistent>,
    /// An `ArrayBuffer` of at least 4 bytes: its first `i32` counts the calls that failed and
    /// could not throw (see the module docs).
    refusals: OnceCell<Persistent>,
    handles: RefCell<Handles>,
}

/// What the environment's tear-down must release: a handle's reference on its map, a
/// cursor's snapshot (and the hazard record its walk holds).
pub trait Release {
    /// Releases it (idempotent). Runs no JavaScript and calls no Node-API.
    fn release(&self);
}

/// The environment's handles and cursors: weak, so that one collected by the garbage
/// collector simply leaves a dead entry, pruned when the list has doubled since the last
/// pruning.
#[derive(Default)]
struct Handles {
    cells: Vec<Weak<dyn Release>>,
    prune_at: usize,
}

impl EnvState {
    pub fn serializer<'s>(&self, js: Js<'s>) -> Res<Val<'s>> {
        js.get(self.serialize.get().ok_or_else(unconfigured)?)
    }

    pub fn deserializer<'s>(&self, js: Js<'s>) -> Res<Val<'s>> {
        js.get(self.deserialize.get().ok_or_else(unconfigured)?)
    }

    pub fn buffer_prototype<'s>(&self, js: Js<'s>) -> Res<Val<'s>> {
        if let Some(p) = self.buffer_prototype.get() {
            return js.get(p);
        }
        let proto = js.prototype(js.buffer(&[])?)?;
        let p = js.persist(proto)?;
        js.get(self.buffer_prototype.get_or_init(|| p))
    }

    /// Records a new handle or cursor of this environment.
    pub fn register(&self, cell: Weak<dyn Release>) {
        let mut h = self.handles.borrow_mut();
        if h.cells.len() >= h.prune_at {
            h.cells.retain(|w| w.strong_count() > 0);
            h.prune_at = (h.cells.len() * 2).max(64);
        }
        h.cells.push(cell);
    }

    /// Releases every live handle and cursor of the environment (its tear-down).
    fn close_all(&self) {
        let cells = std::mem::take(&mut self.handles.borrow_mut().cells);
        for cell in cells.iter().filter_map(Weak::upgrade) {
            cell.release();
        }
    }

    /// Deletes the environment's references (at its tear-down, when no callback can use them).
    fn delete_references(&self, env: sys::napi_env) {
        for p in [
            &self.serialize,
            &self.deserialize,
            &self.buffer_prototype,
            &self.refusals,
        ] {
            if let Some(p) = p.get() {
                // Safety: `env` is the environment being torn down, whose references these
                // are; no callback of it runs any more, so none is used after this.
                unsafe { p.delete(env) };
            }
        }
    }
}

fn unconfigured() -> Failure {
    Failure::type_error(
        INVALID_ARGUMENT,
        "structured values need the serializer: load the package through its index.js, which \
         calls configure(v8.serialize, v8.deserialize, refusals)",
    )
}

/// The environment's state, created on first use.
pub fn state<'s>(js: Js<'s>) -> Res<&'s EnvState> {
    let env = js.raw();
    let mut data: *mut c_void = ptr::null_mut();
    // Safety: `env` is the running callback's environment, on its thread (`Js`'s invariant).
    let status = unsafe { sys::napi_get_instance_data(env, &mut data) };
    if status != sys::Status::napi_ok {
        return Err(Failure::napi(status, "instance data"));
    }
    if data.is_null() {
        let state = Rc::new(EnvState::default());
        let for_data = Box::into_raw(Box::new(Rc::clone(&state)));
        // Safety: as above; `finalize_state` takes back exactly this box, once, at tear-down.
        let status = unsafe {
            sys::napi_set_instance_data(env, for_data.cast(), Some(finalize_state), ptr::null_mut())
        };
        if status != sys::Status::napi_ok {
            // Safety: not handed to Node-API, so still ours.
            drop(unsafe { Box::from_raw(for_data) });
            return Err(Failure::napi(status, "instance data"));
        }
        let for_hook = Box::into_raw(Box::new(state));
        // Safety: as above; `cleanup` takes back exactly this box, once, at tear-down.
        let status = unsafe { sys::napi_add_env_cleanup_hook(env, Some(cleanup), for_hook.cast()) };
        if status != sys::Status::napi_ok {
            // Safety: not handed to Node-API, so still ours.
            drop(unsafe { Box::from_raw(for_hook) });
            return Err(Failure::napi(status, "clean-up hook"));
        }
        data = for_data.cast();
    }
    // Safety: the instance data is the box made above (this addon sets no other), alive until
    // the environment's tear-down, which no running callback outlives; only shared references
    // to it are ever made.
    Ok(unsafe { &**data.cast::<Rc<EnvState>>() })
}

/// The environment's tear-down: close its handles. No JavaScript may run here.
unsafe extern "C" fn cleanup(arg: *mut c_void) {
    // Safety: `arg` is the box made for the hook in `state`, given back once.
    let state = unsafe { Box::from_raw(arg.cast::<Rc<EnvState>>()) };
    // A panic must not unwind into Node; closing handles runs only our own drops.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.close_all()));
}

unsafe extern "C" fn finalize_state(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // Safety: `data` is the box set as instance data in `state`, given back once.
    let state = unsafe { Box::from_raw(data.cast::<Rc<EnvState>>()) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        state.delete_references(env);
        drop(state)
    }));
}

/// `configure(serialize, deserialize, refusals)`: the JavaScript layer's structured-clone
/// functions, and the `ArrayBuffer` (at least 4 bytes) in which [`note_refusal`] counts.
pub fn configure<'s>(
    js: Js<'s>,
    serialize: Val<'s>,
    deserialize: Val<'s>,
    refusals: Val<'s>,
) -> Res<()> {
    for (v, name) in [(serialize, "serialize"), (deserialize, "deserialize")] {
        if js.type_of(v)? != Type::Function {
            return Err(Failure::type_error(
                INVALID_ARGUMENT,
                format!("configure: {name} must be a function"),
            ));
        }
    }
    if !matches!(js.array_buffer(refusals)?, Some((_, len)) if len >= 4) {
        return Err(Failure::type_error(
            INVALID_ARGUMENT,
            "configure: refusals must be an ArrayBuffer of at least 4 bytes",
        ));
    }
    let state = state(js)?;
    let s = js.persist(serialize)?;
    let d = js.persist(deserialize)?;
    let r = js.persist(refusals)?;
    // A second call keeps the first values (the references made here are freed with the
    // environment).
    let _ = state.serialize.set(s);
    let _ = state.deserialize.set(d);
    let _ = state.refusals.set(r);
    Ok(())
}

/// Counts, in the environment's refusal buffer, a call that failed and could not throw (see
/// the module docs). Best effort, and only Node-API calls that work while the environment
/// shuts down: if the buffer is missing or was detached, nothing is counted.
pub fn note_refusal(js: Js<'_>) {
    let Ok(state) = state(js) else { return };
    let Some(r) = state.refusals.get() else {
        return;
    };
    let Ok(buffer) = js.get(r) else { return };
    if let Ok(Some((data, len))) = js.array_buffer(buffer) {
        if !data.is_null() && len >= 4 {
            let cell = data.cast::<i32>();
            // Safety: `data` is the start of the buffer's `len >= 4` bytes, valid while this
            // callback runs no JavaScript (nothing can detach or collect the buffer meanwhile:
            // the reference keeps it alive); only this thread (the environment's) reads or
            // writes it, so plain unaligned accesses cannot race.
            unsafe { cell.write_unaligned(cell.read_unaligned().wrapping_add(1)) };
        }
    }
}
