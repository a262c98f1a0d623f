//! The public face of a greenlet: the API of [`Greenlet`] (whose handle
//! type is defined with the object it points at, `object.rs`) and
//! [`WeakGreenlet`]. The top of the core: it names every file below it and
//! none names it.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use super::builder::Builder;
use super::error::Error;
pub use super::object::Greenlet;
use super::object::{Inner, State};
use super::switch::{self, Message};
use super::value::Value;
use super::{introspect, spare, thread};

impl Greenlet {
    /// Creates a greenlet that will run `run(arg)` on its own stack (of
    /// [`crate::stack::DEFAULT_STACK_SIZE`] bytes) on its first switch, with the current
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
        // SAFETY: the running greenlet is live; the new count is the handle's.
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
        switch::switch_value(self.as_ptr(), Value::new(arg))
    }

    /// Switches to this greenlet and raises `err` there as a panic payload (with
    /// `resume_unwind`, so no panic message is printed) from its pending call
    /// (SPEC S7). Into an unstarted greenlet, `run` is never called: it dies at
    /// once and `err` goes to its parent; into the current greenlet, `err` is
    /// raised right here; into a dead one, in its first live ancestor.
    ///
    /// Throwing [`GreenletExit`](crate::GreenletExit) asks a greenlet to die quietly. Thrown into a
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
        switch::switch_slow(self.as_ptr(), Message::Throw(Box::new(err)))
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
        let mut ancestor = Some(parent.as_ptr());
        while let Some(p) = ancestor {
            if std::ptr::eq(p, self.as_ptr()) {
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
            // SAFETY: a handle's pointer is never null.
            ptr: unsafe { NonNull::new_unchecked(self.as_ptr() as *mut Inner) },
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
        self.inner().is_main()
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
        matches!(self.inner().state.get(), State::Running | State::Suspended)
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
        std::ptr::eq(thread::current_ptr(), self.as_ptr())
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
        introspect::backtrace(self.as_ptr())
    }

    fn state_name(&self) -> &'static str {
        match self.inner().state.get() {
            State::Unstarted => "unstarted",
            State::Dead => "dead",
            State::Running => "running",
            State::Suspended => "suspended",
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

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Greenlet");
        d.field("id", &self.as_ptr());
        d.field("state", &self.state_name());
        if self.is_main() {
            d.field("main", &true);
        } else {
            d.field("parent", &self.inner().parent_ptr().unwrap_or(ptr::null()));
        }
        // Stack usage comes from the saved stack pointer and mincore(2): it
        // touches no stack memory (src/introspect.rs).
        if let Some(usage) = introspect::stack_usage(self.inner(), self.is_current()) {
            d.field("stack_size", &usage.size);
            d.field("stack_in_use", &usage.in_use);
            if let Some(high_water) = usage.high_water {
                d.field("stack_high_water", &high_water);
            }
            d.field("guard", &usage.guard);
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
        // Live means some strong handle is left, or it is running (the
        // running greenlet is not counted); a kill in progress does not count.
        let live = inner.strong.get() != 0 || inner.state.get() == State::Running;
        if !live || inner.dying.get() {
            return None;
        }
        // SAFETY: live, as above; the new count is ours.
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
        if n == 0 && inner.strong.get() == 0 && inner.released() {
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
