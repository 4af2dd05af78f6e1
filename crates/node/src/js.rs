//! A thin, safe face on the raw Node-API calls the binding makes.
//!
//! napi-rs's typed wrappers do more work per call than a map operation can afford (a type
//! check, an allocation for every string), so the conversions call Node-API directly, through
//! this module only.
//!
//! # The invariant that makes these calls safe
//!
//! A [`Js`] is made from the `Env` of a callback that is running on its own thread, and lives
//! no longer than the callback (its lifetime `'s`). A [`Val<'s>`] is a `napi_value` of that
//! callback: an argument, or a value a `Js<'s>` method returned. Every Node-API call below is
//! given that environment and such values only, so each is a call that Node-API allows: on the
//! environment's thread, with handles of its current scope.

use crate::error::{Failure, Res};
use napi::bindgen_prelude::{Env, JsValue, Unknown};
use napi::sys;
use smallvec::SmallVec;
use std::marker::PhantomData;
use std::ptr;

/// The environment of the running callback.
#[derive(Clone, Copy)]
pub struct Js<'s> {
    env: sys::napi_env,
    _scope: PhantomData<&'s ()>,
}

/// A JavaScript value of the running callback.
#[derive(Clone, Copy)]
pub struct Val<'s> {
    raw: sys::napi_value,
    _scope: PhantomData<&'s ()>,
}

impl Val<'_> {
    /// The raw value, for a Node-API call made outside this module (with `Js`'s invariant).
    pub fn raw(self) -> sys::napi_value {
        self.raw
    }
}

/// The type of a JavaScript value, as `typeof` sees it (with `null` apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Symbol,
    Object,
    Function,
    External,
    BigInt,
}

impl Type {
    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Undefined => "undefined",
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Number => "number",
            Type::String => "string",
            Type::Symbol => "symbol",
            Type::Object => "object",
            Type::Function => "function",
            Type::External => "external",
            Type::BigInt => "bigint",
        }
    }
}

/// Fails with the Node-API status of a call.
fn check(status: sys::napi_status, what: &str) -> Res<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Failure::napi(status, what))
    }
}

/// What the bytes of a typed array are, for the conversions that accept only some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// A `Uint8Array` (or a subclass: `Buffer` is one).
    Uint8,
    /// Any other typed array.
    Other,
}

impl<'s> Js<'s> {
    /// The environment of the running callback (see the module's invariant).
    pub fn new(env: &'s Env) -> Self {
        Js {
            env: env.raw(),
            _scope: PhantomData,
        }
    }

    /// The raw environment, for [`Failure::throw`](crate::error::Failure::throw).
    pub fn raw(self) -> sys::napi_env {
        self.env
    }

    /// An argument of the running callback.
    pub fn arg(self, value: Unknown<'s>) -> Val<'s> {
        self.wrap(value.raw())
    }

    /// A value to return from the running callback.
    pub fn unknown(self, value: Val<'s>) -> Unknown<'s> {
        // Safety: the module's invariant: `value` is a value of this callback.
        unsafe { Unknown::from_raw_unchecked(self.env, value.raw) }
    }

    /// A value that a Node-API call of this callback returned.
    pub fn val(self, raw: sys::napi_value) -> Val<'s> {
        self.wrap(raw)
    }

    fn wrap(self, raw: sys::napi_value) -> Val<'s> {
        Val {
            raw,
            _scope: PhantomData,
        }
    }

    pub fn type_of(self, v: Val<'s>) -> Res<Type> {
        let mut t = 0;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_typeof(self.env, v.raw, &mut t) },
            "typeof",
        )?;
        Ok(match t {
            sys::ValueType::napi_undefined => Type::Undefined,
            sys::ValueType::napi_null => Type::Null,
            sys::ValueType::napi_boolean => Type::Boolean,
            sys::ValueType::napi_number => Type::Number,
            sys::ValueType::napi_string => Type::String,
            sys::ValueType::napi_symbol => Type::Symbol,
            sys::ValueType::napi_function => Type::Function,
            sys::ValueType::napi_external => Type::External,
            sys::ValueType::napi_bigint => Type::BigInt,
            _ => Type::Object,
        })
    }

    pub fn double(self, v: Val<'s>) -> Res<f64> {
        let mut d = 0.0;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_value_double(self.env, v.raw, &mut d) },
            "number",
        )?;
        Ok(d)
    }

    pub fn boolean(self, v: Val<'s>) -> Res<bool> {
        let mut b = false;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_value_bool(self.env, v.raw, &mut b) },
            "boolean",
        )?;
        Ok(b)
    }

    /// A bigint's sign (true when negative) and magnitude, least significant word first.
    pub fn bigint(self, v: Val<'s>, words: &mut SmallVec<[u64; 2]>) -> Res<bool> {
        let mut sign = 0;
        let mut count = 0usize;
        check(
            // Safety: the module's invariant; null `sign` and `words` ask for the word count.
            unsafe {
                sys::napi_get_value_bigint_words(
                    self.env,
                    v.raw,
                    ptr::null_mut(),
                    &mut count,
                    ptr::null_mut(),
                )
            },
            "bigint",
        )?;
        words.clear();
        words.resize(count, 0);
        check(
            // Safety: as above, with room for `count` words.
            unsafe {
                sys::napi_get_value_bigint_words(
                    self.env,
                    v.raw,
                    &mut sign,
                    &mut count,
                    words.as_mut_ptr(),
                )
            },
            "bigint",
        )?;
        words.truncate(count);
        Ok(sign != 0)
    }

    /// A string's UTF-16 code units (lone surrogates included), into `out`.
    pub fn utf16<const N: usize>(self, v: Val<'s>, out: &mut SmallVec<[u16; N]>) -> Res<()>
    where
        [u16; N]: smallvec::Array<Item = u16>,
    {
        // First into the inline buffer: a string that leaves it not full fitted whole (the
        // call always writes a terminating NUL, so at most `cap - 1` units are copied).
        let cap = out.inline_size();
        out.clear();
        out.resize(cap, 0);
        let mut copied = 0usize;
        check(
            // Safety: the module's invariant; `out` has room for `cap` units.
            unsafe {
                sys::napi_get_value_string_utf16(
                    self.env,
                    v.raw,
                    out.as_mut_ptr(),
                    cap,
                    &mut copied,
                )
            },
            "string",
        )?;
        if copied + 1 < cap {
            out.truncate(copied);
            return Ok(());
        }
        let mut len = 0usize;
        check(
            // Safety: as above; a null buffer asks for the length only.
            unsafe {
                sys::napi_get_value_string_utf16(self.env, v.raw, ptr::null_mut(), 0, &mut len)
            },
            "string",
        )?;
        out.resize(len + 1, 0);
        check(
            // Safety: as above, with room for `len + 1` units.
            unsafe {
                sys::napi_get_value_string_utf16(
                    self.env,
                    v.raw,
                    out.as_mut_ptr(),
                    len + 1,
                    &mut copied,
                )
            },
            "string",
        )?;
        out.truncate(copied);
        Ok(())
    }

    /// The kind and bytes of a typed array, or `None` for any other value. The bytes are
    /// those of the moment: copy them before any JavaScript code runs.
    pub fn typed_array(self, v: Val<'s>) -> Res<Option<(View, &'s [u8])>> {
        let mut is = false;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_is_typedarray(self.env, v.raw, &mut is) },
            "typed array",
        )?;
        if !is {
            return Ok(None);
        }
        let mut kind = 0;
        let mut length = 0usize;
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0usize;
        check(
            // Safety: the module's invariant.
            unsafe {
                sys::napi_get_typedarray_info(
                    self.env,
                    v.raw,
                    &mut kind,
                    &mut length,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                )
            },
            "typed array",
        )?;
        if kind != sys::TypedarrayType::uint8_array {
            return Ok(Some((View::Other, &[])));
        }
        let bytes = if data.is_null() || length == 0 {
            &[][..]
        } else {
            // Safety: Node-API gives the view's first element and its length in elements (one
            // byte each for a Uint8Array); the memory stays valid while no JavaScript runs in
            // this callback (nothing can detach or collect the buffer), and callers copy it
            // before they run any.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) }
        };
        Ok(Some((View::Uint8, bytes)))
    }

    /// The address and length of an `ArrayBuffer`'s memory, or `None` for any other value.
    /// The memory of a non-resizable `ArrayBuffer` does not move; it goes away only when the
    /// buffer is detached (transferred) or collected.
    pub fn array_buffer(self, v: Val<'s>) -> Res<Option<(*mut u8, usize)>> {
        let mut is = false;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_is_arraybuffer(self.env, v.raw, &mut is) },
            "array buffer",
        )?;
        if !is {
            return Ok(None);
        }
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        let mut length = 0usize;
        check(
            // Safety: the module's invariant; `v` is an `ArrayBuffer` (checked above).
            unsafe { sys::napi_get_arraybuffer_info(self.env, v.raw, &mut data, &mut length) },
            "array buffer",
        )?;
        Ok(Some((data.cast(), length)))
    }

    pub fn prototype(self, v: Val<'s>) -> Res<Val<'s>> {
        let mut p = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_prototype(self.env, v.raw, &mut p) },
            "prototype",
        )?;
        Ok(self.wrap(p))
    }

    pub fn strict_equals(self, a: Val<'s>, b: Val<'s>) -> Res<bool> {
        let mut eq = false;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_strict_equals(self.env, a.raw, b.raw, &mut eq) },
            "===",
        )?;
        Ok(eq)
    }

    pub fn is_array(self, v: Val<'s>) -> Res<bool> {
        let mut is = false;
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_is_array(self.env, v.raw, &mut is) },
            "array",
        )?;
        Ok(is)
    }

    pub fn array_length(self, v: Val<'s>) -> Res<u32> {
        let mut len = 0;
        check(
            // Safety: the module's invariant; `v` is an array (callers check).
            unsafe { sys::napi_get_array_length(self.env, v.raw, &mut len) },
            "array length",
        )?;
        Ok(len)
    }

    /// `object[index]` (runs getters: JavaScript may run).
    pub fn element(self, object: Val<'s>, index: u32) -> Res<Val<'s>> {
        let mut e = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_element(self.env, object.raw, index, &mut e) },
            "element",
        )?;
        Ok(self.wrap(e))
    }

    pub fn set_element(self, array: Val<'s>, index: u32, value: Val<'s>) -> Res<()> {
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_set_element(self.env, array.raw, index, value.raw) },
            "element",
        )
    }

    pub fn array(self, len: usize) -> Res<Val<'s>> {
        let mut a = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_array_with_length(self.env, len, &mut a) },
            "array",
        )?;
        Ok(self.wrap(a))
    }

    /// `object[name] = value`; `name` is NUL-terminated.
    pub fn set_named(self, object: Val<'s>, name: &std::ffi::CStr, value: Val<'s>) -> Res<()> {
        check(
            // Safety: the module's invariant; `name` is NUL-terminated.
            unsafe { sys::napi_set_named_property(self.env, object.raw, name.as_ptr(), value.raw) },
            "property",
        )
    }

    pub fn undefined(self) -> Res<Val<'s>> {
        let mut u = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_undefined(self.env, &mut u) },
            "undefined",
        )?;
        Ok(self.wrap(u))
    }

    pub fn null(self) -> Res<Val<'s>> {
        let mut n = ptr::null_mut();
        // Safety: the module's invariant.
        check(unsafe { sys::napi_get_null(self.env, &mut n) }, "null")?;
        Ok(self.wrap(n))
    }

    pub fn bool(self, b: bool) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_boolean(self.env, b, &mut v) },
            "boolean",
        )?;
        Ok(self.wrap(v))
    }

    pub fn number(self, d: f64) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_double(self.env, d, &mut v) },
            "number",
        )?;
        Ok(self.wrap(v))
    }

    pub fn bigint_i64(self, n: i64) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_bigint_int64(self.env, n, &mut v) },
            "bigint",
        )?;
        Ok(self.wrap(v))
    }

    pub fn bigint_words(self, negative: bool, words: &[u64]) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; `words` holds `words.len()` words.
            unsafe {
                sys::napi_create_bigint_words(
                    self.env,
                    i32::from(negative),
                    words.len(),
                    words.as_ptr(),
                    &mut v,
                )
            },
            "bigint",
        )?;
        Ok(self.wrap(v))
    }

    pub fn latin1(self, bytes: &[u8]) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; `bytes` is valid for its length.
            unsafe {
                sys::napi_create_string_latin1(
                    self.env,
                    bytes.as_ptr().cast(),
                    bytes.len() as isize,
                    &mut v,
                )
            },
            "string",
        )?;
        Ok(self.wrap(v))
    }

    pub fn utf16_string(self, units: &[u16]) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; `units` is valid for its length.
            unsafe {
                sys::napi_create_string_utf16(
                    self.env,
                    units.as_ptr(),
                    units.len() as isize,
                    &mut v,
                )
            },
            "string",
        )?;
        Ok(self.wrap(v))
    }

    pub fn utf8_string(self, s: &str) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; `s` is valid UTF-8 for its length.
            unsafe {
                sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len() as isize, &mut v)
            },
            "string",
        )?;
        Ok(self.wrap(v))
    }

    /// A new `Buffer` holding a copy of `bytes`.
    pub fn buffer(self, bytes: &[u8]) -> Res<Val<'s>> {
        let mut v = ptr::null_mut();
        let mut data = ptr::null_mut();
        check(
            // Safety: the module's invariant; `bytes` is valid for its length.
            unsafe {
                sys::napi_create_buffer_copy(
                    self.env,
                    bytes.len(),
                    bytes.as_ptr().cast(),
                    &mut data,
                    &mut v,
                )
            },
            "buffer",
        )?;
        Ok(self.wrap(v))
    }

    /// A new `Uint8Array` holding a copy of `bytes`.
    pub fn uint8_array(self, bytes: &[u8]) -> Res<Val<'s>> {
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_arraybuffer(self.env, bytes.len(), &mut data, &mut ab) },
            "array buffer",
        )?;
        if !bytes.is_empty() {
            // Safety: Node-API allocated `bytes.len()` writable bytes at `data`, which nothing
            // else can see yet.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
        }
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; the view covers the whole new buffer.
            unsafe {
                sys::napi_create_typedarray(
                    self.env,
                    sys::TypedarrayType::uint8_array,
                    bytes.len(),
                    ab,
                    0,
                    &mut v,
                )
            },
            "typed array",
        )?;
        Ok(self.wrap(v))
    }

    /// Calls `f` with `this` undefined (JavaScript runs: anything may happen meanwhile).
    pub fn call(self, f: Val<'s>, args: &[Val<'s>]) -> Res<Val<'s>> {
        let this = self.undefined()?;
        let raw: SmallVec<[sys::napi_value; 3]> = args.iter().map(|a| a.raw).collect();
        let mut out = ptr::null_mut();
        check(
            // Safety: the module's invariant; `raw` holds `raw.len()` values of this callback.
            unsafe {
                sys::napi_call_function(
                    self.env,
                    this.raw,
                    f.raw,
                    raw.len(),
                    raw.as_ptr(),
                    &mut out,
                )
            },
            "call",
        )?;
        Ok(self.wrap(out))
    }

    /// Takes the pending exception (clearing it).
    pub fn take_exception(self) -> Res<Val<'s>> {
        let mut e = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut e) },
            "exception",
        )?;
        Ok(self.wrap(e))
    }

    /// `String(error.message)`, or `String(error)` for a thrown value that is not an object.
    pub fn message_of(self, error: Val<'s>) -> Res<String> {
        let mut v = error.raw;
        if self.type_of(error)? == Type::Object {
            check(
                // Safety: the module's invariant; the name is NUL-terminated.
                unsafe {
                    sys::napi_get_named_property(self.env, error.raw, c"message".as_ptr(), &mut v)
                },
                "message",
            )?;
        }
        let mut s = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_coerce_to_string(self.env, v, &mut s) },
            "string",
        )?;
        let mut units: SmallVec<[u16; 64]> = SmallVec::new();
        self.utf16(self.wrap(s), &mut units)?;
        Ok(String::from_utf16_lossy(&units))
    }

    /// A new `TypeError` with a `code`.
    pub fn create_type_error(self, code: &str, message: &str) -> Res<Val<'s>> {
        let code = self.utf8_string(code)?;
        let message = self.utf8_string(message)?;
        let mut e = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_type_error(self.env, code.raw, message.raw, &mut e) },
            "error",
        )?;
        Ok(self.wrap(e))
    }

    pub fn throw(self, error: Val<'s>) -> Res<()> {
        // Safety: the module's invariant.
        check(unsafe { sys::napi_throw(self.env, error.raw) }, "throw")
    }

    /// A strong reference to `v`, kept as long as the environment (see [`Persistent`]).
    pub fn persist(self, v: Val<'s>) -> Res<Persistent> {
        let mut r = ptr::null_mut();
        check(
            // Safety: the module's invariant.
            unsafe { sys::napi_create_reference(self.env, v.raw, 1, &mut r) },
            "reference",
        )?;
        Ok(Persistent {
            raw: r,
            env: self.env,
        })
    }

    /// The value behind `p`, which must belong to this environment.
    pub fn get(self, p: &Persistent) -> Res<Val<'s>> {
        if p.env != self.env {
            return Err(Failure::error(
                crate::error::INTERNAL,
                "a reference was used in another environment",
            ));
        }
        let mut v = ptr::null_mut();
        check(
            // Safety: the module's invariant; `p` is a live reference of this environment (checked
            // above; a `Persistent` is never deleted before its environment goes).
            unsafe { sys::napi_get_reference_value(self.env, p.raw, &mut v) },
            "reference",
        )?;
        Ok(self.wrap(v))
    }
}

/// A strong reference to a value, made by [`Js::persist`], kept until its environment is torn
/// down, when [`Persistent::delete`] deletes it (Node-API does not free references with their
/// environment; the binding makes three per environment).
pub struct Persistent {
    raw: sys::napi_ref,
    env: sys::napi_env,
}

impl Persistent {
    /// Deletes the reference.
    ///
    /// # Safety
    /// 1. `env` is the reference's environment, on its thread, and the reference is not used
    ///    after this (not even through [`Js::get`]).
    pub unsafe fn delete(&self, env: sys::napi_env) {
        debug_assert_eq!(env, self.env);
        // Safety: 1. A failure would leak 40 bytes; nothing to do about it at tear-down.
        unsafe { sys::napi_delete_reference(env, self.raw) };
    }
}
