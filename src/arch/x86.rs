//! The `asm!` call sites of the 32-bit x86 (i686) switch (`asm/x86.S`),
//! System V i386.
//!
//! `asm!` can name five general registers on x86-32: eax, ebx, ecx, edx and
//! edi (esi is LLVM's base pointer there and ebp the frame pointer; both are
//! saved by the `.S`). A switch needs five words in (three transfer words,
//! the save slot, the stack pointer to resume) and three out, so every one of
//! the five carries a word: the three transfer words go in eax, edx, ecx, the
//! save slot in ebx and the stack pointer to resume in edi. The received words
//! come out of eax, edx, ecx. Declared clobbered besides: `clobber_abi("C")` (eax, ecx,
//! edx, every x87, MMX and SSE register; i386 has no callee-saved FP register)
//! and, as inputs whose value is lost, ebx and edi. The compiler spills only
//! what is live across the switch, into its own frame (or keeps it in esi or
//! ebp, which the `.S` preserves), which stays on the suspended stack.
//!
//! i386 has no PC-relative addressing: the YIELD site gets its resume label's
//! address from a call to the next instruction and an add to the pushed word
//! (see the header of `asm/x86.S`).

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `call`,
/// or a push of the resume label and a `jmp`), `$load_sp` the operand (with
/// its comma) that binds the stack pointer to resume to edi, or nothing.
/// AT&T syntax: LLVM's Intel parser takes no label difference as an
/// immediate.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     inout("edi") $load_sp:expr => _,) => {
        std::arch::asm!(
            $($enter,)+
            "ud2",
            $name = sym $routine,
            in("eax") $wa,
            in("edx") $wb,
            in("ecx") $wc,
            in("ebx") $save_sp,
            in("edi") $load_sp,
            options(att_syntax, noreturn),
        )
    };
    ($save_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     $($load_sp:tt)*) => {{
        let (a, b, c): (usize, usize, usize);
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("eax") $wa => a,
            inout("edx") $wb => b,
            inout("ecx") $wc => c,
            inout("ebx") $save_sp => _,
            $($load_sp)*
            clobber_abi("C"),
            options(att_syntax),
        );
        Transfer::new(a, b, c)
    }};
}

/// Suspends the running context (its resume address is the return address of
/// the call) and resumes the one whose saved stack pointer is `load_sp`,
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
    // clobbered; the stack is aligned for the call (no `nostack`).
    unsafe {
        switch_site!(
            save_sp, [a, b, c],
            ["call {resume}"],
            resume = ffi::resume,
            inout("edi") load_sp => _,
        )
    }
}

/// The YIELD site: `[]` for a switch that comes back ([`yield_to`]),
/// `[for_good,]` for a dying context's last (`arch::yield_for_good`, which
/// expands it there: the `arch` module takes this module's macros).
macro_rules! yield_site {
    ([$($mode:tt)*] $save_sp:expr, $load_sp:expr, $words:tt) => {
        switch_site!(
            $($mode)* $save_sp, $words,
            ["call 3f", "3:", "addl $(2f - 3b), (%esp)", "jmp {yield_}", "2:"],
            yield_ = ffi::yield_,
            inout("edi") $load_sp => _,
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
    // SAFETY: as in `resume`; the word pushed by the call to the next
    // instruction, moved on to the label after the jmp, is where the frame
    // keeps the resume address, and the routine's return lands on it or a
    // later switch jumps to it, with the stack pointer back where it was
    // before the call.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with edi missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep. With
/// no register to spare, the stack pointer to resume travels in the save slot
/// (written here, overwritten by the routine) and the block loads it into edi
/// itself, behind the compiler's back.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in edi.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in edi (the
    // ABI test's, whose probe checks exactly that register); the save slot
    // is valid for writes, and the routine overwrites it with our stack
    // pointer before anyone reads it as one.
    unsafe {
        save_sp.write(load_sp);
        switch_site!(
            save_sp,
            [a, b, c],
            ["movl (%ebx), %edi", "call {resume}"],
            resume = ffi::resume,
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "edi";

freeze_pair_with!(reg, "mov {a}, [{p}]", "mov {b}, [{p} + 4]");
