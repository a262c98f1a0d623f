//! AddressSanitizer fiber annotations (cargo feature `asan`), behind functions
//! that do nothing when the feature is off, so that their callers carry no
//! `cfg`s.
//!
//! ASan keeps shadow state per stack and must be told when the stack pointer
//! moves to another stack, or it reports false stack-buffer overflows and
//! loses track of `use-after-return` fake frames. The protocol (from
//! `<sanitizer/common_interface_defs.h>`):
//!
//! * just before a switch, the suspended side calls
//!   `__sanitizer_start_switch_fiber(&save, target_bottom, target_size)`, where
//!   `save` receives its fake stack (or passes null when it is leaving its
//!   stack for good, so ASan frees it);
//! * first thing after a switch, the resumed side calls
//!   `__sanitizer_finish_switch_fiber(save, &old_bottom, &old_size)` with what
//!   it saved when it was suspended (null when it starts for the first time),
//!   and learns the bounds of the stack it came from.
//!
//! Greenlet stacks know their bounds; the thread's own stack (where a main
//! greenlet runs) is learned the first time a switch comes from it.
//!
//! The two functions live in the ASan runtime, which is linked only when the
//! program is built with `-Zsanitizer=address` (nightly). On stable the
//! feature compiles (`cargo check --features asan`) but cannot link.

/// Are the annotations compiled in? The switch takes its slow path on every
/// switch when they are, since the fast path does not call them.
pub(crate) const ACTIVE: bool = cfg!(feature = "asan");

/// What the suspended side keeps on its own frame across a switch: its fake
/// stack handle.
pub(crate) struct FakeStack {
    #[cfg(feature = "asan")]
    handle: *mut std::ffi::c_void,
}

impl FakeStack {
    /// The state of a side that has never been suspended (a starting stack).
    #[inline(always)]
    pub(crate) fn fresh() -> FakeStack {
        FakeStack {
            #[cfg(feature = "asan")]
            handle: std::ptr::null_mut(),
        }
    }
}

#[cfg(feature = "asan")]
mod imp {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;

    use super::FakeStack;

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
        fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
    }

    thread_local! {
        /// Bottom and size of this thread's own stack, once learned.
        static THREAD_STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    // Inlined, and with nothing but scalars: when `save` is `None` the call
    // destroys the running fiber's fake stack, so no frame of this function
    // may live there (with fake stacks on, a debug build puts every local
    // whose address is taken on the fake stack, and returning would write to
    // it after it is unmapped). The caller does nothing after it but switch.
    #[inline(always)]
    pub(crate) fn start_switch(save: Option<&mut FakeStack>, target: Option<(usize, usize)>) {
        let (bottom, size) = match target {
            Some(bounds) => bounds,
            None => thread_stack(),
        };
        let save = match save {
            Some(me) => &mut me.handle as *mut *mut c_void,
            None => ptr::null_mut(), // leaving for good: ASan frees the fake stack
        };
        // SAFETY: the ASan runtime's documented protocol; `save` outlives the
        // switch because it lives on the suspended frame.
        unsafe { __sanitizer_start_switch_fiber(save, bottom as *const c_void, size) };
    }

    /// The thread's own stack, learned from the first switch off it. Out of
    /// line: its frame is gone before a fake stack is destroyed.
    #[inline(never)]
    fn thread_stack() -> (usize, usize) {
        THREAD_STACK.with(Cell::get)
    }

    pub(crate) fn finish_switch(mine: &FakeStack, from_thread_stack: bool) {
        let mut bottom: *const c_void = ptr::null();
        let mut size = 0usize;
        // SAFETY: the ASan runtime's documented protocol.
        unsafe { __sanitizer_finish_switch_fiber(mine.handle, &mut bottom, &mut size) };
        if from_thread_stack && size != 0 {
            THREAD_STACK.with(|m| m.set((bottom as usize, size)));
        }
    }

    pub(crate) fn stack_reused(bottom: *const u8, size: usize) {
        // SAFETY: [bottom, bottom + size) is the usable part of a stack that
        // no frame lives on (it was just taken from the pool or a free list).
        unsafe { __asan_unpoison_memory_region(bottom.cast(), size) }
    }
}

#[cfg(not(feature = "asan"))]
mod imp {
    use super::FakeStack;

    #[inline(always)]
    pub(crate) fn start_switch(_save: Option<&mut FakeStack>, _target: Option<(usize, usize)>) {}

    #[inline(always)]
    pub(crate) fn finish_switch(_mine: &FakeStack, _from_thread_stack: bool) {}

    #[inline(always)]
    pub(crate) fn stack_reused(_bottom: *const u8, _size: usize) {}
}

/// Announces a switch to the stack `target` (bottom, size), or to the
/// thread's own stack when `None`; call right before the assembly switch.
/// `save` is where the suspended side keeps its fake stack, or `None` when it
/// leaves its stack for good (a dying greenlet).
#[inline(always)]
pub(crate) fn start_switch(save: Option<&mut FakeStack>, target: Option<(usize, usize)>) {
    imp::start_switch(save, target)
}

/// Completes a switch on the resumed side, with the fake stack it saved when
/// it was suspended; `from_thread_stack` says whether the side that switched
/// here ran on the thread's own stack. Call first thing after the switch.
#[inline(always)]
pub(crate) fn finish_switch(mine: &FakeStack, from_thread_stack: bool) {
    imp::finish_switch(mine, from_thread_stack)
}

/// Clears whatever shadow state the previous user of a reused stack left: a
/// greenlet that died never returned from the frames it was in when it
/// switched away for the last time, so their redzones are still poisoned, and
/// the next greenlet on that stack would trip over them.
#[inline(always)]
pub(crate) fn stack_reused(bottom: *const u8, size: usize) {
    imp::stack_reused(bottom, size)
}
