//! Every operating-system call of the stack layer on Windows, as thin
//! wrappers over `windows-sys`: reserving, committing and releasing stack
//! address space, asking which pages are committed, the vectored exception
//! handler that reports overflows, and writing to stderr. The sibling of
//! src/stack/unix.rs; nothing else in `src/stack/` calls the OS.
//!
//! A greenlet stack here is laid out the way Windows lays out a thread stack,
//! so that the OS itself grows it (it is told about the stack by the TEB
//! fields that the switch loads: `StackBase`, `StackLimit`,
//! `DeallocationStack`; asm/x86_64_windows.S):
//!
//! ```text
//!   +---------------------------+ <- top = StackBase (reservation end)
//!   |   committed, read-write   |   INITIAL_COMMIT bytes at first, growing
//!   +---------------------------+ <- StackLimit
//!   |   PAGE_GUARD page         |   touched: the OS commits it, moves the
//!   +---------------------------+   guard one page down, lowers StackLimit
//!   |   reserved, not committed |   (the rest of the usable stack)
//!   +---------------------------+ <- bottom()
//!   |   guard: reserved, never  |   guard_size() = one page + the 20 KiB
//!   |   committed by us         |   stack guarantee Rust's std gives each
//!   +---------------------------+   thread <- DeallocationStack (reservation start)
//! ```
//!
//! When the guard page would move into the guard, the OS commits the
//! thread's guaranteed bytes there instead and raises `STATUS_STACK_OVERFLOW`
//! on the greenlet stack, which then has that room for the handler; a touch
//! of a page that is merely reserved raises `STATUS_ACCESS_VIOLATION`. The
//! handler here (installed first, before Rust's own) hands both to the
//! overflow module, which reports and ends the process (src/stack/overflow.rs).

use std::io;
use std::ptr;
use std::sync::OnceLock;

use memmap2::{MmapMut, MmapOptions};
use windows_sys::Win32::Foundation::{
    EXCEPTION_ACCESS_VIOLATION, EXCEPTION_GUARD_PAGE, EXCEPTION_STACK_OVERFLOW,
};
use windows_sys::Win32::Storage::FileSystem::WriteFile;
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE};
use windows_sys::Win32::System::Diagnostics::Debug::{
    AddVectoredExceptionHandler, EXCEPTION_CONTINUE_EXECUTION, EXCEPTION_CONTINUE_SEARCH,
    EXCEPTION_POINTERS,
};
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT, MEM_RELEASE,
    MEM_RESERVE, MEM_RESET, PAGE_GUARD, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThreadId, TerminateProcess,
};

/// Bytes committed at the top of a new stack: room for the closure and the
/// initial frame the greenlet core puts there (each at most 1 KiB), written
/// from the creator's stack before the greenlet runs, so they must not rely
/// on the guard page, which grows only the stack that runs.
const INITIAL_COMMIT: usize = 8 << 10;

/// The status the process ends with after an overflow message: Windows' own
/// code for a stack overflow, which is also what a thread stack's overflow
/// ends a process with. (Under wine the host sees its low byte, 253.)
const OVERFLOW_EXIT_STATUS: u32 = EXCEPTION_STACK_OVERFLOW as u32;

/// The system page size, asked of the OS (callers cache it).
pub(crate) fn page_size() -> usize {
    // SAFETY: an all-zero SYSTEM_INFO is a valid value to be overwritten;
    // GetSystemInfo has no failure mode.
    let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid for writes.
    unsafe { GetSystemInfo(&mut info) };
    match info.dwPageSize as usize {
        0 => 4096,
        page => page,
    }
}

/// A shared mapping for guard-region slots. Windows has no guard regions, so
/// the shared mappings are never used here (the guard mode is always the
/// mapping of its own); this exists so that src/stack/shared.rs builds.
pub(crate) fn map_region(len: usize) -> io::Result<MmapMut> {
    MmapOptions::new().len(len).map_anon()
}

/// Guard regions do not exist on Windows: always refused.
///
/// # Safety
/// None needed; kept `unsafe` to match src/stack/unix.rs.
pub(crate) unsafe fn install_guard(_start: usize, _len: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Tells the OS that the contents of `[start, start + len)` are no longer
/// needed (`MEM_RESET`): the pages stay committed but need not be written to
/// the page file. Advice only, like `MADV_DONTNEED` minus the zeroing.
///
/// # Safety
/// The range must be committed memory this layer owns that nothing uses.
pub(crate) unsafe fn discard(start: usize, len: usize) {
    // SAFETY: per the contract.
    unsafe { VirtualAlloc(start as *const _, len, MEM_RESET, PAGE_READWRITE) };
}

/// Reserves `len` bytes of address space for one stack whose lowest `guard`
/// bytes are its guard, commits the top [`INITIAL_COMMIT`] bytes and makes
/// the page below them a `PAGE_GUARD` page (see the module docs). Returns the
/// reservation's start (64 KiB aligned: Windows' allocation granularity).
pub(crate) fn reserve_stack(len: usize, guard: usize) -> io::Result<usize> {
    let page = page_size();
    let commit = INITIAL_COMMIT.min(len - guard);
    // SAFETY: a fresh reservation anywhere: no existing memory involved.
    let start = unsafe { VirtualAlloc(ptr::null(), len, MEM_RESERVE, PAGE_READWRITE) } as usize;
    if start == 0 {
        return Err(io::Error::last_os_error());
    }
    let top = start + len;
    // SAFETY: both ranges lie in the reservation just made, which nothing
    // else knows about.
    let committed = unsafe {
        !VirtualAlloc(
            (top - commit) as *const _,
            commit,
            MEM_COMMIT,
            PAGE_READWRITE,
        )
        .is_null()
            && (top - commit - page < start + guard
                || !VirtualAlloc(
                    (top - commit - page) as *const _,
                    page,
                    MEM_COMMIT,
                    PAGE_READWRITE | PAGE_GUARD,
                )
                .is_null())
    };
    if !committed {
        let err = io::Error::last_os_error();
        // SAFETY: our own reservation, not handed out.
        unsafe { unmap(start, len) };
        return Err(err);
    }
    Ok(start)
}

/// Releases the reservation that starts at `start` (its `len` is implied).
///
/// # Safety
/// `start` must be a reservation this layer made that nothing uses any more.
pub(crate) unsafe fn unmap(start: usize, _len: usize) {
    // SAFETY: per the contract; MEM_RELEASE takes the whole reservation.
    unsafe { VirtualFree(start as *mut _, 0, MEM_RELEASE) };
}

/// Commits the one page at `address` (read-write): for a page of a stack's
/// usable part that code running elsewhere touched before the stack grew to
/// it. Returns whether the OS agreed.
///
/// # Safety
/// `address` must lie in the usable part of a stack reservation this layer
/// made.
pub(crate) unsafe fn commit_page(address: usize) -> bool {
    let page = page_size();
    let at = address & !(page - 1);
    // SAFETY: per the contract: a page of our own reservation.
    !unsafe { VirtualAlloc(at as *const _, page, MEM_COMMIT, PAGE_READWRITE) }.is_null()
}

/// Makes the page at `address` the stack's `PAGE_GUARD` page, if it is only
/// reserved (a committed page is left as it is).
///
/// # Safety
/// `address` must lie in the usable part of a stack reservation this layer
/// made.
pub(crate) unsafe fn arm_guard_page(address: usize) {
    let page = page_size();
    let at = address & !(page - 1);
    if let Some((_, _, false, _)) = query(at) {
        // SAFETY: per the contract: a reserved page of our own reservation.
        unsafe {
            VirtualAlloc(
                at as *const _,
                page,
                MEM_COMMIT,
                PAGE_READWRITE | PAGE_GUARD,
            )
        };
    }
}

/// The state of the pages from `address` up to the end of its run of pages
/// of one state: `(run start, run end, committed, guard)`.
fn query(address: usize) -> Option<(usize, usize, bool, bool)> {
    // SAFETY: an all-zero MEMORY_BASIC_INFORMATION is a valid value to be
    // overwritten.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid for writes of its own size; querying any
    // address is allowed.
    let got = unsafe {
        VirtualQuery(
            address as *const _,
            &mut info,
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    if got == 0 {
        return None;
    }
    let start = info.BaseAddress as usize;
    Some((
        start,
        start + info.RegionSize,
        info.State == MEM_COMMIT,
        info.Protect & PAGE_GUARD != 0,
    ))
}

/// Which pages of `[start, start + resident.len() pages)` are committed and
/// not a guard page (Windows' counterpart of `mincore`: the stack's pages
/// that have been touched). Bit 0 of each byte. Touches no memory.
///
/// # Safety
/// `start` must be page-aligned and the range lie in one reservation.
pub(crate) unsafe fn resident_pages(start: usize, resident: &mut [u8]) -> io::Result<()> {
    let page = page_size();
    let end = start + resident.len() * page;
    let mut at = start;
    while at < end {
        let (_, run_end, committed, guard) = query(at).ok_or_else(io::Error::last_os_error)?;
        let run_end = run_end.min(end);
        let mark = u8::from(committed && !guard);
        for byte in &mut resident[(at - start) / page..(run_end - start) / page] {
            *byte = mark;
        }
        at = run_end;
    }
    Ok(())
}

/// The lowest committed address of the run of committed pages that ends at
/// `top` (exclusive): what the TEB's `StackLimit` must say for a stack whose
/// top is `top`, so that the OS's checks of frame addresses agree with what
/// is committed.
///
/// # Safety
/// `top` must be the end of a stack reservation this layer made.
pub(crate) unsafe fn committed_limit(top: usize) -> usize {
    // One query per run of pages with the same attributes; wine ends a run
    // where the pages' bookkeeping differs even though state and protection
    // agree (a page written to and one not yet), so go on run by run.
    let mut limit = top;
    while let Some((start, _, true, false)) = query(limit - 1) {
        limit = start;
    }
    limit
}

/// Windows has no `vm.max_map_count`; reservations are limited by address
/// space and commit charge only.
pub(crate) fn max_map_count() -> Option<usize> {
    None
}

/// Not counted on Windows (see [`max_map_count`]).
pub(crate) fn mapping_count() -> Option<usize> {
    None
}

// ---- the vectored exception handler ----------------------------------------

/// What an exception is, for the overflow module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `STATUS_STACK_OVERFLOW`: the OS would not move a stack's guard page
    /// further down (it raises this only for the stack the TEB describes).
    StackOverflow,
    /// `STATUS_ACCESS_VIOLATION`: an access to reserved or protected memory.
    AccessViolation,
    /// `STATUS_GUARD_PAGE_VIOLATION`: a `PAGE_GUARD` page touched by code
    /// not running on the stack it belongs to (the OS has now committed it
    /// as a plain page).
    GuardPage,
}

/// What the hook decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not ours: the next handler gets it.
    Pass,
    /// Handled (memory committed): run the faulting instruction again.
    Retry,
}

/// Called by the handler for each of the three faults with the address
/// accessed; never returns when it reports an overflow.
pub(crate) type FaultHook = fn(fault: Fault, address: usize) -> Verdict;

static HOOK: OnceLock<FaultHook> = OnceLock::new();

/// Installs the vectored exception handler, first in the chain (before
/// Rust's own, which reports thread stack overflows and passes everything
/// on). Call once per process.
pub(crate) fn install_fault_handler(hook: FaultHook) {
    if HOOK.set(hook).is_err() {
        return;
    }
    // SAFETY: the handler is a `system` function with the documented
    // signature that lives for the whole process.
    unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) };
}

/// The handler: passes the three memory faults to the hook, everything else
/// (C++ and Rust panics are exceptions too) straight on.
unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
    // SAFETY: the OS passes valid exception pointers to vectored handlers.
    let record = unsafe { &*(*info).ExceptionRecord };
    let fault = match record.ExceptionCode {
        EXCEPTION_STACK_OVERFLOW => Fault::StackOverflow,
        EXCEPTION_ACCESS_VIOLATION => Fault::AccessViolation,
        EXCEPTION_GUARD_PAGE => Fault::GuardPage,
        _ => return EXCEPTION_CONTINUE_SEARCH,
    };
    // The three carry [read/write/execute, address] (a stack overflow that
    // the OS raised for a page fault does too; one without is not ours).
    if record.NumberParameters < 2 {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    let address = record.ExceptionInformation[1];
    match HOOK.get().map(|hook| hook(fault, address)) {
        Some(Verdict::Retry) => EXCEPTION_CONTINUE_EXECUTION,
        _ => EXCEPTION_CONTINUE_SEARCH,
    }
}

/// Writes all of `bytes` to stderr with `WriteFile` (no allocation, no lock:
/// usable inside the exception handler).
pub(crate) fn write_stderr(bytes: &[u8]) {
    // SAFETY: GetStdHandle has no preconditions.
    let handle = unsafe { GetStdHandle(STD_ERROR_HANDLE) };
    if handle.is_null() || handle as isize == -1 {
        return;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let chunk = rest.len().min(u32::MAX as usize) as u32;
        let mut written = 0u32;
        // SAFETY: `rest` is valid for reads of `chunk` bytes, `written` for a
        // write; a synchronous write (no OVERLAPPED).
        let ok = unsafe { WriteFile(handle, rest.as_ptr(), chunk, &mut written, ptr::null_mut()) };
        if ok == 0 || written == 0 {
            break;
        }
        rest = &rest[written as usize..];
    }
}

/// Ends the process at once with a non-zero status (`TerminateProcess`: no
/// unwinding, no DLL detach code, nothing that needs more of the exhausted
/// stack).
pub(crate) fn abort() -> ! {
    // SAFETY: terminating our own process; TerminateProcess on the current
    // process does not return when it succeeds.
    unsafe { TerminateProcess(GetCurrentProcess(), OVERFLOW_EXIT_STATUS) };
    std::process::abort()
}

/// Nothing to do on Windows: exception handlers run on the faulting stack,
/// which the OS gives the thread's guaranteed bytes for a stack overflow.
pub(crate) fn ensure_alt_stack() {}

/// The OS's id of the calling thread, for the debugger view's registry
/// (what a debugger shows as the thread's id).
pub(crate) fn os_thread_id() -> u64 {
    // SAFETY: GetCurrentThreadId has no preconditions.
    u64::from(unsafe { GetCurrentThreadId() })
}
