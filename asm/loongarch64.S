/*
 * greenlet stack switch for loongarch64, LP64D calling convention (Linux).
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/loongarch64.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * every other register that Rust lets them name as clobbered (clobber_abi("C"),
 * which covers ra, a0-a7, t0-t8 and fa0-fa7, ft0-ft15, plus s0-s7 and
 * fs0-fs7), so the compiler keeps across a switch only what is live, in
 * registers of its choice. What `asm!` cannot name is saved here: fp (r22,
 * the frame pointer) and s8 (r31, which LLVM uses internally as its base
 * pointer), plus the resume address. The other registers `asm!` refuses need
 * no saving: tp (r2) is the thread pointer, the same on both sides because a
 * switch never leaves its thread, and r21 is reserved by the psABI (no user
 * code writes it).
 *
 *   in and out:  a0, a1, a2      the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          a3              where to store the suspended stack pointer
 *                a4              the stack pointer of the context to resume
 *                ra              the suspending side's resume address
 *   destroyed:   t0-t3 (and a3, a4, ra)
 *
 *   GREENLET_RESUME   entered by `bl`, which return-address predictors treat
 *                     as a call (a push), and which leaves the suspending
 *                     side's resume address in ra; the routine stores it.
 *                     Leaves by `jr $t0` (jirl $zero, $t0, 0): only
 *                     `jirl $zero, $ra, 0` is the return form that predictors
 *                     pop, so through t0 it is a plain indirect jump.
 *   GREENLET_YIELD    entered by `b` (a plain branch) after the asm! block has
 *                     loaded its own resume address (a label after the branch)
 *                     into ra; the routine stores it like RESUME does. Leaves
 *                     by `jr $ra` (jirl $zero, $ra, 0, a return): when the
 *                     resumed side is the one whose RESUME is still pending,
 *                     the predictor pops exactly the entry that RESUME's `bl`
 *                     pushed, so in parent/child ping-pong every return is
 *                     predicted. The Rust layer chooses; a wrong choice costs
 *                     a mispredicted return, never correctness.
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
 *       (a0, a1, a2 from the switch, arg in a3) through t0: a jump, not a
 *       `jirl $ra` call, so that the predictor holds no entry that no return
 *       will ever pop. entry never returns. It runs with sp = top, where
 *       init_stack (src/arch/mod.rs) put the link area, and its CFI goes on
 *       into the greenlet whose RESUME into this one is pending (SPEC section
 *       10), as asm/x86_64.S describes: CFA = the resumer's saved sp +
 *       FRAME_BYTES, its ra, fp, s8 from its saved frame, when its state byte
 *       says suspended; else CFA = top + END_CFA, whose ra is the chain-end
 *       word, one instruction into GREENLET_ENTRY_no_resumer (which ends the
 *       walk).
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
 * the psABI keeps sp 16-aligned, so the fourth slot holds FCSR0 with
 * fp-control and is padding without it. The order is the psABI's frame
 * record, ra at the top and fp below it. Both entries write and read this one
 * layout, so either resumes a context that either suspended.
 *
 *   offset  size  content                              initial frame (GREENLET_INIT)
 *   ------  ----  -----------------------------------  -----------------------------
 *     +0     4    fp-control: FCSR0 (control bits      the creator's FCSR0
 *                 used); without: padding              0
 *     +4     4    padding                              0
 *     +8     8    s8 (r31)                             entry argument
 *    +16     8    fp (r22)                             entry function
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
 *  +24 |  resume address (ra, stored)        |  |  resume address          | -> jr t0 / jr ra
 *  +16 |  fp                                 |  |  fp                      |
 *   +8 |  s8                                 |  |  s8                      |
 *   +0 |  FCSR0 | padding                    |  |  FCSR0 | padding         |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (a3)                         ^ a4
 *
 * asm! blocks run with sp 16-aligned, and neither `bl` nor `b` moves it (the
 * return address is in a register), so the 32-byte frame keeps it aligned.
 * GREENLET_INIT puts the frame at top - 32, so GREENLET_ENTRY runs with
 * sp = top, 16-aligned, as entry's caller must provide.
 *
 * Why this shape (SPEC section 5, issue 22): measured on x86_64 in one C
 * harness, a switch that saves every callee-saved register and leaves both
 * ways by the same kind of branch costs 2.7x a corosensei-style inline switch;
 * the RESUME/YIELD pair with the callee-saved registers declared clobbered at
 * the asm! site costs 1.0x. The same reasons hold here: the compiler spills
 * only the registers live across the switch instead of all 19 (s0-s8, fp,
 * fs0-fs7, ra), and call/return pairing keeps the predictor in step. Not
 * measured on LoongArch hardware: the port is tested under qemu-user.
 *
 * The FP control state (SPEC section 5). Without fp-control FCSR0 is not
 * touched: it belongs to the thread. With it, each greenlet keeps its own
 * control bits, RM (rounding, bits 8-9) and the five exception enables (bits
 * 0-4), while the flags and causes stay with the thread. LoongArch gives each
 * field its own alias, so the restore writes FCSR1 (the enables) and FCSR3
 * (RM) and leaves the thread's flags alone; both writes are skipped when the
 * control bits already agree, which is nearly always.
 *
 * Only the low 64 bits of fs0-fs7 are callee-saved (the LSX/LASX upper parts
 * are caller-saved), and the asm! site declares them clobbered.
 */
#include "platform.h"

#define FRAME_FCSR    0         /* fp-control only; padding without */
#define FRAME_S8      8
#define FRAME_FP      16
#define FRAME_RESUME  24
#define FRAME_BYTES   32
/* FCSR0 control bits: the enables (0-4) and RM (8-9). */
#define FCSR_CONTROL  0x31f
/* DWARF register numbers: ra r1, fp r22, s8 r31. */
#define DW_RA 1
#define DW_FP 22
#define DW_S8 31

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). SP_OP is DW_OP_breg3 (sp) + offset. END_CFA: the CFA with no
   resumer, whose resume-address slot is the chain-end word at sp + 8. */
#include "link.h"
#define END_CFA (8 + FRAME_BYTES - FRAME_RESUME)
#define SP_OP 0x73
#define CFI_RESUMER CFI_RESUMER_AT(SP_OP, 0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(SP_OP, 0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)

/* The body both entries share: store the resume address (in ra) and fp, s8
   (and FCSR0), store sp to (a3), load a4, and from there load the resumed
   side's resume address into \link (first, so that the load has the most time
   before the jump) and restore fp, s8 (and the FP control bits). The caller
   pops the frame. The CFI stays true across the swap because the resumed
   frame has the same layout. */
.macro SWAP_STACKS link
        addi.d  $sp, $sp, -FRAME_BYTES
        .cfi_adjust_cfa_offset FRAME_BYTES
        st.d    $ra, $sp, FRAME_RESUME
        .cfi_rel_offset DW_RA, FRAME_RESUME
        st.d    $fp, $sp, FRAME_FP
        .cfi_rel_offset DW_FP, FRAME_FP
        st.d    $s8, $sp, FRAME_S8
        .cfi_rel_offset DW_S8, FRAME_S8
#ifdef GREENLET_FP_CONTROL
        movfcsr2gr $t1, $fcsr0          /* ours, kept in t1 across the swap */
        st.w    $t1, $sp, FRAME_FCSR
#endif
        /* The only instructions that touch both stacks. */
        st.d    $sp, $a3, 0
        move    $sp, $a4
        ld.d    \link, $sp, FRAME_RESUME /* still saved at CFA-8 as well */
        ld.d    $fp, $sp, FRAME_FP
        .cfi_restore DW_FP
        ld.d    $s8, $sp, FRAME_S8
        .cfi_restore DW_S8
#ifdef GREENLET_FP_CONTROL
        ld.w    $t2, $sp, FRAME_FCSR    /* theirs */
        xor     $t3, $t1, $t2
        andi    $t3, $t3, FCSR_CONTROL
        beqz    $t3, 1f                 /* same control bits: keep ours, flags too */
        movgr2fcsr $fcsr1, $t2          /* their enables */
        movgr2fcsr $fcsr3, $t2          /* their rounding mode */
1:
#endif
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS $t0                 /* the resumed side's resume address */
        .cfi_register DW_RA, 12         /* in t0 (r12) */
        addi.d  $sp, $sp, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        jr      $t0                     /* jirl $zero, $t0, 0: not a return */
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS $ra
        .cfi_restore DW_RA
        addi.d  $sp, $sp, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        jr      $ra                     /* the return: pops what RESUME's bl pushed */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        la.local $t0, 5f
        st.d    $t0, $a0, 8
        addi.d  $a0, $a0, -FRAME_BYTES
        st.d    $a1, $a0, FRAME_FP      /* fp = entry */
        st.d    $a2, $a0, FRAME_S8      /* s8 = arg */
        la.local $t0, GREENLET_ENTRY
        st.d    $t0, $a0, FRAME_RESUME
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movfcsr2gr $t1, $fcsr0
        bstrpick.d $t1, $t1, 31, 0
        st.d    $t1, $a0, FRAME_FCSR
#else
        st.d    $zero, $a0, FRAME_FCSR
#endif
        jr      $ra
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10); asm/x86_64.S explains the expression, which is
           the same here with loongarch64's sp and frame. */
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
        .cfi_offset DW_RA, FRAME_RESUME - FRAME_BYTES
        .cfi_offset DW_FP, FRAME_FP - FRAME_BYTES
        .cfi_offset DW_S8, FRAME_S8 - FRAME_BYTES
        move    $t0, $fp                /* entry, from the initial frame */
        move    $a3, $s8                /* arg, the fourth argument */
        move    $fp, $zero              /* ends frame-pointer chains */
        pcaddi  $ra, 2                  /* ra = label 3 below, inside this routine */
        jr      $t0                     /* entry(a, b, c, arg), never returns */
3:      break   0
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
        .cfi_undefined DW_RA
        nop
5:      break   0
        .cfi_endproc
        .size   NO_RESUMER, .-NO_RESUMER

        GNU_STACK_NOTE
