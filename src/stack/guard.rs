//! Which guard stacks get: Linux guard regions where they are proven to work,
//! else `PROT_NONE` pages at the bottom of a mapping per stack (SPEC §6); and
//! how large it is on this CPU ([`guard_size`]).
//!
//! Proof, once per process, before any stack relies on it: a guard region is
//! installed on a scratch page and the kernel must then fail to read that page
//! (`write(2)` from it into a pipe returns `EFAULT`) while still reading the
//! page above it. A zero return from `madvise` proves nothing (qemu-user
//! answers 0 to advice it does not know and installs nothing), and neither
//! does the kernel version (a mapping may be mlocked, a seccomp filter may
//! refuse the advice).
//!
//! `GREENLET_GUARD=mprotect` in the environment (read once, at the first stack)
//! skips the probe and forces the fallback, for tests and for comparison;
//! `GREENLET_GUARD=auto` or no variable probes.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

#[cfg(unix)]
use crate::stack::os;
use crate::stack::page_size;

/// How far below the lowest stack byte touched so far the next access, or the
/// stack pointer, can land on this CPU: the guard spans this much beyond its
/// one page, so that running off a stack faults inside the guard with the
/// stack pointer inside it too. Every guard range of the stack layer (shared
/// slots, one-stack mappings, the overflow handler's records,
/// [`Stack::guard_range`](crate::stack::Stack::guard_range)) comes from
/// [`guard_size`], which adds this to the page.
///
/// * **x86, x86_64, aarch64, powerpc64: 0.** Rust emits stack probes there:
///   a frame larger than a page touches each page on the way down, at the
///   stack pointer itself, so the first touch beyond the usable stack is in
///   the guard's top page, with the stack pointer right there.
/// * **s390x: 4 KiB**, one probe step. Its probes move the stack pointer a
///   whole 4 KiB first and then touch the *top* of the new page
///   (`aghi %r15,-4096; cg %r0,4088(%r15)`), so the fault comes with the stack
///   pointer up to 4088 bytes below the page it hit. Under a one-page guard
///   that is the memory below the guard; where that was the thread's
///   alternate signal stack, the kernel took the fault for a nested signal and
///   pushed the handler's frame there, 4 KiB from the top of an 8 KiB signal
///   stack, and the handler ran out of room (killed by a second SIGSEGV).
/// * **riscv64, arm, and every CPU not named above: 64 KiB.** Rust emits no
///   stack probes there (check: `rustc --target <t> -O --emit=asm` of a
///   function with a 64 KiB local array has no probe loop), so a frame's first
///   store can land a whole frame below the last one: 64 KiB frames whose
///   lowest word is written jumped a one-page guard and faulted (or wrote)
///   elsewhere. Frames larger than 64 KiB can still jump this guard, as they
///   can jump the one-page guard of Rust's own thread stacks there. A new port
///   whose compiler does probe (see the check above) moves its CPU to the
///   first list.
///
/// * **Windows (x86_64): 20 KiB**, the stack guarantee that Rust's std gives
///   every thread it runs (`SetThreadStackGuarantee(0x5000)`). The OS moves a
///   stack's `PAGE_GUARD` page down as it grows (src/stack/windows.rs) and
///   raises `STATUS_STACK_OVERFLOW` once the guard page would come within the
///   guarantee of the reservation's lowest page; it then commits the
///   guarantee for the handler. With this much below the usable stack, the
///   overflow comes exactly when the stack leaves its usable part, and the
///   handler runs in the guard. (A thread whose guarantee is smaller, a
///   thread made by C code, lets the stack grow into the guard before the
///   overflow is raised; one whose guarantee is larger gets it earlier. The
///   handler reports either.)
///
/// The larger guards cost address space only: guard regions and `PROT_NONE`
/// pages are never backed by memory.
const GUARD_REACH: usize = if cfg!(windows) {
    20 << 10
} else if cfg!(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64"
)) {
    0
} else if cfg!(target_arch = "s390x") {
    4 << 10
} else {
    64 << 10
};

/// Bytes of the guard below every greenlet stack on this CPU: one page, plus
/// on CPUs whose compiler emits no stack probes (riscv64, arm) 64 KiB, and on
/// s390x, whose probes leave the stack pointer a page below what they touch,
/// 4 KiB; whole pages. The same for guard regions and guard pages.
///
/// ```
/// use greenlet::stack::{self, guard_size, page_size};
/// let guard = guard_size();
/// assert!(guard >= page_size() && guard % page_size() == 0);
/// if cfg!(any(target_arch = "riscv64", target_arch = "arm")) {
///     assert!(guard >= page_size() + (64 << 10)); // no stack probes there
/// }
/// let s = stack::Stack::new(64 << 10).unwrap();
/// let (start, end) = s.guard_range();
/// assert_eq!(end - start, guard);
/// ```
#[inline]
pub fn guard_size() -> usize {
    let page = page_size();
    // page + GUARD_REACH cannot overflow: both are far below usize::MAX / 2.
    (page + GUARD_REACH + page - 1) & !(page - 1)
}

/// The environment variable that can force the fallback.
pub(crate) const ENV: &str = "GREENLET_GUARD";

/// How greenlet stacks are guarded in this process (see [`guard_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardMode {
    /// Linux guard regions (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13 and
    /// later): stacks are carved from a few large shared mappings, each slot
    /// with a guard region below its stack, so live stacks are not capped by
    /// `vm.max_map_count`. A fault in a guard is `SEGV_MAPERR`.
    Regions,
    /// One mapping per stack whose lowest page is made `PROT_NONE` with
    /// `mprotect`: two kernel mappings per stack, so `vm.max_map_count`
    /// (65530 by default) caps a process near 32k live stacks. A fault in a
    /// guard is `SEGV_ACCERR`. On Windows, the only mode: one reservation per
    /// stack whose lowest [`guard_size`] bytes are never committed
    /// ([`GuardFallback::Unsupported`]), with no cap but address space and
    /// commit charge.
    Mprotect,
}

/// Why stacks get [`GuardMode::Mprotect`] guards (see [`guard_fallback`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardFallback {
    /// `GREENLET_GUARD=mprotect` was set.
    Forced,
    /// The kernel refused to install a guard region on the probe's page, with
    /// this `errno` (`EINVAL` before Linux 6.13, on mlocked memory, ...), or
    /// the probe could not map its page.
    Refused(i32),
    /// The kernel accepted the advice but the page did not fault: the advice
    /// was ignored (qemu-user does this).
    Ignored,
    /// The OS has no guard regions (Windows): every stack is an address-space
    /// reservation of its own whose lowest [`guard_size`] bytes are never
    /// committed (src/stack/windows.rs).
    Unsupported,
    /// Guard regions worked, but installing one on a new stack later failed
    /// with this `errno` (for example after `mlockall(MCL_FUTURE)`); stacks
    /// made since get guard pages, those made before keep their guard regions.
    FailedLater(i32),
}

impl std::fmt::Display for GuardFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardFallback::Forced => write!(f, "forced by {ENV}=mprotect"),
            GuardFallback::Refused(errno) => write!(
                f,
                "the kernel refused guard regions ({})",
                std::io::Error::from_raw_os_error(*errno)
            ),
            GuardFallback::Ignored => write!(
                f,
                "the kernel accepted MADV_GUARD_INSTALL but the page did not fault (an emulator?)"
            ),
            GuardFallback::Unsupported => write!(
                f,
                "this OS has no guard regions: each stack is a reservation of its own"
            ),
            GuardFallback::FailedLater(errno) => write!(
                f,
                "installing a guard region failed after the probe ({})",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// The probe's verdict: `None` when guard regions work.
static PROBED: OnceLock<Option<GuardFallback>> = OnceLock::new();

/// The `errno` of a guard-region install that failed after the probe had
/// succeeded, or 0.
static FAILED_LATER: AtomicI32 = AtomicI32::new(0);

/// How stacks made now on any thread are guarded. The first call decides:
/// it reads `GREENLET_GUARD` and, unless that forces the fallback, runs the
/// probe.
///
/// ```
/// use greenlet::stack::{self, GuardMode};
/// let s = stack::take(64 << 10).unwrap();
/// assert_eq!(s.guard(), stack::guard_mode()); // stacks made now get this guard
/// match stack::guard_mode() {
///     GuardMode::Regions => assert_eq!(stack::guard_fallback(), None),
///     GuardMode::Mprotect => println!("guard pages: {}", stack::guard_fallback().unwrap()),
/// }
/// ```
///
/// # Panics
/// When `GREENLET_GUARD` holds anything but `mprotect`, `auto` or nothing.
pub fn guard_mode() -> GuardMode {
    match guard_fallback() {
        None => GuardMode::Regions,
        Some(_) => GuardMode::Mprotect,
    }
}

/// Why stacks get guard pages rather than guard regions, or `None` when they
/// get guard regions (see [`guard_mode`], which this decides the same way).
///
/// # Panics
/// As [`guard_mode`].
pub fn guard_fallback() -> Option<GuardFallback> {
    let later = FAILED_LATER.load(Ordering::Relaxed);
    if later != 0 {
        return Some(GuardFallback::FailedLater(later));
    }
    *PROBED.get_or_init(decide)
}

/// Guard regions stopped working (an install failed with `errno`): every
/// stack made from now on gets a guard page.
pub(crate) fn regions_failed(errno: i32) {
    // errno 0 would read as "no failure"; any non-zero code is as good.
    FAILED_LATER.store(if errno == 0 { -1 } else { errno }, Ordering::Relaxed);
}

#[cfg(windows)]
fn decide() -> Option<GuardFallback> {
    Some(GuardFallback::Unsupported)
}

#[cfg(unix)]
fn decide() -> Option<GuardFallback> {
    match std::env::var(ENV) {
        Ok(v) if v == "mprotect" => Some(GuardFallback::Forced),
        Ok(v) if v == "auto" || v.is_empty() => probe(),
        Err(std::env::VarError::NotPresent) => probe(),
        Ok(v) => panic!(
            "greenlet: {ENV}={v:?} is not understood: use `mprotect` (one mapping per stack with \
             a guard page) or `auto` (guard regions where the kernel has them)"
        ),
        Err(std::env::VarError::NotUnicode(v)) => {
            panic!("greenlet: {ENV}={v:?} is not understood: use `mprotect` or `auto`")
        }
    }
}

/// Installs a guard region on the lower of two scratch pages and checks that
/// the kernel cannot read it and can still read the page above.
#[cfg(unix)]
fn probe() -> Option<GuardFallback> {
    let page = os::page_size();
    // An error without an OS code cannot happen here; -1 marks one.
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(-1);
    let start = match os::map_stack_memory(2 * page) {
        Ok(start) => start,
        Err(e) => return Some(GuardFallback::Refused(errno(e))),
    };
    // SAFETY: the first page of our own fresh mapping, which nothing uses.
    let verdict = match unsafe { os::install_guard(start, page) } {
        Err(e) => Some(GuardFallback::Refused(errno(e))),
        Ok(()) => match (
            os::kernel_can_read(start),
            os::kernel_can_read(start + page),
        ) {
            (Ok(false), Ok(true)) => None,
            (Ok(true), _) => Some(GuardFallback::Ignored),
            // The guard took the page above too, or the pipe failed: do not
            // rely on something that behaves unlike its documentation.
            (Ok(false), Ok(false)) => Some(GuardFallback::Ignored),
            (Err(e), _) | (_, Err(e)) => Some(GuardFallback::Refused(errno(e))),
        },
    };
    // SAFETY: our scratch mapping, used by nothing any more.
    unsafe { os::unmap(start, 2 * page) };
    verdict
}
