//! Every operating-system call of the stack layer, as thin wrappers: memory
//! mappings and their protections and advice, the guard-region probe's pipe,
//! signal handlers, alternate signal stacks, and the signal-safe `write(2)`.
//!
//! Linux and macOS (and, for everything but guard regions, any Unix with
//! `libc`). What differs between them is in this file, under
//! `cfg(target_os = "linux")` and its negation, and nowhere else:
//!
//! | | Linux | macOS (and other Unixes) |
//! | --- | --- | --- |
//! | guard regions ([`install_guard`]) | `MADV_GUARD_INSTALL` (6.13+, probed) | none: `ENOTSUP`, so the probe picks `mprotect` guard pages |
//! | `MAP_STACK` | yes (keeps THP out) | no such flag |
//! | [`resident_pages`] (`mincore`) | bit 0 of each byte, other bits reserved | `MINCORE_INCORE` (bit 0) among other state bits (referenced, modified, paged out, ...) |
//! | the probe's pipe ([`kernel_can_read`]) | `pipe2(O_CLOEXEC)` | `pipe` then `FD_CLOEXEC` |
//! | `vm.max_map_count` ([`max_map_count`], [`mapping_count`]) | `/proc` | no such cap: `None` |
//! | a guard-page fault | `SIGSEGV` | `SIGBUS` or `SIGSEGV`: both are handled on every Unix |
//!
//! A port to another OS family adds a sibling file with the same functions;
//! nothing else in `src/stack/` calls the OS.

use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use memmap2::{MmapMut, MmapOptions};

/// `MADV_GUARD_INSTALL` (Linux 6.13): pages of the range fault on any access,
/// without splitting the mapping. Not in every `libc` release yet.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The system page size, asked of the kernel (callers cache it).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        page as usize
    } else {
        4096
    }
}

/// A shared mapping that stacks are carved from: private, anonymous, read-write,
/// reserved lazily (`MAP_NORESERVE`: untouched pages cost neither memory nor
/// commit charge). `MAP_STACK` also keeps transparent huge pages out of it
/// (Linux 6.7 and later; guard regions need 6.13), so one touched byte costs a
/// page, not 2 MiB of a mapping shared by hundreds of stacks.
pub(crate) fn map_region(len: usize) -> io::Result<MmapMut> {
    MmapOptions::new()
        .len(len)
        .stack()
        .no_reserve_swap()
        .map_anon()
}

/// `MAP_STACK` where the OS has it (Linux: it keeps transparent huge pages
/// out); macOS has no such flag and needs none.
#[cfg(target_os = "linux")]
const MAP_STACK: libc::c_int = libc::MAP_STACK;
#[cfg(not(target_os = "linux"))]
const MAP_STACK: libc::c_int = 0;

/// A fresh private anonymous read-write mapping of `len` bytes, reserved
/// lazily, for memory the stack layer owns by hand (one-stack mappings and
/// signal stacks). Returns its start, or the OS error as is.
pub(crate) fn map_stack_memory(len: usize) -> io::Result<usize> {
    // SAFETY: a fresh private anonymous mapping: no existing memory involved.
    let start = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | MAP_STACK,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(start as usize)
}

/// Unmaps `[start, start + len)`.
///
/// # Safety
/// The range must be memory this layer mapped, that nothing uses any more.
pub(crate) unsafe fn unmap(start: usize, len: usize) {
    // SAFETY: per the contract. munmap of our own range cannot fail in a way
    // we could act on.
    unsafe { libc::munmap(start as *mut libc::c_void, len) };
}

/// Makes `[start, start + len)` inaccessible with `mprotect` (a guard page;
/// splits the mapping in two).
///
/// # Safety
/// The range must lie in a mapping this layer owns, with nothing in use there.
pub(crate) unsafe fn protect_none(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: per the contract.
    let rc = unsafe { libc::mprotect(start as *mut libc::c_void, len, libc::PROT_NONE) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a guard region over `[start, start + len)` (`MADV_GUARD_INSTALL`).
/// Ok means only that the kernel accepted the advice: an emulator may accept
/// and ignore it, which is why the probe checks that a guard faults.
///
/// Other systems (macOS) have no guard regions: `ENOTSUP` at once, so the
/// probe settles on `mprotect` guard pages
/// ([`GuardFallback::Refused`](crate::stack::GuardFallback::Refused)).
///
/// # Safety
/// The range must lie in a mapping this layer owns, with nothing in use there
/// (installing zaps populated pages).
#[cfg(target_os = "linux")]
pub(crate) unsafe fn install_guard(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: per the contract; advice on our own range.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// See the Linux version above: no guard regions here.
///
/// # Safety
/// None needed (nothing is done); kept `unsafe` to match the Linux version.
#[cfg(not(target_os = "linux"))]
pub(crate) unsafe fn install_guard(_start: usize, _len: usize) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

/// Gives the memory of `[start, start + len)` back to the kernel
/// (`MADV_DONTNEED`): on Linux the next touch reads zeros. Guard regions stay.
/// Advice only: a refusal (an mlocked mapping) just keeps the memory. (Used
/// for the slots of guard-region mappings, which only Linux has; elsewhere
/// `MADV_DONTNEED` may leave the old contents, which no caller reads.)
///
/// # Safety
/// The range must lie in a mapping this layer owns, and nothing may use its
/// contents any more.
pub(crate) unsafe fn discard(start: usize, len: usize) {
    // SAFETY: per the contract.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// The bit of a `mincore` vector byte that says "resident". Linux sets bit 0
/// and reserves the others; macOS sets `MINCORE_INCORE` (also bit 0) beside
/// bits of its own (`MINCORE_REFERENCED`, `MINCORE_MODIFIED`,
/// `MINCORE_PAGED_OUT`, ...), so a whole byte that is not zero does not mean
/// resident there.
#[cfg(target_vendor = "apple")]
const RESIDENT: u8 = libc::MINCORE_INCORE as u8;
#[cfg(not(target_vendor = "apple"))]
const RESIDENT: u8 = 1;

/// Which pages of `[start, start + resident.len() pages)` are resident
/// (`mincore`: reads page tables only, touches no memory): each byte is set to
/// 1 for a resident page and 0 for any other, whatever the OS's vector format.
///
/// # Safety
/// `start` must be page-aligned and the range mapped.
pub(crate) unsafe fn resident_pages(start: usize, resident: &mut [u8]) -> io::Result<()> {
    let len = resident.len() * page_size();
    // The kernel writes one byte per page. qemu-user running a guest whose
    // pages are larger than the host's (loongarch64's 16 KiB on a 4 KiB host)
    // writes one byte per host page, past a vector sized for the guest's, so
    // mincore gets room for one byte per 4 KiB (the smallest page Linux has)
    // and only the first bytes are kept.
    let mut written = vec![0u8; len.div_ceil(4096).max(resident.len())];
    // SAFETY: per the contract; `written` has at least one byte per 4 KiB of
    // the range, more than mincore writes.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, written.as_mut_ptr().cast()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    for (out, byte) in resident.iter_mut().zip(&written) {
        *out = u8::from(byte & RESIDENT != 0);
    }
    Ok(())
}

/// Whether the kernel can read the byte at `address`: `write(2)` of it into a
/// fresh pipe succeeds, or fails with `EFAULT`. The kernel's own access never
/// raises a signal in the caller, so this tests a guard without crashing.
pub(crate) fn kernel_can_read(address: usize) -> io::Result<bool> {
    let fds = cloexec_pipe()?;
    // SAFETY: write reads one byte at `address` in the kernel: an inaccessible
    // address gives EFAULT, not a signal. The pipe is ours and empty.
    let written = unsafe { libc::write(fds[1], address as *const libc::c_void, 1) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the two descriptors made above, used by nothing else.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match written {
        1 => Ok(true),
        _ if err.raw_os_error() == Some(libc::EFAULT) => Ok(false),
        _ => Err(err),
    }
}

/// A pipe whose two descriptors are close-on-exec, so that a child started
/// meanwhile by another thread does not inherit them.
#[cfg(target_os = "linux")]
fn cloexec_pipe() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fds)
}

/// The same without `pipe2` (macOS has none): `pipe`, then `FD_CLOEXEC` on
/// each end (a child forked in between could inherit them: harmless for the
/// probe's empty pipe, which is closed at once).
#[cfg(not(target_os = "linux"))]
fn cloexec_pipe() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for fd in fds {
        // SAFETY: a descriptor we just made; F_SETFD changes only its flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(fds)
}

/// The kernel's cap on mappings per process (`vm.max_map_count`), if readable.
/// Only Linux has one; elsewhere `None`.
#[cfg(target_os = "linux")]
pub(crate) fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many mappings this process has now, if `/proc` can say.
#[cfg(target_os = "linux")]
pub(crate) fn mapping_count() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}

/// No `vm.max_map_count` outside Linux (macOS has no such per-process cap):
/// `mmap` alone decides how many stacks can be had.
#[cfg(not(target_os = "linux"))]
pub(crate) fn max_map_count() -> Option<usize> {
    None
}

/// Not asked outside Linux, where [`max_map_count`] is `None`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn mapping_count() -> Option<usize> {
    None
}

// ---- signals ----------------------------------------------------------------

/// Called by the fault handler with the faulting address of every SIGSEGV or
/// SIGBUS the kernel raised; returns only when the fault is not the caller's
/// to report (it then goes to whoever handled it before).
pub(crate) type FaultHook = fn(address: usize);

static HOOK: OnceLock<FaultHook> = OnceLock::new();

/// The actions in place for SIGSEGV and SIGBUS before ours; written once,
/// before our handler is installed, and never freed.
static PREVIOUS_SEGV: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());
static PREVIOUS_BUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());

/// Installs the SIGSEGV and SIGBUS handler (`SA_SIGINFO | SA_ONSTACK`),
/// keeping the previous actions to chain to. Call once per process.
pub(crate) fn install_fault_handler(hook: FaultHook) {
    if HOOK.set(hook).is_err() {
        return;
    }
    for (signal, slot) in [
        (libc::SIGSEGV, &PREVIOUS_SEGV),
        (libc::SIGBUS, &PREVIOUS_BUS),
    ] {
        // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask).
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying with a null new action changes nothing.
        if unsafe { libc::sigaction(signal, ptr::null(), &mut previous) } != 0 {
            continue;
        }
        // Published before the handler can run, so it never sees a half-made slot.
        slot.store(Box::into_raw(Box::new(previous)), Ordering::Release);
        // SAFETY: as above.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_fault as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: sa_mask is a valid sigset_t to clear; the handler is an
        // extern "C" function with the SA_SIGINFO signature and lives forever.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, ptr::null_mut());
        }
    }
}

/// The SIGSEGV/SIGBUS handler. Async-signal-safe as long as the hook is: an
/// atomic load, then `sigaction`, `raise` or the previous handler.
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code <= 0 means the signal was sent (kill, raise), not caused by a
    // fault: its address means nothing. Any code above (SEGV_MAPERR from a
    // guard region, SEGV_ACCERR from a PROT_NONE page, ...) is a real fault.
    if code > 0 {
        if let Some(hook) = HOOK.get() {
            hook(address);
        }
    }
    // SAFETY: forwarded unchanged from the kernel.
    unsafe { chain(signal, info, context) }
}

/// Hands a fault that is not a greenlet overflow to whoever had it before.
///
/// # Safety
/// The arguments must be the ones the kernel passed to [`on_fault`].
unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let slot = if signal == libc::SIGBUS {
        &PREVIOUS_BUS
    } else {
        &PREVIOUS_SEGV
    };
    let previous = slot.load(Ordering::Acquire);
    // SAFETY: a non-null slot points at a leaked, never-written-again sigaction.
    let previous = unsafe { previous.as_ref() };
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    // SAFETY: info is valid (see on_fault).
    let sent = unsafe { (*info).si_code } <= 0;
    if handler == libc::SIG_IGN && sent {
        return; // a sent signal that was being ignored stays ignored
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action. A fault then happens again when we
        // return and the kernel ends the process as it would have without us;
        // a sent signal is sent again (it is blocked until we return).
        // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask;
        // sigaction and raise are async-signal-safe.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, ptr::null_mut());
            if sent {
                libc::raise(signal);
            }
        }
        return;
    }
    let siginfo = previous.is_some_and(|p| p.sa_flags & libc::SA_SIGINFO != 0);
    if siginfo {
        // SAFETY: the previous action was installed with SA_SIGINFO, so its
        // handler has this signature; we pass on what the kernel gave us.
        unsafe {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            f(signal, info, context);
        }
    } else {
        // SAFETY: without SA_SIGINFO the handler takes the signal number only.
        unsafe {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(signal);
        }
    }
}

/// Writes all of `bytes` to stderr with `write(2)` (async-signal-safe).
pub(crate) fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for reads of its length.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            rest = &rest[n as usize..];
        } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            break;
        }
    }
}

/// Ends the process with SIGABRT (async-signal-safe).
pub(crate) fn abort() -> ! {
    // SAFETY: abort has no preconditions and never returns.
    unsafe { libc::abort() }
}

// ---- alternate signal stacks -------------------------------------------------

/// Bytes of the alternate signal stacks made here (plus a guard page).
/// Generous: the handler itself needs well under a KiB, but the handler it
/// chains to (Rust's own) formats a message too.
const ALT_STACK_SIZE: usize = 64 << 10;

thread_local! {
    static ALT_STACK: AltStack = const {
        AltStack { checked: Cell::new(false), base: Cell::new(0), len: Cell::new(0) }
    };
}

/// Gives the calling thread an alternate signal stack if it has none (threads
/// started by `std::thread` have one; threads made by C code may not), so a
/// fault on an exhausted stack can still run its handler. Freed at thread exit.
pub(crate) fn ensure_alt_stack() {
    // During thread teardown the thread local may be gone; a stack made that
    // late then goes without the message (the fault still stops the process).
    let _ = ALT_STACK.try_with(AltStack::ensure);
}

/// This thread's alternate signal stack, when this module had to make one.
struct AltStack {
    checked: Cell<bool>,
    base: Cell<usize>,
    len: Cell<usize>,
}

impl AltStack {
    fn ensure(&self) {
        if self.checked.replace(true) {
            return;
        }
        // SAFETY: an all-zero stack_t is a valid value to be overwritten.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: querying with a null new stack changes nothing.
        if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
            return;
        }
        if current.ss_flags & libc::SS_DISABLE == 0 {
            return; // the thread already has one
        }
        let page = page_size();
        let len = ALT_STACK_SIZE + page;
        let Ok(base) = map_stack_memory(len) else {
            return; // without it an overflow is a plain SIGSEGV: still loud
        };
        // SAFETY: the first page of our fresh mapping, unused.
        if unsafe { protect_none(base, page) }.is_err() {
            // SAFETY: our own, unused mapping.
            unsafe { unmap(base, len) };
            return;
        }
        let stack = libc::stack_t {
            // The lowest page is a guard, so a runaway handler faults too.
            ss_sp: (base + page) as *mut libc::c_void,
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        // SAFETY: the signal stack is our mapping above its guard page, which
        // nothing else uses.
        if unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } != 0 {
            // SAFETY: our own, unused mapping.
            unsafe { unmap(base, len) };
            return;
        }
        self.base.set(base);
        self.len.set(len);
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base == 0 {
            return;
        }
        // SAFETY: an all-zero stack_t is a valid value to be overwritten.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: querying changes nothing; disabling is allowed because no
        // handler is running on the signal stack while a destructor runs; the
        // mapping is ours and no longer the signal stack when unmapped.
        unsafe {
            libc::sigaltstack(ptr::null(), &mut current);
            let ours = current.ss_sp as usize == base + page_size();
            if ours && current.ss_flags & libc::SS_DISABLE == 0 {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, ptr::null_mut());
            }
            unmap(base, self.len.get());
        }
    }
}

/// The kernel's id of the calling thread, as debuggers name threads (Linux:
/// `gettid`, gdb's LWP; macOS: `pthread_threadid_np`, lldb's tid; elsewhere
/// `pthread_self`). For the debugger view (src/greenlet/registry.rs).
pub(crate) fn os_thread_id() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: gettid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) as u64 }
    }
    #[cfg(target_os = "macos")]
    {
        let mut id = 0u64;
        // SAFETY: a null thread means the calling one; `id` is a valid out
        // pointer for the call's duration.
        unsafe { libc::pthread_threadid_np(0, &mut id) };
        id
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    {
        // SAFETY: pthread_self has no preconditions.
        unsafe { libc::pthread_self() as u64 }
    }
}
