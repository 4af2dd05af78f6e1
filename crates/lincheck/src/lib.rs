//! Test support for `concurrent-hamt`: a linearizability checker, and the sequential model of
//! the map that histories are checked against.
//!
//! # What it checks
//!
//! A *history* is what several threads did to one object: for each operation, its thread, its
//! input, its output, and the times of its invocation and of its response. The history is
//! *linearizable* if the operations can be put in one sequential order that (1) respects real
//! time (an operation that returned before another was invoked comes first) and (2) is a legal
//! run of the sequential model (each output is what the model gives for that input in that
//! state). [`check`] decides it.
//!
//! # How
//!
//! The search is Wing and Gong's (1993) with Lowe's (2017) memoisation, the algorithm that
//! Porcupine also uses (written here from the papers): the invocation and response events sit
//! in time order in a linked list; the search repeatedly takes an operation whose invocation
//! comes before every remaining response (a *minimal* one), applies it to the model, and
//! removes its two events from the list; when the first event left is a response (an
//! operation that had to take effect before now but could not), it backtracks. The states
//! reached are memoised as (set of operations applied, model state): a configuration already
//! explored is never explored again, which keeps histories of a few concurrent threads
//! tractable.
//!
//! Maps are *P-compositional* (Horn and Kroening 2015): a history of a map is linearizable iff
//! its projection on each key is, because every single-key operation touches one key.
//! [`check_partitioned`] splits a history that way and checks each part alone, so that the
//! cost grows with the operations per key rather than with the whole history. Operations that
//! read several keys at one instant (a snapshot's contents, `len`) make the split unsound for
//! them: they are checked in short, unsplit histories instead, against a model of the whole
//! map ([`map::WholeMap`]).
//!
//! # Recording
//!
//! [`Recorder`] stamps each invocation and response with a shared counter
//! (`fetch_add(SeqCst)`). If an operation's response stamp is below another's invocation stamp,
//! the first operation's effects happen before the second started (the stamps are taken after
//! and before them, in one total order), so the real-time order the checker uses is sound; two
//! operations whose stamps interleave are treated as concurrent, which only allows more orders.

#![warn(missing_docs)]

pub mod map;
mod search;

pub use search::{check, check_partitioned, check_parts, Failure, Model, Operation, Stats};

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// The shared counter that timestamps invocations and responses.
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Clock {
    /// A clock starting at 0.
    pub fn new() -> Self {
        Clock(AtomicU64::new(0))
    }

    /// The next timestamp: distinct and increasing across all threads.
    pub fn now(&self) -> u64 {
        // SeqCst: stamps are one total order, consistent with each thread's program order, so
        // that "returned before the other's invocation" implies happens-before.
        self.0.fetch_add(1, SeqCst)
    }
}

/// One thread's log of operations.
#[derive(Debug)]
pub struct Recorder<'c, I, O> {
    clock: &'c Clock,
    client: usize,
    ops: Vec<Operation<I, O>>,
}

impl<'c, I, O> Recorder<'c, I, O> {
    /// A log for thread `client`, stamping with `clock`.
    pub fn new(clock: &'c Clock, client: usize) -> Self {
        Recorder {
            clock,
            client,
            ops: Vec::new(),
        }
    }

    /// Runs `run` as one operation with input `input`, recording its stamps and output.
    pub fn record(&mut self, input: I, run: impl FnOnce(&I) -> O) -> &O {
        let call = self.clock.now();
        let output = run(&input);
        let ret = self.clock.now();
        self.ops.push(Operation {
            client: self.client,
            call,
            ret,
            input,
            output,
        });
        &self.ops.last().expect("just pushed").output
    }

    /// The operations recorded, in program order.
    pub fn into_ops(self) -> Vec<Operation<I, O>> {
        self.ops
    }
}
