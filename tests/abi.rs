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
//! B. A deliberately broken copy of the switch (one register left out) proves
//! the probe notices.

use greenlet::arch::{self, SwitchFn};
use greenlet::stack::Stack;

#[cfg(target_arch = "x86_64")]
mod probe {
    /// Callee-saved state captured after the round trip: rbx, rbp, r12-r15,
    /// then MXCSR (low 32 bits) | x87 control word (bits 32-47).
    pub const INT_REGS: &[&str] = &["rbx", "rbp", "r12", "r13", "r14", "r15"];
    pub const FP_REGS: &[&str] = &[];
    /// Round toward zero, flush-to-zero, denormals-are-zero, all exceptions masked.
    pub const A_MXCSR: u64 = 0xFFC0;
    /// x87: round toward zero, single precision, all exceptions masked.
    pub const A_FCW: u64 = 0x0C7F;
    pub const A_FP_CONTROL: u64 = A_MXCSR | (A_FCW << 32);
    // The clobber side loads MXCSR 0x3F80 (round down) and x87 CW 0x047F.

    std::arch::global_asm!(
        ".text",
        ".globl greenlet_abi_probe",
        ".p2align 4",
        "greenlet_abi_probe:",
        // rdi = switch fn, rsi = save slot, rdx = load sp, rcx = out
        "push %rbp",
        "push %rbx",
        "push %r12",
        "push %r13",
        "push %r14",
        "push %r15",
        "sub $24, %rsp",
        "stmxcsr (%rsp)",
        "fnstcw 4(%rsp)",
        "mov %rcx, 8(%rsp)",
        "mov %rdi, %rax",
        "mov %rsi, %rdi",
        "mov %rdx, %rsi",
        "xor %edx, %edx",
        "movl $0xFFC0, 16(%rsp)",
        "ldmxcsr 16(%rsp)",
        "movw $0x0C7F, 20(%rsp)",
        "fldcw 20(%rsp)",
        "movabs $0x5eed000101010101, %rbx",
        "movabs $0x5eed000202020202, %rbp",
        "movabs $0x5eed000303030303, %r12",
        "movabs $0x5eed000404040404, %r13",
        "movabs $0x5eed000505050505, %r14",
        "movabs $0x5eed000606060606, %r15",
        "call *%rax",
        "mov 8(%rsp), %rcx",
        "mov %rbx, 0(%rcx)",
        "mov %rbp, 8(%rcx)",
        "mov %r12, 16(%rcx)",
        "mov %r13, 24(%rcx)",
        "mov %r14, 32(%rcx)",
        "mov %r15, 40(%rcx)",
        "movq $0, 48(%rcx)",
        "stmxcsr 48(%rcx)",
        "fnstcw 52(%rcx)",
        "ldmxcsr (%rsp)",
        "fldcw 4(%rsp)",
        "add $24, %rsp",
        "pop %r15",
        "pop %r14",
        "pop %r13",
        "pop %r12",
        "pop %rbx",
        "pop %rbp",
        "ret",
        "",
        ".globl greenlet_abi_clobber",
        ".p2align 4",
        "greenlet_abi_clobber:",
        // rdi = switch fn, rsi = save slot, rdx = pointer to the probe's saved sp
        "mov %rdi, %rax",
        "mov %rsi, %rdi",
        "mov (%rdx), %rsi",
        "xor %edx, %edx",
        "movabs $0xbad000010badf00d, %rbx",
        "movabs $0xbad000020badf00d, %rbp",
        "movabs $0xbad000030badf00d, %r12",
        "movabs $0xbad000040badf00d, %r13",
        "movabs $0xbad000050badf00d, %r14",
        "movabs $0xbad000060badf00d, %r15",
        "sub $8, %rsp",
        "movl $0x3F80, (%rsp)",
        "ldmxcsr (%rsp)",
        "movw $0x047F, 4(%rsp)",
        "fldcw 4(%rsp)",
        "call *%rax",
        "ud2",
        options(att_syntax)
    );
}

#[cfg(target_arch = "aarch64")]
mod probe {
    /// Callee-saved state captured after the round trip: x19-x29, d8-d15, FPCR.
    /// (x30 is the link register: the probe returning at all proves it.)
    pub const INT_REGS: &[&str] = &[
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29",
    ];
    pub const FP_REGS: &[&str] = &["d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15"];
    /// Round toward zero, flush-to-zero, default NaN.
    pub const A_FP_CONTROL: u64 = (3 << 22) | (1 << 24) | (1 << 25);

    std::arch::global_asm!(
        ".text",
        ".globl greenlet_abi_probe",
        ".p2align 4",
        "greenlet_abi_probe:",
        // x0 = switch fn, x1 = save slot, x2 = load sp, x3 = out
        "stp x29, x30, [sp, #-176]!",
        "stp x19, x20, [sp, #16]",
        "stp x21, x22, [sp, #32]",
        "stp x23, x24, [sp, #48]",
        "stp x25, x26, [sp, #64]",
        "stp x27, x28, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "mrs x9, fpcr",
        "str x9, [sp, #160]",
        "str x3, [sp, #168]",
        "mov x9, x0",
        "mov x0, x1",
        "mov x1, x2",
        "mov x2, #0",
        "movz x19, #0x5eed, lsl #48",
        "movk x19, #0x1, lsl #32",
        "movk x19, #0x101, lsl #16",
        "movk x19, #0x101",
        "movz x20, #0x5eed, lsl #48",
        "movk x20, #0x2, lsl #32",
        "movk x20, #0x202, lsl #16",
        "movk x20, #0x202",
        "movz x21, #0x5eed, lsl #48",
        "movk x21, #0x3, lsl #32",
        "movk x21, #0x303, lsl #16",
        "movk x21, #0x303",
        "movz x22, #0x5eed, lsl #48",
        "movk x22, #0x4, lsl #32",
        "movk x22, #0x404, lsl #16",
        "movk x22, #0x404",
        "movz x23, #0x5eed, lsl #48",
        "movk x23, #0x5, lsl #32",
        "movk x23, #0x505, lsl #16",
        "movk x23, #0x505",
        "movz x24, #0x5eed, lsl #48",
        "movk x24, #0x6, lsl #32",
        "movk x24, #0x606, lsl #16",
        "movk x24, #0x606",
        "movz x25, #0x5eed, lsl #48",
        "movk x25, #0x7, lsl #32",
        "movk x25, #0x707, lsl #16",
        "movk x25, #0x707",
        "movz x26, #0x5eed, lsl #48",
        "movk x26, #0x8, lsl #32",
        "movk x26, #0x808, lsl #16",
        "movk x26, #0x808",
        "movz x27, #0x5eed, lsl #48",
        "movk x27, #0x9, lsl #32",
        "movk x27, #0x909, lsl #16",
        "movk x27, #0x909",
        "movz x28, #0x5eed, lsl #48",
        "movk x28, #0xa, lsl #32",
        "movk x28, #0xa0a, lsl #16",
        "movk x28, #0xa0a",
        "movz x29, #0x5eed, lsl #48",
        "movk x29, #0xb, lsl #32",
        "movk x29, #0xb0b, lsl #16",
        "movk x29, #0xb0b",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x1111",
        "fmov d8, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x2222",
        "fmov d9, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x3333",
        "fmov d10, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x4444",
        "fmov d11, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x5555",
        "fmov d12, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x6666",
        "fmov d13, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x7777",
        "fmov d14, x10",
        "movz x10, #0x3ff0, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x8888",
        "fmov d15, x10",
        "movz x10, #0x3c0, lsl #16",
        "msr fpcr, x10",
        "blr x9",
        "ldr x9, [sp, #168]",
        "stp x19, x20, [x9, #0]",
        "stp x21, x22, [x9, #16]",
        "stp x23, x24, [x9, #32]",
        "stp x25, x26, [x9, #48]",
        "stp x27, x28, [x9, #64]",
        "str x29, [x9, #80]",
        "fmov x10, d8",
        "str x10, [x9, #88]",
        "fmov x10, d9",
        "str x10, [x9, #96]",
        "fmov x10, d10",
        "str x10, [x9, #104]",
        "fmov x10, d11",
        "str x10, [x9, #112]",
        "fmov x10, d12",
        "str x10, [x9, #120]",
        "fmov x10, d13",
        "str x10, [x9, #128]",
        "fmov x10, d14",
        "str x10, [x9, #136]",
        "fmov x10, d15",
        "str x10, [x9, #144]",
        "mrs x10, fpcr",
        "str x10, [x9, #152]",
        "ldr x10, [sp, #160]",
        "msr fpcr, x10",
        "ldp x19, x20, [sp, #16]",
        "ldp x21, x22, [sp, #32]",
        "ldp x23, x24, [sp, #48]",
        "ldp x25, x26, [sp, #64]",
        "ldp x27, x28, [sp, #80]",
        "ldp d8, d9, [sp, #96]",
        "ldp d10, d11, [sp, #112]",
        "ldp d12, d13, [sp, #128]",
        "ldp d14, d15, [sp, #144]",
        "ldp x29, x30, [sp], #176",
        "ret",
        "",
        ".globl greenlet_abi_clobber",
        ".p2align 4",
        "greenlet_abi_clobber:",
        // x0 = switch fn, x1 = save slot, x2 = pointer to the probe's saved sp
        "mov x9, x0",
        "mov x0, x1",
        "ldr x1, [x2]",
        "mov x2, #0",
        "movz x19, #0xbad0, lsl #48",
        "movk x19, #0x1, lsl #32",
        "movk x19, #0xbad, lsl #16",
        "movk x19, #0xf00d",
        "movz x20, #0xbad0, lsl #48",
        "movk x20, #0x2, lsl #32",
        "movk x20, #0xbad, lsl #16",
        "movk x20, #0xf00d",
        "movz x21, #0xbad0, lsl #48",
        "movk x21, #0x3, lsl #32",
        "movk x21, #0xbad, lsl #16",
        "movk x21, #0xf00d",
        "movz x22, #0xbad0, lsl #48",
        "movk x22, #0x4, lsl #32",
        "movk x22, #0xbad, lsl #16",
        "movk x22, #0xf00d",
        "movz x23, #0xbad0, lsl #48",
        "movk x23, #0x5, lsl #32",
        "movk x23, #0xbad, lsl #16",
        "movk x23, #0xf00d",
        "movz x24, #0xbad0, lsl #48",
        "movk x24, #0x6, lsl #32",
        "movk x24, #0xbad, lsl #16",
        "movk x24, #0xf00d",
        "movz x25, #0xbad0, lsl #48",
        "movk x25, #0x7, lsl #32",
        "movk x25, #0xbad, lsl #16",
        "movk x25, #0xf00d",
        "movz x26, #0xbad0, lsl #48",
        "movk x26, #0x8, lsl #32",
        "movk x26, #0xbad, lsl #16",
        "movk x26, #0xf00d",
        "movz x27, #0xbad0, lsl #48",
        "movk x27, #0x9, lsl #32",
        "movk x27, #0xbad, lsl #16",
        "movk x27, #0xf00d",
        "movz x28, #0xbad0, lsl #48",
        "movk x28, #0xa, lsl #32",
        "movk x28, #0xbad, lsl #16",
        "movk x28, #0xf00d",
        "movz x29, #0xbad0, lsl #48",
        "movk x29, #0xb, lsl #32",
        "movk x29, #0xbad, lsl #16",
        "movk x29, #0xf00d",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x1",
        "fmov d8, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x2",
        "fmov d9, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x3",
        "fmov d10, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x4",
        "fmov d11, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x5",
        "fmov d12, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x6",
        "fmov d13, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x7",
        "fmov d14, x10",
        "movz x10, #0xc0de, lsl #48",
        "movk x10, #0x0, lsl #32",
        "movk x10, #0x0, lsl #16",
        "movk x10, #0x8",
        "fmov d15, x10",
        "movz x10, #0x40, lsl #16",
        "msr fpcr, x10",
        "blr x9",
        "brk #0x1",
    );
}

#[cfg(target_arch = "riscv64")]
mod probe {
    /// Callee-saved state captured after the round trip: s0-s11, fs0-fs11, fcsr.
    /// (ra is the return address: the probe returning at all proves it.)
    pub const INT_REGS: &[&str] = &[
        "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
    ];
    pub const FP_REGS: &[&str] = &[
        "fs0", "fs1", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9", "fs10", "fs11",
    ];
    /// Rounding mode RTZ (frm = 1) with every accrued-exception flag set.
    pub const A_FP_CONTROL: u64 = 0x3F;

    std::arch::global_asm!(
        ".text",
        ".globl greenlet_abi_probe",
        ".p2align 2",
        "greenlet_abi_probe:",
        // a0 = switch fn, a1 = save slot, a2 = load sp, a3 = out
        "addi sp, sp, -224",
        "sd ra, 0(sp)",
        "sd s0, 8(sp)",
        "sd s1, 16(sp)",
        "sd s2, 24(sp)",
        "sd s3, 32(sp)",
        "sd s4, 40(sp)",
        "sd s5, 48(sp)",
        "sd s6, 56(sp)",
        "sd s7, 64(sp)",
        "sd s8, 72(sp)",
        "sd s9, 80(sp)",
        "sd s10, 88(sp)",
        "sd s11, 96(sp)",
        "fsd fs0, 104(sp)",
        "fsd fs1, 112(sp)",
        "fsd fs2, 120(sp)",
        "fsd fs3, 128(sp)",
        "fsd fs4, 136(sp)",
        "fsd fs5, 144(sp)",
        "fsd fs6, 152(sp)",
        "fsd fs7, 160(sp)",
        "fsd fs8, 168(sp)",
        "fsd fs9, 176(sp)",
        "fsd fs10, 184(sp)",
        "fsd fs11, 192(sp)",
        "frcsr t0",
        "sd t0, 200(sp)",
        "sd a3, 208(sp)",
        "mv t1, a0",
        "mv a0, a1",
        "mv a1, a2",
        "li a2, 0",
        "li s0, 0x5eed000101010101",
        "li s1, 0x5eed000202020202",
        "li s2, 0x5eed000303030303",
        "li s3, 0x5eed000404040404",
        "li s4, 0x5eed000505050505",
        "li s5, 0x5eed000606060606",
        "li s6, 0x5eed000707070707",
        "li s7, 0x5eed000808080808",
        "li s8, 0x5eed000909090909",
        "li s9, 0x5eed000a0a0a0a0a",
        "li s10, 0x5eed000b0b0b0b0b",
        "li s11, 0x5eed000c0c0c0c0c",
        "li t2, 0x3ff0000000001111",
        "fmv.d.x fs0, t2",
        "li t2, 0x3ff0000000002222",
        "fmv.d.x fs1, t2",
        "li t2, 0x3ff0000000003333",
        "fmv.d.x fs2, t2",
        "li t2, 0x3ff0000000004444",
        "fmv.d.x fs3, t2",
        "li t2, 0x3ff0000000005555",
        "fmv.d.x fs4, t2",
        "li t2, 0x3ff0000000006666",
        "fmv.d.x fs5, t2",
        "li t2, 0x3ff0000000007777",
        "fmv.d.x fs6, t2",
        "li t2, 0x3ff0000000008888",
        "fmv.d.x fs7, t2",
        "li t2, 0x3ff0000000009999",
        "fmv.d.x fs8, t2",
        "li t2, 0x3ff000000000aaaa",
        "fmv.d.x fs9, t2",
        "li t2, 0x3ff000000000bbbb",
        "fmv.d.x fs10, t2",
        "li t2, 0x3ff000000000cccc",
        "fmv.d.x fs11, t2",
        "li t0, 0x3F",
        "fscsr t0",
        "jalr t1",
        "ld t0, 208(sp)",
        "sd s0, 0(t0)",
        "sd s1, 8(t0)",
        "sd s2, 16(t0)",
        "sd s3, 24(t0)",
        "sd s4, 32(t0)",
        "sd s5, 40(t0)",
        "sd s6, 48(t0)",
        "sd s7, 56(t0)",
        "sd s8, 64(t0)",
        "sd s9, 72(t0)",
        "sd s10, 80(t0)",
        "sd s11, 88(t0)",
        "fmv.x.d t1, fs0",
        "sd t1, 96(t0)",
        "fmv.x.d t1, fs1",
        "sd t1, 104(t0)",
        "fmv.x.d t1, fs2",
        "sd t1, 112(t0)",
        "fmv.x.d t1, fs3",
        "sd t1, 120(t0)",
        "fmv.x.d t1, fs4",
        "sd t1, 128(t0)",
        "fmv.x.d t1, fs5",
        "sd t1, 136(t0)",
        "fmv.x.d t1, fs6",
        "sd t1, 144(t0)",
        "fmv.x.d t1, fs7",
        "sd t1, 152(t0)",
        "fmv.x.d t1, fs8",
        "sd t1, 160(t0)",
        "fmv.x.d t1, fs9",
        "sd t1, 168(t0)",
        "fmv.x.d t1, fs10",
        "sd t1, 176(t0)",
        "fmv.x.d t1, fs11",
        "sd t1, 184(t0)",
        "frcsr t1",
        "sd t1, 192(t0)",
        "ld t0, 200(sp)",
        "fscsr t0",
        "ld ra, 0(sp)",
        "ld s0, 8(sp)",
        "ld s1, 16(sp)",
        "ld s2, 24(sp)",
        "ld s3, 32(sp)",
        "ld s4, 40(sp)",
        "ld s5, 48(sp)",
        "ld s6, 56(sp)",
        "ld s7, 64(sp)",
        "ld s8, 72(sp)",
        "ld s9, 80(sp)",
        "ld s10, 88(sp)",
        "ld s11, 96(sp)",
        "fld fs0, 104(sp)",
        "fld fs1, 112(sp)",
        "fld fs2, 120(sp)",
        "fld fs3, 128(sp)",
        "fld fs4, 136(sp)",
        "fld fs5, 144(sp)",
        "fld fs6, 152(sp)",
        "fld fs7, 160(sp)",
        "fld fs8, 168(sp)",
        "fld fs9, 176(sp)",
        "fld fs10, 184(sp)",
        "fld fs11, 192(sp)",
        "addi sp, sp, 224",
        "ret",
        "",
        ".globl greenlet_abi_clobber",
        ".p2align 2",
        "greenlet_abi_clobber:",
        // a0 = switch fn, a1 = save slot, a2 = pointer to the probe's saved sp
        "mv t1, a0",
        "mv a0, a1",
        "ld a1, 0(a2)",
        "li a2, 0",
        "li s0, 0xbad000010badf00d",
        "li s1, 0xbad000020badf00d",
        "li s2, 0xbad000030badf00d",
        "li s3, 0xbad000040badf00d",
        "li s4, 0xbad000050badf00d",
        "li s5, 0xbad000060badf00d",
        "li s6, 0xbad000070badf00d",
        "li s7, 0xbad000080badf00d",
        "li s8, 0xbad000090badf00d",
        "li s9, 0xbad0000a0badf00d",
        "li s10, 0xbad0000b0badf00d",
        "li s11, 0xbad0000c0badf00d",
        "li t2, 0xc0de000000000001",
        "fmv.d.x fs0, t2",
        "li t2, 0xc0de000000000002",
        "fmv.d.x fs1, t2",
        "li t2, 0xc0de000000000003",
        "fmv.d.x fs2, t2",
        "li t2, 0xc0de000000000004",
        "fmv.d.x fs3, t2",
        "li t2, 0xc0de000000000005",
        "fmv.d.x fs4, t2",
        "li t2, 0xc0de000000000006",
        "fmv.d.x fs5, t2",
        "li t2, 0xc0de000000000007",
        "fmv.d.x fs6, t2",
        "li t2, 0xc0de000000000008",
        "fmv.d.x fs7, t2",
        "li t2, 0xc0de000000000009",
        "fmv.d.x fs8, t2",
        "li t2, 0xc0de00000000000a",
        "fmv.d.x fs9, t2",
        "li t2, 0xc0de00000000000b",
        "fmv.d.x fs10, t2",
        "li t2, 0xc0de00000000000c",
        "fmv.d.x fs11, t2",
        "li t0, 0x40",
        "fscsr t0",
        "jalr t1",
        "unimp",
    );
}

// A copy of the real x86_64 switch that does NOT preserve r15 (its slot is
// filled with zero and discarded): the ABI probe must catch exactly that.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 4",
    "greenlet_abi_bad_switch:",
    "push %rbp",
    "push %rbx",
    "push %r12",
    "push %r13",
    "push %r14",
    "push $0",
    "sub $8, %rsp",
    "stmxcsr (%rsp)",
    "fnstcw 4(%rsp)",
    "mov %rsp, (%rdi)",
    "mov %rsi, %rsp",
    "ldmxcsr (%rsp)",
    "fldcw 4(%rsp)",
    "add $8, %rsp",
    "pop %rcx",
    "pop %r14",
    "pop %r13",
    "pop %r12",
    "pop %rbx",
    "pop %rbp",
    "mov %rdx, %rax",
    "ret",
    options(att_syntax)
);

// A copy of the real aarch64 switch that does NOT preserve x28.
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 4",
    "greenlet_abi_bad_switch:",
    "sub sp, sp, #176",
    "stp x19, x20, [sp, #0]",
    "stp x21, x22, [sp, #16]",
    "stp x23, x24, [sp, #32]",
    "stp x25, x26, [sp, #48]",
    "stp x27, xzr, [sp, #64]",
    "stp x29, x30, [sp, #80]",
    "stp d8, d9, [sp, #96]",
    "stp d10, d11, [sp, #112]",
    "stp d12, d13, [sp, #128]",
    "stp d14, d15, [sp, #144]",
    "mrs x9, fpcr",
    "str x9, [sp, #160]",
    "mov x9, sp",
    "str x9, [x0]",
    "mov sp, x1",
    "ldr x9, [sp, #160]",
    "msr fpcr, x9",
    "ldp x19, x20, [sp, #0]",
    "ldp x21, x22, [sp, #16]",
    "ldp x23, x24, [sp, #32]",
    "ldp x25, x26, [sp, #48]",
    "ldp x27, x9, [sp, #64]",
    "ldp x29, x30, [sp, #80]",
    "ldp d8, d9, [sp, #96]",
    "ldp d10, d11, [sp, #112]",
    "ldp d12, d13, [sp, #128]",
    "ldp d14, d15, [sp, #144]",
    "add sp, sp, #176",
    "mov x0, x2",
    "ret",
);

// A copy of the real riscv64 switch that does NOT preserve s11.
#[cfg(target_arch = "riscv64")]
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 2",
    "greenlet_abi_bad_switch:",
    "addi sp, sp, -208",
    "sd ra, 0(sp)",
    "sd s0, 8(sp)",
    "sd s1, 16(sp)",
    "sd s2, 24(sp)",
    "sd s3, 32(sp)",
    "sd s4, 40(sp)",
    "sd s5, 48(sp)",
    "sd s6, 56(sp)",
    "sd s7, 64(sp)",
    "sd s8, 72(sp)",
    "sd s9, 80(sp)",
    "sd s10, 88(sp)",
    "sd zero, 96(sp)",
    "fsd fs0, 104(sp)",
    "fsd fs1, 112(sp)",
    "fsd fs2, 120(sp)",
    "fsd fs3, 128(sp)",
    "fsd fs4, 136(sp)",
    "fsd fs5, 144(sp)",
    "fsd fs6, 152(sp)",
    "fsd fs7, 160(sp)",
    "fsd fs8, 168(sp)",
    "fsd fs9, 176(sp)",
    "fsd fs10, 184(sp)",
    "fsd fs11, 192(sp)",
    "frcsr t0",
    "sd t0, 200(sp)",
    "sd sp, 0(a0)",
    "mv sp, a1",
    "ld t0, 200(sp)",
    "fscsr t0",
    "ld ra, 0(sp)",
    "ld s0, 8(sp)",
    "ld s1, 16(sp)",
    "ld s2, 24(sp)",
    "ld s3, 32(sp)",
    "ld s4, 40(sp)",
    "ld s5, 48(sp)",
    "ld s6, 56(sp)",
    "ld s7, 64(sp)",
    "ld s8, 72(sp)",
    "ld s9, 80(sp)",
    "ld s10, 88(sp)",
    "ld t2, 96(sp)",
    "fld fs0, 104(sp)",
    "fld fs1, 112(sp)",
    "fld fs2, 120(sp)",
    "fld fs3, 128(sp)",
    "fld fs4, 136(sp)",
    "fld fs5, 144(sp)",
    "fld fs6, 152(sp)",
    "fld fs7, 160(sp)",
    "fld fs8, 168(sp)",
    "fld fs9, 176(sp)",
    "fld fs10, 184(sp)",
    "fld fs11, 192(sp)",
    "addi sp, sp, 208",
    "mv a0, a2",
    "ret",
);

#[cfg(target_arch = "s390x")]
mod probe {
    /// Callee-saved state captured after the round trip: r6-r13, f8-f15, FPC.
    /// (r15 is the stack pointer and r14 the return address: the probe
    /// returning at all proves both.)
    pub const INT_REGS: &[&str] = &["r6", "r7", "r8", "r9", "r10", "r11", "r12", "r13"];
    pub const FP_REGS: &[&str] = &["f8", "f9", "f10", "f11", "f12", "f13", "f14", "f15"];
    /// BFP rounding mode 3 (toward -infinity).
    pub const A_FP_CONTROL: u64 = 3;

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
        "lghi %r0, 3",
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
        "lghi %r0, 2",
        "sfpc %r0",
        "aghi %r15, -160",
        "basr %r14, %r1",
        ".word 0",
    );
}

// A copy of the real s390x switch that does NOT preserve r13.
#[cfg(target_arch = "s390x")]
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 4",
    "greenlet_abi_bad_switch:",
    "aghi %r15, -144",
    "stmg %r6, %r12, 0(%r15)",
    "mvghi 56(%r15), 0",
    "stg %r14, 64(%r15)",
    "std %f8, 72(%r15)",
    "std %f9, 80(%r15)",
    "std %f10, 88(%r15)",
    "std %f11, 96(%r15)",
    "std %f12, 104(%r15)",
    "std %f13, 112(%r15)",
    "std %f14, 120(%r15)",
    "std %f15, 128(%r15)",
    "stfpc 136(%r15)",
    "stg %r15, 0(%r2)",
    "lgr %r15, %r3",
    "lfpc 136(%r15)",
    "ld %f8, 72(%r15)",
    "ld %f9, 80(%r15)",
    "ld %f10, 88(%r15)",
    "ld %f11, 96(%r15)",
    "ld %f12, 104(%r15)",
    "ld %f13, 112(%r15)",
    "ld %f14, 120(%r15)",
    "ld %f15, 128(%r15)",
    "lmg %r6, %r12, 0(%r15)",
    "lg %r14, 64(%r15)",
    "aghi %r15, 144",
    "lgr %r2, %r4",
    "br %r14",
);

extern "C" {
    fn greenlet_abi_probe(switch: SwitchFn, save: *mut *mut u8, load: *mut u8, out: *mut u64);
    fn greenlet_abi_clobber(switch: SwitchFn, save: *mut *mut u8, probe_sp: *const *mut u8) -> !;
    fn greenlet_abi_bad_switch(save: *mut *mut u8, load: *mut u8, transfer: usize) -> usize;
}

/// Pattern the probe loads into the k-th integer register.
fn a_int(k: usize) -> u64 {
    let k = k as u64 + 1;
    0x5EED_0000_0000_0000 | (k << 32) | (0x0101_0101 * k)
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
    let stack = Stack::new(64 * 1024).expect("map a stack");
    let mut ctx = Box::new(Ctx {
        probe_sp: std::ptr::null_mut(),
        clobber_sp: std::ptr::null_mut(),
        switch,
    });
    let ctx_ptr: *mut Ctx = &mut *ctx;
    // SAFETY: the stack is ours, fresh and 16-aligned at the top.
    let start = unsafe { arch::init_stack(stack.top(), clobber_entry, ctx_ptr as usize) };
    let mut out = vec![0u64; probe::INT_REGS.len() + probe::FP_REGS.len() + 1];
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
    if control != probe::A_FP_CONTROL {
        bad.push(format!(
            "FP control: expected {:#x}, got {control:#x}",
            probe::A_FP_CONTROL
        ));
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
    let forgotten = if cfg!(target_arch = "x86_64") {
        "r15"
    } else if cfg!(target_arch = "aarch64") {
        "x28"
    } else if cfg!(target_arch = "riscv64") {
        "s11"
    } else {
        "r13"
    };
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
