/*
 * greenlet stack switch for x86_64, System V AMD64 ABI (Linux ELF, macOS Mach-O).
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/x86_64.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * every other register that Rust lets them name as clobbered (clobber_abi("C")
 * plus r12-r15), so the compiler keeps across a switch only what is live, in
 * registers of its choice. What `asm!` cannot name is saved here: rbx (LLVM's
 * base pointer) and rbp (the frame pointer), plus the resume address.
 *
 *   in and out:  rdi, rsi, rdx   the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          r8              where to store the suspended stack pointer
 *                r9              the stack pointer of the context to resume
 *   destroyed:   rax, rcx, r10, r11 (and r8, r9)
 *
 *   GREENLET_RESUME   entered by `call`, so the CPU's return-stack predictor
 *                     pushes the suspending side's resume address, which the
 *                     call also stores. Leaves by an indirect `jmp` to the
 *                     resumed side's resume address.
 *   GREENLET_YIELD    entered by `jmp` after the asm! block has pushed its own
 *                     resume address (a label after the jmp). Leaves by `ret`:
 *                     when the resumed side is the one whose RESUME is still
 *                     pending, the predictor pops exactly the entry that RESUME
 *                     pushed, so in parent/child ping-pong every return is
 *                     predicted. The Rust layer chooses; a wrong choice costs
 *                     a mispredicted return, never correctness.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       rdi = 16-aligned top of a fresh stack, rsi = entry, rdx = arg; writes
 *       below `top` a frame shaped like a suspended one, whose resume address
 *       is GREENLET_ENTRY, and returns its stack pointer. Above `top` it
 *       writes the chain-end word (below); init_stack (src/arch/mod.rs) has
 *       put the link word beside it and reserved both.
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       pushes its own address as a return address and jumps to
 *       entry(a, b, c, arg) (rdi, rsi, rdx from the switch, arg in rcx): a jump,
 *       not a call, so that the predictor holds no entry that no `ret` will
 *       ever pop. entry never returns.
 *
 * Backtraces (SPEC section 10). GREENLET_ENTRY's CFI names as its caller the
 * greenlet whose RESUME into this one is pending (corosensei's parent link),
 * so unwinders go on from a greenlet's bottom frame into the frames of the
 * switch that resumed it, which stay put while it is suspended. Nothing on
 * the switch path is written for it: the trampoline runs with rsp = top, and
 * the link area at top (picture below) names the greenlet's switch record
 * (the core's object, whose layout src/arch/mod.rs `link` fixes and the core
 * asserts):
 *
 *   G = [top]                  this greenlet's record (a stack no greenlet
 *                              owns: top + 8, a record with no resumer)
 *   R = [G + LINK_RESUMER]     the resumer's record, set by RESUME, cleared by
 *                              a death (0: none; the area at top stands in)
 *   if R's state byte [R + LINK_STATE] is LINK_SUSPENDED, its frame is at
 *   S = [R + LINK_SP] and the caller's CFA is S + FRAME_BYTES, its own stack
 *   pointer; the resume address, rbp and rbx are read from the saved frame
 *   below that CFA. Otherwise the CFA is top + END_CFA, which puts the
 *   resume-address slot on the chain-end word at top + 8: the return address
 *   is then GREENLET_ENTRY_no_resumer's, whose CFI marks its own return
 *   address undefined, and the walk ends there.
 *
 * The expression has no branches (Valgrind reads only straight-line
 * expressions), so every address it reads must be readable whatever the
 * state: hence the stand-ins above.
 * `.cfi_signal_frame` lets gdb accept a caller at a lower address (gdb
 * requires frame addresses to rise, but not across a signal frame) and shows
 * the boundary as "<signal handler called>". A panic never unwinds this far:
 * entry's catch_unwind is above the trampoline and stops it.
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended); F is 8 with GREENLET_FP_CONTROL and 0 without. Both entries
 * write and read this one layout, so either resumes a context that either
 * suspended.
 *
 *   offset  size  content                            initial frame (GREENLET_INIT)
 *   ------  ----  ---------------------------------  -----------------------------
 *   fp-control only:
 *     +0     4    MXCSR (control bits are used)      the creator's MXCSR
 *     +4     2    x87 FPU control word               the creator's control word
 *     +6     2    padding
 *   always:
 *    F+0     8    rbx                                entry function
 *    F+8     8    rbp                                entry argument
 *   F+16     8    resume address                     GREENLET_ENTRY
 *   F+24          the suspended side's own frame     top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  caller keeps what is live there)   |  |                          |
 *      +-------------------------------------+  +--------------------------+
 * F+16 |  resume address (call / push)       |  |  resume address          | <- jmp / ret
 *  F+8 |  rbp                                |  |  rbp                     | \ popped
 *  F+0 |  rbx                                |  |  rbx                     | /
 *   +0 | [MXCSR | x87 CW | pad]  fp-control  |  | [MXCSR | x87 CW | pad]   |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (r8)                         ^ r9
 *
 * A new stack, as init_stack and GREENLET_INIT leave it:
 *
 *      |  the closure (src/greenlet/builder.rs)                     |
 *      +------------------------------------------------------------+
 * +24  |  0 (the state byte when the area stands in for a record)   |
 * +16  |  0 (the resumer of the record at top + 8)                  |
 *  +8  |  chain-end word: 1 byte into GREENLET_ENTRY_no_resumer     |  (INIT)
 * top  |  link word: the greenlet's record, or top + 8              |  <- rsp in GREENLET_ENTRY
 *      +------------------------------------------------------------+
 *      |  initial frame (the table above): resume = GREENLET_ENTRY   |
 *      +------------------------------------------------------------+
 *        ^ returned by GREENLET_INIT, the stack pointer to resume
 *
 * asm! blocks run with rsp 16-aligned; the call or push makes it 8 (mod 16),
 * the two pushes keep it there, the fp-control slot makes it 0. GREENLET_INIT
 * puts the frame at top - (F + 24), so GREENLET_ENTRY runs with rsp = top and
 * its push gives entry the rsp = 8 (mod 16) that a called function expects.
 *
 * Why this shape, measured in one C harness on an AMD EPYC (Zen 3) VM, gcc -O2,
 * 50M round trips, medians (issue 22; docs/benchmarks.md has the crate's own):
 *   one routine saving all six callee-saved registers, pop + jmp both ways  5.87 ns
 *   the same leaving by ret (the predictor is always wrong)                16.4 ns
 *   RESUME (call in, jmp out) + YIELD (jmp in, ret out), saving six         3.32 ns
 *   the same with r12-r15 declared clobbered at the asm! site (this file)   2.15 ns
 *   corosensei-style, fully inline                                         2.17 ns
 *
 * The FP control state (SPEC section 5). Without fp-control it is not touched:
 * MXCSR and the x87 control word belong to the thread, as Rust assumes. With
 * it, each greenlet keeps its own *control* bits (rounding, FTZ/DAZ,
 * exception masks, x87 precision) while the six MXCSR status flags stay with
 * the thread, as FPSR does on aarch64. The loads are skipped when the control
 * bits already agree, which is nearly always. Measured on an Intel Xeon VM, C
 * harness, one round trip (two switches):
 *   no FP state at all                                    3.8 ns
 *   store both, load both unconditionally (Boost)         8.0 ns, but 72 ns
 *       once the two sides' MXCSR differ only in a status flag (ldmxcsr of a
 *       changed value is that slow there; any inexact operation sets a flag)
 *   control bits compared, loads skipped when equal       5.8 ns, also with
 *       different flags
 * On a Zen 3 (AMD EPYC VM), per switch, C loop of the FP lines alone:
 * stmxcsr + fnstcw 4.6 ns (stmxcsr is nearly all of it), Boost's
 * unconditional loads 5.2 ns, our read-back and compare 6.3 ns.
 *
 * `endbr64` opens the C-callable routine and the trampoline; it is a no-op
 * without IBT. The file claims no IBT or shadow-stack property and must not:
 * RESUME's call is never matched by a return, YIELD's `ret` pops an address a
 * different call pushed, and resume labels are not landing pads.
 *
 * Caller-saved registers (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, x87 stack)
 * and r12-r15 need no saving here: the asm! site declares them clobbered.
 */
#include "platform.h"

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_RBX    (F + 0)
#define FRAME_RBP    (F + 8)
#define FRAME_RESUME (F + 16)
#define FRAME_BYTES  (F + 24)
/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). SP_OP is DW_OP_breg7 (rsp) + offset, the link area's address
   when the trampoline is unwound into. The CFA with no resumer: the one
   whose resume-address slot is the chain-end word at sp + 8, so the return
   address read is that word. */
#include "link.h"
#define END_CFA (8 + FRAME_BYTES - FRAME_RESUME)
#define SP_OP 0x77
#define CFI_RESUMER CFI_RESUMER_AT(SP_OP, 0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(SP_OP, 0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)
/* MXCSR status flags (IE DE ZE OE UE PE): the thread's, never switched. */
#define MXCSR_FLAGS 0x3f

/* The body both entries share: save rbx, rbp (and the FP control words),
   store rsp to (r8), load r9, restore the same from there. On entry the
   resume address is at (rsp); on exit too, the resumed side's. The CFI stays
   true across the swap because the resumed frame has the same layout.
   The macro has a named parameter (the fp-control slot's size) for Mach-O
   too: Apple's assembler replaces `$0`, `$1`, ... inside a macro without
   named parameters with positional arguments, so there `$8` vanished (an
   error) and `$0x3f` turned silently into a memory operand `x3f`. */
.macro SWAP_STACKS fp_slot=F
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
#ifdef GREENLET_FP_CONTROL
        subq    $\fp_slot, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movl    (%rsp), %r10d           /* ours: 4-byte loads of what the two */
        movzwl  4(%rsp), %r11d          /* stores wrote are forwarded, unlike one 8-byte load */
#endif
        movq    %rsp, (%r8)
        movq    %r9, %rsp
#ifdef GREENLET_FP_CONTROL
        movl    (%rsp), %eax            /* theirs */
        xorl    %r10d, %eax
        testl   $~MXCSR_FLAGS, %eax
        jz      1f                      /* same control bits: keep ours, flags too */
        xorl    %r10d, %eax             /* theirs again */
        andl    $~MXCSR_FLAGS, %eax
        andl    $MXCSR_FLAGS, %r10d
        orl     %r10d, %eax             /* their control bits, the thread's flags */
        movl    %eax, (%rsp)
        ldmxcsr (%rsp)
1:      cmpw    4(%rsp), %r11w
        je      2f
        fldcw   4(%rsp)
2:      addq    $\fp_slot, %rsp
        .cfi_adjust_cfa_offset -8
#endif
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS
        popq    %r11                    /* the resumed side's resume address */
        .cfi_adjust_cfa_offset -8
        .cfi_register %rip, %r11
        jmpq    *%r11
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS
        retq                            /* pops what the matching RESUME's call pushed */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        endbr64
        leaq    -FRAME_BYTES(%rdi), %rax
        movq    %rsi, FRAME_RBX(%rax)
        movq    %rdx, FRAME_RBP(%rax)
        leaq    GREENLET_ENTRY(%rip), %rcx
        movq    %rcx, FRAME_RESUME(%rax)
        /* The chain-end word, above the frame beside the link word that
           init_stack (src/arch/mod.rs) put at top: where the trampoline's
           caller returns when there is no suspended resumer. */
        leaq    5f(%rip), %rcx
        movq    %rcx, 8(%rdi)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movq    $0, (%rax)
        stmxcsr (%rax)
        fnstcw  4(%rax)
#endif
        ret
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10), described by the expressions in the header. The
           signal-frame mark lets gdb accept a caller below this frame (on a
           stack at a lower address) and shows the boundary as
           "<signal handler called>"; it also makes unwinders look the
           caller's pc up as it is, which is right for a resume address. */
        .cfi_signal_frame
        /* DW_CFA_def_cfa_expression, in the ops every consumer reads,
           Valgrind's too (no branches, no dup, no deref_size): with
           R' = R, or this link area when R is null, and
           ok = (R''s state byte == LINK_SUSPENDED), which is 0 for the area,
           CFA = sp + END_CFA + ok * ([R'] + FRAME_BYTES - (sp + END_CFA)). */
        .cfi_escape 0x0f, 54
        .cfi_escape SP_OP, END_CFA              /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 0xff, 0x1a            /* DW_OP_const1u 0xff, DW_OP_and: the state byte */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, FRAME_BYTES     /* DW_OP_deref: its saved sp; + the frame */
        .cfi_escape SP_OP, END_CFA, 0x1c        /* - (sp + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset %rip, -(FRAME_BYTES - FRAME_RESUME)
        .cfi_offset %rbp, -(FRAME_BYTES - FRAME_RBP)
        .cfi_offset %rbx, -(FRAME_BYTES - FRAME_RBX)
        endbr64
        movq    %rbx, %rax              /* entry, from the initial frame */
        movq    %rbp, %rcx              /* arg, the fourth argument */
        xorl    %ebp, %ebp              /* ends frame-pointer chains */
        leaq    3f(%rip), %r11
        pushq   %r11                    /* a return address inside this routine */
        jmpq    *%rax                   /* entry(a, b, c, arg), never returns */
3:      ud2
        .cfi_endproc
FUNCTION_END(GREENLET_ENTRY)

/* The caller the trampoline names when the chain ends (no greenlet record, no
   resumer, or one not suspended: a greenlet resumed by a death). Never run;
   its CFI marks the return address undefined, which every unwinder reads as
   the outermost frame. A return address of 0 would do for libgcc, but gdb
   shows a frame at 0 below a signal frame and then complains. Local: not
   part of the exported contract, only its address is stored. */
        .p2align 4
#ifndef __APPLE__
        .type   NO_RESUMER, @function
#endif
NO_RESUMER:
        .cfi_startproc
        .cfi_undefined %rip
        nop                             /* symbolizers look up the address - 1 */
5:
        ud2
        .cfi_endproc
#ifndef __APPLE__
        .size   NO_RESUMER, .-NO_RESUMER
#endif

        GNU_STACK_NOTE
