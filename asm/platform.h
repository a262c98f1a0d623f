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
 * tokens. `;` separates statements on every assembler that uses this file.
 */
#ifndef GREENLET_PLATFORM_H
#define GREENLET_PLATFORM_H

#if defined(__APPLE__)
#define FUNCTION_BEGIN(name) .globl name ; .private_extern name ; .p2align 4 ; name:
#define FUNCTION_END(name)
#define GNU_STACK_NOTE
#define TEXT_SECTION .text
#else
#if defined(__arm__)
#define FUNCTION_TYPE(name) .type name, %function
#else
#define FUNCTION_TYPE(name) .type name, @function
#endif
#define FUNCTION_BEGIN(name) .globl name ; .hidden name ; FUNCTION_TYPE(name) ; .p2align 4 ; name:
#define FUNCTION_END(name) .size name, .-name
#if defined(__arm__)
#define GNU_STACK_NOTE .section .note.GNU-stack,"",%progbits
#else
#define GNU_STACK_NOTE .section .note.GNU-stack,"",@progbits
#endif
#define TEXT_SECTION .text
#endif

#endif
