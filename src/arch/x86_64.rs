//! The `asm!` call sites of the x86_64 switch (`asm/x86_64.S`), System V.
//!
//! Each site hands the three transfer words over in rdi, rsi, rdx (and gets
//! the resumed side's back in the same registers), the save slot in r8 and
//! the stack pointer to resume in r9, and declares clobbered
//! everything else `asm!` can name: `clobber_abi("C")` (rax, rcx, rdx, rsi,
//! rdi, r8-r11, every vector and x87 register) and r12-r15. rbx and rbp
//! cannot be named (LLVM keeps its base and frame pointers there), so the
//! `.S` saves those two. The compiler spills only what is live across the
//! switch, into its own frame, which stays on the suspended stack.
//!
//! Windows (`asm/x86_64_windows.S`) takes the same registers. There
//! `clobber_abi("C")` is Win64's, whose callee-saved registers are rbx, rbp,
//! rdi, rsi, r12-r15 and xmm6-xmm15: rdi and rsi are outputs here anyway,
//! r12-r15 are named on every OS, and xmm6-xmm15 are named on Windows only.
//! (rustc 1.95 already treats xmm6-xmm15 as clobbered by Win64's
//! `clobber_abi("C")`, since the upper halves of their ymm/zmm registers are
//! volatile there and asm! cannot clobber half a register: the functions
//! around a switch save them either way, as their disassembly shows. Naming
//! them keeps the contract from resting on that.) The `.S` saves rbx, rbp
//! and the four TEB fields that describe the running stack.

use super::{ffi, Transfer};

/// One switch site: `$enter` is the asm that enters the routine (a `call`,
/// or a push of the resume label and a `jmp`), `$clobbers` the callee-saved
/// registers declared clobbered beside `clobber_abi("C")`.
macro_rules! switch_site {
    // A dying context's last switch: never resumed, so nothing is declared
    // clobbered and nothing comes back. The trap after the resume label is
    // where a (forbidden) resumption would land.
    (for_good, $save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {
        std::arch::asm!(
            $($enter,)+
            "ud2",
            $name = sym $routine,
            in("rdi") $wa,
            in("rsi") $wb,
            in("rdx") $wc,
            in("r8") $save_sp,
            in("r9") $load_sp,
            options(noreturn),
        )
    };
    ($save_sp:expr, $load_sp:expr, [$wa:expr, $wb:expr, $wc:expr], [$($enter:literal),+], $name:ident = $routine:path,
     [$($clobbers:tt)*]) => {{
        let (a, b, c): (usize, usize, usize);
        #[cfg(not(windows))]
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("rdi") $wa => a,
            inout("rsi") $wb => b,
            inout("rdx") $wc => c,
            inout("r8") $save_sp => _,
            inout("r9") $load_sp => _,
            $($clobbers)*
            clobber_abi("C"),
        );
        // The same site with Win64's callee-saved vector registers declared
        // clobbered as well (asm! cannot take a cfg on one operand before
        // Rust 1.88, above this crate's rust-version).
        #[cfg(windows)]
        std::arch::asm!(
            $($enter,)+
            $name = sym $routine,
            inout("rdi") $wa => a,
            inout("rsi") $wb => b,
            inout("rdx") $wc => c,
            inout("r8") $save_sp => _,
            inout("r9") $load_sp => _,
            $($clobbers)*
            out("xmm6") _, out("xmm7") _, out("xmm8") _, out("xmm9") _, out("xmm10") _,
            out("xmm11") _, out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            clobber_abi("C"),
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
            save_sp, load_sp, [a, b, c],
            ["call {resume}"],
            resume = ffi::resume,
            [out("r12") _, out("r13") _, out("r14") _, out("r15") _,]
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
            ["lea rax, [rip + 2f]", "push rax", "jmp {yield_}", "2:"],
            yield_ = ffi::yield_,
            [out("r12") _, out("r13") _, out("r14") _, out("r15") _,]
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
    // SAFETY: as in `resume`; the pushed label is where the frame keeps the
    // resume address, and the routine's return lands on it or a later switch
    // jumps to it, with the stack pointer back where it was before the push.
    unsafe { yield_site!([] save_sp, load_sp, [a, b, c]) }
}

/// Test only: [`resume`] with r15 missing from the clobber list, for the ABI
/// test to prove that it notices a register the switch does not keep.
///
/// # Safety
/// As for [`resume`]; besides, the caller must not hold anything in r15.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn resume_forgetting_one(
    save_sp: *mut *mut u8,
    load_sp: *mut u8,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    // SAFETY: as in `resume`, for a caller that keeps nothing in r15 (the
    // ABI test's, whose probe checks exactly that register).
    unsafe {
        switch_site!(
            save_sp, load_sp, [a, b, c],
            ["call {resume}"],
            resume = ffi::resume,
            [out("r12") _, out("r13") _, out("r14") _,]
        )
    }
}

/// The register that [`resume_forgetting_one`] leaves out.
#[cfg(test)]
pub(crate) const FORGOTTEN_CLOBBER: &str = "r15";

freeze_pair_with!(reg, "mov {a}, [{p}]", "mov {b}, [{p} + 8]");
