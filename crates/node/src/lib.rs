//! The Node.js binding of `concurrent-hamt`, built with napi-rs.
//!
//! Conversion and errors only: the map is `concurrent_hamt::Hamt`, and every operation is
//! one call on it. The JavaScript layer over this binding (`src/*.ts` at the repository's
//! top level, compiled to `index.js`) adds what Node-API cannot do: structured clone through
//! `v8.serialize`, iterators, `Symbol.dispose`, and the public types.
//!
//! - [`key`]: keys in a canonical byte encoding (SameValueZero for primitives, content for
//!   byte arrays).
//! - [`value`]: values, natively for primitives and byte arrays, otherwise serialized.
//! - [`registry`]: the process-wide registry of maps and their tokens (`share`/`attach`).
//! - [`handle`]: handles and their lifetimes (close, finalizer, thread exit), and the memory
//!   they report to V8.
//! - [`ops`]: the map operations.
//! - [`cursor`]: batched iteration over read-only snapshots.
//! - [`reentry`]: no writes or snapshots of a map from inside its own `update` function.
//! - [`env`]: per-environment state and its tear-down hook.
//! - [`js`], [`error`]: raw Node-API calls, and errors as JavaScript sees them.

// The unit tests build this crate without its Node-API exports (napi-derive registers them
// only outside `cfg(test)`), so everything reached only from an export looks unused there.
#![cfg_attr(test, allow(dead_code))]

mod cursor;
mod env;
mod error;
mod handle;
mod js;
mod key;
mod ops;
mod reentry;
mod registry;
mod value;
