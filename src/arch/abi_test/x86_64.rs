//! x86_64 (System V): rbx, rbp, r12-r15; MXCSR and the x87 control word.

/// Callee-saved state captured after the round trip: rbx, rbp, r12-r15, then
/// MXCSR (low 32 bits) | x87 control word (bits 32-47).
pub const INT_REGS: &[&str] = &["rbx", "rbp", "r12", "r13", "r14", "r15"];
pub const FP_REGS: &[&str] = &[];
/// What the probe must find in its FP control slot (shared with the other
/// x86 probe, which loads the same patterns).
pub use super::x86_fp_control::EXPECTED_FP_CONTROL;
/// Other callee-saved state the probe stores after the FP control slot
/// (powerpc64's CR fields): none here.
pub const OTHER_STATE: &[(&str, u64)] = &[];

std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_probe",
    ".p2align 4",
    "greenlet_abi_probe:",
    // rdi = body, rsi = ctx, rdx = out
    "push %rbp",
    "push %rbx",
    "push %r12",
    "push %r13",
    "push %r14",
    "push %r15",
    "sub $24, %rsp",
    "stmxcsr (%rsp)",
    "fnstcw 4(%rsp)",
    "mov %rdx, 8(%rsp)",
    "mov %rdi, %rax",
    "mov %rsi, %rdi",
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
    // rdi = body, rsi = ctx
    "mov %rdi, %rax",
    "mov %rsi, %rdi",
    "movabs $0xbad000010badf00d, %rbx",
    "movabs $0xbad000020badf00d, %rbp",
    "movabs $0xbad000030badf00d, %r12",
    "movabs $0xbad000040badf00d, %r13",
    "movabs $0xbad000050badf00d, %r14",
    "movabs $0xbad000060badf00d, %r15",
    "sub $8, %rsp",
    "movl $0x3F81, (%rsp)",
    "ldmxcsr (%rsp)",
    "movw $0x047F, 4(%rsp)",
    "fldcw 4(%rsp)",
    "call *%rax",
    "ud2",
    options(att_syntax)
);
