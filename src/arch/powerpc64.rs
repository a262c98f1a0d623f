//! The `asm!` call sites of the powerpc64le switch (`asm/powerpc64.S`), ELFv2.
//!
//! Each site hands the three transfer words over in r3, r4, r5 (and gets the
//! resumed side's back in the same registers), the save slot in r6 and the
//! stack pointer to resume in r7, and declares clobbered
//! everything else `asm!` can name: `clobber_abi("C")` (r0, r3-r12, vs0-vs31,
//! v0-v19, cr0, cr1, cr5-cr7, ctr, lr, xer) and the callee-saved r14-r29,
//! f14-f31, v20-v31 and cr2-cr4. r2 (the TOC), r30 (LLVM's base pointer) and
//! r31 (the frame pointer) cannot be named, so the `.S` saves those three;
//! r13, the thread pointer, belongs to the thread. The compiler spills only
//! what is live across the switch, into its own frame, which stays on the
//! suspended stack.

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `bl`, or
/// LR set to the resume label and a `b`). Every callee-saved register `asm!`
/// can name is declared clobbered here, but r29, which comes in `$r29`: the
/// real sites pass it, the ABI test's forgetful one does not.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {
        std::arch::asm!(
            $($enter,)+
            "trap",
            $name = sym $routine,
            in("r3") $wa,
            in("r4") $wb,
            in("r5") $wc,
            in("r6") $save_sp,
            in("r7") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($r29:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("r3") $wa => a,
            inout("r4") $wb => b,
            inout("r5") $wc => c,
            inout("r6") $save_sp => _,
            inout("r7") $load_sp => _,
            out("r14") _, out("r15") _, out("r16") _, out("r17") _, out("r18") _,
            out("r19") _, out("r20") _, out("r21") _, out("r22") _, out("r23") _,
            out("r24") _, out("r25") _, out("r26") _, out("r27") _, out("r28") _,
            $($r29)*
            out("f14") _, out("f15") _, out("f16") _, out("f17") _, out("f18") _,
            out("f19") _, out("f20") _, out("f21") _, out("f22") _, out("f23") _,
            out("f24") _, out("f25") _, out("f26") _, out("f27") _, out("f28") _,
            out("f29") _, out("f30") _, out("f31") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _,
            out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            out("cr2") _, out("cr3") _, out("cr4") _,
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
    // clobbered (lr and ctr by clobber_abi); the stack below r1 is free and
    // r1 aligned for the routine (no `nostack`).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("r29") _,]
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
                "bcl 20, 31, 2f",
                "2: mflr %r12",
                "addi %r12, %r12, 3f - 2b",
                "mtlr %r12",
                "b {yield_}",
                "3:"
            ],
            yield_ = ffi::yield_,
            [out("r29") _,]
        )
    };
}

/// The same switch through YIELD: for resuming the context whose [`resume`]
/// is still pending, so that YIELD's `blr` pops the link-stack entry that
/// resume's `bl` pushed. LR is loaded with the resume label by `bcl 20,31,$+4`
/// (which the link stack ignores), `mflr` and an offset.
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
    // SAFETY: as in `resume`; LR holds the label after the branch, which the
    // routine stores as our resume address: its `blr` lands there or a later
    // switch branches there, with r1 back where it was.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with r29 missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in r29.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in r29 (the
    // ABI test's, whose probe checks exactly that register).
    unsafe {
        switch_site!(
            save_sp,
            load_sp,
            [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            []
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "r29";

freeze_pair_with!(reg_nonzero, "ld {a}, 0({p})", "ld {b}, 8({p})");
