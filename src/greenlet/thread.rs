//! Per-thread state: the current greenlet, the main greenlet and the tracer.
//!
//! The hot fields are `const`-initialised thread locals of `Copy` types, so
//! reading them costs one TLS load with no lazy-initialisation check. The main
//! greenlet is made on first use; a guard with a destructor releases it when
//! the thread exits.

use std::cell::{Cell, RefCell};
use std::ptr;

use crate::greenlet::handle::{Greenlet, Inner};

/// Called for every switch and throw on a thread (SPEC S11), as
/// `tracer(event, origin, target)`; install one with [`settrace`].
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use greenlet::{settrace, Event, Greenlet, Tracer};
/// let hops = Rc::new(RefCell::new(Vec::new()));
/// let sink = hops.clone();
/// let tracer: Tracer = Rc::new(move |_: Event, origin: &Greenlet, target: &Greenlet| {
///     sink.borrow_mut().push((origin.is_main(), target.is_main()))
/// });
/// let previous = settrace(Some(tracer));
/// Greenlet::new(|_| ()).switch(());
/// settrace(previous);
/// assert_eq!(*hops.borrow(), [(true, false), (false, true)]); // into g; back at its death
/// ```
pub type Tracer = std::rc::Rc<dyn Fn(Event, &Greenlet, &Greenlet)>;

/// What a tracer is told about.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use greenlet::{settrace, Event, Greenlet, GreenletExit};
/// let events = Rc::new(RefCell::new(Vec::new()));
/// let sink = events.clone();
/// settrace(Some(Rc::new(move |e: Event, _: &Greenlet, _: &Greenlet| sink.borrow_mut().push(e))));
/// let g = Greenlet::new(|_| Greenlet::main().switch(()));
/// g.switch(()); // Switch into g, Switch back
/// g.throw(GreenletExit); // Throw into g, Switch back at its death
/// settrace(None);
/// use Event::{Switch, Throw};
/// assert_eq!(*events.borrow(), [Switch, Switch, Throw, Switch]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Control moved by a switch, a return from `run` or a death.
    Switch,
    /// Control moved by a throw (including the kill of a dropped greenlet).
    Throw,
}

thread_local! {
    /// The running greenlet; owns one strong reference. Null until first use.
    static CURRENT: Cell<*const Inner> = const { Cell::new(ptr::null()) };
    /// Set while a tracer is installed, so the switch path reads one flag.
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// Set once this thread's state has been torn down at thread exit.
    static TORN_DOWN: Cell<bool> = const { Cell::new(false) };
    static TRACER: RefCell<Option<Tracer>> = const { RefCell::new(None) };
    static MAIN: MainGuard = const { MainGuard { main: Cell::new(ptr::null()) } };
}

/// Owns the thread's reference to its main greenlet; dropped at thread exit.
struct MainGuard {
    main: Cell<*const Inner>,
}

impl Drop for MainGuard {
    fn drop(&mut self) {
        TORN_DOWN.with(|t| t.set(true));
        let main = self.main.replace(ptr::null());
        if main.is_null() {
            return;
        }
        let current = CURRENT.with(|c| c.replace(ptr::null()));
        if current == main {
            // SAFETY: CURRENT owned one strong reference to main.
            drop(unsafe { Greenlet::from_raw(current) });
        } else if !current.is_null() {
            // A thread can only exit from its own stack, where main is current;
            // anything else means a greenlet called pthread_exit. Its frames are
            // alive, so its reference is leaked rather than freed.
            crate::report("greenlet: thread exited while a greenlet other than main was running; its stack is leaked");
        }
        // SAFETY: the guard owned one strong reference to main.
        drop(unsafe { Greenlet::from_raw(main) });
    }
}

/// The running greenlet (creating this thread's main greenlet on first use).
#[inline]
pub(crate) fn current_ptr() -> *const Inner {
    let current = CURRENT.with(Cell::get);
    if current.is_null() {
        init_main()
    } else {
        current
    }
}

#[cold]
fn init_main() -> *const Inner {
    let main = Inner::new_main();
    // One reference for CURRENT; one for the guard when it can be registered.
    // SAFETY: `main` is live with strong count 1 (owned by CURRENT below).
    unsafe { Inner::inc_strong(main) };
    let guarded = MAIN.try_with(|g| g.main.set(main)).is_ok();
    if !guarded {
        // Thread-local destructors are already running: nobody will release
        // main, so its small allocation is leaked on purpose.
        // SAFETY: undo the guard's reference, keeping CURRENT's.
        unsafe { Inner::dec_strong_no_drop(main) };
    }
    CURRENT.with(|c| c.set(main));
    main
}

/// Makes `target` current. The caller has already taken a strong reference for
/// CURRENT on `target`, and takes over the one CURRENT held on the old current.
#[inline]
pub(crate) fn set_current(target: *const Inner) {
    CURRENT.with(|c| c.set(target));
}

/// The main greenlet of this thread (creating it on first use).
pub(crate) fn main_ptr() -> *const Inner {
    let current = current_ptr();
    let main = MAIN.try_with(|g| g.main.get()).unwrap_or(ptr::null());
    if main.is_null() {
        // Only during thread teardown: walk up from current to the root.
        // SAFETY: `current` is live (CURRENT owns a reference).
        unsafe { Inner::root_of(current) }
    } else {
        main
    }
}

/// True once this thread's greenlet state has been released at thread exit.
pub(crate) fn torn_down() -> bool {
    TORN_DOWN.try_with(Cell::get).unwrap_or(true)
}

#[inline]
pub(crate) fn tracing() -> bool {
    TRACING.with(Cell::get)
}

/// The installed tracer, if any (a clone of the `Rc`).
pub(crate) fn tracer() -> Option<Tracer> {
    TRACER.try_with(|t| t.borrow().clone()).ok().flatten()
}

/// Installs `tracer` (or removes it with `None`) for the calling thread and
/// returns the previous one (SPEC S11).
///
/// The tracer is called as `tracer(event, origin, target)` after the stack has
/// switched and before `target` resumes, on `target`'s stack. A tracer that
/// panics is uninstalled and its panic is raised in `target`.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use greenlet::{settrace, Event, Greenlet};
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let sink = log.clone();
/// settrace(Some(Rc::new(move |e: Event, _: &Greenlet, _: &Greenlet| sink.borrow_mut().push(e))));
/// Greenlet::new(|_| ()).switch(());
/// settrace(None);
/// assert_eq!(*log.borrow(), [Event::Switch, Event::Switch]); // in, and back at death
/// ```
pub fn settrace(tracer: Option<Tracer>) -> Option<Tracer> {
    let on = tracer.is_some();
    let previous = TRACER.with(|t| std::mem::replace(&mut *t.borrow_mut(), tracer));
    TRACING.with(|t| t.set(on));
    previous
}

/// The tracer installed on the calling thread, if any.
///
/// ```
/// assert!(greenlet::gettrace().is_none());
/// ```
pub fn gettrace() -> Option<Tracer> {
    tracer()
}
