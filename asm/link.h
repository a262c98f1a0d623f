/*
 * The greenlet core's switch record, as the entry trampoline's CFI reads it
 * (SPEC §10, docs/backtraces.md), and the DWARF expression pieces that read
 * it: the same on every CPU whose trampoline carries backtraces on into the
 * resumer. Rust asserts that the core's object matches (`arch::link` in
 * src/arch/mod.rs, checked in src/greenlet/object.rs).
 *
 *   offset          field
 *   LINK_SP         the saved stack pointer of a suspended greenlet
 *   LINK_RESUMER    the greenlet whose RESUME into this one is pending, or 0
 *   LINK_STATE      the state byte; LINK_SUSPENDED when it is suspended
 *
 * The link area that `arch::init_stack` writes above a new stack's first
 * frame starts with a pointer to the greenlet's record.
 *
 * CFI_RESUMER_AT(top...): the resumer's record, [[top] + LINK_RESUMER], where
 * `top...` are the DWARF operation bytes that push the link area's address
 * (a DW_OP_breg of the stack pointer and its offset; 6 bytes with a
 * one-byte offset).
 * CFI_RESUMER_OR_AREA_AT(top...): R + (R == 0) * top, i.e. the resumer's
 * record R, or the link area itself when there is none, whose words at
 * LINK_SP and LINK_STATE are readable and whose state byte is 0 (18 bytes
 * with a one-byte offset): every address the expression goes on to read is
 * then a record or the link area, never null.
 */
#ifndef GREENLET_LINK_H
#define GREENLET_LINK_H

#define LINK_SP        0
#define LINK_SUSPENDED 1
#if __SIZEOF_POINTER__ == 8
#define LINK_RESUMER   8
#define LINK_STATE     24
#elif __SIZEOF_POINTER__ == 4
#define LINK_RESUMER   4
#define LINK_STATE     12
#else
#error "a switch record for this pointer size"
#endif
#if LINK_SP != 0
#error "the CFI reads the saved stack pointer with a bare DW_OP_deref"
#endif

/* DW_OP_deref (0x06), DW_OP_plus_uconst (0x23), DW_OP_lit0 (0x30),
   DW_OP_eq (0x29), DW_OP_mul (0x1e), DW_OP_plus (0x22). */
#define CFI_RESUMER_AT(...) __VA_ARGS__, 0x06, 0x23, LINK_RESUMER, 0x06
#define CFI_RESUMER_OR_AREA_AT(...) \
    CFI_RESUMER_AT(__VA_ARGS__), CFI_RESUMER_AT(__VA_ARGS__), 0x30, 0x29, __VA_ARGS__, 0x1e, 0x22

#endif
