//! Kill on drop (SPEC S10): a suspended greenlet whose last strong handle
//! drops is resurrected for the duration of its kill, re-parented under the
//! dropper, and `GreenletExit` is thrown into it so that every destructor on
//! its stack runs.

use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use super::error::GreenletExit;
use super::handle::Greenlet;
use super::object::{Inner, State};
use super::{entry, thread};

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
    let old_parent = inner.parent.replace(Some(Greenlet::current()));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| g.throw(GreenletExit)));
    inner.dying.set(false);
    restore_parent(inner, this, old_parent);
    if let Err(payload) = outcome {
        super::report::report(&format!(
            "greenlet: a greenlet killed on drop raised a panic instead of dying quietly (or a tracer panicked during the kill): {}",
            super::report::describe_panic(&*payload)
        ));
        entry::drop_quietly(payload);
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
