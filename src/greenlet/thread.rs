//! Per-thread state of the core: the running greenlet, the main greenlet, and
//! one word of "slow path wanted" flags that the switch tests once; and the
//! running greenlet's greenlet-local values.
//!
//! All of it is `const`-initialised thread locals of `Copy` types without
//! destructors, so reading one is a single TLS load with no lazy
//! initialisation check. The main greenlet is made on first use; a guard with
//! a destructor releases it when the thread exits.

use std::cell::Cell;
use std::ptr;

use std::any::Any;
use std::rc::Rc;

use super::locals::Locals;
use super::object::{Greenlet, Inner, State};
use super::{registry, spare};

/// Bits of [`SLOW`]. Any bit set sends every switch of the thread through the
/// slow path, which handles all of them.
pub(crate) mod slow {
    /// No main greenlet yet, or the thread's greenlet state is torn down:
    /// CURRENT is null.
    pub(crate) const NO_MAIN: usize = 1;
    /// A tracer is installed (SPEC S11).
    pub(crate) const TRACING: usize = 2;
    /// AddressSanitizer must be told of every switch (feature `asan`).
    pub(crate) const SANITIZER: usize = 4;
    /// The running greenlet's last strong handle has dropped: the switch
    /// that leaves it must have the other side release or kill it (SPEC
    /// S10). Cleared by that switch, since a greenlet that can be resumed
    /// always has a handle. May stay set after a new handle is taken (only
    /// a slower switch follows), never clear while the running greenlet
    /// has none.
    pub(crate) const UNOWNED: usize = 8;
}

/// The bits every thread starts with.
const INITIAL_SLOW: usize = slow::NO_MAIN
    | if crate::stack::sanitizer::ACTIVE {
        slow::SANITIZER
    } else {
        0
    };

/// The two words every switch reads, side by side so that one TLS address
/// serves both.
struct Hot {
    /// "Slow path wanted" flags (bits of [`slow`]); 0 in the common case.
    slow: Cell<usize>,
    /// The running greenlet. It owns no reference: a greenlet is kept alive
    /// while it runs because nothing frees a running greenlet (see
    /// `object::release`). Null until first use and after teardown.
    current: Cell<*const Inner>,
}

thread_local! {
    static HOT: Hot = const { Hot { slow: Cell::new(INITIAL_SLOW), current: Cell::new(ptr::null()) } };
    /// Set once this thread's state has been torn down at thread exit.
    static TORN_DOWN: Cell<bool> = const { Cell::new(false) };
    static MAIN: MainGuard = const { MainGuard { main: Cell::new(ptr::null()) } };
}

/// Owns the thread's reference to its main greenlet; dropped at thread exit.
struct MainGuard {
    main: Cell<*const Inner>,
}

impl Drop for MainGuard {
    fn drop(&mut self) {
        let _ = TORN_DOWN.try_with(|t| t.set(true));
        let main = self.main.replace(ptr::null());
        if main.is_null() {
            return;
        }
        let current = HOT.with(|h| h.current.replace(ptr::null()));
        let _ = HOT.try_with(|h| h.slow.set(h.slow.get() | slow::NO_MAIN));
        if current != main {
            // A thread can only exit from its own stack, where main is current;
            // anything else means a greenlet called pthread_exit. Its frames are
            // alive, so main (its ancestor) is leaked rather than freed.
            super::report::report("greenlet: thread exited while a greenlet other than main was running; its stack is leaked");
            return;
        }
        // SAFETY: main is live; it stops running here (nothing runs on this
        // thread's greenlets any more), and the guard owned one strong reference.
        unsafe {
            (*main).state.set(State::Suspended);
            drop(Greenlet::from_raw(main));
        }
    }
}

/// The slow-path flags, one TLS load.
#[inline(always)]
pub(crate) fn slow_flags() -> usize {
    HOT.with(|h| h.slow.get())
}

/// The running greenlet has just lost its last strong handle.
#[inline]
pub(crate) fn set_current_unowned() {
    set_slow(slow::UNOWNED, true);
}

/// A switch is leaving the running greenlet for one that has a handle.
#[inline(always)]
pub(crate) fn clear_current_unowned() {
    HOT.with(|h| h.slow.set(h.slow.get() & !slow::UNOWNED));
}

fn set_slow(bit: usize, on: bool) {
    HOT.with(|h| {
        h.slow.set(if on {
            h.slow.get() | bit
        } else {
            h.slow.get() & !bit
        })
    });
}

/// The running greenlet without the first-use check: only valid once
/// [`slow_flags`] has been seen without [`slow::NO_MAIN`].
#[inline(always)]
pub(crate) fn current_unchecked() -> *const Inner {
    HOT.with(|h| h.current.get())
}

/// The running greenlet (creating this thread's main greenlet on first use).
#[inline]
pub(crate) fn current_ptr() -> *const Inner {
    let current = HOT.with(|h| h.current.get());
    if current.is_null() {
        init_main()
    } else {
        current
    }
}

#[cold]
fn init_main() -> *const Inner {
    let main = spare::slot();
    // SAFETY: a fresh slot with Inner's layout, written once.
    unsafe { main.write(Inner::main()) };
    // SAFETY: just written, from spare::slot. Debugger registry (issue 21).
    unsafe { registry::born(main) };
    let main = main.cast_const();
    // Once thread-local destructors run, the guard may be gone: nobody will
    // release that main, so its small allocation is leaked on purpose (its
    // strong count stays 1).
    let _ = MAIN.try_with(|g| g.main.set(main));
    HOT.with(|h| h.current.set(main));
    set_slow(slow::NO_MAIN, false);
    main
}

/// Makes `target` the running greenlet.
#[inline(always)]
pub(crate) fn set_current(target: *const Inner) {
    HOT.with(|h| h.current.set(target));
}

/// The main greenlet of this thread (creating it on first use).
pub(crate) fn main_ptr() -> *const Inner {
    let current = current_ptr();
    let main = MAIN.try_with(|g| g.main.get()).unwrap_or(ptr::null());
    if main.is_null() {
        // Only while thread-local destructors run: walk up from current.
        // SAFETY: `current` is live (it is running).
        unsafe { Inner::root_of(current) }
    } else {
        main
    }
}

/// True once this thread's greenlet state has been released at thread exit.
pub(crate) fn torn_down() -> bool {
    TORN_DOWN.try_with(Cell::get).unwrap_or(true)
}

/// Turns the tracer bit on or off (src/greenlet/trace.rs keeps the tracer).
pub(crate) fn set_tracing(on: bool) {
    set_slow(slow::TRACING, on);
}

/// Is a tracer installed?
#[inline]
pub(crate) fn tracing() -> bool {
    HOT.try_with(|h| h.slow.get()).unwrap_or(0) & slow::TRACING != 0
}

/// Runs `f` with the running greenlet's table of greenlet-local values.
fn with_current_locals<R>(f: impl FnOnce(&Locals) -> R) -> R {
    // SAFETY: the running greenlet is live while it runs.
    f(unsafe { &(*current_ptr()).locals })
}

/// The running greenlet's greenlet-local value for `key`, if it has one.
pub(crate) fn local_get(key: usize) -> Option<Rc<dyn Any>> {
    with_current_locals(|l| l.get(key))
}

/// Sets the running greenlet's greenlet-local value for `key`; returns the
/// old one for the caller to drop.
pub(crate) fn local_insert(key: usize, value: Rc<dyn Any>) -> Option<Rc<dyn Any>> {
    with_current_locals(|l| l.insert(key, value))
}
