//! Looking at a greenlet from outside: the call stack of a suspended greenlet
//! (Python's `gr_frame`) and how much of its stack it uses.
//!
//! A backtrace can only be taken by the unwinder running on the stack it
//! walks. So [`backtrace`] switches into the suspended greenlet with an
//! *introspection request* instead of a [`Transfer`](crate::greenlet::switching): a
//! pointer to a [`Request`] with its lowest bit set (a transfer pointer is
//! always aligned, so the bit tells the two apart). The greenlet's pending
//! switch sees the bit in [`serve`], captures a backtrace there, on its own
//! stack, and switches straight back; its own code does not resume, no tracer
//! runs, no reference count changes, and its pending switch goes on waiting
//! for a real one.
//!
//! Stack usage never touches stack memory: `mincore(2)` says which pages of a
//! stack are resident, and the lowest resident page bounds how deep the stack
//! has ever been used (pages are made resident only by touching them).

use std::backtrace::Backtrace;

use crate::arch;
use crate::greenlet::handle::{Inner, State};
use crate::greenlet::thread;
use crate::stack::{page_size, Stack};

/// Lives on the requester's stack while the target captures its backtrace.
struct Request {
    requester: *const Inner,
    result: Option<Backtrace>,
}

/// The call stack of `target` (see [`crate::Greenlet::backtrace`]).
pub(crate) fn backtrace(target: *const Inner) -> Option<Backtrace> {
    let current = thread::current_ptr();
    if target == current {
        return Some(Backtrace::force_capture());
    }
    // SAFETY: the caller holds a handle to `target`; CURRENT owns one to `current`.
    let (tgt, cur) = unsafe { (&*target, &*current) };
    if tgt.state.get() != State::Started {
        return None; // unstarted (no frames yet) or dead (no stack any more)
    }
    // Started and not current: suspended in a switch (every greenlet that is
    // not running waits in `switching::transfer`, main included), where `serve`
    // will see the request.
    check_canary(cur);
    let mut request = Request {
        requester: current,
        result: None,
    };
    // While it captures, the target is the running greenlet: a fault on its
    // stack is then reported against the right stack (src/overflow.rs). No
    // reference moves: both are held by others for the whole round trip.
    thread::set_current(target);
    #[cfg(feature = "asan")]
    let mut fiber = crate::stack::sanitizer::Suspended::fresh();
    #[cfg(feature = "asan")]
    crate::stack::sanitizer::start_switch(&mut fiber, tgt, false);
    // SAFETY: `cur.sp` is where `serve` reads our stack pointer to come back;
    // `tgt.sp` is the frame the target saved when it was suspended. The word
    // is our request, tagged; `serve` switches back with 0 before we return,
    // so the request outlives its use. Nothing here unwinds.
    let word = unsafe {
        arch::switch(
            cur.sp.as_ptr(),
            tgt.sp.get(),
            (&mut request as *mut Request as usize) | 1,
        )
    };
    #[cfg(feature = "asan")]
    crate::stack::sanitizer::finish_switch(&fiber, target);
    thread::set_current(current);
    debug_assert_eq!(word, 0, "an introspection request is answered with 0");
    request.result
}

/// Called by a suspended greenlet with the word it was resumed with: answers
/// introspection requests until a real switch arrives, and returns that
/// switch's word.
///
/// # Safety
/// `me` must be the greenlet whose pending switch received `word`.
#[inline]
pub(crate) unsafe fn serve(word: usize, me: *const Inner) -> usize {
    if word & 1 == 0 {
        return word;
    }
    // SAFETY: forwarded.
    unsafe { serve_requests(word, me) }
}

#[cold]
#[inline(never)]
unsafe fn serve_requests(mut word: usize, me: *const Inner) -> usize {
    // SAFETY: `me` is the greenlet running this code.
    let inner = unsafe { &*me };
    while word & 1 != 0 {
        let request = (word & !1) as *mut Request;
        // Nothing may unwind out of here: it would unwind into the suspended
        // code of this greenlet while the requester waits forever. Capturing
        // does not panic; if it ever did, the process stops. (A guard rather
        // than catch_unwind, which would add six frames to every backtrace.)
        let guard = AbortOnUnwind;
        let captured = Some(Backtrace::force_capture());
        std::mem::forget(guard);
        check_canary(inner);
        // SAFETY: the request lives on the requester's stack, which waits for
        // us to switch back; we read and write it before doing so.
        let requester = unsafe {
            (*request).result = captured;
            &*(*request).requester
        };
        #[cfg(feature = "asan")]
        let mut fiber = crate::stack::sanitizer::Suspended::fresh();
        #[cfg(feature = "asan")]
        crate::stack::sanitizer::start_switch(&mut fiber, requester, false);
        // SAFETY: the requester saved its frame in its `sp` when it switched
        // here and is not resumed by anyone else meanwhile; our `sp` is where
        // the next switch to us (another request, or a real switch) reads ours.
        word = unsafe { arch::switch(inner.sp.as_ptr(), requester.sp.get(), 0) };
        #[cfg(feature = "asan")]
        // SAFETY: `word` is what this pending switch was resumed with.
        crate::stack::sanitizer::finish_switch(&fiber, unsafe {
            crate::greenlet::switching::origin_of(word)
        });
    }
    word
}

/// The greenlet that sent `word`, if it is an introspection request.
///
/// # Safety
/// `word` must be what a pending switch was resumed with.
#[cfg(feature = "asan")]
pub(crate) unsafe fn requester_of(word: usize) -> Option<*const Inner> {
    // SAFETY: a tagged word points at a live Request on the requester's stack.
    (word & 1 != 0).then(|| unsafe { (*((word & !1) as *const Request)).requester })
}

/// Aborts the process if dropped, which only happens while unwinding.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        crate::report("greenlet: capturing a backtrace of a suspended greenlet panicked; aborting");
        std::process::abort();
    }
}

/// A slab stack has no guard page: check its canary before leaving it.
fn check_canary(inner: &Inner) {
    // SAFETY: only a switch or a death writes the stack slot, and neither is
    // under way on `inner`, which is running this code.
    if let Some(stack) = unsafe { &*inner.stack.as_ptr() } {
        stack.check_canary();
    }
}

/// How much of a greenlet's stack is in use, for `Debug`.
pub(crate) struct StackUsage {
    /// Usable bytes of the stack.
    pub(crate) size: usize,
    /// Bytes between the top and the stack pointer now (for a suspended
    /// greenlet, its saved stack pointer; for the running one, the caller's).
    pub(crate) in_use: usize,
    /// Bytes from the top down to the lowest resident page: the deepest the
    /// stack memory has ever been touched (by this greenlet, or by an earlier
    /// one that had the same pooled stack). `None` when `mincore` fails.
    pub(crate) high_water: Option<usize>,
}

/// Stack usage of a greenlet that has a stack of its own (not a main greenlet,
/// not dead).
pub(crate) fn stack_usage(inner: &Inner, is_current: bool) -> Option<StackUsage> {
    // SAFETY: Debug runs on this thread, while no switch or death is under way
    // on `inner` (either it is running this code, or it is suspended).
    let stack = unsafe { &*inner.stack.as_ptr() }.as_ref()?;
    let top = stack.top() as usize;
    let sp = if is_current {
        let here = 0u8;
        std::hint::black_box(&here) as *const u8 as usize
    } else {
        inner.sp.get() as usize
    };
    let in_use = if (stack.bottom() as usize..=top).contains(&sp) {
        top - sp
    } else {
        0 // unstarted greenlets have their initial frame; anything else is not ours
    };
    Some(StackUsage {
        size: stack.usable_size(),
        in_use,
        high_water: deepest_resident(stack),
    })
}

/// Bytes from the top of `stack` down to the start of its lowest resident page.
fn deepest_resident(stack: &Stack) -> Option<usize> {
    let page = page_size();
    let bottom = stack.bottom() as usize; // page-aligned for both kinds
    let top = stack.top() as usize;
    let end = (top + page - 1) & !(page - 1);
    let pages = (end - bottom) / page;
    // The kernel writes one byte per page, but the vector has room for one per
    // 4 KiB, the smallest page Linux has: qemu-user running a guest whose
    // pages are larger than the host's (loongarch64's 16 KiB on a 4 KiB host)
    // writes one byte per host page, past a vector sized for the guest's.
    // Only the first `pages` bytes are read.
    let mut resident = vec![0u8; (end - bottom).div_ceil(4096).max(pages)];
    // SAFETY: [bottom, end) lies inside one mapping that holds this stack
    // (for a slab stack, `end` may reach into the slot above, same mapping);
    // `resident` has at least one byte per 4 KiB of it, more than mincore
    // writes. mincore reads page tables only.
    let rc = unsafe {
        libc::mincore(
            bottom as *mut libc::c_void,
            end - bottom,
            resident.as_mut_ptr().cast(),
        )
    };
    if rc != 0 {
        return None;
    }
    let lowest = resident[..pages].iter().position(|&r| r & 1 != 0)?;
    Some(top - (bottom + lowest * page))
}
