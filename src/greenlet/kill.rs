//! The last strong handle: [`release`] empties a greenlet object that no
//! handle holds any more, and kill on drop (SPEC S10): a suspended greenlet
//! whose last strong handle drops is resurrected for the duration of its
//! kill, re-parented under the dropper, and `GreenletExit` is thrown into it
//! so that every destructor on its stack runs.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use super::error::GreenletExit;
use super::object::{Greenlet, Inner, State};
use super::report::drop_quietly;
use super::switch::{self, Message};
use super::{spare, thread};
use crate::stack;

impl Drop for Greenlet {
    #[inline]
    fn drop(&mut self) {
        let inner = self.inner();
        let n = inner.strong.get() - 1;
        inner.strong.set(n);
        if n == 0 {
            // SAFETY: the count just reached zero through this handle.
            unsafe { release(NonNull::from(inner)) }
        }
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
                Some(_) => drop_quietly(payload),
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
            State::Suspended if !inner.is_main && !unsafe { kill(this) } => {
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

/// Kills a suspended greenlet whose last handle dropped (SPEC S10). Returns
/// `true` when it died and its `Inner` is back at strong count 0, ready to be
/// released; `false` when it was resurrected or is deliberately leaked.
///
/// # Safety
/// `this` must be live with strong count 0, suspended, and not a main greenlet.
#[cold]
#[inline(never)]
pub(crate) unsafe fn kill(this: NonNull<Inner>) -> bool {
    // SAFETY: live per the caller.
    let inner = unsafe { this.as_ref() };
    if thread::torn_down() {
        super::report::report("greenlet: a suspended greenlet was dropped after its thread's greenlet state was torn down; it cannot be killed, so its stack is leaked");
        return false;
    }
    // Resurrect for the duration of the kill.
    inner.strong.set(1);
    inner.dying.set(true);
    // SAFETY: the count just set to 1 is this handle's.
    let g = unsafe { Greenlet::from_raw(this.as_ptr()) };
    // The dropper is the parent for the duration of the kill, so that control
    // comes back here; the old parent link is kept, not dropped (it may be the
    // old parent's last handle), and put back afterwards, as Python does, for
    // a greenlet that survives or is resurrected.
    // SAFETY: the running greenlet is live; the new count is the link's.
    let dropper = unsafe { Greenlet::from_raw_clone(thread::current_ptr()) };
    let old_parent = inner.parent.replace(Some(dropper));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        switch::switch_slow(g.as_ptr(), Message::Throw(Box::new(GreenletExit)))
    }));
    inner.dying.set(false);
    restore_parent(inner, this, old_parent);
    if let Err(payload) = outcome {
        super::report::report(&format!(
            "greenlet: a greenlet killed on drop raised a panic instead of dying quietly (or a tracer panicked during the kill): {}",
            super::report::describe_panic(&*payload)
        ));
        drop_quietly(payload);
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
    super::report::report("greenlet: a greenlet dropped while suspended did not die when GreenletExit was thrown into it; its stack is leaked, never freed under live frames");
    std::mem::forget(g);
    false
}

/// Puts back the parent a killed greenlet had before the kill, unless that
/// would now close a cycle (the old parent was re-parented under the greenlet
/// while it was being killed): then the dropper stays its parent.
fn restore_parent(inner: &Inner, this: NonNull<Inner>, old_parent: Option<Greenlet>) {
    let Some(old) = old_parent else { return };
    let mut ancestor = Some(old.as_ptr());
    while let Some(p) = ancestor {
        if ptr::eq(p, this.as_ptr()) {
            return drop(old);
        }
        // SAFETY: `old` is live (we hold it) and each parent link is a strong
        // handle, so every ancestor is live.
        ancestor = unsafe { (*p).parent_ptr() };
    }
    // The temporary link to the dropper may be its last handle only if the
    // dropper is running with no handle of its own; then the drop finds it
    // running and leaves it alone, so this drop runs no user code.
    let dropper = inner.parent.replace(Some(old));
    drop(dropper);
}
