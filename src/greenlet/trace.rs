//! Tracing (SPEC S11): the per-thread tracer, installed with [`settrace`] and
//! called by the switch's slow path for every switch and throw.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use super::object::Greenlet;
use super::thread;

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
    static TRACER: RefCell<Option<Tracer>> = const { RefCell::new(None) };
}

/// The installed tracer, if any (a clone of the `Rc`).
fn tracer() -> Option<Tracer> {
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
    thread::set_tracing(on);
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

/// Calls the tracer, if one is installed, with `(event, origin, current)`.
/// A tracer that panics is uninstalled and its panic payload is returned, to
/// be raised in the target (SPEC S11).
#[cold]
pub(crate) fn call(event: Event, origin: &Greenlet) -> Result<(), Box<dyn std::any::Any + Send>> {
    let Some(tracer) = tracer() else {
        return Ok(());
    };
    let target = Greenlet::current();
    panic::catch_unwind(AssertUnwindSafe(|| tracer(event, origin, &target))).inspect_err(|_| {
        settrace(None);
    })
}
