/*
 * greenlet stack switch for x86_64, System V AMD64 ABI (Linux).
 *
 * Exports exactly two symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_SWITCH and GREENLET_ENTRY):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       rdi = where to store the current stack pointer
 *       rsi = stack pointer of the context to resume (a frame laid out below)
 *       rdx = transfer word, handed to the resumed side in rax
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack jumps here. It calls
 *       entry(transfer, arg) with entry in r12 and arg in rbx, both taken from the
 *       initial frame that src/arch.rs writes. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended):
 *
 *   offset  size  content                                  initial frame (arch.rs)
 *   ------  ----  ---------------------------------------  -----------------------
 *     +0     4    MXCSR (SSE control/status)                0x1F80 (ABI default)
 *     +4     2    x87 FPU control word                      0x037F (ABI default)
 *     +6     2    padding
 *     +8     8    r15                                       0
 *    +16     8    r14                                       0
 *    +24     8    r13                                       0
 *    +32     8    r12                                       entry function
 *    +40     8    rbx                                       entry argument
 *    +48     8    rbp                                       0 (ends frame-pointer chains)
 *    +56     8    return address                            GREENLET_ENTRY
 *    +64          caller's frame                            top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 *  +56 |  return address into A   |           |  return address into B   |  <- jmp
 *  +48 |  rbp                     |           |  rbp                     |  \
 *   .. |  rbx, r12, r13, r14      |           |  rbx, r12, r13, r14      |   } popped
 *   +8 |  r15                     |           |  r15                     |  /
 *   +0 |  MXCSR | x87 CW | pad    |           |  MXCSR | x87 CW | pad    |  <- loaded
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * The call into the switch leaves rsp = 8 (mod 16); six pushes and the 8-byte
 * control-word slot bring the saved stack pointer back to 0 (mod 16). A new
 * stack therefore starts with load_sp = top - 64, and GREENLET_ENTRY runs with
 * rsp = top, 16-aligned, as the SysV ABI wants at a call site.
 *
 * Two choices that make the switch cheap (measured in docs/benchmarks.md):
 *  - The resumed side is entered with `pop` + `jmp`, not `ret`: a `ret` here
 *    always returns to a different call site than the one the return-stack
 *    predictor pushed, and mispredicts; the indirect-jump predictor learns the
 *    usual ping-pong patterns. (21.5 -> 12.4 ns per raw round trip.)
 *  - MXCSR and the x87 control word are stored and loaded unconditionally,
 *    as Boost.Context does. Reading the stored words back to skip the loads
 *    when both sides agree looks cheaper but is not: the read-back of what
 *    stmxcsr just stored is not forwarded from the store, and stalls. On an
 *    AMD EPYC (Zen 3) the conditional version cost 15.4 ns per raw round trip
 *    against 12.6 ns for this one; with no FP control state at all it would
 *    be 5.8 ns, so the two stmxcsr of a round trip are half of the floor.
 *
 * Caller-saved registers (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, x87 stack)
 * need no saving: the compiler already assumes a call destroys them.
 */

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp                /* control-word slot */
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        movq    %rdx, %rax
        popq    %rcx                    /* return address of the resumed side */
        .cfi_adjust_cfa_offset -8
        .cfi_register %rip, %rcx
        jmp     *%rcx

        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_ENTRY
        .hidden GREENLET_ENTRY
        .type   GREENLET_ENTRY, @function
        .p2align 4
GREENLET_ENTRY:
        .cfi_startproc
        /* Bottom of every greenlet stack: there is no caller. Marking the return
           address undefined makes unwinders, backtraces and gdb stop here. */
        .cfi_undefined %rip
        movq    %rax, %rdi              /* transfer word from the switch */
        movq    %rbx, %rsi              /* argument from the initial frame */
        callq   *%r12                   /* entry(transfer, arg), never returns */
        ud2
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
