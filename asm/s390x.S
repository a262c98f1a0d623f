/*
 * greenlet stack switch for s390x, the z/Architecture ELF ABI (Linux).
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       r2 = where to store the current stack pointer
 *       r3 = stack pointer of the context to resume (a frame laid out below)
 *       r4 = transfer word, handed to the resumed side in r2
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       r2 = 16-aligned top of a fresh stack, r3 = entry, r4 = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first `br %r14` into a new stack lands here. It calls
 *       entry(transfer, arg) with entry in r7 and arg in r6, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Register table (ELF ABI for z/Architecture):
 *   callee-saved integer   r6-r13, r15 (stack pointer; saved through save_sp)
 *   return address         r14 (a register: saved in the frame like the others)
 *   callee-saved FP        f8-f15 (64 bits each; the vector registers that
 *                          overlay them keep only these 64 bits callee-saved)
 *   FP control state       FPC (32 bits: masks, flags, DXC, rounding modes)
 *   stack alignment        8 bytes (16 kept here, like every other port)
 *   arguments / return     r2, r3, r4 / r2
 *
 * Saved frame (what `save_sp` points at while a context is suspended). Both
 * builds use the same 144 bytes: the 9 integer and 8 FP registers take 136, and
 * the 8 that round them up to 16 hold the FPC with fp-control and are padding
 * without it.
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    r6                                  entry argument
 *     +8     8    r7                                  entry function
 *    +16    24    r8 .. r10                           0
 *    +40     8    r11 (frame pointer by habit)        0
 *    +48    16    r12, r13                            0
 *    +64     8    r14 (return address)                GREENLET_ENTRY
 *    +72    64    f8 .. f15                           0
 *   +136     4    fp-control: FPC                     the creator's FPC
 *                 without:    padding                 0
 *   +140     4    padding                             0
 *   +144          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +136 |  FPC | pad               |           |  FPC | pad               |
 *  +72 |  f8 .. f15               |           |  f8 .. f15               |
 *  +64 |  r14 = return into A     |           |  r14 = return into B     |  <- br %r14
 *   +0 |  r6 .. r13               |           |  r6 .. r13               |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * The frame is private to the switch: it is allocated below the 160-byte
 * register save area that the caller provided, which is left untouched.
 * The trampoline allocates a fresh 160-byte save area (with a zero back chain)
 * before calling entry, as the ABI requires of every caller.
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
 */

#define FRAME_R6     0          /* r6 .. r14 by one stmg/lmg */
#define FRAME_R7     8
#define FRAME_R14    64
#define FRAME_F8     72
#define FRAME_F9     80
#define FRAME_F10    88
#define FRAME_F11    96
#define FRAME_F12    104
#define FRAME_F13    112
#define FRAME_F14    120
#define FRAME_F15    128
#define FRAME_FPC    136        /* fp-control only; padding without */
#define FRAME_BYTES  144
/* FPC status, the thread's: the IEEE flags (byte 1) and the DXC (byte 2).
   FPC control, per greenlet: the IEEE masks (byte 0), the rounding modes
   (byte 3). */
#define FPC_STATUS   0x00ffff00
#define FPC_CONTROL  0xff0000ff

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        aghi    %r15, -FRAME_BYTES
        .cfi_adjust_cfa_offset FRAME_BYTES
        stmg    %r6, %r14, FRAME_R6(%r15)
        .cfi_rel_offset %r6, FRAME_R6
        .cfi_rel_offset %r7, FRAME_R6 + 8
        .cfi_rel_offset %r8, FRAME_R6 + 16
        .cfi_rel_offset %r9, FRAME_R6 + 24
        .cfi_rel_offset %r10, FRAME_R6 + 32
        .cfi_rel_offset %r11, FRAME_R6 + 40
        .cfi_rel_offset %r12, FRAME_R6 + 48
        .cfi_rel_offset %r13, FRAME_R6 + 56
        .cfi_rel_offset %r14, FRAME_R14
        std     %f8,  FRAME_F8(%r15)
        std     %f9,  FRAME_F9(%r15)
        std     %f10, FRAME_F10(%r15)
        std     %f11, FRAME_F11(%r15)
        std     %f12, FRAME_F12(%r15)
        std     %f13, FRAME_F13(%r15)
        std     %f14, FRAME_F14(%r15)
        std     %f15, FRAME_F15(%r15)
#ifdef GREENLET_FP_CONTROL
        efpc    %r1                     /* ours (low word), kept in r1 */
        st      %r1,  FRAME_FPC(%r15)
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        stg     %r15, 0(%r2)
        lgr     %r15, %r3

#ifdef GREENLET_FP_CONTROL
        l       %r0,  FRAME_FPC(%r15)   /* theirs */
        xr      %r0,  %r1
        nilf    %r0,  FPC_CONTROL       /* differing control bits; CC 0 if none */
        jz      1f                      /* same control bits: keep ours, flags too */
        l       %r0,  FRAME_FPC(%r15)
        nilf    %r0,  FPC_CONTROL       /* their control bits */
        nilf    %r1,  FPC_STATUS        /* the thread's flags and DXC */
        or      %r0,  %r1
        sfpc    %r0
1:
#endif
        ld      %f8,  FRAME_F8(%r15)
        ld      %f9,  FRAME_F9(%r15)
        ld      %f10, FRAME_F10(%r15)
        ld      %f11, FRAME_F11(%r15)
        ld      %f12, FRAME_F12(%r15)
        ld      %f13, FRAME_F13(%r15)
        ld      %f14, FRAME_F14(%r15)
        ld      %f15, FRAME_F15(%r15)
        lmg     %r6, %r14, FRAME_R6(%r15)
        aghi    %r15, FRAME_BYTES
        .cfi_adjust_cfa_offset -FRAME_BYTES
        .cfi_restore %r6
        .cfi_restore %r7
        .cfi_restore %r8
        .cfi_restore %r9
        .cfi_restore %r10
        .cfi_restore %r11
        .cfi_restore %r12
        .cfi_restore %r13
        .cfi_restore %r14
        lgr     %r2, %r4
        br      %r14
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
        aghi    %r2, -FRAME_BYTES       /* the frame, and the return value */
        /* Zero r8 .. r13, the FP registers and the FPC slot. */
        xc      16(48, %r2), 16(%r2)
        xc      FRAME_F8(FRAME_BYTES - FRAME_F8, %r2), FRAME_F8(%r2)
        stg     %r4,  FRAME_R6(%r2)     /* r6 = arg */
        stg     %r3,  FRAME_R7(%r2)     /* r7 = entry */
        larl    %r1,  GREENLET_ENTRY
        stg     %r1,  FRAME_R14(%r2)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        stfpc   FRAME_FPC(%r2)
#endif
        br      %r14
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
        .cfi_undefined %r14
        aghi    %r15, -160              /* register save area for entry */
        .cfi_adjust_cfa_offset 160
        lghi    %r0, 0
        stg     %r0, 0(%r15)            /* back chain ends here */
        /* r2 already holds the transfer word from the switch. */
        lgr     %r3, %r6                /* argument from the initial frame */
        basr    %r14, %r7               /* entry(transfer, arg), never returns */
        .word   0                       /* illegal instruction: entry returned */
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
