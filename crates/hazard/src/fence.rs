//! The asymmetric fence: a cheap barrier for readers, an expensive one for the reclaimer.
//!
//! A reader publishes a hazard and then re-reads the source; a reclaimer unlinks a node and
//! then reads every hazard. Without a full barrier on *both* sides, each could miss the
//! other's store (store buffering), and a reclaimer could free a node that a reader has just
//! validated. The symmetric solution puts a `fence(SeqCst)` on both sides: correct, but the
//! reader pays a full fence (`mfence` or `lock`-prefixed op on x86, `dmb ish` on ARM) per
//! protection, i.e. per trie level.
//!
//! Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` moves that cost to the reclaimer:
//! when it returns, every thread of this process that was running has executed a full memory
//! barrier (the kernel interrupts each CPU running one of our threads; a thread not running
//! passed through the scheduler, which implies one). So the reader only needs a *compiler*
//! barrier, which keeps its hazard store before its validating load in program order, and
//! the reclaimer's `membarrier` stands in for the reader's fence at whatever point the reader
//! was. For any reader/reclaimer pair, either the barrier falls after the reader's hazard
//! store (the reclaimer then sees the hazard) or before the reader's validating load (the
//! reader then sees the unlink and retries): exactly the guarantee that the pair of SeqCst
//! fences gives. loom cannot model `membarrier`, so the loom models run the fallback (both
//! sides `fence(SeqCst)`), and this paragraph is the argument for the fast path.
//!
//! The mode is decided once per process, by registering for the private expedited command;
//! where that fails (not Linux, an old kernel, a seccomp filter) every [`Domain`] uses the
//! fallback. A domain can also be created with the fallback on purpose
//! ([`Domain::with_fallback_fence`]), which the benchmarks use to measure both. A domain's
//! readers and its reclaimer always use the same mode.
//!
//! [`Domain`]: crate::Domain
//! [`Domain::with_fallback_fence`]: crate::Domain::with_fallback_fence

use crate::sync::fence;
use std::sync::atomic::{compiler_fence, Ordering::SeqCst};

/// The reader's side, between publishing a hazard and validating it.
#[inline(always)]
pub(crate) fn light(asymmetric: bool) {
    if asymmetric {
        // SeqCst compiler fence: no hardware barrier; keeps the hazard store and the
        // validating load in program order. Pairs with `heavy`'s membarrier.
        compiler_fence(SeqCst);
    } else {
        // SeqCst fence: pairs with the SeqCst fence in `heavy` (fallback mode).
        fence(SeqCst);
    }
}

/// The reclaimer's side, between unlinking (taking the retired list) and reading hazards.
pub(crate) fn heavy(asymmetric: bool) {
    if asymmetric {
        #[cfg(loom)]
        // SeqCst fence: loom's stand-in for membarrier under `--cfg hazard_loom_asymmetric`
        // (see `asymmetric_available`). It orders the reclaimer only: membarrier's barrier in
        // every running reader is not modelled.
        fence(SeqCst);
        #[cfg(not(loom))]
        membarrier::expedited();
    } else {
        // SeqCst fence: pairs with the SeqCst fence in `light` (fallback mode).
        fence(SeqCst);
    }
}

/// Whether the asymmetric fence is available in this process (decided once, then fixed).
///
/// Under loom: only with `--cfg hazard_loom_asymmetric`. Readers then run the fast path's
/// side exactly (no hardware fence: nothing for loom), and the reclaimer's `membarrier` is
/// modelled by a `fence(SeqCst)` of its own, which is weaker than the real barrier: a scan
/// that runs while readers protect may then free what a reader holds, so models in this mode
/// must not scan concurrently with readers. What the mode is for: under the fallback, every
/// protection is a `fence(SeqCst)`, which loom models as a synchronisation with every earlier
/// `SeqCst` fence of any thread (stronger than the C++ model), and that hides a missing
/// Acquire/Release in the structure above (a node published by a `Relaxed` store would still
/// be seen complete). With no reader fence, as on the fast path, the structure's own orderings
/// are all that orders a node's contents before a reader's accesses, and loom checks them.
pub(crate) fn asymmetric_available() -> bool {
    #[cfg(loom)]
    {
        cfg!(hazard_loom_asymmetric)
    }
    #[cfg(not(loom))]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(membarrier::register)
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
mod membarrier {
    use libc::{c_int, c_long};

    // Kernel ABI command numbers from <linux/membarrier.h>; they are the same on every
    // architecture (the `libc` crate provides the system call number, not these).
    const CMD_QUERY: c_int = 0;
    const CMD_PRIVATE_EXPEDITED: c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: c_int = 1 << 4;

    fn call(cmd: c_int) -> c_long {
        // Safety: membarrier takes (cmd, flags, cpu_id) integers and touches no user memory;
        // an unsupported command returns -1 with errno set, which callers check.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as c_int) }
    }

    /// Registers the process for private expedited barriers; true when they may be used.
    pub(super) fn register() -> bool {
        if std::env::var_os("HAZARD_NO_MEMBARRIER").is_some() {
            return false;
        }
        let supported = call(CMD_QUERY);
        supported >= 0
            && (supported & c_long::from(CMD_PRIVATE_EXPEDITED)) != 0
            && call(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// A full barrier on every running thread of this process.
    pub(super) fn expedited() {
        // Registration succeeded before any domain chose the asymmetric mode, and the kernel
        // does not revoke it, so failure here means readers are unprotected: stop the process
        // rather than risk freeing memory that a reader is using.
        if call(CMD_PRIVATE_EXPEDITED) != 0 {
            eprintln!("hazard: membarrier(PRIVATE_EXPEDITED) failed after registration");
            std::process::abort();
        }
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
mod membarrier {
    // Unused under loom, whose `asymmetric_available` answers without asking.
    #[cfg_attr(loom, allow(dead_code))]
    pub(super) fn register() -> bool {
        false
    }

    #[cfg_attr(loom, allow(dead_code))]
    pub(super) fn expedited() {
        unreachable!("the asymmetric fence is never chosen where membarrier is unavailable")
    }
}
