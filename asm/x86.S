/*
 * greenlet stack switch for 32-bit x86 (i686), System V i386 ABI (Linux ELF).
 * Rust calls this CPU family `x86` (CARGO_CFG_TARGET_ARCH), hence the name.
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/x86.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * every other register that Rust lets them name as clobbered (clobber_abi("C")
 * plus ebx and edi), so the compiler keeps across a switch only what is live,
 * in registers of its choice. What `asm!` cannot name on x86-32 is saved here:
 * esi (LLVM's base pointer there) and ebp (the frame pointer), plus the resume
 * address. ebx, the GOT pointer of i386 PIC code, can be named on x86-32 (only
 * x86_64 reserves rbx), so the call site declares it and the compiler reloads
 * its GOT pointer itself when it needs one after a switch.
 *
 * Registers are scarce: asm! can name exactly five general registers here
 * (eax, ebx, ecx, edx, edi), and a switch needs five words in and three out.
 * All five carry one each, none goes through memory:
 *
 *   in and out:  eax, edx, ecx   the three transfer words a, b, c, passed
 *                                through untouched to the resumed side (the
 *                                call site receives the address of the words
 *                                in eax and loads them inside its asm! block,
 *                                eax last)
 *   in:          ebx             where to store the suspended stack pointer
 *                edi             the stack pointer of the context to resume
 *   destroyed:   ebx, edi (nothing else: eflags aside, the routine touches
 *                only esp, the two registers it restores, and these two)
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
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function,
 *       cdecl: 4(%esp) = 16-aligned top of a fresh stack, 8(%esp) = entry,
 *       12(%esp) = arg) writes below `top` a frame shaped like a suspended
 *       one, whose resume address is GREENLET_ENTRY, and returns its stack
 *       pointer.
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       pushes entry's four cdecl arguments (a, b, c from the switch in eax,
 *       edx, ecx; arg from the initial frame's ebp slot), then an address of
 *       its own as the return address, and jumps to entry (from the esi slot):
 *       a jump, not a call, so that the predictor holds no entry that no `ret`
 *       will ever pop. entry never returns.
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
 *     +6     2    padding                            0
 *   always:
 *    F+0     4    esi                                entry function
 *    F+4     4    ebp                                entry argument
 *    F+8     4    resume address                     GREENLET_ENTRY
 *   F+12          the suspended side's own frame     top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  caller keeps what is live there)   |  |                          |
 *      +-------------------------------------+  +--------------------------+
 *  F+8 |  resume address (call / push)       |  |  resume address          | <- jmp / ret
 *  F+4 |  ebp                                |  |  ebp                     | \ popped
 *  F+0 |  esi                                |  |  esi                     | /
 *   +0 | [MXCSR | x87 CW | pad]  fp-control  |  | [MXCSR | x87 CW | pad]   |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (ebx)                        ^ edi
 *
 * Alignment: Linux i386 code keeps esp 16-aligned at every call (GCC and Rust
 * both assume it), and asm! blocks run with it so. The saved frame itself
 * needs none (stmxcsr and fnstcw want 4 and 2). GREENLET_INIT puts the frame
 * at top - (F + 12), so GREENLET_ENTRY runs with esp = top; its four argument
 * words keep esp 16-aligned, and its pushed return address gives entry the
 * esp = 12 (mod 16) that a called function expects.
 *
 * No PC-relative addressing on i386. Two places need an address of their own
 * code, and both take it from a call to the next instruction, `call 1f; 1:`,
 * which needs no GOT and no text relocation (Rust links PIE) and which CPUs
 * leave off the return-stack predictor, so it unbalances nothing:
 *   - GREENLET_INIT: `call 1f; 1: pop %ecx; add $(GREENLET_ENTRY - 1b), %ecx`;
 *   - the YIELD call site (src/arch/x86.rs) and GREENLET_ENTRY: `call 1f;
 *     1: addl $(2f - 1b), (%esp)` turns the pushed address into the resume
 *     label's (or the trampoline's) in place, with no register: the call
 *     site has none left.
 * If a CPU did push such a call on its predictor, every YIELD's `ret` would
 * pop that entry instead of the RESUME's and mispredict. Measured natively in
 * 32-bit mode on an Intel Xeon KVM guest, C loop calling a function, best of
 * 30 runs of 2M calls: `call 1f; 1: addl $4, %esp; ret` 1.34 ns, the same
 * work as `pushl; addl; ret` 1.34 ns, a `ret` known to mispredict (to an
 * address moved as above) 23 ns: that call stays off the predictor.
 *
 * Why this shape: the reasons of asm/x86_64.S, measured there in one C
 * harness (issue 22): the RESUME/YIELD pair with everything asm! can name
 * declared clobbered runs at corosensei's speed, 2.7x faster than one routine
 * saving every callee-saved register and leaving by pop + jmp. The crate's
 * bare round trip (two switches, `greenlet::bench_support::
 * bare_switch_round_trips`, release, no fp-control) on the same Xeon guest,
 * natively in 32-bit mode, fastest of 10 interleaved runs (each the best of
 * 10 x 5M round trips), on a busy 2-core machine (load average 18; the
 * native x86_64 build of the same loop took 10.5 ns there, several times its
 * quiet time, so the absolute numbers are the load's and only the order is
 * telling):
 *   the old one-entry routine (ebx, esi, edi, ebp saved, pop + jmp)   16.9 ns
 *   this file, main by RESUME, the other side by YIELD                13.1 ns
 *   this file, both sides by RESUME (no ret at all)                   14.5 ns
 *
 * The FP control state (SPEC section 5), the same scheme as asm/x86_64.S and
 * for the same measured reasons (see that file's header). Without fp-control
 * it is not touched: MXCSR and the x87 control word belong to the thread, as
 * Rust assumes. With it, each greenlet keeps its own *control* bits (rounding,
 * FTZ/DAZ, exception masks, x87 precision and rounding) while MXCSR's six
 * status flags stay with the thread; the loads are skipped when the control
 * bits already agree, which is nearly always. Rust's i686 target requires
 * SSE2, so MXCSR exists; the x87 control word matters more here than on
 * x86_64, since i386 returns float results in st(0) and x87 code is common.
 * The scratch registers for the comparison are esi and ebp (already pushed,
 * popped from the resumed frame at the end) and, once the stack pointer is
 * swapped, ebx; the transfer registers stay untouched.
 *
 * `endbr32` opens the C-callable routine and the trampoline; it is a no-op
 * without IBT. The file claims no IBT or shadow-stack property and must not:
 * RESUME's call is never matched by a return, YIELD's `ret` pops an address a
 * different call pushed, and resume labels are not landing pads.
 *
 * Caller-saved registers (eax, ecx, edx, the x87 stack, mm0-7, xmm0-7: i386
 * has no callee-saved FP register at all) and ebx, edi need no saving here:
 * the asm! site declares them clobbered.
 */
#include "platform.h"

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_ESI    (F + 0)
#define FRAME_EBP    (F + 4)
#define FRAME_RESUME (F + 8)
#define FRAME_BYTES  (F + 12)

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). Unwound into, the trampoline's esp is top - 16, below the
   four arguments it pushed for entry: TOP is DW_OP_breg4 (esp) + 16 +
   offset. END_CFA: the CFA with no resumer, whose resume-address slot is the
   chain-end word at top + 4. */
#include "link.h"
#define END_CFA (4 + FRAME_BYTES - FRAME_RESUME)
#define TOP(off) 0x74, 16 + (off)
#define CFI_RESUMER CFI_RESUMER_AT(TOP(0))
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(TOP(0))
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)
/* MXCSR status flags (IE DE ZE OE UE PE): the thread's, never switched. */
#define MXCSR_FLAGS 0x3f

/* The body both entries share: save ebp, esi (and the FP control words),
   store esp to (ebx), load edi, restore the same from there. On entry the
   resume address is at (esp); on exit too, the resumed side's. The CFI stays
   true across the swap because the resumed frame has the same layout. */
.macro SWAP_STACKS
        pushl   %ebp
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %ebp, 0
        pushl   %esi
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %esi, 0
#ifdef GREENLET_FP_CONTROL
        subl    $8, %esp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%esp)
        fnstcw  4(%esp)
        movl    (%esp), %esi            /* ours: 4- and 2-byte loads of what */
        movzwl  4(%esp), %ebp           /* the two stores wrote are forwarded */
#endif
        movl    %esp, (%ebx)
        movl    %edi, %esp
#ifdef GREENLET_FP_CONTROL
        movl    (%esp), %ebx            /* theirs */
        xorl    %esi, %ebx
        testl   $~MXCSR_FLAGS, %ebx
        jz      1f                      /* same control bits: keep ours, flags too */
        xorl    %esi, %ebx              /* theirs again */
        andl    $~MXCSR_FLAGS, %ebx
        andl    $MXCSR_FLAGS, %esi
        orl     %esi, %ebx              /* their control bits, the thread's flags */
        movl    %ebx, (%esp)
        ldmxcsr (%esp)
1:      cmpw    4(%esp), %bp
        je      2f
        fldcw   4(%esp)
2:      addl    $8, %esp
        .cfi_adjust_cfa_offset -8
#endif
        popl    %esi
        .cfi_adjust_cfa_offset -4
        .cfi_restore %esi
        popl    %ebp
        .cfi_adjust_cfa_offset -4
        .cfi_restore %ebp
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS
        popl    %edi                    /* the resumed side's resume address */
        .cfi_adjust_cfa_offset -4
        .cfi_register %eip, %edi
        jmpl    *%edi
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS
        retl                            /* pops what the matching RESUME's call pushed */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        endbr32
        movl    4(%esp), %eax
        subl    $FRAME_BYTES, %eax
        movl    8(%esp), %ecx
        movl    %ecx, FRAME_ESI(%eax)   /* entry function */
        movl    12(%esp), %ecx
        movl    %ecx, FRAME_EBP(%eax)   /* entry argument */
        call    1f                      /* position-independent address of the trampoline */
1:      popl    %ecx
        addl    $(GREENLET_ENTRY - 1b), %ecx
        movl    %ecx, FRAME_RESUME(%eax)
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        leal    (5f - GREENLET_ENTRY)(%ecx), %edx
        movl    %edx, FRAME_BYTES + 4(%eax)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movl    $0, 4(%eax)
        stmxcsr (%eax)
        fnstcw  4(%eax)
#endif
        ret
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10); asm/x86_64.S explains the expression, which is
           the same here with i686's esp, link area and frame. */
        .cfi_signal_frame
        .cfi_escape 0x0f, 54                    /* DW_CFA_def_cfa_expression */
        .cfi_escape TOP(END_CFA)                /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 0xff, 0x1a            /* DW_OP_const1u 0xff, DW_OP_and: the state byte */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, FRAME_BYTES     /* DW_OP_deref: its saved esp; + the frame */
        .cfi_escape TOP(END_CFA), 0x1c          /* - (top + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset %eip, FRAME_RESUME - FRAME_BYTES
        .cfi_offset %ebp, FRAME_EBP - FRAME_BYTES
        .cfi_offset %esi, FRAME_ESI - FRAME_BYTES
        endbr32
        pushl   %ebp                    /* arg, from the initial frame */
        pushl   %ecx                    /* c */
        pushl   %edx                    /* b */
        pushl   %eax                    /* a: entry(a, b, c, arg), cdecl */
        xorl    %ebp, %ebp              /* ends frame-pointer chains */
        call    1f                      /* a return address inside this routine: */
1:      addl    $(3f - 1b), (%esp)      /* the ud2 below */
        jmpl    *%esi                   /* entry, from the initial frame; never returns */
3:      ud2
        .cfi_endproc
FUNCTION_END(GREENLET_ENTRY)

/* The caller the trampoline names when the chain ends (asm/x86_64.S says
   why it exists). Never run; its return address is undefined. Local; the
   stored address is one byte in, as symbolizers look up a return address
   minus one. */
        .p2align 4
        .type   NO_RESUMER, @function
NO_RESUMER:
        .cfi_startproc
        .cfi_undefined %eip
        nop
5:      ud2
        .cfi_endproc
        .size   NO_RESUMER, .-NO_RESUMER

        GNU_STACK_NOTE
