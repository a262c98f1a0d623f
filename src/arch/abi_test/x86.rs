//! 32-bit x86 (System V i386): ebx, esi, edi, ebp; MXCSR and the x87 control
//! word. Arguments come on the stack (cdecl); each 32-bit register is stored
//! zero-extended into its 64-bit `out` slot.

/// Callee-saved state captured after the round trip: ebx, esi, edi, ebp, then
/// MXCSR (low 32 bits) | x87 control word (bits 32-47). i386 has no
/// callee-saved FP registers.
pub const INT_REGS: &[&str] = &["ebx", "esi", "edi", "ebp"];
pub const FP_REGS: &[&str] = &[];
/// What the probe must find in its FP control slot (shared with the other
/// x86 probe, which loads the same patterns).
pub use super::x86_fp_control::EXPECTED_FP_CONTROL;
/// Other callee-saved state the probe stores after the FP control slot
/// (powerpc64's CR fields): none here.
pub const OTHER_STATE: &[(&str, u64)] = &[];

// The probe's frame, below the four callee-saved registers it pushes (28
// bytes, so that esp is 16-aligned at its call, as at any i386 call):
//    0        body's argument: ctx
//    4        out
//    8, 12    the caller's MXCSR and x87 control word, restored at the end
//   16, 20    scratch for loading pattern A
// Its own arguments are above: body at 48, ctx at 52, out at 56.
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_probe",
    ".p2align 4",
    "greenlet_abi_probe:",
    "push %ebp",
    "push %ebx",
    "push %esi",
    "push %edi",
    "sub $28, %esp",
    "stmxcsr 8(%esp)",
    "fnstcw 12(%esp)",
    "mov 52(%esp), %eax",
    "mov %eax, 0(%esp)",
    "mov 56(%esp), %eax",
    "mov %eax, 4(%esp)",
    "movl $0xFFC0, 16(%esp)",
    "ldmxcsr 16(%esp)",
    "movw $0x0C7F, 20(%esp)",
    "fldcw 20(%esp)",
    "mov 48(%esp), %eax",
    "mov $0x01010101, %ebx",
    "mov $0x02020202, %esi",
    "mov $0x03030303, %edi",
    "mov $0x04040404, %ebp",
    "call *%eax",
    "mov 4(%esp), %ecx",
    "mov %ebx, 0(%ecx)",
    "movl $0, 4(%ecx)",
    "mov %esi, 8(%ecx)",
    "movl $0, 12(%ecx)",
    "mov %edi, 16(%ecx)",
    "movl $0, 20(%ecx)",
    "mov %ebp, 24(%ecx)",
    "movl $0, 28(%ecx)",
    "movl $0, 32(%ecx)",
    "movl $0, 36(%ecx)",
    "stmxcsr 32(%ecx)",
    "fnstcw 36(%ecx)",
    "ldmxcsr 8(%esp)",
    "fldcw 12(%esp)",
    "add $28, %esp",
    "pop %edi",
    "pop %esi",
    "pop %ebx",
    "pop %ebp",
    "ret",
    "",
    // Arguments: body at 4(%esp), ctx at 8. Its frame: body's argument at 0
    // and scratch at 12 and 16 (28 bytes keep esp 16-aligned at the call).
    ".globl greenlet_abi_clobber",
    ".p2align 4",
    "greenlet_abi_clobber:",
    "mov 4(%esp), %eax",
    "mov 8(%esp), %ecx",
    "sub $28, %esp",
    "mov %ecx, 0(%esp)",
    "movl $0x3F81, 12(%esp)",
    "ldmxcsr 12(%esp)",
    "movw $0x047F, 16(%esp)",
    "fldcw 16(%esp)",
    "mov $0xbad1f00d, %ebx",
    "mov $0xbad2f00d, %esi",
    "mov $0xbad3f00d, %edi",
    "mov $0xbad4f00d, %ebp",
    "call *%eax",
    "ud2",
    options(att_syntax)
);
