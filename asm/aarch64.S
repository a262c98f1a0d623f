/*
 * greenlet stack switch for aarch64, AAPCS64 (Linux).
 *
 * Exports exactly two symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_SWITCH and GREENLET_ENTRY):
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       x0 = where to store the current stack pointer
 *       x1 = stack pointer of the context to resume (a frame laid out below)
 *       x2 = transfer word, handed to the resumed side in x0
 *
 *   GREENLET_ENTRY
 *       never called: the first `ret` into a new stack lands here. It calls
 *       entry(transfer, arg) with entry in x20 and arg in x19, both taken from the
 *       initial frame that src/arch.rs writes. entry never returns.
 *
 * Saved frame (what `save_sp` points at while a context is suspended):
 *
 *   offset  size  content                         initial frame (arch.rs)
 *   ------  ----  ------------------------------  ------------------------------
 *     +0     8    x19                             entry argument
 *     +8     8    x20                             entry function
 *    +16    64    x21 .. x28                      0
 *    +80     8    x29 (frame pointer)             0 (ends frame-pointer chains)
 *    +88     8    x30 (link register)             GREENLET_ENTRY
 *    +96    64    d8 .. d15                       0
 *   +160     8    FPCR (FP control register)      0 (ABI default: round to nearest)
 *   +168     8    padding (keeps sp 16-aligned)
 *   +176          caller's frame                  top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      +--------------------------+           +--------------------------+
 * +160 |  FPCR | pad              |           |  FPCR | pad              |
 *  +96 |  d8 .. d15               |           |  d8 .. d15               |
 *  +88 |  x30 = return into A     |           |  x30 = return into B     |  <- ret
 *  +80 |  x29                     |           |  x29                     |
 *   +0 |  x19 .. x28              |           |  x19 .. x28              |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * Only the low 64 bits of v8-v15 are callee-saved (d8-d15); everything else is
 * caller-saved and already assumed destroyed by the compiler at the call.
 * `bti c` marks both symbols as valid targets for indirect calls; the trampoline
 * is entered by `ret`, which BTI does not check, but keeping the landing pad
 * costs nothing. The link register is not signed (no PAC): the switch is a leaf
 * that only moves x30 between the two stacks.
 */

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, %function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        bti     c
        sub     sp, sp, #176
        .cfi_def_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        .cfi_offset x29, -96
        .cfi_offset x30, -88
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1

        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        mov     x0, x2
        ret
        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

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
