//! A per-thread cache of freed greenlet objects ([`Inner`] allocations), so
//! that creating and dropping greenlets in a loop costs no `malloc`/`free`.
//!
//! The cache is small and bounded; what does not fit is freed. Its thread-local
//! destructor frees what it holds at thread exit, and an object freed after
//! that goes straight back to the allocator. Under AddressSanitizer nothing is
//! cached, so that ASan still sees every use after free.

use std::cell::UnsafeCell;

use super::object::Inner;
use super::registry;
use crate::stack::sanitizer;

/// How many freed greenlet objects a thread keeps for reuse.
const CAPACITY: usize = 16;

/// Whether objects are cached at all.
const CACHING: bool = !sanitizer::ACTIVE;

struct Spare {
    objects: [*mut Inner; CAPACITY],
    len: usize,
}

impl Drop for Spare {
    fn drop(&mut self) {
        for &object in &self.objects[..self.len] {
            // SAFETY: every cached pointer came from registry::alloc (through
            // `slot`) and holds no value.
            unsafe { registry::dealloc(object) }; // debugger registry (issue 21)
        }
        self.len = 0;
    }
}

thread_local! {
    static SPARE: UnsafeCell<Spare> = const {
        UnsafeCell::new(Spare { objects: [std::ptr::null_mut(); CAPACITY], len: 0 })
    };
}

/// A cached allocation for a greenlet object, or a new one: uninitialised
/// memory with `Inner`'s layout, for the caller to write (in place, so that
/// the object is not built on the stack and copied).
#[inline]
pub(crate) fn slot() -> *mut Inner {
    if CACHING {
        // SAFETY: the cache is only touched here and in `free`, neither of
        // which calls out while holding the reference.
        let cached = SPARE.try_with(|spare| unsafe {
            let spare = &mut *spare.get();
            spare.len.checked_sub(1).map(|i| {
                spare.len = i;
                spare.objects[i]
            })
        });
        if let Ok(Some(object)) = cached {
            return object;
        }
    }
    registry::alloc() // debugger registry (issue 21): a slot on this thread's list
}

/// Keeps or frees the allocation of the greenlet object at `object`.
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
        // SAFETY: as in `slot`.
        let kept = SPARE.try_with(|spare| unsafe {
            let spare = &mut *spare.get();
            if spare.len < CAPACITY {
                spare.objects[spare.len] = object;
                spare.len += 1;
                true
            } else {
                false
            }
        });
        if kept == Ok(true) {
            return;
        }
    }
    // SAFETY: the allocation came from registry::alloc; what it holds owns
    // nothing, so it is freed without a drop.
    unsafe { registry::dealloc(object) }; // debugger registry (issue 21)
}
