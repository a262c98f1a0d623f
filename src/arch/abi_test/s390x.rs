//! s390x (z/Architecture ELF ABI): r6-r13, f8-f15; the FPC's control bits
//! (IEEE masks, rounding modes) under `fp-control`, its flags and DXC always
//! the thread's.

/// Callee-saved registers in the order the probe stores them. r15 is the
/// stack pointer and r14 the return address: the probe returning at all
/// proves both.
pub const INT_REGS: &[&str] = &["r6", "r7", "r8", "r9", "r10", "r11", "r12", "r13"];
pub const FP_REGS: &[&str] = &["f8", "f9", "f10", "f11", "f12", "f13", "f14", "f15"];
/// FPC status bits: the IEEE flags (byte 1) and the data exception code
/// (byte 2).
const FPC_STATUS: u64 = 0x00FF_FF00;
/// The probe's FPC: the IEEE underflow exception enabled (a mask bit),
/// BFP rounding toward minus infinity (mode 3), no flag.
const A_FPC: u64 = 0x1000_0003;
/// The clobber's FPC: round toward plus infinity (mode 2), the inexact flag
/// raised, and a data exception code of 2.
const B_FPC: u64 = 0x0008_0202;
/// What the probe must see after the round trip. With `fp-control` the
/// control bits are the probe's own and the status the thread's (the clobber
/// set some); without it the whole FPC is the thread's, so the clobber's
/// value comes back.
pub const EXPECTED_FP_CONTROL: u64 = if cfg!(feature = "fp-control") {
    (A_FPC & !FPC_STATUS) | (B_FPC & FPC_STATUS)
} else {
    B_FPC
};
/// The register that `greenlet_abi_bad_switch` corrupts.
/// No callee-saved state beside the integer and FP registers.
pub const OTHER_STATE: &[(&str, u64)] = &[];
pub const FORGOTTEN: &str = "r13";

std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_probe",
    ".p2align 4",
    "greenlet_abi_probe:",
    // r2 = switch fn, r3 = save slot, r4 = load sp, r5 = out
    "stmg %r6, %r15, 48(%r15)",
    "aghi %r15, -240",
    "std %f8, 160(%r15)",
    "std %f9, 168(%r15)",
    "std %f10, 176(%r15)",
    "std %f11, 184(%r15)",
    "std %f12, 192(%r15)",
    "std %f13, 200(%r15)",
    "std %f14, 208(%r15)",
    "std %f15, 216(%r15)",
    "stfpc 224(%r15)",
    "stg %r5, 232(%r15)",
    "lgr %r1, %r2",
    "lgr %r2, %r3",
    "lgr %r3, %r4",
    "lghi %r4, 0",
    "llihf %r6, 0x5eed0001",
    "iilf %r6, 0x1010101",
    "llihf %r7, 0x5eed0002",
    "iilf %r7, 0x2020202",
    "llihf %r8, 0x5eed0003",
    "iilf %r8, 0x3030303",
    "llihf %r9, 0x5eed0004",
    "iilf %r9, 0x4040404",
    "llihf %r10, 0x5eed0005",
    "iilf %r10, 0x5050505",
    "llihf %r11, 0x5eed0006",
    "iilf %r11, 0x6060606",
    "llihf %r12, 0x5eed0007",
    "iilf %r12, 0x7070707",
    "llihf %r13, 0x5eed0008",
    "iilf %r13, 0x8080808",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x1111",
    "ldgr %f8, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x2222",
    "ldgr %f9, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x3333",
    "ldgr %f10, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x4444",
    "ldgr %f11, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x5555",
    "ldgr %f12, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x6666",
    "ldgr %f13, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x7777",
    "ldgr %f14, %r0",
    "llihf %r0, 0x3ff00000",
    "iilf %r0, 0x8888",
    "ldgr %f15, %r0",
    "llilf %r0, 0x10000003",
    "sfpc %r0",
    "basr %r14, %r1",
    "lg %r1, 232(%r15)",
    "stmg %r6, %r13, 0(%r1)",
    "lgdr %r0, %f8",
    "stg %r0, 64(%r1)",
    "lgdr %r0, %f9",
    "stg %r0, 72(%r1)",
    "lgdr %r0, %f10",
    "stg %r0, 80(%r1)",
    "lgdr %r0, %f11",
    "stg %r0, 88(%r1)",
    "lgdr %r0, %f12",
    "stg %r0, 96(%r1)",
    "lgdr %r0, %f13",
    "stg %r0, 104(%r1)",
    "lgdr %r0, %f14",
    "stg %r0, 112(%r1)",
    "lgdr %r0, %f15",
    "stg %r0, 120(%r1)",
    "efpc %r0",
    "llgfr %r0, %r0",
    "stg %r0, 128(%r1)",
    "lfpc 224(%r15)",
    "ld %f8, 160(%r15)",
    "ld %f9, 168(%r15)",
    "ld %f10, 176(%r15)",
    "ld %f11, 184(%r15)",
    "ld %f12, 192(%r15)",
    "ld %f13, 200(%r15)",
    "ld %f14, 208(%r15)",
    "ld %f15, 216(%r15)",
    "aghi %r15, 240",
    "lmg %r6, %r15, 48(%r15)",
    "br %r14",
    "",
    ".globl greenlet_abi_clobber",
    ".p2align 4",
    "greenlet_abi_clobber:",
    // r2 = switch fn, r3 = save slot, r4 = pointer to the probe's saved sp
    "lgr %r1, %r2",
    "lgr %r2, %r3",
    "lg %r3, 0(%r4)",
    "lghi %r4, 0",
    "llihf %r6, 0xbad00001",
    "iilf %r6, 0xbadf00d",
    "llihf %r7, 0xbad00002",
    "iilf %r7, 0xbadf00d",
    "llihf %r8, 0xbad00003",
    "iilf %r8, 0xbadf00d",
    "llihf %r9, 0xbad00004",
    "iilf %r9, 0xbadf00d",
    "llihf %r10, 0xbad00005",
    "iilf %r10, 0xbadf00d",
    "llihf %r11, 0xbad00006",
    "iilf %r11, 0xbadf00d",
    "llihf %r12, 0xbad00007",
    "iilf %r12, 0xbadf00d",
    "llihf %r13, 0xbad00008",
    "iilf %r13, 0xbadf00d",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x1",
    "ldgr %f8, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x2",
    "ldgr %f9, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x3",
    "ldgr %f10, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x4",
    "ldgr %f11, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x5",
    "ldgr %f12, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x6",
    "ldgr %f13, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x7",
    "ldgr %f14, %r0",
    "llihf %r0, 0xc0de0000",
    "iilf %r0, 0x8",
    "ldgr %f15, %r0",
    "llilf %r0, 0x00080202",
    "sfpc %r0",
    "aghi %r15, -160",
    "basr %r14, %r1",
    ".word 0",
);

// The real switch, then r13 corrupted on the way back: a switch that fails to
// preserve exactly one register, which the probe must catch. The return
// address goes in the r14 slot of the register save area our caller provides;
// the real switch gets one of its own below.
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 4",
    "greenlet_abi_bad_switch:",
    "stg %r14, 112(%r15)",
    "aghi %r15, -160",
    "brasl %r14, {switch}",
    "aghi %r15, 160",
    "lg %r14, 112(%r15)",
    "lghi %r0, -1",
    "xgr %r13, %r0",
    "br %r14",
    switch = sym super::super::ffi::switch,
);
