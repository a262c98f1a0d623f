/*
 * greenlet stack switch for 64-bit PowerPC, ELFv2 ABI (powerpc64le Linux).
 * Rust calls this CPU family `powerpc64` (CARGO_CFG_TARGET_ARCH), hence the
 * name. The code is ELFv2 only (the big-endian ELFv1 ABI, with function
 * descriptors, is refused below); it is written endian-neutral but tested on
 * little-endian only, under qemu-ppc64le.
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/powerpc64.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * clobbered every other register that Rust lets them name: clobber_abi("C")
 * (r0, r3-r12, vs0-vs31, v0-v19, cr0, cr1, cr5-cr7, ctr, lr, xer) plus the
 * callee-saved r14-r29, f14-f31, v20-v31 and cr2-cr4. So the compiler keeps
 * across a switch only what is live, in registers of its choice, and saves
 * the callee-saved ones it uses in its own prologue. What `asm!` cannot name
 * is saved here, with the resume address:
 *
 *   r2    the TOC pointer (reserved by Rust; see "The TOC" below)
 *   r30   LLVM's base pointer (reserved by Rust)
 *   r31   the frame pointer (reserved by Rust)
 *   r1    the stack pointer, through *save_sp
 *
 * Not saved: r13, the thread pointer (both sides run on one thread, which
 * owns it); VRSAVE (ELFv2 reserves it, Linux neither reads nor switches it,
 * and no ELFv2 compiler updates it; Rust refuses to name it).
 *
 *   in and out:  r3, r4, r5      the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          r6              where to store the suspended stack pointer
 *                r7              the stack pointer of the context to resume
 *   destroyed:   r0, ctr (RESUME), lr (YIELD) (and r6, r7); with
 *                fp-control also r8-r11, f0 and cr0
 *
 *   GREENLET_RESUME   entered by `bl`, so the CPU's link-stack predictor
 *                     pushes the suspending side's resume address (the
 *                     instruction after the `bl`), which the routine stores
 *                     from LR into the frame. Leaves by `mtctr` + `bctr` to
 *                     the resumed side's resume address: `blr` would pop the
 *                     entry the `bl` just pushed and mispredict every time,
 *                     while `bctr` is predicted by the target cache.
 *   GREENLET_YIELD    entered by `b` after the asm! block has put its own
 *                     resume address (a label after the `b`) in LR, with
 *                     `bcl 20,31,$+4` + `mflr` + `addi` + `mtlr`. `bcl
 *                     20,31,$+4` is the form the ISA names for reading the
 *                     address of the next instruction (Book II, "branch
 *                     prediction"): POWER processors do not push it on the
 *                     link stack, so it leaves the predictor alone. (POWER9's
 *                     `addpcis`/`lnia` does the same in one instruction; the
 *                     ppc64le baseline is POWER8.) YIELD stores LR like RESUME
 *                     and leaves by `blr`: when the resumed side is the one
 *                     whose RESUME is still pending, the link stack pops
 *                     exactly the entry that RESUME's `bl` pushed, so in
 *                     parent/child ping-pong every return is predicted. The
 *                     Rust layer chooses; a wrong choice costs a mispredicted
 *                     branch, never correctness.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       r3 = 16-aligned top of a fresh stack, r4 = entry, r5 = arg; writes
 *       below `top` a frame shaped like a suspended one, whose resume address
 *       is GREENLET_ENTRY, with entry in the r30 slot and arg in the r31 slot,
 *       and returns its stack pointer.
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       enters entry(a, b, c, arg) (r3, r4, r5 from the switch, arg in r6) by
 *       setting LR to a `trap` inside this routine (`bcl 20,31,$+4` again)
 *       and branching with `bctr`: not `bctrl`, so that the link stack holds
 *       no entry that no `blr` will ever pop. entry never returns.
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended). It is a frame of the routine's own, allocated by `stdu` below
 * the asm! site's stack pointer: Rust promises an asm! block without
 * `nostack` the stack below r1, but nothing in the caller's frame, so the
 * caller's ELFv2 header (its LR and CR save words) is left alone. Both builds
 * use the same 48 bytes; both entries write and read this one layout, so
 * either resumes a context that either suspended.
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    back chain (the asm! site's r1)     top - 32 (the entry's header)
 *     +8     8    fp-control: FPSCR (control bits     the creator's FPSCR
 *                 used); without: unused              0
 *    +16     8    resume address                      GREENLET_ENTRY
 *    +24     8    r2 (TOC pointer)                    the creator's r2
 *    +32     8    r30                                 entry function
 *    +40     8    r31                                 entry argument
 *    +48          the suspended side's own frames     the entry's header (32 bytes,
 *                                                     all 0), then the top
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  function keeps what is live there) |  |                          |
 *      +-------------------------------------+  +--------------------------+
 *  +40 |  r31                                |  |  r31                     | \
 *  +32 |  r30                                |  |  r30                     |  } loaded
 *  +24 |  r2                                 |  |  r2                      | /
 *  +16 |  resume address (from LR)           |  |  resume address          | -> ctr / lr
 *   +8 | [FPSCR]  fp-control                 |  | [FPSCR]                  |
 *   +0 |  back chain                         |  |  back chain              |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (r6)                         ^ r7
 *
 * asm! blocks run with r1 16-aligned; the 48-byte frame keeps it so.
 * GREENLET_INIT puts the frame at top - 32 - 48, so GREENLET_ENTRY runs with
 * r1 = top - 32, on a bare 32-byte ELFv2 header whose back chain is 0: entry
 * stores its LR and CR in it as the ABI lets a callee, and back-chain walks
 * stop there. entry takes four register arguments and is not variadic, so
 * ELFv2 requires no parameter save area of its caller.
 *
 * Above the header lies the link area that init_stack (src/arch/mod.rs)
 * writes and GREENLET_INIT completes; GREENLET_ENTRY's CFI reads it to go on
 * into the greenlet whose RESUME into this one is pending (SPEC section 10),
 * as asm/x86_64.S describes: CFA = the resumer's saved r1 + FRAME_BYTES, its
 * LR, r2, r30, r31 from its saved frame, when its state byte says suspended;
 * else CFA = top + END_CFA, whose LR is the chain-end word, one instruction
 * into GREENLET_ENTRY_no_resumer (which ends the walk).
 *
 *      |  the closure (src/greenlet/builder.rs)                  |
 *      +---------------------------------------------------------+
 * +24  |  0 (the state byte when the area stands in for a record) |
 * +16  |  0 (the resumer of the record at top + 8)                |
 *  +8  |  chain-end word: 5f, in GREENLET_ENTRY_no_resumer        |  (INIT)
 * top  |  link word: the greenlet's record, or top + 8            |
 *      +---------------------------------------------------------+
 *      |  the entry's header (32 bytes, back chain 0)             |  <- r1 in GREENLET_ENTRY
 *      +---------------------------------------------------------+
 *      |  initial frame (48 bytes, the table above)               |
 *      +---------------------------------------------------------+
 *
 * The TOC (r2). LLVM keeps r2 as a constant of the module and assumes an
 * asm! block leaves it alone. Both sides of a switch are normally in one
 * module with one TOC, but a large link may hold several TOCs, or the asm!
 * site may be inlined into code of another module, and the side being
 * resumed must get back its own r2, not the suspending side's: so r2 is saved
 * and restored (two instructions). The routines use no TOC themselves (they
 * find GREENLET_ENTRY PC-relatively), so all of them have a single entry
 * point and leave st_other 0. The call sites' `bl` and `b` are not followed
 * by the `nop` a TOC-restoring stub would need: the symbols are hidden, in
 * the same link and TOC group as their callers; if a linker ever needed such
 * a stub it would refuse the `bl` at link time rather than break it.
 * GREENLET_ENTRY branches to entry with r12 = entry, as ELFv2 requires of an
 * indirect call (entry's global entry point computes its own r2 from it).
 *
 * Why this shape: on x86_64 (asm/x86_64.S has the numbers, issue 22) the
 * call-in/jump-out + jump-in/return-out pair with the callee-saved registers
 * declared clobbered at the asm! site ran the round trip in 2.15 ns against
 * 5.87 ns for one routine saving everything; here the old routine saved 18
 * GPRs, 18 FPRs, 12 vector registers and CR on every switch (a 512-byte
 * frame, LR and CR in the caller's header). It has not been measured on
 * POWER hardware (only qemu was at hand).
 *
 * The FP control state (SPEC section 5). Without fp-control the FPSCR is not
 * touched: it belongs to the thread. With it, each greenlet keeps its own
 * control bits, RN (rounding), NI (non-IEEE mode), the five exception enables
 * VE OE UE ZE XE and DRN (decimal rounding, in the upper word), while every
 * status bit (the sticky exception flags, FR, FI, FPRF) stays with the thread.
 * `mtfsf` writes whole 4-bit fields; fields 6 and 7 of the low word hold
 * exactly the enables, NI and RN, and field 7 of the upper word holds DRN, so
 * writing those three fields installs the other side's control bits and
 * leaves the thread's flags alone. `mtfsf` is a costly, serialising write,
 * so it is skipped when the control bits already agree, which is nearly
 * always. Each switch reads ours with `mffs` (POWER9's lighter `mffsl` is not
 * in the POWER8 baseline); f0 is scratch (the asm! site clobbers vs0).
 *
 * CFI: the CFA is r1 + 48 from the `stdu` on, and the resume address (the
 * return address, DWARF register 65, LR), r30 and r31 are described at their
 * slots, so a debugger or profiler stopped inside a switch walks on to the
 * asm! site's function. The description stays true across the swap because
 * the resumed frame has the same layout.
 *
 * No property note is claimed (ELFv2 has no branch-protection note on Linux).
 */

#if !defined(_CALL_ELF) || _CALL_ELF != 2
#error "asm/powerpc64.S implements the ELFv2 ABI only (powerpc64le; ELFv1 with function descriptors is not supported)"
#endif

#include "platform.h"

#define FRAME_BACKCHAIN 0
#define FRAME_FPSCR     8
#define FRAME_RESUME    16
#define FRAME_TOC       24
#define FRAME_R30       32
#define FRAME_R31       40
#define FRAME_BYTES     48
/* The entry's frame: a bare ELFv2 header (back chain, CR, LR, TOC save). */
#define ENTRY_FRAME_BYTES 32

/* DWARF register numbers (ELFv2): r0-r31 are 0-31, LR 65. */
#define DWARF_LR 65

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). Unwound into, the trampoline's r1 is top - ENTRY_FRAME_BYTES,
   below the entry's header: TOP0 is DW_OP_breg1 (r1) + 32, the link area.
   END_CFA: the CFA with no resumer, whose resume-address slot is the
   chain-end word at top + 8; TOP_END is DW_OP_breg1 + 32 + END_CFA, whose
   offset (72) takes two bytes of SLEB128. */
#include "link.h"
#define END_CFA (8 + FRAME_BYTES - FRAME_RESUME)
#if ENTRY_FRAME_BYTES != 32 || END_CFA != 40
#error "TOP0 and TOP_END encode these offsets"
#endif
#define TOP0 0x71, 32
#define TOP_END 0x71, 0xc8, 0x00
#define CFI_RESUMER CFI_RESUMER_AT(TOP0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(TOP0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)

/* FPSCR control bits: RN, NI, VE OE UE ZE XE (low word), DRN (bits 32-34). */
#define FPSCR_CONTROL_LOW  0xff
#define FPSCR_DRN_SHIFTED  7

        .abiversion 2

/* The body both entries share: allocate the frame, store the resume address
   (LR), r2, r30, r31 (and the FPSCR), store r1 to (r6), load r7, install the
   other side's FP control bits, load its r2, r30, r31 and resume address
   into r0, pop the frame. The caller of the macro then branches to r0. */
.macro SWAP_STACKS
        mflr    %r0
        stdu    %r1, -FRAME_BYTES(%r1)
        .cfi_adjust_cfa_offset FRAME_BYTES
        std     %r0, FRAME_RESUME(%r1)
        .cfi_offset DWARF_LR, FRAME_RESUME - FRAME_BYTES
        std     %r2, FRAME_TOC(%r1)
        std     %r30, FRAME_R30(%r1)
        .cfi_offset 30, FRAME_R30 - FRAME_BYTES
        std     %r31, FRAME_R31(%r1)
        .cfi_offset 31, FRAME_R31 - FRAME_BYTES
#ifdef GREENLET_FP_CONTROL
        mffs    %f0
        stfd    %f0, FRAME_FPSCR(%r1)
        mffprd  %r8, %f0                /* ours, kept across the swap */
#endif
        /* The only instructions that touch both stacks. */
        std     %r1, 0(%r6)
        mr      %r1, %r7
#ifdef GREENLET_FP_CONTROL
        ld      %r9, FRAME_FPSCR(%r1)   /* theirs */
        li      %r10, FPSCR_DRN_SHIFTED
        sldi    %r10, %r10, 32
        ori     %r10, %r10, FPSCR_CONTROL_LOW
        xor     %r11, %r9, %r8
        and.    %r11, %r11, %r10
        beq     1f                      /* same control bits: keep ours, flags too */
        lfd     %f0, FRAME_FPSCR(%r1)
        mtfsf   0x03, %f0               /* fields 6-7: enables, NI, RN */
        mtfsf   0x01, %f0, 0, 1         /* upper field 7: DRN */
1:
#endif
        ld      %r0, FRAME_RESUME(%r1)
        ld      %r2, FRAME_TOC(%r1)
        ld      %r30, FRAME_R30(%r1)
        ld      %r31, FRAME_R31(%r1)
        addi    %r1, %r1, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        .cfi_register DWARF_LR, 0
        .cfi_restore 30
        .cfi_restore 31
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        .cfi_startproc
        SWAP_STACKS
        mtctr   %r0
        bctr                            /* not blr: that would pop our own bl */
        .cfi_endproc
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        .cfi_startproc
        SWAP_STACKS
        mtlr    %r0
        blr                             /* pops what the matching RESUME's bl pushed */
        .cfi_endproc
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        addi    %r6, %r3, -ENTRY_FRAME_BYTES            /* the entry's header */
        addi    %r3, %r3, -(ENTRY_FRAME_BYTES + FRAME_BYTES)
        li      %r0, 0
        std     %r0, 0(%r6)             /* back chain 0: walks end here */
        std     %r0, 8(%r6)
        std     %r0, 16(%r6)
        std     %r0, 24(%r6)
        std     %r6, FRAME_BACKCHAIN(%r3)
        std     %r0, FRAME_FPSCR(%r3)
        /* GREENLET_ENTRY's address, PC-relatively: no TOC needed. */
        mflr    %r8
        bcl     20, 31, 2f              /* LR = 2f, the link stack untouched */
2:      mflr    %r7
        mtlr    %r8
        addi    %r7, %r7, GREENLET_ENTRY - 2b
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        addi    %r9, %r7, 5f - GREENLET_ENTRY
        std     %r9, ENTRY_FRAME_BYTES + FRAME_BYTES + 8(%r3)
        std     %r7, FRAME_RESUME(%r3)
        std     %r2, FRAME_TOC(%r3)
        std     %r4, FRAME_R30(%r3)     /* entry */
        std     %r5, FRAME_R31(%r3)     /* arg */
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        mffs    %f0
        stfd    %f0, FRAME_FPSCR(%r3)
#endif
        blr
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10); asm/x86_64.S explains the expression, which is
           the same here with powerpc64le's r1, entry header and frame. */
        .cfi_signal_frame
        .cfi_escape 0x0f, 56                    /* DW_CFA_def_cfa_expression */
        .cfi_escape TOP_END                     /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 0xff, 0x1a            /* DW_OP_const1u 0xff, DW_OP_and: the state byte */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, FRAME_BYTES     /* DW_OP_deref: its saved r1; + the frame */
        .cfi_escape TOP_END, 0x1c               /* - (top + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset DWARF_LR, FRAME_RESUME - FRAME_BYTES
        .cfi_offset 2, FRAME_TOC - FRAME_BYTES
        .cfi_offset 30, FRAME_R30 - FRAME_BYTES
        .cfi_offset 31, FRAME_R31 - FRAME_BYTES
        /* r3, r4, r5 = the words of the first switch; r1 = top - 32 */
        mr      %r6, %r31               /* arg, the fourth argument */
        mr      %r12, %r30              /* ELFv2 indirect call: r12 = target */
        mtctr   %r12
        li      %r31, 0                 /* ends frame-pointer chains */
        li      %r30, 0
        bcl     20, 31, 3f              /* LR = 3f, the link stack untouched */
3:      mflr    %r11
        addi    %r11, %r11, 4f - 3b
        mtlr    %r11                    /* a return address inside this routine */
        bctr                            /* entry(a, b, c, arg), never returns */
4:      trap
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
        .cfi_undefined DWARF_LR
        nop
5:      trap
        .cfi_endproc
        .size   NO_RESUMER, .-NO_RESUMER

        GNU_STACK_NOTE
