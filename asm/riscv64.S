/*
 * greenlet stack switch for riscv64, LP64D calling convention (Linux, RV64GC).
 *
 * Exports exactly two symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_SWITCH and GREENLET_ENTRY):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       a0 = where to store the current stack pointer
 *       a1 = stack pointer of the context to resume (a frame laid out below)
 *       a2 = transfer word, handed to the resumed side in a0
 *
 *   GREENLET_ENTRY
 *       never called: the first `ret` into a new stack lands here. It calls
 *       entry(transfer, arg) with entry in s2 and arg in s1, both taken from the
 *       initial frame that src/arch.rs writes. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended):
 *
 *   offset  size  content                         initial frame (arch.rs)
 *   ------  ----  ------------------------------  ------------------------------
 *     +0     8    ra (return address)             GREENLET_ENTRY
 *     +8     8    s0 / fp                         0 (ends frame-pointer chains)
 *    +16     8    s1                              entry argument
 *    +24     8    s2                              entry function
 *    +32    72    s3 .. s11                       0
 *   +104    96    fs0 .. fs11                     0
 *   +200     8    fcsr (rounding mode + flags)    0 (ABI default: round to nearest)
 *   +208          caller's frame                  top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +200 |  fcsr                    |           |  fcsr                    |
 * +104 |  fs0 .. fs11             |           |  fs0 .. fs11             |
 *   +8 |  s0 .. s11               |           |  s0 .. s11               |
 *   +0 |  ra = return into A      |           |  ra = return into B      |  <- ret
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * 13 integer + 12 floating-point + 1 control word = 208 bytes, a multiple of 16,
 * so the saved stack pointer keeps the 16-byte alignment the psABI requires.
 */

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 2
GREENLET_SWITCH:
        .cfi_startproc
        addi    sp, sp, -208
        .cfi_def_cfa_offset 208
        sd      ra,    0(sp)
        .cfi_offset ra, -208
        sd      s0,    8(sp)
        .cfi_offset s0, -200
        sd      s1,   16(sp)
        sd      s2,   24(sp)
        sd      s3,   32(sp)
        sd      s4,   40(sp)
        sd      s5,   48(sp)
        sd      s6,   56(sp)
        sd      s7,   64(sp)
        sd      s8,   72(sp)
        sd      s9,   80(sp)
        sd      s10,  88(sp)
        sd      s11,  96(sp)
        fsd     fs0, 104(sp)
        fsd     fs1, 112(sp)
        fsd     fs2, 120(sp)
        fsd     fs3, 128(sp)
        fsd     fs4, 136(sp)
        fsd     fs5, 144(sp)
        fsd     fs6, 152(sp)
        fsd     fs7, 160(sp)
        fsd     fs8, 168(sp)
        fsd     fs9, 176(sp)
        fsd     fs10, 184(sp)
        fsd     fs11, 192(sp)
        frcsr   t0
        sd      t0,  200(sp)

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        sd      sp, 0(a0)
        mv      sp, a1

        ld      t0,  200(sp)
        fscsr   t0
        ld      ra,    0(sp)
        ld      s0,    8(sp)
        ld      s1,   16(sp)
        ld      s2,   24(sp)
        ld      s3,   32(sp)
        ld      s4,   40(sp)
        ld      s5,   48(sp)
        ld      s6,   56(sp)
        ld      s7,   64(sp)
        ld      s8,   72(sp)
        ld      s9,   80(sp)
        ld      s10,  88(sp)
        ld      s11,  96(sp)
        fld     fs0, 104(sp)
        fld     fs1, 112(sp)
        fld     fs2, 120(sp)
        fld     fs3, 128(sp)
        fld     fs4, 136(sp)
        fld     fs5, 144(sp)
        fld     fs6, 152(sp)
        fld     fs7, 160(sp)
        fld     fs8, 168(sp)
        fld     fs9, 176(sp)
        fld     fs10, 184(sp)
        fld     fs11, 192(sp)
        addi    sp, sp, 208
        .cfi_def_cfa_offset 0
        .cfi_restore ra
        .cfi_restore s0
        mv      a0, a2
        ret
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

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
