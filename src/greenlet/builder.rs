//! [`Builder`]: making a greenlet, its stack, and its initial frame.

use std::io;
use std::mem;

use super::entry;
use super::object::{Closure, Greenlet, Inner};
use super::value::Value;
use super::{registry, spare};
use crate::arch;
use crate::stack::{self, sanitizer, StackKind};

/// Closures up to this many bytes are moved to the top of the greenlet's own
/// stack; larger ones are boxed, and the box goes there.
const CLOSURE_ON_STACK_MAX: usize = 1024;

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
    /// [`stack::MIN_STACK_SIZE`]. A guard of [`stack::guard_size`] bytes lies
    /// below it. Sizes too large to map make [`Builder::spawn`] fail.
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
        if mem::size_of::<F>() <= CLOSURE_ON_STACK_MAX && mem::align_of::<F>() <= 16 {
            self.spawn_with(run)
        } else {
            self.spawn_with(Box::new(run))
        }
    }

    /// Takes the stack, moves `run` to its top and builds the initial frame
    /// below it, for `entry::<G, R>` to find.
    fn spawn_with<G, R>(self, run: G) -> io::Result<Greenlet>
    where
        G: FnOnce(Value) -> R + 'static,
        R: 'static,
    {
        let default_size = match self.stack_kind {
            StackKind::Guarded => stack::DEFAULT_STACK_SIZE,
            StackKind::Slab => stack::DEFAULT_SLAB_STACK_SIZE,
        };
        let size = self.stack_size.unwrap_or(default_size);
        let stack = stack::take_kind(size, self.stack_kind)?;
        if sanitizer::ACTIVE {
            sanitizer::stack_reused(stack.bottom(), stack.usable_size());
        }
        #[cfg(windows)]
        let (base, limit, deallocation) = stack.os_bounds();
        let parent = self.parent.unwrap_or_else(Greenlet::current);
        // The closure at the top, aligned for its type; the frame below it.
        let top = stack.top() as usize;
        let at = (top - mem::size_of::<G>()) & !(mem::align_of::<G>() - 1);
        let frame_top = at & !15;
        const _: () = assert!(
            stack::MIN_STACK_SIZE > CLOSURE_ON_STACK_MAX + 16 + arch::INITIAL_FRAME_MAX_BYTES
        );
        // SAFETY: [at, at + size_of::<G>()) lies in the usable part of a stack
        // we own (stacks are at least MIN_STACK_SIZE, more than a closure of
        // up to CLOSURE_ON_STACK_MAX bytes); nothing runs on it yet. The
        // closure is moved there exactly once.
        unsafe { (at as *mut G).write(run) };
        let closure = Closure {
            at: at as *mut u8,
            drop: drop_closure::<G>,
        };
        let inner = spare::slot();
        // SAFETY: a fresh slot with Inner's layout, written once, in place.
        unsafe { inner.write(Inner::unstarted(parent, stack, closure)) };
        // SAFETY: just written, from spare::slot. Debugger registry (issue 21).
        unsafe { registry::born(inner) };
        // SAFETY: `frame_top` is 16-aligned, below the closure, with far more
        // than INITIAL_FRAME_MAX_BYTES of the same stack beneath it. `inner`
        // is the greenlet's object (its switch record, `object.rs`), which
        // lives at least as long as anything runs on the stack.
        #[cfg(not(windows))]
        let sp = unsafe {
            arch::init_stack(
                frame_top as *mut u8,
                entry::entry::<G, R>,
                at,
                inner as *const u8,
            )
        };
        // Windows: the frame also tells the OS where the stack is (its TEB
        // fields), for it to grow the stack and dispatch exceptions there.
        #[cfg(windows)]
        let sp = {
            let bounds = arch::StackBounds {
                base,
                limit,
                deallocation,
            };
            // SAFETY: as for init_stack above; the bounds are those of the
            // stack frame_top lies in.
            unsafe {
                arch::init_stack_with_bounds(
                    frame_top as *mut u8,
                    entry::entry::<G, R>,
                    at,
                    inner as *const u8,
                    &bounds,
                )
            }
        };
        // SAFETY: `inner` was just allocated and is only reachable from here.
        unsafe { (*inner).sp.set(sp) };
        // SAFETY: we own the one strong count the Inner was made with.
        Ok(unsafe { Greenlet::from_raw(inner) })
    }
}

/// Drops an unstarted greenlet's closure in place, without running it.
///
/// # Safety
/// `at` must hold a `G` placed by `spawn_with` and not taken since.
unsafe fn drop_closure<G>(at: *mut u8) {
    // SAFETY: per the contract.
    unsafe { at.cast::<G>().drop_in_place() }
}
