//! ABI test: every callee-saved register, integer and floating point, and the
//! floating-point control state survive a switch, on each CPU family,
//! whichever entry each side uses.
//!
//! Since the switch's `.S` saves only what `asm!` cannot name, and the call
//! site declares everything else clobbered, what is tested is the pair: the
//! routine and the clobber list of the real call site (`arch::resume`,
//! `arch::yield_to`), which the compiler must honour by saving what the
//! caller holds. Assembly drives both sides, so that no register is left to
//! chance:
//!
//! ```text
//!   probe (asm, main stack)                 clobber (asm, fresh stack)
//!   save caller's registers
//!   load pattern A into every
//!     callee-saved register + FP control
//!   call probe_body (Rust):
//!     one switch, RESUME or YIELD --------> load pattern B into the same
//!                                           registers, call clobber_body (Rust):
//!                                             one switch, RESUME or YIELD
//!   <-------------------------------------
//!   (probe_body returns)
//!   store every register to `out`
//!   restore caller's registers
//! ```
//!
//! Any register that neither the routine saves nor the call site declares
//! comes back holding pattern B (or whatever the clobber side's Rust code left
//! there). A call site with one register left out of its clobber list
//! (`arch::resume_forgetting_one`) proves the probe notices. The FP control
//! state shows what each build keeps per greenlet: with `fp-control` the
//! probe's control bits come back, without it the clobber's (the state
//! belongs to the thread).
//!
//! One file per CPU family holds its probe and clobber, and names what the
//! probe stores into `out`, in order: `INT_REGS` (each loaded with
//! `a_int(k)`), `FP_REGS` (`a_fp(k)`; a 128-bit vector register takes two
//! slots), one slot of FP control state (`EXPECTED_FP_CONTROL`), then
//! `OTHER_STATE`, callee-saved state that is neither (powerpc64's CR fields),
//! each with the value the probe must find.

use crate::arch;
use crate::arch::bare::ScratchStack;

/// The name a `global_asm!` probe defines for a symbol that Rust declares as
/// `name`: Mach-O puts a `_` in front of C names (rustc adds it to the names
/// it declares, but not to the labels an assembly block writes).
#[cfg(target_vendor = "apple")]
macro_rules! c_symbol {
    ($name:literal) => {
        concat!("_", $name)
    };
}
/// See the Apple version: ELF names are as written.
#[cfg(not(target_vendor = "apple"))]
#[allow(unused_macros)] // the Win64 probe names its symbols itself
macro_rules! c_symbol {
    ($name:literal) => {
        $name
    };
}

#[cfg_attr(all(target_arch = "x86_64", not(windows)), path = "x86_64.rs")]
#[cfg_attr(all(target_arch = "x86_64", windows), path = "x86_64_windows.rs")]
#[cfg_attr(target_arch = "x86", path = "x86.rs")]
#[cfg_attr(target_arch = "aarch64", path = "aarch64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "riscv64.rs")]
#[cfg_attr(target_arch = "s390x", path = "s390x.rs")]
#[cfg_attr(target_arch = "arm", path = "arm.rs")]
#[cfg_attr(target_arch = "powerpc64", path = "powerpc64.rs")]
#[cfg_attr(target_arch = "loongarch64", path = "loongarch64.rs")]
mod probe;
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod x86_fp_control;

extern "C" {
    /// Saves the caller's callee-saved state, loads pattern A into it, calls
    /// `body(ctx)`, stores every register to `out`, restores, returns.
    fn greenlet_abi_probe(body: unsafe extern "C" fn(*mut Ctx), ctx: *mut Ctx, out: *mut u64);
    /// Loads pattern B into every callee-saved register, then calls
    /// `body(ctx)`, which never returns.
    fn greenlet_abi_clobber(body: unsafe extern "C" fn(*mut Ctx) -> !, ctx: *mut Ctx) -> !;
}

/// Pattern the probe loads into the k-th integer register, cut to the
/// machine word: on 32-bit CPUs it is `0x0k0k0k0k`, which the probe stores
/// zero-extended into its 64-bit slot.
fn a_int(k: usize) -> u64 {
    let k = k as u64 + 1;
    let pattern = 0x5EED_0000_0000_0000 | (k << 32) | (0x0101_0101 * k);
    pattern & (usize::MAX as u64)
}

/// Pattern the probe loads into the k-th floating-point register.
fn a_fp(k: usize) -> u64 {
    0x3FF0_0000_0000_0000 + (k as u64 + 1) * 0x1111
}

/// Which call site a side switches with.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
enum Entry {
    Resume,
    Yield,
    ResumeForgettingOne,
}

/// Both stack pointers of the round trip and the entry the clobber side
/// switches back with (the assembly only passes its address on).
#[repr(C)]
struct Ctx {
    probe_sp: *mut u8,
    clobber_sp: *mut u8,
    back: Entry,
}

/// The probe's side of the switch, one function per call site: a function
/// that held more than one site would save, in its prologue, every register
/// any of them clobbers, and hide a site that forgets one.
macro_rules! probe_body {
    ($name:ident, $site:path) => {
        /// Called by the probe with pattern A in every callee-saved register:
        /// the switch to the clobber side, and the return once it is back.
        unsafe extern "C" fn $name(ctx: *mut Ctx) {
            // SAFETY: `ctx` outlives the round trip; `clobber_sp` is a fresh
            // initial frame, never resumed.
            unsafe { $site(&mut (*ctx).probe_sp, (*ctx).clobber_sp, 0, 0, 0) };
        }
    };
}
probe_body!(probe_by_resume, arch::resume);
probe_body!(probe_by_yield, arch::yield_to);
probe_body!(probe_forgetting_one, arch::resume_forgetting_one);

/// Called by the clobber with pattern B in every callee-saved register: the
/// switch back to the probe. Nothing resumes this side again.
unsafe extern "C" fn clobber_body(ctx: *mut Ctx) -> ! {
    // SAFETY: `ctx` outlives the round trip; the probe's stack pointer was
    // stored by the switch that started us, and it has not been resumed since.
    unsafe {
        match (*ctx).back {
            Entry::Resume => arch::resume(&mut (*ctx).clobber_sp, (*ctx).probe_sp, 0, 0, 0),
            Entry::Yield => arch::yield_to(&mut (*ctx).clobber_sp, (*ctx).probe_sp, 0, 0, 0),
            Entry::ResumeForgettingOne => unreachable!("only the probe forgets"),
        }
    };
    unreachable!("the ABI test's clobber side is never resumed")
}

unsafe extern "C" fn clobber_entry(_: usize, _: usize, _: usize, ctx: usize) -> ! {
    // SAFETY: `ctx` is the round trip's, alive until the probe returns.
    unsafe { greenlet_abi_clobber(clobber_body, ctx as *mut Ctx) }
}

/// Runs probe -> clobber -> probe, switching there and back with the entries
/// given, and returns what the probe saw.
fn round_trip(there: Entry, back: Entry) -> Vec<u64> {
    let mut stack = ScratchStack::new(64 * 1024);
    let mut ctx = Box::new(Ctx {
        probe_sp: std::ptr::null_mut(),
        clobber_sp: std::ptr::null_mut(),
        back,
    });
    let body = match there {
        Entry::Resume => probe_by_resume,
        Entry::Yield => probe_by_yield,
        Entry::ResumeForgettingOne => probe_forgetting_one,
    };
    let ctx_ptr: *mut Ctx = &mut *ctx;
    // SAFETY: the stack is ours, fresh and 16-aligned at the top.
    ctx.clobber_sp = unsafe {
        arch::init_stack(
            stack.top(),
            clobber_entry,
            ctx_ptr as usize,
            std::ptr::null(),
        )
    };
    let mut out =
        vec![0u64; probe::INT_REGS.len() + probe::FP_REGS.len() + 1 + probe::OTHER_STATE.len()];
    // SAFETY: the clobber side switches straight back to the probe and is
    // never resumed again (its stack is simply freed afterwards); `out` has
    // room for every register the probe stores.
    unsafe { greenlet_abi_probe(body, ctx_ptr, out.as_mut_ptr()) };
    drop(stack);
    out
}

/// Names of the registers whose value differs from the pattern loaded before.
fn mismatches(out: &[u64]) -> Vec<String> {
    let ints = probe::INT_REGS.len();
    let fps = probe::FP_REGS.len();
    let mut bad = Vec::new();
    for (k, name) in probe::INT_REGS.iter().enumerate() {
        if out[k] != a_int(k) {
            bad.push(format!(
                "{name}: expected {:#x}, got {:#x}",
                a_int(k),
                out[k]
            ));
        }
    }
    for (k, name) in probe::FP_REGS.iter().enumerate() {
        if out[ints + k] != a_fp(k) {
            bad.push(format!(
                "{name}: expected {:#x}, got {:#x}",
                a_fp(k),
                out[ints + k]
            ));
        }
    }
    let control = out[ints + fps];
    if control != probe::EXPECTED_FP_CONTROL {
        bad.push(format!(
            "FP control: expected {:#x}, got {control:#x}",
            probe::EXPECTED_FP_CONTROL
        ));
    }
    for (k, (name, expected)) in probe::OTHER_STATE.iter().enumerate() {
        let got = out[ints + fps + 1 + k];
        if got != *expected {
            bad.push(format!("{name}: expected {expected:#x}, got {got:#x}"));
        }
    }
    bad
}

const PAIRS: [(Entry, Entry); 4] = [
    (Entry::Resume, Entry::Yield),
    (Entry::Resume, Entry::Resume),
    (Entry::Yield, Entry::Resume),
    (Entry::Yield, Entry::Yield),
];

#[test]
fn every_callee_saved_register_survives_a_switch() {
    for (there, back) in PAIRS {
        let bad = mismatches(&round_trip(there, back));
        assert!(
            bad.is_empty(),
            "registers not preserved by a switch there by {there:?}, back by {back:?}:\n{}",
            bad.join("\n")
        );
    }
}

#[test]
fn the_probe_catches_a_call_site_that_forgets_one_register() {
    let forgotten = arch::FORGOTTEN_CLOBBER;
    let bad = mismatches(&round_trip(Entry::ResumeForgettingOne, Entry::Yield));
    assert_eq!(
        bad.len(),
        1,
        "expected exactly {forgotten} to be lost, got: {bad:?}"
    );
    assert!(
        bad[0].starts_with(forgotten),
        "expected {forgotten} to be lost, got: {bad:?}"
    );
}

#[test]
fn round_trips_repeat_on_fresh_stacks() {
    for _ in 0..50 {
        for (there, back) in PAIRS {
            assert!(mismatches(&round_trip(there, back)).is_empty());
        }
    }
}
