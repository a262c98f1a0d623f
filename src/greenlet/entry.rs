//! The bottom of every greenlet stack: [`entry`] runs the greenlet's closure
//! inside `catch_unwind`, and [`die`] hands the outcome to the parent with the
//! greenlet's last switch.
//!
//! The closure does not live in a box: `Builder::spawn` moves it to the top of
//! the greenlet's own stack, and `entry` is monomorphised for its type, so
//! starting a greenlet allocates nothing and calls the closure directly.

use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};

use super::object::{first_live, Inner, State};
use super::report::{drop_quietly, quietly};
use super::switch::{death_by_panic, is_value, leave_for_good, resumed_message, Message, Record};
use super::thread;
use super::value::Value;
use crate::arch::Transfer;
use crate::stack::{self, sanitizer::FakeStack};

/// The first Rust frame on every greenlet stack, entered by the trampoline
/// with the words of the first switch into the greenlet and the address of
/// its closure (a `F` at the top of its stack).
///
/// # Safety
/// Only the trampoline calls this, through the initial frame `Builder::spawn`
/// made for a closure of type `F`.
pub(crate) unsafe extern "C" fn entry<F, R>(a: usize, b: usize, c: usize, closure: usize) -> !
where
    F: FnOnce(Value) -> R + 'static,
    R: 'static,
{
    let me = thread::current_unchecked();
    let mut fake = FakeStack::fresh();
    let got = Transfer::new(a, b, c);
    let message = if is_value(&got) {
        // SAFETY: untagged words from the switch that started us: a value.
        Message::Value(unsafe { Value::from_transfer(got) })
    } else {
        // SAFETY: the words of the switch that started us, not read before.
        unsafe { resumed_message(got, &mut fake) }
    };
    // SAFETY: the running greenlet is live. Started: the closure is ours now.
    unsafe { (*me).closure.set(None) };
    // SAFETY: spawn moved an F to `closure`, for this call to take once; the
    // slot was cleared above, so nothing else drops it.
    let run = unsafe { (closure as *mut F).read() };
    let outcome = match message {
        Message::Value(arg) => match panic::catch_unwind(AssertUnwindSafe(move || run(arg))) {
            Ok(result) => {
                let result = Value::new(result);
                clear_locals(me);
                // SAFETY: `me` is the running greenlet, and nothing with a
                // destructor is left on this stack but `result`, handed over.
                unsafe { die_returning(me, result) }
            }
            Err(payload) => death_by_panic(payload),
        },
        // Thrown into before it started: `run` is never called (SPEC S7).
        Message::Throw(payload) => {
            drop_quietly(run);
            death_by_panic(payload)
        }
    };
    clear_locals(me);
    // SAFETY: as above.
    unsafe { die(me, outcome) }
}

/// Greenlet-local values die with the greenlet, on its own stack.
#[inline(always)]
fn clear_locals(me: *const Inner) {
    // SAFETY: the running greenlet is live.
    let locals = unsafe { &(*me).locals };
    if !locals.is_empty() {
        quietly(|| locals.clear());
    }
}

/// The common death: `run` returned `result`. Hands it over like any fast
/// switch, after giving the stack back to the pool itself (nothing can take
/// it from the pool before this greenlet has left it, and pooling unmaps
/// nothing). Everything else about a death (a tracer, the sanitizer, no
/// handle left to this greenlet, a full pool) goes through [`die`], and the
/// resumed side recycles the stack.
///
/// # Safety
/// As for [`die`].
// Inline, in `entry`: a frame called for the death would leave its return
// address on top of the CPU's return-address predictor, and the death's YIELD
// returns to the parent's pending RESUME (a mispredicted return on every
// death: 7 of the 29 ns of a create + run + die, docs/benchmarks.md). Its
// switch declares no clobbers (it never comes back), so `entry`, the bottom
// frame of every greenlet stack, saves only the registers its own code uses
// (on x86_64 all six, for the death's code; it was two), not every FP and
// vector register a clobber list names (480 bytes on powerpc64le).
#[inline(always)]
unsafe fn die_returning(me: *const Inner, result: Value) -> ! {
    // SAFETY: the running greenlet is live.
    let inner = unsafe { &*me };
    if thread::slow_flags() == 0 && inner.strong.get() != 0 {
        if let Some(own) = inner.stack.take() {
            match stack::pool(own) {
                Ok(()) => {
                    let (parent, _) = mark_dead(inner);
                    // The value goes in registers: nothing is left on this
                    // stack for the resumed side to read.
                    // SAFETY: as in `die`.
                    unsafe { leave_for_good(me, parent, result.into_transfer()) }
                }
                Err(own) => inner.stack.set(Some(own)),
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { die(me, Message::Value(result)) }
}

thread_local! {
    /// Where a dying greenlet leaves its last [`Record`]. Not on the dying
    /// stack: under AddressSanitizer the frame holding it would sit on the
    /// greenlet's fake stack, which ASan frees at this very switch, and the
    /// resumed side would read freed memory. One slot per thread suffices:
    /// the resumed side reads the record before anything else can run. A
    /// `const`-initialised `MaybeUninit` has no destructor, so the slot stays
    /// usable while thread-local destructors run.
    static LAST_RECORD: std::cell::UnsafeCell<MaybeUninit<Record>> =
        const { std::cell::UnsafeCell::new(MaybeUninit::uninit()) };
}

/// Marks `me` dead and leaves its stack for good, handing `outcome` to the
/// first live ancestor with a slow record: the resumed side recycles the
/// stack and does the rest of the bookkeeping.
///
/// # Safety
/// `me` must be the running greenlet and this must be the last thing its
/// stack does: no live value with a destructor may remain on it.
#[cold]
#[inline(never)]
unsafe fn die(me: *const Inner, outcome: Message) -> ! {
    // SAFETY: the running greenlet is live.
    let (parent, slot) = mark_dead(unsafe { &*me });
    let record = Record::slow(outcome, me, true);
    // SAFETY: the slot is this thread's, and free: the previous death's
    // record was read by its resumed side before anything could run.
    // MaybeUninit never drops what it held, so writing over it is fine.
    unsafe { slot.write(record) };
    // SAFETY: `me` is marked dead; `parent` is live and, being an ancestor
    // of the running greenlet, not running, and not dead (first_live). The
    // record's slot stays in place for the thread's lifetime, and its words
    // go in registers, read by nobody before the resumed side. Nothing
    // resumes us again.
    unsafe { leave_for_good(me, parent, Record::words(slot)) }
}

/// Marks the running greenlet dead; returns where its death goes (the first
/// live ancestor, SPEC S2 and S4) and the thread's slot for its last record.
#[inline(always)]
fn mark_dead(inner: &Inner) -> (*const Inner, *mut Record) {
    inner.state.set(State::Dead);
    let parent = inner
        .parent_ptr()
        .expect("greenlet invariant: only main has no parent");
    // SAFETY: the parent link keeps the parent live.
    let parent = unsafe { first_live(parent) };
    (parent, LAST_RECORD.with(|slot| slot.get().cast::<Record>()))
}
