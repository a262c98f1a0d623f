//! One mapping per stack with a `PROT_NONE` guard below it (used when
//! [`GuardMode::Mprotect`](crate::stack::GuardMode) holds, and for any stack
//! a shared mapping cannot be had for).
//!
//! ```text
//!   +---------------------------+ <- top (mapping end)
//!   |   usable stack            |
//!   +---------------------------+ <- bottom
//!   |   guard (PROT_NONE)       |   guard_size() bytes (mprotect: splits the
//!   |                           |   mapping in two)
//!   +---------------------------+ <- mapping start
//! ```
//!
//! Each stack costs two kernel mappings, so `vm.max_map_count` caps the number
//! of live stacks. Stacks stop short of that cap: the last mappings are left
//! to the rest of the program, so that `malloc`, thread stacks and the panic
//! that reports the failure still work (SPEC §6; with the last mappings gone
//! to stacks, a panic's `malloc` failed, and with `RUST_BACKTRACE=1` the
//! process then hung in std's allocation-error hook). A stack given back is
//! unmapped.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::stack::registry::{Area, GuardHow, Registry};
use crate::stack::{guard_size, os};

/// Maps a stack of `usable` bytes (a page multiple) and records it in
/// `registry` when there is one (there is none during thread teardown: an
/// overflow there is then a bare SIGSEGV). Returns its bottom.
pub(crate) fn map(usable: usize, registry: Option<&mut Registry>) -> io::Result<usize> {
    within_budget()?;
    let guard = guard_size();
    let len = usable + guard; // cannot overflow: usable_size_for checked it
    let start = map_guarded(len, guard).map_err(|e| annotate(e, len))?;
    LIVE.fetch_add(1, Ordering::Relaxed);
    if let Some(registry) = registry {
        registry.add(Area {
            start,
            end: start + len,
            stride: len,
            guard,
            how: GuardHow::Page,
        });
    }
    Ok(start + guard)
}

/// A mapping of `len` bytes whose lowest `guard` bytes fault on any access:
/// `mmap` and `mprotect(PROT_NONE)`.
#[cfg(unix)]
fn map_guarded(len: usize, guard: usize) -> io::Result<usize> {
    let start = os::map_stack_memory(len)?;
    // SAFETY: the lowest pages of the fresh mapping, which nothing uses.
    if let Err(e) = unsafe { os::protect_none(start, guard) } {
        // SAFETY: our own mapping, not handed out.
        unsafe { os::unmap(start, len) };
        return Err(e);
    }
    Ok(start)
}

/// A reservation of `len` bytes whose lowest `guard` bytes are never
/// committed, with the top committed and a `PAGE_GUARD` page below it, as
/// Windows lays out a thread stack (src/stack/windows.rs).
#[cfg(windows)]
fn map_guarded(len: usize, guard: usize) -> io::Result<usize> {
    os::reserve_stack(len, guard)
}

/// Unmaps the stack of `usable` bytes at `bottom`, first removing it from
/// `registry` when there is one.
///
/// # Safety
/// The stack must have been made by [`map`] and no frame may live on it.
pub(crate) unsafe fn unmap(bottom: usize, usable: usize, registry: Option<&mut Registry>) {
    let guard = guard_size();
    let start = bottom - guard;
    if let Some(registry) = registry {
        registry.remove(start);
    }
    // SAFETY: per the contract: our mapping, guard included, unused.
    unsafe { os::unmap(start, usable + guard) };
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

/// One-mapping stacks alive in the process, all threads.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many may be alive before the mappings are counted again (0: count at
/// the first stack).
static BUDGET: AtomicUsize = AtomicUsize::new(0);

/// Refuses a new stack when its two mappings would eat into the mappings kept
/// for the rest of the program: the larger of 1024 and 1/32 of
/// `vm.max_map_count`. The process's mappings are counted (`/proc/self/maps`)
/// only when the budget set by the last count is used up, so only a handful
/// of times however many stacks are made. Where `/proc` cannot say, `mmap`
/// decides alone.
fn within_budget() -> io::Result<()> {
    let live = LIVE.load(Ordering::Relaxed);
    if live < BUDGET.load(Ordering::Relaxed) {
        return Ok(());
    }
    let (Some(max), Some(now)) = (os::max_map_count(), os::mapping_count()) else {
        BUDGET.store(usize::MAX, Ordering::Relaxed);
        return Ok(());
    };
    let reserve = (max / 32).max(1024);
    let room = max.saturating_sub(reserve).saturating_sub(now) / 2;
    BUDGET.store(live + room, Ordering::Relaxed);
    if room > 0 {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "greenlet: no stack mapped: the process has {now} of its vm.max_map_count = {max} \
             mappings ({live} stacks with guard pages take two each), and the last {reserve} are \
             left to the rest of the program (guard regions, Linux 6.13 and later, lift this cap)"
        ),
    ))
}

fn annotate(err: io::Error, bytes: usize) -> io::Error {
    let hint = if err.kind() == io::ErrorKind::OutOfMemory {
        " (out of memory or out of memory mappings: see vm.max_map_count)"
    } else {
        ""
    };
    io::Error::new(
        err.kind(),
        format!("greenlet: cannot map a {bytes}-byte stack: {err}{hint}"),
    )
}
