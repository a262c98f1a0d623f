/*
 * greenlet stack switch for x86_64, Microsoft x64 (Win64) ABI, PE/COFF
 * (x86_64-pc-windows-gnu, assembled by mingw-w64's gcc).
 *
 * Exports four symbols (with the crate version in the name; build.rs passes
 * the names as GREENLET_RESUME, GREENLET_YIELD, GREENLET_INIT and
 * GREENLET_ENTRY, and defines GREENLET_FP_CONTROL when the cargo feature
 * `fp-control` is on). Only src/arch/x86_64.rs reaches them. COFF has no
 * hidden visibility; the symbols are global to the link and exported from no
 * DLL (nothing here is marked dllexport).
 *
 * The contract (SPEC sections 5 and 8) is the one of asm/x86_64.S, with the
 * same registers at the asm! sites, so that src/arch/x86_64.rs serves both
 * files. The two switch entries are not C functions: they are reached from
 * `asm!` blocks that load the registers below and declare every other
 * register that Rust lets them name as clobbered. On Win64 that is
 * clobber_abi("C") (rax, rcx, rdx, r8-r11, xmm0-xmm5 and the upper halves
 * and higher vector registers) plus the callee-saved registers the site names
 * itself: rdi and rsi (the transfer words), r12-r15 and xmm6-xmm15 (Win64's
 * callee-saved vector registers, declared clobbered only on Windows). What
 * `asm!` cannot name is saved here: rbx (LLVM's base pointer), rbp (the
 * frame pointer), the resume address, and the four fields of the thread's
 * TEB that tell the OS which stack the thread runs on.
 *
 *   in and out:  rdi, rsi, rdx   the three transfer words, passed through
 *                                untouched to the resumed side
 *   in:          r8              where to store the suspended stack pointer
 *                r9              the stack pointer of the context to resume
 *   destroyed:   rax, r10, r11 (and r8, r9)
 *
 *   GREENLET_RESUME   entered by `call` (the predictor pushes the suspending
 *                     side's resume address, which the call also stores);
 *                     leaves by an indirect `jmp` to the resumed side's.
 *   GREENLET_YIELD    entered by `jmp` after the asm! block pushed its own
 *                     resume address; leaves by `ret`, which pops the entry
 *                     that the pending RESUME's call pushed.
 *
 *   void *GREENLET_INIT(void *top, entry_fn entry, usize arg,
 *                       const usize bounds[3])         (a Win64 C function)
 *       rcx = 16-aligned top of the frame, rdx = entry, r8 = arg, r9 = the
 *       new stack's StackBase, StackLimit and DeallocationStack, or NULL to
 *       copy the running thread's (scratch stacks that never raise an
 *       exception: the ABI test, the bare ping-pong). Writes below `top` a
 *       frame shaped like a suspended one, whose resume address is
 *       GREENLET_ENTRY and whose ExceptionList is -1 (the end of the chain),
 *       and returns its stack pointer.
 *
 *   GREENLET_ENTRY
 *       the first code on every new stack, reached by either entry's exit.
 *       It moves the transfer words and arg into Win64's argument registers,
 *       leaves the 32 bytes of shadow space a callee may use, pushes its own
 *       address as a return address and jumps to entry(a, b, c, arg): a
 *       jump, not a call, so that the predictor holds no entry that no `ret`
 *       will ever pop. entry never returns.
 *
 * The TEB fields (SPEC section 8). Windows and wine decide from the running
 * thread's TEB where its stack is: the OS grows a stack by its PAGE_GUARD
 * page only between DeallocationStack and StackBase (and updates StackLimit
 * as it does), raises STATUS_STACK_OVERFLOW from there, and the exception
 * dispatcher and unwinder accept only frames between StackLimit and
 * StackBase. So a greenlet stack must be described there while it runs, and
 * each switch saves the four fields with the stack and loads the other
 * side's. Measured under wine 8: with none switched a panic on a greenlet
 * stack aborts ("exception frame is not in stack limits"); with the first
 * three only, the panic fails to start (wine walks its own ExceptionList
 * chain, which then points into another stack); with all four it unwinds
 * and is caught. Real Windows x64 ignores ExceptionList (an x86 relic) but
 * keeps it per thread, so switching it is harmless there.
 *
 *   gs:[0x00]    NT_TIB.ExceptionList      -1 on a greenlet stack
 *   gs:[0x08]    NT_TIB.StackBase          the stack's top
 *   gs:[0x10]    NT_TIB.StackLimit         lowest committed byte
 *   gs:[0x1478]  TEB.DeallocationStack     start of the stack's reservation
 * GuaranteedStackBytes (gs:[0x1748]) stays the thread's: Rust's std sets it
 * once per thread, and src/stack's guard is sized for it.
 *
 * Saved frame (what the stored stack pointer points at while a context is
 * suspended); F is 8 with GREENLET_FP_CONTROL and 0 without. Both entries
 * write and read this one layout.
 *
 *   offset  size  content                            initial frame (GREENLET_INIT)
 *   ------  ----  ---------------------------------  -----------------------------
 *   fp-control only:
 *     +0     4    MXCSR (control bits are used)      the creator's MXCSR
 *     +4     2    x87 FPU control word               the creator's control word
 *     +6     2    padding
 *   always:
 *    F+0     8    ExceptionList      gs:[0x00]       -1
 *    F+8     8    StackBase          gs:[0x08]       bounds[0] (the stack's top)
 *   F+16     8    StackLimit         gs:[0x10]       bounds[1]
 *   F+24     8    DeallocationStack  gs:[0x1478]     bounds[2]
 *   F+32     8    rbx                                entry function
 *   F+40     8    rbp                                entry argument
 *   F+48     8    resume address                     GREENLET_ENTRY
 *   F+56          the suspended side's own frame     initial frame only: a zero
 *                                                    word (see GREENLET_ENTRY),
 *                                                    then `top` (16-aligned)
 *
 * Stack picture during a switch from A to B (higher addresses at the top; both
 * stacks grow downward):
 *
 *        stack of A (being suspended)          stack of B (being resumed)
 *      |  A's frames (the asm! site's        |  |  B's frames              |
 *      |  caller keeps what is live there)   |  |                          |
 *      +-------------------------------------+  +--------------------------+
 * F+48 |  resume address (call / push)       |  |  resume address          | <- jmp / ret
 * F+40 |  rbp                                |  |  rbp                     | \
 * F+32 |  rbx                                |  |  rbx                     |  |
 * F+24 |  DeallocationStack                  |  |  DeallocationStack       |  | popped, the
 * F+16 |  StackLimit                         |  |  StackLimit              |  | TEB fields
 *  F+8 |  StackBase                          |  |  StackBase               |  | into gs:[..]
 *  F+0 |  ExceptionList                      |  |  ExceptionList           | /
 *   +0 | [MXCSR | x87 CW | pad]  fp-control  |  | [MXCSR | x87 CW | pad]   |
 *      +-------------------------------------+  +--------------------------+
 *        ^ stored to (r8)                         ^ r9
 *
 * asm! blocks run with rsp 16-aligned; the call or push makes it 8 (mod 16)
 * and the six pushes keep it there; the fp-control slot makes it 0. Nothing
 * here needs an aligned rsp. GREENLET_INIT puts the frame at
 * top - 8 - (F + 56), with a zero word at top - 8, so that GREENLET_ENTRY
 * starts with rsp = top - 8; its 40-byte allocation and push then give entry
 * rsp = 8 (mod 16) and 32 bytes of shadow space above its return address, as
 * a Win64 callee expects.
 *
 * Unwind information. Every routine carries SEH unwind codes (.seh_proc ...
 * .seh_endproc), as Win64 requires of any function that is not a leaf: the
 * OS unwinder (RtlVirtualUnwind, which panics and backtraces use) treats code
 * without them as a leaf whose return address is at rsp. The switch entries'
 * prologue pushes are described one by one (the TEB pushes as 8-byte
 * allocations: the unwinder only needs to know how far rsp moved); after the
 * stack pointer moves, the same codes describe the resumed side's frame, which
 * has the same layout. GREENLET_ENTRY's codes say that its caller's frame
 * starts 40 bytes above entry's return address, where GREENLET_INIT left the
 * zero word: a return address of zero ends every Win64 stack walk, so
 * backtraces and unwinding stop at the bottom of a greenlet stack (what
 * `.cfi_undefined rip` does in the ELF file). No panic gets that far: the
 * core catches each one in entry.
 *
 * The FP control state (SPEC section 5), as in asm/x86_64.S: without
 * fp-control it is the thread's; with it each greenlet keeps its own MXCSR
 * control bits and x87 control word, the six MXCSR status flags stay with
 * the thread, and the loads are skipped when the control bits agree
 * (asm/x86_64.S has the measurements behind that choice).
 *
 * Caller-saved registers and everything the asm! site declares clobbered
 * need no saving here.
 */

#ifdef GREENLET_FP_CONTROL
#define F 8
#else
#define F 0
#endif
#define FRAME_EXCEPTION_LIST (F + 0)
#define FRAME_STACK_BASE     (F + 8)
#define FRAME_STACK_LIMIT    (F + 16)
#define FRAME_DEALLOCATION   (F + 24)
#define FRAME_RBX            (F + 32)
#define FRAME_RBP            (F + 40)
#define FRAME_RESUME         (F + 48)
#define FRAME_BYTES          (F + 56)
/* The TEB fields, at these offsets from gs on x64. */
#define TEB_EXCEPTION_LIST   0x00
#define TEB_STACK_BASE       0x08
#define TEB_STACK_LIMIT      0x10
#define TEB_DEALLOCATION     0x1478
/* MXCSR status flags (IE DE ZE OE UE PE): the thread's, never switched. */
#define MXCSR_FLAGS 0x3f

/* Opens a global function for COFF: storage class 2 (external), type 32
   (function), so that debuggers and the linker see a function. */
#define FUNCTION_BEGIN(name) .globl name ; .def name ; .scl 2 ; .type 32 ; .endef ; .p2align 4 ; name:

/* The prologue both entries share: save rbp, rbx, the four TEB fields (and
   the FP control words), each described to the unwinder. */
.macro SAVE_FRAME
        pushq   %rbp
        .seh_pushreg %rbp
        pushq   %rbx
        .seh_pushreg %rbx
        pushq   %gs:TEB_DEALLOCATION
        .seh_stackalloc 8
        pushq   %gs:TEB_STACK_LIMIT
        .seh_stackalloc 8
        pushq   %gs:TEB_STACK_BASE
        .seh_stackalloc 8
        pushq   %gs:TEB_EXCEPTION_LIST
        .seh_stackalloc 8
#ifdef GREENLET_FP_CONTROL
        subq    $8, %rsp
        .seh_stackalloc 8
#endif
        .seh_endprologue
.endm

/* Store rsp to (r8), load r9, restore the other side's frame from there. On
   exit the resumed side's resume address is at (rsp). */
.macro SWAP_AND_RESTORE
#ifdef GREENLET_FP_CONTROL
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movl    (%rsp), %r10d           /* ours */
        movzwl  4(%rsp), %r11d
#endif
        movq    %rsp, (%r8)
        movq    %r9, %rsp
#ifdef GREENLET_FP_CONTROL
        movl    (%rsp), %eax            /* theirs */
        xorl    %r10d, %eax
        testl   $~MXCSR_FLAGS, %eax
        jz      1f                      /* same control bits: keep ours, flags too */
        xorl    %r10d, %eax             /* theirs again */
        andl    $~MXCSR_FLAGS, %eax
        andl    $MXCSR_FLAGS, %r10d
        orl     %r10d, %eax             /* their control bits, the thread's flags */
        movl    %eax, (%rsp)
        ldmxcsr (%rsp)
1:      cmpw    4(%rsp), %r11w
        je      2f
        fldcw   4(%rsp)
2:      addq    $8, %rsp
#endif
        popq    %gs:TEB_EXCEPTION_LIST
        popq    %gs:TEB_STACK_BASE
        popq    %gs:TEB_STACK_LIMIT
        popq    %gs:TEB_DEALLOCATION
        popq    %rbx
        popq    %rbp
.endm

        .text

FUNCTION_BEGIN(GREENLET_RESUME)
        .seh_proc GREENLET_RESUME
        SAVE_FRAME
        SWAP_AND_RESTORE
        popq    %r11                    /* the resumed side's resume address */
        jmpq    *%r11
        .seh_endproc

FUNCTION_BEGIN(GREENLET_YIELD)
        .seh_proc GREENLET_YIELD
        SAVE_FRAME
        SWAP_AND_RESTORE
        retq                            /* pops what the matching RESUME's call pushed */
        .seh_endproc

FUNCTION_BEGIN(GREENLET_INIT)
        .seh_proc GREENLET_INIT
        .seh_endprologue
        leaq    -(FRAME_BYTES + 8)(%rcx), %rax
        movq    $0, FRAME_BYTES(%rax)   /* top - 8: the zero return address */
        movq    %rdx, FRAME_RBX(%rax)
        movq    %r8, FRAME_RBP(%rax)
        leaq    GREENLET_ENTRY(%rip), %r10
        movq    %r10, FRAME_RESUME(%rax)
        movq    $-1, FRAME_EXCEPTION_LIST(%rax)
        testq   %r9, %r9
        jz      1f
        movq    0(%r9), %r10
        movq    %r10, FRAME_STACK_BASE(%rax)
        movq    8(%r9), %r10
        movq    %r10, FRAME_STACK_LIMIT(%rax)
        movq    16(%r9), %r10
        movq    %r10, FRAME_DEALLOCATION(%rax)
        jmp     2f
1:      movq    %gs:TEB_STACK_BASE, %r10    /* no bounds: the thread's own */
        movq    %r10, FRAME_STACK_BASE(%rax)
        movq    %gs:TEB_STACK_LIMIT, %r10
        movq    %r10, FRAME_STACK_LIMIT(%rax)
        movq    %gs:TEB_DEALLOCATION, %r10
        movq    %r10, FRAME_DEALLOCATION(%rax)
2:
#ifdef GREENLET_FP_CONTROL
        /* A new greenlet starts with its creator's FP control state, as a new
           thread does. */
        movq    $0, (%rax)
        stmxcsr (%rax)
        fnstcw  4(%rax)
#endif
        ret
        .seh_endproc

FUNCTION_BEGIN(GREENLET_ENTRY)
        .seh_proc GREENLET_ENTRY
        /* rsp = top - 8, at the zero word. */
        subq    $40, %rsp               /* shadow space + alignment */
        .seh_stackalloc 40
        .seh_endprologue
        movq    %rbx, %rax              /* entry, from the initial frame */
        movq    %rdx, %r8               /* c, the third argument */
        movq    %rsi, %rdx              /* b, the second */
        movq    %rdi, %rcx              /* a, the first */
        movq    %rbp, %r9               /* arg, the fourth */
        xorl    %ebp, %ebp              /* ends frame-pointer chains */
        leaq    3f(%rip), %r11
        pushq   %r11                    /* a return address inside this routine */
        jmpq    *%rax                   /* entry(a, b, c, arg), never returns */
3:      ud2
        .seh_endproc
