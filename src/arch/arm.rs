//! The `asm!` call sites of the 32-bit ARM switch (`asm/arm.S`), AAPCS with
//! the VFP variant.
//!
//! Each site hands the three transfer words over in r0, r1, r2 (and gets the
//! resumed side's back in the same registers), the save slot in r3 and the
//! stack pointer to resume in r4 (not r12, which a linker
//! veneer may corrupt on the way: `asm/arm.S` says more), and declares clobbered
//! everything else `asm!` can name whatever the instruction set of the code
//! around it: `clobber_abi("C")` (r0-r3, r12, lr, d0-d7, d16-d31), r5, r8,
//! r9, r10 and d8-d15. r6 (LLVM's base pointer) and the frame pointer (r11
//! in A32 code, r7 in Thumb code) cannot be named, and one site text serves
//! both states, so the `.S` saves all three. The compiler spills only
//! what is live across the switch, into its own frame, which stays on the
//! suspended stack.
//!
//! Rust's `armv7-unknown-linux-gnueabihf` emits A32 code; the thumbv7 targets
//! (and `-C target-feature=+thumb-mode`) emit Thumb code, whose resume label
//! needs bit 0 set. `cfg(target_feature = "thumb-mode")` is not available on
//! stable Rust, so the YIELD site asks the assembler instead (see
//! [`yield_to`]).

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `bl`, or
/// the resume label into lr and a `b`), `$clobbers` the callee-saved registers
/// declared clobbered beside `clobber_abi("C")`.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {
        std::arch::asm!(
            $($enter,)+
            "udf #0",
            $name = sym $routine,
            in("r0") $wa,
            in("r1") $wb,
            in("r2") $wc,
            in("r3") $save_sp,
            in("r4") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("r0") $wa => a,
            inout("r1") $wb => b,
            inout("r2") $wc => c,
            inout("r3") $save_sp => _,
            inout("r4") $load_sp => _,
            $($clobbers)*
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            clobber_abi("C"),
        );
        Transfer::new(a, b, c)
    }};
}

/// Suspends the running context (its resume address is the return address of
/// the `bl`) and resumes the one whose saved stack pointer is `load_sp`,
/// handing it the words `a`, `b`, `c`; returns what whoever resumes us hands us.
///
/// # Safety
/// * `save_sp` must be valid for a write of one pointer and must still be the
///   place the resumer reads our stack pointer from.
/// * `load_sp` must be a stack pointer stored by a switch for a context that
///   is suspended and has not been resumed since, or a frame made by
///   [`init`] that has not been resumed yet.
/// * Nothing may unwind across this call.
#[inline(always)]
pub(crate) unsafe fn resume(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: per the contract above, which is what the routine needs: a
    // writable save slot and a valid frame to resume. Every
    // register the routine or the resumed side may change is an output or
    // clobbered; the stack is aligned for the call (no `nostack`). `bl` sets
    // lr, with bit 0 for Thumb code, to the return address.
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("r5") _, out("r8") _, out("r9") _, out("r10") _,]
        )
    }
}

/// The YIELD site: `[]` for a switch that comes back ([`yield_to`]),
/// `[for_good,]` for a dying context's last (`arch::yield_for_good`, which
/// expands it there: the `arch` module takes this module's macros).
macro_rules! yield_site {
    ([$($mode:tt)*] $save_sp:expr, $load_sp:expr, $words:tt) => {
        switch_site!(
            $($mode)* $save_sp, $load_sp, $words,
            [
                ".pushsection .greenlet.isa_probe, \"\", %progbits",
                "3: nop",
                "4:",
                ".popsection",
                "adr lr, 2f",
                ".if 4b - 3b == 2",
                "orr lr, lr, #1",
                ".endif",
                "b {yield_}",
                "2:"
            ],
            yield_ = ffi::yield_,
            [out("r5") _, out("r8") _, out("r9") _, out("r10") _,]
        )
    };
}

/// The same switch through YIELD: for resuming the context whose [`resume`]
/// is still pending, so that YIELD's `bx lr` pops the entry that resume's
/// `bl` pushed on the return-address predictor.
///
/// The resume label goes into lr by `adr`, which gives its address with bit
/// 0 clear in either state; Thumb code must set it, or the resumed side's
/// `bx` would enter the label in A32 state. The site finds out which state it
/// is assembled in by measuring a `nop` in a section of its own that is never
/// loaded (not allocated, never executed): the assembler encodes it in 2
/// bytes in Thumb state and in 4 in A32 state, and `.if` then adds the
/// `orr lr, lr, #1` in Thumb code only. The check costs no instruction.
///
/// # Safety
/// As for [`resume`].
#[inline(always)]
pub(crate) unsafe fn yield_to(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`; lr holds the label after the `b`, with the
    // state bit of this code, which is where YIELD stores the resume
    // address: the routine's `bx lr` lands on it, or a later switch's `bx`
    // does, with sp back where it was.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with r10 missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in r10.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in r10 (the
    // ABI test's, whose probe checks exactly that register).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("r5") _, out("r8") _, out("r9") _,]
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "r10";

freeze_pair_with!(reg, "ldr {a}, [{p}]", "ldr {b}, [{p}, #4]");
