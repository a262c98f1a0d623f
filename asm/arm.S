/*
 * greenlet stack switch for 32-bit ARM, AAPCS with the VFP (hard-float)
 * variant (Linux; built and tested as armv7-unknown-linux-gnueabihf).
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       r0 = where to store the current stack pointer
 *       r1 = stack pointer of the context to resume (a frame laid out below)
 *       r2 = transfer word, handed to the resumed side in r0
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       r0 = 16-aligned top of a fresh stack, r1 = entry, r2 = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack returns here. It calls
 *       entry(transfer, arg) with entry in r5 and arg in r4, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Register table (AAPCS, VFP variant):
 *   callee-saved integer   r4-r11 (r11 is the frame pointer in ARM state, r7
 *                          in Thumb state), r13 (sp; saved through save_sp)
 *   return address         r14 (lr, a register; bit 0 set for a Thumb caller)
 *   callee-saved FP        d8-d15 (= s16-s31); d16-d31, where they exist, and
 *                          the NEON q registers are caller-saved
 *   FP control state       FPSCR (control and status share it)
 *   stack alignment        8 bytes at calls (16 kept at the top of a stack)
 *   arguments / return     r0, r1, r2 / r0
 *
 * Saved frame (what `save_sp` points at while a context is suspended). Both
 * builds use the same 104 bytes: `push {r3-r11, lr}` keeps the stack 8-aligned
 * with the r3 slot, which holds FPSCR with fp-control and whatever r3 held (a
 * caller-saved scratch register) without it.
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0    64    d8 .. d15                           0
 *    +64     4    fp-control: FPSCR                   the creator's FPSCR
 *                 without:    padding (r3)            0
 *    +68     4    r4                                  entry argument
 *    +72     4    r5                                  entry function
 *    +76    20    r6 .. r10                           0
 *    +96     4    r11 (frame pointer in ARM state)    0 (ends frame-pointer chains)
 *   +100     4    lr (return address)                 GREENLET_ENTRY
 *   +104          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +100 |  lr = return into A      |           |  lr = return into B      |  <- bx lr
 *  +68 |  r4 .. r11               |           |  r4 .. r11               |
 *  +64 |  FPSCR | pad             |           |  FPSCR | pad             |
 *   +0 |  d8 .. d15               |           |  d8 .. d15               |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * GREENLET_ENTRY therefore runs with sp = top, 16-aligned.
 *
 * ARM and Thumb state. The file is assembled in ARM (A32) state on purpose,
 * whatever the compiler's default: Rust's armv7 target emits A32 code, while
 * Debian's gcc and glibc default to Thumb-2, so callers of either state must
 * work. Every return is `bx lr`, which switches to the state in bit 0 of the
 * address; indirect calls are `blx`, which does the same. `.type %function`
 * tells the linker these are A32 symbols, so a Thumb caller's `bl` becomes a
 * `blx` and a function pointer to them has bit 0 clear. The resumed side's lr
 * carries its own state (set by its call), and GREENLET_INIT stores the
 * trampoline's address with bit 0 clear, its state being A32. The ABI test
 * calls the switch from Thumb code and starts a Thumb entry function.
 *
 * Unwinding. Rust on 32-bit ARM unwinds with the EHABI tables (.ARM.exidx),
 * not DWARF CFI, so each routine has .fnstart/.fnend. The trampoline must end
 * every backtrace: it pushes a frame record of zeros (r11 = 0, lr = 0) and
 * describes it with `.save {r11, lr}`, so the unwinder reports the trampoline,
 * reads a return address of 0 and stops there, as it does for any frame
 * without a caller. (`.cantunwind` would stop it one frame early: the EHABI
 * unwinder gives up at such a frame before reporting it, so backtraces would
 * end at `entry` and never show the trampoline.) Debuggers read DWARF, so the
 * same routines also carry CFI, emitted into .debug_frame only.
 *
 * The FP control state (SPEC section 5). Without fp-control FPSCR is not
 * touched: it belongs to the thread, as Rust assumes. With it, each greenlet
 * keeps FPSCR's control bits (AHP, DN, FZ, RMode, Stride, Len and the trap
 * enables) while its status bits stay with the thread: the cumulative
 * exception flags IDC/IXC/UFC/OFC/DZC/IOC, QC and the NZCV of the last
 * compare. The restore merges the resumed side's control bits with the status
 * current when the switch began, and skips the `vmsr` when the control bits
 * already agree, which is nearly always (an access to FPSCR is a serialising
 * instruction, ARM documents, for example in the ARM1176JZF-S manual: a write
 * waits until no FP operation in flight can be affected; any inexact operation
 * sets a flag, so comparing the whole register would differ all the time).
 * Not measured on hardware: the port is tested under qemu-user.
 *
 * Caller-saved registers (r0-r3, r12, d0-d7, d16-d31) need no saving: the
 * compiler already assumes a call destroys them.
 */

#if !defined(__ARM_FP)
#error "asm/arm.S needs a VFP unit (d8-d15 are callee-saved), as armv7 gnueabihf has"
#endif

#define FRAME_D8     0          /* d8 .. d15 by one vpush/vpop */
#define FRAME_FPSCR  64         /* fp-control only; padding without */
#define FRAME_R4     68         /* r4 .. r11, lr by one push/pop, with the slot above */
#define FRAME_R5     72
#define FRAME_R6     76
#define FRAME_R7     80
#define FRAME_R8     84
#define FRAME_R9     88
#define FRAME_R10    92
#define FRAME_R11    96
#define FRAME_LR     100
#define FRAME_BYTES  104
/* FPSCR status bits, the thread's: N Z C V QC (31-27), IDC (7), IXC UFC OFC
   DZC IOC (4-0). Both halves are A32 immediates. */
#define FPSCR_STATUS_HIGH 0xf8000000
#define FPSCR_STATUS_LOW  0x0000009f

        .syntax unified
        .arm
        .cfi_sections .debug_frame
        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, %function
        .p2align 4
GREENLET_SWITCH:
        .fnstart
        .cfi_startproc
#ifdef GREENLET_FP_CONTROL
        vmrs    r3, fpscr               /* ours, into the r3 slot */
#endif
        push    {r3-r11, lr}
        .save   {r3-r11, lr}
        .cfi_adjust_cfa_offset 40
        .cfi_rel_offset r4, 4
        .cfi_rel_offset r5, 8
        .cfi_rel_offset r6, 12
        .cfi_rel_offset r7, 16
        .cfi_rel_offset r8, 20
        .cfi_rel_offset r9, 24
        .cfi_rel_offset r10, 28
        .cfi_rel_offset r11, 32
        .cfi_rel_offset lr, 36
        vpush   {d8-d15}
        .vsave  {d8-d15}
        .cfi_adjust_cfa_offset 64
#ifdef GREENLET_FP_CONTROL
        mov     r12, r3                 /* ours, kept in r12 across the swap */
#endif

        /* The only instructions that touch both stacks. The unwind tables
           above stay true after the swap because the resumed frame has the
           same layout. */
        str     sp, [r0]
        mov     sp, r1

        vpop    {d8-d15}
        .cfi_adjust_cfa_offset -64
        pop     {r3-r11, lr}
        .cfi_adjust_cfa_offset -40
        .cfi_restore r4
        .cfi_restore r5
        .cfi_restore r6
        .cfi_restore r7
        .cfi_restore r8
        .cfi_restore r9
        .cfi_restore r10
        .cfi_restore r11
        .cfi_restore lr
#ifdef GREENLET_FP_CONTROL
        /* r3 = theirs, r12 = ours */
        mov     r0, #FPSCR_STATUS_HIGH
        orr     r0, r0, #FPSCR_STATUS_LOW
        eor     r1, r3, r12
        bics    r1, r1, r0              /* differing control bits */
        beq     1f                      /* none: keep ours, flags too */
        bic     r3, r3, r0              /* their control bits */
        and     r12, r12, r0            /* the thread's status */
        orr     r3, r3, r12
        vmsr    fpscr, r3
1:
#endif
        mov     r0, r2
        bx      lr
        .cfi_endproc
        .fnend
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, %function
        .p2align 4
GREENLET_INIT:
        .fnstart
        .cfi_startproc
        sub     r0, r0, #FRAME_BYTES
        mov     r12, r2                 /* arg */
        mov     r2, #0
        mov     r3, #0
        strd    r2, r3, [r0, #FRAME_D8 + 0]
        strd    r2, r3, [r0, #FRAME_D8 + 8]
        strd    r2, r3, [r0, #FRAME_D8 + 16]
        strd    r2, r3, [r0, #FRAME_D8 + 24]
        strd    r2, r3, [r0, #FRAME_D8 + 32]
        strd    r2, r3, [r0, #FRAME_D8 + 40]
        strd    r2, r3, [r0, #FRAME_D8 + 48]
        strd    r2, r3, [r0, #FRAME_D8 + 56]
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        vmrs    r3, fpscr
        str     r3, [r0, #FRAME_FPSCR]
#else
        str     r2, [r0, #FRAME_FPSCR]
#endif
        str     r12, [r0, #FRAME_R4]
        str     r1, [r0, #FRAME_R5]
        str     r2, [r0, #FRAME_R6]
        str     r2, [r0, #FRAME_R7]
        str     r2, [r0, #FRAME_R8]
        str     r2, [r0, #FRAME_R9]
        str     r2, [r0, #FRAME_R10]
        str     r2, [r0, #FRAME_R11]
        adr     r3, GREENLET_ENTRY      /* A32 code: bit 0 clear */
        str     r3, [r0, #FRAME_LR]
        bx      lr
        .cfi_endproc
        .fnend
        .size   GREENLET_INIT, .-GREENLET_INIT

        .globl  GREENLET_ENTRY
        .hidden GREENLET_ENTRY
        .type   GREENLET_ENTRY, %function
        .p2align 4
GREENLET_ENTRY:
        .fnstart
        .cfi_startproc
        /* Bottom of every greenlet stack: there is no caller. For debuggers
           (DWARF) the return address is undefined; for the EHABI unwinder the
           frame record below holds a return address of 0. */
        .cfi_undefined lr
        mov     r11, #0
        mov     lr, #0
        push    {r11, lr}               /* keeps sp 8-aligned for the call */
        .save   {r11, lr}
        .cfi_adjust_cfa_offset 8
        /* r0 already holds the transfer word from the switch. */
        mov     r1, r4                  /* argument from the initial frame */
        blx     r5                      /* entry(transfer, arg), never returns */
        udf     #0
        .cfi_endproc
        .fnend
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",%progbits
