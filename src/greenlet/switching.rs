//! Moving control between greenlets: switch, throw, start, death, and the
//! bookkeeping either side of the assembly switch.
//!
//! Every switch hands the resumed side a pointer to a [`Transfer`] that lives on
//! the suspended side's stack (which cannot change while it is suspended). The
//! resumed side copies it out first thing, in [`resumed`] (or [`after_switch`]
//! when a greenlet starts), and only then does anything that could switch
//! again.
//!
//! Unwinding never crosses the assembly: panics are caught at the bottom of each
//! greenlet's stack in [`entry`], carried across as [`Message::Throw`], and
//! raised again with `resume_unwind` on the other side (SPEC S5).

use std::any::Any;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};

use crate::arch;
use crate::greenlet::error::GreenletExit;
use crate::greenlet::handle::{Greenlet, Inner, State};
use crate::greenlet::thread::{self, Event};
use crate::greenlet::value::Value;
use crate::stack;

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
    /// The suspended side's AddressSanitizer fake-stack handle.
    #[cfg(feature = "asan")]
    fiber: crate::stack::sanitizer::Suspended,
}

impl Transfer {
    fn new(message: Message) -> Transfer {
        Transfer {
            origin: std::ptr::null(),
            message: ManuallyDrop::new(message),
            origin_died: false,
            #[cfg(feature = "asan")]
            fiber: crate::stack::sanitizer::Suspended::fresh(),
        }
    }
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
///
/// Always inlined, so that the assembly switch is called from the frame of
/// the code that called `switch` or `throw`. The switch enters the resumed
/// side with a `jmp`, which leaves the CPU's return-address predictor one
/// entry out of step; a `ret` out of a frame that was suspended across the
/// switch would then be mispredicted, every time. With the switch inlined,
/// the frames around it are the user's own, which usually switch again
/// before they return, and the bookkeeping after it ([`resumed`]) is an
/// ordinary call that returns before the next switch, so its `ret` is
/// predicted. The checks before it are inlined too; the rare routes (a dead
/// target, a switch to self) go out of line through [`reroute`].
#[inline(always)]
pub(crate) fn transfer(target: *const Inner, message: Message) -> Value {
    let mut transfer = Transfer::new(message);
    let current = thread::current_ptr();
    // SAFETY: `target` is live (the caller holds a handle to it).
    let route = if unsafe { (*target).state.get() } != State::Dead && target != current {
        transfer.origin = current;
        // SAFETY: `current` is running; `target` is live, not running (it is
        // not current) and not dead; `transfer` stays on this frame.
        Some(unsafe { arm(current, target, &mut transfer) })
    } else {
        // SAFETY: as above.
        unsafe { reroute(target, current, &mut transfer) }
    };
    match route {
        Some((save_sp, load_sp)) => {
            // SAFETY: `arm` made the target current and gave us its saved
            // stack pointer, and `save_sp` is where its resumer will look for
            // ours. The transfer stays on this frame while we are suspended.
            // Nothing here can unwind.
            let word = unsafe {
                arch::switch(save_sp, load_sp, std::ptr::addr_of_mut!(transfer) as usize)
            };
            // SAFETY: `word` is what our pending switch was resumed with, and
            // `transfer` is the record we were suspended with.
            unsafe { resumed(word, &transfer) }
        }
        // SAFETY: `reroute` left the message in place for a switch to self.
        None => unsafe { stay(&mut transfer) },
    }
}

/// The rare routes, out of line: a dead target (its first live ancestor gets
/// the switch) and the current greenlet as the target. Returns what [`arm`]
/// returns, or `None` for a switch to the current greenlet, with the message
/// left in `transfer` for [`stay`].
///
/// # Safety
/// `target` must be live, `current` the running greenlet and `transfer` a
/// fresh record on the caller's frame, which stays in place until the switch
/// returns.
#[cold]
#[inline(never)]
unsafe fn reroute(
    target: *const Inner,
    current: *const Inner,
    transfer: &mut Transfer,
) -> Option<(*mut *mut u8, *mut u8)> {
    // SAFETY: live per the contract.
    let live = if unsafe { (*target).state.get() } == State::Dead {
        redirect_from_dead(target, transfer)
    } else {
        target
    };
    transfer.origin = current;
    if live == current {
        return None;
    }
    // SAFETY: `live` is live, not dead (first_live) and not running.
    Some(unsafe { arm(current, live, transfer) })
}

/// A switch or throw into a dead greenlet goes to its first live ancestor
/// (SPEC S4). A throw is handled as the dead greenlet's death would be (as in
/// Python's greenlet): GreenletExit becomes a plain return value (SPEC S6)
/// and anything else is raised in that ancestor.
#[cold]
#[inline(never)]
fn redirect_from_dead(target: *const Inner, transfer: &mut Transfer) -> *const Inner {
    if matches!(*transfer.message, Message::Throw(_)) {
        // SAFETY: the message is taken once and replaced at once.
        if let Message::Throw(payload) = unsafe { ManuallyDrop::take(&mut transfer.message) } {
            transfer.message = ManuallyDrop::new(death_by_panic(payload));
        }
    }
    first_live(target)
}

/// The last steps before the assembly switch from `current` to `target`,
/// shared by switches and deaths: marks the target started, moves CURRENT to
/// the target and tells AddressSanitizer.
///
/// # Safety
/// `current` must be the running greenlet and `target` a live, not running,
/// not dead greenlet of this thread; `transfer.origin` must be `current`.
#[inline(always)]
unsafe fn arm(
    current: *const Inner,
    target: *const Inner,
    transfer: &mut Transfer,
) -> (*mut *mut u8, *mut u8) {
    // SAFETY: per the contract both are live.
    let (cur, tgt) = unsafe { (&*current, &*target) };
    if tgt.state.get() == State::Unstarted {
        tgt.state.set(State::Started);
    }
    // CURRENT's reference moves into `transfer.origin`; CURRENT gets a new one on target.
    // SAFETY: target is live.
    unsafe { Inner::inc_strong(target) };
    thread::set_current(target);
    #[cfg(feature = "asan")]
    crate::stack::sanitizer::start_switch(&mut transfer.fiber, tgt, transfer.origin_died);
    #[cfg(not(feature = "asan"))]
    let _ = transfer;
    (cur.sp.as_ptr(), tgt.sp.get())
}

/// The resumed side's bookkeeping after a switch, out of line: answers
/// introspection requests, then takes the message from whoever resumed us and
/// raises or returns it.
///
/// # Safety
/// `word` must be what the pending switch of the greenlet that suspended with
/// `mine` was resumed with.
#[inline(never)]
unsafe fn resumed(word: usize, mine: &Transfer) -> Value {
    // Tell ASan which stack we are on before anything else runs, introspection
    // requests included (serve announces its own switches).
    #[cfg(feature = "asan")]
    // SAFETY: `word` is what our pending switch was resumed with.
    crate::stack::sanitizer::finish_switch(&mine.fiber, unsafe { origin_of(word) });
    // An introspection request (src/introspect.rs) is answered here, on this
    // stack, without resuming the caller; `word` is then the real switch's.
    // SAFETY: `mine.origin` is the greenlet whose pending switch received `word`.
    let word = unsafe { crate::greenlet::introspect::serve(word, mine.origin) };
    // Whoever resumed us has already moved our message out of `mine` (it is
    // ManuallyDrop, so nothing is dropped twice).
    let theirs = word as *mut Transfer;
    // SAFETY: the word is a Transfer pointer from whoever resumed us, read once.
    if unsafe { !(*theirs).origin_died && matches!(*(*theirs).message, Message::Value(_)) } {
        // The common case, kept short: a value from a live greenlet, moved
        // straight out rather than through a `Message` and after_switch
        // (measured: about 30 -> 26 ns per round trip in a loop).
        // SAFETY: as above; the message is a value, moved out exactly once,
        // and the origin carries the strong reference CURRENT held.
        let (value, origin) = unsafe {
            let Message::Value(value) = ManuallyDrop::take(&mut (*theirs).message) else {
                unreachable!()
            };
            (value, Greenlet::from_raw((*theirs).origin))
        };
        if thread::tracing() {
            return deliver(after_death_or_traced(origin, Message::Value(value), false));
        }
        // May be the origin's last handle: dropping it can kill it (SPEC S10),
        // which switches away and back, so it comes after all other bookkeeping.
        drop(origin);
        return value;
    }
    // SAFETY: the word is a Transfer pointer from whoever resumed us.
    deliver(unsafe { after_switch(word) })
}

/// The greenlet that resumed a pending switch with `word`: the origin of a
/// transfer, or the requester of an introspection request.
///
/// # Safety
/// `word` must be what a pending switch was resumed with, not yet acted on.
#[cfg(feature = "asan")]
pub(crate) unsafe fn origin_of(word: usize) -> *const Inner {
    // SAFETY: forwarded; an untagged word is a live Transfer.
    unsafe {
        crate::greenlet::introspect::requester_of(word)
            .unwrap_or_else(|| (*(word as *const Transfer)).origin)
    }
}

/// A switch or throw into the current greenlet: traced, then handed straight back.
///
/// # Safety
/// `transfer` must hold the message, not taken yet, and the current greenlet as origin.
#[cold]
#[inline(never)]
unsafe fn stay(transfer: &mut Transfer) -> Value {
    // SAFETY: per the contract, the message is still there; taken once.
    let message = unsafe { ManuallyDrop::take(&mut transfer.message) };
    deliver(trace_self(transfer.origin, message))
}

/// Raises or returns a message on the side that received it.
#[inline]
fn deliver(message: Message) -> Value {
    match message {
        Message::Value(v) => v,
        Message::Throw(payload) => panic::resume_unwind(payload),
    }
}

/// Traces a switch or throw into the current greenlet and hands the message back.
fn trace_self(current: *const Inner, message: Message) -> Message {
    if !thread::tracing() {
        return message;
    }
    // SAFETY: current is live; the handle's count is ours.
    let origin = unsafe { Greenlet::from_raw_clone(current) };
    call_tracer(message, &origin)
}

/// Resumed-side bookkeeping: copy the transfer out, recycle a dead origin's
/// stack, run the tracer, release the origin's reference.
///
/// # Safety
/// `word` must be the address of a live [`Transfer`] not read before.
#[inline(always)]
unsafe fn after_switch(word: usize) -> Message {
    let transfer = word as *mut Transfer;
    // SAFETY: the Transfer sits on the suspended (or dead) origin's stack,
    // untouched until it is resumed; we read each field exactly once.
    let (origin_ptr, message, died) = unsafe {
        (
            (*transfer).origin,
            ManuallyDrop::take(&mut (*transfer).message),
            (*transfer).origin_died,
        )
    };
    // SAFETY: transfer.origin carries the strong reference CURRENT held.
    let origin = unsafe { Greenlet::from_raw(origin_ptr) };
    if died || thread::tracing() {
        return after_death_or_traced(origin, message, died);
    }
    // May be the origin's last handle: dropping it can kill it (SPEC S10),
    // which switches away and back, so it comes after all other bookkeeping.
    drop(origin);
    message
}

/// The rarer half of [`after_switch`]: the origin died, or a tracer is set.
#[cold]
#[inline(never)]
fn after_death_or_traced(origin: Greenlet, mut message: Message, died: bool) -> Message {
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
    // As in after_switch: possibly the last handle, so last.
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
    crate::stack::sanitizer::finish_switch(&crate::stack::sanitizer::Suspended::fresh(), unsafe {
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
    quietly(|| crate::extras::local::clear(me as usize));
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

thread_local! {
    /// Where a dying greenlet leaves its last [`Transfer`] (see [`die`]). A
    /// `const`-initialised `MaybeUninit` has no destructor, so the slot stays
    /// usable while thread-local destructors run.
    static LAST_TRANSFER: std::cell::UnsafeCell<std::mem::MaybeUninit<Transfer>> =
        const { std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()) };
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
    // The last transfer does not live on the dying stack but in a per-thread
    // slot: under AddressSanitizer the frame holding it would sit on the
    // greenlet's fake stack, which ASan frees at this very switch (a dying
    // side hands it no save slot), and the resumed side would read freed
    // memory. One slot per thread suffices: the resumed side copies the
    // transfer out before anything else runs, so no two deaths overlap in it.
    let mut last = Transfer::new(outcome);
    last.origin = me;
    last.origin_died = true;
    let slot = LAST_TRANSFER.with(|slot| slot.get().cast::<Transfer>());
    // SAFETY: the slot is this thread's, and free: the previous death's
    // transfer was copied out by its resumed side before anything could run.
    // MaybeUninit never drops what it held, so writing over it is fine.
    unsafe { slot.write(last) };
    // SAFETY: `me` is current; `parent` is live (reachable through our parent
    // link, which stays in place after death) and, being an ancestor of the
    // running greenlet, it is not running. The slot stays in place for the
    // thread's lifetime.
    let (save_sp, load_sp) = unsafe { arm(me, parent, &mut *slot) };
    // SAFETY: as above; the resumed side recycles this stack, and nothing
    // resumes us again.
    unsafe { arch::switch(save_sp, load_sp, slot as usize) };
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
