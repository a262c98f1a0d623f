//! Weak handles (SPEC S13) and reference cycles, ported from Python
//! greenlet's `test_weakref.py` and `test_gc.py`. Rust has no cycle collector:
//! where Python's gc frees a cycle, these tests show the cycle staying alive
//! with strong handles and going away once a `WeakGreenlet` replaces one link.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit, WeakGreenlet};

/// Sets a flag when dropped.
struct Flag(Rc<Cell<bool>>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn a_weak_handle_to_a_dead_greenlet_dies_with_it() {
    // test_weakref.py: test_dead_weakref
    let dead = || {
        let g = Greenlet::new(|_| ());
        g.switch(());
        g
    };
    let o = dead().downgrade();
    assert!(o.upgrade().is_none());
}

#[test]
fn a_weak_handle_to_an_unstarted_greenlet_dies_with_it() {
    // test_weakref.py: test_inactive_weakref; test_gc.py: test_inactive_ref
    let o = Greenlet::new(|_| ()).downgrade();
    assert!(o.upgrade().is_none());
}

#[test]
fn a_weak_handle_upgrades_while_a_strong_one_lives() {
    let g = Greenlet::new(|_| Greenlet::main().switch(()));
    let w = g.downgrade();
    let w2 = w.clone();
    assert_eq!(w.upgrade(), Some(g.clone()));
    g.switch(());
    assert_eq!(w2.upgrade(), Some(g.clone()));
    assert!(format!("{w:?}").starts_with("WeakGreenlet("));
    drop(w);
    drop(g);
    assert!(w2.upgrade().is_none());
}

#[test]
fn weak_handles_do_not_prevent_the_kill() {
    let killed = Rc::new(Cell::new(false));
    let flag = Flag(killed.clone());
    let g = Greenlet::new(move |_| {
        let _flag = flag;
        Greenlet::main().switch(());
    });
    g.switch(());
    let weak: Vec<WeakGreenlet> = (0..3).map(|_| g.downgrade()).collect();
    drop(g);
    assert!(killed.get(), "weak handles kept it from being killed");
    assert!(weak.iter().all(|w| w.upgrade().is_none()));
}

#[test]
fn a_weak_handle_to_a_greenlet_being_dropped_does_not_upgrade() {
    // test_weakref.py: test_dealloc_weakref. The worker waits; an unstarted
    // greenlet g2 holds the only handle to it (its parent link); the worker
    // holds only a weak handle to g2. Dropping g2 kills the worker, which then
    // finds g2 gone.
    let seen: Rc<RefCell<Vec<Option<Greenlet>>>> = Rc::default();
    let slot: Rc<RefCell<Option<WeakGreenlet>>> = Rc::default();
    let (s, sl) = (seen.clone(), slot.clone());
    let worker = Greenlet::new(move |_| {
        struct Finally(
            Rc<RefCell<Vec<Option<Greenlet>>>>,
            Rc<RefCell<Option<WeakGreenlet>>>,
        );
        impl Drop for Finally {
            fn drop(&mut self) {
                let g2 = self.1.borrow().as_ref().unwrap().upgrade();
                self.0.borrow_mut().push(g2);
            }
        }
        let _finally = Finally(s, sl);
        Greenlet::main().switch(());
    });
    worker.switch(());
    let g2 = Greenlet::builder().parent(&worker).spawn(|_| ()).unwrap();
    *slot.borrow_mut() = Some(g2.downgrade());
    drop(worker);
    assert!(seen.borrow().is_empty());
    drop(g2);
    assert_eq!(seen.borrow().len(), 1, "the worker was killed");
    assert!(seen.borrow()[0].is_none());
}

#[test]
fn a_greenlet_being_killed_cannot_be_upgraded_to_but_is_current() {
    // A deliberate difference from Python (docs/semantics.md): as with Rc, a
    // weak handle no longer upgrades once the last strong handle has dropped,
    // even while the kill runs. Greenlet::current() still works in there.
    let report: Rc<RefCell<Vec<bool>>> = Rc::default();
    let weak_self: Rc<RefCell<Option<WeakGreenlet>>> = Rc::default();
    let (r, w) = (report.clone(), weak_self.clone());
    let g = Greenlet::new(move |_| {
        let e = std::panic::catch_unwind(|| Greenlet::main().switch(())).unwrap_err();
        assert!(e.is::<GreenletExit>());
        let upgraded = w.borrow().as_ref().unwrap().upgrade();
        r.borrow_mut().push(upgraded.is_some());
        r.borrow_mut().push(Greenlet::current().is_current());
    });
    g.switch(());
    *weak_self.borrow_mut() = Some(g.downgrade());
    drop(g);
    assert_eq!(*report.borrow(), [false, true]);
    assert!(weak_self.borrow().as_ref().unwrap().upgrade().is_none());
}

#[test]
fn a_dead_greenlet_that_returned_itself_is_freed() {
    // test_gc.py: test_dead_circular_ref: greenlet(getcurrent).switch()
    let g = Greenlet::new(|_| Greenlet::current());
    let itself = g.switch(()).downcast::<Greenlet>().unwrap();
    assert_eq!(itself, g);
    let o = g.downgrade();
    drop(g);
    assert!(o.upgrade().is_some());
    drop(itself);
    assert!(o.upgrade().is_none());
}

#[test]
fn a_self_reference_through_the_closure_is_a_cycle_a_weak_one_is_not() {
    // test_gc.py: test_circular_greenlet (o.self = o). Python's gc frees it;
    // in Rust a strong self-reference keeps the greenlet alive for ever, so
    // hold a WeakGreenlet to yourself instead.
    fn suspended_with_self_ref(weak: bool, killed: Rc<Cell<bool>>) -> WeakGreenlet {
        let slot_strong: Rc<RefCell<Option<Greenlet>>> = Rc::default();
        let slot_weak: Rc<RefCell<Option<WeakGreenlet>>> = Rc::default();
        let (ss, sw) = (slot_strong.clone(), slot_weak.clone());
        let flag = Flag(killed);
        let g = Greenlet::new(move |_| {
            let _flag = flag;
            let _keep = (ss, sw); // the closure owns the slot holding itself
            Greenlet::main().switch(());
        });
        if weak {
            *slot_weak.borrow_mut() = Some(g.downgrade());
        } else {
            *slot_strong.borrow_mut() = Some(g.clone());
        }
        g.switch(());
        g.downgrade()
    }
    let killed = Rc::new(Cell::new(false));
    let w = suspended_with_self_ref(true, killed.clone());
    assert!(
        killed.get(),
        "with a weak self-reference, dropping it kills it"
    );
    assert!(w.upgrade().is_none());

    let killed = Rc::new(Cell::new(false));
    let w = suspended_with_self_ref(false, killed.clone());
    assert!(!killed.get(), "a strong self-reference is a cycle");
    // Break the cycle by hand: kill it explicitly (its frames let go of the
    // slot as they unwind).
    let g = w.upgrade().expect("kept alive by the cycle");
    assert!(g.throw(GreenletExit).is::<GreenletExit>());
    assert!(killed.get());
    drop(g);
    assert!(w.upgrade().is_none(), "freed once the cycle is broken");
}

#[test]
fn weak_handles_break_a_parent_child_cycle() {
    // A parent that keeps its child on its stack while the child's parent
    // link points back forms a cycle (see kill_on_drop.rs). Keeping only a
    // weak handle to the child on the parent's stack, with the child owned
    // elsewhere, avoids it.
    let killed = Rc::new(Cell::new(false));
    let children: Rc<RefCell<Vec<Greenlet>>> = Rc::default();
    let (flag, kids) = (Flag(killed.clone()), children.clone());
    let outer = Greenlet::new(move |_| {
        let _flag = flag;
        let child = Greenlet::new(|_| {
            let parent = Greenlet::current().parent().unwrap();
            parent.switch(());
        });
        let weak_child = child.downgrade();
        kids.borrow_mut().push(child);
        weak_child.upgrade().unwrap().switch(());
        Greenlet::main().switch(());
        drop(weak_child);
    });
    outer.switch(());
    drop(outer);
    assert!(!killed.get(), "still held by the child's parent link");
    children.borrow_mut().clear(); // the child dies (killed), then its parent link goes
    assert!(
        killed.get(),
        "the outer greenlet was killed once its child let go"
    );
}
