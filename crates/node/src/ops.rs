//! The map operations of a handle: each converts its arguments, makes one call on the trie,
//! and converts the result. The semantics are the trie's (see `concurrent-hamt`); what is
//! decided here is only how JavaScript values map onto keys and values.
//!
//! Arguments are converted before the map is borrowed, since converting a structured value
//! runs JavaScript (getters, through `v8.serialize`); results are converted to JavaScript
//! while the entry is protected, and deserialized (JavaScript again) after it is let go.

use crate::env;
use crate::error::{finish, Failure, Res, INVALID_ARGUMENT, INVALID_DELTA};
use crate::handle;
use crate::js::{Js, Type, Val};
use crate::key::{self, Key, KeyBuf};
use crate::reentry::Updating;
use crate::value::{Out, Value};
use napi::bindgen_prelude::{Env, Result, Unknown};
use napi_derive::napi;
use std::panic::{self, AssertUnwindSafe};

/// The payload of the unwind that stops a trie write when JavaScript code (or a conversion)
/// fails inside its closure; the failure itself travels beside it.
struct Abort;

/// Runs a call's body and turns its failure into a thrown error.
fn run<'s, T>(env: &'s Env, body: impl FnOnce(Js<'s>) -> Res<T>) -> Result<T> {
    let js = Js::new(env);
    finish(js.raw(), body(js))
}

fn encode<'s>(js: Js<'s>, v: Unknown<'s>, what: &str) -> Res<KeyBuf> {
    let mut buf = KeyBuf::new();
    key::encode(js, js.arg(v), what, &mut buf)?;
    Ok(buf)
}

fn value<'s>(js: Js<'s>, v: Val<'s>, what: &str) -> Res<Value> {
    Value::from_js(js, v, what, env::state(js)?)
}

/// `undefined` as `None` (absent, or delete), anything else as a value.
fn optional<'s>(js: Js<'s>, v: Val<'s>, what: &str) -> Res<Option<Value>> {
    if js.type_of(v)? == Type::Undefined {
        Ok(None)
    } else {
        value(js, v, what).map(Some)
    }
}

fn finish_out<'s>(js: Js<'s>, out: Option<Out<'s>>) -> Res<Unknown<'s>> {
    let v = match out {
        Some(out) => out.finish(js)?,
        None => js.undefined()?,
    };
    Ok(js.unknown(v))
}

/// Runs a trie write whose closure can fail: the closure stores its failure in `failed` and
/// unwinds with [`Abort`] (the trie is safe against unwinding closures: nothing is written
/// and nothing leaks); any other panic goes on unwinding, to the boundary's `catch_unwind`.
fn abortable<T>(
    failed: &mut Option<Failure>,
    write: impl FnOnce(&mut Option<Failure>) -> T,
) -> Res<T> {
    match panic::catch_unwind(AssertUnwindSafe(|| write(failed))) {
        Ok(t) => Ok(t),
        Err(payload) if payload.is::<Abort>() => {
            Err(failed.take().expect("an abort records its failure"))
        }
        Err(payload) => panic::resume_unwind(payload),
    }
}

fn abort(failed: &mut Option<Failure>, f: Failure) -> ! {
    *failed = Some(f);
    panic::resume_unwind(Box::new(Abort))
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown",
    ts_return_type = "unknown",
    js_name = "mapGet"
)]
pub fn get<'s>(env: &'s Env, map: Unknown<'s>, key: Unknown<'s>) -> Result<Unknown<'s>> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.get: key")?;
        let out = {
            let s = cell.map()?;
            let found = s.map.get(&k[..]);
            found.map(|r| r.value().to_js(js)).transpose()?
        };
        finish_out(js, out)
    })
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown",
    js_name = "mapHas"
)]
pub fn has<'s>(env: &'s Env, map: Unknown<'s>, key: Unknown<'s>) -> Result<bool> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.has: key")?;
        let found = cell.map()?.map.contains_key(&k[..]);
        Ok(found)
    })
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, value: unknown",
    js_name = "mapSet"
)]
pub fn set<'s>(env: &'s Env, map: Unknown<'s>, key: Unknown<'s>, value: Unknown<'s>) -> Result<()> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.set: key")?;
        let v = self::value(js, js.arg(value), "Hamt.set: value")?;
        let bytes = k.len() + v.heap_size();
        cell.writable("Hamt.set")?.map.insert(Key::new(&k), v);
        cell.wrote(js, bytes);
        Ok(())
    })
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown",
    js_name = "mapDelete"
)]
pub fn delete<'s>(env: &'s Env, map: Unknown<'s>, key: Unknown<'s>) -> Result<bool> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.delete: key")?;
        let removed = cell.writable("Hamt.delete")?.map.remove(&k[..]).is_some();
        Ok(removed)
    })
}

#[napi(catch_unwind, ts_args_type = "map: object", js_name = "mapClear")]
pub fn clear<'s>(env: &'s Env, map: Unknown<'s>) -> Result<()> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        cell.writable("Hamt.clear")?.map.clear();
        cell.sync_memory(js);
        Ok(())
    })
}

/// O(1); exact whenever no write is in flight.
#[napi(catch_unwind, js_name = "mapSize", ts_args_type = "map: object")]
pub fn size<'s>(env: &'s Env, map: Unknown<'s>) -> Result<f64> {
    run(env, |js| Ok(handle::cell(js, map)?.map()?.map.len() as f64))
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, value: unknown",
    js_name = "mapSetIfAbsent"
)]
pub fn set_if_absent<'s>(
    env: &'s Env,
    map: Unknown<'s>,
    key: Unknown<'s>,
    value: Unknown<'s>,
) -> Result<bool> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.setIfAbsent: key")?;
        let v = self::value(js, js.arg(value), "Hamt.setIfAbsent: value")?;
        let bytes = k.len() + v.heap_size();
        let inserted = cell
            .writable("Hamt.setIfAbsent")?
            .map
            .insert_if_absent(Key::new(&k), v);
        if inserted {
            cell.wrote(js, bytes);
        }
        Ok(inserted)
    })
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, value: unknown",
    ts_return_type = "unknown",
    js_name = "mapSwap"
)]
pub fn swap<'s>(
    env: &'s Env,
    map: Unknown<'s>,
    key: Unknown<'s>,
    value: Unknown<'s>,
) -> Result<Unknown<'s>> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.swap: key")?;
        let v = self::value(js, js.arg(value), "Hamt.swap: value")?;
        let bytes = k.len() + v.heap_size();
        let out = {
            let s = cell.writable("Hamt.swap")?;
            let old = s.map.insert(Key::new(&k), v);
            old.map(|r| r.value().to_js(js)).transpose()?
        };
        cell.wrote(js, bytes);
        finish_out(js, out)
    })
}

#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, expected: unknown, value: unknown",
    js_name = "mapCompareAndSet"
)]
pub fn compare_and_set<'s>(
    env: &'s Env,
    map: Unknown<'s>,
    key: Unknown<'s>,
    expected: Unknown<'s>,
    value: Unknown<'s>,
) -> Result<bool> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.compareAndSet: key")?;
        let expected = optional(js, js.arg(expected), "Hamt.compareAndSet: expected")?;
        let new = optional(js, js.arg(value), "Hamt.compareAndSet: value")?;
        let bytes = k.len() + new.as_ref().map_or(0, Value::heap_size);
        let s = cell.writable("Hamt.compareAndSet")?;
        let done = match (expected, new) {
            (None, None) => !s.map.contains_key(&k[..]),
            (None, Some(v)) => s.map.insert_if_absent(Key::new(&k), v),
            (Some(e), None) => s.map.remove_if(&k[..], |cur| *cur == e).is_some(),
            (Some(e), Some(v)) => s.map.compare_exchange(Key::new(&k), &e, v).is_ok(),
        };
        drop(s);
        if done && bytes > k.len() {
            cell.wrote(js, bytes);
        }
        Ok(done)
    })
}

/// `fn` runs inside the trie's write, once per attempt; a throw stops the write.
#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, fn: (current: unknown) => unknown",
    ts_return_type = "unknown",
    js_name = "mapUpdate"
)]
pub fn update<'s>(
    env: &'s Env,
    map: Unknown<'s>,
    key: Unknown<'s>,
    f: Unknown<'s>,
) -> Result<Unknown<'s>> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.update: key")?;
        let f = js.arg(f);
        if js.type_of(f)? != Type::Function {
            return Err(Failure::type_error(
                INVALID_ARGUMENT,
                format!(
                    "Hamt.update: fn must be a function (got {})",
                    js.type_of(f)?.name()
                ),
            ));
        }
        // A reference of our own: `fn` may close this handle.
        let shared = cell.arc("Hamt.update")?;
        let mut bytes = k.len();
        let mut failed = None;
        let out = abortable(&mut failed, |failed| {
            let _updating = Updating::enter(&shared);
            let stored = shared.map.update(Key::new(&k), |current| {
                let step = || -> Res<Option<Value>> {
                    let arg = match current {
                        Some(v) => v.to_js(js)?.finish(js)?,
                        None => js.undefined()?,
                    };
                    let result = js.call(f, &[arg])?;
                    optional(js, result, "Hamt.update: the value fn returned")
                };
                match step() {
                    Ok(v) => {
                        bytes = k.len() + v.as_ref().map_or(0, Value::heap_size);
                        v
                    }
                    Err(e) => abort(failed, e),
                }
            });
            stored.map(|r| r.value().to_js(js))
        })?;
        let out = out.transpose()?;
        cell.wrote(js, bytes);
        finish_out(js, out)
    })
}

/// Atomic `+=`; absent counts as zero; the delta is a finite number or a bigint.
#[napi(
    catch_unwind,
    ts_args_type = "map: object, key: unknown, delta?: unknown",
    ts_return_type = "number | bigint",
    js_name = "mapIncrement"
)]
pub fn increment<'s>(
    env: &'s Env,
    map: Unknown<'s>,
    key: Unknown<'s>,
    delta: Unknown<'s>,
) -> Result<Unknown<'s>> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        let k = encode(js, key, "Hamt.increment: key")?;
        let d = js.arg(delta);
        let delta = {
            match js.type_of(d)? {
                Type::Undefined => Value::Number(1.0),
                Type::Number => {
                    let n = js.double(d)?;
                    if !n.is_finite() {
                        return Err(Failure::range_error(
                            INVALID_DELTA,
                            format!("Hamt.increment: delta must be finite (got {n})"),
                        ));
                    }
                    Value::Number(n)
                }
                Type::BigInt => value(js, d, "Hamt.increment: delta")?,
                t => {
                    return Err(Failure::type_error(
                        INVALID_DELTA,
                        format!(
                            "Hamt.increment: delta must be a number or a bigint (got {})",
                            t.name()
                        ),
                    ))
                }
            }
        };
        let s = cell.writable("Hamt.increment")?;
        let mut failed = None;
        let out = abortable(&mut failed, |failed| {
            let stored = s.map.update(Key::new(&k), |current| {
                match Value::add(current, &delta, "Hamt.increment") {
                    Ok(v) => Some(v),
                    Err(e) => abort(failed, e),
                }
            });
            stored.map(|r| r.value().to_js(js))
        })?;
        drop(s);
        let out = out.transpose()?;
        cell.wrote(js, k.len() + delta.heap_size());
        finish_out(js, out)
    })
}

/// One `get` per key (not atomic as a whole).
#[napi(
    catch_unwind,
    ts_args_type = "map: object, keys: readonly unknown[]",
    ts_return_type = "unknown[]",
    js_name = "mapGetMany"
)]
pub fn get_many<'s>(env: &'s Env, map: Unknown<'s>, keys: Unknown<'s>) -> Result<Unknown<'s>> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        drop(cell.map()?); // a closed handle fails even with no keys
        let keys = js.arg(keys);
        if !js.is_array(keys)? {
            return Err(Failure::type_error(
                INVALID_ARGUMENT,
                format!(
                    "Hamt.getMany: keys must be an array (got {})",
                    js.type_of(keys)?.name()
                ),
            ));
        }
        let len = js.array_length(keys)?;
        let result = js.array(len as usize)?;
        let mut k = KeyBuf::new();
        for i in 0..len {
            let key = js.element(keys, i)?;
            key::encode(js, key, &format!("Hamt.getMany: keys[{i}]"), &mut k)?;
            let out = {
                let s = cell.map()?;
                let found = s.map.get(&k[..]);
                match found {
                    Some(r) => r.value().to_js(js)?,
                    None => Out::Ready(js.undefined()?),
                }
            };
            js.set_element(result, i, out.finish(js)?)?;
        }
        Ok(js.unknown(result))
    })
}

/// One `set` per entry, in order (not atomic as a whole); `entries` is an array of
/// `[key, value]` entries.
#[napi(
    catch_unwind,
    ts_args_type = "map: object, entries: readonly (readonly [unknown, unknown])[]",
    js_name = "mapSetMany"
)]
pub fn set_many<'s>(env: &'s Env, map: Unknown<'s>, entries: Unknown<'s>) -> Result<()> {
    run(env, |js| {
        let cell = handle::cell(js, map)?;
        drop(cell.writable("Hamt.setMany")?); // fails even with no entries
        let entries = js.arg(entries);
        if !js.is_array(entries)? {
            return Err(Failure::type_error(
                INVALID_ARGUMENT,
                format!(
                    "Hamt.setMany: entries must be an array (got {})",
                    js.type_of(entries)?.name()
                ),
            ));
        }
        let mut k = KeyBuf::new();
        for i in 0..js.array_length(entries)? {
            let entry = js.element(entries, i)?;
            if js.type_of(entry)? != Type::Object {
                return Err(Failure::type_error(
                    INVALID_ARGUMENT,
                    format!(
                        "Hamt.setMany: entries[{i}] must be a [key, value] entry (got {})",
                        js.type_of(entry)?.name()
                    ),
                ));
            }
            let key = js.element(entry, 0)?;
            key::encode(js, key, &format!("Hamt.setMany: entries[{i}][0]"), &mut k)?;
            let v = js.element(entry, 1)?;
            let v = value(js, v, &format!("Hamt.setMany: entries[{i}][1]"))?;
            let bytes = k.len() + v.heap_size();
            cell.writable("Hamt.setMany")?.map.insert(Key::new(&k), v);
            cell.wrote(js, bytes);
        }
        Ok(())
    })
}
