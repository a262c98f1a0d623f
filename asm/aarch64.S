/*
 * greenlet stack switch for aarch64, AAPCS64: Linux (ELF) and macOS (Mach-O,
 * Apple's arm64 ABI) from this one file. The object-format directives come
 * from platform.h; the instructions are the same for both.
 *
 * The contract (SPEC section 5). Exports exactly four symbols (hidden, with the
 * crate version in the name; build.rs passes the names as GREENLET_RESUME,
 * GREENLET_YIELD, GREENLET_INIT and GREENLET_ENTRY, and defines
 * GREENLET_FP_CONTROL when the cargo feature `fp-control` is on). Registers
 * at the two switch entries (not a C ABI: only src/arch/aarch64.rs calls them,
 * from `asm!` blocks that declare everything else clobbered):
 *
 *   x0, x1, x2   the transfer words a, b, c: handed through untouched, in and
 *                out (the resumed side finds ours in the same registers)
 *   x3           save_sp: where to store our stack pointer
 *   x4           load_sp: the stack pointer of the context to resume
 *   x30          our resume address
 *
 *   GREENLET_RESUME   entered by `bl` (so x30 is the return address, and the
 *                     return-address predictor has pushed it). Saves, swaps,
 *                     restores and leaves by `br x30`, an indirect jump to the
 *                     resumed side's saved address, never by `ret`.
 *   GREENLET_YIELD    entered by `b` after the asm! block has put its own resume
 *                     address (a local label after the `b`) into x30 with `adr`.
 *                     Saves, swaps, restores exactly as RESUME does and leaves
 *                     by `ret`, which pops the predictor entry that the
 *                     resumed side's `bl GREENLET_RESUME` pushed: in ping-pong
 *                     every return is predicted.
 *   Both store x30 into the frame as the resume address, so either entry may
 *   resume a context suspended by either.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       x0 = 16-aligned top of a fresh stack, x1 = entry, x2 = arg. Writes a
 *       frame shaped like a suspended one below `top`, whose resume address is
 *       GREENLET_ENTRY and whose x29 and x19 slots carry entry and arg, and
 *       returns its stack pointer (for load_sp). Also writes the chain-end
 *       word at top + 8 (below).
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack lands here, with sp =
 *       top and the transfer words in x0-x2. It enters
 *       entry(a, b, c, arg), an `extern "C" fn(usize, usize, usize, usize) -> !`,
 *       by setting the link register and jumping (`adr x30; br x16`), so the
 *       predictor holds no call that is never returned from.
 *
 * What the .S saves: only what asm! cannot name on aarch64 (the Rust
 * reference, "Register operands": x19 is LLVM's base pointer, x29 the frame
 * pointer, sp and xzr are the stack and zero register, x18 is the platform
 * register on Apple, Windows, Android, Fuchsia). The asm! site declares
 * everything else clobbered: clobber_abi("C") (x0-x17, x18 where it is not
 * reserved, x30, all of v0-v31 since the upper halves of v8-v15 are caller-
 * saved, p0-p15, ffr) plus x20-x28, so the compiler keeps only what is live
 * across the switch, in its own frame. x18 is never touched by this file: on
 * Apple it is the platform's, on Linux it is an ordinary temporary that
 * clobber_abi("C") covers.
 *
 * Saved frame (what save_sp points at while a context is suspended), 32
 * bytes in both builds (sp must stay 16-aligned, and the fp-control word takes
 * the slot that is padding without it):
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *     +0     8    x29 (frame pointer)                 entry function
 *     +8     8    resume address (x30 at the entry)   GREENLET_ENTRY
 *    +16     8    x19                                 entry argument
 *    +24     8    FPCR under fp-control, else unused  the creator's FPCR, else 0
 *    +32          the suspended side's own frame      top of the stack (16-aligned)
 *
 * x29 and the resume address sit together at +0 as an AAPCS64 frame record
 * {fp, lr}, so a frame-pointer walk that starts from a saved stack pointer
 * reads the suspended side's chain.
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's frames ...          |           |  B's frames ...          |
 *      |  (A's live values: the   |           |                          |
 *      |   compiler spilled them) |           |                          |
 *      +--------------------------+           +--------------------------+
 *  +24 |  FPCR / unused           |           |  FPCR / unused           |
 *  +16 |  x19                     |           |  x19                     |
 *   +8 |  resume address of A     |           |  resume address of B     |  -> br / ret
 *   +0 |  x29                     |           |  x29                     |
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp (x3)              ^ load_sp (x4)
 *
 * The FP control state (SPEC section 5). Without fp-control it is not touched:
 * FPCR belongs to the thread, as Rust assumes. With it, each greenlet keeps its
 * own FPCR (rounding mode, FZ, DN, AHP, trap enables); FPSR, the cumulative
 * status flags, is never switched and stays the thread's, as MXCSR's flags do
 * on x86_64. The `msr fpcr` is skipped when the resumed side's FPCR equals
 * ours, which is nearly always: a write to FPCR must be ordered against the FP
 * operations in flight, the compare costs a cycle. Not measured on hardware.
 *
 * Other choices:
 *  - RESUME leaves by `br x30` and YIELD by `ret` (both `ret x30`-shaped, but
 *    `br` is not a return to the predictor); the entries differ in nothing
 *    else, so one macro makes both.
 *  - No BTI landing pads, no GNU property note (SPEC section 5): RESUME's `bl`
 *    is never matched by a `ret` of its own, and the resume labels it jumps
 *    to with `br` are not `bti j` pads, so a BTI- or GCS-enforced program
 *    would fault here; the file claims neither. GREENLET_ENTRY branches to
 *    the Rust entry through x16, which a `bti c` pad accepts, so that jump
 *    would be fine under BTI. No PAC: the routines only move return
 *    addresses between stacks; a PAC-enabled caller signs its own copy.
 *  - The new stack's entry frame: x29 = 0 ends frame-pointer chains. The
 *    link register handed to entry points into GREENLET_ENTRY (at a `brk`
 *    that is never reached), so backtraces show the trampoline as the last
 *    frame of the greenlet's stack. Its CFI then goes on into the greenlet
 *    whose RESUME into this one is pending (SPEC section 10), exactly as
 *    asm/x86_64.S describes: the trampoline runs with sp = top, where
 *    init_stack (src/arch/mod.rs) put the link area; CFA = the resumer's
 *    saved sp + FRAME_BYTES, its x29, x30, x19 from its saved frame, when
 *    its state byte says suspended; else CFA = top + END_CFA, which reads
 *    the return address from the chain-end word that GREENLET_INIT writes,
 *    one instruction into GREENLET_ENTRY_no_resumer (whose CFI ends the
 *    walk). `.cfi_signal_frame` lets gdb accept a caller below this frame.
 *
 *    A new stack, as init_stack and GREENLET_INIT leave it:
 *
 *      |  the closure (src/greenlet/builder.rs)                  |
 *      +---------------------------------------------------------+
 * +24  |  0 (the state byte when the area stands in for a record) |
 * +16  |  0 (the resumer of the record at top + 8)                |
 *  +8  |  chain-end word: 5f, in GREENLET_ENTRY_no_resumer        |  (INIT)
 * top  |  link word: the greenlet's record, or top + 8            |  <- sp in GREENLET_ENTRY
 *      +---------------------------------------------------------+
 *      |  initial frame (the table above)                         |
 *      +---------------------------------------------------------+
 *  - Mach-O: the assembler resolves `adr` to a numeric local label in the
 *    same file without a relocation (arm64 Mach-O has no ADR relocation to a
 *    global symbol), so GREENLET_INIT finds GREENLET_ENTRY that way.
 */

#include "platform.h"

#define FRAME_FP     0           /* x29, and the resume address at +8 */
#define FRAME_X19    16          /* x19, and FPCR (fp-control) at +24 */
#define FRAME_FPCR   24
#define FRAME_BYTES  32

/* The core's switch record and the DWARF expression pieces that read it
   (asm/link.h). SP_OP is DW_OP_breg31 (sp) + offset, the link area's address
   when the trampoline is unwound into. The CFA with no resumer: the one
   whose resume-address slot is the chain-end word at sp + 8, so the return
   address read is that word. */
#include "link.h"
#define END_CFA (8 + FRAME_BYTES - (FRAME_FP + 8))
#define SP_OP 0x8f
#define CFI_RESUMER CFI_RESUMER_AT(SP_OP, 0)
#define CFI_RESUMER_OR_AREA CFI_RESUMER_OR_AREA_AT(SP_OP, 0)
/* GREENLET_ENTRY's name with a suffix, for the local end-of-chain symbol. */
#define PASTE2(a, b) a##b
#define PASTE(a, b) PASTE2(a, b)
#define NO_RESUMER PASTE(GREENLET_ENTRY, _no_resumer)

/* Save the few registers, swap stacks, restore the other side's; leave with
   x30 = the resumed side's resume address, by `leave` (br x30 or ret). */
.macro SWITCH_BODY leave
        .cfi_startproc
        sub     sp, sp, #FRAME_BYTES
        .cfi_def_cfa_offset FRAME_BYTES
        stp     x29, x30, [sp, #FRAME_FP]
        str     x19, [sp, #FRAME_X19]
        .cfi_offset x29, FRAME_FP - FRAME_BYTES
        .cfi_offset x30, FRAME_FP + 8 - FRAME_BYTES
        .cfi_offset x19, FRAME_X19 - FRAME_BYTES
#ifdef GREENLET_FP_CONTROL
        mrs     x9, fpcr                /* ours, kept in x9 across the swap */
        str     x9, [sp, #FRAME_FPCR]
#endif
        /* The only instructions that touch both stacks. The CFI above stays
           true after the swap: the resumed frame has the same layout. */
        mov     x10, sp
        str     x10, [x3]
        mov     sp, x4
#ifdef GREENLET_FP_CONTROL
        ldr     x10, [sp, #FRAME_FPCR]  /* theirs */
        cmp     x10, x9
        b.eq    1f                      /* same control state: no write */
        msr     fpcr, x10
1:
#endif
        ldp     x29, x30, [sp, #FRAME_FP]
        ldr     x19, [sp, #FRAME_X19]
        add     sp, sp, #FRAME_BYTES
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        .cfi_restore x19
        \leave
        .cfi_endproc
.endm

        TEXT_SECTION

FUNCTION_BEGIN(GREENLET_RESUME)
        SWITCH_BODY "br x30"
FUNCTION_END(GREENLET_RESUME)

FUNCTION_BEGIN(GREENLET_YIELD)
        SWITCH_BODY "ret"
FUNCTION_END(GREENLET_YIELD)

FUNCTION_BEGIN(GREENLET_INIT)
        .cfi_startproc
        sub     x3, x0, #FRAME_BYTES
        adr     x4, 9f                  /* GREENLET_ENTRY, below */
        stp     x1, x4, [x3, #FRAME_FP] /* x29 = entry, resume at the trampoline */
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        mrs     x5, fpcr
#else
        mov     x5, xzr
#endif
        stp     x2, x5, [x3, #FRAME_X19] /* x19 = arg */
        /* The chain-end word, beside the link word that init_stack
           (src/arch/mod.rs) put at top: where the trampoline's caller
           returns when there is no suspended resumer. */
        adr     x6, 5f
        str     x6, [x0, #8]
        mov     x0, x3
        ret
        .cfi_endproc
FUNCTION_END(GREENLET_INIT)

FUNCTION_BEGIN(GREENLET_ENTRY)
9:
        .cfi_startproc
        /* The caller of the bottom frame is the greenlet that resumed this one
           (SPEC section 10), described by the expressions in the header; the
           signal-frame mark shows the boundary and lets gdb accept a caller
           on a stack at a lower address. x0-x2 hold the transfer words of the
           switch that started us. */
        .cfi_signal_frame
        /* DW_CFA_def_cfa_expression, in the ops every consumer reads,
           Valgrind's too (no branches, no dup, no deref_size): with
           R' = R, or this link area when R is null, and
           ok = (R''s state byte == LINK_SUSPENDED), which is 0 for the area,
           CFA = sp + END_CFA + ok * ([R'] + FRAME_BYTES - (sp + END_CFA)). */
        .cfi_escape 0x0f, 54
        .cfi_escape SP_OP, END_CFA              /* the CFA with no resumer */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x23, LINK_STATE, 0x06      /* DW_OP_plus_uconst, DW_OP_deref */
        .cfi_escape 0x08, 0xff, 0x1a            /* DW_OP_const1u 0xff, DW_OP_and: the state byte */
        .cfi_escape 0x30 + LINK_SUSPENDED, 0x29 /* DW_OP_lit<SUSPENDED>, DW_OP_eq: ok */
        .cfi_escape CFI_RESUMER_OR_AREA         /* R' */
        .cfi_escape 0x06, 0x23, FRAME_BYTES     /* DW_OP_deref: its saved sp; + the frame */
        .cfi_escape SP_OP, END_CFA, 0x1c        /* - (sp + END_CFA) */
        .cfi_escape 0x1e, 0x22                  /* DW_OP_mul by ok, DW_OP_plus */
        .cfi_offset x30, FRAME_FP + 8 - FRAME_BYTES
        .cfi_offset x29, FRAME_FP - FRAME_BYTES
        .cfi_offset x19, FRAME_X19 - FRAME_BYTES
        mov     x16, x29                /* entry, from the initial frame */
        mov     x29, xzr                /* ends frame-pointer chains */
        mov     x3, x19                 /* arg, from the initial frame */
        adr     x30, 8f                 /* a return address inside this routine */
        br      x16                     /* entry(a, b, c, arg), never returns */
8:
        brk     #0x1
        .cfi_endproc
FUNCTION_END(GREENLET_ENTRY)

/* The caller the trampoline names when the chain ends (no greenlet record, no
   resumer, or one not suspended: a greenlet resumed by a death). Never run;
   its CFI marks the return address undefined, which every unwinder reads as
   the outermost frame (a return address of 0 would do for libgcc, but gdb
   shows a frame at 0 below a signal frame and then complains). Local: only
   its address is stored, one instruction in, since symbolizers look up a
   return address minus one. */
        .p2align 2
#ifndef __APPLE__
        .type   NO_RESUMER, %function
#endif
NO_RESUMER:
        .cfi_startproc
        .cfi_undefined x30
        nop
5:
        brk     #0x1
        .cfi_endproc
#ifndef __APPLE__
        .size   NO_RESUMER, .-NO_RESUMER
#endif

GNU_STACK_NOTE
