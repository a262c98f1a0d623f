//! Where the entry trampoline's unwind information goes on into the resumer
//! (docs/backtraces.md has the table and the reasons): elsewhere every
//! backtrace in a greenlet ends at its trampoline.

/// Whether this target's trampoline describes the resumer's frame as its
/// caller.
pub const CONTINUES: bool = cfg!(all(
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "loongarch64",
        target_arch = "powerpc64",
        target_arch = "riscv64",
        target_arch = "s390x"
    ),
    not(windows)
));
