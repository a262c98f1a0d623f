//! ABI test: every callee-saved register, integer and floating point, and the
//! floating-point control state survive a switch, on each CPU family.
//!
//! Compiled Rust code between two switches could mask an unsaved register (it
//! saves what it uses), so this test drives the raw switch routine from
//! assembly on both sides:
//!
//! ```text
//!   probe (main stack)                      clobber (fresh greenlet stack)
//!   save caller's registers
//!   load pattern A into every
//!     callee-saved register + FP control
//!   switch ------------------------------>  load pattern B into the same registers
//!                                           switch back
//!   <-------------------------------------
//!   store every register to `out`
//!   restore caller's registers
//! ```
//!
//! Any register the switch fails to save and restore comes back holding pattern
//! B. A deliberately broken switch (the real one, with one register corrupted
//! on the way back) proves the probe notices. The FP control state shows what
//! each build keeps per greenlet: with `fp-control` the probe's control bits
//! come back, without it the clobber's (the state belongs to the thread).
//!
//! One file per CPU family holds its probe, clobber and broken switch, and
//! names what the probe stores into `out`, in order: `INT_REGS` (each loaded
//! with `a_int(k)`), `FP_REGS` (`a_fp(k)`; a 128-bit vector register takes two
//! slots), one slot of FP control state (`EXPECTED_FP_CONTROL`), then
//! `OTHER_STATE`, callee-saved state that is neither (powerpc64's CR fields),
//! each with the value the probe must find.

use crate::arch::bare::ScratchStack;
use crate::arch::{self, SwitchFn};

#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
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
    fn greenlet_abi_probe(switch: SwitchFn, save: *mut *mut u8, load: *mut u8, out: *mut u64);
    fn greenlet_abi_clobber(switch: SwitchFn, save: *mut *mut u8, probe_sp: *const *mut u8) -> !;
    fn greenlet_abi_bad_switch(save: *mut *mut u8, load: *mut u8, transfer: usize) -> usize;
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

/// Both stack pointers of the round trip; the clobber side reads the probe's.
struct Ctx {
    probe_sp: *mut u8,
    clobber_sp: *mut u8,
    switch: SwitchFn,
}

unsafe extern "C" fn clobber_entry(_transfer: usize, arg: usize) -> ! {
    let ctx = arg as *mut Ctx;
    // SAFETY: `ctx` outlives the round trip (the probe holds it); the probe's
    // stack pointer has been stored by the time this runs, since the probe
    // switched here.
    unsafe { greenlet_abi_clobber((*ctx).switch, &mut (*ctx).clobber_sp, &(*ctx).probe_sp) }
}

/// Runs probe -> clobber -> probe with `switch` and returns what the probe saw.
fn round_trip(switch: SwitchFn) -> Vec<u64> {
    let mut stack = ScratchStack::new(64 * 1024);
    let mut ctx = Box::new(Ctx {
        probe_sp: std::ptr::null_mut(),
        clobber_sp: std::ptr::null_mut(),
        switch,
    });
    let ctx_ptr: *mut Ctx = &mut *ctx;
    // SAFETY: the stack is ours, fresh and 16-aligned at the top.
    let start = unsafe { arch::init_stack(stack.top(), clobber_entry, ctx_ptr as usize) };
    let mut out =
        vec![0u64; probe::INT_REGS.len() + probe::FP_REGS.len() + 1 + probe::OTHER_STATE.len()];
    // SAFETY: `start` is an initial frame never resumed; the clobber side
    // switches straight back to the probe's saved stack pointer and is never
    // resumed again (its stack is simply unmapped afterwards); `out` has room
    // for every register the probe stores.
    unsafe { greenlet_abi_probe(switch, &mut (*ctx_ptr).probe_sp, start, out.as_mut_ptr()) };
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

#[test]
fn every_callee_saved_register_survives_a_switch() {
    let out = round_trip(arch::switch_fn());
    let bad = mismatches(&out);
    assert!(
        bad.is_empty(),
        "registers not preserved by the switch:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_probe_catches_a_switch_that_forgets_one_register() {
    let out = round_trip(greenlet_abi_bad_switch);
    let bad = mismatches(&out);
    let forgotten = probe::FORGOTTEN;
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
        assert!(mismatches(&round_trip(arch::switch_fn())).is_empty());
    }
}
