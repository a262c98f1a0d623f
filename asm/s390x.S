/*
 * greenlet stack switch for s390x, the z/Architecture ELF ABI (Linux).
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/s390x.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * clobbered every other register that Rust lets them name: clobber_abi("C")
 * (r0-r5, r14, f0-f7, v0-v31, a2-a15, cc) plus the callee-saved r6-r10, r12,
 * r13 and f8-f15. So the compiler keeps across a switch only what is live, in
 * registers of its choice, and saves the callee-saved ones it uses in its own
 * prologue. What `asm!` cannot name is saved here, with the resume address:
 *
 *   r11   the frame pointer (reserved by Rust)
 *   r15   the stack pointer, through *save_sp
 *
 * Not saved: a0 and a1, the thread pointer (both sides run on one thread,
 * which owns it); the control registers (the kernel's). The vector registers
 * v8-v15 overlay f8-f15, whose 64 bits are all that the ABI keeps; the asm!
 * site clobbers the whole of v0-v31.
 *
 *   in and out:  r2, r3, r4      the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          r5              where to store the suspended stack pointer
 *                r1              the stack pointer of the context to resume
 *   destroyed:   r0, r14, cc (and r1, r5)
 *
 *   GREENLET_RESUME   entered by `brasl %r14`, which leaves the suspending
 *                     side's resume address in r14 (and, on machines that
 *                     predict returns, records the call); the routine stores
 *                     r14 into the frame. Leaves by `br %r1` to the resumed
 *                     side's resume address: a branch through a register other
 *                     than r14 is not taken for a return.
 *   GREENLET_YIELD    entered by `jg` after the asm! block has put its own
 *                     resume address (a label after the `jg`) in r14 with
 *                     `larl`. It stores r14 like RESUME and leaves by
 *                     `br %r14`, the return: when the resumed side is the one
 *                     whose RESUME is still pending, that return matches the
 *                     RESUME's `brasl`, so in parent/child ping-pong every
 *                     return pairs with its call. The Rust layer chooses; a
 *                     wrong choice costs a mispredicted branch, never
 *                     correctness.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       r2 = 16-aligned top of a fresh stack, r3 = entry, r4 = arg; writes
 *       entry and arg in the 16 bytes below `top`, below them the 160-byte
 *       register save area that entry's caller provides (back chain 0), and
 *       below that a frame shaped like a suspended one, whose resume address
 *       is GREENLET_ENTRY, and returns its stack pointer. (Only one register,
 *       r11, is saved in the frame, too few to carry both words; the two above
 *       the save area are read by the entry like the suspended side's own
 *       frame would be.) Also writes the chain-end word at top + 8 (below).
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       runs with r15 = top - 176, on the save area GREENLET_INIT laid out
 *       (so r15 never moves in it and its CFI holds at every instruction),
 *       and enters entry(a, b, c, arg) (r2, r3, r4 from the switch, arg in r5)
 *       by loading r14 with a trap inside this routine (`larl`) and branching
 *       with `br`: not `basr`, so that no call is recorded that no return will
 *       ever match. entry never returns. Its CFI goes on into the greenlet
 *       whose RESUME into this one is pending (SPEC section 10), as
 *       asm/x86_64.S describes, with the ABI's CFA, which is the stack pointer
 *       + 160: CFA = the resumer's saved r15 + FRAME_BYTES + 160, its r14 and
 *       r11 from its saved frame, when its state byte says suspended; else
 *       CFA = r15 + 176 + END_CFA, whose r14 is the chain-end word, one
 *       instruction into GREENLET_ENTRY_no_resumer (which ends the walk).
 *       The 176 is the link area's distance above the trampoline's r15: the
 *       save area and the entry and arg words. Two more differences from the
 *       other CPUs: the caller's r15 gets a rule of its own, CFA - 160, since
 *       unwinders take it from where a callee saved it and the switch saves
 *       it nowhere (without the rule the walk goes on with this greenlet's
 *       r15 and faults); and the state byte, first in its word, is the
 *       word's top byte on this big-endian CPU (a shift, not a mask).
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended); F is 8 with GREENLET_FP_CONTROL and 0 without. It is a frame of
 * the routine's own, below the asm! site's stack pointer: Rust promises an
 * asm! block without `nostack` the stack below r15, but nothing of the
 * caller's frame, so the 160-byte register save area at 0(%r15) is left
 * alone. The ABI aligns the stack to 8 bytes, which both sizes keep. Both
 * entries write and read this one layout, so either resumes a context that
 * either suspended.
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    r11 (frame pointer)                 0 (ends frame-pointer chains)
 *     +8     8    resume address (r14)                GREENLET_ENTRY
 *   fp-control only:
 *    +16     4    FPC (control bits used)             the creator's FPC
 *    +20     4    padding                             0
 *   always:
 *   16+F          the suspended side's own frames     entry's register save area
 *                                                     (160 bytes, back chain 0)
 *  176+F                                              entry function
 *  184+F                                              entry argument
 *  192+F                                              top: the link area (below)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  function keeps what is live there) |  |                          |
 *      +-------------------------------------+  +--------------------------+
 *  +16 | [FPC | pad]  fp-control             |  | [FPC | pad]              |
 *   +8 |  resume address (from r14)          |  |  resume address          | -> br %r1 / %r14
 *   +0 |  r11                                |  |  r11                     |  loaded
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (r5)                         ^ r1
 *
 * A new stack, as init_stack and GREENLET_INIT leave it:
 *
 *        |  the closure (src/greenlet/builder.rs)                  |
 *        +---------------------------------------------------------+
 *   +24  |  0 (the state byte when the area stands in for a record) |
 *   +16  |  0 (the resumer of the record at top + 8)                |
 *    +8  |  chain-end word: 5f, in GREENLET_ENTRY_no_resumer        |  (INIT)
 *   top  |  link word: the greenlet's record, or top + 8            |
 *        +---------------------------------------------------------+
 *   -8   |  entry argument                                          |
 *  -16   |  entry function                                          |
 *        +---------------------------------------------------------+
 *        |  entry's register save area (160 bytes, back chain 0)    |  <- r15 in GREENLET_ENTRY
 *        +---------------------------------------------------------+
 *        |  initial frame (the table above)                         |
 *        +---------------------------------------------------------+
 *
 * GREENLET_ENTRY thus gives entry r15 = top - 176, 16-aligned like every
 * other port's.
 *
 * Why this shape: on x86_64 (asm/x86_64.S has the numbers, issue 22) the
 * call-in/jump-out + jump-in/return-out pair with the callee-saved registers
 * declared clobbered at the asm! site ran the round trip in 2.15 ns against
 * 5.87 ns for one routine saving everything; here the old routine saved r6-r14
 * and f8-f15 on every switch (144 bytes). It has not been measured on IBM Z
 * hardware (only qemu was at hand).
 *
 * The FP control state (SPEC section 5). Without fp-control the FPC is not
 * touched: it belongs to the thread, as Rust assumes. With it, each greenlet
 * keeps the FPC's control fields: the IEEE exception masks (byte 0) and the
 * BFP and DFP rounding modes (byte 3). The IEEE flags (byte 1) and the data
 * exception code (byte 2) are status and stay with the thread: the restore
 * merges the resumed side's control bits with the status bits current when the
 * switch began, and skips the `sfpc` when the control bits already agree,
 * which is nearly always (any inexact operation sets a flag, so comparing the
 * whole FPC would differ all the time).
 *
 * CFI: the CFA is r15 + 160 at entry (the ABI's CIE) and r15 + 160 + 16 + F
 * once the frame is allocated; the resume address (r14) and r11 are
 * described at their slots, so a debugger or profiler stopped inside a switch
 * walks on to the asm! site's function. The description stays true across the
 * swap because the resumed frame has the same layout. GREENLET_ENTRY's CFA
 * for a suspended resumer is that same CFA, the one its switch had when it
 * stored its r15, so an unwinder goes on from it as from the switch itself.
 */

#include "platform.h"

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_R11    0
#define FRAME_RESUME 8
#define FRAME_FPC    16         /* fp-control only */
#define FRAME_BYTES  (16 + F)
/* Above entry's save area, under the link area: what GREENLET_ENTRY reads. */
#define START_ENTRY  0
#define START_ARG    8
#define START_BYTES  16
/* The register save area a caller provides its callee. */
#define SAVE_AREA    160
/* The ABI's CFA: the stack pointer at the call + 160 (the CIE's r15 + 160). */
#define CFA_SP       160

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). The trampoline's r15 is TOP_SP below the link area (the save
   area, the entry and arg words): TOP0 is DW_OP_breg15 (r15) + TOP_SP, the
   link area. END_CFA: the CFA with no resumer, from top, whose r14 slot is
   the chain-end word at top + 8; TOP_END is DW_OP_breg15 + TOP_SP + END_CFA.
   RESUMER_CFA: from a resumer's saved r15 to its CFA. Each offset is over
   127 and takes two bytes of LEB128, positive in the signed form too. */
#include "link.h"
#define TOP_SP      (START_BYTES + SAVE_AREA)
#define END_CFA     (8 + CFA_SP + FRAME_BYTES - FRAME_RESUME)
#define RESUMER_CFA (FRAME_BYTES + CFA_SP)
#if TOP_SP < 128 || TOP_SP + END_CFA >= 8192 || RESUMER_CFA < 128 || RESUMER_CFA >= 8192
#error "LEB2 encodes offsets of 128 to 8191 only"
#endif
#define LEB2(x) (((x) & 0x7f) | 0x80), ((x) >> 7)
#define SP_OP 0x7f
#define TOP0 SP_OP, LEB2(TOP_SP)
#define TOP_END SP_OP, LEB2(TOP_SP + END_CFA)
#define CFI_RESUMER CFI_RESUMER_AT(TOP0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(TOP0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)

/* FPC status, the thread's: the IEEE flags (byte 1) and the DXC (byte 2).
   FPC control, per greenlet: the IEEE masks (byte 0), the rounding modes
   (byte 3). */
#define FPC_STATUS   0x00ffff00
#define FPC_CONTROL  0xff0000ff

/* The body both entries share: allocate the frame, store r11 and the resume
   address (r14) (and the FPC), store r15 to (r5), load r1, install the other
   side's FP control bits, load its r11, pop the frame. The resumed side's
   resume address is loaded by the caller of the macro, into `\target`,
   before the pop. */
.macro SWAP_STACKS target
        aghi    %r15, -FRAME_BYTES
        .cfi_adjust_cfa_offset FRAME_BYTES
        stg     %r11, FRAME_R11(%r15)
        .cfi_rel_offset %r11, FRAME_R11
        stg     %r14, FRAME_RESUME(%r15)
        .cfi_rel_offset %r14, FRAME_RESUME
#ifdef GREENLET_FP_CONTROL
        efpc    %r0                     /* ours, kept across the swap */
        st      %r0, FRAME_FPC(%r15)
#endif
        /* The only instructions that touch both stacks. */
        stg     %r15, 0(%r5)
        lgr     %r15, %r1
#ifdef GREENLET_FP_CONTROL
        l       %r5, FRAME_FPC(%r15)    /* theirs */
        lr      %r1, %r5
        xr      %r1, %r0
        nilf    %r1, FPC_CONTROL        /* differing control bits; CC 0 if none */
        jz      1f                      /* same control bits: keep ours, flags too */
        nilf    %r5, FPC_CONTROL        /* their control bits */
        nilf    %r0, FPC_STATUS         /* the thread's flags and DXC */
        or      %r5, %r0
        sfpc    %r5
1:
#endif
        lg      %r11, FRAME_R11(%r15)
        lg      \target, FRAME_RESUME(%r15)
        la      %r15, FRAME_BYTES(%r15)
        .cfi_adjust_cfa_offset -FRAME_BYTES
        .cfi_restore %r11
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS %r1
        .cfi_register %r14, %r1
        br      %r1                     /* not r14: that would be taken for a return */
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS %r14
        .cfi_restore %r14
        br      %r14                    /* returns to the matching RESUME's brasl */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        larl    %r1, 5f
        stg     %r1, 8(%r2)
        aghi    %r2, -(START_BYTES + SAVE_AREA + FRAME_BYTES)   /* the frame, and the result */
        stg     %r3, FRAME_BYTES + SAVE_AREA + START_ENTRY(%r2)
        stg     %r4, FRAME_BYTES + SAVE_AREA + START_ARG(%r2)
        lghi    %r0, 0
        stg     %r0, FRAME_BYTES(%r2)   /* entry's back chain ends here */
        stg     %r0, FRAME_R11(%r2)
        larl    %r1, GREENLET_ENTRY
        stg     %r1, FRAME_RESUME(%r2)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        st      %r0, FRAME_FPC + 4(%r2)
        stfpc   FRAME_FPC(%r2)
#endif
        br      %r14
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10); asm/x86_64.S explains the expression, which is
           the same here with s390x's r15, save area and frame, and its CFA
           160 above the stack pointer. */
        .cfi_signal_frame
        .cfi_escape 0x0f, 63                    /* DW_CFA_def_cfa_expression */
        .cfi_escape TOP_END                     /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 56, 0x25              /* DW_OP_const1u 56, DW_OP_shr: the state byte, */
                                                /* the word's first byte, its top (big-endian) */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, LEB2(RESUMER_CFA) /* DW_OP_deref: its saved r15; + the frame and 160 */
        .cfi_escape TOP_END, 0x1c               /* - (top + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset %r14, FRAME_RESUME - RESUMER_CFA
        .cfi_offset %r11, FRAME_R11 - RESUMER_CFA
        /* The caller's r15 is the CFA - 160: said outright, since it is saved
           nowhere (a called function saves its r15 in its caller's save area,
           which is where unwinders find it; a switch keeps it in the record). */
        .cfi_val_offset %r15, -CFA_SP
        /* r2, r3, r4 = the words of the first switch; r15 = top - 176 */
        lg      %r1, SAVE_AREA + START_ENTRY(%r15)
        lg      %r5, SAVE_AREA + START_ARG(%r15)        /* arg, the fourth argument */
        larl    %r14, 2f                /* a return address inside this routine */
        br      %r1                     /* entry(a, b, c, arg), never returns */
2:      .word   0                       /* illegal instruction: entry returned */
        .cfi_endproc
FUNCTION_END(GREENLET_ENTRY)

/* The caller the trampoline names when the chain ends (asm/x86_64.S says
   why it exists). Never run; its return address is undefined. Local; the
   stored address is one instruction in, as symbolizers look up a return
   address minus one. */
        .p2align 3
        .type   NO_RESUMER, @function
NO_RESUMER:
        .cfi_startproc
        .cfi_undefined %r14
        nopr    %r7
5:      .word   0                       /* illegal instruction */
        .cfi_endproc
        .size   NO_RESUMER, .-NO_RESUMER

        GNU_STACK_NOTE
