/*
 * greenlet stack switch for 64-bit PowerPC, ELFv2 ABI (powerpc64le Linux).
 * Rust calls this CPU family `powerpc64` (CARGO_CFG_TARGET_ARCH), hence the
 * name. The code is ELFv2 only (the big-endian ELFv1 ABI, with function
 * descriptors, is refused below); it is written endian-neutral but tested on
 * little-endian only.
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       r3 = where to store the current stack pointer
 *       r4 = stack pointer of the context to resume (a frame laid out below)
 *       r5 = transfer word, handed to the resumed side in r3
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       r3 = 16-aligned top of a fresh stack, r4 = entry, r5 = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack branches here. It calls
 *       entry(transfer, arg) with entry in r14 and arg in r15, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Callee-saved (nonvolatile) in ELFv2: r14-r31, f14-f31, v20-v31, the CR
 * fields cr2-cr4, r1 (the stack pointer) and r2 (the TOC pointer). r13 is the
 * thread pointer and stays: both contexts run on one thread. LR is saved
 * because it is the return address. VRSAVE is not: ELFv2 reserves it, Linux
 * neither reads nor switches it, and compilers for ELFv2 Linux do not update it.
 *
 * The TOC pointer (r2). ELFv2 promises a caller that r2 is the same after a
 * call to a function like this one (no TOC of its own, st_other 0) as before.
 * Both sides of a switch are normally in one module with one TOC, but a large
 * link may hold several TOCs, and the side being resumed must get back the r2
 * it called with, not the suspending side's: so r2 is saved and restored like
 * any callee-saved register (two instructions). GREENLET_INIT needs the TOC to
 * find GREENLET_ENTRY, so it has the usual global entry point (r2 from r12)
 * and a local one for callers in this module. GREENLET_ENTRY calls entry
 * through a function pointer, so it sets r12 = entry as ELFv2 requires of an
 * indirect call (entry's global entry point computes its own r2 from it).
 * The TOC save doubleword of the trampoline's frame is not written: entry
 * never returns, so r2 is never restored from it.
 *
 * The saved frame is an ordinary ELFv2 stack frame: the switch saves LR and
 * CR in its caller's frame header (at 16 and 8 from the caller's r1), as
 * every ELFv2 function does, then allocates its own 512 bytes with `stdu`
 * (whose first doubleword, the back chain, points at the caller's frame).
 * Offsets from the saved stack pointer (what `save_sp` points at while a
 * context is suspended); both builds use the same layout:
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    back chain (the caller's r1)        top - 32 (the trampoline's frame)
 *     +8     8    FPSCR (fp-control only: control     the creator's FPSCR (fp-control)
 *                 bits used; unused without)
 *    +16     8    unused (this frame's LR save slot,
 *                 for callees it never has)
 *    +24     8    r2 (TOC pointer)                    the creator's r2
 *    +32   192    v20-v31 (16 each, 16-aligned)       whatever the memory held
 *   +224   144    r14-r31 (8 each)                    r14 = entry, r15 = arg, rest 0
 *   +368   144    f14-f31 (8 each)                    whatever the memory held
 *   +512          the caller's frame header:          the trampoline's frame (32 bytes):
 *   +512     8      its back chain                      0 (ends back-chain walks)
 *   +520     4      CR save word (cr2-cr4 used)         0
 *   +528     8      LR save: the return address         GREENLET_ENTRY
 *   +536     8      its TOC save doubleword             0
 *   +544          ...                                 top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's caller's frame ...  |           |  B's caller's frame ...  |
 *  528 |  LR: return into A       |           |  LR: return into B       |  -> ctr, bctr
 *  520 |  CR (cr2-cr4)            |           |  CR (cr2-cr4)            |
 *  512 |  back chain              |           |  back chain              |
 *      +--------------------------+           +--------------------------+
 *  368 |  f14-f31                 |           |  f14-f31                 |  \
 *  224 |  r14-r31                 |           |  r14-r31                 |   } loaded
 *   32 |  v20-v31                 |           |  v20-v31                 |   }
 *   24 |  r2                      |           |  r2                      |  /
 *    8 | [FPSCR]                  |           | [FPSCR]                  |  fp-control
 *    0 |  back chain -> 512       |           |  back chain -> 512       |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * The trampoline runs with r1 = top - 32, on a frame of just the 32-byte ELFv2
 * header whose back chain is 0, so that entry can store its LR and CR in its
 * caller's frame as the ABI lets it, and back-chain walks stop there. entry
 * takes two register arguments and is not variadic, so ELFv2 requires no
 * parameter save area of its caller. CFI marks LR undefined in the trampoline,
 * which ends DWARF unwinding and backtraces there too.
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
 * always. Each switch reads ours with `mffs`; POWER9's lighter `mffsl` is not
 * used because ppc64le's baseline is POWER8.
 *
 * Other choices:
 *  - The resumed side is entered with `mtctr` + `bctr`, not `mtlr` + `blr`.
 *    The top of the link-stack predictor always holds the return into the
 *    side being suspended (its `bl` pushed it), so a `blr` here would always
 *    mispredict; `bctr` is predicted by the target cache instead. This is the
 *    same reasoning as the `jmp` measured on x86_64 (asm/x86_64.S); it has not
 *    been measured on POWER hardware (only qemu was at hand).
 *  - v20-v31 are stored with `stvx` (POWER8 has no displacement form for
 *    vectors): six index registers and two base registers, r1 and r1 + 96,
 *    reach all twelve slots, before and after the swap.
 *  - The CR fields are restored with three single-field `mtocrf`, as GCC's
 *    own ELFv2 epilogues do: the one-field form is the fast one on POWER4
 *    and later, a multi-field `mtcrf` is not.
 *  - CFI describes the CFA, LR, r14-r31 and f14-f31 across the whole switch,
 *    so that a profiler or debugger stopped inside it can walk on to callers
 *    that keep their frame in r31. Vector and CR save slots are not described:
 *    DWARF unwinders do not need them to walk.
 */

#if !defined(_CALL_ELF) || _CALL_ELF != 2
#error "asm/powerpc64.S implements the ELFv2 ABI only (powerpc64le; ELFv1 with function descriptors is not supported)"
#endif

#define FRAME_BACKCHAIN 0
#define FRAME_FPSCR     8
#define FRAME_TOC       24
#define FRAME_V20       32
#define FRAME_R14       224
#define FRAME_F14       368
#define FRAME_BYTES     512
/* In the caller's frame header (from the caller's r1). */
#define CALLER_CR       8
#define CALLER_LR       16
/* The trampoline's frame: a bare ELFv2 header. */
#define ENTRY_FRAME_BYTES 32

#define GPR(n) (FRAME_R14 + 8 * ((n) - 14))
#define FPR(n) (FRAME_F14 + 8 * ((n) - 14))
#define VR(n)  (FRAME_V20 + 16 * ((n) - 20))
/* v26-v31 are reached from a second base register, r1 + VR_HIGH_BASE, with
   the same six index registers as v20-v25. */
#define VR_HIGH_BASE (VR(26) - VR(20))

/* DWARF register numbers (ELFv2): r0-r31 are 0-31, f0-f31 32-63, LR 65. */
#define DWARF_LR 65

/* FPSCR control bits: RN, NI, VE OE UE ZE XE (low word), DRN (bits 32-34). */
#define FPSCR_CONTROL_LOW  0xff
#define FPSCR_DRN_SHIFTED  7

        .abiversion 2
        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        mflr    %r0
        mfcr    %r12
        std     %r0, CALLER_LR(%r1)
        stw     %r12, CALLER_CR(%r1)
        .cfi_offset DWARF_LR, CALLER_LR
        stdu    %r1, -FRAME_BYTES(%r1)
        .cfi_adjust_cfa_offset FRAME_BYTES
        std     %r14, GPR(14)(%r1)
        std     %r15, GPR(15)(%r1)
        std     %r16, GPR(16)(%r1)
        std     %r17, GPR(17)(%r1)
        std     %r18, GPR(18)(%r1)
        std     %r19, GPR(19)(%r1)
        std     %r20, GPR(20)(%r1)
        std     %r21, GPR(21)(%r1)
        std     %r22, GPR(22)(%r1)
        std     %r23, GPR(23)(%r1)
        std     %r24, GPR(24)(%r1)
        std     %r25, GPR(25)(%r1)
        std     %r26, GPR(26)(%r1)
        std     %r27, GPR(27)(%r1)
        std     %r28, GPR(28)(%r1)
        std     %r29, GPR(29)(%r1)
        std     %r30, GPR(30)(%r1)
        std     %r31, GPR(31)(%r1)
        stfd    %f14, FPR(14)(%r1)
        stfd    %f15, FPR(15)(%r1)
        stfd    %f16, FPR(16)(%r1)
        stfd    %f17, FPR(17)(%r1)
        stfd    %f18, FPR(18)(%r1)
        stfd    %f19, FPR(19)(%r1)
        stfd    %f20, FPR(20)(%r1)
        stfd    %f21, FPR(21)(%r1)
        stfd    %f22, FPR(22)(%r1)
        stfd    %f23, FPR(23)(%r1)
        stfd    %f24, FPR(24)(%r1)
        stfd    %f25, FPR(25)(%r1)
        stfd    %f26, FPR(26)(%r1)
        stfd    %f27, FPR(27)(%r1)
        stfd    %f28, FPR(28)(%r1)
        stfd    %f29, FPR(29)(%r1)
        stfd    %f30, FPR(30)(%r1)
        stfd    %f31, FPR(31)(%r1)
        .cfi_rel_offset 14, GPR(14)
        .cfi_rel_offset 15, GPR(15)
        .cfi_rel_offset 16, GPR(16)
        .cfi_rel_offset 17, GPR(17)
        .cfi_rel_offset 18, GPR(18)
        .cfi_rel_offset 19, GPR(19)
        .cfi_rel_offset 20, GPR(20)
        .cfi_rel_offset 21, GPR(21)
        .cfi_rel_offset 22, GPR(22)
        .cfi_rel_offset 23, GPR(23)
        .cfi_rel_offset 24, GPR(24)
        .cfi_rel_offset 25, GPR(25)
        .cfi_rel_offset 26, GPR(26)
        .cfi_rel_offset 27, GPR(27)
        .cfi_rel_offset 28, GPR(28)
        .cfi_rel_offset 29, GPR(29)
        .cfi_rel_offset 30, GPR(30)
        .cfi_rel_offset 31, GPR(31)
        .cfi_rel_offset 46, FPR(14)
        .cfi_rel_offset 47, FPR(15)
        .cfi_rel_offset 48, FPR(16)
        .cfi_rel_offset 49, FPR(17)
        .cfi_rel_offset 50, FPR(18)
        .cfi_rel_offset 51, FPR(19)
        .cfi_rel_offset 52, FPR(20)
        .cfi_rel_offset 53, FPR(21)
        .cfi_rel_offset 54, FPR(22)
        .cfi_rel_offset 55, FPR(23)
        .cfi_rel_offset 56, FPR(24)
        .cfi_rel_offset 57, FPR(25)
        .cfi_rel_offset 58, FPR(26)
        .cfi_rel_offset 59, FPR(27)
        .cfi_rel_offset 60, FPR(28)
        .cfi_rel_offset 61, FPR(29)
        .cfi_rel_offset 62, FPR(30)
        .cfi_rel_offset 63, FPR(31)
        li      %r6, VR(20)
        li      %r7, VR(21)
        li      %r8, VR(22)
        li      %r9, VR(23)
        li      %r10, VR(24)
        li      %r11, VR(25)
        addi    %r12, %r1, VR_HIGH_BASE
        stvx    %v20, %r1, %r6
        stvx    %v21, %r1, %r7
        stvx    %v22, %r1, %r8
        stvx    %v23, %r1, %r9
        stvx    %v24, %r1, %r10
        stvx    %v25, %r1, %r11
        stvx    %v26, %r12, %r6
        stvx    %v27, %r12, %r7
        stvx    %v28, %r12, %r8
        stvx    %v29, %r12, %r9
        stvx    %v30, %r12, %r10
        stvx    %v31, %r12, %r11
        std     %r2, FRAME_TOC(%r1)
#ifdef GREENLET_FP_CONTROL
        mffs    %f0
        stfd    %f0, FRAME_FPSCR(%r1)
        mffprd  %r0, %f0                /* ours, kept across the swap */
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        std     %r1, 0(%r3)
        mr      %r1, %r4

        addi    %r12, %r1, VR_HIGH_BASE
        lvx     %v20, %r1, %r6
        lvx     %v21, %r1, %r7
        lvx     %v22, %r1, %r8
        lvx     %v23, %r1, %r9
        lvx     %v24, %r1, %r10
        lvx     %v25, %r1, %r11
        lvx     %v26, %r12, %r6
        lvx     %v27, %r12, %r7
        lvx     %v28, %r12, %r8
        lvx     %v29, %r12, %r9
        lvx     %v30, %r12, %r10
        lvx     %v31, %r12, %r11
        ld      %r14, GPR(14)(%r1)
        ld      %r15, GPR(15)(%r1)
        ld      %r16, GPR(16)(%r1)
        ld      %r17, GPR(17)(%r1)
        ld      %r18, GPR(18)(%r1)
        ld      %r19, GPR(19)(%r1)
        ld      %r20, GPR(20)(%r1)
        ld      %r21, GPR(21)(%r1)
        ld      %r22, GPR(22)(%r1)
        ld      %r23, GPR(23)(%r1)
        ld      %r24, GPR(24)(%r1)
        ld      %r25, GPR(25)(%r1)
        ld      %r26, GPR(26)(%r1)
        ld      %r27, GPR(27)(%r1)
        ld      %r28, GPR(28)(%r1)
        ld      %r29, GPR(29)(%r1)
        ld      %r30, GPR(30)(%r1)
        ld      %r31, GPR(31)(%r1)
        lfd     %f14, FPR(14)(%r1)
        lfd     %f15, FPR(15)(%r1)
        lfd     %f16, FPR(16)(%r1)
        lfd     %f17, FPR(17)(%r1)
        lfd     %f18, FPR(18)(%r1)
        lfd     %f19, FPR(19)(%r1)
        lfd     %f20, FPR(20)(%r1)
        lfd     %f21, FPR(21)(%r1)
        lfd     %f22, FPR(22)(%r1)
        lfd     %f23, FPR(23)(%r1)
        lfd     %f24, FPR(24)(%r1)
        lfd     %f25, FPR(25)(%r1)
        lfd     %f26, FPR(26)(%r1)
        lfd     %f27, FPR(27)(%r1)
        lfd     %f28, FPR(28)(%r1)
        lfd     %f29, FPR(29)(%r1)
        lfd     %f30, FPR(30)(%r1)
        lfd     %f31, FPR(31)(%r1)
        ld      %r2, FRAME_TOC(%r1)
        /* Every register holds its value again; the slots are about to fall
           below the stack pointer. */
        .cfi_restore 14
        .cfi_restore 15
        .cfi_restore 16
        .cfi_restore 17
        .cfi_restore 18
        .cfi_restore 19
        .cfi_restore 20
        .cfi_restore 21
        .cfi_restore 22
        .cfi_restore 23
        .cfi_restore 24
        .cfi_restore 25
        .cfi_restore 26
        .cfi_restore 27
        .cfi_restore 28
        .cfi_restore 29
        .cfi_restore 30
        .cfi_restore 31
        .cfi_restore 46
        .cfi_restore 47
        .cfi_restore 48
        .cfi_restore 49
        .cfi_restore 50
        .cfi_restore 51
        .cfi_restore 52
        .cfi_restore 53
        .cfi_restore 54
        .cfi_restore 55
        .cfi_restore 56
        .cfi_restore 57
        .cfi_restore 58
        .cfi_restore 59
        .cfi_restore 60
        .cfi_restore 61
        .cfi_restore 62
        .cfi_restore 63
#ifdef GREENLET_FP_CONTROL
        ld      %r7, FRAME_FPSCR(%r1)   /* theirs */
        li      %r8, FPSCR_DRN_SHIFTED
        sldi    %r8, %r8, 32
        ori     %r8, %r8, FPSCR_CONTROL_LOW
        xor     %r9, %r7, %r0
        and.    %r9, %r9, %r8
        beq     1f                      /* same control bits: keep ours, flags too */
        lfd     %f0, FRAME_FPSCR(%r1)
        mtfsf   0x03, %f0               /* fields 6-7: enables, NI, RN */
        mtfsf   0x01, %f0, 0, 1         /* upper field 7: DRN */
1:
#endif
        addi    %r1, %r1, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        ld      %r0, CALLER_LR(%r1)
        lwz     %r12, CALLER_CR(%r1)
        mtocrf  0x20, %r12              /* cr2 */
        mtocrf  0x10, %r12              /* cr3 */
        mtocrf  0x08, %r12              /* cr4 */
        mtctr   %r0
        mr      %r3, %r5
        bctr

        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
0:      addis   %r2, %r12, (.TOC. - 0b)@ha
        addi    %r2, %r2, (.TOC. - 0b)@l
        .localentry GREENLET_INIT, . - GREENLET_INIT
        addi    %r6, %r3, -ENTRY_FRAME_BYTES            /* the trampoline's frame */
        addi    %r3, %r3, -(ENTRY_FRAME_BYTES + FRAME_BYTES)
        li      %r0, 0
        std     %r0, 0(%r6)             /* back chain 0: walks end here */
        stw     %r0, CALLER_CR(%r6)
        addis   %r7, %r2, GREENLET_ENTRY@toc@ha
        addi    %r7, %r7, GREENLET_ENTRY@toc@l
        std     %r7, CALLER_LR(%r6)     /* the first switch "returns" there */
        std     %r0, 24(%r6)
        std     %r6, FRAME_BACKCHAIN(%r3)
        std     %r2, FRAME_TOC(%r3)
        std     %r4, GPR(14)(%r3)       /* entry */
        std     %r5, GPR(15)(%r3)       /* arg */
        std     %r0, GPR(16)(%r3)
        std     %r0, GPR(17)(%r3)
        std     %r0, GPR(18)(%r3)
        std     %r0, GPR(19)(%r3)
        std     %r0, GPR(20)(%r3)
        std     %r0, GPR(21)(%r3)
        std     %r0, GPR(22)(%r3)
        std     %r0, GPR(23)(%r3)
        std     %r0, GPR(24)(%r3)
        std     %r0, GPR(25)(%r3)
        std     %r0, GPR(26)(%r3)
        std     %r0, GPR(27)(%r3)
        std     %r0, GPR(28)(%r3)
        std     %r0, GPR(29)(%r3)
        std     %r0, GPR(30)(%r3)
        std     %r0, GPR(31)(%r3)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        mffs    %f0
        stfd    %f0, FRAME_FPSCR(%r3)
#endif
        blr
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
        .cfi_undefined DWARF_LR
        /* r3 = transfer word (from the switch), r1 = top - 32 */
        mr      %r4, %r15               /* argument from the initial frame */
        mr      %r12, %r14              /* ELFv2 indirect call: r12 = target */
        mtctr   %r12
        bctrl                           /* entry(transfer, arg), never returns */
        trap
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
