//! 32-bit ARM (AAPCS, VFP variant): r4-r11, d8-d15; FPSCR's control bits
//! under `fp-control`, its status bits (flags, QC, NZCV) always the thread's.
//!
//! The probe and the clobber are Thumb code, while the Rust code between
//! them (the call sites) is A32 and the switch is A32 code too, so every round
//! trip here also crosses states. A Thumb entry function started by the
//! trampoline, switching from Thumb code through both entries, is checked on
//! its own below.

use crate::arch::bare::ScratchStack;
use crate::arch::{self, Transfer};

/// Callee-saved registers in the order the probe stores them, each 32-bit
/// value zero-extended into its 64-bit slot. lr is the return address and sp
/// the stack pointer: the probe returning at all proves both.
pub const INT_REGS: &[&str] = &["r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"];
pub const FP_REGS: &[&str] = &["d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15"];
/// FPSCR status bits: N Z C V QC (31-27), IDC (7), IXC UFC OFC DZC IOC (4-0).
const FPSCR_STATUS: u64 = 0xF800_009F;
/// The probe's FPSCR: round toward zero, flush-to-zero, default NaN, no flag.
const A_FPSCR: u64 = 0x03C0_0000;
/// The clobber's FPSCR: round toward minus infinity, the inexact flag and N.
const B_FPSCR: u64 = 0x8080_0010;
/// What the probe must see after the round trip. With `fp-control` the
/// control bits are the probe's own and the status bits the thread's (the
/// clobber set some); without it all of FPSCR is the thread's, so the
/// clobber's value comes back.
pub const EXPECTED_FP_CONTROL: u64 = if cfg!(feature = "fp-control") {
    (A_FPSCR & !FPSCR_STATUS) | (B_FPSCR & FPSCR_STATUS)
} else {
    B_FPSCR
};
/// No callee-saved state beside the integer and FP registers.
pub const OTHER_STATE: &[(&str, u64)] = &[];

std::arch::global_asm!(
    ".syntax unified",
    ".text",
    ".thumb",
    ".globl greenlet_abi_probe",
    ".type greenlet_abi_probe, %function",
    ".thumb_func",
    ".p2align 2",
    "greenlet_abi_probe:",
    // r0 = body, r1 = ctx, r2 = out
    "push {{r4-r11, lr}}",
    "vpush {{d8-d15}}",
    // [sp] = the caller's FPSCR, [sp + 4] = out; 112 bytes keep sp 8-aligned
    "sub sp, sp, #12",
    "vmrs r12, fpscr",
    "str r12, [sp]",
    "str r2, [sp, #4]",
    "movw r3, #0x1111",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d8, r3, lr",
    "movw r3, #0x2222",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d9, r3, lr",
    "movw r3, #0x3333",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d10, r3, lr",
    "movw r3, #0x4444",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d11, r3, lr",
    "movw r3, #0x5555",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d12, r3, lr",
    "movw r3, #0x6666",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d13, r3, lr",
    "movw r3, #0x7777",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d14, r3, lr",
    "movw r3, #0x8888",
    "movw lr, #0x0",
    "movt lr, #0x3ff0",
    "vmov d15, r3, lr",
    "movw r3, #0x0",
    "movt r3, #0x3c0",
    "vmsr fpscr, r3",
    "mov r12, r0",
    "mov r0, r1",
    "movw r4, #0x101",
    "movt r4, #0x101",
    "movw r5, #0x202",
    "movt r5, #0x202",
    "movw r6, #0x303",
    "movt r6, #0x303",
    "movw r7, #0x404",
    "movt r7, #0x404",
    "movw r8, #0x505",
    "movt r8, #0x505",
    "movw r9, #0x606",
    "movt r9, #0x606",
    "movw r10, #0x707",
    "movt r10, #0x707",
    "movw r11, #0x808",
    "movt r11, #0x808",
    "blx r12",
    "ldr r12, [sp, #4]",
    "movs r3, #0",
    "str r4, [r12, #0]",
    "str r3, [r12, #4]",
    "str r5, [r12, #8]",
    "str r3, [r12, #12]",
    "str r6, [r12, #16]",
    "str r3, [r12, #20]",
    "str r7, [r12, #24]",
    "str r3, [r12, #28]",
    "str r8, [r12, #32]",
    "str r3, [r12, #36]",
    "str r9, [r12, #40]",
    "str r3, [r12, #44]",
    "str r10, [r12, #48]",
    "str r3, [r12, #52]",
    "str r11, [r12, #56]",
    "str r3, [r12, #60]",
    "vstr d8, [r12, #64]",
    "vstr d9, [r12, #72]",
    "vstr d10, [r12, #80]",
    "vstr d11, [r12, #88]",
    "vstr d12, [r12, #96]",
    "vstr d13, [r12, #104]",
    "vstr d14, [r12, #112]",
    "vstr d15, [r12, #120]",
    "vmrs r2, fpscr",
    "str r2, [r12, #128]",
    "str r3, [r12, #132]",
    "ldr r3, [sp]",
    "vmsr fpscr, r3",
    "add sp, sp, #12",
    "vpop {{d8-d15}}",
    "pop {{r4-r11, lr}}",
    "bx lr",
    "",
    ".globl greenlet_abi_clobber",
    ".type greenlet_abi_clobber, %function",
    ".thumb_func",
    ".p2align 2",
    "greenlet_abi_clobber:",
    // r0 = body, r1 = ctx
    "mov r12, r0",
    "mov r0, r1",
    "movw r4, #0x101",
    "movt r4, #0xbad0",
    "movw r5, #0x202",
    "movt r5, #0xbad0",
    "movw r6, #0x303",
    "movt r6, #0xbad0",
    "movw r7, #0x404",
    "movt r7, #0xbad0",
    "movw r8, #0x505",
    "movt r8, #0xbad0",
    "movw r9, #0x606",
    "movt r9, #0xbad0",
    "movw r10, #0x707",
    "movt r10, #0xbad0",
    "movw r11, #0x808",
    "movt r11, #0xbad0",
    "movw r3, #0x1",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d8, r3, lr",
    "movw r3, #0x2",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d9, r3, lr",
    "movw r3, #0x3",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d10, r3, lr",
    "movw r3, #0x4",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d11, r3, lr",
    "movw r3, #0x5",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d12, r3, lr",
    "movw r3, #0x6",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d13, r3, lr",
    "movw r3, #0x7",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d14, r3, lr",
    "movw r3, #0x8",
    "movw lr, #0x0",
    "movt lr, #0xc0de",
    "vmov d15, r3, lr",
    "movw r3, #0x10",
    "movt r3, #0x8080",
    "vmsr fpscr, r3",
    "blx r12",
    "udf #0",
);

// A Thumb entry function: three legs of a ping-pong with the Rust starter,
// each sending back the first word plus one and the other two unchanged. It
// leaves by YIELD from Thumb code (its resume label with bit 0 set by hand,
// as the Rust YIELD site does in Thumb code), is resumed there by RESUME's
// `bx r12`, leaves by RESUME (a Thumb `bl` to A32 code, which the linker
// makes a `blx`), is resumed by YIELD's `bx lr`, and leaves by YIELD once
// more, never to be resumed. r3 (then r6, which the switch keeps) points at
// a `ThumbStart`.
std::arch::global_asm!(
    ".syntax unified",
    ".text",
    ".thumb",
    ".globl greenlet_abi_thumb_entry",
    ".type greenlet_abi_thumb_entry, %function",
    ".thumb_func",
    ".p2align 2",
    "greenlet_abi_thumb_entry:",
    "mov r6, r3",
    "adds r0, r0, #1",
    "adds r3, r6, #4",
    "ldr r4, [r6]",
    "adr lr, 1f",
    "orr lr, lr, #1",
    "b {yield_}",
    "1:",
    "adds r0, r0, #1",
    "adds r3, r6, #4",
    "ldr r4, [r6]",
    "bl {resume}",
    "adds r0, r0, #1",
    "adds r3, r6, #4",
    "ldr r4, [r6]",
    "adr lr, 2f",
    "orr lr, lr, #1",
    "b {yield_}",
    "2:",
    "udf #0",
    resume = sym super::super::ffi::resume,
    yield_ = sym super::super::ffi::yield_,
);

extern "C" {
    fn greenlet_abi_thumb_entry(a: usize, b: usize, c: usize, arg: usize) -> !;
}

/// The two stack pointers of the Thumb ping-pong, at the offsets
/// `greenlet_abi_thumb_entry` reads.
#[repr(C)]
struct ThumbStart {
    starter_sp: *mut u8,
    entry_sp: *mut u8,
}

/// The three words of a switch.
fn words(t: &Transfer) -> [usize; 3] {
    t.words
}

#[test]
fn switches_reach_and_leave_thumb_code_through_both_entries() {
    // Bit 0 of a code address is the Thumb bit: without it this test would
    // not cross states at all.
    let entry: arch::EntryFn = greenlet_abi_thumb_entry;
    assert_eq!(
        entry as usize & 1,
        1,
        "the entry function is not Thumb code"
    );
    assert_eq!(
        super::greenlet_abi_probe as *const () as usize & 1,
        1,
        "the probe is not Thumb code"
    );
    for (name, routine) in [
        ("RESUME", super::super::ffi::resume as *const ()),
        ("YIELD", super::super::ffi::yield_ as *const ()),
    ] {
        assert_eq!(routine as usize & 1, 0, "{name} is not A32 code");
    }
    let mut stack = ScratchStack::new(16 * 1024);
    let start = Box::into_raw(Box::new(ThumbStart {
        starter_sp: std::ptr::null_mut(),
        entry_sp: std::ptr::null_mut(),
    }));
    // SAFETY: the stack is ours, fresh and 16-aligned at the top; `start`
    // stays alive until after the entry function's last switch back, and
    // the entry side is not resumed after that (its stack is freed below).
    // Each switch resumes the entry side where its last switch left it.
    let got = unsafe {
        (*start).entry_sp = arch::init_stack(stack.top(), entry, start as usize, std::ptr::null());
        let here = std::ptr::addr_of_mut!((*start).starter_sp);
        let first = arch::resume(here, (*start).entry_sp, 41, 7, 9);
        let second = arch::resume(here, (*start).entry_sp, 100, 1, 2);
        let third = arch::yield_to(here, (*start).entry_sp, 200, 3, 4);
        [words(&first), words(&second), words(&third)]
    };
    // SAFETY: made by Box::into_raw above; nothing uses it any more.
    drop(unsafe { Box::from_raw(start) });
    drop(stack);
    assert_eq!(
        got,
        [[42, 7, 9], [101, 1, 2], [201, 3, 4]],
        "the Thumb entry function's switches did not come back right"
    );
}
