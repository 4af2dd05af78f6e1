//! Values: copied in and out as `v8.serialize` copies them, with a native fast path.
//!
//! Strings, numbers, bigints, booleans, `null`, `undefined` and byte arrays (`Uint8Array`
//! and `Buffer`, each given back as what it was) are converted natively. Every other value
//! goes through structured clone: the JavaScript layer hands `v8.serialize` and
//! `v8.deserialize` to the binding once per thread (see [`crate::env`]), and a value is
//! stored as its serialized bytes.
//!
//! Two values are equal (for `compareAndSet`) when their stored forms are: numbers by their
//! bits (so `0` and `-0` differ, as their serialized forms do; every NaN is stored as one),
//! serialized values byte for byte (two equal objects with their properties in a different
//! order differ).

use crate::env::EnvState;
use crate::error::{Failure, Res, INVALID_VALUE, NOT_A_COUNTER};
use crate::js::{Js, Type, Val, View};
use num_bigint::{BigInt, BigUint, Sign};
use smallvec::SmallVec;

/// A stored value.
#[derive(Clone, Debug)]
pub enum Value {
    Undefined,
    Null,
    Bool(bool),
    /// Any number; NaN in its canonical form.
    Number(f64),
    /// A bigint that fits an `i64`.
    Int(i64),
    /// A bigint that does not fit an `i64`: sign and magnitude (least significant word
    /// first, no high zero word).
    Big {
        negative: bool,
        words: Box<[u64]>,
    },
    /// A string whose UTF-16 code units are all below 0x100, one byte each.
    Str1(Box<[u8]>),
    /// Any other string, as UTF-16 code units.
    Str2(Box<[u16]>),
    /// A `Uint8Array`'s bytes.
    Bytes(Box<[u8]>),
    /// A `Buffer`'s bytes.
    Buffer(Box<[u8]>),
    /// The output of `v8.serialize`.
    Serialized(Box<[u8]>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Undefined, Undefined) | (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a.to_bits() == b.to_bits(),
            (Int(a), Int(b)) => a == b,
            (
                Big {
                    negative: a,
                    words: x,
                },
                Big {
                    negative: b,
                    words: y,
                },
            ) => a == b && x == y,
            (Str1(a), Str1(b)) | (Bytes(a), Bytes(b)) | (Buffer(a), Buffer(b)) => a == b,
            (Serialized(a), Serialized(b)) => a == b,
            (Str2(a), Str2(b)) => a == b,
            _ => false,
        }
    }
}

/// A value on its way to JavaScript: ready, or serialized bytes (already copied into a
/// `Buffer`) still to deserialize. The split lets a caller let go of the map's entry before
/// any JavaScript runs.
pub enum Out<'s> {
    Ready(Val<'s>),
    Serialized(Val<'s>),
}

impl<'s> Out<'s> {
    /// The JavaScript value (runs `v8.deserialize` for a serialized value).
    pub fn finish(self, js: Js<'s>) -> Res<Val<'s>> {
        match self {
            Out::Ready(v) => Ok(v),
            Out::Serialized(buf) => js.call(crate::env::state(js)?.deserializer(js)?, &[buf]),
        }
    }
}

fn number(d: f64) -> Value {
    Value::Number(if d.is_nan() { f64::NAN } else { d })
}

/// A bigint from its sign and magnitude, in canonical form.
fn bigint(negative: bool, words: &[u64]) -> Value {
    let len = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    let words = &words[..len];
    match words {
        [] => Value::Int(0),
        &[w] if !negative && w <= i64::MAX as u64 => Value::Int(w as i64),
        &[w] if negative && w <= 1 << 63 => Value::Int((w as i64).wrapping_neg()),
        _ => Value::Big {
            negative,
            words: words.into(),
        },
    }
}

impl Value {
    /// Converts `v`, the argument `what` of a call (for instance "Hamt.set: value").
    /// Structured values run `v8.serialize`: JavaScript (getters) may run.
    pub fn from_js<'s>(js: Js<'s>, v: Val<'s>, what: &str, state: &EnvState) -> Res<Value> {
        Ok(match js.type_of(v)? {
            Type::Undefined => Value::Undefined,
            Type::Null => Value::Null,
            Type::Boolean => Value::Bool(js.boolean(v)?),
            Type::Number => number(js.double(v)?),
            Type::BigInt => {
                let mut words = SmallVec::new();
                let negative = js.bigint(v, &mut words)?;
                bigint(negative, &words)
            }
            Type::String => {
                let mut units: SmallVec<[u16; 64]> = SmallVec::new();
                js.utf16(v, &mut units)?;
                if units.iter().all(|&u| u < 0x100) {
                    Value::Str1(units.iter().map(|&u| u as u8).collect())
                } else {
                    Value::Str2(units.as_slice().into())
                }
            }
            Type::Object => match js.typed_array(v)? {
                Some((View::Uint8, bytes)) => {
                    let bytes: Box<[u8]> = bytes.into();
                    if js.strict_equals(js.prototype(v)?, state.buffer_prototype(js)?)? {
                        Value::Buffer(bytes)
                    } else {
                        Value::Bytes(bytes)
                    }
                }
                _ => Value::Serialized(serialize(js, v, what, state)?),
            },
            t @ (Type::Symbol | Type::Function | Type::External) => {
                return Err(Failure::type_error(
                    INVALID_VALUE,
                    format!(
                        "{what} cannot be copied to another thread (got {})",
                        t.name()
                    ),
                ))
            }
        })
    }

    /// Starts the conversion to JavaScript (see [`Out`]).
    pub fn to_js<'s>(&self, js: Js<'s>) -> Res<Out<'s>> {
        Ok(Out::Ready(match self {
            Value::Undefined => js.undefined()?,
            Value::Null => js.null()?,
            Value::Bool(b) => js.bool(*b)?,
            Value::Number(d) => js.number(*d)?,
            Value::Int(n) => js.bigint_i64(*n)?,
            Value::Big { negative, words } => js.bigint_words(*negative, words)?,
            Value::Str1(b) => js.latin1(b)?,
            Value::Str2(u) => js.utf16_string(u)?,
            Value::Bytes(b) => js.uint8_array(b)?,
            Value::Buffer(b) => js.buffer(b)?,
            Value::Serialized(b) => return Ok(Out::Serialized(js.buffer(b)?)),
        }))
    }

    /// The heap bytes the value holds (for the memory reported to V8).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Big { words, .. } => words.len() * 8,
            Value::Str1(b) | Value::Bytes(b) | Value::Buffer(b) | Value::Serialized(b) => b.len(),
            Value::Str2(u) => u.len() * 2,
            _ => 0,
        }
    }

    /// What kind of counter the value is, for `increment`'s errors.
    fn kind(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::Int(_) | Value::Big { .. } => "bigint",
            Value::Str1(_) | Value::Str2(_) => "string",
            Value::Bytes(_) => "Uint8Array",
            Value::Buffer(_) => "Buffer",
            Value::Serialized(_) => "object",
        }
    }

    fn to_bigint(&self) -> Option<BigInt> {
        match self {
            Value::Int(n) => Some(BigInt::from(*n)),
            Value::Big { negative, words } => {
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                let sign = if *negative { Sign::Minus } else { Sign::Plus };
                Some(BigInt::from_biguint(sign, BigUint::from_bytes_le(&bytes)))
            }
            _ => None,
        }
    }

    fn from_bigint(n: &BigInt) -> Value {
        let (sign, words) = n.to_u64_digits();
        bigint(sign == Sign::Minus, &words)
    }

    /// `current + delta` for `increment` (absent counts as zero): both numbers, or both
    /// bigints; otherwise a `TypeError`.
    pub fn add(current: Option<&Value>, delta: &Value, what: &str) -> Res<Value> {
        let Some(current) = current else {
            // Absent counts as zero: `0 + delta` (so `-0` adds up to `0`, as in JavaScript).
            return Ok(match delta {
                Value::Number(d) => number(0.0 + d),
                _ => delta.clone(),
            });
        };
        match (current, delta) {
            (Value::Number(a), Value::Number(b)) => Ok(number(a + b)),
            (Value::Int(a), Value::Int(b)) if a.checked_add(*b).is_some() => Ok(Value::Int(a + b)),
            (Value::Int(_) | Value::Big { .. }, Value::Int(_) | Value::Big { .. }) => {
                let sum =
                    current.to_bigint().expect("a bigint") + delta.to_bigint().expect("a bigint");
                Ok(Value::from_bigint(&sum))
            }
            _ => Err(Failure::type_error(
                NOT_A_COUNTER,
                format!(
                    "{what}: the value stored is a {}, not a {} like the delta",
                    current.kind(),
                    delta.kind()
                ),
            )),
        }
    }
}

/// The stored form of a structured value: `v8.serialize(v8.deserialize(v8.serialize(v)))`.
///
/// One round trip more than needed to copy it, because V8's encoding of an object depends on
/// internal state that JavaScript cannot see (an array is written dense or sparse depending on
/// its elements' representation, which changes with how it was built): the same array can
/// serialize to different bytes, and the one `get` returns to yet other bytes. After one
/// round trip the encoding is a fixed point (serializing what deserialization builds gives the
/// same bytes again), so that a value read back compares equal, in `compareAndSet`, to the
/// stored one. A value the serializer rejects is a `TypeError` whose `cause` is the
/// serializer's own error.
fn serialize<'s>(js: Js<'s>, v: Val<'s>, what: &str, state: &EnvState) -> Res<Box<[u8]>> {
    let first = serialize_once(js, v, what, state)?;
    let copy = js.call(state.deserializer(js)?, &[first])?;
    let normal = serialize_once(js, copy, what, state)?;
    match js.typed_array(normal)? {
        Some((View::Uint8, bytes)) => Ok(bytes.into()),
        _ => Err(Failure::error(
            crate::error::INTERNAL,
            "v8.serialize did not return a Buffer",
        )),
    }
}

fn serialize_once<'s>(js: Js<'s>, v: Val<'s>, what: &str, state: &EnvState) -> Res<Val<'s>> {
    match js.call(state.serializer(js)?, &[v]) {
        Ok(out) => Ok(out),
        Err(Failure::Pending) => {
            let cause = js.take_exception()?;
            let message = js.message_of(cause).unwrap_or_default();
            let e = js.create_type_error(
                INVALID_VALUE,
                &format!("{what} cannot be copied by structured clone: {message}"),
            )?;
            js.set_named(e, c"cause", cause)?;
            js.throw(e)?;
            Err(Failure::Pending)
        }
        Err(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigints_are_canonical() {
        assert_eq!(bigint(false, &[]), Value::Int(0));
        assert_eq!(bigint(true, &[0, 0]), Value::Int(0));
        assert_eq!(bigint(false, &[5, 0]), Value::Int(5));
        assert_eq!(bigint(true, &[1 << 63]), Value::Int(i64::MIN));
        assert!(matches!(bigint(false, &[1 << 63]), Value::Big { .. }));
        assert!(matches!(bigint(true, &[1, 1]), Value::Big { .. }));
    }

    #[test]
    fn add_overflows_into_big_and_back() {
        let max = Value::Int(i64::MAX);
        let big = Value::add(Some(&max), &Value::Int(1), "t").unwrap();
        assert_eq!(
            big,
            Value::Big {
                negative: false,
                words: vec![1 << 63].into()
            }
        );
        let back = Value::add(Some(&big), &Value::Int(-1), "t").unwrap();
        assert_eq!(back, max);
        assert_eq!(
            Value::add(None, &Value::Int(3), "t").unwrap(),
            Value::Int(3)
        );
        assert_eq!(
            Value::add(None, &Value::Number(-0.0), "t").unwrap(),
            Value::Number(0.0)
        );
        assert_eq!(
            Value::add(Some(&Value::Number(1.5)), &Value::Number(2.0), "t").unwrap(),
            Value::Number(3.5)
        );
        assert!(Value::add(Some(&Value::Number(1.0)), &Value::Int(1), "t").is_err());
        assert!(Value::add(
            Some(&Value::Str1(b"1".to_vec().into())),
            &Value::Number(1.0),
            "t"
        )
        .is_err());
    }

    #[test]
    fn numbers_compare_by_bits() {
        assert_ne!(Value::Number(0.0), Value::Number(-0.0));
        assert_eq!(number(f64::NAN), number(-f64::NAN));
    }
}
