//! The only door into the assembly in `asm/<arch>.S`.
//!
//! The contract with the assembly (SPEC §5), the same on every CPU:
//!
//! * Two switch entries share one saved frame. [`resume`] enters the `.S`
//!   file's RESUME routine with the CPU's call instruction and is resumed at
//!   the return address that call left; RESUME leaves by an indirect jump.
//!   [`yield_to`] enters YIELD with a plain jump after putting its own resume
//!   address where the frame keeps it; YIELD leaves by the return
//!   instruction. Switching back with [`yield_to`] to the side whose
//!   [`resume`] is still pending pairs every return with its call, which the
//!   CPU's return-address predictor then gets right. Either entry resumes a
//!   context that either suspended: the choice is speed, never behaviour.
//! * A context that dies leaves through YIELD for good ([`yield_for_good`]):
//!   the same routine, entered by the same template, from an `asm!` block
//!   that never returns and so declares nothing clobbered. The greenlet's
//!   bottom Rust frame can then hold its death's switch without saving
//!   every callee-saved register for the greenlet's whole life, and the
//!   death needs no call of its own: a frame called for it would leave its
//!   return address on top of the predictor, and YIELD's return, which
//!   pairs with the parent's RESUME, would be mispredicted on every death.
//! * The `asm!` call sites (one module per CPU, `src/arch/<cpu>.rs`) declare
//!   clobbered every register Rust lets them name, so the compiler keeps
//!   across a switch only what is live; the `.S` saves only what `asm!` cannot
//!   name (on x86_64 rbx and rbp), the stack pointer and the resume address.
//! * A switch carries a [`Transfer`] of three words, loaded into registers
//!   by the call site and handed to the resumed side in registers.
//! * `init_stack(top, entry, arg)` writes, below `top`, a frame shaped like a
//!   suspended one whose resume address is the entry trampoline; the first
//!   switch to it runs `entry(a, b, c, arg)` there, with the words of that
//!   switch.
//! * The trampoline is never called; it is the bottom frame of every greenlet
//!   stack and carries the unwind information that ends backtraces there.
//!
//! Porting to a new CPU is one `.S` file and one `src/arch/<cpu>.rs`
//! (docs/porting.md).

use std::mem::MaybeUninit;

/// Defines `freeze_pair` for a CPU from the assembly that loads two words
/// from `[{p}]` into `{a}` and `{b}`; `$class` is the register class `{p}`
/// may use (one that is never read as zero when it is a base register).
macro_rules! freeze_pair_with {
    ($class:ident, $($load:literal),+) => {
        /// Loads the two words at `words` through the assembly (see
        /// [`super::freeze_pair`]).
        #[cfg(not(miri))]
        #[inline(always)]
        pub(crate) fn freeze_pair(words: &[std::mem::MaybeUninit<*const ()>; 2]) -> [*const (); 2] {
            let (a, b): (*const (), *const ());
            // SAFETY: two aligned word loads from a live reference, nothing
            // else: no stack, no flags, no write. Whatever bytes the memory
            // holds, the registers the loads fill hold definite bits.
            unsafe {
                std::arch::asm!(
                    $($load,)+
                    p = in($class) words.as_ptr(),
                    // Not `lateout`: the first load's register must not be
                    // the address's, which the second load still reads.
                    a = out(reg) a,
                    b = out(reg) b,
                    options(nostack, readonly, preserves_flags),
                )
            };
            [a, b]
        }
    };
}

#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
#[cfg_attr(target_arch = "x86", path = "x86.rs")]
#[cfg_attr(target_arch = "arm", path = "arm.rs")]
#[cfg_attr(target_arch = "aarch64", path = "aarch64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "riscv64.rs")]
#[cfg_attr(target_arch = "loongarch64", path = "loongarch64.rs")]
#[cfg_attr(target_arch = "powerpc64", path = "powerpc64.rs")]
#[cfg_attr(target_arch = "s390x", path = "s390x.rs")]
#[macro_use] // its `yield_site!`, for `yield_for_good`
mod cpu;

pub(crate) use cpu::{resume, yield_to};
#[cfg(test)]
pub(crate) use cpu::{resume_forgetting_one, FORGOTTEN_CLOBBER};

/// [`yield_to`] as a dying context's last switch, never resumed: the CPU's
/// YIELD site (its `yield_site!`) in a block that never returns, with its
/// operands as inputs and nothing declared clobbered.
///
/// # Safety
/// As for [`resume`], and the running context must never be resumed.
#[inline(always)]
pub(crate) unsafe fn yield_for_good(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> ! {
    // SAFETY: as for `yield_to`: a writable save slot and a valid frame to
    // resume. Nothing after the block runs, so no register needs keeping:
    // the block may change any.
    unsafe { yield_site!([for_good,] save_sp, load_sp, [a, b, c]) }
}

/// The three words a switch carries (a value of up to two words and the word
/// that says what it is), in registers both ways: the call site binds them
/// to the routine's argument registers (`inout` operands) and the resumed side
/// finds them in the same registers. They are plain initialised words: a value whose bytes
/// may hold uninitialised padding is frozen into words before it gets here
/// ([`freeze_pair`]), since Rust may not put such bytes in a register.
#[derive(Clone, Copy)]
pub(crate) struct Transfer {
    pub(crate) words: [usize; 3],
}

impl Transfer {
    /// Three words.
    #[inline(always)]
    pub(crate) const fn new(a: usize, b: usize, c: usize) -> Transfer {
        Transfer { words: [a, b, c] }
    }

    /// The third word (the core keeps its tag there).
    #[inline(always)]
    pub(crate) fn tag_word(&self) -> usize {
        self.words[2]
    }
}

/// Two words of memory as two initialised words, whatever the memory holds:
/// the bytes of a value, uninitialised padding included, in the form a
/// switch can carry in registers. The load is made by the assembly, for
/// which memory has no uninitialised bytes, only bits; Rust code reading
/// padding as a word would be undefined behaviour. Pointers keep their
/// provenance (the words are pointer-typed).
///
/// Under Miri, which cannot run inline assembly, this is a plain read, which
/// Miri checks for everything but uninitialised padding (a value with
/// padding would be reported there, and is not given to Miri).
#[inline(always)]
pub(crate) fn freeze_pair(words: &[MaybeUninit<*const ()>; 2]) -> [*const (); 2] {
    #[cfg(not(miri))]
    return cpu::freeze_pair(words);
    // SAFETY: under Miri only; Miri reports a read of uninitialised bytes.
    #[cfg(miri)]
    return unsafe { words.as_ptr().cast::<[*const (); 2]>().read() };
}

/// Signature of the function that the trampoline enters on a new stack.
///
/// `a`, `b`, `c` are the words of the switch that started the stack; `arg` is
/// the word given to [`init_stack`]. It must never return (the trampoline has
/// no caller to return to) and must never unwind (it is `extern "C"`, so a
/// panic escaping it aborts the process instead of unwinding into assembly).
pub(crate) type EntryFn = unsafe extern "C" fn(a: usize, b: usize, c: usize, arg: usize) -> !;

/// The routines of `asm/<arch>.S`, by their crate-versioned names. The switch
/// entries are only ever reached from `asm!` blocks (`sym`), never called as
/// Rust functions: they follow no calling convention.
#[allow(dead_code)] // each CPU module uses the entries it has
mod ffi {
    macro_rules! routine_name {
        ($routine:literal) => {
            concat!(
                "greenlet_",
                env!("CARGO_PKG_VERSION_MAJOR"),
                "_",
                env!("CARGO_PKG_VERSION_MINOR"),
                "_",
                env!("CARGO_PKG_VERSION_PATCH"),
                "_",
                $routine
            )
        };
    }
    #[allow(unused_imports)] // for the CPU modules that name a routine themselves
    pub(crate) use routine_name;

    extern "C" {
        #[link_name = routine_name!("resume")]
        pub(crate) fn resume();
        #[link_name = routine_name!("yield")]
        pub(crate) fn yield_();
        #[cfg(not(windows))]
        #[link_name = routine_name!("init")]
        pub(crate) fn init(top: *mut u8, entry: usize, arg: usize) -> *mut u8;
        /// Windows: the same with the stack's TEB fields (or null: the
        /// thread's own).
        #[cfg(windows)]
        #[link_name = routine_name!("init")]
        pub(crate) fn init_windows(
            top: *mut u8,
            entry: usize,
            arg: usize,
            bounds: *const super::StackBounds,
        ) -> *mut u8;
    }
}

/// Room an initial frame may take below the top of a stack, on any CPU (the
/// largest, powerpc64le's, saves 18 integer, 18 FP and 12 vector registers),
/// with the link words above it.
/// Stacks are at least `MIN_STACK_SIZE`, far more than this.
pub(crate) const INITIAL_FRAME_MAX_BYTES: usize = 1024;

/// Writes the unwind link and the initial frame below `stack_top` and
/// returns the stack pointer to hand to [`resume`] or [`yield_to`] as
/// `load_sp`. The first switch to it runs `entry(a, b, c, arg)` on that
/// stack.
///
/// `link` is the address of the greenlet's switch record (see [`link`]), or
/// null for a stack that no greenlet owns: the trampoline's unwind
/// information follows it to the frame of the greenlet that resumed this one,
/// so that backtraces go on there (SPEC §10), and ends the chain when it is
/// null.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned, exclusive upper end of writable
/// memory with at least [`INITIAL_FRAME_MAX_BYTES`] bytes below it, owned by
/// the caller and used as a stack by nothing else. A non-null `link` must
/// point at a record with the layout of [`link`] that outlives the stack's
/// use, since unwinders read it while the stack runs.
#[inline]
pub(crate) unsafe fn init_stack(
    stack_top: *mut u8,
    entry: EntryFn,
    arg: usize,
    link: *const u8,
) -> *mut u8 {
    // SAFETY: forwarded.
    let top = unsafe { write_link(stack_top, link) };
    // SAFETY: the caller guarantees the memory below stack_top; the routine
    // writes only its frame there (less than INITIAL_FRAME_MAX_BYTES, which
    // leaves room for the link words).
    #[cfg(not(windows))]
    return unsafe { ffi::init(top, entry as usize, arg) };
    // SAFETY: as above. Without bounds the frame carries the thread's own
    // stack bounds: for scratch stacks, on which nothing raises exceptions.
    #[cfg(windows)]
    return unsafe { ffi::init_windows(top, entry as usize, arg, std::ptr::null()) };
}

/// The layout of the switch record that the trampoline's unwind information
/// reads (through the word [`init_stack`] puts at the trampoline's stack
/// pointer), in bytes from the record's address. `asm/link.h` defines the
/// same numbers (`LINK_*`) for the `.S` files; the greenlet core asserts that its
/// object has this layout (`src/greenlet/object.rs`), and the backtrace tests
/// fail when the `.S` reads anything else.
pub(crate) mod link {
    /// The saved stack pointer, valid while the greenlet is suspended.
    pub(crate) const SP: usize = 0;
    /// The record of the greenlet whose RESUME into this one is pending, or
    /// null.
    pub(crate) const RESUMER: usize = std::mem::size_of::<usize>();
    /// The state byte.
    pub(crate) const STATE: usize = 3 * std::mem::size_of::<usize>();
    /// The state byte's value while the greenlet is suspended in a switch:
    /// only then is its saved frame there to unwind into.
    pub(crate) const SUSPENDED: u8 = 1;
    /// Bytes [`super::init_stack`] keeps above the initial frame: the link
    /// word, the chain-end word and two zero words, 16-aligned.
    pub(crate) const WORDS_BYTES: usize = 4 * std::mem::size_of::<usize>();
}

/// Puts, just below `stack_top`, the words the trampoline's unwind
/// information reads at its stack pointer (the link area): `link`, then 0
/// (the chain-end word, which the `.S` files that use it overwrite with the
/// address to end the chain at), then two zero words. The unwind expression
/// uses no branches (Valgrind's reader takes none), so every address it
/// reads must be readable: a null `link` becomes the address of the area's
/// second word, a record whose resumer (the third word) is null, and the
/// area itself stands in for a null resumer, its state byte (the fourth
/// word) 0, never `SUSPENDED`. Returns the top to build the initial frame
/// under.
///
/// # Safety
/// As for [`init_stack`].
#[inline]
unsafe fn write_link(stack_top: *mut u8, link: *const u8) -> *mut u8 {
    debug_assert_eq!(stack_top as usize % 16, 0, "stack top must be 16-aligned");
    const _: () = assert!(link::STATE == link::WORDS_BYTES - std::mem::size_of::<usize>());
    let top = stack_top.wrapping_sub(link::WORDS_BYTES).cast::<usize>();
    let link = if link.is_null() {
        top.wrapping_add(1) as usize
    } else {
        link as usize
    };
    // SAFETY: the caller owns the memory below stack_top; the four words lie
    // in it, aligned (the top is 16-aligned).
    unsafe {
        top.write(link);
        top.add(1).write(0);
        top.add(2).write(0);
        top.add(3).write(0);
    }
    top.cast()
}

/// What the OS must be told about a stack while it runs, on Windows: the TEB
/// fields that the switch loads with the stack (asm/x86_64_windows.S).
#[cfg(windows)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackBounds {
    /// `StackBase`: the stack's exclusive top.
    pub(crate) base: usize,
    /// `StackLimit`: its lowest committed byte.
    pub(crate) limit: usize,
    /// `DeallocationStack`: the start of its reservation, guard included.
    pub(crate) deallocation: usize,
}

/// [`init_stack`] for a stack that the OS must know while it runs (Windows):
/// the frame also carries `bounds`, which the first switch to it loads into
/// the thread's TEB, so that the OS grows the stack, raises its overflow and
/// accepts its frames when it dispatches an exception.
///
/// # Safety
/// As for [`init_stack`]; `bounds` must describe the stack `stack_top` lies
/// in.
#[cfg(windows)]
#[inline]
pub(crate) unsafe fn init_stack_with_bounds(
    stack_top: *mut u8,
    entry: EntryFn,
    arg: usize,
    link: *const u8,
    bounds: &StackBounds,
) -> *mut u8 {
    // SAFETY: forwarded.
    let top = unsafe { write_link(stack_top, link) };
    // SAFETY: as in init_stack; the routine also reads the three words at
    // `bounds`.
    unsafe { ffi::init_windows(top, entry as usize, arg, bounds) }
}

#[cfg(test)]
mod abi_test;
pub(crate) mod bare;
pub(crate) mod debug_frame;
