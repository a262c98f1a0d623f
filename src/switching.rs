//! Moving control between greenlets: switch, throw, start, death, and the
//! bookkeeping either side of the assembly switch.
//!
//! Every switch hands the resumed side a pointer to a [`Transfer`] that lives on
//! the suspended side's stack (which cannot change while it is suspended). The
//! resumed side copies it out first thing, in [`after_switch`], and only then
//! does anything that could switch again.
//!
//! Unwinding never crosses the assembly: panics are caught at the bottom of each
//! greenlet's stack in [`entry`], carried across as [`Message::Throw`], and
//! raised again with `resume_unwind` on the other side (SPEC S5).

use std::any::Any;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};

use crate::arch;
use crate::error::GreenletExit;
use crate::greenlet::{Greenlet, Inner, State};
use crate::stack;
use crate::thread::{self, Event};
use crate::value::Value;

/// What a switch carries to the resumed side.
pub(crate) enum Message {
    /// Returned from the pending call (or passed to `run`).
    Value(Value),
    /// Raised from the pending call with `resume_unwind`.
    Throw(Box<dyn Any + Send>),
}

impl Message {
    fn event(&self) -> Event {
        match self {
            Message::Value(_) => Event::Switch,
            Message::Throw(_) => Event::Throw,
        }
    }
}

/// Lives on the stack of the side being suspended, for the resumed side to read.
struct Transfer {
    /// The greenlet that switched; carries the strong reference that CURRENT
    /// held on it, which the resumed side now owns.
    origin: *const Inner,
    message: ManuallyDrop<Message>,
    /// The origin has just died: its stack can go back to the pool.
    origin_died: bool,
}

/// The first live greenlet at or above `g` (SPEC S4, S7): dead greenlets pass
/// switches and throws on to their parents. Main greenlets never die, so the
/// walk always ends.
#[inline]
fn first_live(mut g: *const Inner) -> *const Inner {
    loop {
        // SAFETY: `g` is live (held by a handle or by a child's parent link).
        let inner = unsafe { &*g };
        if inner.state.get() != State::Dead {
            return g;
        }
        g = inner
            .parent_ptr()
            .expect("greenlet invariant: a dead greenlet always has a parent");
    }
}

/// Switches to (the first live ancestor of) `target` with `message`, and
/// returns what is later switched back to the caller.
pub(crate) fn transfer(target: *const Inner, message: Message) -> Value {
    let current = thread::current_ptr();
    let live = first_live(target);
    // A throw into a dead greenlet is handled as its death would be (as in
    // Python's greenlet): GreenletExit becomes a plain return value (SPEC S6)
    // and anything else is raised in the first live ancestor.
    let message = match message {
        Message::Throw(payload) if live != target => death_by_panic(payload),
        message => message,
    };
    let target = live;
    if target == current {
        let message = trace_self(current, message);
        return deliver(message);
    }
    // SAFETY: `current` is live (CURRENT owns a reference) and stays suspended
    // on this very frame until the switch returns.
    let received = unsafe { switch_to(current, target, message, false) };
    deliver(received)
}

/// Raises or returns a message on the side that received it.
#[inline]
fn deliver(message: Message) -> Value {
    match message {
        Message::Value(v) => v,
        Message::Throw(payload) => panic::resume_unwind(payload),
    }
}

/// A switch or throw into the current greenlet: traced, then handed straight back.
fn trace_self(current: *const Inner, message: Message) -> Message {
    if !thread::tracing() {
        return message;
    }
    // SAFETY: current is live; the handle's count is ours.
    let origin = unsafe { Greenlet::from_raw_clone(current) };
    call_tracer(message, &origin)
}

/// The switch proper, seen from the side being suspended. Returns the message
/// that resumes us, after the resumed-side bookkeeping.
///
/// # Safety
/// `current` must be the running greenlet and `target` a live, not running,
/// not dead greenlet of this thread.
#[inline]
unsafe fn switch_to(
    current: *const Inner,
    target: *const Inner,
    message: Message,
    dying: bool,
) -> Message {
    // SAFETY: per the contract both are live.
    let (cur, tgt) = unsafe { (&*current, &*target) };
    if tgt.state.get() == State::Unstarted {
        tgt.state.set(State::Started);
    }
    let transfer = Transfer {
        origin: current,
        message: ManuallyDrop::new(message),
        origin_died: dying,
    };
    // A slab stack has no guard page: before anything else can run (and
    // possibly on a neighbour's stack), make sure we did not run off its end.
    // SAFETY: only a switch or a death writes the stack slot, and neither is
    // under way on `cur`, which is running this very code.
    if let Some(stack) = unsafe { &*cur.stack.as_ptr() } {
        stack.check_canary();
    }
    // CURRENT's reference moves into `transfer.origin`; CURRENT gets a new one on target.
    // SAFETY: target is live.
    unsafe { Inner::inc_strong(target) };
    thread::set_current(target);
    #[cfg(feature = "asan")]
    let mut fiber = crate::asan::Suspended::fresh();
    #[cfg(feature = "asan")]
    crate::asan::start_switch(&mut fiber, tgt, dying);
    // SAFETY: `cur.sp` is where the resumer will look for our stack pointer;
    // `tgt.sp` holds a frame saved by the switch (suspended) or made by
    // init_stack (unstarted), not resumed since. Nothing here can unwind.
    let word = unsafe {
        arch::switch(
            cur.sp.as_ptr(),
            tgt.sp.get(),
            &transfer as *const Transfer as usize,
        )
    };
    // An introspection request (src/introspect.rs) is answered here, on this
    // stack, without resuming the caller; `word` is then the real switch's.
    // SAFETY: `current` is the greenlet whose pending switch received `word`.
    let word = unsafe { crate::introspect::serve(word, current) };
    #[cfg(feature = "asan")]
    // SAFETY: the word is a Transfer pointer from whoever resumed us.
    crate::asan::finish_switch(&fiber, unsafe { (*(word as *const Transfer)).origin });
    // Whoever resumed us has already moved the message out of `transfer`
    // (it is ManuallyDrop, so nothing is dropped twice here).
    // SAFETY: the word is a Transfer pointer from whoever resumed us.
    unsafe { after_switch(word) }
}

/// Resumed-side bookkeeping: copy the transfer out, recycle a dead origin's
/// stack, run the tracer, release the origin's reference.
///
/// # Safety
/// `word` must be the address of a live [`Transfer`] not read before.
unsafe fn after_switch(word: usize) -> Message {
    let transfer = word as *mut Transfer;
    // SAFETY: the Transfer sits on the suspended (or dead) origin's stack,
    // untouched until it is resumed; we read each field exactly once.
    let (origin_ptr, mut message, died) = unsafe {
        (
            (*transfer).origin,
            ManuallyDrop::take(&mut (*transfer).message),
            (*transfer).origin_died,
        )
    };
    // SAFETY: transfer.origin carries the strong reference CURRENT held.
    let origin = unsafe { Greenlet::from_raw(origin_ptr) };
    if died {
        // Nothing runs on a dead greenlet's stack any more: recycle it now
        // rather than when its last handle drops (SPEC S2).
        if let Some(stack) = origin.inner().stack.take() {
            stack::release(stack);
        }
    }
    if thread::tracing() {
        message = call_tracer(message, &origin);
    }
    // May be the origin's last handle: dropping it can kill it (SPEC S10),
    // which switches away and back, so it comes after all other bookkeeping.
    drop(origin);
    message
}

/// Calls the tracer with `(event, origin, current)`. A tracer that panics is
/// uninstalled and its panic replaces the message (SPEC S11).
#[cold]
fn call_tracer(message: Message, origin: &Greenlet) -> Message {
    let Some(tracer) = thread::tracer() else {
        return message;
    };
    let target = Greenlet::current();
    let event = message.event();
    match panic::catch_unwind(AssertUnwindSafe(|| tracer(event, origin, &target))) {
        Ok(()) => message,
        Err(payload) => {
            thread::settrace(None);
            drop_message(message);
            Message::Throw(payload)
        }
    }
}

/// The first Rust frame on every greenlet stack, called by the trampoline.
///
/// # Safety
/// Only the trampoline calls this, with the transfer word of the first switch
/// into the greenlet and its `Inner` as `arg`.
pub(crate) unsafe extern "C" fn entry(word: usize, arg: usize) -> ! {
    let me = arg as *const Inner;
    #[cfg(feature = "asan")]
    // SAFETY: the first switch into a greenlet passes a Transfer.
    crate::asan::finish_switch(&crate::asan::Suspended::fresh(), unsafe {
        (*(word as *const Transfer)).origin
    });
    // SAFETY: the first switch into a greenlet passes a Transfer.
    let message = unsafe { after_switch(word) };
    // SAFETY: CURRENT owns a reference to `me` while it runs.
    let run = unsafe { (*me).run.take() };
    let outcome = match (message, run) {
        (Message::Value(arg), Some(run)) => {
            match panic::catch_unwind(AssertUnwindSafe(move || run(arg))) {
                Ok(result) => Message::Value(result),
                Err(payload) => death_by_panic(payload),
            }
        }
        // Thrown into before it started: `run` is never called (SPEC S7).
        (Message::Throw(payload), run) => {
            if let Some(run) = run {
                drop_quietly(run);
            }
            death_by_panic(payload)
        }
        (Message::Value(_), None) => {
            unreachable!("greenlet invariant: an unstarted greenlet has its run closure")
        }
    };
    // Greenlet-local values die with the greenlet, on its own stack.
    quietly(|| crate::local::clear(me as usize));
    // SAFETY: `me` is the running greenlet, about to die.
    unsafe { die(me, outcome) }
}

/// What the parent receives from a greenlet killed by `payload` (SPEC S5, S6).
fn death_by_panic(payload: Box<dyn Any + Send>) -> Message {
    match payload.downcast::<GreenletExit>() {
        Ok(exit) => Message::Value(Value::new(*exit)),
        Err(payload) => Message::Throw(payload),
    }
}

/// Marks `me` dead and leaves its stack for good, handing `outcome` to the
/// first live ancestor. The resumed side recycles the stack.
///
/// # Safety
/// `me` must be the running greenlet and this must be the last thing its
/// stack does: no live value with a destructor may remain on it.
unsafe fn die(me: *const Inner, outcome: Message) -> ! {
    // SAFETY: CURRENT owns a reference to `me`.
    let inner = unsafe { &*me };
    inner.state.set(State::Dead);
    let parent = first_live(
        inner
            .parent_ptr()
            .expect("greenlet invariant: only main has no parent"),
    );
    // SAFETY: `me` is current; `parent` is live (reachable through our parent
    // link, which stays in place after death) and, being an ancestor of the
    // running greenlet, it is not running.
    unsafe { switch_to(me, parent, outcome, true) };
    unreachable!("greenlet invariant: a dead greenlet is never resumed")
}

/// Drops a message, containing any panic raised by its destructor.
fn drop_message(message: Message) {
    match message {
        Message::Value(v) => drop_quietly(v),
        Message::Throw(p) => drop_payload(p),
    }
}

/// Drops a panic payload whose own destructor might panic.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    drop_quietly(payload)
}

fn drop_quietly<T>(value: T) {
    quietly(move || drop(value))
}

/// Runs a cleanup step whose destructors might panic, containing the panic.
fn quietly(cleanup: impl FnOnce()) {
    if let Err(mut payload) = panic::catch_unwind(AssertUnwindSafe(cleanup)) {
        crate::report("greenlet: a destructor panicked while a value was being discarded; that panic is ignored");
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
