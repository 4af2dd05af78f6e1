//! Writes and snapshots of a map from inside its own `update` function.
//!
//! An `update`'s function runs inside the trie's write. If it writes to the same map, or takes
//! a snapshot of it (iterating does), the write it runs inside finds the map changed when it
//! tries to commit, and starts again, running the function again, which changes the map
//! again: a livelock, on one thread, with no other thread involved. So on the thread that runs
//! an `update`'s function, writes and snapshots of that same map fail with
//! `ERR_HAMT_REENTRANT`; reads are allowed, and other maps and other threads are unaffected.

use crate::error::{Failure, Res, REENTRANT};
use crate::registry::Shared;
use smallvec::SmallVec;
use std::cell::RefCell;

thread_local! {
    /// The maps whose `update` function this thread is running (innermost last).
    static UPDATING: RefCell<SmallVec<[usize; 4]>> = const { RefCell::new(SmallVec::new_const()) };
}

fn id(shared: &Shared) -> usize {
    shared as *const Shared as usize
}

/// Marks `shared` as running an `update` function on this thread, until dropped.
pub struct Updating(usize);

impl Updating {
    pub fn enter(shared: &Shared) -> Self {
        let id = id(shared);
        UPDATING.with(|u| u.borrow_mut().push(id));
        Updating(id)
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        UPDATING.with(|u| {
            let mut u = u.borrow_mut();
            if let Some(i) = u.iter().rposition(|&m| m == self.0) {
                u.remove(i);
            }
        });
    }
}

/// Fails if this thread is inside an `update` function of `shared` (`what` names the call).
pub fn check(shared: &Shared, what: &str) -> Res<()> {
    let id = id(shared);
    if UPDATING.with(|u| u.borrow().contains(&id)) {
        return Err(Failure::error(
            REENTRANT,
            format!(
                "{what}: called on a map from inside its own update() function, which would \
                 restart that update forever; read the map there, write it after"
            ),
        ));
    }
    Ok(())
}
