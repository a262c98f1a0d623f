//! Telling Valgrind where greenlet stacks are.
//!
//! Valgrind tracks the stack pointer to know which memory below it is dead. A
//! switch that moves the stack pointer into another mapping looks to it like a
//! huge allocation or release of stack, and it then reports every access to the
//! new stack as invalid. Registering each stack with the `STACK_REGISTER`
//! client request lets it recognise a switch for what it is.
//!
//! Client requests are *magic instruction sequences*: a preamble of register
//! rotations (or shifts into the zero register) that add up to nothing,
//! followed by a no-op move. Natively, and under qemu-user, they do nothing and
//! leave the default result in place; Valgrind's decoder spots the preamble and
//! performs the request described by the six-word array it is pointed at. The
//! sequences here are written from the documented per-architecture encodings of
//! `valgrind.h`; no header or library is linked.
//!
//! A CPU family without a sequence here gets no-ops (the crate then still works,
//! only Valgrind runs report false errors), so porting to a new CPU does not
//! have to start here.

/// `VG_USERREQ__STACK_REGISTER` from `valgrind.h`.
const STACK_REGISTER: usize = 0x1501;
/// `VG_USERREQ__STACK_DEREGISTER` from `valgrind.h`.
const STACK_DEREGISTER: usize = 0x1502;

/// Performs client request `request` with up to five arguments; returns
/// `default` when not running under Valgrind.
#[inline(always)]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let ptr = block.as_ptr();
    let result: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the four rotations of rdi add up to 128 bits (a no-op) and
    // `xchg rbx, rbx` changes nothing; the rotations clobber the flags, which
    // asm! assumes by default. Valgrind reads `block` through rax, which stays
    // alive and initialised until after the asm.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") ptr,
            inout("rdx") default => result,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the four rotations of x12 add up to 128 bits (a no-op) and
    // `orr x10, x10, x10` changes nothing. Valgrind reads `block` through x4.
    unsafe {
        core::arch::asm!(
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            in("x4") ptr,
            inout("x3") default => result,
            options(nostack),
        );
    }
    #[cfg(target_arch = "riscv64")]
    // SAFETY: shifts into the zero register and `or a0, a0, a0` change nothing.
    // The sequence must not be compressed (Valgrind matches the 32-bit
    // encodings), hence `norvc`. Valgrind reads `block` through a4.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option norvc",
            "srli zero, zero, 3",
            "srli zero, zero, 13",
            "srli zero, zero, 51",
            "srli zero, zero, 61",
            "or a0, a0, a0",
            ".option pop",
            in("a4") ptr,
            inout("a3") default => result,
            options(nostack),
        );
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )))]
    {
        let _ = ptr;
        result = default;
    }
    // Keep the argument block alive (and written) until the request is done.
    core::hint::black_box(&block);
    result
}

/// Registers `[low, high)` as a stack; returns the id to deregister it with
/// (0 when not running under Valgrind).
pub(crate) fn register_stack(low: usize, high: usize) -> usize {
    // Valgrind takes the lowest and the highest addressable byte.
    client_request(0, STACK_REGISTER, [low, high - 1, 0, 0, 0])
}

/// Forgets a stack registered by [`register_stack`].
pub(crate) fn deregister_stack(id: usize) {
    client_request(0, STACK_DEREGISTER, [id, 0, 0, 0, 0]);
}
