//! Errors as JavaScript sees them.
//!
//! Every failure that reaches JavaScript is a `TypeError`, a `RangeError` or an `Error` with a
//! `code` property (one of the `ERR_HAMT_*` constants below) and a message that names the
//! method and the argument. A failure is built as a [`Failure`] while the call runs, and
//! thrown once, at the boundary ([`Failure::throw`]). An exception that JavaScript code
//! already threw (a user's `update` function, a getter run by `v8.serialize`) is kept as it
//! is: [`Failure::Pending`] throws nothing more.

use crate::js::Js;
use napi::bindgen_prelude::Env;
use napi::sys;
use std::ffi::CString;

/// A key that is not a string, number, bigint, boolean or `Uint8Array`.
pub const INVALID_KEY: &str = "ERR_HAMT_INVALID_KEY";
/// A value that structured clone cannot copy (a function, a symbol, a `SharedArrayBuffer`...).
pub const INVALID_VALUE: &str = "ERR_HAMT_INVALID_VALUE";
/// An `increment` delta that is not a finite number or a bigint.
pub const INVALID_DELTA: &str = "ERR_HAMT_INVALID_DELTA";
/// `increment` on a value that is not a number of the delta's kind.
pub const NOT_A_COUNTER: &str = "ERR_HAMT_NOT_A_COUNTER";
/// Any other argument of the wrong type (a callback that is not a function, a batch size...).
pub const INVALID_ARGUMENT: &str = "ERR_HAMT_INVALID_ARGUMENT";
/// A token that is not one `share()` made (wrong shape, length or characters).
pub const INVALID_TOKEN: &str = "ERR_HAMT_INVALID_TOKEN";
/// A well-formed token whose map has no handle left in this process.
pub const STALE_TOKEN: &str = "ERR_HAMT_STALE_TOKEN";
/// A handle used after `close()`, `Symbol.dispose` or its thread's exit.
pub const CLOSED: &str = "ERR_HAMT_CLOSED";
/// A write or snapshot of a map from inside its own `update` function (see `reentry`).
pub const REENTRANT: &str = "ERR_HAMT_REENTRANT";
/// A call into Node-API failed (the engine is terminating, or out of memory).
pub const NAPI: &str = "ERR_HAMT_NAPI";
/// A bug: a Rust panic caught at the boundary.
pub const INTERNAL: &str = "ERR_HAMT_INTERNAL";

/// Which JavaScript error class a failure becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Type,
    Range,
    Plain,
}

/// A failure on its way to JavaScript.
#[derive(Debug)]
pub enum Failure {
    /// An error to create and throw.
    New {
        class: Class,
        code: &'static str,
        message: String,
    },
    /// A JavaScript exception is already pending: throw nothing more.
    Pending,
}

/// The result of every step of a call.
pub type Res<T> = Result<T, Failure>;

impl Failure {
    pub fn type_error(code: &'static str, message: impl Into<String>) -> Self {
        Failure::New {
            class: Class::Type,
            code,
            message: message.into(),
        }
    }

    pub fn range_error(code: &'static str, message: impl Into<String>) -> Self {
        Failure::New {
            class: Class::Range,
            code,
            message: message.into(),
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Failure::New {
            class: Class::Plain,
            code,
            message: message.into(),
        }
    }

    /// The failure of a Node-API call that returned `status`.
    pub fn napi(status: sys::napi_status, what: &str) -> Self {
        if status == sys::Status::napi_pending_exception {
            Failure::Pending
        } else {
            Failure::error(
                NAPI,
                format!("Node-API call failed ({what}: status {status})"),
            )
        }
    }

    /// Throws the failure into `env` (unless an exception is pending already) and gives the
    /// error that tells napi-rs's generated glue to throw nothing more.
    ///
    /// A [`Pending`](Failure::Pending) with no exception pending is a Node-API call that
    /// refused to run JavaScript because the environment is shutting down
    /// (`worker.terminate()`, `process.exit()` in a worker): Node-API then answers "pending
    /// exception" without one. Returning normally would let the caller's next statements run
    /// as if the call had succeeded (V8 stops the thread only at its next interrupt check),
    /// so an `ERR_HAMT_NAPI` error is thrown instead. Node-API refuses to throw in that state
    /// too, though (its throws check, as its calls into JavaScript do, that the environment
    /// can still run JavaScript); a failure that could not be thrown is counted in the
    /// environment's refusal buffer ([`crate::env::note_refusal`]), and the JavaScript layer
    /// throws in its place.
    pub fn throw(self, env: sys::napi_env) -> napi::Error {
        let mut pending = false;
        // Safety: `env` is the environment of the call being answered, on its thread.
        unsafe { sys::napi_is_exception_pending(env, &mut pending) };
        let failure = match self {
            Failure::Pending if !pending => Failure::error(
                NAPI,
                "Node-API could not run JavaScript: the environment is shutting down",
            ),
            f => f,
        };
        let mut thrown = pending;
        if let Failure::New {
            class,
            code,
            message,
        } = failure
        {
            if !pending {
                let code = CString::new(code).unwrap_or_default();
                let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
                // Safety: as above; both strings are NUL-terminated and outlive the call.
                let status = unsafe {
                    match class {
                        Class::Type => {
                            sys::napi_throw_type_error(env, code.as_ptr(), message.as_ptr())
                        }
                        Class::Range => {
                            sys::napi_throw_range_error(env, code.as_ptr(), message.as_ptr())
                        }
                        Class::Plain => sys::napi_throw_error(env, code.as_ptr(), message.as_ptr()),
                    }
                };
                thrown = status == sys::Status::napi_ok;
            }
        }
        if !thrown {
            let env = Env::from_raw(env);
            crate::env::note_refusal(Js::new(&env));
        }
        napi::Error::from_status(napi::Status::PendingException)
    }
}

/// Converts a whole call's result for napi-rs: a failure is thrown here.
pub fn finish<T>(env: sys::napi_env, result: Res<T>) -> napi::Result<T> {
    result.map_err(|f| f.throw(env))
}
