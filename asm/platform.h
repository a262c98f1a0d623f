/*
 * Directives that differ between the object formats one `.S` file serves:
 * ELF (Linux) and Mach-O (macOS). The routines themselves are the same.
 *
 *   FUNCTION_BEGIN(name)   exports `name` to the rest of the crate only
 *                          (hidden / private_extern) and opens it
 *   FUNCTION_END(name)     closes it (ELF records its size for tools)
 *   GNU_STACK_NOTE         ELF: the stack is not executable; Mach-O: nothing
 *
 * On Mach-O, C symbols carry a leading underscore; build.rs passes the names
 * with it already (GREENLET_RESUME and friends), so nothing here pastes
 * tokens. SEP separates statements inside one macro: `;` everywhere but on
 * Apple arm64, whose assembler takes `;` for the start of a comment (the
 * rest of the line would vanish: `.globl name ; name:` exports a symbol it
 * never defines) and separates with `%%`.
 *
 * Also for Mach-O: a `.macro` without named parameters has its `$0`, `$1`,
 * ... replaced by positional arguments there, so every `.macro` in these
 * files takes at least one named parameter (x86_64.S says more).
 */
#ifndef GREENLET_PLATFORM_H
#define GREENLET_PLATFORM_H

#if defined(__APPLE__) && defined(__aarch64__)
#define SEP %%
#else
#define SEP ;
#endif

#if defined(__APPLE__)
#define FUNCTION_BEGIN(name) .globl name SEP .private_extern name SEP .p2align 4 SEP name:
#define FUNCTION_END(name)
#define GNU_STACK_NOTE
#define TEXT_SECTION .text
#else
#if defined(__arm__)
#define FUNCTION_TYPE(name) .type name, %function
#else
#define FUNCTION_TYPE(name) .type name, @function
#endif
#define FUNCTION_BEGIN(name) .globl name SEP .hidden name SEP FUNCTION_TYPE(name) SEP .p2align 4 SEP name:
#define FUNCTION_END(name) .size name, .-name
#if defined(__arm__)
#define GNU_STACK_NOTE .section .note.GNU-stack,"",%progbits
#else
#define GNU_STACK_NOTE .section .note.GNU-stack,"",@progbits
#endif
#define TEXT_SECTION .text
#endif

#endif
