//! The greenlet object that handles point at ([`Inner`]), its states, its
//! reference counts, and the handle type itself ([`Greenlet`]: a counted
//! pointer; its API is in `handle.rs`, its release at the last count in
//! `kill.rs`). The bottom of the core with `value.rs`, `error.rs`,
//! `report.rs` and `locals.rs`: it names nothing above it.
//!
//! Counts are hand-rolled rather than an `Rc` because the last strong handle
//! to a suspended greenlet must be able to *resurrect* it for the duration of
//! the kill (SPEC S10, `kill.rs`), which `Rc` cannot express.
//!
//! The running greenlet is not counted: the thread's CURRENT pointer owns no
//! reference, so a switch moves no count. Instead nothing frees a greenlet
//! while it runs (the release leaves a running one alone), and the switch
//! notices when the greenlet it leaves has no handle left (`switch.rs`), which
//! is when the kill or the release happens.

use std::cell::Cell;
use std::ptr::{self, NonNull};

use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use super::locals::Locals;
use crate::stack::Stack;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub(crate) enum State {
    /// Created, `run` not called yet; its initial frame waits on its stack.
    Unstarted = 0,
    /// Suspended in a switch (or in an introspection request).
    Suspended = 1,
    /// The running greenlet of its thread.
    Running = 2,
    /// `run` returned or panicked; its stack is back in the pool.
    Dead = 3,
}

impl State {
    /// Can a switch resume it directly: unstarted or suspended?
    #[inline(always)]
    pub(crate) fn resumable(self) -> bool {
        self <= State::Suspended
    }
}

/// The closure of an unstarted greenlet: where it sits (at the top of the
/// greenlet's own stack) and how to drop it without running it.
#[derive(Clone, Copy)]
pub(crate) struct Closure {
    pub(crate) at: *mut u8,
    pub(crate) drop: unsafe fn(*mut u8),
}

/// The shared greenlet object. The fields a switch touches come first, the
/// saved stack pointer at offset 0.
#[repr(C)]
pub(crate) struct Inner {
    /// Saved stack pointer while suspended (the initial frame if unstarted).
    pub(crate) sp: Cell<*mut u8>,
    /// The greenlet whose RESUME into this one is still pending, if it is the
    /// last one that switched here: a switch back to it goes through YIELD,
    /// whose return the CPU then predicts (SPEC §5). Followed only by the
    /// unwind information of the entry trampoline (`arch::link`), which
    /// checks the state byte first: a death stores null here, never itself.
    pub(crate) resumer: Cell<*const Inner>,
    pub(crate) strong: Cell<usize>,
    pub(crate) state: Cell<State>,
    pub(crate) is_main: bool,
    /// Set while the greenlet is being killed because its last handle dropped:
    /// weak handles no longer upgrade.
    pub(crate) dying: Cell<bool>,
    /// Set once the release (`kill.rs`) has emptied it: only the allocation
    /// is left, for weak handles to see.
    pub(crate) released: Cell<bool>,
    pub(crate) weak: Cell<usize>,
    /// Strong link up the tree; `None` only for a main greenlet (and after
    /// release).
    pub(crate) parent: Cell<Option<Greenlet>>,
    /// The stack; `None` for a main greenlet and after death.
    pub(crate) stack: Cell<Option<Stack>>,
    /// The unstarted greenlet's closure, on its stack; `None` once started.
    pub(crate) closure: Cell<Option<Closure>>,
    /// Greenlet-local values (src/greenlet/locals.rs), dropped at death.
    pub(crate) locals: Locals,
}

// The trampoline's unwind information (SPEC §10) reads a greenlet's object
// as the arch layer's switch record: the saved stack pointer, the resumer and
// the state byte where `arch::link` says, and `Suspended` as its value.
const _: () = {
    assert!(std::mem::offset_of!(Inner, sp) == crate::arch::link::SP);
    assert!(std::mem::offset_of!(Inner, resumer) == crate::arch::link::RESUMER);
    assert!(std::mem::offset_of!(Inner, state) == crate::arch::link::STATE);
    assert!(State::Suspended as u8 == crate::arch::link::SUSPENDED);
};

impl Inner {
    /// A greenlet that has not started, with strong count 1.
    pub(crate) fn unstarted(parent: Greenlet, stack: Stack, closure: Closure) -> Inner {
        Inner {
            sp: Cell::new(ptr::null_mut()),
            resumer: Cell::new(ptr::null()),
            strong: Cell::new(1),
            state: Cell::new(State::Unstarted),
            is_main: false,
            dying: Cell::new(false),
            released: Cell::new(false),
            weak: Cell::new(0),
            parent: Cell::new(Some(parent)),
            stack: Cell::new(Some(stack)),
            closure: Cell::new(Some(closure)),
            locals: Locals::new(),
        }
    }

    /// A main greenlet for the calling thread, running, with strong count 1
    /// (the thread's guard's), to be written into a fresh allocation.
    pub(crate) fn main() -> Inner {
        Inner {
            sp: Cell::new(ptr::null_mut()),
            resumer: Cell::new(ptr::null()),
            strong: Cell::new(1),
            state: Cell::new(State::Running),
            is_main: true,
            dying: Cell::new(false),
            released: Cell::new(false),
            weak: Cell::new(0),
            parent: Cell::new(None),
            stack: Cell::new(None),
            closure: Cell::new(None),
            locals: Locals::new(),
        }
    }

    #[inline]
    pub(crate) fn is_main(&self) -> bool {
        self.is_main
    }

    /// # Safety
    /// `this` must point at a live `Inner`.
    #[inline(always)]
    pub(crate) unsafe fn inc_strong(this: *const Inner) {
        // SAFETY: live per the caller.
        let inner = unsafe { &*this };
        inner.strong.set(inner.strong.get() + 1);
    }

    /// The parent's pointer, without touching reference counts.
    #[inline]
    pub(crate) fn parent_ptr(&self) -> Option<*const Inner> {
        // SAFETY: a plain read of the link; nothing else runs on this thread
        // while it is read, and the Cell is only replaced, never borrowed.
        unsafe { (*self.parent.as_ptr()).as_ref().map(Greenlet::as_ptr) }
    }

    /// The bounds (bottom, usable size) of the greenlet's own stack, if it has
    /// one (main greenlets and dead ones do not).
    pub(crate) fn stack_bounds(&self) -> Option<(usize, usize)> {
        // SAFETY: the slot is written only at spawn and at death, never while
        // this read is under way (single thread, no callbacks in between).
        unsafe { (*self.stack.as_ptr()).as_ref() }.map(|s| (s.bottom() as usize, s.usable_size()))
    }

    /// The root (main greenlet) of the tree that `this` is in.
    ///
    /// # Safety
    /// `this` must point at a live `Inner`.
    pub(crate) unsafe fn root_of(mut this: *const Inner) -> *const Inner {
        // SAFETY: live per the caller; each parent link is a strong handle,
        // so every ancestor is live too.
        while let Some(p) = unsafe { (*this).parent_ptr() } {
            this = p;
        }
        this
    }

    /// Does the object hold nothing that needs dropping (what the release
    /// leaves)?
    pub(crate) fn owns_nothing(&self) -> bool {
        // SAFETY: plain reads of Option discriminants, as in parent_ptr.
        let links =
            unsafe { (*self.parent.as_ptr()).is_none() && (*self.stack.as_ptr()).is_none() };
        links && self.locals.is_empty()
    }

    /// Does the object own nothing but (maybe) its parent link?
    #[inline]
    pub(crate) fn owns_only_its_parent(&self) -> bool {
        // SAFETY: plain reads of Option discriminants, as in parent_ptr.
        let stack = unsafe { (*self.stack.as_ptr()).is_none() };
        // SAFETY: as above.
        let closure = unsafe { (*self.closure.as_ptr()).is_none() };
        stack && closure && self.locals.is_empty()
    }

    /// May this object's allocation be freed once no weak handle is left?
    /// Only once [`release`] has emptied it: a running greenlet without a
    /// strong handle is not released (CURRENT points at it).
    pub(crate) fn released(&self) -> bool {
        self.released.get()
    }
}

/// The first live greenlet at or above `g` (SPEC S4, S7): dead greenlets pass
/// switches and throws on to their parents. Main greenlets never die, so the
/// walk always ends.
///
/// # Safety
/// `g` must be live (held by a handle or by a child's parent link).
#[inline]
pub(crate) unsafe fn first_live(mut g: *const Inner) -> *const Inner {
    loop {
        // SAFETY: live per the contract, and parent links keep ancestors live.
        let inner = unsafe { &*g };
        if inner.state.get() != State::Dead {
            return g;
        }
        g = inner
            .parent_ptr()
            .expect("greenlet invariant: a dead greenlet always has a parent");
    }
}

/// A handle to a greenlet: a pseudo-thread with its own stack that runs only
/// when something [`switch`](Greenlet::switch)es to it.
///
/// Handles are cheap to clone (a non-atomic count), compare and hash by
/// identity, and are neither `Send` nor `Sync`: a greenlet belongs to the
/// thread that made it. When the last handle to a suspended greenlet drops, the
/// greenlet is killed: [`GreenletExit`](crate::GreenletExit) is thrown into it so that every
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
    /// The greenlet object this handle points at.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *const Inner {
        self.ptr.as_ptr()
    }

    /// Gives up the handle without dropping its count, which the caller now owns.
    pub(crate) fn into_raw(self) -> NonNull<Inner> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
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
}

impl Clone for Greenlet {
    #[inline]
    fn clone(&self) -> Greenlet {
        // SAFETY: self keeps the Inner live.
        unsafe { Greenlet::from_raw_clone(self.ptr.as_ptr()) }
    }
}

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
