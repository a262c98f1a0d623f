/*
 * greenlet stack switch for 32-bit ARM, AAPCS with the VFP (hard-float)
 * variant (Linux ELF; built and tested as armv7-unknown-linux-gnueabihf).
 *
 * Exports four symbols (hidden, with the crate version in the name; build.rs
 * passes the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/arm.rs reaches them.
 *
 * The contract (SPEC section 5). The two switch entries are not C functions:
 * they are reached from `asm!` blocks that load the registers below and declare
 * every other register that Rust lets them name as clobbered (clobber_abi("C"),
 * which is r0-r3, r12, lr, d0-d7 and d16-d31, plus r5, r8, r9, r10 and
 * d8-d15; r4 carries an operand and is not kept either), so the compiler
 * keeps across a switch only what is live, in registers of its choice. What `asm!` cannot name is saved here:
 *
 *   r6    LLVM's base pointer, never an asm! operand;
 *   r11   the frame pointer of A32 code (what Rust emits for this target);
 *   r7    the frame pointer of Thumb code (thumbv7neon-*, or any crate built
 *         with +thumb-mode). This file is assembled once, without knowing
 *         which state the Rust code around the call site is in, so it saves
 *         both; in A32 code r7 could be named, but a site that declared it
 *         would make its caller save a register that is saved here anyway;
 *
 * plus the resume address. r9 is an ordinary callee-saved register on Linux
 * (it is reserved only under the RWPI relocation model, which no target with
 * std uses) and is declared at the call site.
 *
 *   in and out:  r0, r1, r2   the three transfer words, passed through
 *                             untouched to the resumed side
 *   in:          r3           where to store the suspended stack pointer
 *                r4           the stack pointer of the context to resume
 *                lr           the suspending side's resume address
 *   destroyed:   r3, r4, r12, lr and the flags
 *
 * Not r12 for the stack pointer, although it is the caller-saved register
 * left: AAPCS lets a linker veneer corrupt r12 (ip) between a branch and its
 * target, and GNU ld's Thumb-to-ARM veneer for a Thumb YIELD site's `b` does
 * (`ldr ip, [pc]; add pc, ip, pc`; found by the ABI test's Thumb entry). r4
 * is free because the site declares it clobbered anyway.
 *
 *   GREENLET_RESUME   entered by `bl`, so the CPU's return-stack predictor
 *                     pushes the suspending side's resume address, which `bl`
 *                     also puts in lr, with bit 0 set for a Thumb caller (the
 *                     linker makes a Thumb `bl` to this A32 code a `blx`).
 *                     Stores lr into the frame. Leaves by `bx r12` to the
 *                     resumed side's resume address: an indirect branch, which
 *                     the predictor does not treat as a return (`bx lr`,
 *                     `pop {..., pc}` and `mov pc, lr` are the returns).
 *   GREENLET_YIELD    entered by `b` after the asm! block has put its own
 *                     resume address (a label after the `b`, with bit 0 set
 *                     when that code is Thumb) into lr. Stores lr like RESUME
 *                     does. Leaves by `bx lr`: when the resumed side is the
 *                     one whose RESUME is still pending, the predictor pops
 *                     exactly the entry that RESUME's `bl` pushed, so in
 *                     parent/child ping-pong every return is predicted. The
 *                     Rust layer chooses; a wrong choice costs a mispredicted
 *                     return, never correctness.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)   (a C function)
 *       r0 = 16-aligned top of a fresh stack, r1 = entry, r2 = arg; writes
 *       below `top` a frame shaped like a suspended one, whose resume address
 *       is GREENLET_ENTRY, and returns its stack pointer.
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit. It
 *       sets lr to an address inside itself and jumps (`bx`, which enters a
 *       Thumb entry function in Thumb state) to entry(a, b, c, arg): r0-r2
 *       from the switch, arg into r3. A jump, not `blx`, so that the predictor
 *       holds no entry that no return will ever pop. entry never returns.
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended); F is 8 with GREENLET_FP_CONTROL and 0 without. Both entries
 * write and read this one layout, so either resumes a context that either
 * suspended.
 *
 *   offset  size  content                            initial frame (GREENLET_INIT)
 *   ------  ----  ---------------------------------  -----------------------------
 *   fp-control only:
 *     +0     4    FPSCR (its control bits are used)  the creator's FPSCR
 *     +4     4    padding (8-byte alignment)         0
 *   always:
 *    F+0     4    r6  (base pointer)                 entry function
 *    F+4     4    r7  (Thumb frame pointer)          entry argument
 *    F+8     4    r11 (A32 frame pointer)            0 (ends frame-pointer chains)
 *   F+12     4    resume address (lr; bit 0 = Thumb) GREENLET_ENTRY (A32: bit 0 clear)
 *   F+16          the suspended side's own frame     top of the stack (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  caller keeps what is live there)   |  |                          |
 *      +-------------------------------------+  +--------------------------+
 * F+12 |  resume address (lr from bl / adr)  |  |  resume address          | -> bx r12 / bx lr
 *  F+8 |  r11                                |  |  r11                     | \
 *  F+4 |  r7                                 |  |  r7                      |  > popped
 *  F+0 |  r6                                 |  |  r6                      | /
 *   +0 | [FPSCR | pad]  fp-control only      |  | [FPSCR | pad]           |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to [r3]                         ^ r4
 *
 * asm! blocks run with sp 8-aligned, as AAPCS wants at every call; the frame
 * is 16 or 24 bytes and keeps it so. GREENLET_INIT puts the frame at
 * top - (F + 16), so GREENLET_ENTRY runs with sp = top, 16-aligned, and its
 * 8-byte push leaves the 8-aligned sp a called function expects.
 *
 * Why this shape. The pair of entries and the short frame are the design
 * measured for x86_64 (asm/x86_64.S has the figures: a symmetric routine that
 * saved every callee-saved register and left by pop + jmp took 5.87 ns per
 * round trip, the RESUME/YIELD pair with the clobbers at the call site 2.15
 * ns, a fully inline switch 2.17 ns). The same reasons hold here: ARM cores
 * predict `bx lr` from a return stack that `bl` fills, and a frame of four
 * words is one `push` and one `pop`. Not measured on ARM hardware: the port
 * is tested under qemu-user only, which times nothing.
 *
 * ARM and Thumb state. The file is assembled in ARM (A32) state on purpose,
 * whatever the compiler's default: Rust's armv7 target emits A32 code, while
 * Debian's gcc and glibc default to Thumb-2, and the thumbv7 targets emit
 * Thumb, so call sites of either state must work. `.type %function` tells the
 * linker these are A32 symbols: a Thumb `bl` to RESUME becomes `blx`, a Thumb
 * `b` to YIELD goes through a veneer the linker adds, a function pointer to
 * INIT has bit 0 clear. The resume addresses carry their own state: `bl` sets
 * bit 0 of lr for a Thumb caller, the YIELD site sets it itself, and every
 * exit is `bx`, which switches to the state bit 0 names. GREENLET_INIT stores
 * the trampoline's address with bit 0 clear (`adr` of A32 code), its state
 * being A32; the trampoline's `bx` enters a Thumb entry function correctly.
 * The ABI test switches from and to Thumb code through both entries. The
 * price in Thumb builds: YIELD's `b` goes through the veneer (two more
 * branches, one of them indirect), which an A32 build does not pay; a Thumb
 * build of this file for Thumb targets would avoid it (not done: build.rs
 * cannot see `thumb-mode`, stable Rust reports no ARM target features).
 *
 * Unwinding. Rust on 32-bit ARM unwinds with the EHABI tables (.ARM.exidx),
 * not DWARF CFI, so each routine has .fnstart/.fnend. EHABI describes a
 * routine by its prologue alone; for the switch entries that is the state
 * between the push and the pop, which stays true across the swap because the
 * resumed frame has the same layout. Nothing unwinds through them in practice
 * (they call nothing). The trampoline must end every backtrace: it pushes a
 * frame record of zeros (r11 = 0, lr = 0) and describes it with
 * `.save {r11, lr}`, so the unwinder reports the trampoline, reads a return
 * address of 0 and stops there, as it does for any frame without a caller.
 * (`.cantunwind` would stop it one frame early: the EHABI unwinder gives up at
 * such a frame before reporting it, so backtraces would end at `entry` and
 * never show the trampoline.) Debuggers read DWARF, so the same routines also
 * carry CFI, exact at every instruction, emitted into .debug_frame only.
 *
 * The FP control state (SPEC section 5). Without fp-control FPSCR is not
 * touched: it belongs to the thread, as Rust assumes. With it, each greenlet
 * keeps FPSCR's control bits (AHP, DN, FZ, RMode, Stride, Len and the trap
 * enables) while its status bits stay with the thread: the cumulative
 * exception flags IDC/IXC/UFC/OFC/DZC/IOC, QC and the NZCV of the last
 * compare. The restore writes the suspending side's FPSCR with the resumed
 * side's control bits, i.e. the status current when the switch began, and
 * skips the `vmsr` when the control bits already agree, which is nearly
 * always (an access to FPSCR is a serialising instruction, ARM documents, for
 * example in the ARM1176JZF-S manual: a write waits until no FP operation in
 * flight can be affected; any inexact operation sets a flag, so comparing the
 * whole register would differ all the time).
 *
 * Caller-saved registers (r0-r3, r12, lr, d0-d7, d16-d31) and the
 * callee-saved r4, r5, r8-r10 and d8-d15 need no saving here: the asm! site
 * declares them clobbered.
 */

#if !defined(__ARM_FP)
#error "asm/arm.S needs a VFP unit (d8-d15 are callee-saved), as armv7 gnueabihf has"
#endif

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_FPSCR  0          /* fp-control only */
#define FRAME_PAD    4          /* fp-control only */
#define FRAME_R6     (F + 0)    /* r6, r7, r11, resume address by one push/pop */
#define FRAME_R7     (F + 4)
#define FRAME_R11    (F + 8)
#define FRAME_RESUME (F + 12)
#define FRAME_BYTES  (F + 16)
/* FPSCR status bits, the thread's: N Z C V QC (31-27), IDC (7), IXC UFC OFC
   DZC IOC (4-0). Each half is an A32 immediate. */
#define FPSCR_STATUS_HIGH 0xf8000000
#define FPSCR_STATUS_LOW  0x0000009f

        .syntax unified
        .arm
        .cfi_sections .debug_frame
        .text

/* The body both entries share: save r6, r7, r11 and the resume address in lr
   (and FPSCR), store sp to [r3], load r4, restore FPSCR's control bits from
   there; r6, r7, r11 and the resume address are popped by the caller of the
   macro, into the register its exit branches through. r0-r2 are never
   touched. */
.macro SWAP_STACKS
        push    {r6, r7, r11, lr}
        .save   {r6, r7, r11, lr}
        .cfi_adjust_cfa_offset 16
        .cfi_rel_offset r6, 0
        .cfi_rel_offset r7, 4
        .cfi_rel_offset r11, 8
        .cfi_rel_offset lr, 12
#ifdef GREENLET_FP_CONTROL
        vmrs    lr, fpscr               /* ours, kept in lr across the swap */
        sub     sp, sp, #8
        .pad    #8
        .cfi_adjust_cfa_offset 8
        str     lr, [sp, #FRAME_FPSCR]
#endif
        /* The only instructions that touch both stacks. */
        str     sp, [r3]
        mov     sp, r4
#ifdef GREENLET_FP_CONTROL
        ldr     r3, [sp, #FRAME_FPSCR]  /* theirs */
        eor     r12, r3, lr             /* the bits that differ */
        bic     r12, r12, #FPSCR_STATUS_HIGH
        bics    r12, r12, #FPSCR_STATUS_LOW /* the control bits that differ */
        beq     1f                      /* none: keep ours, flags too */
        eor     r12, r12, lr            /* ours with their control bits */
        vmsr    fpscr, r12
1:      add     sp, sp, #8
        .cfi_adjust_cfa_offset -8
#endif
.endm

        .globl  GREENLET_RESUME
        .hidden GREENLET_RESUME
        .type   GREENLET_RESUME, %function
        .p2align 4
GREENLET_RESUME:
        .fnstart
        .cfi_startproc
        SWAP_STACKS
        pop     {r6, r7, r11, r12}      /* r12: the resumed side's resume address */
        .cfi_adjust_cfa_offset -16
        .cfi_restore r6
        .cfi_restore r7
        .cfi_restore r11
        .cfi_register lr, r12
        bx      r12                     /* an indirect branch, not a return */
        .cfi_endproc
        .fnend
        .size   GREENLET_RESUME, .-GREENLET_RESUME

        .globl  GREENLET_YIELD
        .hidden GREENLET_YIELD
        .type   GREENLET_YIELD, %function
        .p2align 4
GREENLET_YIELD:
        .fnstart
        .cfi_startproc
        SWAP_STACKS
        pop     {r6, r7, r11, lr}
        .cfi_adjust_cfa_offset -16
        .cfi_restore r6
        .cfi_restore r7
        .cfi_restore r11
        .cfi_restore lr
        bx      lr                      /* pops what the matching RESUME's bl pushed */
        .cfi_endproc
        .fnend
        .size   GREENLET_YIELD, .-GREENLET_YIELD

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, %function
        .p2align 4
GREENLET_INIT:
        .fnstart
        .cfi_startproc
        sub     r0, r0, #FRAME_BYTES
        str     r1, [r0, #FRAME_R6]     /* entry */
        str     r2, [r0, #FRAME_R7]     /* arg */
        mov     r3, #0
        str     r3, [r0, #FRAME_R11]
        adr     r12, GREENLET_ENTRY     /* A32 code: bit 0 clear */
        str     r12, [r0, #FRAME_RESUME]
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        vmrs    r12, fpscr
        str     r12, [r0, #FRAME_FPSCR]
        str     r3, [r0, #FRAME_PAD]
#endif
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
        mov     r3, r7                  /* arg, the fourth argument */
        mov     r7, #0                  /* ends Thumb frame-pointer chains */
        mov     r11, #0                 /* (0 from the initial frame already) */
        mov     lr, #0
        push    {r11, lr}               /* keeps sp 8-aligned for entry */
        .save   {r11, lr}
        .cfi_adjust_cfa_offset 8
        adr     lr, 3f                  /* a return address inside this routine */
        bx      r6                      /* entry(a, b, c, arg), never returns */
3:      udf     #0
        .cfi_endproc
        .fnend
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",%progbits
