//! Keys: JavaScript primitives and byte arrays in one canonical byte encoding.
//!
//! Two JavaScript keys are the same key exactly when `Map` would say so (SameValueZero), and
//! byte arrays when their contents are equal. The encoding makes that plain byte equality,
//! so the trie hashes and compares bytes, and a lookup needs no allocation: it encodes the key
//! on the stack and borrows it as `[u8]`.
//!
//! One tag byte, then the payload:
//!
//! | tag | key | payload |
//! |---|---|---|
//! | `STR1` | a string whose UTF-16 code units are all below 0x100 | one byte per unit |
//! | `STR2` | any other string | its UTF-16 code units, little-endian, lone surrogates kept |
//! | `NUMBER` | a number | its IEEE 754 bits, little-endian, `-0` as `0`, every NaN as one |
//! | `BIG_POS`, `BIG_NEG` | a bigint (zero is positive) | its magnitude, 64-bit words, least significant first, no high zero word |
//! | `FALSE`, `TRUE` | a boolean | none |
//! | `BYTES` | a `Uint8Array` (a `Buffer` included) | its bytes |
//!
//! Every string has one encoding (the choice between `STR1` and `STR2` depends on its content
//! only), so equal strings encode equally; `1`, `1n`, `"1"` and `true` have different tags.

use crate::error::{Failure, Res, INVALID_KEY};
use crate::js::{Js, Type, Val, View};
use smallvec::SmallVec;
use std::borrow::Borrow;

const STR1: u8 = 1;
const STR2: u8 = 2;
const NUMBER: u8 = 3;
const BIG_POS: u8 = 4;
const BIG_NEG: u8 = 5;
const FALSE: u8 = 6;
const TRUE: u8 = 7;
const BYTES: u8 = 8;

/// A stored key: its canonical encoding, inline up to [`INLINE`] bytes (every number and
/// boolean key, and strings of up to 23 Latin-1 characters), so that comparing it during a
/// lookup reads the leaf's own cache line rather than a separate allocation.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Key(SmallVec<[u8; INLINE]>);

/// The longest encoding kept inline in a [`Key`].
pub const INLINE: usize = 24;

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl Key {
    /// The key of an encoding made by [`encode`].
    pub fn new(encoded: &[u8]) -> Self {
        Key(SmallVec::from_slice(encoded))
    }

    /// The key as JavaScript sees it (a fresh `Uint8Array` for a byte key).
    pub fn to_js<'s>(&self, js: Js<'s>) -> Res<Val<'s>> {
        decode(js, &self.0)
    }
}

/// An encoded key on the stack (it spills to the heap past this size).
pub type KeyBuf = SmallVec<[u8; 48]>;

/// Canonical NaN and zero, as for a key (SameValueZero).
pub fn canonical_number(d: f64) -> f64 {
    if d.is_nan() {
        f64::NAN
    } else if d == 0.0 {
        0.0
    } else {
        d
    }
}

/// Encodes `v`, the argument `what` of a call (for instance "Hamt.get: key"), into `out`.
pub fn encode<'s>(js: Js<'s>, v: Val<'s>, what: &str, out: &mut KeyBuf) -> Res<()> {
    out.clear();
    match js.type_of(v)? {
        Type::String => {
            let mut units: SmallVec<[u16; 64]> = SmallVec::new();
            js.utf16(v, &mut units)?;
            encode_string(&units, out);
        }
        Type::Number => {
            out.push(NUMBER);
            out.extend_from_slice(&canonical_number(js.double(v)?).to_bits().to_le_bytes());
        }
        Type::BigInt => {
            let mut words = SmallVec::new();
            let negative = js.bigint(v, &mut words)?;
            while words.last() == Some(&0) {
                words.pop();
            }
            out.push(if negative && !words.is_empty() {
                BIG_NEG
            } else {
                BIG_POS
            });
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        Type::Boolean => out.push(if js.boolean(v)? { TRUE } else { FALSE }),
        Type::Object => match js.typed_array(v)? {
            Some((View::Uint8, bytes)) => {
                out.push(BYTES);
                out.extend_from_slice(bytes);
            }
            Some((View::Other, _)) => {
                return Err(invalid(what, "a typed array other than Uint8Array"));
            }
            None => return Err(invalid(what, "object")),
        },
        t => return Err(invalid(what, t.name())),
    }
    Ok(())
}

/// A string's encoding, from its UTF-16 code units.
pub fn encode_string(units: &[u16], out: &mut impl Extend<u8>) {
    if units.iter().all(|&u| u < 0x100) {
        out.extend(std::iter::once(STR1).chain(units.iter().map(|&u| u as u8)));
    } else {
        out.extend(std::iter::once(STR2).chain(units.iter().flat_map(|u| u.to_le_bytes())));
    }
}

fn invalid(what: &str, got: &str) -> Failure {
    Failure::type_error(
        INVALID_KEY,
        format!("{what} must be a string, number, bigint, boolean or Uint8Array (got {got})"),
    )
}

/// The JavaScript value of an encoding made by [`encode`].
fn decode<'s>(js: Js<'s>, bytes: &[u8]) -> Res<Val<'s>> {
    let (&tag, payload) = bytes
        .split_first()
        .expect("a key encoding starts with its tag");
    match tag {
        STR1 => js.latin1(payload),
        STR2 => {
            let units: SmallVec<[u16; 64]> = payload
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            js.utf16_string(&units)
        }
        NUMBER => js.number(f64::from_bits(u64::from_le_bytes(
            payload.try_into().expect("a number key has 8 bytes"),
        ))),
        BIG_POS | BIG_NEG => {
            let words: SmallVec<[u64; 2]> = payload
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            js.bigint_words(tag == BIG_NEG, &words)
        }
        FALSE => js.bool(false),
        TRUE => js.bool(true),
        BYTES => js.uint8_array(payload),
        _ => unreachable!("unknown key tag {tag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(units: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_string(units, &mut v);
        v
    }

    #[test]
    fn strings_have_one_encoding_each() {
        let ascii: Vec<u16> = "abc".encode_utf16().collect();
        assert_eq!(enc(&ascii), [STR1, b'a', b'b', b'c']);
        // U+00E9 fits one byte; U+20AC does not; a lone surrogate is kept.
        assert_eq!(enc(&[0xe9]), [STR1, 0xe9]);
        assert_eq!(enc(&[0x20ac]), [STR2, 0xac, 0x20]);
        assert_eq!(enc(&[0xd800]), [STR2, 0x00, 0xd8]);
        assert_ne!(enc(&[0xd800]), enc(&[0xfffd]));
        // A one-byte string and a two-byte string never collide.
        assert_ne!(enc(&[0x41, 0x42]), enc(&[0x4241]));
    }

    #[test]
    fn keys_hash_as_their_bytes() {
        // The trie looks keys up by `[u8]`: `Key`'s hash must be the slice's.
        use std::hash::{BuildHasher, RandomState};
        let s = RandomState::new();
        for bytes in [&b"\x01abc"[..], &[7u8; 40][..]] {
            assert_eq!(s.hash_one(Key::new(bytes)), s.hash_one(bytes));
        }
    }

    #[test]
    fn numbers_compare_as_same_value_zero() {
        assert_eq!(canonical_number(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(
            canonical_number(f64::from_bits(0x7ff8_0000_dead_beef)).to_bits(),
            f64::NAN.to_bits()
        );
        assert_eq!(canonical_number(1.5), 1.5);
    }
}
