//! A stand-in for the CPUs whose `.S` file still has the one-entry switch of
//! the old contract (`switch(save_sp, load_sp, word) -> word`): both entries
//! go through it, and the three words travel by a pointer to the sender's
//! [`Transfer`], which stays on the suspended sender's stack until the
//! resumed side has copied it. Temporary: each CPU moves to its own module
//! with RESUME/YIELD call sites (SPEC §5) and this file goes.

use super::{EntryFn, Transfer};

mod old {
    extern "C" {
        #[link_name = super::super::ffi::routine_name!("switch")]
        pub(crate) fn switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize;
        #[link_name = super::super::ffi::routine_name!("init")]
        pub(crate) fn init(
            top: *mut u8,
            entry: unsafe extern "C" fn(usize, usize) -> !,
            arg: usize,
        ) -> *mut u8;
    }
}

/// Suspends the running context and resumes the one at `load_sp` with
/// `*send`; returns what whoever resumes us hands us.
///
/// # Safety
/// As for the x86_64 module's `resume`: a writable save slot, a suspended
/// (or initial) frame at `load_sp`, a readable `send`, nothing unwinding.
#[inline(always)]
pub(crate) unsafe fn resume(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    send: *const Transfer,
) -> Transfer {
    // SAFETY: per the contract; the word that comes back is the address of
    // the resumer's Transfer, on its stack, which stays put while it is
    // suspended: it is copied before anything else runs here.
    unsafe {
        let back = old::switch(save_sp, load_sp, send as usize);
        (back as *const Transfer).read()
    }
}

/// The old switch has one entry: the same as [`resume`].
///
/// # Safety
/// As for [`resume`].
#[inline(always)]
pub(crate) unsafe fn yield_to(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    send: *const Transfer,
) -> Transfer {
    // SAFETY: forwarded.
    unsafe { resume(save_sp, load_sp, send) }
}

/// The old switch saves every callee-saved register itself: no clobber list
/// can forget one, so the ABI test's negative case uses a corrupting switch.
///
/// # Safety
/// As for [`resume`].
#[cfg(test)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    send: *const Transfer,
) -> Transfer {
    // SAFETY: forwarded.
    unsafe { resume(save_sp, load_sp, send) }
}

/// Nothing is forgotten by the old switch (see [`resume_forgetting_one`]).
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "";

/// The real entry and its argument, kept at the top of a new stack for
/// [`start`].
#[repr(C)]
struct Start {
    entry: EntryFn,
    arg: usize,
}

/// Lays out a new stack: the entry and its argument at the top, the old
/// initial frame below them, entering [`start`].
///
/// # Safety
/// As for `init_stack`.
pub(crate) unsafe fn init(stack_top: *mut u8, entry: EntryFn, arg: usize) -> *mut u8 {
    // SAFETY: the caller owns the memory below the 16-aligned top; 16 bytes
    // hold a Start on every CPU (two words), and the old frame goes below
    // them, 16-aligned again.
    unsafe {
        let start = stack_top.sub(16).cast::<Start>();
        start.write(Start { entry, arg });
        old::init(start.cast(), start_entry, start as usize)
    }
}

/// The old trampoline's entry: copies the first Transfer and enters the
/// real entry with its words.
unsafe extern "C" fn start_entry(transfer: usize, start: usize) -> ! {
    // SAFETY: `start` is the Start written by `init` at the top of this
    // stack; `transfer` the address of the starting switch's Transfer.
    // Its first two words may be a value's uninitialised padding: they are
    // handed on as the raw words they are.
    unsafe {
        let Start { entry, arg } = (start as *const Start).read();
        let words = (transfer as *const [usize; 3]).read();
        entry(words[0], words[1], words[2], arg)
    }
}
