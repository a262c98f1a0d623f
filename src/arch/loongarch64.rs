//! The `asm!` call sites of the loongarch64 switch (`asm/loongarch64.S`),
//! LP64D.
//!
//! Each site hands the three transfer words over in a0, a1, a2 (and gets the
//! resumed side's back in the same registers), the save slot in a3 and the
//! stack pointer to resume in a4, and declares clobbered
//! everything else `asm!` can name: `clobber_abi("C")` (ra, a0-a7, t0-t8,
//! fa0-fa7, ft0-ft15), s0-s7 and fs0-fs7. fp (r22) and s8 (r31) cannot be
//! named (LLVM keeps its frame and base pointers there), so the `.S` saves
//! those two with the resume address; tp and r21 cannot be named either, but
//! no switch changes them (the thread's, and reserved by the psABI).
//! The compiler spills only what is live across the switch, into its own
//! frame, which stays on the suspended stack.

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `call`,
/// or a load of the resume label into ra and a branch), `$clobbers` the
/// callee-saved registers declared clobbered beside `clobber_abi("C")`.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {
        std::arch::asm!(
            $($enter,)+
            "break 0",
            $name = sym $routine,
            in("$a0") $wa,
            in("$a1") $wb,
            in("$a2") $wc,
            in("$a3") $save_sp,
            in("$a4") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("$a0") $wa => a,
            inout("$a1") $wb => b,
            inout("$a2") $wc => c,
            inout("$a3") $save_sp => _,
            inout("$a4") $load_sp => _,
            $($clobbers)*
            clobber_abi("C"),
        );
        Transfer::new(a, b, c)
    }};
}

/// Suspends the running context (its resume address is the return address
/// `bl` leaves in ra, which the routine stores) and resumes the one whose
/// saved stack pointer is `load_sp`, handing it the words `a`, `b`, `c`; returns what whoever
/// resumes us hands us.
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
    // clobbered; the stack is aligned for the routine's frame (no `nostack`).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("$s0") _, out("$s1") _, out("$s2") _, out("$s3") _,
             out("$s4") _, out("$s5") _, out("$s6") _, out("$s7") _,
             out("$fs0") _, out("$fs1") _, out("$fs2") _, out("$fs3") _,
             out("$fs4") _, out("$fs5") _, out("$fs6") _, out("$fs7") _,]
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
            ["pcaddi $ra, 2", "b {yield_}", "2:"],
            yield_ = ffi::yield_,
            [out("$s0") _, out("$s1") _, out("$s2") _, out("$s3") _,
             out("$s4") _, out("$s5") _, out("$s6") _, out("$s7") _,
             out("$fs0") _, out("$fs1") _, out("$fs2") _, out("$fs3") _,
             out("$fs4") _, out("$fs5") _, out("$fs6") _, out("$fs7") _,]
        )
    };
}

/// The same switch through YIELD: for resuming the context whose [`resume`]
/// is still pending, so that YIELD's return pops the entry that resume's call
/// pushed on the return-address predictor.
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
    // SAFETY: as in `resume`; ra holds the label after the branch (pcaddi:
    // pc + 2 instructions), which the routine stores where the frame keeps
    // the resume address, and its return lands on it or a later switch jumps
    // to it, with sp unchanged. `b` links nothing: no predictor push.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with s7 missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in s7.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in s7 (the
    // ABI test's, whose probe checks exactly that register).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("$s0") _, out("$s1") _, out("$s2") _, out("$s3") _,
             out("$s4") _, out("$s5") _, out("$s6") _,
             out("$fs0") _, out("$fs1") _, out("$fs2") _, out("$fs3") _,
             out("$fs4") _, out("$fs5") _, out("$fs6") _, out("$fs7") _,]
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "s7";

freeze_pair_with!(reg, "ld.d {a}, {p}, 0", "ld.d {b}, {p}, 8");
