//! A per-thread cache of freed greenlet objects ([`Inner`] allocations), so
//! that creating and dropping greenlets in a loop costs no `malloc`/`free`
//! (about an eighth of the instructions of a create + run + die; docs/benchmarks.md).
//!
//! The cache is small and bounded; what does not fit is freed. Its thread-local
//! destructor frees what it holds at thread exit, and an object freed after
//! that goes straight back to the allocator. With the `asan` feature nothing is
//! cached, so that AddressSanitizer still sees every use after free.

#[cfg(not(feature = "asan"))]
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::greenlet::handle::Inner;

/// How many freed greenlet objects a thread keeps for reuse.
#[cfg(not(feature = "asan"))]
const CAPACITY: usize = 16;

#[cfg(not(feature = "asan"))]
struct Spare {
    objects: [*mut Inner; CAPACITY],
    len: usize,
}

#[cfg(not(feature = "asan"))]
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

#[cfg(not(feature = "asan"))]
thread_local! {
    static SPARE: UnsafeCell<Spare> = const {
        UnsafeCell::new(Spare { objects: [std::ptr::null_mut(); CAPACITY], len: 0 })
    };
}

/// Moves `inner` into a cached allocation, or a new one.
pub(crate) fn allocate(inner: Inner) -> *mut Inner {
    #[cfg(not(feature = "asan"))]
    {
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
/// value, and be unreachable: no handle of either kind is left.
pub(crate) unsafe fn free(object: *mut Inner) {
    // Drop the value first, outside the cache: its fields' destructors may
    // free other greenlet objects.
    // SAFETY: per the contract the value is live and nothing else refers to it.
    unsafe { object.drop_in_place() };
    #[cfg(not(feature = "asan"))]
    {
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
