//! Looking at a greenlet from outside: the call stack of a suspended greenlet
//! (Python's `gr_frame`) and how much of its stack it uses.
//!
//! A backtrace can only be taken by the unwinder running on the stack it
//! walks. So [`backtrace`] switches into the suspended greenlet with an
//! *introspection request* instead of a record: a pointer to a [`Request`]
//! tagged [`INTROSPECT`]. The greenlet's pending switch sees the tag (its
//! slow path, `switch::resumed_message`), captures a backtrace there, on its
//! own stack, in [`answer`], and switches straight back; its own code does
//! not resume, no tracer runs, no reference count changes, and its pending
//! switch goes on waiting for a real one.

use std::backtrace::Backtrace;

use super::object::{Inner, State};
use super::thread;
use crate::arch::{self, Transfer};
use crate::stack::{sanitizer, sanitizer::FakeStack, GuardMode};

/// Tag (in the low bits of a switch's third word, `switch.rs`): the words
/// are an introspection request, not a switch.
pub(crate) const INTROSPECT: usize = 1;

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
    // SAFETY: the caller holds a handle to `target`; `current` is running.
    let (tgt, cur) = unsafe { (&*target, &*current) };
    if tgt.state.get() != State::Suspended {
        return None; // unstarted (no frames yet) or dead (no stack any more)
    }
    // Suspended: waiting in a switch (every greenlet that is not running
    // waits in one, main included), where the request will be seen.
    let mut request = Request {
        requester: current,
        result: None,
    };
    // While it captures, the target is the running greenlet. No reference
    // moves: both are held by others for the whole round trip.
    let mut fake = FakeStack::fresh();
    sanitizer::start_switch(Some(&mut fake), tgt.stack_bounds());
    cur.state.set(State::Suspended);
    tgt.state.set(State::Running);
    thread::set_current(target);
    // SAFETY: `cur.sp` is where `answer` reads our stack pointer to come back;
    // `tgt.sp` is the frame the target saved when it was suspended. The word
    // is our request, tagged; `answer` switches back with 0 before we return,
    // so the request outlives its use. Nothing here unwinds.
    // RESUME, and YIELD back in `answer`: a pair the predictor follows, and
    // neither side's `resumer` changes (an introspection is not a switch).
    let word = (&mut request as *mut Request as usize) | INTROSPECT;
    let got = unsafe { arch::resume(cur.sp.as_ptr(), tgt.sp.get(), 0, 0, word) };
    sanitizer::finish_switch(&fake, tgt.stack_bounds().is_none());
    thread::set_current(current);
    tgt.state.set(State::Suspended);
    cur.state.set(State::Running);
    debug_assert_eq!(
        got.tag_word(),
        0,
        "an introspection request is answered with 0"
    );
    request.result
}

/// Answers the introspection request `word` on the stack of `me` (which
/// received it in its pending switch) and switches back to the requester;
/// returns the words `me` is resumed with next.
///
/// # Safety
/// `word` must be a tagged request that `me`'s pending switch received, and
/// `fake` what `me` keeps for the sanitizer across its switches.
#[cold]
#[inline(never)]
pub(crate) unsafe fn answer(word: usize, me: *const Inner, fake: &mut FakeStack) -> Transfer {
    let request = (word & !INTROSPECT) as *mut Request;
    // Nothing may unwind out of here: it would unwind into the suspended
    // code of this greenlet while the requester waits forever. Capturing
    // does not panic; if it ever did, the process stops. (A guard rather
    // than catch_unwind, which would add six frames to every backtrace.)
    let guard = AbortOnUnwind;
    // A suspended greenlet's backtrace is its own frames (Python's
    // `gr_frame`). The trampoline's unwind information would go on into the
    // greenlet that resumed it (SPEC §10), which is not part of them, so for
    // the capture it has none.
    // SAFETY: `me` runs, so it is live.
    let resumer = unsafe { (*me).resumer.replace(std::ptr::null()) };
    let captured = Some(Backtrace::force_capture());
    // SAFETY: as above.
    unsafe { (*me).resumer.set(resumer) };
    std::mem::forget(guard);
    // SAFETY: the request lives on the requester's stack, which waits for us
    // to switch back; we write it before doing so.
    let requester = unsafe {
        (*request).result = captured;
        &*(*request).requester
    };
    sanitizer::start_switch(Some(fake), requester.stack_bounds());
    // SAFETY: the requester saved its frame in its `sp` when it switched here
    // and is not resumed by anyone else meanwhile; `me.sp` is where the next
    // switch to us (another request, or a real switch) reads ours. The
    // requester restores CURRENT and both states itself.
    unsafe { arch::yield_to((*me).sp.as_ptr(), requester.sp.get(), 0, 0, 0) }
}

/// The greenlet that sent the introspection request `word`.
///
/// # Safety
/// `word` must be a tagged request, not yet answered.
pub(crate) unsafe fn requester_of(word: usize) -> *const Inner {
    // SAFETY: a tagged word points at a live Request on the requester's stack.
    unsafe { (*((word & !INTROSPECT) as *const Request)).requester }
}

/// Aborts the process if dropped, which only happens while unwinding.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        super::report::report(
            "greenlet: capturing a backtrace of a suspended greenlet panicked; aborting",
        );
        std::process::abort();
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
    /// How the stack is guarded.
    pub(crate) guard: GuardMode,
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
        high_water: stack.touched_depth(),
        guard: stack.guard(),
    })
}
