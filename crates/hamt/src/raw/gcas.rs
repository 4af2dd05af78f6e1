//! The Ctrie's snapshot machinery: GCAS on main nodes, RDCSS on the root.
//!
//! # GCAS: main-node replacement that commits only in its generation
//!
//! A writer works in the generation of the root it started from (`startgen`) and changes only
//! INodes of that generation. It installs a new main node `n` with `n.prev = old` by a CAS of
//! the INode's `main`, then *decides* it: if the map's root is still the root it started from
//! (so its generation is unchanged), it commits (`prev` := null); otherwise a snapshot was
//! taken meanwhile and it fails (`prev` := `old | FAILED`, then `main` goes back to `old`).
//! Any reader that meets a pending `n` decides it the same way before going on (the paper's
//! `GCAS_Commit`), so nobody waits for the installer; readers of a frozen snapshot always
//! fail it. A decision is one CAS on `n.prev`, so all agree. Readers dereference the children
//! of committed main nodes only.
//!
//! # RDCSS: the root swap of a snapshot
//!
//! A snapshot replaces the root INode `r0` by a new INode of a new generation pointing to
//! `r0`'s main node `m`, provided `r0.main` is still `m` (a double-compare single-swap): it
//! installs a descriptor in the root, reads `r0.main` (deciding a pending GCAS there, which
//! aborts the descriptor), decides the descriptor (commit if `r0.main` is `m`), and swaps the
//! descriptor for the new root (commit) or back to `r0` (abort). Anyone who meets a descriptor
//! completes it; a GCAS decision aborts it instead, so that root writes are never blocked.
//!
//! The writer's "CAS `i.main`, then read the root" and the snapshot's "CAS the root, then read
//! `r0.main`" have the store-buffering shape: each must see the other's store, or both would
//! go ahead (the snapshot would miss a committed write). Both pairs of accesses are `SeqCst`,
//! which forbids that outcome (on x86 a locked CAS and a plain load; on ARMv8 `stlxr` then
//! `ldar`, which are ordered). loom models `SeqCst` accesses as `AcqRel`, so under loom a
//! `SeqCst` fence sits between them ([`loom_sc_fence`]).

//!
//! # Invariants
//!
//! - A main node's `prev` is decided once (one CAS from the pending value), and a decided
//!   node never goes back to pending.
//! - Readers dereference the children of committed main nodes only; a failed main node is
//!   unlinked (its INode restored) before its installer lets go of its protection.
//! - A descriptor's state is decided once; the root holds a descriptor only between its
//!   install and the completion's swap, and the descriptor is retired only after that swap.

use crate::node::{is_committed, INode, Main, FAILED};
use crate::sync::{loom_sc_fence, AtomicPtr, AtomicUsize, Data};
use hazard::{contention, Domain, HazardPointer, Link};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};

/// Tag bit of the root pointer when it holds an RDCSS [`Desc`] instead of an INode.
pub(crate) const DESC: usize = 1;
const _: () = assert!(std::mem::align_of::<Desc>() > DESC);

/// States of a [`Desc`].
pub(crate) const PENDING: usize = 0;
pub(crate) const COMMIT: usize = 1;
const ABORT: usize = 2;

/// An RDCSS descriptor: swap the root from `old` to `new` if `old`'s main node is `expected`.
#[repr(C)]
pub(crate) struct Desc {
    /// Chains it once retired.
    pub(crate) link: Link,
    pub(crate) swap: Data<Swap>,
    /// [`PENDING`], then [`COMMIT`] or [`ABORT`], decided once by CAS (so that whoever
    /// completes the descriptor, its installer learns the outcome).
    pub(crate) state: AtomicUsize,
}

/// The immutable part of a [`Desc`], published with it by the root CAS.
pub(crate) struct Swap {
    pub(crate) old: *mut INode,
    pub(crate) expected: *mut Main,
    pub(crate) new: *mut INode,
}

/// Frees a retired descriptor (kind `node::DESC`).
///
/// # Safety
/// `hazard::Batch::retire`'s contract, for a `Desc` from `Box::into_raw`.
pub(crate) unsafe fn free_desc(link: *mut Link) {
    // Safety: our caller's contract.
    drop(unsafe { Box::from_raw(link.cast::<Desc>()) });
}

/// How a reader decides a pending GCAS that it meets.
#[derive(Clone, Copy)]
pub(crate) enum Decide<'r> {
    /// In a live map whose root was `start` (protected by the caller) when the operation
    /// began: commit if the root is still `start` and the INode is of its generation.
    Live {
        root: &'r AtomicPtr<()>,
        start: *mut INode,
    },
    /// As `Live`, for a reader that does not keep `start` protected (a lookup, which needs
    /// its guards for the path): `start` may have been freed and its address reused, so the
    /// root is compared by address *and* generation (every root INode has a fresh one), read
    /// under a protection of its own.
    Unpinned {
        root: &'r AtomicPtr<()>,
        start: *mut INode,
        gen: u64,
    },
    /// In a frozen snapshot: always fail it (the snapshot's generation is over).
    Frozen,
}

/// Reads the committed main node of `inode`, protected by `guard`, deciding a pending GCAS
/// first if there is one (the paper's `GCAS_READ`).
///
/// # Safety
/// 1. `inode` is protected by the caller (or otherwise kept alive), and so is `start` in
///    `how`.
#[inline(always)]
pub(crate) unsafe fn gcas_read(
    inode: *mut INode,
    guard: &mut HazardPointer<'_>,
    how: Decide<'_>,
    domain: &Domain,
) -> *mut Main {
    loop {
        // Safety: 1.
        let m = guard.protect(unsafe { &(*inode).main });
        // Acquire: pairs with the AcqRel CAS that committed `m` (its decision), so that the
        // decision and everything before it are visible. Safety: protected by `guard`.
        if is_committed(unsafe { (*m).prev.load(Acquire) }) {
            return m;
        }
        // Safety: 1; `m` is protected.
        unsafe { gcas_decide_cold(inode, m, how, domain) };
    }
}

/// [`gcas_read`] that, as soon as it has read the main node's address, starts loading the
/// line that holds slot bit `bit`'s entries or child (from the INode's [`Hint`]), so that it
/// arrives with the header instead of after it.
///
/// [`Hint`]: crate::node::Hint
///
/// # Safety
/// As [`gcas_read`]; `T` is the node's entry type.
#[inline(always)]
pub(crate) unsafe fn gcas_read_hinted<T>(
    inode: *mut INode,
    guard: &mut HazardPointer<'_>,
    how: Decide<'_>,
    domain: &Domain,
    bit: u32,
) -> *mut Main {
    loop {
        // Safety: 1.
        let m = guard.protect(unsafe { &(*inode).main });
        // Safety: 1. (A prefetch of the hinted line of `m`: never faults.)
        unsafe { (*inode).hint.prefetch::<T>(m, bit) };
        // Acquire: as in `gcas_read`. Safety: protected by `guard`.
        if is_committed(unsafe { (*m).prev.load(Acquire) }) {
            return m;
        }
        // Safety: 1; `m` is protected.
        unsafe { gcas_decide_cold(inode, m, how, domain) };
    }
}

/// [`gcas_decide`] for readers: out of line, off the hot path.
///
/// # Safety
/// As [`gcas_decide`].
#[cold]
#[inline(never)]
unsafe fn gcas_decide_cold(inode: *mut INode, n: *mut Main, how: Decide<'_>, domain: &Domain) {
    // Safety: our caller's contract.
    unsafe { gcas_decide(inode, n, how, domain) };
}

/// Decides the GCAS that installed `n` in `inode` (if still pending), and if it failed makes
/// sure `inode.main` no longer holds `n`. Returns whether it committed.
///
/// # Safety
/// 1. `inode`, `n` and `start` in `how` are protected by the caller.
pub(crate) unsafe fn gcas_decide(
    inode: *mut INode,
    n: *mut Main,
    how: Decide<'_>,
    domain: &Domain,
) -> bool {
    loop {
        // Acquire: pairs with the AcqRel decision CAS below (of whichever thread won it).
        // Safety: 1.
        let p = unsafe { (*n).prev.load(Acquire) };
        if is_committed(p) {
            return true;
        }
        if p as usize & FAILED != 0 {
            let old = (p as usize & !FAILED) as *mut Main;
            // AcqRel: Release republishes `old` to readers' Acquire loads of `main`.
            // Safety: 1. (`old` is alive: its installer protects it until it returns, and
            // it returns only once `main` no longer holds `n`.)
            let _ = unsafe { (*inode).main.compare_exchange(n, old, AcqRel, Acquire) };
            return false;
        }
        let commit = match how {
            Decide::Frozen => false,
            Decide::Live { root, start } => {
                loom_sc_fence();
                // Safety: 1.
                root_is(root, start, domain) && unsafe { (*start).gen() == (*inode).gen() }
            }
            Decide::Unpinned { root, start, gen } => {
                loom_sc_fence();
                // Safety: 1 (`inode` is protected).
                root_is_gen(root, start, gen, domain) && unsafe { (*inode).gen() } == gen
            }
        };
        let decision = if commit {
            ptr::null_mut()
        } else {
            (p as usize | FAILED) as *mut Main
        };
        // AcqRel: the one decision; Release publishes it with what led to it.
        // Safety: 1.
        let _ = unsafe { (*n).prev.compare_exchange(p, decision, AcqRel, Acquire) };
    }
}

/// Whether the root is `start`, aborting an RDCSS in progress first (the paper's
/// `RDCSS_READ_ROOT(abort = true)`): a GCAS decision never waits for a snapshot.
fn root_is(root: &AtomicPtr<()>, start: *mut INode, domain: &Domain) -> bool {
    loop {
        // SeqCst: the load half of the writers' store-buffering pair (see the module docs).
        let r = root.load(SeqCst);
        if r as usize & DESC != 0 {
            // Safety: `r` was just read from the root.
            unsafe { complete_desc(root, r, true, domain) };
            continue;
        }
        return r == start.cast();
    }
}

/// Whether the root is still the INode `start` of generation `gen` (which the caller does
/// not protect), aborting an RDCSS in progress first, as [`root_is`] does.
fn root_is_gen(root: &AtomicPtr<()>, start: *mut INode, gen: u64, domain: &Domain) -> bool {
    if !root_is(root, start, domain) {
        return false;
    }
    // The root's address is `start`'s: protect it to read its generation, which tells the
    // INode `start` from a later root that reuses the address.
    let mut guard = HazardPointer::new(domain);
    guard.publish(start);
    // Acquire: validates the protection (a root is retired only after the root pointer
    // stopped holding it) and makes its fields visible.
    if root.load(Acquire) != start.cast() {
        return false;
    }
    // Safety: protected and validated.
    unsafe { (*start).gen() == gen }
}

/// Completes the RDCSS whose tagged descriptor is `tagged`: decides it (abort if `abort`,
/// otherwise commit if its old root still holds the expected main node) and swaps the root
/// to the outcome.
///
/// # Safety
/// 1. `tagged` was read from `root` (the descriptor may have been completed and retired
///    since: it is protected and validated here before use).
pub(crate) unsafe fn complete_desc(
    root: &AtomicPtr<()>,
    tagged: *mut (),
    abort: bool,
    domain: &Domain,
) {
    let desc = (tagged as usize & !DESC) as *mut Desc;
    let mut guard = HazardPointer::new(domain);
    guard.publish(desc);
    // Acquire: validates the protection (the descriptor is retired only after the root
    // stopped holding it).
    if root.load(Acquire) != tagged {
        return;
    }
    // Safety: protected and validated.
    let desc = unsafe { &*desc };
    let d = desc.swap.get();
    // The old root too: its installer lets go of it once the root no longer holds the
    // descriptor, so the same validation covers it.
    let mut old_guard = HazardPointer::new(domain);
    old_guard.publish(d.old);
    // Acquire: as above.
    if root.load(Acquire) != tagged {
        return;
    }
    // Acquire: pairs with the AcqRel decision below.
    let mut state = desc.state.load(Acquire);
    if state == PENDING {
        let decided = if abort {
            ABORT
        } else {
            let mut main_guard = HazardPointer::new(domain);
            let how = Decide::Live { root, start: d.old };
            // Safety: the old root and the descriptor are protected (validated above).
            let m = unsafe { gcas_read(d.old, &mut main_guard, how, domain) };
            loom_sc_fence();
            // SeqCst: the load half of the snapshot's store-buffering pair (module docs).
            // Safety: as above.
            if m == d.expected && unsafe { (*d.old).main.load(SeqCst) } == d.expected {
                COMMIT
            } else {
                ABORT
            }
        };
        // AcqRel: one decision wins; Release publishes it.
        state = match desc
            .state
            .compare_exchange(PENDING, decided, AcqRel, Acquire)
        {
            Ok(_) => decided,
            Err(now) => now,
        };
    }
    let target = if state == COMMIT { d.new } else { d.old };
    // SeqCst: a root store, ordered with the GCAS deciders' SeqCst root loads. No ABA: the
    // descriptor is protected.
    let _ = root.compare_exchange(tagged, target.cast(), SeqCst, Relaxed);
}

/// The success ordering of the GCAS that installs a main node (see [`gcas`]).
///
/// `--cfg hamt_weak_publication` weakens it to `Relaxed`, for one test only: it shows that the
/// loom models, which track node contents (see `sync::Data`), catch a main node published
/// without Release (`scripts/loom.sh --weakened`). Never in a real build.
#[cfg(not(hamt_weak_publication))]
const PUBLISH: std::sync::atomic::Ordering = SeqCst;
#[cfg(hamt_weak_publication)]
const PUBLISH: std::sync::atomic::Ordering = Relaxed;

/// The outcome of a GCAS by its installer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Gcas {
    /// The CAS lost: `new` was never published.
    Lost,
    /// Published, then failed: a snapshot was taken meanwhile.
    Aborted,
    Committed,
}

/// Installs `new` in `inode` by GCAS (see the module docs), in a map whose root is `root`.
/// `guard` protects `new` from before its publication, so that deciding it afterwards is
/// safe.
///
/// # Safety
/// 1. `inode`, `old` (its committed main node) and `start` (the root the traversal started
///    from) are protected; `new` is fresh.
pub(crate) unsafe fn gcas(
    root: &AtomicPtr<()>,
    inode: *mut INode,
    old: *mut Main,
    new: *mut Main,
    start: *mut INode,
    guard: &mut HazardPointer<'_>,
    domain: &Domain,
) -> Gcas {
    // Relaxed: `new` is not shared yet; the CAS below publishes it.
    // Safety: 1. fresh.
    unsafe { (*new).prev.store(old, Relaxed) };
    guard.publish(new);
    // SeqCst (`PUBLISH`): the store half of the writers' store-buffering pair with snapshots
    // (module docs), and Release publishes `new` with its arrays; Acquire on failure makes the
    // winner's main node readable for the retry.
    // Safety: 1.
    let cas = contention::compare_exchange(unsafe { &(*inode).main }, old, new, PUBLISH, Acquire);
    if cas.is_err() {
        return Gcas::Lost;
    }
    let how = Decide::Live { root, start };
    // Safety: 1; `new` is protected by `guard`.
    if unsafe { gcas_decide(inode, new, how, domain) } {
        // Safety: 1; `new` is protected by `guard`, and committed.
        unsafe { (*inode).hint.set((*new).head()) };
        Gcas::Committed
    } else {
        Gcas::Aborted
    }
}
