/*
 * greenlet stack switch for aarch64, AAPCS64 (Linux).
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       x0 = where to store the current stack pointer
 *       x1 = stack pointer of the context to resume (a frame laid out below)
 *       x2 = transfer word, handed to the resumed side in x0
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       x0 = 16-aligned top of a fresh stack, x1 = entry, x2 = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack returns here. It calls
 *       entry(transfer, arg) with entry in x20 and arg in x19, both put in the
 *       initial frame by GREENLET_INIT. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended); F is 16
 * with GREENLET_FP_CONTROL and 0 without:
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *   always:
 *     +0     8    x19                                 entry argument
 *     +8     8    x20                                 entry function
 *    +16    64    x21 .. x28                          0
 *    +80     8    x29 (frame pointer)                 0 (ends frame-pointer chains)
 *    +88     8    x30 (link register)                 GREENLET_ENTRY
 *    +96    64    d8 .. d15                           0
 *   fp-control only:
 *   +160     8    FPCR (FP control register)          the creator's FPCR
 *   +168     8    padding (keeps sp 16-aligned)       0
 *   always:
 *  160+F          caller's frame                      top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +160 | [FPCR | pad]             |           | [FPCR | pad]             |  fp-control
 *  +96 |  d8 .. d15               |           |  d8 .. d15               |
 *  +88 |  x30 = return into A     |           |  x30 = return into B     |  <- ret
 *  +80 |  x29                     |           |  x29                     |
 *   +0 |  x19 .. x28              |           |  x19 .. x28              |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * 160 bytes without fp-control and 176 with it are both multiples of 16, so
 * GREENLET_ENTRY runs with sp = top, 16-aligned, as AAPCS64 wants.
 *
 * Only the low 64 bits of v8-v15 are callee-saved (d8-d15); everything else is
 * caller-saved and already assumed destroyed by the compiler at the call.
 *
 * The FP control state (SPEC section 5). Without fp-control it is not touched:
 * FPCR belongs to the thread, as Rust assumes. With it, each greenlet keeps its
 * own FPCR (rounding mode, FZ, DN, AHP, trap enables). aarch64 keeps the status
 * flags in a register of their own, FPSR, which is never switched: the
 * cumulative exception flags stay with the thread, as MXCSR's six flags do on
 * x86_64. The `msr fpcr` is skipped when the resumed side's FPCR equals ours,
 * which is nearly always: a write to FPCR changes how every later FP
 * instruction executes, so a core must order it against the FP operations in
 * flight (ARM documents such writes as serialising on its VFP units), while
 * the compare costs one cycle. Not measured on hardware: the port is tested
 * under qemu-user.
 *
 * Three more choices:
 *  - The resumed side is entered with `ret`, not `br x30`. x86_64 avoids `ret`
 *    because its return-stack predictor mispredicts here; on aarch64 `br`
 *    would not help a BTI-enabled program, where a `br` must land on a `bti j`
 *    pad and a return address never has one, while `ret` is exempt from BTI.
 *  - `bti c` opens each of the three entry points (a no-op without BTI). The
 *    file carries no GNU property note. Claiming BTI would hold (every target
 *    of an indirect call has its pad, and `ret` is exempt), but it cannot be
 *    tested: the linker marks a program for BTI only when every input object
 *    claims it, and neither Rust's std nor common glibc start files do, so no
 *    enforced run can be built. The pads make a forced link (`-z force-bti`)
 *    work. A GCS (guarded control stack) claim must never be added: the
 *    switch moves between stacks and returns to addresses that the caller's
 *    shadow stack would not hold.
 *  - The link register is neither signed nor authenticated (no PAC): the switch
 *    is a leaf that only moves x30 between the two stacks, and the values it
 *    moves are plain return addresses (a PAC-enabled caller signs its own copy
 *    in its own frame).
 */

#ifdef GREENLET_FP_CONTROL
#define F 16
#else
#define F 0
#endif
#define FRAME_X19   0           /* x19, x20 */
#define FRAME_X21   16          /* x21, x22 */
#define FRAME_X23   32          /* x23, x24 */
#define FRAME_X25   48          /* x25, x26 */
#define FRAME_X27   64          /* x27, x28 */
#define FRAME_X29   80          /* x29, x30 */
#define FRAME_D8    96          /* d8, d9 */
#define FRAME_D10   112         /* d10, d11 */
#define FRAME_D12   128         /* d12, d13 */
#define FRAME_D14   144         /* d14, d15 */
#define FRAME_FPCR  160         /* fp-control only */
#define FRAME_BYTES (160 + F)

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, %function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        bti     c
        sub     sp, sp, #FRAME_BYTES
        .cfi_def_cfa_offset FRAME_BYTES
        stp     x19, x20, [sp, #FRAME_X19]
        stp     x21, x22, [sp, #FRAME_X21]
        stp     x23, x24, [sp, #FRAME_X23]
        stp     x25, x26, [sp, #FRAME_X25]
        stp     x27, x28, [sp, #FRAME_X27]
        stp     x29, x30, [sp, #FRAME_X29]
        .cfi_offset x19, FRAME_X19 - FRAME_BYTES
        .cfi_offset x20, FRAME_X19 + 8 - FRAME_BYTES
        .cfi_offset x21, FRAME_X21 - FRAME_BYTES
        .cfi_offset x22, FRAME_X21 + 8 - FRAME_BYTES
        .cfi_offset x23, FRAME_X23 - FRAME_BYTES
        .cfi_offset x24, FRAME_X23 + 8 - FRAME_BYTES
        .cfi_offset x25, FRAME_X25 - FRAME_BYTES
        .cfi_offset x26, FRAME_X25 + 8 - FRAME_BYTES
        .cfi_offset x27, FRAME_X27 - FRAME_BYTES
        .cfi_offset x28, FRAME_X27 + 8 - FRAME_BYTES
        .cfi_offset x29, FRAME_X29 - FRAME_BYTES
        .cfi_offset x30, FRAME_X29 + 8 - FRAME_BYTES
        stp     d8,  d9,  [sp, #FRAME_D8]
        stp     d10, d11, [sp, #FRAME_D10]
        stp     d12, d13, [sp, #FRAME_D12]
        stp     d14, d15, [sp, #FRAME_D14]
        .cfi_offset d8,  FRAME_D8 - FRAME_BYTES
        .cfi_offset d9,  FRAME_D8 + 8 - FRAME_BYTES
        .cfi_offset d10, FRAME_D10 - FRAME_BYTES
        .cfi_offset d11, FRAME_D10 + 8 - FRAME_BYTES
        .cfi_offset d12, FRAME_D12 - FRAME_BYTES
        .cfi_offset d13, FRAME_D12 + 8 - FRAME_BYTES
        .cfi_offset d14, FRAME_D14 - FRAME_BYTES
        .cfi_offset d15, FRAME_D14 + 8 - FRAME_BYTES
#ifdef GREENLET_FP_CONTROL
        mrs     x10, fpcr               /* ours, kept in x10 across the swap */
        str     x10, [sp, #FRAME_FPCR]
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1

#ifdef GREENLET_FP_CONTROL
        ldr     x9, [sp, #FRAME_FPCR]   /* theirs */
        cmp     x9, x10
        b.eq    1f                      /* same control state: no write */
        msr     fpcr, x9
1:
#endif
        ldp     x19, x20, [sp, #FRAME_X19]
        ldp     x21, x22, [sp, #FRAME_X21]
        ldp     x23, x24, [sp, #FRAME_X23]
        ldp     x25, x26, [sp, #FRAME_X25]
        ldp     x27, x28, [sp, #FRAME_X27]
        ldp     x29, x30, [sp, #FRAME_X29]
        ldp     d8,  d9,  [sp, #FRAME_D8]
        ldp     d10, d11, [sp, #FRAME_D10]
        ldp     d12, d13, [sp, #FRAME_D12]
        ldp     d14, d15, [sp, #FRAME_D14]
        add     sp, sp, #FRAME_BYTES
        .cfi_def_cfa_offset 0
        .cfi_restore x19
        .cfi_restore x20
        .cfi_restore x21
        .cfi_restore x22
        .cfi_restore x23
        .cfi_restore x24
        .cfi_restore x25
        .cfi_restore x26
        .cfi_restore x27
        .cfi_restore x28
        .cfi_restore x29
        .cfi_restore x30
        .cfi_restore d8
        .cfi_restore d9
        .cfi_restore d10
        .cfi_restore d11
        .cfi_restore d12
        .cfi_restore d13
        .cfi_restore d14
        .cfi_restore d15
        mov     x0, x2
        ret
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, %function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
        bti     c
        sub     x3, x0, #FRAME_BYTES
        stp     x2, x1, [x3, #FRAME_X19]        /* x19 = arg, x20 = entry */
        stp     xzr, xzr, [x3, #FRAME_X21]
        stp     xzr, xzr, [x3, #FRAME_X23]
        stp     xzr, xzr, [x3, #FRAME_X25]
        stp     xzr, xzr, [x3, #FRAME_X27]
        adr     x4, GREENLET_ENTRY
        stp     xzr, x4, [x3, #FRAME_X29]       /* x29 = 0, x30 = trampoline */
        stp     xzr, xzr, [x3, #FRAME_D8]
        stp     xzr, xzr, [x3, #FRAME_D10]
        stp     xzr, xzr, [x3, #FRAME_D12]
        stp     xzr, xzr, [x3, #FRAME_D14]
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        mrs     x4, fpcr
        stp     x4, xzr, [x3, #FRAME_FPCR]
#endif
        mov     x0, x3
        ret
        .cfi_endproc
        .size   GREENLET_INIT, .-GREENLET_INIT

        .globl  GREENLET_ENTRY
        .hidden GREENLET_ENTRY
        .type   GREENLET_ENTRY, %function
        .p2align 4
GREENLET_ENTRY:
        .cfi_startproc
        /* Bottom of every greenlet stack: there is no caller. Marking the return
           address undefined makes unwinders, backtraces and gdb stop here. */
        .cfi_undefined x30
        bti     c
        /* x0 already holds the transfer word from the switch. */
        mov     x1, x19                 /* argument from the initial frame */
        blr     x20                     /* entry(transfer, arg), never returns */
        brk     #0x1
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",%progbits
