//! Greenlet objects and their handles: [`Greenlet`], [`WeakGreenlet`],
//! [`Builder`], the parent tree and kill-on-drop.
//!
//! Handles are hand-rolled reference counts rather than `Rc` because the last
//! strong handle to a suspended greenlet must be able to *resurrect* it for the
//! duration of the kill (SPEC S10), which `Rc` cannot express.

use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use crate::greenlet::error::{Error, GreenletExit};
use crate::greenlet::spare;
use crate::greenlet::switching::{self, Message};
use crate::greenlet::thread;
use crate::greenlet::value::Value;
use crate::stack::{self, Stack, StackKind};

/// The body of a greenlet once its result type has been erased.
pub(crate) type Run = Box<dyn FnOnce(Value) -> Value>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Created, `run` not called yet; its initial frame waits on its stack.
    Unstarted,
    /// Running (it is current) or suspended in a switch.
    Started,
    /// `run` returned or panicked; its stack is back in the pool.
    Dead,
}

/// The shared greenlet object that handles point at.
pub(crate) struct Inner {
    strong: Cell<usize>,
    weak: Cell<usize>,
    pub(crate) state: Cell<State>,
    /// Strong link up the tree; `None` only for a main greenlet.
    parent: Cell<Option<Greenlet>>,
    /// Saved stack pointer while suspended (or the initial frame if unstarted).
    pub(crate) sp: Cell<*mut u8>,
    /// The stack; `None` for a main greenlet and after death.
    pub(crate) stack: Cell<Option<Stack>>,
    pub(crate) run: Cell<Option<Run>>,
    is_main: bool,
    /// Set while the greenlet is being killed because its last handle dropped:
    /// weak handles no longer upgrade.
    dying: Cell<bool>,
}

impl Inner {
    /// A main greenlet for the calling thread, with strong count 1.
    pub(crate) fn new_main() -> *const Inner {
        Box::into_raw(Box::new(Inner {
            strong: Cell::new(1),
            weak: Cell::new(0),
            state: Cell::new(State::Started),
            parent: Cell::new(None),
            sp: Cell::new(ptr::null_mut()),
            stack: Cell::new(None),
            run: Cell::new(None),
            is_main: true,
            dying: Cell::new(false),
        }))
    }

    /// # Safety
    /// `this` must point at a live `Inner`.
    #[inline]
    pub(crate) unsafe fn inc_strong(this: *const Inner) {
        // SAFETY: live per the caller.
        let inner = unsafe { &*this };
        inner.strong.set(inner.strong.get() + 1);
    }

    /// Drops a strong count that is known not to be the last one.
    ///
    /// # Safety
    /// `this` must be live with a strong count of at least 2.
    pub(crate) unsafe fn dec_strong_no_drop(this: *const Inner) {
        // SAFETY: live per the caller.
        let inner = unsafe { &*this };
        debug_assert!(inner.strong.get() >= 2);
        inner.strong.set(inner.strong.get() - 1);
    }

    /// The root (main greenlet) of the tree that `this` is in.
    ///
    /// # Safety
    /// `this` must point at a live `Inner`.
    pub(crate) unsafe fn root_of(mut this: *const Inner) -> *const Inner {
        loop {
            // SAFETY: live per the caller; each parent link is a strong handle,
            // so every ancestor is live too.
            let inner = unsafe { &*this };
            match inner.parent_ptr() {
                Some(p) => this = p,
                None => return this,
            }
        }
    }

    /// The parent's pointer, without touching reference counts.
    #[inline]
    pub(crate) fn parent_ptr(&self) -> Option<*const Inner> {
        let parent = self.parent.take();
        let p = parent.as_ref().map(|g| g.ptr.as_ptr() as *const Inner);
        self.parent.set(parent);
        p
    }

    /// Called when the strong count has just dropped to zero.
    ///
    /// Releasing a greenlet drops its parent link, which may be the parent's
    /// last handle, and so on up a chain that can be tens of thousands long:
    /// the walk up is a loop, not a recursion, so it cannot overflow the stack.
    ///
    /// # Safety
    /// `this` must be live, with strong count 0, and no handle may be made
    /// from it except through resurrection here.
    #[cold]
    unsafe fn last_handle_dropped(mut this: NonNull<Inner>) {
        loop {
            // SAFETY: live per the caller (or, on later rounds, because we held
            // the parent's last strong count).
            let inner = unsafe { this.as_ref() };
            if inner.state.get() == State::Started && !inner.is_main {
                // SAFETY: forwarded contract.
                if !unsafe { kill(this) } {
                    return; // resurrected or deliberately leaked
                }
            }
            // Dead, unstarted, or a main greenlet: release what it owns. Unstarted
            // closures are simply dropped (SPEC S10). Taking the fields out first
            // keeps `inner` consistent if one of these drops re-enters.
            let run = inner.run.take();
            let stack = inner.stack.take();
            let parent = inner.parent.take();
            inner.state.set(State::Dead);
            if let Some(stack) = stack {
                stack::release(stack);
            }
            drop(run);
            if inner.weak.get() == 0 {
                // SAFETY: no strong and no weak handle is left; the allocation
                // came from spare::allocate or Box::into_raw.
                unsafe { spare::free(this.as_ptr()) };
            }
            let Some(parent) = parent else { return };
            // SAFETY: the link is a strong handle, so the parent is live.
            let parent_inner = unsafe { parent.ptr.as_ref() };
            if parent_inner.strong.get() > 1 {
                return drop(parent); // not the last handle: a plain decrement
            }
            // The last handle: release the parent on the next round instead of
            // recursing through Drop.
            this = parent.ptr;
            std::mem::forget(parent);
            parent_inner.strong.set(0);
        }
    }
}

/// Kills a suspended greenlet whose last handle dropped (SPEC S10). Returns
/// `true` when it died and its `Inner` is back at strong count 0, ready to be
/// released; `false` when it was resurrected or is deliberately leaked.
///
/// # Safety
/// `this` must be live with strong count 0 and state `Started`.
unsafe fn kill(this: NonNull<Inner>) -> bool {
    // SAFETY: live per the caller.
    let inner = unsafe { this.as_ref() };
    if thread::torn_down() {
        crate::report("greenlet: a suspended greenlet was dropped after its thread's greenlet state was torn down; it cannot be killed, so its stack is leaked");
        return false;
    }
    // Resurrect for the duration of the kill.
    inner.strong.set(1);
    inner.dying.set(true);
    let g = Greenlet {
        ptr: this,
        _not_send: PhantomData,
    };
    // The dropper is the parent for the duration of the kill, so that control
    // comes back here; the old parent link is kept, not dropped (it may be the
    // old parent's last handle), and put back afterwards, as Python does, for
    // a greenlet that survives or is resurrected.
    let old_parent = inner.parent.replace(Some(Greenlet::current()));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| g.throw(GreenletExit)));
    inner.dying.set(false);
    restore_parent(inner, this, old_parent);
    if let Err(payload) = outcome {
        crate::report(&format!(
            "greenlet: a greenlet killed on drop raised a panic instead of dying quietly: {}",
            crate::describe_panic(&*payload)
        ));
        switching::drop_payload(payload);
    }
    if inner.state.get() == State::Dead {
        if inner.strong.get() == 1 {
            // Give the resurrected count back without running Drop again.
            std::mem::forget(g);
            inner.strong.set(0);
            return true;
        }
        // Resurrected while dying: someone took a new handle.
        drop(g);
        return false;
    }
    if inner.strong.get() > 1 {
        // It survived and handed out new handles: it lives on normally.
        drop(g);
        return false;
    }
    crate::report("greenlet: a greenlet dropped while suspended did not die when GreenletExit was thrown into it; its stack is leaked, never freed under live frames");
    std::mem::forget(g);
    false
}

/// Puts back the parent a killed greenlet had before the kill, unless that
/// would now close a cycle (the old parent was re-parented under the greenlet
/// while it was being killed): then the dropper stays its parent.
fn restore_parent(inner: &Inner, this: NonNull<Inner>, old_parent: Option<Greenlet>) {
    let Some(old) = old_parent else { return };
    let mut ancestor = Some(old.ptr.as_ptr() as *const Inner);
    while let Some(p) = ancestor {
        if ptr::eq(p, this.as_ptr()) {
            return drop(old);
        }
        // SAFETY: `old` is live (we hold it) and each parent link is a strong
        // handle, so every ancestor is live.
        ancestor = unsafe { (*p).parent_ptr() };
    }
    // The temporary link to the dropper is never its last handle: the dropper
    // is running (CURRENT holds it), so this drop runs no code.
    let dropper = inner.parent.replace(Some(old));
    drop(dropper);
}

/// A handle to a greenlet: a pseudo-thread with its own stack that runs only
/// when something [`switch`](Greenlet::switch)es to it.
///
/// Handles are cheap to clone (a non-atomic count), compare and hash by
/// identity, and are neither `Send` nor `Sync`: a greenlet belongs to the
/// thread that made it. When the last handle to a suspended greenlet drops, the
/// greenlet is killed: [`GreenletExit`] is thrown into it so that every
/// destructor on its stack runs (SPEC S10).
///
/// ```
/// use greenlet::Greenlet;
/// let g = Greenlet::new(|x| {
///     let x: i32 = x.downcast().unwrap();
///     let y: i32 = Greenlet::main().switch(x + 1).downcast().unwrap();
///     x + y
/// });
/// assert_eq!(g.switch(1).downcast::<i32>().unwrap(), 2); // g paused in its switch
/// assert_eq!(g.switch(10).downcast::<i32>().unwrap(), 11); // g returned 1 + 10
/// assert!(g.is_dead());
/// ```
pub struct Greenlet {
    ptr: NonNull<Inner>,
    _not_send: PhantomData<*const Inner>,
}

impl Greenlet {
    /// Creates a greenlet that will run `run(arg)` on its own stack (of
    /// [`stack::DEFAULT_STACK_SIZE`] bytes) on its first switch, with the current
    /// greenlet as its parent.
    ///
    /// # Panics
    /// When no stack can be mapped; use [`Builder::spawn`] to get the
    /// `io::Error` instead.
    ///
    /// ```
    /// let g = greenlet::Greenlet::new(|v| v.downcast::<&str>().unwrap().len());
    /// assert!(!g.is_started());
    /// assert_eq!(g.switch("four").downcast::<usize>().unwrap(), 4);
    /// ```
    pub fn new<F, R>(run: F) -> Greenlet
    where
        F: FnOnce(Value) -> R + 'static,
        R: 'static,
    {
        match Builder::new().spawn(run) {
            Ok(g) => g,
            Err(e) => panic!("greenlet: cannot create a greenlet: {e}"),
        }
    }

    /// A [`Builder`] to choose the stack size or the parent.
    ///
    /// ```
    /// let g = greenlet::Greenlet::builder().stack_size(64 * 1024).spawn(|_| 5).unwrap();
    /// assert_eq!(g.switch(()).downcast::<i32>().unwrap(), 5);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The greenlet running on this thread (its main greenlet outside any other).
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// assert_eq!(Greenlet::current(), Greenlet::main());
    /// let g = Greenlet::new(|_| Greenlet::current());
    /// assert_eq!(g.switch(()).downcast::<Greenlet>().unwrap(), g);
    /// ```
    pub fn current() -> Greenlet {
        // SAFETY: current_ptr is live (CURRENT owns a reference); we take one more.
        unsafe { Greenlet::from_raw_clone(thread::current_ptr()) }
    }

    /// This thread's main greenlet: the one that runs code outside any greenlet.
    ///
    /// ```
    /// let main = greenlet::Greenlet::main();
    /// assert!(main.is_main() && main.is_started() && !main.is_dead() && main.parent().is_none());
    /// ```
    pub fn main() -> Greenlet {
        // SAFETY: main is live: the thread state and every greenlet's root link own it.
        unsafe { Greenlet::from_raw_clone(thread::main_ptr()) }
    }

    /// Suspends the current greenlet and resumes this one with `arg` (SPEC S1).
    ///
    /// An unstarted greenlet starts with `run(arg)`; a suspended one sees its own
    /// pending `switch` return `arg`; switching to the current greenlet returns
    /// `arg` at once; a dead one passes `arg` on to its first live ancestor
    /// (SPEC S4). A `Value` argument is passed on as it is, not wrapped again.
    ///
    /// Returns whatever is later switched back to the current greenlet, or the
    /// return value of a child that dies with this greenlet as its parent. If
    /// such a child panics, the panic continues here (SPEC S5).
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let g = Greenlet::new(|v| { let n: u8 = v.downcast().unwrap(); n * 2 });
    /// assert_eq!(g.switch(21u8).downcast::<u8>().unwrap(), 42);
    /// assert_eq!(Greenlet::current().switch("me").downcast::<&str>().unwrap(), "me");
    /// ```
    #[inline]
    pub fn switch<T: 'static>(&self, arg: T) -> Value {
        switching::transfer(self.ptr.as_ptr(), Message::Value(Value::new(arg)))
    }

    /// Switches to this greenlet and raises `err` there as a panic payload (with
    /// `resume_unwind`, so no panic message is printed) from its pending call
    /// (SPEC S7). Into an unstarted greenlet, `run` is never called: it dies at
    /// once and `err` goes to its parent; into the current greenlet, `err` is
    /// raised right here; into a dead one, in its first live ancestor.
    ///
    /// Throwing [`GreenletExit`] asks a greenlet to die quietly. Thrown into a
    /// dead greenlet, it is handled as that greenlet's death would be: its
    /// first live ancestor receives `Value::new(GreenletExit)`, not a panic.
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let g = Greenlet::new(|_| {
    ///     let caught = std::panic::catch_unwind(|| Greenlet::main().switch(()));
    ///     *caught.unwrap_err().downcast::<&str>().unwrap()
    /// });
    /// g.switch(());
    /// assert_eq!(g.throw("stop").downcast::<&str>().unwrap(), "stop");
    /// ```
    pub fn throw<E: std::any::Any + Send>(&self, err: E) -> Value {
        switching::transfer(self.ptr.as_ptr(), Message::Throw(Box::new(err)))
    }

    /// The parent: where control goes when this greenlet dies. `None` only for a
    /// main greenlet.
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let g = Greenlet::new(|_| ());
    /// assert_eq!(g.parent(), Some(Greenlet::current()));
    /// ```
    pub fn parent(&self) -> Option<Greenlet> {
        let inner = self.inner();
        let parent = inner.parent.take();
        let copy = parent.clone();
        inner.parent.set(parent);
        copy
    }

    /// Changes the parent (SPEC S3). Refuses with [`Error::CyclicParent`] when
    /// this greenlet would become its own ancestor and with
    /// [`Error::ParentOfMain`] on a main greenlet.
    ///
    /// ```
    /// use greenlet::{Error, Greenlet};
    /// let a = Greenlet::new(|_| ());
    /// let b = Greenlet::new(|_| ());
    /// b.set_parent(&a).unwrap();
    /// assert_eq!(a.set_parent(&b), Err(Error::CyclicParent));
    /// assert_eq!(Greenlet::main().set_parent(&a), Err(Error::ParentOfMain));
    /// ```
    pub fn set_parent(&self, parent: &Greenlet) -> Result<(), Error> {
        if self.is_main() {
            return Err(Error::ParentOfMain);
        }
        let mut ancestor = Some(parent.ptr.as_ptr() as *const Inner);
        while let Some(p) = ancestor {
            if std::ptr::eq(p, self.ptr.as_ptr()) {
                return Err(Error::CyclicParent);
            }
            // SAFETY: `parent` is live (we hold a handle) and each parent link
            // is a strong handle, so every ancestor is live.
            ancestor = unsafe { (*p).parent_ptr() };
        }
        let old = self.inner().parent.replace(Some(parent.clone()));
        // Dropping the old link last: it may have been the old parent's last
        // handle, and killing it runs arbitrary code.
        drop(old);
        Ok(())
    }

    /// A weak handle that does not keep the greenlet alive (SPEC S13).
    ///
    /// ```
    /// let g = greenlet::Greenlet::new(|_| ());
    /// let w = g.downgrade();
    /// assert_eq!(w.upgrade(), Some(g.clone()));
    /// drop(g);
    /// assert!(w.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakGreenlet {
        let inner = self.inner();
        inner.weak.set(inner.weak.get() + 1);
        WeakGreenlet {
            ptr: self.ptr,
            _not_send: PhantomData,
        }
    }

    /// Is this a thread's main greenlet?
    ///
    /// ```
    /// assert!(greenlet::Greenlet::main().is_main());
    /// assert!(!greenlet::Greenlet::new(|_| ()).is_main());
    /// ```
    pub fn is_main(&self) -> bool {
        self.inner().is_main
    }

    /// Has `run` been called (always true for a main greenlet)? Stays true after death.
    ///
    /// ```
    /// let g = greenlet::Greenlet::new(|_| ());
    /// assert!(!g.is_started());
    /// g.switch(());
    /// assert!(g.is_started());
    /// ```
    pub fn is_started(&self) -> bool {
        self.inner().state.get() != State::Unstarted
    }

    /// Started and not dead: Python's `bool(g)`.
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let g = Greenlet::new(|_| Greenlet::main().switch(()));
    /// assert!(!g.is_active());
    /// g.switch(());
    /// assert!(g.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.inner().state.get() == State::Started
    }

    /// Has `run` returned or panicked? Never true for a main greenlet.
    ///
    /// ```
    /// let g = greenlet::Greenlet::new(|_| ());
    /// assert!(!g.is_dead());
    /// g.switch(());
    /// assert!(g.is_dead());
    /// ```
    pub fn is_dead(&self) -> bool {
        self.inner().state.get() == State::Dead
    }

    /// Is this the greenlet running right now?
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// assert!(Greenlet::main().is_current());
    /// let g = Greenlet::new(|_| Greenlet::current().is_current());
    /// assert!(!g.is_current());
    /// assert_eq!(g.switch(()).downcast::<bool>().unwrap(), true);
    /// ```
    pub fn is_current(&self) -> bool {
        std::ptr::eq(thread::current_ptr(), self.ptr.as_ptr())
    }

    /// The call stack of this greenlet where it is suspended, the way Python
    /// exposes `gr_frame`: the frames from its pending `switch` (or `throw`)
    /// down to the entry of its `run` closure.
    ///
    /// The greenlet does not resume: control goes to its stack only long enough
    /// for the unwinder to walk it, and comes straight back; no tracer is
    /// called and nothing else runs. The capture ignores `RUST_BACKTRACE`
    /// (like [`Backtrace::force_capture`](std::backtrace::Backtrace::force_capture)).
    /// The first frames shown are the crate's own switch machinery, under the
    /// frame that called `switch`; stable Rust offers no way to trim them.
    ///
    /// Returns `None` for a greenlet that has not started (it has no frames
    /// yet) or is dead (its stack is gone). For the running greenlet it is the
    /// caller's own backtrace; for a suspended main greenlet, that of the code
    /// that switched away from the thread's stack.
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let g = Greenlet::new(|_| Greenlet::main().switch(()));
    /// assert!(g.backtrace().is_none()); // not started
    /// g.switch(());
    /// let frames = g.backtrace().unwrap();
    /// # let _ = frames.to_string();
    /// g.switch(());
    /// assert!(g.is_dead() && g.backtrace().is_none());
    /// ```
    pub fn backtrace(&self) -> Option<std::backtrace::Backtrace> {
        crate::greenlet::introspect::backtrace(self.ptr.as_ptr())
    }

    /// A number that identifies this greenlet among the live ones (its address).
    pub(crate) fn identity(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    #[inline]
    pub(crate) fn inner(&self) -> &Inner {
        // SAFETY: a strong handle keeps the Inner allocated.
        unsafe { self.ptr.as_ref() }
    }

    /// Adopts one strong reference that the caller owns.
    ///
    /// # Safety
    /// `ptr` must be live and the caller must own one strong count on it.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: *const Inner) -> Greenlet {
        // SAFETY: live pointers are non-null.
        Greenlet {
            ptr: unsafe { NonNull::new_unchecked(ptr as *mut Inner) },
            _not_send: PhantomData,
        }
    }

    /// Makes a new strong handle.
    ///
    /// # Safety
    /// `ptr` must be live.
    #[inline]
    pub(crate) unsafe fn from_raw_clone(ptr: *const Inner) -> Greenlet {
        // SAFETY: live per the caller; the new count is owned by the handle.
        unsafe {
            Inner::inc_strong(ptr);
            Greenlet::from_raw(ptr)
        }
    }

    fn state_name(&self) -> &'static str {
        match self.inner().state.get() {
            State::Unstarted => "unstarted",
            State::Dead => "dead",
            State::Started if self.is_current() => "running",
            State::Started => "suspended",
        }
    }
}

impl Clone for Greenlet {
    #[inline]
    fn clone(&self) -> Greenlet {
        // SAFETY: self keeps the Inner live.
        unsafe { Greenlet::from_raw_clone(self.ptr.as_ptr()) }
    }
}

impl Drop for Greenlet {
    #[inline]
    fn drop(&mut self) {
        let inner = self.inner();
        let n = inner.strong.get() - 1;
        inner.strong.set(n);
        if n == 0 {
            // SAFETY: the count just reached zero through this handle.
            unsafe { Inner::last_handle_dropped(self.ptr) }
        }
    }
}

// A handle stays meaningful after a panic: every state change in this crate
// (switch, death, kill, re-parenting) is finished before anything that can
// panic runs, and a panic mid-`run` is itself a defined outcome (S5). So a
// handle may be used inside and after `catch_unwind` without AssertUnwindSafe
// (tests/core.rs checks that this compiles and behaves).
impl std::panic::UnwindSafe for Greenlet {}
impl std::panic::RefUnwindSafe for Greenlet {}
impl std::panic::UnwindSafe for WeakGreenlet {}
impl std::panic::RefUnwindSafe for WeakGreenlet {}

impl PartialEq for Greenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for Greenlet {}

impl Hash for Greenlet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ptr.hash(state)
    }
}

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Greenlet");
        d.field("id", &self.ptr.as_ptr());
        d.field("state", &self.state_name());
        if self.is_main() {
            d.field("main", &true);
        } else {
            d.field("parent", &self.inner().parent_ptr().unwrap_or(ptr::null()));
        }
        // Stack usage comes from the saved stack pointer and mincore(2): it
        // touches no stack memory (src/introspect.rs).
        if let Some(usage) =
            crate::greenlet::introspect::stack_usage(self.inner(), self.is_current())
        {
            d.field("stack_size", &usage.size);
            d.field("stack_in_use", &usage.in_use);
            if let Some(high_water) = usage.high_water {
                d.field("stack_high_water", &high_water);
            }
        }
        d.finish()
    }
}

/// A handle that does not keep its greenlet alive and does not count for
/// kill-on-drop (SPEC S13). Made by [`Greenlet::downgrade`]; use it to break
/// reference cycles, e.g. a greenlet whose closure refers to itself.
///
/// ```
/// use std::rc::Rc;
/// use greenlet::Greenlet;
/// let held = Rc::new(());
/// let mine = held.clone();
/// let g = Greenlet::new(move |_| { let _mine = mine; Greenlet::main().switch(()) });
/// g.switch(()); // g is suspended, holding `mine` on its stack
/// let weak = g.downgrade();
/// drop(g); // the last strong handle: g is killed, its stack unwound
/// assert!(weak.upgrade().is_none());
/// assert_eq!(Rc::strong_count(&held), 1);
/// ```
pub struct WeakGreenlet {
    ptr: NonNull<Inner>,
    _not_send: PhantomData<*const Inner>,
}

impl WeakGreenlet {
    /// A strong handle, or `None` once every strong handle is gone (or the
    /// greenlet is being killed because they are).
    ///
    /// ```
    /// let g = greenlet::Greenlet::new(|_| ());
    /// let w = g.downgrade();
    /// assert!(w.upgrade().is_some());
    /// ```
    pub fn upgrade(&self) -> Option<Greenlet> {
        // SAFETY: the weak count keeps the allocation alive.
        let inner = unsafe { self.ptr.as_ref() };
        if inner.strong.get() == 0 || inner.dying.get() {
            return None;
        }
        // SAFETY: strong > 0, so the Inner is live; the new count is ours.
        Some(unsafe { Greenlet::from_raw_clone(self.ptr.as_ptr()) })
    }
}

impl Clone for WeakGreenlet {
    fn clone(&self) -> WeakGreenlet {
        // SAFETY: the weak count keeps the allocation alive.
        let inner = unsafe { self.ptr.as_ref() };
        inner.weak.set(inner.weak.get() + 1);
        WeakGreenlet {
            ptr: self.ptr,
            _not_send: PhantomData,
        }
    }
}

impl Drop for WeakGreenlet {
    fn drop(&mut self) {
        // SAFETY: the weak count keeps the allocation alive.
        let inner = unsafe { self.ptr.as_ref() };
        let n = inner.weak.get() - 1;
        inner.weak.set(n);
        if n == 0 && inner.strong.get() == 0 {
            // SAFETY: no handle of either kind is left, and the contents were
            // released when the strong count reached zero.
            unsafe { spare::free(self.ptr.as_ptr()) };
        }
    }
}

impl fmt::Debug for WeakGreenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeakGreenlet({:p})", self.ptr.as_ptr())
    }
}

/// Configures a new greenlet: stack size and parent.
///
/// ```
/// use greenlet::Greenlet;
/// let parent = Greenlet::new(|v| v);
/// let child = Greenlet::builder().parent(&parent).stack_size(128 << 10).spawn(|_| "up").unwrap();
/// // The child dies into its unstarted parent, which starts with the child's result.
/// assert_eq!(child.switch(()).downcast::<&str>().unwrap(), "up");
/// assert!(parent.is_dead());
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    stack_size: Option<usize>,
    parent: Option<Greenlet>,
    stack_kind: StackKind,
}

impl Builder {
    /// A builder with the default stack size and the current greenlet as parent;
    /// the same as [`Greenlet::builder`].
    ///
    /// ```
    /// use greenlet::{Builder, Greenlet};
    /// let g = Builder::new().spawn(|_| 1 + 1).unwrap();
    /// assert_eq!(g.parent(), Some(Greenlet::current()));
    /// assert_eq!(g.switch(()).downcast::<i32>().unwrap(), 2);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Usable stack bytes, rounded up to whole pages and to at least
    /// [`stack::MIN_STACK_SIZE`]. One guard page is mapped below it. Sizes too
    /// large to map make [`Builder::spawn`] fail.
    ///
    /// ```
    /// use greenlet::{stack, Greenlet};
    /// // A tiny request is rounded up to MIN_STACK_SIZE, not refused.
    /// let g = Greenlet::builder().stack_size(1).spawn(|_| "ran").unwrap();
    /// assert_eq!(g.switch(()).downcast::<&str>().unwrap(), "ran");
    /// assert_eq!(stack::usable_size_for(1).unwrap(), stack::usable_size_for(stack::MIN_STACK_SIZE).unwrap());
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Where the stack comes from (default [`StackKind::Guarded`]). Choose
    /// [`StackKind::Slab`] to keep hundreds of thousands or millions of
    /// greenlets alive at once; without [`Builder::stack_size`] a slab stack has
    /// [`stack::DEFAULT_SLAB_STACK_SIZE`] bytes.
    ///
    /// ```
    /// use greenlet::{Greenlet, StackKind};
    /// let g = Greenlet::builder()
    ///     .stack_kind(StackKind::Slab)
    ///     .spawn(|_| Greenlet::main().switch("paused"))
    ///     .unwrap();
    /// assert_eq!(g.switch(()).downcast::<&str>().unwrap(), "paused");
    /// ```
    pub fn stack_kind(mut self, kind: StackKind) -> Builder {
        self.stack_kind = kind;
        self
    }

    /// The parent of the new greenlet (default: the current greenlet).
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// let outer = Greenlet::new(|_| {
    ///     // Made here, but its death goes straight to main, skipping `outer`.
    ///     let child = Greenlet::builder().parent(&Greenlet::main()).spawn(|_| "from child").unwrap();
    ///     child.switch(());
    ///     "outer never gets here"
    /// });
    /// assert_eq!(outer.switch(()).downcast::<&str>().unwrap(), "from child");
    /// assert!(outer.is_active()); // still suspended in its switch to the child
    /// ```
    pub fn parent(mut self, parent: &Greenlet) -> Builder {
        self.parent = Some(parent.clone());
        self
    }

    /// Creates the greenlet, taking its stack now (from this thread's pool, or
    /// by mapping a new one), so that failure is reported here.
    ///
    /// ```
    /// let err = greenlet::Greenlet::builder().stack_size(usize::MAX).spawn(|_| ()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn spawn<F, R>(self, run: F) -> io::Result<Greenlet>
    where
        F: FnOnce(Value) -> R + 'static,
        R: 'static,
    {
        let default_size = match self.stack_kind {
            StackKind::Guarded => stack::DEFAULT_STACK_SIZE,
            StackKind::Slab => stack::DEFAULT_SLAB_STACK_SIZE,
        };
        let size = self.stack_size.unwrap_or(default_size);
        let stack = stack::take_kind(size, self.stack_kind)?;
        #[cfg(feature = "asan")]
        crate::stack::sanitizer::stack_reused(stack.bottom(), stack.usable_size());
        let parent = self.parent.unwrap_or_else(Greenlet::current);
        let run: Run = Box::new(move |arg| Value::new(run(arg)));
        let top = stack.top();
        let inner = spare::allocate(Inner {
            strong: Cell::new(1),
            weak: Cell::new(0),
            state: Cell::new(State::Unstarted),
            parent: Cell::new(Some(parent)),
            sp: Cell::new(ptr::null_mut()),
            stack: Cell::new(Some(stack)),
            run: Cell::new(Some(run)),
            is_main: false,
            dying: Cell::new(false),
        });
        const _: () = assert!(stack::MIN_STACK_SIZE > crate::arch::INITIAL_FRAME_MAX_BYTES);
        // SAFETY: `top` is the 16-aligned top of a stack we own and nothing runs
        // on yet; stacks are at least MIN_STACK_SIZE, far above the frame size.
        let sp = unsafe { crate::arch::init_stack(top, switching::entry, inner as usize) };
        // SAFETY: `inner` was just allocated and is only reachable from here.
        unsafe { (*inner).sp.set(sp) };
        // SAFETY: we own the one strong count the Inner was made with.
        Ok(unsafe { Greenlet::from_raw(inner) })
    }
}
