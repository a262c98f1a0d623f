//! Moving control between greenlets: the switch, its fast path, and the slow
//! path that handles everything rare (SPEC §4).
//!
//! A switch hands the resumed side three words in registers
//! ([`arch::Transfer`]). The third says what they are, by two tag bits below
//! an address that is at least 4-aligned:
//!
//! * no tag: the fast path. The words are a [`Value`] (its two slot words and
//!   its type descriptor); the resumed side rebuilds it and returns it.
//!   Nothing else happened.
//! * [`SLOW`]: the third word is the address of a [`Record`] on the suspended
//!   side's stack (which cannot change while it is suspended) that also says
//!   who switched, whether it died, and whether the value is a thrown payload.
//!   The resumed side does the bookkeeping ([`resumed_message`]): recycle a
//!   dead origin's stack, call the tracer, raise a throw, release or kill an
//!   origin nobody holds any more.
//! * [`INTROSPECT`]: not a switch at all but an introspection request
//!   (`introspect.rs`), answered on this stack before waiting again.
//!
//! Which entry of the assembly a switch uses ([`arch_switch`]): YIELD when
//! the target is the greenlet whose RESUME into the current one is still
//! pending, RESUME otherwise (SPEC §5).
//!
//! The fast path ([`switch_value`]) is taken when a value goes to an unstarted
//! or suspended greenlet and the thread has no "slow path wanted" flag (no
//! tracer, no sanitizer, main greenlet made, and the greenlet being left
//! still has a handle). Each side of the assembly is then a dozen instructions
//! or so (docs/benchmarks.md counts them).
//!
//! Unwinding never crosses the assembly: panics are caught at the bottom of
//! each greenlet's stack (`entry.rs`), carried across as a thrown payload,
//! and raised again with `resume_unwind` on the other side (SPEC S5).

use std::any::Any;
use std::mem::MaybeUninit;
use std::panic;

use super::error::GreenletExit;
use super::introspect::{self, INTROSPECT};
use super::object::{first_live, Greenlet, Inner, State};
use super::report::drop_quietly;
use super::trace::Event;
use super::value::Value;
use super::{thread, trace};
use crate::arch::{self, Transfer};
use crate::stack::{self, sanitizer, sanitizer::FakeStack};

/// Tag: the record carries the slow path's extra fields.
pub(crate) const SLOW: usize = 2;
const TAGS: usize = INTROSPECT | SLOW;

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

/// A slow switch's message: lives on the stack of the side being suspended
/// (or, for a death, in a per-thread slot), for the resumed side to read
/// exactly once.
pub(crate) struct Record {
    /// The value, unless `extra.payload` is a throw.
    value: MaybeUninit<Value>,
    extra: MaybeUninit<Extra>,
}

struct Extra {
    /// A thrown payload instead of `value`.
    payload: Option<Box<dyn Any + Send>>,
    /// The greenlet that switched.
    origin: *const Inner,
    /// The origin has just died: its stack can go back to the pool.
    died: bool,
}

// Two tag bits must fit below a record's address.
const _: () = assert!(std::mem::align_of::<Record>() >= 4);

impl Record {
    pub(crate) fn slow(message: Message, origin: *const Inner, died: bool) -> Record {
        let (value, payload) = match message {
            Message::Value(v) => (MaybeUninit::new(v), None),
            Message::Throw(p) => (MaybeUninit::uninit(), Some(p)),
        };
        Record {
            value,
            extra: MaybeUninit::new(Extra {
                payload,
                origin,
                died,
            }),
        }
    }

    /// The words that send the record at `record`, tagged [`SLOW`].
    #[inline(always)]
    pub(crate) fn words(record: *const Record) -> Transfer {
        Transfer::new(0, 0, record as usize | SLOW)
    }
}

/// Is `t` a plain value, the fast path's words?
#[inline(always)]
pub(crate) fn is_value(t: &Transfer) -> bool {
    t.tag_word() & TAGS == 0
}

/// Suspends `cur` and resumes `tgt` with the words `a`, `b`, `c`, through
/// YIELD when `tgt` is the greenlet whose RESUME into `cur` is still pending,
/// else through RESUME (which makes `cur` that greenlet for `tgt`). Returns
/// the words `cur` is resumed with.
///
/// # Safety
/// `cur` must be the running greenlet's object, already marked suspended or
/// dead, `tgt` a resumable one of this thread, already marked running and
/// current; a record that the words name must stay valid until the resumed
/// side has read it, and nothing may unwind across the switch.
#[inline(always)]
pub(crate) unsafe fn arch_switch(
    cur: &Inner,
    tgt: &Inner,
    a: usize,
    b: usize,
    c: usize,
) -> Transfer {
    let (save_sp, load_sp) = (cur.sp.as_ptr(), tgt.sp.get());
    if std::ptr::eq(cur.resumer.get(), tgt) {
        cur.resumer.set(std::ptr::null());
        // SAFETY: `save_sp` is where whoever resumes `cur` reads its stack
        // pointer; `load_sp` the frame `tgt` saved when it was suspended, or
        // its initial frame (it is resumable). Forwarded otherwise.
        unsafe { arch::yield_to(save_sp, load_sp, a, b, c) }
    } else {
        tgt.resumer.set(cur);
        // SAFETY: as above.
        unsafe { arch::resume(save_sp, load_sp, a, b, c) }
    }
}

/// Switches to (the first live ancestor of) `target` with `value`, and
/// returns what is later switched back to the caller (SPEC S1).
///
/// Always inlined, so that the assembly switch is called from the frame of
/// the code that called `switch`. The switch enters the resumed side with a
/// `jmp`, which leaves the CPU's return-address predictor one entry out of
/// step; a `ret` out of a frame that was suspended across the switch would
/// then be mispredicted, every time. With the switch inlined, the frames
/// around it are the user's own, which usually switch again before they
/// return. Everything rare goes out of line.
#[inline(always)]
pub(crate) fn switch_value(target: *const Inner, value: Value) -> Value {
    // SAFETY: the caller holds a handle to `target`.
    let tgt = unsafe { &*target };
    // The value as the words the switch carries in registers. The ways out
    // of line take the words too, one register each, so that the value is
    // never spilled to memory for their sake on the fast path.
    let [a, b, c] = value.into_transfer().words;
    // One flag word (no tracer, main made, no sanitizer, and the greenlet
    // being left still has a handle: otherwise the side it switches to must
    // release or kill it, which the slow path does) and the target's state.
    if thread::slow_flags() == 0 && tgt.state.get().resumable() {
        // SAFETY: without the NO_MAIN flag CURRENT is set, and it is live
        // (nothing frees a running greenlet).
        let cur = unsafe { &*thread::current_unchecked() };
        cur.state.set(State::Suspended);
        tgt.state.set(State::Running);
        thread::set_current(target);
        // SAFETY: `cur` is running, now marked suspended; `tgt` is resumable
        // (not running, not dead), now running and current. Nothing here
        // unwinds.
        let got = unsafe { arch_switch(cur, tgt, a, b, c) };
        let [a, b, c] = got.words;
        let got = if is_value(&got) {
            got
        } else {
            let mut out = MaybeUninit::uninit();
            // SAFETY: the words our pending switch was resumed with.
            if let Some(thrown) = unsafe { resumed_slow(a, b, c, &mut out) } {
                // Raised from this frame, the caller's: the unwinder then
                // has no frame of ours to walk (about 3,000 instructions
                // each, in a kill or a throw).
                panic::resume_unwind(thrown);
            }
            // SAFETY: written by resumed_slow, which returned no throw.
            unsafe { out.assume_init() }
        };
        // SAFETY: untagged words from whoever resumed us, or the words of
        // the value that the bookkeeping delivered: a value.
        return unsafe { Value::from_transfer(got) };
    }
    let mut out = MaybeUninit::uninit();
    // SAFETY: the words of `value`, which is not used again.
    unsafe { switch_value_slow(a, b, c, target, &mut out) };
    // SAFETY: written by switch_value_slow, which returned.
    let got = unsafe { out.assume_init() };
    // SAFETY: the words of the value the slow path returned.
    unsafe { Value::from_transfer(got) }
}

/// [`switch_value`]'s way to the slow path, with the value as its words.
///
/// # Safety
/// `a`, `b`, `c` must be the words of a [`Value::into_transfer`], not taken
/// back elsewhere.
#[cold]
#[inline(never)]
// The words first: they are then already in the registers that the switch
// itself takes them in, and a loop that switches keeps them there.
unsafe fn switch_value_slow(
    a: usize,
    b: usize,
    c: usize,
    target: *const Inner,
    out: &mut MaybeUninit<Transfer>,
) {
    // SAFETY: forwarded.
    let value = unsafe { Value::from_transfer(Transfer::new(a, b, c)) };
    out.write(switch_slow(target, Message::Value(value)).into_transfer());
}

/// [`switch_value`]'s way to the resumed side's bookkeeping, with the words
/// the switch brought: writes the value to return to `out`, or returns the
/// payload to raise.
///
/// # Safety
/// As for [`resumed_message`], for a greenlet that suspended in
/// [`switch_value`]'s fast path.
#[cold]
#[inline(never)]
unsafe fn resumed_slow(
    a: usize,
    b: usize,
    c: usize,
    out: &mut MaybeUninit<Transfer>,
) -> Option<Box<dyn Any + Send>> {
    // SAFETY: forwarded; the fast path keeps no fake stack.
    match unsafe { resumed_message(Transfer::new(a, b, c), &mut FakeStack::fresh()) } {
        Message::Value(v) => {
            out.write(v.into_transfer());
            None
        }
        Message::Throw(payload) => Some(payload),
    }
}

/// The slow path of a switch or throw: every case the fast path leaves out.
#[cold]
#[inline(never)]
pub(crate) fn switch_slow(target: *const Inner, mut message: Message) -> Value {
    let current = thread::current_ptr();
    // SAFETY: the caller holds a handle to `target`.
    let live = if unsafe { (*target).state.get() } == State::Dead {
        redirect_from_dead(target, &mut message)
    } else {
        target
    };
    if live == current {
        return deliver(trace_self(current, message));
    }
    let mut fake = FakeStack::fresh();
    let record = Record::slow(message, current, false);
    // SAFETY: `current` is running and `live` is resumable: not dead
    // (first_live), not running (only `current` runs).
    unsafe { (*current).state.set(State::Suspended) };
    // SAFETY: as above; the record stays on this frame while we are suspended.
    let got = unsafe { leave(current, live, Record::words(&record), &mut fake) };
    // SAFETY: the words our pending switch was resumed with.
    deliver(unsafe { resumed_message(got, &mut fake) })
}

/// The last steps of a slow switch: tells the sanitizer, makes `target` the
/// running greenlet and switches to it. Returns the words we are resumed
/// with.
///
/// # Safety
/// `current` must be the running greenlet, already marked suspended, and
/// `target` a resumable greenlet of this thread; what `send` points at (a
/// record) must stay valid until the resumed side has read it.
#[inline(always)]
pub(crate) unsafe fn leave(
    current: *const Inner,
    target: *const Inner,
    send: Transfer,
    fake: &mut FakeStack,
) -> Transfer {
    // SAFETY: both are live per the contract.
    let (cur, tgt) = unsafe { (&*current, &*target) };
    let [a, b, c] = send.words;
    hand_over(tgt, Some(fake));
    // SAFETY: per the contract; see switch_value.
    unsafe { arch_switch(cur, tgt, a, b, c) }
}

/// A death's last switch: makes `target` the running greenlet and switches
/// to it through YIELD, for good. The block that enters YIELD never returns,
/// so it declares nothing clobbered, and the dying stack's bottom frame,
/// which calls this inline, keeps no registers for it (`arch`).
///
/// # Safety
/// `current` must be the running greenlet, already marked dead, with
/// nothing left on its stack to drop, and `target` a resumable greenlet of
/// this thread; what `send` points at must stay valid until the resumed side
/// has read it.
#[inline(always)]
pub(crate) unsafe fn leave_for_good(
    current: *const Inner,
    target: *const Inner,
    send: Transfer,
) -> ! {
    // SAFETY: both are live per the contract.
    let (cur, tgt) = unsafe { (&*current, &*target) };
    // Plain words from here on: the sanitizer frees this stack's fake frames
    // below, and in an unoptimised build a `Transfer` kept past that point
    // would live in one of them (an aggregate's stack slot is instrumented,
    // a word's is not).
    let [a, b, c] = send.words;
    // The resumer links (SPEC §10), which the trampoline's unwind
    // information follows: the dead greenlet's becomes null (its stack is
    // gone). The target's is kept only when the target is the one that
    // resumed the dead greenlet (this YIELD pairs with that RESUME); else it
    // names a greenlet that did not resume it this time, and is cleared, so
    // that a backtrace in the target ends at its entry.
    if !std::ptr::eq(cur.resumer.get(), tgt) {
        tgt.resumer.set(std::ptr::null());
    }
    cur.resumer.set(std::ptr::null());
    let (save_sp, load_sp) = (cur.sp.as_ptr(), tgt.sp.get());
    hand_over(tgt, None);
    // SAFETY: `save_sp` is the dead greenlet's own slot, which nobody reads
    // again; `load_sp` the frame `tgt` saved when it was suspended (it is
    // resumable, per the contract). Nothing resumes the dead greenlet.
    unsafe { arch::yield_for_good(save_sp, load_sp, a, b, c) }
}

/// Makes `tgt` the running greenlet and tells the sanitizer: the last steps
/// before the assembly switch. `fake` is where the greenlet being left keeps
/// its fake stack, `None` when it leaves its stack for good.
#[inline(always)]
fn hand_over(tgt: &Inner, fake: Option<&mut FakeStack>) {
    let bounds = tgt.stack_bounds();
    tgt.state.set(State::Running);
    thread::set_current(tgt);
    // A resumable greenlet always has a handle.
    thread::clear_current_unowned();
    // Last before the switch: for a dying greenlet this frees its fake stack
    // under AddressSanitizer, and nothing may use that stack afterwards.
    sanitizer::start_switch(fake, bounds);
}

/// A switch or throw into a dead greenlet goes to its first live ancestor
/// (SPEC S4). A throw is handled as the dead greenlet's death would be (as in
/// Python's greenlet): GreenletExit becomes a plain return value (SPEC S6)
/// and anything else is raised in that ancestor.
fn redirect_from_dead(target: *const Inner, message: &mut Message) -> *const Inner {
    if let Message::Throw(_) = message {
        let Message::Throw(payload) = std::mem::replace(message, Message::Value(Value::new(())))
        else {
            unreachable!()
        };
        *message = death_by_panic(payload);
    }
    // SAFETY: the caller holds a handle to `target`.
    unsafe { first_live(target) }
}

/// What the parent receives from a greenlet killed by `payload` (SPEC S5, S6).
pub(crate) fn death_by_panic(payload: Box<dyn Any + Send>) -> Message {
    match payload.downcast::<GreenletExit>() {
        Ok(exit) => Message::Value(Value::new(*exit)),
        Err(payload) => Message::Throw(payload),
    }
}

/// The resumed side's bookkeeping for a tagged word: tells the sanitizer,
/// answers introspection requests, then takes the message from whoever
/// resumed us, recycles a dead origin's stack, runs the tracer, and releases
/// the origin last (dropping it can kill it, SPEC S10, which switches again).
///
/// # Safety
/// `got` must be what the pending switch of the running greenlet (which
/// suspended with `fake`, or is starting) was resumed with, not read before.
#[cold]
#[inline(never)]
pub(crate) unsafe fn resumed_message(mut got: Transfer, fake: &mut FakeStack) -> Message {
    loop {
        if sanitizer::ACTIVE {
            // SAFETY: forwarded: unread words, a request or a slow record.
            let origin = unsafe { origin_of(got.tag_word()) };
            // SAFETY: the origin is live (it just switched here).
            sanitizer::finish_switch(fake, unsafe { (*origin).stack_bounds() }.is_none());
        }
        if got.tag_word() & INTROSPECT == 0 {
            break;
        }
        // SAFETY: forwarded; the running greenlet is the one asked.
        got = unsafe { introspect::answer(got.tag_word(), thread::current_unchecked(), fake) };
    }
    let word = got.tag_word();
    if word & SLOW == 0 {
        // SAFETY: untagged words: a value.
        return Message::Value(unsafe { Value::from_transfer(got) });
    }
    let record = (word & !TAGS) as *const Record;
    // SAFETY: a SLOW record has its extra fields, and its value unless it is
    // a throw; each is read exactly once.
    let (message, origin, died) = unsafe {
        let Extra {
            payload,
            origin,
            died,
        } = (*record).extra.assume_init_read();
        let message = match payload {
            Some(p) => Message::Throw(p),
            None => Message::Value((*record).value.assume_init_read()),
        };
        (message, origin, died)
    };
    // A strong handle for the tracer, and to release the origin afterwards if
    // no one else holds it.
    // SAFETY: the origin is live: nothing has run since it switched here.
    let origin = unsafe { Greenlet::from_raw_clone(origin) };
    if died {
        // Nothing runs on a dead greenlet's stack any more: recycle it now
        // rather than when its last handle drops (SPEC S2).
        if let Some(dead_stack) = origin.inner().stack.take() {
            stack::release(dead_stack);
        }
    }
    let message = if thread::tracing() {
        match trace::call(message.event(), &origin) {
            Ok(()) => message,
            Err(payload) => {
                drop_message(message);
                Message::Throw(payload)
            }
        }
    } else {
        message
    };
    drop(origin);
    message
}

/// The greenlet that sent `word`: the requester of an introspection request
/// or the origin of a slow record (the only words the sanitizer sees).
///
/// # Safety
/// `word` must be what a pending switch was resumed with, not yet acted on.
unsafe fn origin_of(word: usize) -> *const Inner {
    if word & INTROSPECT != 0 {
        // SAFETY: forwarded.
        return unsafe { introspect::requester_of(word) };
    }
    debug_assert!(word & SLOW != 0, "with the sanitizer every switch is slow");
    // SAFETY: a slow record has its extra fields.
    unsafe {
        (*((word & !TAGS) as *const Record))
            .extra
            .assume_init_ref()
            .origin
    }
}

/// Raises or returns a message on the side that received it.
#[inline]
fn deliver(message: Message) -> Value {
    match message {
        Message::Value(v) => v,
        Message::Throw(payload) => panic::resume_unwind(payload),
    }
}

/// A switch or throw into the current greenlet: traced, then handed straight
/// back (SPEC S1, S7, S11).
fn trace_self(current: *const Inner, message: Message) -> Message {
    if !thread::tracing() {
        return message;
    }
    // SAFETY: current is running, so live; the handle's count is ours.
    let origin = unsafe { Greenlet::from_raw_clone(current) };
    match trace::call(message.event(), &origin) {
        Ok(()) => message,
        Err(payload) => {
            drop_message(message);
            Message::Throw(payload)
        }
    }
}

/// Drops a message, containing any panic raised by its destructor.
fn drop_message(message: Message) {
    match message {
        Message::Value(v) => drop_quietly(v),
        Message::Throw(p) => drop_quietly(p),
    }
}
