/*
 * greenlet stack switch for 32-bit x86 (i686), System V i386 ABI (Linux).
 * Rust calls this CPU family `x86` (CARGO_CFG_TARGET_ARCH), hence the name.
 *
 * Exports exactly three symbols (hidden, with the crate version in the name;
 * build.rs passes the names as GREENLET_SWITCH, GREENLET_INIT and GREENLET_ENTRY,
 * and defines GREENLET_FP_CONTROL when the cargo feature `fp-control` is on).
 * Arguments come on the stack (cdecl): at entry 4(%esp) is the first one.
 *
 *   usize GREENLET_SWITCH(void **save_sp, void *load_sp, usize transfer)
 *       4(%esp) = where to store the current stack pointer
 *       8(%esp) = stack pointer of the context to resume (a frame laid out below)
 *      12(%esp) = transfer word, handed to the resumed side in eax
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg)
 *       4(%esp) = 16-aligned top of a fresh stack, 8(%esp) = entry, 12(%esp) = arg
 *       writes the initial frame below `top` and returns its stack pointer, to
 *       be passed to GREENLET_SWITCH as load_sp. The frame layout is written in
 *       this file only: the offsets below serve the switch and this routine.
 *
 *   GREENLET_ENTRY
 *       never called: the first switch into a new stack jumps here. It calls
 *       entry(transfer, arg) (cdecl) with entry in esi and arg in edi, both put
 *       in the initial frame by GREENLET_INIT. entry never returns.
 *
 * Callee-saved in the i386 ABI: ebx, esi, edi, ebp (and esp). Everything
 * else, the x87 register stack and xmm0-7 included, is caller-saved, so there
 * are no callee-saved FP registers at all.
 *
 * Saved frame (what `save_sp` points at while a context is suspended); F is 8
 * with GREENLET_FP_CONTROL and 0 without:
 *
 *   offset  size  content                             initial frame (GREENLET_INIT)
 *   ------  ----  ----------------------------------  -----------------------------
 *   fp-control only:
 *     +0     4    MXCSR (control bits are used)       the creator's MXCSR
 *     +4     2    x87 FPU control word                the creator's control word
 *     +6     2    padding                             0
 *   always:
 *    F+0     4    edi                                 entry argument
 *    F+4     4    esi                                 entry function
 *    F+8     4    ebx                                 0
 *   F+12     4    ebp                                 0 (ends frame-pointer chains)
 *   F+16     4    return address                      GREENLET_ENTRY
 *   F+20          caller's frame: its outgoing        top of the stack (16-aligned)
 *                 arguments (save_sp, load_sp,
 *                 transfer), which it pops itself
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)           stack of B (being resumed)
 *      |  A's callers ...         |           |  B's callers ...         |
 *      |  transfer, load, save    |           |  transfer, load, save    |  cdecl arguments
 *      +--------------------------+           +--------------------------+
 * F+16 |  return address into A   |           |  return address into B   |  <- jmp
 * F+12 |  ebp                     |           |  ebp                     |  \
 *   .. |  ebx, esi                |           |  ebx, esi                |   } popped
 *  F+0 |  edi                     |           |  edi                     |  /
 *   +0 | [MXCSR | x87 CW | pad]   |           | [MXCSR | x87 CW | pad]   |  fp-control
 *      +--------------------------+           +--------------------------+
 *        ^ stored to *save_sp                   ^ load_sp
 *
 * Alignment: Linux i386 code keeps esp 16-aligned at every call (GCC and Rust
 * both assume it), so a function starts with esp = 12 (mod 16). The saved frame
 * itself needs no alignment (stmxcsr wants 4). GREENLET_INIT puts the frame at
 * top - (F + 20), so that GREENLET_ENTRY runs with esp = top, 16-aligned; it
 * pushes 16 bytes of arguments (two words and 8 of padding) and calls entry
 * with esp 16-aligned, as entry's compiler assumes.
 *
 * The FP control state (SPEC section 5), the same scheme as asm/x86_64.S and
 * for the same measured reasons (see that file's header). Without fp-control
 * it is not touched: MXCSR and the x87 control word belong to the thread.
 * With it, each greenlet keeps its own *control* bits (rounding, FTZ/DAZ,
 * exception masks, x87 precision and rounding) while MXCSR's six status flags
 * stay with the thread; the loads are skipped when the control bits already
 * agree, which is nearly always. Rust's i686 target requires SSE2, so MXCSR
 * exists; the x87 control word matters more here than on x86_64, since i386
 * returns float results in st(0) and x87 code is common.
 *
 * Other choices:
 *  - The resumed side is entered with `pop` + `jmp`, not `ret`, as on x86_64:
 *    a `ret` always goes to a different call site than the return-stack
 *    predictor pushed, and mispredicts. Measured natively in 32-bit mode on
 *    an Intel Xeon KVM guest, bare round trip (two switches,
 *    `bench_support::bare_switch_round_trips`, release): 12-15 ns with `jmp`,
 *    47-50 ns with `ret`.
 *  - i386 has no PC-relative addressing. GREENLET_INIT finds GREENLET_ENTRY
 *    with `call 1f; 1: pop`, which CPUs treat as a non-return (a call to the
 *    next instruction is not pushed on the return-stack predictor) and which
 *    needs no GOT, so the code stays position-independent (Rust links PIE)
 *    without a text relocation.
 *  - `endbr32` opens each entry point, a no-op without IBT; no GNU property
 *    note claims IBT or shadow stacks (see asm/x86_64.S for why it must not).
 */

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_EDI   (F + 0)
#define FRAME_ESI   (F + 4)
#define FRAME_EBX   (F + 8)
#define FRAME_EBP   (F + 12)
#define FRAME_RET   (F + 16)
#define FRAME_BYTES (F + 20)
/* MXCSR status flags (IE DE ZE OE UE PE): the thread's, never switched. */
#define MXCSR_FLAGS 0x3f

        .text

        .globl  GREENLET_SWITCH
        .hidden GREENLET_SWITCH
        .type   GREENLET_SWITCH, @function
        .p2align 4
GREENLET_SWITCH:
        .cfi_startproc
        endbr32
        movl    4(%esp), %ecx           /* save_sp */
        movl    8(%esp), %edx           /* load_sp */
        movl    12(%esp), %eax          /* transfer: stays in eax to the end */
        pushl   %ebp
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %ebp, 0
        pushl   %ebx
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %ebx, 0
        pushl   %esi
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %esi, 0
        pushl   %edi
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %edi, 0
#ifdef GREENLET_FP_CONTROL
        subl    $8, %esp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%esp)
        fnstcw  4(%esp)
        /* Every callee-saved register is free from here on: each was pushed
           above and is popped from the resumed frame below. */
        movl    (%esp), %ebx            /* ours: 4-byte loads of what the two */
        movzwl  4(%esp), %esi           /* stores wrote are forwarded */
#endif

        /* The only instructions that touch both stacks. The CFI above stays true
           after the swap because the resumed frame has the same layout. */
        movl    %esp, (%ecx)
        movl    %edx, %esp

#ifdef GREENLET_FP_CONTROL
        movl    (%esp), %edi            /* their MXCSR */
        movl    %edi, %ebp
        xorl    %ebx, %ebp
        testl   $~MXCSR_FLAGS, %ebp
        jz      1f                      /* same control bits: keep ours, flags too */
        andl    $~MXCSR_FLAGS, %edi
        andl    $MXCSR_FLAGS, %ebx
        orl     %ebx, %edi              /* their control bits, the thread's flags */
        movl    %edi, (%esp)
        ldmxcsr (%esp)
1:      cmpw    4(%esp), %si
        je      2f
        fldcw   4(%esp)
2:      addl    $8, %esp
        .cfi_adjust_cfa_offset -8
#endif
        popl    %edi
        .cfi_adjust_cfa_offset -4
        .cfi_restore %edi
        popl    %esi
        .cfi_adjust_cfa_offset -4
        .cfi_restore %esi
        popl    %ebx
        .cfi_adjust_cfa_offset -4
        .cfi_restore %ebx
        popl    %ebp
        .cfi_adjust_cfa_offset -4
        .cfi_restore %ebp
        popl    %ecx                    /* return address of the resumed side */
        .cfi_adjust_cfa_offset -4
        .cfi_register %eip, %ecx
        jmp     *%ecx

        .cfi_endproc
        .size   GREENLET_SWITCH, .-GREENLET_SWITCH

        .globl  GREENLET_INIT
        .hidden GREENLET_INIT
        .type   GREENLET_INIT, @function
        .p2align 4
GREENLET_INIT:
        .cfi_startproc
        endbr32
        movl    4(%esp), %eax
        subl    $FRAME_BYTES, %eax
        movl    8(%esp), %ecx
        movl    %ecx, FRAME_ESI(%eax)   /* entry function */
        movl    12(%esp), %ecx
        movl    %ecx, FRAME_EDI(%eax)   /* entry argument */
        xorl    %ecx, %ecx
        movl    %ecx, FRAME_EBX(%eax)
        movl    %ecx, FRAME_EBP(%eax)
        call    1f                      /* position-independent address of the trampoline */
1:      popl    %ecx
        addl    $(GREENLET_ENTRY - 1b), %ecx
        movl    %ecx, FRAME_RET(%eax)
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does (POSIX) and as Boost's make_fcontext does. */
        movl    $0, 4(%eax)
        stmxcsr (%eax)
        fnstcw  4(%eax)
#endif
        ret
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
        .cfi_undefined %eip
        endbr32
        subl    $8, %esp                /* esp = top here; keep 16 at the call */
        .cfi_adjust_cfa_offset 8
        pushl   %edi                    /* argument from the initial frame */
        .cfi_adjust_cfa_offset 4
        pushl   %eax                    /* transfer word from the switch */
        .cfi_adjust_cfa_offset 4
        calll   *%esi                   /* entry(transfer, arg), never returns */
        ud2
        .cfi_endproc
        .size   GREENLET_ENTRY, .-GREENLET_ENTRY

        .section .note.GNU-stack,"",@progbits
