//! The greenlet object that handles point at ([`Inner`]), its states, its
//! reference counts, and what happens when the last strong handle goes.
//!
//! Counts are hand-rolled rather than an `Rc` because the last strong handle
//! to a suspended greenlet must be able to *resurrect* it for the duration of
//! the kill (SPEC S10, `kill.rs`), which `Rc` cannot express.
//!
//! The running greenlet is not counted: the thread's CURRENT pointer owns no
//! reference, so a switch moves no count. Instead nothing frees a greenlet
//! while it runs ([`release`] leaves a running one alone), and the switch
//! notices when the greenlet it leaves has no handle left (`switch.rs`), which
//! is when the kill or the release happens.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use super::handle::Greenlet;
use super::locals::Locals;
use super::spare;
use crate::stack::{self, Stack};

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
    /// whose return the CPU then predicts (SPEC §5). Compared, never followed.
    pub(crate) resumer: Cell<*const Inner>,
    pub(crate) strong: Cell<usize>,
    pub(crate) state: Cell<State>,
    is_main: bool,
    /// Set while the greenlet is being killed because its last handle dropped:
    /// weak handles no longer upgrade.
    pub(crate) dying: Cell<bool>,
    /// Set once [`release`] has emptied it: only the allocation is left, for
    /// weak handles to see.
    released: Cell<bool>,
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
    /// (the thread's guard's).
    pub(crate) fn new_main() -> *const Inner {
        let object = spare::slot();
        // SAFETY: a fresh slot with Inner's layout, written once.
        unsafe {
            object.write(Inner {
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
            })
        };
        // SAFETY: just written, from spare::slot. Debugger registry (issue 21).
        unsafe { super::registry::born(object) };
        object
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

    /// Does the object hold nothing that needs dropping (what [`release`]
    /// leaves)?
    pub(crate) fn owns_nothing(&self) -> bool {
        // SAFETY: plain reads of Option discriminants, as in parent_ptr.
        let links =
            unsafe { (*self.parent.as_ptr()).is_none() && (*self.stack.as_ptr()).is_none() };
        links && self.locals.is_empty()
    }

    /// Does the object own nothing but (maybe) its parent link?
    #[inline]
    fn owns_only_its_parent(&self) -> bool {
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

/// Called when the strong count has just dropped to zero.
///
/// A running greenlet is left alone: the switch that leaves it, or its death,
/// comes back here. A suspended one is killed (SPEC S10). Anything else (dead,
/// unstarted, a main greenlet that no longer runs) releases what it owns.
///
/// Releasing a greenlet drops its parent link, which may be the parent's last
/// handle, and so on up a chain that can be tens of thousands long: the walk
/// up is a loop, not a recursion, so it cannot overflow the stack.
///
/// # Safety
/// `this` must be live, with strong count 0.
#[inline]
pub(crate) unsafe fn release(this: NonNull<Inner>) {
    // SAFETY: live per the caller.
    let inner = unsafe { this.as_ref() };
    // The common case, kept short: the last handle to a greenlet that died
    // (its stack and closure are gone already), whose parent has other
    // handles, and no weak handle.
    if inner.state.get() == State::Dead && inner.weak.get() == 0 && inner.owns_only_its_parent() {
        let parent = inner.parent.take();
        if let Some(parent) = parent {
            // SAFETY: the link is a strong handle, so the parent is live.
            let parent_inner = unsafe { &*parent.as_ptr() };
            if parent_inner.strong.get() > 1 {
                inner.released.set(true);
                // SAFETY: no handle of either kind is left, and it owns nothing.
                unsafe { spare::free(this.as_ptr()) };
                return drop(parent); // a plain decrement
            }
            inner.parent.set(Some(parent));
        }
    }
    // SAFETY: forwarded.
    unsafe { release_all(this) }
}

/// Everything [`release`] does outside its common case.
///
/// # Safety
/// As for [`release`].
#[inline(never)]
unsafe fn release_all(mut this: NonNull<Inner>) {
    // A destructor that panics (an unstarted greenlet's closure, a
    // greenlet-local value) must not stop the release half-way, which would
    // leak the object and skip its ancestors: its panic is held, the release
    // is finished, and the panic goes on from here (the first one, if several
    // panic; the others are dropped quietly).
    let mut panicked: Option<Box<dyn Any + Send>> = None;
    let mut hold = |outcome: std::thread::Result<()>| {
        if let Err(payload) = outcome {
            match panicked {
                None => panicked = Some(payload),
                Some(_) => super::entry::drop_quietly(payload),
            }
        }
    };
    loop {
        // SAFETY: live per the caller (or, on later rounds, because we held
        // the parent's last strong count).
        let inner = unsafe { this.as_ref() };
        match inner.state.get() {
            State::Running => break,
            // SAFETY: forwarded contract; suspended and not main.
            State::Suspended if !inner.is_main && !unsafe { super::kill::kill(this) } => {
                break; // resurrected or deliberately leaked
            }
            _ => {}
        }
        // Dead, unstarted, or a main greenlet: release what it owns. Taking
        // the fields out first keeps `inner` consistent if one of these drops
        // re-enters.
        let closure = inner.closure.take();
        let stack = inner.stack.take();
        let parent = inner.parent.take();
        if !inner.is_main {
            inner.state.set(State::Dead);
        }
        if let Some(closure) = closure {
            // SAFETY: an unstarted greenlet's closure sits on its stack, which
            // we still hold; it is dropped once, here, and never run.
            hold(panic::catch_unwind(AssertUnwindSafe(|| unsafe {
                (closure.drop)(closure.at)
            })));
        }
        if let Some(stack) = stack {
            stack::release(stack);
        }
        hold(panic::catch_unwind(AssertUnwindSafe(|| {
            inner.locals.clear()
        })));
        inner.released.set(true);
        if inner.weak.get() == 0 {
            // SAFETY: no strong and no weak handle is left, and it is emptied;
            // the allocation came from spare::slot.
            unsafe { spare::free(this.as_ptr()) };
        }
        let Some(parent) = parent else { break };
        // SAFETY: the link is a strong handle, so the parent is live.
        let parent_inner = unsafe { &*parent.as_ptr() };
        if parent_inner.strong.get() > 1 {
            drop(parent); // not the last handle: a plain decrement
            break;
        }
        // The last handle: release the parent on the next round instead of
        // recursing through Drop.
        this = parent.into_raw();
        parent_inner.strong.set(0);
    }
    if let Some(payload) = panicked {
        panic::resume_unwind(payload);
    }
}
