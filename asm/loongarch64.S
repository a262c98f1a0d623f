/*
 * greenlet stack switch for loongarch64, LP64D calling convention (Linux).
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       a0 = where to store the current stack pointer
 *       a1 = stack pointer of the context to resume (a frame laid out below)
 *       a2 = transfer word, handed to the resumed side in a0
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       a0 = 16-aligned top of a fresh stack, a1 = entry, a2 = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack jumps here. It calls
 *       entry(transfer, arg) with entry in s0 and arg in s1, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Callee-saved in LP64D: s0-s8 (r23-r31), fp (r22), sp, and the low 64 bits of
 * fs0-fs7 (f24-f31). ra is saved because it is the return address. The
 * vector registers (LSX/LASX) overlap the FP registers; their upper bits are
 * caller-saved, so nothing more is needed. tp (r2) and r21 are not the
 * switch's business: both contexts run on one thread.
 *
 * Saved frame (what `save_sp` points at while a context is suspended); both
 * builds use the same 160 bytes:
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    ra (return address)                 GREENLET_ENTRY
 *     +8     8    fp (r22)                            0 (ends frame-pointer chains)
 *    +16     8    s0                                  entry function
 *    +24     8    s1                                  entry argument
 *    +32    56    s2-s8                               0
 *    +88    64    fs0-fs7                             whatever the memory held
 *   +152     4    FCSR0 (fp-control only: control     the creator's FCSR0 (fp-control)
 *                 bits used; padding without)
 *   +156     4    padding
 *   +160          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +152 | [FCSR0]                  |           | [FCSR0]                  |  fp-control
 *  +88 |  fs0-fs7                 |           |  fs0-fs7                 |
 *  +16 |  s0-s8                   |           |  s0-s8                   |
 *   +8 |  fp                      |           |  fp                      |
 *   +0 |  ra = return into A      |           |  ra = return into B      |  -> t0, jr
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * GREENLET_ENTRY runs with sp = top, 16-aligned as LP64D wants at a call.
 *
 * The FP control state (SPEC section 5). Without fp-control FCSR0 is not
 * touched: it belongs to the thread. With it, each greenlet keeps its own
 * control bits, RM (rounding, bits 8-9) and the five exception enables (bits
 * 0-4), while the flags and causes stay with the thread. LoongArch gives each
 * field its own alias, so the restore writes FCSR1 (the enables) and FCSR3
 * (RM) and leaves the thread's flags alone; both writes are skipped when the
 * control bits already agree, which is nearly always.
 *
 * The resumed side is entered with `jr $t0`, not `jr $ra`: `jirl $zero, $ra, 0`
 * is the return form that return-address predictors pop, and the top entry
 * always belongs to the side being suspended, so a return here would always
 * mispredict. The same reasoning as the `jmp` measured on x86_64
 * (asm/x86_64.S); not measured on LoongArch hardware (only qemu was at hand).
 */

#define FRAME_S0   16
#define FRAME_S1   24
#define FRAME_S2   32
#define FRAME_S3   40
#define FRAME_S4   48
#define FRAME_S5   56
#define FRAME_S6   64
#define FRAME_S7   72
#define FRAME_S8   80
#define FRAME_FS0  88
#define FRAME_FS1  96
#define FRAME_FS2  104
#define FRAME_FS3  112
#define FRAME_FS4  120
#define FRAME_FS5  128
#define FRAME_FS6  136
#define FRAME_FS7  144
#define FRAME_RA      0
#define FRAME_FP      8
#define FRAME_FCSR    152
#define FRAME_BYTES   160
/* FCSR0 control bits: the enables (0-4) and RM (8-9). */
#define FCSR_CONTROL  0x31f

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        addi.d  $sp, $sp, -FRAME_BYTES
        .cfi_def_cfa_offset FRAME_BYTES
        st.d    $ra, $sp, FRAME_RA
        st.d    $fp, $sp, FRAME_FP
        st.d    $s0, $sp, FRAME_S0
        st.d    $s1, $sp, FRAME_S1
        st.d    $s2, $sp, FRAME_S2
        st.d    $s3, $sp, FRAME_S3
        st.d    $s4, $sp, FRAME_S4
        st.d    $s5, $sp, FRAME_S5
        st.d    $s6, $sp, FRAME_S6
        st.d    $s7, $sp, FRAME_S7
        st.d    $s8, $sp, FRAME_S8
        fst.d   $fs0, $sp, FRAME_FS0
        fst.d   $fs1, $sp, FRAME_FS1
        fst.d   $fs2, $sp, FRAME_FS2
        fst.d   $fs3, $sp, FRAME_FS3
        fst.d   $fs4, $sp, FRAME_FS4
        fst.d   $fs5, $sp, FRAME_FS5
        fst.d   $fs6, $sp, FRAME_FS6
        fst.d   $fs7, $sp, FRAME_FS7
        .cfi_rel_offset 1, FRAME_RA
        .cfi_rel_offset 22, FRAME_FP
        .cfi_rel_offset 23, FRAME_S0
        .cfi_rel_offset 24, FRAME_S1
        .cfi_rel_offset 25, FRAME_S2
        .cfi_rel_offset 26, FRAME_S3
        .cfi_rel_offset 27, FRAME_S4
        .cfi_rel_offset 28, FRAME_S5
        .cfi_rel_offset 29, FRAME_S6
        .cfi_rel_offset 30, FRAME_S7
        .cfi_rel_offset 31, FRAME_S8
        .cfi_rel_offset 56, FRAME_FS0
        .cfi_rel_offset 57, FRAME_FS1
        .cfi_rel_offset 58, FRAME_FS2
        .cfi_rel_offset 59, FRAME_FS3
        .cfi_rel_offset 60, FRAME_FS4
        .cfi_rel_offset 61, FRAME_FS5
        .cfi_rel_offset 62, FRAME_FS6
        .cfi_rel_offset 63, FRAME_FS7
#ifdef GREENLET_FP_CONTROL
        movfcsr2gr $t1, $fcsr0          /* ours, kept across the swap */
        st.w    $t1, $sp, FRAME_FCSR
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        st.d    $sp, $a0, 0
        move    $sp, $a1

#ifdef GREENLET_FP_CONTROL
        ld.w    $t2, $sp, FRAME_FCSR    /* theirs */
        xor     $t3, $t1, $t2
        andi    $t3, $t3, FCSR_CONTROL
        beqz    $t3, 1f                 /* same control bits: keep ours, flags too */
        movgr2fcsr $fcsr1, $t2          /* their enables */
        movgr2fcsr $fcsr3, $t2          /* their rounding mode */
1:
#endif
        ld.d    $t0, $sp, FRAME_RA
        ld.d    $fp, $sp, FRAME_FP
        ld.d    $s0, $sp, FRAME_S0
        ld.d    $s1, $sp, FRAME_S1
        ld.d    $s2, $sp, FRAME_S2
        ld.d    $s3, $sp, FRAME_S3
        ld.d    $s4, $sp, FRAME_S4
        ld.d    $s5, $sp, FRAME_S5
        ld.d    $s6, $sp, FRAME_S6
        ld.d    $s7, $sp, FRAME_S7
        ld.d    $s8, $sp, FRAME_S8
        fld.d   $fs0, $sp, FRAME_FS0
        fld.d   $fs1, $sp, FRAME_FS1
        fld.d   $fs2, $sp, FRAME_FS2
        fld.d   $fs3, $sp, FRAME_FS3
        fld.d   $fs4, $sp, FRAME_FS4
        fld.d   $fs5, $sp, FRAME_FS5
        fld.d   $fs6, $sp, FRAME_FS6
        fld.d   $fs7, $sp, FRAME_FS7
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
        .cfi_restore 56
        .cfi_restore 57
        .cfi_restore 58
        .cfi_restore 59
        .cfi_restore 60
        .cfi_restore 61
        .cfi_restore 62
        .cfi_restore 63
        addi.d  $sp, $sp, FRAME_BYTES
        .cfi_def_cfa_offset 0
        .cfi_register 1, 12             /* the return address is in t0 now */
        move    $ra, $t0
        move    $a0, $a2
        jr      $t0

        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
        addi.d  $a0, $a0, -FRAME_BYTES
        la.local $t0, GREENLET_ENTRY
        st.d    $t0, $a0, FRAME_RA
        st.d    $zero, $a0, FRAME_FP
        st.d    $a1, $a0, FRAME_S0      /* entry */
        st.d    $a2, $a0, FRAME_S1      /* arg */
        st.d    $zero, $a0, FRAME_S2
        st.d    $zero, $a0, FRAME_S3
        st.d    $zero, $a0, FRAME_S4
        st.d    $zero, $a0, FRAME_S5
        st.d    $zero, $a0, FRAME_S6
        st.d    $zero, $a0, FRAME_S7
        st.d    $zero, $a0, FRAME_S8
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movfcsr2gr $t1, $fcsr0
        st.w    $t1, $a0, FRAME_FCSR
#endif
        jr      $ra
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
        .cfi_undefined 1
        /* a0 = transfer word (from the switch) */
        move    $a1, $s1                /* argument from the initial frame */
        jirl    $ra, $s0, 0             /* entry(transfer, arg), never returns */
        break   0
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
