/*
 * greenlet stack switch for riscv64, LP64D calling convention (Linux, RV64GC).
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/riscv64.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * every other register that Rust lets them name as clobbered (clobber_abi("C"),
 * which covers ra, t0-t6, a0-a7, ft0-ft11, fa0-fa7 and v0-v31, plus s2-s11 and
 * fs0-fs11), so the compiler keeps across a switch only what is live, in
 * registers of its choice. What `asm!` cannot name is saved here: s0 (the frame
 * pointer) and s1 (LLVM's base pointer), plus the resume address. The other
 * registers `asm!` refuses need no saving: gp is set once at program start
 * (the linker's __global_pointer$) and never changes, and tp is the thread
 * pointer, the same on both sides because a switch never leaves its thread.
 *
 *   in and out:  a0, a1, a2      the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          a3              where to store the suspended stack pointer
 *                a4              the stack pointer of the context to resume
 *                ra              the suspending side's resume address
 *   destroyed:   t0, t1, t2 (and a3, a4, ra)
 *
 *   GREENLET_RESUME   entered by `call` (jal / auipc+jalr with rd = ra), which
 *                     the return-address stack (RAS) treats as a push, and
 *                     which leaves the suspending side's resume address in ra;
 *                     the routine stores it. Leaves by `jr t1` (jalr with
 *                     rd = x0 and rs1 = x6): with neither register a link
 *                     register (x1, x5), the hints of the ISA manual make it a
 *                     plain indirect jump that neither pushes nor pops.
 *   GREENLET_YIELD    entered by a plain jump (`tail`: auipc t1 + jalr x0,
 *                     no hint; or `j` where the linker relaxes it) after the
 *                     asm! block has loaded its own resume address (a label
 *                     after the jump) into ra; the routine stores it like
 *                     RESUME does. Leaves by `ret` (jalr x0, 0(ra), a pop):
 *                     when the resumed side is the one whose RESUME is still
 *                     pending, the RAS pops exactly the entry that RESUME's
 *                     call pushed, so in parent/child ping-pong every return
 *                     is predicted.
 *                     The Rust layer chooses; a wrong choice costs a
 *                     mispredicted return, never correctness.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       a0 = 16-aligned top of a fresh stack, a1 = entry, a2 = arg; writes
 *       below `top` a frame shaped like a suspended one, whose resume address
 *       is GREENLET_ENTRY, and returns its stack pointer. Also writes the
 *       chain-end word at top + 8 (below).
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       sets ra to an address inside itself and jumps to entry(a, b, c, arg)
 *       (a0, a1, a2 from the switch, arg in a3): a jump through t1, not a
 *       call, so that the RAS holds no entry that no `ret` will ever pop.
 *       entry never returns. It runs with sp = top, where init_stack
 *       (src/arch/mod.rs) put the link area, and its CFI goes on into the
 *       greenlet whose RESUME into this one is pending (SPEC section 10), as
 *       asm/x86_64.S describes: CFA = the resumer's saved sp + FRAME_BYTES,
 *       its ra, s0, s1 from its saved frame, when its state byte says
 *       suspended; else CFA = top + END_CFA, whose ra is the chain-end word,
 *       one instruction into GREENLET_ENTRY_no_resumer (which ends the walk).
 *
 *       A new stack, as init_stack and GREENLET_INIT leave it:
 *
 *        |  the closure (src/greenlet/builder.rs)                  |
 *        +---------------------------------------------------------+
 *   +24  |  0 (the state byte when the area stands in for a record) |
 *   +16  |  0 (the resumer of the record at top + 8)                |
 *    +8  |  chain-end word: 5f, in GREENLET_ENTRY_no_resumer        |  (INIT)
 *   top  |  link word: the greenlet's record, or top + 8            |  <- sp in GREENLET_ENTRY
 *        +---------------------------------------------------------+
 *        |  initial frame (the table below)                         |
 *        +---------------------------------------------------------+
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended). Both builds use the same 32 bytes: three registers take 24 and
 * the psABI keeps sp 16-aligned, so the fourth slot holds the rounding mode
 * with fp-control and is padding without it. The order is the psABI's frame
 * record, ra at the top and the frame pointer below it. Both entries write and
 * read this one layout, so either resumes a context that either suspended.
 *
 *   offset  size  content                              initial frame (GREENLET_INIT)
 *   ------  ----  -----------------------------------  -----------------------------
 *     +0     8    fp-control: frm (rounding mode)      the creator's frm
 *                 without:    padding                  0
 *     +8     8    s1                                   entry argument
 *    +16     8    s0 / fp                              entry function
 *    +24     8    resume address                       GREENLET_ENTRY
 *    +32          the suspended side's own frame       top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  caller keeps what is live there)   |  |                          |
 *      +-------------------------------------+  +--------------------------+
 *  +24 |  resume address (ra, stored)        |  |  resume address          | -> jr t1 / ret
 *  +16 |  s0                                 |  |  s0                      |
 *   +8 |  s1                                 |  |  s1                      |
 *   +0 |  frm | padding                      |  |  frm | padding           |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (a3)                         ^ a4
 *
 * asm! blocks run with sp 16-aligned, and neither the call nor the jump moves
 * it (the return address is in a register), so the 32-byte frame keeps it
 * aligned. GREENLET_INIT puts the frame at top - 32, so GREENLET_ENTRY runs
 * with sp = top, 16-aligned, as entry's caller must provide.
 *
 * Why this shape (SPEC section 5, issue 22): measured on x86_64 in one C
 * harness, a switch that saves every callee-saved register and leaves both
 * ways by the same kind of branch costs 2.7x a corosensei-style inline switch;
 * the RESUME/YIELD pair with the callee-saved registers declared clobbered at
 * the asm! site costs 1.0x. The same reasons hold here: the compiler spills
 * only the few registers live across the switch instead of all 25 (s0-s11,
 * fs0-fs11, ra), and call/return pairing keeps the RAS in step. Not measured
 * on RISC-V hardware: the port is tested under qemu-user, which has no RAS.
 *
 * The FP control state (SPEC section 5). Without fp-control fcsr is not
 * touched: it belongs to the thread, as Rust assumes. With it, each greenlet
 * keeps its own rounding mode, the only control field of fcsr (RISC-V has no
 * trap enables and no flush-to-zero); the accrued exception flags (fflags)
 * stay with the thread. `frrm`/`fsrm` read and write frm alone, so no masking
 * is needed, and the `fsrm` is skipped when both sides' modes agree, which is
 * nearly always (a write to frm changes how every later FP instruction
 * rounds, so cores may drain or serialise for it; a compare costs a cycle).
 *
 * Only the low 64 bits of fs0-fs11 exist under D, and the asm! site declares
 * them clobbered; the vector registers of the V extension are all
 * caller-saved (clobber_abi("C") names them). Nothing here claims a landing
 * pad or a shadow stack (Zicfilp / Zicfiss): RESUME's call is never matched by
 * a return, and resume labels are not landing pads.
 */
#include "platform.h"

#define FRAME_FRM    0          /* fp-control only; padding without */
#define FRAME_S1     8
#define FRAME_S0     16
#define FRAME_RESUME 24
#define FRAME_BYTES  32

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). SP_OP is DW_OP_breg2 (sp) + offset. END_CFA: the CFA with no
   resumer, whose resume-address slot is the chain-end word at sp + 8. */
#include "link.h"
#define END_CFA (8 + FRAME_BYTES - FRAME_RESUME)
#define SP_OP 0x72
#define CFI_RESUMER CFI_RESUMER_AT(SP_OP, 0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(SP_OP, 0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)

/* The body both entries share: store the resume address (in ra) and s0, s1
   (and frm), store sp to (a3), load a4, and from there load the resumed
   side's resume address into \link (first, so that the load has the most time
   before the jump) and restore s0, s1 (and frm). The caller pops the frame.
   The CFI stays true across the swap because the resumed frame has the same
   layout. */
.macro SWAP_STACKS link
        addi    sp, sp, -FRAME_BYTES
        .cfi_adjust_cfa_offset FRAME_BYTES
        sd      ra, FRAME_RESUME(sp)
        .cfi_rel_offset ra, FRAME_RESUME
        sd      s0, FRAME_S0(sp)
        .cfi_rel_offset s0, FRAME_S0
        sd      s1, FRAME_S1(sp)
        .cfi_rel_offset s1, FRAME_S1
#ifdef GREENLET_FP_CONTROL
        frrm    t0                      /* ours, kept in t0 across the swap */
        sd      t0, FRAME_FRM(sp)
#endif
        /* The only instructions that touch both stacks. */
        sd      sp, 0(a3)
        mv      sp, a4
        ld      \link, FRAME_RESUME(sp)  /* still saved at CFA-8 as well */
        ld      s0, FRAME_S0(sp)
        .cfi_restore s0
        ld      s1, FRAME_S1(sp)
        .cfi_restore s1
#ifdef GREENLET_FP_CONTROL
        ld      t2, FRAME_FRM(sp)       /* theirs */
        beq     t0, t2, 1f              /* same rounding mode: no write */
        fsrm    t2
1:
#endif
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS t1                  /* the resumed side's resume address */
        .cfi_register ra, t1
        addi    sp, sp, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        jr      t1                      /* rd = x0, rs1 = x6: no RAS hint */
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS ra
        .cfi_restore ra
        addi    sp, sp, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        ret                             /* pops what the matching RESUME's call pushed */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        lla     t0, 5f
        sd      t0, 8(a0)
        addi    a0, a0, -FRAME_BYTES
        sd      a1, FRAME_S0(a0)        /* s0 = entry */
        sd      a2, FRAME_S1(a0)        /* s1 = arg */
        lla     t0, GREENLET_ENTRY
        sd      t0, FRAME_RESUME(a0)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's rounding mode, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        frrm    t0
        sd      t0, FRAME_FRM(a0)
#else
        sd      zero, FRAME_FRM(a0)
#endif
        ret
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10); asm/x86_64.S explains the expression, which is
           the same here with riscv64's sp and frame. */
        .cfi_signal_frame
        .cfi_escape 0x0f, 54                    /* DW_CFA_def_cfa_expression */
        .cfi_escape SP_OP, END_CFA              /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 0xff, 0x1a            /* DW_OP_const1u 0xff, DW_OP_and: the state byte */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, FRAME_BYTES     /* DW_OP_deref: its saved sp; + the frame */
        .cfi_escape SP_OP, END_CFA, 0x1c        /* - (sp + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset ra, FRAME_RESUME - FRAME_BYTES
        .cfi_offset s0, FRAME_S0 - FRAME_BYTES
        .cfi_offset s1, FRAME_S1 - FRAME_BYTES
        mv      t1, s0                  /* entry, from the initial frame */
        mv      a3, s1                  /* arg, the fourth argument */
        li      s0, 0                   /* ends frame-pointer chains */
        lla     ra, 3f                  /* a return address inside this routine */
        jr      t1                      /* entry(a, b, c, arg), never returns */
3:      unimp
        .cfi_endproc
FUNCTION_END(GREENLET_ENTRY)

/* The caller the trampoline names when the chain ends (asm/x86_64.S says
   why it exists). Never run; its return address is undefined. Local; the
   stored address is one instruction in, as symbolizers look up a return
   address minus one. */
        .p2align 2
        .type   NO_RESUMER, @function
NO_RESUMER:
        .cfi_startproc
        .cfi_undefined ra
        nop
5:      unimp
        .cfi_endproc
        .size   NO_RESUMER, .-NO_RESUMER

        GNU_STACK_NOTE
