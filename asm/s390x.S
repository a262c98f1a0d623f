/*
 * greenlet stack switch for s390x, the z/Architecture ELF ABI (Linux).
 *
 * Exports exactly two symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_SWITCH and GREENLET_ENTRY):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       r2 = where to store the current stack pointer
 *       r3 = stack pointer of the context to resume (a frame laid out below)
 *       r4 = transfer word, handed to the resumed side in r2
 *
 *   GREENLET_ENTRY
 *       never called: the first `br %r14` into a new stack lands here. It calls
 *       entry(transfer, arg) with entry in r7 and arg in r6, both taken from the
 *       initial frame that src/arch.rs writes. entry never returns.
 *
 * Register table (ELF ABI for z/Architecture):
 *   callee-saved integer   r6-r13, r15 (stack pointer; saved through save_sp)
 *   return address         r14 (a register: saved in the frame like the others)
 *   callee-saved FP        f8-f15 (64 bits each)
 *   FP control state       FPC (32 bits: masks, flags, rounding mode)
 *   stack alignment        8 bytes (16 kept here, like every other port)
 *   arguments / return     r2, r3, r4 / r2
 *
 * Saved frame (what `save_sp` points at while a context is suspended):
 *
 *   offset  size  content                         initial frame (arch.rs)
 *   ------  ----  ------------------------------  ------------------------------
 *     +0     8    r6                              entry argument
 *     +8     8    r7                              entry function
 *    +16    24    r8 .. r10                       0
 *    +40     8    r11 (frame pointer by habit)    0
 *    +48    16    r12, r13                        0
 *    +64     8    r14 (return address)            GREENLET_ENTRY
 *    +72    64    f8 .. f15                       0
 *   +136     4    FPC                             0 (ABI default: round to nearest)
 *   +140     4    padding
 *   +144          caller's frame                  top of the stack (16-aligned)
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
 */

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        aghi    %r15, -144
        .cfi_adjust_cfa_offset 144
        stmg    %r6, %r14, 0(%r15)
        .cfi_rel_offset %r14, 64
        std     %f8, 72(%r15)
        std     %f9, 80(%r15)
        std     %f10, 88(%r15)
        std     %f11, 96(%r15)
        std     %f12, 104(%r15)
        std     %f13, 112(%r15)
        std     %f14, 120(%r15)
        std     %f15, 128(%r15)
        stfpc   136(%r15)

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        stg     %r15, 0(%r2)
        lgr     %r15, %r3

        lfpc    136(%r15)
        ld      %f8, 72(%r15)
        ld      %f9, 80(%r15)
        ld      %f10, 88(%r15)
        ld      %f11, 96(%r15)
        ld      %f12, 104(%r15)
        ld      %f13, 112(%r15)
        ld      %f14, 120(%r15)
        ld      %f15, 128(%r15)
        lmg     %r6, %r14, 0(%r15)
        aghi    %r15, 144
        .cfi_adjust_cfa_offset -144
        .cfi_restore %r14
        lgr     %r2, %r4
        br      %r14
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

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
