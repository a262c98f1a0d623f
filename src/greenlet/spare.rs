//! A per-thread cache of freed greenlet objects ([`Inner`] allocations), so
//! that creating and dropping greenlets in a loop costs no `malloc`/`free`.
//!
//! The cache is small and bounded; what does not fit is freed. Its thread-local
//! destructor frees what it holds at thread exit, and an object freed after
//! that goes straight back to the allocator. Under AddressSanitizer nothing is
//! cached, so that ASan still sees every use after free.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use super::object::Inner;
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
            // SAFETY: every cached pointer came from Box::<Inner>::into_raw (or
            // was given to `free`, with the same layout) and holds no value.
            drop(unsafe { Box::from_raw(object.cast::<MaybeUninit<Inner>>()) });
        }
        self.len = 0;
    }
}

thread_local! {
    static SPARE: UnsafeCell<Spare> = const {
        UnsafeCell::new(Spare { objects: [std::ptr::null_mut(); CAPACITY], len: 0 })
    };
}

/// Moves `inner` into a cached allocation, or a new one.
#[inline]
pub(crate) fn allocate(inner: Inner) -> *mut Inner {
    if CACHING {
        // SAFETY: the cache is only touched here and in `free`, neither of
        // which calls out while holding the reference.
        let cached = SPARE
            .try_with(|spare| unsafe {
                let spare = &mut *spare.get();
                spare.len.checked_sub(1).map(|i| {
                    spare.len = i;
                    spare.objects[i]
                })
            })
            .ok()
            .flatten();
        if let Some(object) = cached {
            // SAFETY: a cached allocation has Inner's layout and holds no value.
            unsafe { object.write(inner) };
            return object;
        }
    }
    Box::into_raw(Box::new(inner))
}

/// Drops the greenlet object at `object` and keeps or frees its allocation.
///
/// # Safety
/// `object` must come from [`allocate`] (or `Box::<Inner>::into_raw`), hold a
/// value that owns nothing any more (`object::release` has emptied it), and
/// be unreachable: no handle of either kind is left.
pub(crate) unsafe fn free(object: *mut Inner) {
    // SAFETY: per the contract the value is live and nothing else refers to
    // it; emptied, so dropping it runs no other code.
    unsafe { object.drop_in_place() };
    if CACHING {
        // SAFETY: as in `allocate`.
        let kept = SPARE
            .try_with(|spare| unsafe {
                let spare = &mut *spare.get();
                if spare.len < CAPACITY {
                    spare.objects[spare.len] = object;
                    spare.len += 1;
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if kept {
            return;
        }
    }
    // SAFETY: the allocation came from a Box<Inner>; its value is dropped.
    drop(unsafe { Box::from_raw(object.cast::<MaybeUninit<Inner>>()) });
}
