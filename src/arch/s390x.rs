//! The `asm!` call sites of the s390x switch (`asm/s390x.S`), z/Architecture
//! ELF ABI.
//!
//! Each site hands the three transfer words over in r2, r3, r4 (and gets the
//! resumed side's back in the same registers), the save slot in r5 and the
//! stack pointer to resume in r1, and declares clobbered
//! everything else `asm!` can name: `clobber_abi("C")` (r0-r5, r14, f0-f7,
//! v0-v31, a2-a15, cc) and the callee-saved r6-r10, r12, r13 and f8-f15. r11
//! (the frame pointer) and r15 (the stack pointer) cannot be named, so the
//! `.S` saves r11 and stores r15; a0 and a1, the thread pointer, belong to
//! the thread. The compiler spills only what is live across the switch, into
//! its own frame, which stays on the suspended stack.

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `brasl`,
/// or r14 loaded with the resume label and a `jg`). Every callee-saved
/// register `asm!` can name is declared clobbered here, but f15, which comes
/// in `$f15`: the real sites pass it, the ABI test's forgetful one does not.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {
        std::arch::asm!(
            $($enter,)+
            "j .+2",
            $name = sym $routine,
            in("r2") $wa,
            in("r3") $wb,
            in("r4") $wc,
            in("r5") $save_sp,
            in("r1") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($f15:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("r2") $wa => a,
            inout("r3") $wb => b,
            inout("r4") $wc => c,
            inout("r5") $save_sp => _,
            inout("r1") $load_sp => _,
            out("r6") _, out("r7") _, out("r8") _, out("r9") _, out("r10") _,
            out("r12") _, out("r13") _,
            out("f8") _, out("f9") _, out("f10") _, out("f11") _,
            out("f12") _, out("f13") _, out("f14") _,
            $($f15)*
            clobber_abi("C"),
        );
        Transfer::new(a, b, c)
    }};
}

/// Suspends the running context (its resume address is the one `brasl`
/// leaves in r14) and resumes the one whose saved stack pointer is
/// `load_sp`, handing it the words `a`, `b`, `c`; returns what whoever resumes us hands us.
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
    // clobbered (r14 by clobber_abi); the stack below r15 is free for the
    // routine (no `nostack`).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["brasl %r14, {resume}"],
            resume = ffi::resume,
            [out("f15") _,]
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
            ["larl %r14, 2f", "jg {yield_}", "2:"],
            yield_ = ffi::yield_,
            [out("f15") _,]
        )
    };
}

/// The same switch through YIELD: for resuming the context whose [`resume`]
/// is still pending, so that YIELD's `br %r14` returns to what resume's
/// `brasl` called from.
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
    // SAFETY: as in `resume`; r14 holds the label after the jump, which the
    // routine stores as our resume address: its return lands there or a
    // later switch branches there, with r15 back where it was.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with f15 missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep. An FP
/// register, because compiled code saves the integer ones with one `stmg`
/// from the lowest it uses up to r15, which stores every register of that
/// range (the probe's functions save r6-r15 in debug and release builds,
/// even the one that leaves r6 out): a forgotten r6-r13 is saved anyway and
/// cannot show. FP registers are saved one by one.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in f15.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in f15 (the
    // ABI test's, whose probe checks exactly that register).
    unsafe {
        switch_site!(
            save_sp,
            load_sp,
            [a, b, c],
            ["brasl %r14, {resume}"],
            resume = ffi::resume,
            []
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "f15";

freeze_pair_with!(reg_addr, "lg {a}, 0({p})", "lg {b}, 8({p})");
