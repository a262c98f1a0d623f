/*
 * greenlet stack switch for riscv64, LP64D calling convention (Linux, RV64GC).
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
 *       never called: the first switch into a new stack returns here. It calls
 *       entry(transfer, arg) with entry in s2 and arg in s1, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended). Both
 * builds use the same 208 bytes: 13 integer and 12 FP registers take 200, and
 * the 8 that round them up to 16-byte alignment hold the rounding mode with
 * fp-control and are padding without it.
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    ra (return address)                 GREENLET_ENTRY
 *     +8     8    s0 / fp                             0 (ends frame-pointer chains)
 *    +16     8    s1                                  entry argument
 *    +24     8    s2                                  entry function
 *    +32    72    s3 .. s11                           0
 *   +104    96    fs0 .. fs11                         0
 *   +200     8    fp-control: frm (rounding mode)     the creator's frm
 *                 without:    padding                 0
 *   +208          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +200 |  frm | pad               |           |  frm | pad               |
 * +104 |  fs0 .. fs11             |           |  fs0 .. fs11             |
 *   +8 |  s0 .. s11               |           |  s0 .. s11               |
 *   +0 |  ra = return into A      |           |  ra = return into B      |  <- ret
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * GREENLET_ENTRY therefore runs with sp = top, 16-aligned, as the psABI wants.
 * Only the low 64 bits of fs0-fs11 exist under D; the vector registers of the
 * V extension are all caller-saved, so nothing more is callee-saved.
 *
 * The FP control state (SPEC section 5). Without fp-control fcsr is not
 * touched: it belongs to the thread, as Rust assumes. With it, each greenlet
 * keeps its own rounding mode, the only control field of fcsr (RISC-V has no
 * trap enables and no flush-to-zero); the accrued exception flags (fflags)
 * stay with the thread. `frrm`/`fsrm` read and write frm alone, so no masking
 * is needed, and the `fsrm` is skipped when both sides' modes agree, which is
 * nearly always (a write to frm changes how every later FP instruction
 * rounds, so cores may drain or serialise for it; a compare costs a cycle).
 * Not measured on hardware: the port is tested under qemu-user.
 */

#define FRAME_RA     0
#define FRAME_S0     8
#define FRAME_S1     16
#define FRAME_S2     24
#define FRAME_S3     32
#define FRAME_S4     40
#define FRAME_S5     48
#define FRAME_S6     56
#define FRAME_S7     64
#define FRAME_S8     72
#define FRAME_S9     80
#define FRAME_S10    88
#define FRAME_S11    96
#define FRAME_FS0    104
#define FRAME_FS1    112
#define FRAME_FS2    120
#define FRAME_FS3    128
#define FRAME_FS4    136
#define FRAME_FS5    144
#define FRAME_FS6    152
#define FRAME_FS7    160
#define FRAME_FS8    168
#define FRAME_FS9    176
#define FRAME_FS10   184
#define FRAME_FS11   192
#define FRAME_FRM    200        /* fp-control only; padding without */
#define FRAME_BYTES  208

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 2
GREENLET_SWITCH:
        .cfi_startproc
        addi    sp, sp, -FRAME_BYTES
        .cfi_def_cfa_offset FRAME_BYTES
        sd      ra,   FRAME_RA(sp)
        sd      s0,   FRAME_S0(sp)
        sd      s1,   FRAME_S1(sp)
        sd      s2,   FRAME_S2(sp)
        sd      s3,   FRAME_S3(sp)
        sd      s4,   FRAME_S4(sp)
        sd      s5,   FRAME_S5(sp)
        sd      s6,   FRAME_S6(sp)
        sd      s7,   FRAME_S7(sp)
        sd      s8,   FRAME_S8(sp)
        sd      s9,   FRAME_S9(sp)
        sd      s10,  FRAME_S10(sp)
        sd      s11,  FRAME_S11(sp)
        .cfi_offset ra,  FRAME_RA - FRAME_BYTES
        .cfi_offset s0,  FRAME_S0 - FRAME_BYTES
        .cfi_offset s1,  FRAME_S1 - FRAME_BYTES
        .cfi_offset s2,  FRAME_S2 - FRAME_BYTES
        .cfi_offset s3,  FRAME_S3 - FRAME_BYTES
        .cfi_offset s4,  FRAME_S4 - FRAME_BYTES
        .cfi_offset s5,  FRAME_S5 - FRAME_BYTES
        .cfi_offset s6,  FRAME_S6 - FRAME_BYTES
        .cfi_offset s7,  FRAME_S7 - FRAME_BYTES
        .cfi_offset s8,  FRAME_S8 - FRAME_BYTES
        .cfi_offset s9,  FRAME_S9 - FRAME_BYTES
        .cfi_offset s10, FRAME_S10 - FRAME_BYTES
        .cfi_offset s11, FRAME_S11 - FRAME_BYTES
        fsd     fs0,  FRAME_FS0(sp)
        fsd     fs1,  FRAME_FS1(sp)
        fsd     fs2,  FRAME_FS2(sp)
        fsd     fs3,  FRAME_FS3(sp)
        fsd     fs4,  FRAME_FS4(sp)
        fsd     fs5,  FRAME_FS5(sp)
        fsd     fs6,  FRAME_FS6(sp)
        fsd     fs7,  FRAME_FS7(sp)
        fsd     fs8,  FRAME_FS8(sp)
        fsd     fs9,  FRAME_FS9(sp)
        fsd     fs10, FRAME_FS10(sp)
        fsd     fs11, FRAME_FS11(sp)
#ifdef GREENLET_FP_CONTROL
        frrm    t0                      /* ours, kept in t0 across the swap */
        sd      t0,   FRAME_FRM(sp)
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        sd      sp, 0(a0)
        mv      sp, a1

#ifdef GREENLET_FP_CONTROL
        ld      t1,   FRAME_FRM(sp)     /* theirs */
        beq     t0, t1, 1f              /* same rounding mode: no write */
        fsrm    t1
1:
#endif
        ld      ra,   FRAME_RA(sp)
        ld      s0,   FRAME_S0(sp)
        ld      s1,   FRAME_S1(sp)
        ld      s2,   FRAME_S2(sp)
        ld      s3,   FRAME_S3(sp)
        ld      s4,   FRAME_S4(sp)
        ld      s5,   FRAME_S5(sp)
        ld      s6,   FRAME_S6(sp)
        ld      s7,   FRAME_S7(sp)
        ld      s8,   FRAME_S8(sp)
        ld      s9,   FRAME_S9(sp)
        ld      s10,  FRAME_S10(sp)
        ld      s11,  FRAME_S11(sp)
        fld     fs0,  FRAME_FS0(sp)
        fld     fs1,  FRAME_FS1(sp)
        fld     fs2,  FRAME_FS2(sp)
        fld     fs3,  FRAME_FS3(sp)
        fld     fs4,  FRAME_FS4(sp)
        fld     fs5,  FRAME_FS5(sp)
        fld     fs6,  FRAME_FS6(sp)
        fld     fs7,  FRAME_FS7(sp)
        fld     fs8,  FRAME_FS8(sp)
        fld     fs9,  FRAME_FS9(sp)
        fld     fs10, FRAME_FS10(sp)
        fld     fs11, FRAME_FS11(sp)
        addi    sp, sp, FRAME_BYTES
        .cfi_def_cfa_offset 0
        .cfi_restore ra
        .cfi_restore s0
        .cfi_restore s1
        .cfi_restore s2
        .cfi_restore s3
        .cfi_restore s4
        .cfi_restore s5
        .cfi_restore s6
        .cfi_restore s7
        .cfi_restore s8
        .cfi_restore s9
        .cfi_restore s10
        .cfi_restore s11
        mv      a0, a2
        ret
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 2
GREENLET_INIT:
        .cfi_startproc
        addi    t0, a0, -FRAME_BYTES
        lla     t1, GREENLET_ENTRY
        sd      t1,   FRAME_RA(t0)
        sd      zero, FRAME_S0(t0)
        sd      a2,   FRAME_S1(t0)      /* s1 = arg */
        sd      a1,   FRAME_S2(t0)      /* s2 = entry */
        sd      zero, FRAME_S3(t0)
        sd      zero, FRAME_S4(t0)
        sd      zero, FRAME_S5(t0)
        sd      zero, FRAME_S6(t0)
        sd      zero, FRAME_S7(t0)
        sd      zero, FRAME_S8(t0)
        sd      zero, FRAME_S9(t0)
        sd      zero, FRAME_S10(t0)
        sd      zero, FRAME_S11(t0)
        sd      zero, FRAME_FS0(t0)
        sd      zero, FRAME_FS1(t0)
        sd      zero, FRAME_FS2(t0)
        sd      zero, FRAME_FS3(t0)
        sd      zero, FRAME_FS4(t0)
        sd      zero, FRAME_FS5(t0)
        sd      zero, FRAME_FS6(t0)
        sd      zero, FRAME_FS7(t0)
        sd      zero, FRAME_FS8(t0)
        sd      zero, FRAME_FS9(t0)
        sd      zero, FRAME_FS10(t0)
        sd      zero, FRAME_FS11(t0)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's rounding mode, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        frrm    t1
        sd      t1,   FRAME_FRM(t0)
#else
        sd      zero, FRAME_FRM(t0)
#endif
        mv      a0, t0
        ret
        .cfi_endproc
        .size   GREENLET_INIT, .-GREENLET_INIT

        .globl  GREENLET_ENTRY
        .hidden GREENLET_ENTRY
        .type   GREENLET_ENTRY, @function
        .p2align 2
GREENLET_ENTRY:
        .cfi_startproc
        /* Bottom of every greenlet stack: there is no caller. Marking the return
           address undefined makes unwinders, backtraces and gdb stop here. */
        .cfi_undefined ra
        /* a0 already holds the transfer word from the switch. */
        mv      a1, s1                  /* argument from the initial frame */
        jalr    s2                      /* entry(transfer, arg), never returns */
        unimp
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
