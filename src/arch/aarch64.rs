//! The `asm!` call sites of the aarch64 switch (`asm/aarch64.S`), AAPCS64, for
//! Linux and Apple targets alike.
//!
//! Each site hands the three transfer words over in x0, x1, x2 (and gets the
//! resumed side's back in the same registers), the save slot in x3 and the
//! stack pointer to resume in x4, and declares clobbered
//! everything else `asm!` can name: `clobber_abi("C")` (x0-x17, x18 where the
//! target does not reserve it, x30, all of v0-v31, since only the low halves
//! of v8-v15 are callee-saved, p0-p15, ffr) and x20-x28. x19 (LLVM's base
//! pointer) and x29 (the frame pointer) cannot be named, so the `.S` saves
//! those two; x18 is never named here nor touched there (the platform's
//! register on Apple targets). The compiler spills only what is live across
//! the switch, into its own frame, which stays on the suspended stack.
//!
//! RESUME is entered by `bl`, which leaves the resume address in x30; the
//! YIELD site puts its own resume label there with `adr` and enters by `b`.

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (`bl`, or
/// `adr x30` of the resume label and `b`), `$clobbers` what it declares
/// clobbered besides its operands.
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
            in("x0") $wa,
            in("x1") $wb,
            in("x2") $wc,
            in("x3") $save_sp,
            in("x4") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("x0") $wa => a,
            inout("x1") $wb => b,
            inout("x2") $wc => c,
            inout("x3") $save_sp => _,
            inout("x4") $load_sp => _,
            $($clobbers)*
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
    // clobbered; the stack is 16-aligned for the call (no `nostack`).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["bl {resume}"],
            resume = ffi::resume,
            [out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
             out("x25") _, out("x26") _, out("x27") _, out("x28") _, clobber_abi("C"),]
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
            ["adr x30, 2f", "b {yield_}", "2:"],
            yield_ = ffi::yield_,
            [out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
             out("x25") _, out("x26") _, out("x27") _, out("x28") _, clobber_abi("C"),]
        )
    };
}

/// The same switch through YIELD: for resuming the context whose [`resume`]
/// is still pending, so that YIELD's `ret` pops the entry that resume's `bl`
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
    // SAFETY: as in `resume`; x30 (clobbered) holds the label after the
    // branch, which the routine stores as our resume address: its `ret`, or
    // a later switch's `br`, lands there with sp as it was.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with d15 (v15) missing from the clobber list, for
/// the ABI test to prove that it notices a register the switch does not keep.
///
/// A vector register, spelt out without `clobber_abi("C")` (which names all
/// of v0-v31), because a forgotten *integer* register goes unnoticed in a
/// debug build: LLVM gives an aarch64 function whose frame exceeds 255 bytes
/// (the ABI test's probe body, unoptimised) one callee-saved integer
/// register more than it uses, as a scratch register for large offsets, and
/// picks the last unused one of x19-x28, which is then exactly the forgotten
/// one: saved by the prologue, restored by the epilogue, nothing lost. It
/// never adds an FP register. The list below is `clobber_abi("C")` less v15:
/// x5-x17 (x0-x4 are operands), x18 where the target does not reserve it,
/// x30, v0-v14, v16-v31; not the SVE predicates, which no code uses without
/// the `sve` target feature. On Apple targets LLVM saves callee-saved
/// registers in pairs for compact unwind, d15 with d14 (which this site does
/// clobber): there this case would see nothing lost, the one place the
/// negative case cannot work as written (macOS is not run here, SPEC §8).
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in d15.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    macro_rules! forgetting_site {
        ($($x18:tt)*) => {
            switch_site!(
                save_sp, load_sp, [a, b, c],
                ["bl {resume}"],
                resume = ffi::resume,
                [out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                 out("x15") _, out("x16") _, out("x17") _, $($x18)* out("x30") _,
                 out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
                 out("x25") _, out("x26") _, out("x27") _, out("x28") _,
                 out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
                 out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _,
                 out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
                 out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _,
                 out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _,
                 out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _,
                 out("v31") _,]
            )
        };
    }
    // SAFETY: as in `resume`, for a caller that keeps nothing in d15 (the
    // ABI test's, whose probe checks exactly that register); every other
    // register `clobber_abi("C")` names is declared clobbered.
    unsafe {
        #[cfg(not(any(
            target_vendor = "apple",
            target_os = "windows",
            target_os = "android",
            target_os = "fuchsia"
        )))]
        let got = forgetting_site!(out("x18") _,);
        #[cfg(any(
            target_vendor = "apple",
            target_os = "windows",
            target_os = "android",
            target_os = "fuchsia"
        ))]
        let got = forgetting_site!();
        got
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "d15";

freeze_pair_with!(reg, "ldp {a}, {b}, [{p}]");
