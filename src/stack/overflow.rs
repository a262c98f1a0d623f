//! Loud, safe failure when a greenlet runs off the end of its stack (SPEC §6).
//!
//! Every greenlet stack has a `PROT_NONE` guard page below it, so running off
//! the end faults instead of writing over a neighbour. This module turns that
//! fault into a clear message instead of a bare "Segmentation fault":
//!
//! ```text
//! greenlet: greenlet stack overflow: the running greenlet used up its stack
//! 0x7f3a1c5f0000..0x7f3a1c600000 (65536 bytes) and hit the guard page at 0x7f3a1c5efff8; aborting
//! ```
//!
//! How:
//! * **One handler, installed once.** The first time any thread maps a
//!   greenlet stack, a `SIGSEGV` and a `SIGBUS` handler are installed
//!   (`std::sync::Once`, `SA_SIGINFO | SA_ONSTACK`), remembering the actions that
//!   were there before (usually Rust's own handler, which reports overflows of
//!   thread stacks). The crate never installs them again: a program that later
//!   sets its own handler keeps it, and loses only the greenlet message.
//! * **An alternate signal stack per thread.** A fault caused by an exhausted
//!   stack cannot run its handler on that same stack, so each thread that
//!   creates a greenlet stack gets a `sigaltstack` unless it already has one
//!   (threads started by `std::thread` do; threads made by C code may not). The
//!   crate frees the ones it made when the thread exits.
//! * **An async-signal-safe check.** The handler reads the running greenlet
//!   from a `const` thread local (a plain TLS load: no lazy initialisation, no
//!   lock, no allocation) and the guard range of its stack (plain field reads).
//!   When the faulting address lies in that guard page it writes the message
//!   with `write(2)` from a buffer on the signal stack and calls `abort()`.
//! * **Everything else is passed on unchanged.** Any other fault goes to the
//!   action that was installed before: a handler is called as it would have
//!   been (with `siginfo` if it asked for it); the default action, or an
//!   ignored synchronous fault, is restored and the faulting instruction runs
//!   again, so the process dies exactly as it would have without this crate.
//!
//! Known limits: a single stack frame larger than a page can step over the
//! guard page on targets where the compiler emits no stack probes (x86_64 has
//! them); a fault in the few instructions of the switch routine that push the
//! old greenlet's registers is reported as a plain segmentation fault, since
//! by then the new greenlet is already recorded as the running one.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

use crate::greenlet::thread;

/// Bytes of the alternate signal stacks this module maps (plus a guard page).
/// Generous: the handler itself needs well under a KiB, but the handler it
/// chains to (Rust's own) formats a message too.
const ALT_STACK_SIZE: usize = 64 << 10;

static INSTALL: Once = Once::new();

/// The actions in place for SIGSEGV and SIGBUS before ours; written once,
/// before our handler is installed, and never freed.
static PREVIOUS_SEGV: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());
static PREVIOUS_BUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());

thread_local! {
    static ALT_STACK: AltStack = const {
        AltStack { checked: Cell::new(false), base: Cell::new(ptr::null_mut()), len: Cell::new(0) }
    };
}

/// Makes sure that a guard-page hit on this thread is reported: installs the
/// process-wide handler once and gives the calling thread an alternate signal
/// stack if it has none. Called whenever a greenlet stack is mapped.
pub(crate) fn prepare_thread() {
    INSTALL.call_once(install_handlers);
    // During thread teardown the thread local may be gone; a stack mapped that
    // late then goes without the message (the fault still stops the process).
    let _ = ALT_STACK.try_with(AltStack::ensure);
}

fn install_handlers() {
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

/// The SIGSEGV/SIGBUS handler. Async-signal-safe: TLS loads, field reads,
/// `write`, `sigaction`, `raise` and `abort` only.
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code <= 0 means the signal was sent (kill, raise), not caused by a
    // fault: its address means nothing.
    if code > 0 {
        if let Some(stack) = running_greenlet_stack() {
            if address >= stack.guard_start && address < stack.guard_end {
                report_and_abort(&stack, address);
            }
        }
    }
    // SAFETY: forwarded unchanged from the kernel.
    unsafe { chain(signal, info, context) }
}

/// Address ranges of the running greenlet's stack.
struct StackRange {
    guard_start: usize,
    guard_end: usize,
    bottom: usize,
    top: usize,
}

/// The running greenlet's stack, read without locks or allocation.
fn running_greenlet_stack() -> Option<StackRange> {
    let current = thread::current_for_signal();
    if current.is_null() {
        return None;
    }
    // SAFETY: CURRENT owns a strong reference, so `current` is live. Its stack
    // slot is written only while it is not running (at spawn, and after its
    // death once the switch away is complete), and a guard-page fault happens
    // only while it runs, so nothing is writing the slot now. The reads are
    // plain loads of the mapping's address and length.
    let stack = unsafe { (*(*current).stack.as_ptr()).as_ref() }?;
    let (guard_start, guard_end) = stack.guard_range();
    Some(StackRange {
        guard_start,
        guard_end,
        bottom: stack.bottom() as usize,
        top: stack.top() as usize,
    })
}

/// Writes the overflow message to stderr and aborts.
fn report_and_abort(stack: &StackRange, address: usize) -> ! {
    let mut m = Message::new();
    m.text("\ngreenlet: greenlet stack overflow: the running greenlet used up its stack ");
    m.hex(stack.bottom);
    m.text("..");
    m.hex(stack.top);
    m.text(" (");
    m.decimal(stack.top - stack.bottom);
    m.text(" bytes) and hit the guard page at ");
    m.hex(address);
    m.text("; aborting (give it more room with Builder::stack_size)\n");
    m.write_to_stderr();
    // SAFETY: abort is async-signal-safe and never returns.
    unsafe { libc::abort() }
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

/// A message assembled in a fixed buffer: no allocation, no formatting
/// machinery, so it can be built inside a signal handler.
struct Message {
    buf: [u8; 320],
    len: usize,
}

impl Message {
    fn new() -> Message {
        Message {
            buf: [0; 320],
            len: 0,
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn hex(&mut self, mut v: usize) {
        let mut digits = [0u8; 2 + 2 * std::mem::size_of::<usize>()];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[v & 0xf];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        digits[i] = b'0';
        digits[i + 1] = b'x';
        self.bytes(&digits[i..]);
    }

    fn decimal(&mut self, mut v: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&digits[i..]);
    }

    fn write_to_stderr(&self) {
        let mut rest = &self.buf[..self.len];
        while !rest.is_empty() {
            // SAFETY: `rest` is valid for reads of its length; write(2) is
            // async-signal-safe.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n > 0 {
                rest = &rest[n as usize..];
            } else if n < 0 && errno() == libc::EINTR {
                continue;
            } else {
                break;
            }
        }
    }
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// This thread's alternate signal stack, when this module had to make one.
struct AltStack {
    checked: Cell<bool>,
    base: Cell<*mut libc::c_void>,
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
            return; // the thread already has one (std gives its threads one)
        }
        let page = crate::stack::page_size();
        let len = ALT_STACK_SIZE + page;
        let Ok(base) = crate::stack::map_with_low_guard(len) else {
            return; // without it an overflow is a plain SIGSEGV: still loud
        };
        let stack = libc::stack_t {
            // The lowest page is a guard, so a runaway handler faults too.
            ss_sp: base.cast::<u8>().wrapping_add(page).cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        // SAFETY: `base` is our mapping of `len` bytes; the guard page is its
        // first page; the signal stack is the rest, which nothing else uses.
        let ok = unsafe { libc::sigaltstack(&stack, ptr::null_mut()) == 0 };
        if !ok {
            // SAFETY: unmapping our own, unused mapping.
            unsafe { libc::munmap(base, len) };
            return;
        }
        self.base.set(base);
        self.len.set(len);
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base.is_null() {
            return;
        }
        // SAFETY: as in `ensure`.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: querying changes nothing; disabling is allowed because no
        // handler is running on the signal stack while a destructor runs.
        unsafe {
            libc::sigaltstack(ptr::null(), &mut current);
            let ours = current.ss_sp as usize == base as usize + crate::stack::page_size();
            if ours && current.ss_flags & libc::SS_DISABLE == 0 {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, ptr::null_mut());
            }
            libc::munmap(base, self.len.get());
        }
    }
}
