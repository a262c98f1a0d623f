//! Loud, safe failure when a greenlet runs off the end of its stack (SPEC §6).
//!
//! Every greenlet stack has a guard below it: a guard region in a shared
//! mapping, or a `PROT_NONE` page. Running into it faults instead of writing
//! over the neighbour; this module turns that fault into a clear message
//! instead of a bare "Segmentation fault":
//!
//! ```text
//! greenlet: greenlet stack overflow: a greenlet used up its stack 0x7f3a1c5f0000..0x7f3a1c600000
//! (65536 bytes) and hit the guard region at 0x7f3a1c5efff8; aborting (...)
//! ```
//!
//! How:
//! * **One handler, installed once.** The first time any thread makes a
//!   greenlet stack, a `SIGSEGV` and a `SIGBUS` handler are installed
//!   (`SA_SIGINFO | SA_ONSTACK`), keeping the actions that were there before
//!   (usually Rust's own, which reports overflows of thread stacks). The crate
//!   never installs them again: a program that later sets its own handler
//!   keeps it, and loses only the greenlet message.
//! * **An alternate signal stack per thread** that makes stacks and has none,
//!   since a fault caused by an exhausted stack cannot run its handler there.
//! * **The stack layer's own records.** The handler looks the fault address up
//!   in this thread's table of stack areas (src/stack/registry.rs): any guard
//!   of any stack of the thread, whichever greenlet (if any) runs on it, with
//!   `SEGV_MAPERR` (guard regions) as with `SEGV_ACCERR` (guard pages), and
//!   as with the `SIGBUS` that macOS may raise for a guard page instead
//!   (which of the two it raises has differed between releases and CPUs;
//!   Rust's std handles both there too). It never reads the greenlet core,
//!   and nothing is recorded per switch.
//!   On a hit it writes the message with `write(2)` from a buffer on the
//!   signal stack and calls `abort()`.
//! * **Everything else is passed on unchanged** (src/stack/unix.rs): a handler
//!   that was there before is called as it would have been; the default action
//!   is restored and the faulting instruction runs again, so the process dies
//!   exactly as it would have without this crate.
//!
//! Known limit: the guard is [`guard_size`](crate::stack::guard_size) bytes,
//! one page where the compiler emits stack probes (x86, x86_64, aarch64,
//! powerpc64; s390x a page more) and 64 KiB more where it does not (riscv64,
//! arm). There a single frame larger than the guard can still step over it
//! without touching it, as it can step over the guard of Rust's own thread
//! stacks.

use std::sync::Once;

use crate::stack::os;
use crate::stack::registry::{self, GuardHit, GuardHow};

static INSTALL: Once = Once::new();

/// Makes sure that a guard hit on this thread is reported: installs the
/// process-wide handler once and gives the calling thread an alternate signal
/// stack if it has none. Called whenever stack memory is made.
pub(crate) fn prepare_thread() {
    INSTALL.call_once(|| os::install_fault_handler(on_fault_at));
    os::ensure_alt_stack();
}

/// The handler's hook: reports and aborts when `address` is in a guard of one
/// of this thread's stacks, else returns. Async-signal-safe.
#[cfg(unix)]
fn on_fault_at(address: usize) {
    if let Some(hit) = registry::find_guard(address) {
        report_and_abort(&hit, address);
    }
}

/// The exception handler's hook on Windows (src/stack/windows.rs): reports
/// and ends the process for
/// * `STATUS_STACK_OVERFLOW` anywhere in one of this thread's stacks (the OS
///   raises it where it stopped growing the stack: in the guard, or in the
///   stack when the thread's stack guarantee is larger than the guard);
/// * an access violation or guard-page hit in a guard.
///
/// An access to the usable part of a stack that is not committed yet (code
/// on another stack touching it, or a frame whose probes skipped the guard
/// page) is not an overflow: the page is committed and the access retried.
/// A `PAGE_GUARD` page touched from another stack loses its guard flag (the
/// OS commits it), so the page below becomes the guard page, keeping the
/// stack's growth with the OS. Everything else goes on to the next handler.
#[cfg(windows)]
fn on_fault_at(fault: os::Fault, address: usize) -> os::Verdict {
    use os::{Fault, Verdict};
    if fault == Fault::StackOverflow {
        if let Some(hit) = registry::find_slot(address) {
            report_and_abort(&hit, address);
        }
        return Verdict::Pass;
    }
    if let Some(hit) = registry::find_guard(address) {
        report_and_abort(&hit, address);
    }
    let Some(hit) = registry::find_slot(address) else {
        return Verdict::Pass;
    };
    match fault {
        // SAFETY: `address` lies in the usable part of one of our stacks.
        Fault::AccessViolation if unsafe { os::commit_page(address) } => Verdict::Retry,
        Fault::GuardPage => {
            let below = (address & !(crate::stack::page_size() - 1))
                .checked_sub(crate::stack::page_size())
                .filter(|&b| b >= hit.guard_end);
            if let Some(below) = below {
                // SAFETY: a page of the usable part of one of our stacks.
                unsafe { os::arm_guard_page(below) };
            }
            Verdict::Retry
        }
        _ => Verdict::Pass,
    }
}

/// Writes the overflow message to stderr and aborts.
fn report_and_abort(hit: &GuardHit, address: usize) -> ! {
    let mut m = Message::new();
    m.text("\ngreenlet: greenlet stack overflow: a greenlet used up its stack ");
    m.hex(hit.guard_end);
    m.text("..");
    m.hex(hit.top);
    m.text(" (");
    m.decimal(hit.top - hit.guard_end);
    m.text(match hit.how {
        GuardHow::Region => " bytes) and hit the guard region ",
        GuardHow::Page => " bytes) and hit the guard page ",
    });
    m.hex(hit.guard_start);
    m.text("..");
    m.hex(hit.guard_end);
    m.text(" at ");
    m.hex(address);
    m.text("; aborting (give it more room with Builder::stack_size)\n");
    os::write_stderr(m.as_bytes());
    os::abort()
}

/// A message assembled in a fixed buffer: no allocation, no formatting
/// machinery, so it can be built inside a signal handler.
struct Message {
    buf: [u8; 384],
    len: usize,
}

impl Message {
    fn new() -> Message {
        Message {
            buf: [0; 384],
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

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn the_message_formats_numbers_without_allocating() {
        let mut m = Message::new();
        m.hex(0x7f3a_1c5f);
        m.text(" ");
        m.decimal(65536);
        m.text(" ");
        m.hex(0);
        assert_eq!(m.as_bytes(), b"0x7f3a1c5f 65536 0x0"); // fits 32-bit usize too
    }
}
