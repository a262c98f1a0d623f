//! A per-thread store of freed greenlet objects ([`Inner`] allocations), so
//! that creating and dropping greenlets in a loop costs no `malloc`/`free`,
//! and so that a greenlet object's memory stays a greenlet object for as
//! long as its thread lives.
//!
//! The second is what makes the backtrace continuation safe (SPEC §10,
//! docs/backtraces.md): the entry trampoline's unwind information follows a
//! running greenlet's `resumer` to that greenlet's saved frame, checking its
//! state byte first, and a `resumer` can name a greenlet that has died since
//! (a YIELD leaves the target's `resumer` as it was). Were the object freed,
//! an unwinder (libgcc's, gdb's) would read whatever the allocator put there
//! next, and could follow a garbage stack pointer. Kept here, it reads a
//! greenlet object: a dead or vacant one (the chain ends), or one reused by a
//! greenlet that is suspended now (the chain goes on into its real frames:
//! the wrong greenlet, but real memory). Clearing every `resumer` that names
//! a dying greenlet instead would need a store on every switch.
//!
//! So nothing is freed before the thread exits: the store holds as many
//! objects as the thread once had alive at the same time (each the size of
//! `Inner` and its registry links: 112 bytes on x86_64), and its thread-local
//! destructor frees them at thread exit; an object freed after that goes
//! straight back to the allocator (nothing runs on that thread's greenlets
//! any more). Under AddressSanitizer nothing is kept, so that ASan still sees
//! every use after free (the unwinder is not instrumented, and ASan's
//! allocator keeps small blocks mapped).

use std::cell::UnsafeCell;

use super::object::Inner;
use super::registry;
use crate::stack::sanitizer;

/// Whether objects are kept at all.
const CACHING: bool = !sanitizer::ACTIVE;

struct Spare {
    objects: Vec<*mut Inner>,
}

impl Drop for Spare {
    fn drop(&mut self) {
        for object in self.objects.drain(..) {
            // SAFETY: every kept pointer came from registry::alloc (through
            // `slot`) and holds no value.
            unsafe { registry::dealloc(object) }; // debugger registry (issue 21)
        }
    }
}

thread_local! {
    static SPARE: UnsafeCell<Spare> = const { UnsafeCell::new(Spare { objects: Vec::new() }) };
}

/// A cached allocation for a greenlet object, or a new one: uninitialised
/// memory with `Inner`'s layout, for the caller to write (in place, so that
/// the object is not built on the stack and copied).
#[inline]
pub(crate) fn slot() -> *mut Inner {
    if CACHING {
        // SAFETY: the store is only touched here and in `free`; while either
        // holds the reference, nothing runs that could touch it again (a
        // push may call the allocator, which knows nothing of greenlets).
        let cached = SPARE.try_with(|spare| unsafe { (*spare.get()).objects.pop() });
        if let Ok(Some(object)) = cached {
            return object;
        }
    }
    registry::alloc() // debugger registry (issue 21): a slot on this thread's list
}

/// Keeps the allocation of the greenlet object at `object` for reuse (or
/// frees it, once the thread's store is gone, or under AddressSanitizer).
///
/// # Safety
/// `object` must come from [`slot`], hold a
/// value that owns nothing any more (`object::release` has emptied it, so it
/// needs no drop), and be unreachable: no handle of either kind is left.
pub(crate) unsafe fn free(object: *mut Inner) {
    // SAFETY: per the contract.
    debug_assert!(unsafe { (*object).owns_nothing() });
    // SAFETY: per the contract. Debugger registry (issue 21): no greenlet here now.
    unsafe { registry::vacate(object) };
    if CACHING {
        // SAFETY: as in `slot`. (A push that must grow the vector
        // allocates: `Vec`'s amortised doubling, only when the thread has
        // more released objects than ever before.)
        let kept = SPARE.try_with(|spare| unsafe { (*spare.get()).objects.push(object) });
        if kept.is_ok() {
            return;
        }
    }
    // SAFETY: the allocation came from registry::alloc; what it holds owns
    // nothing, so it is freed without a drop.
    unsafe { registry::dealloc(object) }; // debugger registry (issue 21)
}
