//! The only door into the assembly in `asm/<arch>.S`.
//!
//! Nothing here is CPU-specific: each `.S` file exports the same three routines
//! and keeps its saved-frame layout to itself (its header table is the only
//! place the layout is written). Porting to a new CPU is one new `.S` file.
//!
//! The contract with the assembly (SPEC §5):
//! * `switch(save_sp, load_sp, transfer)` pushes every callee-saved register
//!   (and, with the `fp-control` feature, the floating-point control state),
//!   stores the stack pointer to `*save_sp`, loads `load_sp`, pops the same
//!   frame from there and returns `transfer` to whoever is resumed.
//! * `init(top, entry, arg)` writes, below `top`, a frame shaped like a saved
//!   one whose return address is the entry trampoline, and returns its stack
//!   pointer. The first switch to it runs `entry(transfer, arg)` there.
//! * the trampoline is never called; it is the bottom frame of every greenlet
//!   stack and carries the unwind information that ends backtraces there.

/// Signature of the function that the trampoline calls on a new stack.
///
/// `transfer` is the word passed to the switch that started the stack; `arg` is
/// the word given to [`init_stack`]. It must never return (the trampoline has no
/// caller to return to) and must never unwind (it is `extern "C"`, so a panic
/// escaping it aborts the process instead of unwinding into assembly).
pub(crate) type EntryFn = unsafe extern "C" fn(transfer: usize, arg: usize) -> !;

/// Signature of the switch routine, for callers (like the ABI test) that want a
/// plain function pointer.
#[cfg(test)]
pub(crate) type SwitchFn =
    unsafe extern "C" fn(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize;

mod ffi {
    extern "C" {
        #[link_name = concat!(
            "greenlet_",
            env!("CARGO_PKG_VERSION_MAJOR"), "_",
            env!("CARGO_PKG_VERSION_MINOR"), "_",
            env!("CARGO_PKG_VERSION_PATCH"), "_switch"
        )]
        pub fn switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize;

        #[link_name = concat!(
            "greenlet_",
            env!("CARGO_PKG_VERSION_MAJOR"), "_",
            env!("CARGO_PKG_VERSION_MINOR"), "_",
            env!("CARGO_PKG_VERSION_PATCH"), "_init"
        )]
        pub fn init(top: *mut u8, entry: super::EntryFn, arg: usize) -> *mut u8;
    }
}

/// Room an initial frame may take below the top of a stack, on any CPU (the
/// largest, powerpc64le's, saves 18 integer, 18 FP and 12 vector registers).
/// Stacks are at least `MIN_STACK_SIZE`, far more than this.
pub(crate) const INITIAL_FRAME_MAX_BYTES: usize = 1024;

/// The switch routine as a plain function pointer.
#[cfg(test)]
pub(crate) fn switch_fn() -> SwitchFn {
    ffi::switch
}

/// Suspends the running context and resumes the one whose saved stack pointer
/// is `load_sp`; returns the transfer word of whoever later resumes us.
///
/// # Safety
/// * `save_sp` must be valid for a write of one pointer and must still be the
///   place the resumer reads our stack pointer from.
/// * `load_sp` must be a stack pointer previously stored by this routine for a
///   context that is suspended and has not been resumed since, or a frame made
///   by [`init_stack`] that has not been resumed yet.
/// * Nothing may unwind across this call: the caller is on one side of a stack
///   switch and any panic must be caught before it gets here.
#[inline(always)]
pub(crate) unsafe fn switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize {
    // SAFETY: the caller upholds the contract above, which is exactly what the
    // assembly needs: a writable save slot and a valid frame to resume.
    unsafe { call_switch(save_sp, load_sp, transfer) }
}

/// Calls the switch routine directly, by name. To the compiler an extern
/// function of another object file may live in a shared library, so a plain
/// call goes through the GOT (an indirect call); this is the same call with
/// the same clobbers (`clobber_abi("C")`: the routine keeps exactly the
/// callee-saved registers), made direct.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn call_switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize {
    let word: usize;
    // SAFETY: an ordinary call of the routine with its three arguments in the
    // argument registers and its result in rax, as its C signature says; the
    // stack is aligned for a call (no `nostack`), and the routine may read
    // and write memory (no `nomem`), the transfer word's record included.
    unsafe {
        std::arch::asm!(
            "call {switch}",
            switch = sym ffi::switch,
            inout("rdi") save_sp => _,
            inout("rsi") load_sp => _,
            inout("rdx") transfer => _,
            lateout("rax") word,
            clobber_abi("C"),
        );
    }
    word
}

/// Other CPUs call the routine as the extern function it is.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn call_switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize {
    // SAFETY: forwarded from `switch`.
    unsafe { ffi::switch(save_sp, load_sp, transfer) }
}

/// Writes the initial frame below `stack_top` and returns the stack pointer to
/// hand to [`switch`] as `load_sp`. The first switch to it runs
/// `entry(transfer, arg)` on that stack.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned, exclusive upper end of writable
/// memory with at least [`INITIAL_FRAME_MAX_BYTES`] bytes below it, owned by
/// the caller and used as a stack by nothing else.
#[inline]
pub(crate) unsafe fn init_stack(stack_top: *mut u8, entry: EntryFn, arg: usize) -> *mut u8 {
    debug_assert_eq!(stack_top as usize % 16, 0, "stack top must be 16-aligned");
    // SAFETY: the caller guarantees the memory below stack_top; the routine
    // writes only its frame there (less than INITIAL_FRAME_MAX_BYTES).
    unsafe { ffi::init(stack_top, entry, arg) }
}

#[cfg(test)]
mod abi_test;
pub(crate) mod bare;
