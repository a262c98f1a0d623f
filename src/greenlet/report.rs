//! Reports on stderr for conditions that cannot be returned to anyone.

/// Writes one line to stderr for conditions that cannot be returned to anyone
/// (a greenlet that refuses to die, a destructor panicking in cleanup).
use std::panic::{self, AssertUnwindSafe};

pub(crate) fn report(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The message of a panic payload when it is a string, for reports.
pub(crate) fn describe_panic(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Drops a value whose destructor might panic, containing the panic.
pub(crate) fn drop_quietly<T>(value: T) {
    quietly(move || drop(value))
}

/// Runs a cleanup step whose destructors might panic, containing the panic.
pub(crate) fn quietly(cleanup: impl FnOnce()) {
    if let Err(mut payload) = panic::catch_unwind(AssertUnwindSafe(cleanup)) {
        report("greenlet: a destructor panicked while a value was being discarded; that panic is ignored");
        // That panic's payload may panic when dropped too: drop it (and its
        // successors) a bounded number of times, then leak what is left
        // rather than loop for ever.
        for _ in 0..8 {
            match panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                Ok(()) => return,
                Err(next) => payload = next,
            }
        }
        std::mem::forget(payload);
    }
}
