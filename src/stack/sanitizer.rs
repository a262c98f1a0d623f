//! AddressSanitizer fiber annotations (cargo feature `asan`).
//!
//! ASan keeps shadow state per stack and must be told when the stack pointer
//! moves to another stack, or it reports false stack-buffer overflows and
//! loses track of `use-after-return` fake frames. The protocol (from
//! `<sanitizer/common_interface_defs.h>`):
//!
//! * just before a switch, the suspended side calls
//!   `__sanitizer_start_switch_fiber(&save, target_bottom, target_size)`, where
//!   `save` receives its fake stack (or passes null when it is dying, so ASan
//!   frees it);
//! * first thing after a switch, the resumed side calls
//!   `__sanitizer_finish_switch_fiber(save, &old_bottom, &old_size)` with what
//!   it saved when it was suspended (null when it starts for the first time),
//!   and learns the bounds of the stack it came from.
//!
//! Greenlet stacks know their bounds; the main greenlet runs on the thread's
//! own stack, whose bounds are learned the first time a greenlet is resumed
//! from it.
//!
//! The two functions live in the ASan runtime, which is linked only when the
//! program is built with `-Zsanitizer=address` (nightly). On stable the
//! feature compiles (`cargo check --features asan`) but cannot link.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;

use crate::greenlet::handle::Inner;

extern "C" {
    fn __sanitizer_start_switch_fiber(
        fake_stack_save: *mut *mut c_void,
        bottom: *const c_void,
        size: usize,
    );
    fn __sanitizer_finish_switch_fiber(
        fake_stack_save: *mut c_void,
        bottom_old: *mut *const c_void,
        size_old: *mut usize,
    );
}

thread_local! {
    /// Bottom and size of this thread's own stack, where the main greenlet runs.
    static MAIN_STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// What the suspended side keeps on its own frame across a switch.
pub(crate) struct Suspended {
    fake_stack: *mut c_void,
}

impl Suspended {
    /// The state of a side that has never been suspended (a starting greenlet).
    pub(crate) fn fresh() -> Suspended {
        Suspended {
            fake_stack: ptr::null_mut(),
        }
    }
}

/// Announces a switch to `target`; call right before the assembly switch.
pub(crate) fn start_switch(me: &mut Suspended, target: &Inner, dying: bool) {
    // SAFETY: only the running greenlet writes its own stack slot, at death,
    // after this switch; `target` is suspended, so its slot is stable.
    let (bottom, size) = match unsafe { &*target.stack.as_ptr() } {
        Some(stack) => (stack.bottom() as usize, stack.usable_size()),
        None => MAIN_STACK.with(Cell::get),
    };
    let save = if dying {
        ptr::null_mut() // lets ASan release the dying greenlet's fake stack
    } else {
        &mut me.fake_stack as *mut *mut c_void
    };
    // SAFETY: the ASan runtime's documented protocol; `save` outlives the
    // switch because it lives on our suspended frame.
    unsafe { __sanitizer_start_switch_fiber(save, bottom as *const c_void, size) };
}

/// Completes a switch on the resumed side; `origin` is the greenlet that
/// switched to us. Call first thing after the assembly switch returns.
pub(crate) fn finish_switch(me: &Suspended, origin: *const Inner) {
    let mut bottom: *const c_void = ptr::null();
    let mut size = 0usize;
    // SAFETY: the ASan runtime's documented protocol.
    unsafe { __sanitizer_finish_switch_fiber(me.fake_stack, &mut bottom, &mut size) };
    // SAFETY: the origin is live: the transfer carries a strong reference to it.
    let from_main = unsafe { (*(*origin).stack.as_ptr()).is_none() };
    if from_main && size != 0 {
        MAIN_STACK.with(|m| m.set((bottom as usize, size)));
    }
}

extern "C" {
    fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
}

/// Clears whatever shadow state the previous user of a reused stack left: a
/// greenlet that died never returned from the frames it was in when it
/// switched away for the last time, so their redzones are still poisoned, and
/// the next greenlet on that stack would trip over them.
pub(crate) fn stack_reused(bottom: *const u8, size: usize) {
    // SAFETY: [bottom, bottom + size) is the usable part of a stack that no
    // frame lives on (it was just taken from the pool or a free list).
    unsafe { __asan_unpoison_memory_region(bottom.cast(), size) }
}
