/*
 * greenlet stack switch for x86_64, System V AMD64 ABI (Linux).
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       rdi = where to store the current stack pointer
 *       rsi = stack pointer of the context to resume (a frame laid out below)
 *       rdx = transfer word, handed to the resumed side in rax
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       rdi = 16-aligned top of a fresh stack, rsi = entry, rdx = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack jumps here. It calls
 *       entry(transfer, arg) with entry in r12 and arg in rbx, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended); F is 8
 * with GREENLET_FP_CONTROL and 0 without:
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *   fp-control only:
 *     +0     4    MXCSR (control bits are used)       the creator's MXCSR
 *     +4     2    x87 FPU control word                the creator's control word
 *     +6     2    padding
 *   always:
 *    F+0     8    r15                                 0
 *    F+8     8    r14                                 0
 *   F+16     8    r13                                 0
 *   F+24     8    r12                                 entry function
 *   F+32     8    rbx                                 entry argument
 *   F+40     8    rbp                                 0 (ends frame-pointer chains)
 *   F+48     8    return address                      GREENLET_ENTRY
 *   F+56          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * F+48 |  return address into A   |           |  return address into B   |  <- jmp
 * F+40 |  rbp                     |           |  rbp                     |  \
 *   .. |  rbx, r12, r13, r14      |           |  rbx, r12, r13, r14      |   } popped
 *  F+0 |  r15                     |           |  r15                     |  /
 *   +0 | [MXCSR | x87 CW | pad]   |           | [MXCSR | x87 CW | pad]   |  fp-control
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * The call into the switch leaves rsp = 8 (mod 16); six pushes keep it there
 * and the fp-control slot makes it 0. Either way GREENLET_INIT puts the frame
 * at top - (F + 56), so that GREENLET_ENTRY runs with rsp = top, 16-aligned,
 * as the SysV ABI wants at its call.
 *
 * The FP control state (SPEC section 5). Without fp-control it is not touched:
 * MXCSR and the x87 control word belong to the thread, as Rust assumes. With
 * it, each greenlet keeps its own *control* bits (rounding, FTZ/DAZ,
 * exception masks, x87 precision) while the six MXCSR status flags stay with
 * the thread, as FPSR does on aarch64. The loads are skipped when the control
 * bits already agree, which is nearly always. Measured on an Intel Xeon VM, C
 * harness, one round trip (two switches), docs/benchmarks.md:
 *   no FP state at all                                    3.8 ns
 *   store both, load both unconditionally (Boost)         8.0 ns, but 72 ns
 *       once the two sides' MXCSR differ only in a status flag (ldmxcsr of a
 *       changed value is that slow there; any inexact operation sets a flag)
 *   control bits compared, loads skipped when equal       5.8 ns, also with
 *       different flags
 * On a Zen 3 (AMD EPYC VM) the balance differs, per switch, C loop of the
 * FP lines alone: stmxcsr + fnstcw 4.6 ns (stmxcsr is nearly all of it),
 * Boost's unconditional loads 5.2 ns, our read-back and compare 6.3 ns. The
 * read-back is the price of keeping the status flags with the thread: it
 * makes this build's round trip 1.25x context's there (docs/benchmarks.md),
 * against 72 ns per Boost round trip on the Xeon once flags differ.
 *
 * Two more choices, both measured:
 *  - The resumed side is entered with `pop` + `jmp`, not `ret`: a `ret` here
 *    always returns to a different call site than the one the return-stack
 *    predictor pushed, and mispredicts (19.7 ns per bare round trip with `ret`
 *    against 3.8 ns with `jmp` on the Xeon; 21.5 against 12.4 ns on a Zen 3).
 *  - `endbr64` opens each entry point. It is a no-op without IBT. The file
 *    carries no GNU property note claiming IBT or shadow-stack support, and
 *    must not: the `jmp` into the resumed side lands on a return address (no
 *    landing pad) and the switch moves between stacks that a shadow stack
 *    would not follow.
 *
 * Caller-saved registers (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, x87 stack)
 * need no saving: the compiler already assumes a call destroys them.
 */

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_R15   (F + 0)
#define FRAME_R14   (F + 8)
#define FRAME_R13   (F + 16)
#define FRAME_R12   (F + 24)
#define FRAME_RBX   (F + 32)
#define FRAME_RBP   (F + 40)
#define FRAME_RET   (F + 48)
#define FRAME_BYTES (F + 56)
/* MXCSR status flags (IE DE ZE OE UE PE): the thread's, never switched. */
#define MXCSR_FLAGS 0x3f

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        endbr64
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
#ifdef GREENLET_FP_CONTROL
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movl    (%rsp), %ecx            /* ours: 4-byte loads of what the two */
        movzwl  4(%rsp), %r8d           /* stores wrote are forwarded, unlike one 8-byte load */
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp

#ifdef GREENLET_FP_CONTROL
        movl    (%rsp), %eax            /* theirs */
        xorl    %ecx, %eax
        testl   $~MXCSR_FLAGS, %eax
        jz      1f                      /* same control bits: keep ours, flags too */
        xorl    %ecx, %eax              /* theirs again */
        andl    $~MXCSR_FLAGS, %eax
        andl    $MXCSR_FLAGS, %ecx
        orl     %ecx, %eax              /* their control bits, the thread's flags */
        movl    %eax, (%rsp)
        ldmxcsr (%rsp)
1:      cmpw    4(%rsp), %r8w
        je      2f
        fldcw   4(%rsp)
2:      addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
#endif
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

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
        endbr64
        leaq    -FRAME_BYTES(%rdi), %rax
        xorl    %ecx, %ecx
        movq    %rcx, FRAME_R15(%rax)
        movq    %rcx, FRAME_R14(%rax)
        movq    %rcx, FRAME_R13(%rax)
        movq    %rsi, FRAME_R12(%rax)
        movq    %rdx, FRAME_RBX(%rax)
        movq    %rcx, FRAME_RBP(%rax)
        leaq    GREENLET_ENTRY(%rip), %rcx
        movq    %rcx, FRAME_RET(%rax)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movq    $0, (%rax)
        stmxcsr (%rax)
        fnstcw  4(%rax)
#endif
        ret
        .cfi_endproc
        .size   GREENLET_INIT, .-GREENLET_INIT

        .globl  GREENLET_ENTRY
        .hidden GREENLET_ENTRY
        .type   GREENLET_ENTRY, @function
        .p2align 4
GREENLET_ENTRY:
        .cfi_startproc
        /* Bottom of every greenlet stack: there is no caller. Marking the return
           address undefined makes unwinders, backtraces and gdb stop here. */
        .cfi_undefined %rip
        endbr64
        movq    %rax, %rdi              /* transfer word from the switch */
        movq    %rbx, %rsi              /* argument from the initial frame */
        callq   *%r12                   /* entry(transfer, arg), never returns */
        ud2
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
