//! The only door into the assembly in `asm/<arch>.S`.
//!
//! Everything CPU-specific on the Rust side lives here: the two extern symbols
//! and, per CPU family, the shape of the *initial frame* that makes the first
//! switch into a fresh stack "return" into the entry trampoline. Porting to a
//! new CPU means one new `asm/<arch>.S` and one new `cfg` arm in its private `layout` module.
//!
//! The contract with the assembly (SPEC §5):
//! * `switch(save_sp, load_sp, transfer)` pushes every callee-saved register and
//!   the floating-point control state, stores the stack pointer to `*save_sp`,
//!   loads `load_sp`, pops the same frame from there and returns `transfer` to
//!   whoever is resumed.
//! * the trampoline is never called; the initial frame's return-address slot
//!   points at it. It calls `entry(transfer, arg)`, with `entry` and `arg` taken
//!   from two callee-saved register slots of the initial frame.

/// Signature of the function that the trampoline calls on a new stack.
///
/// `transfer` is the word passed to the switch that started the stack; `arg` is
/// the word given to [`init_stack`]. It must never return (the trampoline has no
/// caller to return to) and must never unwind (it is `extern "C"`, so a panic
/// escaping it aborts the process instead of unwinding into assembly).
pub type EntryFn = unsafe extern "C" fn(transfer: usize, arg: usize) -> !;

/// Signature of the switch routine, for callers (like the ABI test) that want a
/// plain function pointer.
pub type SwitchFn =
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
            env!("CARGO_PKG_VERSION_PATCH"), "_entry"
        )]
        pub fn entry_trampoline();
    }
}

/// Per-CPU description of the saved frame, mirroring the table at the top of
/// the matching `asm/<arch>.S`. Offsets are in machine words from the saved
/// stack pointer.
mod layout {
    #[cfg(target_arch = "x86_64")]
    mod imp {
        pub const FRAME_WORDS: usize = 8;
        pub const RETURN_SLOT: usize = 7;
        pub const ENTRY_FN_SLOT: usize = 4; // r12
        pub const ENTRY_ARG_SLOT: usize = 5; // rbx
        /// MXCSR 0x1F80 in the low half, x87 control word 0x037F above it: the
        /// values the SysV ABI specifies at process start.
        pub const FP_CONTROL: Option<(usize, usize)> = Some((0, (0x037F << 32) | 0x1F80));
    }

    #[cfg(target_arch = "aarch64")]
    mod imp {
        pub const FRAME_WORDS: usize = 22;
        pub const RETURN_SLOT: usize = 11; // x30
        pub const ENTRY_FN_SLOT: usize = 1; // x20
        pub const ENTRY_ARG_SLOT: usize = 0; // x19
        pub const FP_CONTROL: Option<(usize, usize)> = None; // FPCR 0 = defaults
    }

    #[cfg(target_arch = "riscv64")]
    mod imp {
        pub const FRAME_WORDS: usize = 26;
        pub const RETURN_SLOT: usize = 0; // ra
        pub const ENTRY_FN_SLOT: usize = 3; // s2
        pub const ENTRY_ARG_SLOT: usize = 2; // s1
        pub const FP_CONTROL: Option<(usize, usize)> = None; // fcsr 0 = defaults
    }

    #[cfg(target_arch = "s390x")]
    mod imp {
        pub const FRAME_WORDS: usize = 18;
        pub const RETURN_SLOT: usize = 8; // r14
        pub const ENTRY_FN_SLOT: usize = 1; // r7
        pub const ENTRY_ARG_SLOT: usize = 0; // r6
        pub const FP_CONTROL: Option<(usize, usize)> = None; // FPC 0 = defaults
    }

    pub use imp::*;

    // A frame must keep the stack pointer 16-byte aligned on every supported ABI.
    const _: () = assert!((FRAME_WORDS * core::mem::size_of::<usize>()) % 16 == 0);
}

/// Bytes of the initial frame written by [`init_stack`].
pub const INITIAL_FRAME_BYTES: usize = layout::FRAME_WORDS * core::mem::size_of::<usize>();

/// The switch routine as a plain function pointer.
pub fn switch_fn() -> SwitchFn {
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
pub unsafe fn switch(save_sp: *mut *mut u8, load_sp: *mut u8, transfer: usize) -> usize {
    // SAFETY: the caller upholds the contract above, which is exactly what the
    // assembly needs: a writable save slot and a valid frame to resume.
    unsafe { ffi::switch(save_sp, load_sp, transfer) }
}

/// Writes the initial frame at the top of a fresh stack and returns the stack
/// pointer to hand to [`switch`] as `load_sp`. The first switch to it runs
/// `entry(transfer, arg)` on that stack.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned, exclusive upper end of writable
/// memory with at least [`INITIAL_FRAME_BYTES`] bytes below it, owned by the
/// caller and used as a stack by nothing else.
pub unsafe fn init_stack(stack_top: *mut u8, entry: EntryFn, arg: usize) -> *mut u8 {
    assert_eq!(
        stack_top as usize % 16,
        0,
        "greenlet: stack top must be 16-byte aligned"
    );
    let frame = stack_top.cast::<usize>().wrapping_sub(layout::FRAME_WORDS);
    // SAFETY: the caller guarantees INITIAL_FRAME_BYTES of writable memory below
    // stack_top, which is exactly FRAME_WORDS words starting at `frame`; `frame`
    // is word-aligned because stack_top is 16-aligned.
    unsafe {
        for i in 0..layout::FRAME_WORDS {
            frame.add(i).write(0);
        }
        if let Some((slot, value)) = layout::FP_CONTROL {
            frame.add(slot).write(value);
        }
        frame
            .add(layout::RETURN_SLOT)
            .write(ffi::entry_trampoline as *const () as usize);
        frame
            .add(layout::ENTRY_FN_SLOT)
            .write(entry as *const () as usize);
        frame.add(layout::ENTRY_ARG_SLOT).write(arg);
    }
    frame.cast()
}
