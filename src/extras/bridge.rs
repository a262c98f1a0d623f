//! The async bridge (SPEC §9): synchronous code running in a greenlet awaits
//! futures by switching back to the task that polls it — SQLAlchemy's
//! `greenlet_spawn` / `await_only`, for Rust futures on any executor that
//! polls on one thread.
//!
//! ```
//! use std::future::Future;
//! use std::pin::pin;
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake, Waker};
//! use greenlet::bridge;
//!
//! // Sync code, deep inside, waits for a future without blocking the thread.
//! fn legacy_lookup(key: u32) -> u32 {
//!     let fetched = bridge::wait(async move { key * 10 }); // any future
//!     fetched + 1
//! }
//!
//! // The task is an ordinary future: any executor may poll it. Here a
//! // minimal one, for the example.
//! struct Flag;
//! impl Wake for Flag { fn wake(self: Arc<Self>) {} }
//! fn block_on<F: Future>(fut: F) -> F::Output {
//!     let waker = Waker::from(Arc::new(Flag));
//!     let mut cx = Context::from_waker(&waker);
//!     let mut fut = pin!(fut);
//!     loop {
//!         if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) { return v; }
//!     }
//! }
//!
//! let task = bridge::spawn(|| legacy_lookup(4));
//! assert_eq!(block_on(task), 41);
//! ```
//!
//! # How it works
//!
//! A [`Task`] owns a greenlet that has not started. Each poll records the
//! poll's [`Context`] and the polling greenlet in a per-thread slot, then
//! switches into the task's waiting greenlet (its own greenlet the first time;
//! afterwards whichever greenlet of the task last called [`wait`]). [`wait`]
//! pins its future on the waiting greenlet's stack and polls it with that
//! poll's `Context`; while the future is pending, it switches back to the polling greenlet, whose poll returns
//! `Pending`. When the task's greenlet returns, its poll returns `Ready`; when
//! it panics, the panic comes out of the poll.
//!
//! The rules are B1–B6 of the SPEC; docs/semantics.md states them as this
//! module keeps them, including what happens when a greenlet of a task
//! switches out of the task, and compares them with SQLAlchemy's.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic;
use std::pin::{pin, Pin};
use std::ptr;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use crate::greenlet::builder::Builder;
use crate::greenlet::error::{Error, GreenletExit};
use crate::greenlet::handle::Greenlet;
use crate::greenlet::value::Value;

/// What `wait` hands the polling greenlet when its future is pending.
struct Parked;

/// What a poll hands the waiting greenlet when it switches into it.
struct Resume;

/// What the task's greenlet returns: the result of `run`, marked as ours.
struct Done<R>(R);

/// What a task's polls and its waits share.
struct Shared {
    /// The task's own greenlet (taken when the task drops).
    root: Cell<Option<Greenlet>>,
    /// The greenlet the next poll switches into: the root until it starts,
    /// then the one that last parked in `wait`. `None` while a poll runs, and
    /// for good once a poll found the task's greenlets gone astray.
    resume: Cell<Option<Greenlet>>,
    /// The greenlet whose poll is in progress (`None` between polls).
    poller: Cell<Option<Greenlet>>,
    /// That poll's `Context` (null between polls).
    cx: Cell<*const ()>,
    /// Counts polls, so that a wait can tell that its poll is still the one.
    polls: Cell<u64>,
    /// A wait of this task is polling its future (B4: no wait inside it).
    busy: Cell<bool>,
}

thread_local! {
    /// The task whose poll is the innermost one in progress on this thread.
    static POLLING: Cell<Option<Rc<Shared>>> = const { Cell::new(None) };
}

/// The task of the innermost poll in progress, if any.
fn polling() -> Option<Rc<Shared>> {
    POLLING
        .try_with(|slot| {
            let task = slot.take();
            let copy = task.clone();
            slot.set(task);
            copy
        })
        .ok()
        .flatten()
}

impl Shared {
    /// Runs `f` with the root handle (present until the task drops).
    fn with_root<T>(&self, f: impl FnOnce(Option<&Greenlet>) -> T) -> T {
        let root = self.root.take();
        let out = f(root.as_ref());
        self.root.set(root);
        out
    }

    /// Is the current greenlet the root or one of its descendants?
    fn holds_current(&self) -> bool {
        self.with_root(|root| {
            let Some(root) = root else { return false };
            if root.is_current() {
                return true;
            }
            let mut g = Greenlet::current();
            while let Some(parent) = g.parent() {
                if &parent == root {
                    return true;
                }
                g = parent;
            }
            false
        })
    }

    fn root_is_dead(&self) -> bool {
        self.with_root(|root| root.map_or(true, Greenlet::is_dead))
    }
}

/// The task the current greenlet may wait for (B4): a poll of it is in
/// progress, no wait of it is polling a future, and the current greenlet is
/// its root or a descendant of its root.
fn task_for_wait() -> Option<Rc<Shared>> {
    let task = polling()?;
    if task.cx.get().is_null() || task.busy.get() || !task.holds_current() {
        return None;
    }
    Some(task)
}

/// A future run as synchronous code in a greenlet of its own: made by
/// [`spawn`] or [`Builder::spawn_task`], it resolves to what the code
/// returns. Code inside may [`wait`] for other futures.
///
/// A `Task` is `!Send`: it owns a greenlet, which belongs to its thread. It
/// runs under any executor that polls it on that thread (tokio's
/// current-thread runtime with a `LocalSet`, `futures`' `LocalPool`, a plain
/// `block_on`).
///
/// Dropping a task whose greenlet is suspended kills it (SPEC S10):
/// `GreenletExit` is raised from its pending `wait`, every destructor on its
/// stack runs and the future it was waiting for is dropped there. An unpolled
/// task's closure is simply dropped.
///
/// ```
/// use greenlet::bridge;
/// let task = bridge::spawn(|| "not run yet");
/// assert!(format!("{task:?}").contains("unpolled"));
/// drop(task); // the closure is dropped without running
/// ```
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(greenlet::bridge::spawn(|| ())); // error: `Task` owns a greenlet, which is `!Send`
/// ```
pub struct Task<R> {
    shared: Rc<Shared>,
    _result: PhantomData<fn() -> R>,
}

/// Makes a task that will run `run` in a greenlet of its own when first
/// polled (B1). Nothing runs until then.
///
/// ```
/// use greenlet::bridge;
/// let mut pool = futures::executor::LocalPool::new();
/// let task = bridge::spawn(|| {
///     let a = bridge::wait(async { 20 });
///     let b = bridge::wait(futures::future::ready(22));
///     a + b
/// });
/// assert_eq!(pool.run_until(task), 42);
/// ```
///
/// # Panics
/// When no stack can be had for the greenlet; [`Builder::spawn_task`] returns
/// the `io::Error` instead.
pub fn spawn<F, R>(run: F) -> Task<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    match Builder::new().spawn_task(run) {
        Ok(task) => task,
        Err(e) => panic!("greenlet: cannot create a bridge task: {e}"),
    }
}

impl Builder {
    /// Makes a [`bridge::Task`](Task) whose greenlet has this builder's stack
    /// size and kind; see [`bridge::spawn`](spawn). The task manages its
    /// greenlet's parent (each poll makes the polling greenlet the parent, so
    /// that the greenlet's death returns there), so [`Builder::parent`] has no
    /// effect.
    ///
    /// ```
    /// use greenlet::{bridge, Greenlet};
    /// let task = Greenlet::builder().stack_size(64 << 10).spawn_task(|| 7).unwrap();
    /// assert_eq!(futures::executor::block_on(task), 7);
    /// let err = Greenlet::builder().stack_size(usize::MAX).spawn_task(|| ()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn spawn_task<F, R>(self, run: F) -> io::Result<Task<R>>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        // Between polls the parent is the main greenlet, which is never
        // killed: a link to anything else could keep a poller alive (and
        // with it, perhaps, the task itself).
        let root = self
            .parent(&Greenlet::main())
            .spawn(move |_resume: Value| Done(run()))?;
        Ok(Task {
            shared: Rc::new(Shared {
                resume: Cell::new(Some(root.clone())),
                root: Cell::new(Some(root)),
                poller: Cell::new(None),
                cx: Cell::new(ptr::null()),
                polls: Cell::new(0),
                busy: Cell::new(false),
            }),
            _result: PhantomData,
        })
    }
}

/// Undoes a poll's bookkeeping however the poll ends (return or unwind).
struct PollGuard<'a> {
    shared: &'a Rc<Shared>,
    previous: Option<Rc<Shared>>,
    reparented: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        if shared.busy.get() {
            // A wait of this task is in the middle of polling its future with
            // this poll's Context (the future switched out of the task, and
            // control came back here, or this greenlet was killed): ending
            // the poll would leave it a dangling Context.
            eprintln!("greenlet::bridge: a future polled by bridge::wait switched out of its task and its task's poll ended before that future's poll returned; the Context it borrows would dangle, so the process aborts");
            std::process::abort();
        }
        shared.cx.set(ptr::null());
        let poller = shared.poller.take();
        if self.reparented {
            shared.with_root(|root| {
                if let Some(root) = root.filter(|r| !r.is_dead()) {
                    // Main has no ancestors: this cannot close a cycle. The
                    // old link is the running poller's, so dropping it kills
                    // nothing.
                    let _ = root.set_parent(&Greenlet::main());
                }
            });
        }
        let ours = POLLING.try_with(|slot| slot.replace(self.previous.take()));
        // The poller is the running greenlet and the slot's Rc is a copy of
        // the task's: dropping either runs no user code.
        drop(ours);
        drop(poller);
    }
}

impl<R: 'static> Future for Task<R> {
    type Output = R;

    /// Switches into the task's waiting greenlet with this poll's `Context`
    /// and returns when it waits for a pending future (`Pending`) or when the
    /// task's greenlet returns (`Ready`). A panic that escapes the task's
    /// closure continues from here (B2).
    ///
    /// # Panics
    /// When polled after it completed; when polled from one of its own
    /// greenlets; when a greenlet of the task switched to the polling greenlet
    /// other than by waiting or returning (docs/semantics.md), and on every
    /// poll after that.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let shared = &self.get_mut().shared;
        if !shared.cx.get().is_null() {
            panic!("greenlet::bridge: a Task was polled while its own poll is in progress (from one of its own greenlets)");
        }
        if shared.root_is_dead() {
            panic!("greenlet::bridge: a Task was polled after it completed");
        }
        let Some(target) = shared.resume.take() else {
            panic!("greenlet::bridge: a Task was polled after an earlier poll found that its greenlet had switched out of the task instead of waiting or returning; it cannot go on");
        };
        let me = Greenlet::current();
        let reparent = shared.with_root(|root| {
            let root = root.expect("a live task has its greenlet");
            if root.parent().as_ref() == Some(&me) {
                return Ok(false);
            }
            root.set_parent(&me).map(|()| true)
        });
        let reparented = match reparent {
            Ok(r) => r,
            Err(_) => {
                shared.resume.set(Some(target));
                panic!("greenlet::bridge: a Task cannot be polled from one of its own greenlets");
            }
        };
        shared.poller.set(Some(me));
        shared.cx.set(cx as *mut Context<'_> as *const ());
        shared.polls.set(shared.polls.get().wrapping_add(1));
        let previous = POLLING
            .try_with(|slot| slot.replace(Some(shared.clone())))
            .expect("greenlet::bridge: a Task polled while its thread is being torn down");
        let guard = PollGuard {
            shared,
            previous,
            reparented,
        };
        let value = target.switch(Resume);
        drop(guard);
        // Dropped after the bookkeeping: if it was the last handle (the task's
        // greenlets went astray), dropping it may run user code.
        drop(target);
        if value.is::<Parked>() {
            return Poll::Pending;
        }
        if shared.root_is_dead() {
            match value.downcast::<Done<R>>() {
                Ok(Done(r)) => return Poll::Ready(r),
                Err(value) if value.is::<GreenletExit>() => {
                    // Killed (B2): there is no result; the exit goes on up.
                    panic::resume_unwind(Box::new(GreenletExit))
                }
                Err(value) => astray(value),
            }
        }
        astray(value)
    }
}

/// The poll was resumed by something other than a wait or the task's death.
fn astray(value: Value) -> ! {
    panic!(
        "greenlet::bridge: a greenlet of the task switched to the greenlet polling it (handing it a value of type {}) instead of waiting in bridge::wait or returning; the task cannot go on",
        value.type_name()
    )
}

impl<R> Drop for Task<R> {
    fn drop(&mut self) {
        let waiting = self.shared.resume.take();
        let root = self.shared.root.take();
        if let (Some(w), Some(r)) = (&waiting, &root) {
            if w != r && w.is_active() {
                // A child or generator of the task is waiting: its parent link
                // would keep the task's greenlet alive while the greenlet's
                // stack keeps it alive (a cycle that no drop breaks). Cut the
                // link, so that killing the task's greenlet kills it too.
                let _ = w.set_parent(&Greenlet::main());
            }
        }
        // Kill on drop (B3, S10): the waiting greenlet first, then the root.
        drop(waiting);
        drop(root);
    }
}

impl<R> fmt::Debug for Task<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        let (state, root) = shared.with_root(|root| {
            let state = match root {
                None => "dropped",
                Some(r) if r.is_dead() => "finished",
                Some(r) if !r.is_started() => "unpolled",
                Some(_) if !shared.cx.get().is_null() => "running",
                Some(_) => {
                    let resume = shared.resume.take();
                    let state = if resume.is_some() {
                        "waiting"
                    } else {
                        "astray"
                    };
                    shared.resume.set(resume);
                    state
                }
            };
            (state, root.map(|r| format!("{r:?}")))
        });
        f.debug_struct("Task")
            .field("state", &state)
            .field("greenlet", &root.unwrap_or_default())
            .finish()
    }
}

/// Resets [`Shared::busy`] when a wait's poll of its future ends.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Waits for `fut` from synchronous code running in a task (B1): polls it on
/// this greenlet's stack with the `Context` of the task's current poll and,
/// while it is pending, switches back to the greenlet polling the task, so
/// that the executor goes on with other work. Returns the future's output.
///
/// Any greenlet of the task may wait while it is current: the task's own, or
/// a child or generator started inside it (B5); the task's next poll resumes
/// exactly the one that waited.
///
/// ```
/// use greenlet::{bridge, Generator};
/// let task = bridge::spawn(|| {
///     // A generator inside the task waits too.
///     let squares = Generator::new(|y| {
///         for i in 1..=3u32 {
///             y.yield_(bridge::wait(async move { i * i }));
///         }
///     });
///     squares.sum::<u32>()
/// });
/// assert_eq!(futures::executor::block_on(task), 14);
/// ```
///
/// # Panics
/// Where no task is being polled for the current greenlet (B4), with a message
/// naming `bridge::spawn`, after dropping `fut` unpolled. It never blocks the
/// thread instead. A call from inside a future that a `wait` is polling is
/// the same error. [`try_wait`] returns the error instead.
///
/// ```should_panic
/// // Not inside a task: panics ("... greenlet::bridge::spawn ...").
/// greenlet::bridge::wait(async { 1 });
/// ```
pub fn wait<F: Future>(fut: F) -> F::Output {
    match task_for_wait() {
        Some(task) => wait_in(task, fut),
        None => {
            drop(fut);
            panic!("greenlet::bridge::wait: no bridge task is being polled for this greenlet (or this is a future that another wait is polling); run the code in a task made with greenlet::bridge::spawn (or Builder::spawn_task) and poll it, or use bridge::try_wait");
        }
    }
}

/// Like [`wait`], but where no task is being polled for the current greenlet
/// (B4) returns `Err(Error::NotInTask)` and drops `fut` without polling it.
///
/// ```
/// use greenlet::{bridge, Error};
/// assert_eq!(bridge::try_wait(async { 1 }), Err(Error::NotInTask));
/// let task = bridge::spawn(|| bridge::try_wait(async { 2 }));
/// assert_eq!(futures::executor::block_on(task), Ok(2));
/// ```
pub fn try_wait<F: Future>(fut: F) -> Result<F::Output, Error> {
    match task_for_wait() {
        Some(task) => Ok(wait_in(task, fut)),
        None => {
            drop(fut);
            Err(Error::NotInTask)
        }
    }
}

/// Can the current greenlet [`wait`] here: is a task being polled for it, and
/// is it not inside a future that a wait is polling?
///
/// ```
/// use greenlet::bridge;
/// assert!(!bridge::can_wait());
/// let task = bridge::spawn(|| {
///     let inside = bridge::can_wait();
///     let in_future = bridge::wait(async { bridge::can_wait() });
///     (inside, in_future)
/// });
/// assert_eq!(futures::executor::block_on(task), (true, false));
/// ```
pub fn can_wait() -> bool {
    task_for_wait().is_some()
}

/// The body of [`wait`] once the task is known.
fn wait_in<F: Future>(mut task: Rc<Shared>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        let poll = task.polls.get();
        let out = {
            task.busy.set(true);
            let _busy = Busy(&task.busy);
            // SAFETY: `cx` is non-null only while the poll that stored it is
            // in progress, and that poll's greenlet is suspended in its switch
            // to this task, so the `Context` is alive and nothing else uses
            // it. It stays alive until this poll of the future returns: the
            // poll that owns it cannot end while `busy` is set (its guard
            // aborts the process rather than let it dangle, for a future that
            // switched out of the task in its poll and never came back).
            let cx = unsafe { &mut *task.cx.get().cast_mut().cast::<Context<'_>>() };
            fut.as_mut().poll(cx)
        };
        if let Poll::Ready(v) = out {
            return v;
        }
        if task.polls.get() != poll || task.cx.get().is_null() {
            panic!("greenlet::bridge::wait: the task's poll ended while this wait was polling its future (the future switched out of the task)");
        }
        task = park(task);
    }
}

/// Hands control back to the poll in progress (`Pending`) and returns the
/// task when a later poll resumes this greenlet.
fn park(task: Rc<Shared>) -> Rc<Shared> {
    let me = Greenlet::current();
    let poller = task.poller.take().expect("a poll in progress has a poller");
    // Keeps the poller's allocation, not the poller: a parked greenlet must
    // not keep whoever polled it last alive (that may own the task).
    let keep = poller.downgrade();
    // SAFETY: a bitwise copy of the handle that owns no count and is never
    // dropped. It serves for the one switch below, while the count of
    // `poller` (put back into the task, where the poll drops it once it has
    // resumed) keeps the greenlet alive; `keep` keeps the allocation it
    // points at for as long as this frame lives.
    let view = ManuallyDrop::new(unsafe { ptr::read(&poller) });
    task.poller.set(Some(poller));
    let stale = task.resume.replace(Some(me));
    debug_assert!(
        stale.is_none(),
        "a poll in progress took the task's waiting greenlet"
    );
    drop(stale);
    let weak = Rc::downgrade(&task);
    drop(task);
    let value = view.switch(Parked);
    drop(keep);
    if !value.is::<Resume>() {
        if let Some(task) = weak.upgrade() {
            // No poll will find this greenlet parked any more.
            drop(task.resume.take());
        }
        panic!(
            "greenlet::bridge::wait: a greenlet waiting in bridge::wait was switched to by something other than its task's poll (with a value of type {})",
            value.type_name()
        );
    }
    resumed_by(&weak)
}

/// The task whose poll has just resumed a parked greenlet: the one it parked in.
fn resumed_by(weak: &Weak<Shared>) -> Rc<Shared> {
    match polling() {
        Some(task) if ptr::eq(Rc::as_ptr(&task), weak.as_ptr()) && !task.cx.get().is_null() => task,
        _ => panic!("greenlet::bridge::wait: resumed by a poll of another task"),
    }
}
