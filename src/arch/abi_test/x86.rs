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
/// The register that `greenlet_abi_bad_switch` loses.
pub const FORGOTTEN: &str = "edi";

// The probe's frame, below the four callee-saved registers it pushes (44
// bytes, so that esp is 16-aligned at its call, as at any i386 call):
//    0, 4, 8  the switch's arguments: save slot, load sp, transfer 0
//   12        out
//   16, 20    the caller's MXCSR and x87 control word, restored at the end
//   24, 28    scratch for loading pattern A
// Its own arguments are above: switch fn at 64, save slot 68, load sp 72,
// out 76.
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_probe",
    ".p2align 4",
    "greenlet_abi_probe:",
    "push %ebp",
    "push %ebx",
    "push %esi",
    "push %edi",
    "sub $44, %esp",
    "stmxcsr 16(%esp)",
    "fnstcw 20(%esp)",
    "mov 76(%esp), %eax",
    "mov %eax, 12(%esp)",
    "mov 68(%esp), %eax",
    "mov %eax, 0(%esp)",
    "mov 72(%esp), %eax",
    "mov %eax, 4(%esp)",
    "movl $0, 8(%esp)",
    "movl $0xFFC0, 24(%esp)",
    "ldmxcsr 24(%esp)",
    "movw $0x0C7F, 28(%esp)",
    "fldcw 28(%esp)",
    "mov 64(%esp), %eax",
    "mov $0x01010101, %ebx",
    "mov $0x02020202, %esi",
    "mov $0x03030303, %edi",
    "mov $0x04040404, %ebp",
    "call *%eax",
    "mov 12(%esp), %ecx",
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
    "ldmxcsr 16(%esp)",
    "fldcw 20(%esp)",
    "add $44, %esp",
    "pop %edi",
    "pop %esi",
    "pop %ebx",
    "pop %ebp",
    "ret",
    "",
    // Arguments: switch fn at 4(%esp), save slot at 8, pointer to the probe's
    // saved sp at 12. Its frame: the switch's three arguments at 0, 4, 8 and
    // scratch at 12 and 16 (28 bytes keep esp 16-aligned at the call).
    ".globl greenlet_abi_clobber",
    ".p2align 4",
    "greenlet_abi_clobber:",
    "mov 4(%esp), %eax",
    "mov 8(%esp), %ecx",
    "mov 12(%esp), %edx",
    "mov (%edx), %edx",
    "sub $28, %esp",
    "mov %ecx, 0(%esp)",
    "mov %edx, 4(%esp)",
    "movl $0, 8(%esp)",
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

// The real switch, then edi corrupted on the way back: a switch that fails to
// preserve exactly one register, which the probe must catch. The three
// arguments are pushed again for it (each `push 12(%esp)` reaches one word
// further up, past the words already pushed); esp is 16-aligned at the call.
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_bad_switch",
    ".p2align 4",
    "greenlet_abi_bad_switch:",
    "push 12(%esp)",
    "push 12(%esp)",
    "push 12(%esp)",
    "call {switch}",
    "add $12, %esp",
    "not %edi",
    "ret",
    switch = sym super::super::ffi::switch,
    options(att_syntax)
);
