//! Kill on drop (SPEC S10), ported from Python greenlet's `test_greenlet.py`
//! (test_dealloc, test_parent_restored_on_kill, test_dealloc_switch_args_not_lost,
//! test_dealloc_catches_GreenletExit_throws_other) and `test_gc.py`, plus the
//! Rust-specific cases: every destructor on the killed stack runs, a greenlet
//! that refuses to die is reported and leaked, never freed under live frames.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit};

#[path = "support/child.rs"]
mod child;

#[derive(Debug, PartialEq)]
struct SomeError;

/// Records its name in a shared log when dropped.
struct Guard(&'static str, Rc<RefCell<Vec<&'static str>>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

/// What kind of payload came out of a switch: Python's `sys.exc_info()[0]`.
fn kind(payload: &(dyn Any + Send)) -> &'static str {
    if payload.is::<GreenletExit>() {
        "GreenletExit"
    } else if payload.is::<SomeError>() {
        "SomeError"
    } else {
        "other"
    }
}

/// Python's `fmain`: wait in the parent; record whatever is raised there and
/// let it go on; if resumed normally, raise SomeError.
fn fmain(seen: Rc<RefCell<Vec<&'static str>>>) -> impl FnOnce(greenlet::Value) {
    move |_| {
        let parent = Greenlet::current().parent().unwrap();
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| parent.switch(()))) {
            seen.borrow_mut().push(kind(&*payload));
            panic::resume_unwind(payload);
        }
        panic::resume_unwind(Box::new(SomeError));
    }
}

#[test]
fn dropping_the_last_handle_throws_greenlet_exit() {
    // test_greenlet.py: test_dealloc
    let seen = Rc::new(RefCell::new(Vec::new()));
    let g1 = Greenlet::new(fmain(seen.clone()));
    let g2 = Greenlet::new(fmain(seen.clone()));
    g1.switch(());
    g2.switch(());
    assert!(seen.borrow().is_empty());
    let w1 = g1.downgrade();
    drop(g1);
    assert_eq!(*seen.borrow(), ["GreenletExit"]);
    assert!(w1.upgrade().is_none());
    drop(g2);
    assert_eq!(*seen.borrow(), ["GreenletExit", "GreenletExit"]);
}

#[test]
fn every_destructor_on_the_killed_stack_runs_innermost_first() {
    fn nest(depth: u32, log: Rc<RefCell<Vec<&'static str>>>) {
        const NAMES: [&str; 4] = ["frame 0", "frame 1", "frame 2", "frame 3"];
        let _guard = Guard(NAMES[depth as usize], log.clone());
        if depth == 3 {
            Greenlet::main().switch("deep");
            unreachable!("killed, not resumed");
        }
        nest(depth + 1, log);
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        let _outer = Guard("closure", l.clone());
        nest(0, l);
    });
    assert_eq!(g.switch(()).downcast::<&str>().unwrap(), "deep");
    assert!(log.borrow().is_empty());
    drop(g);
    assert_eq!(
        *log.borrow(),
        ["frame 3", "frame 2", "frame 1", "frame 0", "closure"]
    );
}

#[test]
fn the_killed_greenlet_runs_with_the_dropper_as_parent_which_is_restored_after() {
    // test_greenlet.py: test_parent_restored_on_kill. The worker's parent is a
    // hub; during the kill its parent is the dropper (main); it catches the
    // exit and switches to the hub instead of dying, and keeps a handle to
    // itself, so it lives on, with its original parent back.
    let hub = Greenlet::new(|_| ());
    let result: Rc<RefCell<Vec<Greenlet>>> = Rc::default();
    let r = result.clone();
    let h = hub.clone();
    let g = Greenlet::builder()
        .parent(&hub)
        .spawn(move |_| {
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            let me = Greenlet::current();
            r.borrow_mut().push(me.parent().unwrap());
            r.borrow_mut().push(me);
            h.switch(());
        })
        .unwrap();
    g.switch(());
    drop(g);
    let result = std::mem::take(&mut *result.borrow_mut());
    assert_eq!(result.len(), 2, "the worker did not run its handler");
    assert_eq!(
        result[0],
        Greenlet::main(),
        "the dropper was the parent during the kill"
    );
    assert!(
        hub.is_dead(),
        "the worker switched to the hub, which ran and died"
    );
    assert!(
        result[1].is_active(),
        "the worker lives on: it refused to die"
    );
    assert_eq!(
        result[1].parent(),
        Some(hub.clone()),
        "its own parent is back"
    );
    // Clean up: kill it for good, explicitly (it does not catch this one).
    let worker = &result[1];
    let v = worker.throw(GreenletExit);
    assert!(v.is::<GreenletExit>() && worker.is_dead());
}

#[test]
fn the_parent_is_restored_after_a_quiet_death_too() {
    // Observed through a weak handle cannot work (it no longer upgrades), so
    // through a handle the greenlet gives away while dying.
    let hub = Greenlet::new(|_| ());
    let escaped: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let e = escaped.clone();
    let g = Greenlet::builder()
        .parent(&hub)
        .spawn(move |_| {
            struct GiveAway(Rc<RefCell<Option<Greenlet>>>);
            impl Drop for GiveAway {
                fn drop(&mut self) {
                    *self.0.borrow_mut() = Some(Greenlet::current());
                }
            }
            let _give = GiveAway(e);
            Greenlet::main().switch(());
        })
        .unwrap();
    g.switch(());
    drop(g);
    let g = escaped
        .borrow_mut()
        .take()
        .expect("resurrected by its destructor");
    assert!(g.is_dead());
    assert_eq!(g.parent(), Some(hub.clone()));
    assert!(
        !hub.is_started(),
        "the kill went to the dropper, not the hub"
    );
}

#[test]
fn the_parent_is_not_restored_where_that_would_close_a_cycle() {
    // During the kill, the old parent is re-parented under the dying
    // greenlet; putting the old parent back would make each the other's
    // ancestor, so the dropper stays the parent.
    let old_parent = Greenlet::new(|_| ());
    let kept: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let (k, p) = (kept.clone(), old_parent.clone());
    let g = Greenlet::builder()
        .parent(&old_parent)
        .spawn(move |_| {
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            p.set_parent(&Greenlet::current()).unwrap();
            *k.borrow_mut() = Some(Greenlet::current());
            Greenlet::main().switch(()); // survives, resurrected
        })
        .unwrap();
    g.switch(());
    drop(g);
    let g = kept.borrow_mut().take().unwrap();
    assert_eq!(old_parent.parent(), Some(g.clone()));
    assert_eq!(g.parent(), Some(Greenlet::main()), "no cycle was made");
    assert!(g.throw(GreenletExit).is::<GreenletExit>());
    assert!(g.is_dead());
}

#[test]
fn a_child_parent_link_keeps_a_suspended_greenlet_alive() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let g = Greenlet::new(fmain(seen.clone()));
    g.switch(());
    let child = Greenlet::builder().parent(&g).spawn(|_| ()).unwrap();
    drop(g);
    assert!(
        seen.borrow().is_empty(),
        "the child's parent link is a handle"
    );
    // Dropping the unstarted child drops its closure and its parent link, the
    // last handle to g, which is then killed.
    drop(child);
    assert_eq!(*seen.borrow(), ["GreenletExit"]);
}

#[test]
fn an_unstarted_greenlet_is_not_run_its_closure_is_dropped() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let guard = Guard("closure state", log.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |_| {
        let _guard = guard;
        r.set(true);
    });
    drop(g);
    assert!(!ran.get());
    assert_eq!(*log.borrow(), ["closure state"]);
}

#[test]
fn a_greenlet_that_catches_the_exit_and_returns_dies_normally() {
    let state = Rc::new(Cell::new("suspended"));
    let s = state.clone();
    let g = Greenlet::new(move |_| {
        let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
        assert!(caught.unwrap_err().is::<GreenletExit>());
        s.set("caught the exit and returned");
        "ignored"
    });
    g.switch(());
    drop(g);
    assert_eq!(state.get(), "caught the exit and returned");
}

#[test]
fn switch_arguments_are_not_lost_when_the_switcher_is_killed() {
    // test_greenlet.py: test_dealloc_switch_args_not_lost. The worker drops
    // every handle to itself and switches to main with a value; the switch
    // hands main the last reference, whose release kills the worker before
    // main resumes. Main must still get the value.
    let seen = Rc::new(Cell::new(false));
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let initiator_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let (s, sl, init) = (seen.clone(), slot.clone(), initiator_slot.clone());
    let worker = Greenlet::new(move |_| {
        struct Finally(Rc<Cell<bool>>);
        impl Drop for Finally {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let value = Greenlet::main().switch(());
        drop(sl.borrow_mut().take()); // del worker[0]
        let initiator = init.borrow_mut().take().unwrap();
        initiator.set_parent(&Greenlet::main()).unwrap();
        drop(initiator);
        let _finally = Finally(s);
        Greenlet::main().switch(value);
        unreachable!("killed as soon as main resumed");
    });
    *slot.borrow_mut() = Some(worker.clone());
    worker.switch(()); // prime it
    let initiator = Greenlet::builder().parent(&worker).spawn(|_| 42).unwrap();
    *initiator_slot.borrow_mut() = Some(initiator.clone());
    let weak = worker.downgrade();
    drop(worker);
    let value = initiator.switch(());
    assert!(seen.get(), "the worker was killed, its destructors ran");
    assert_eq!(value.downcast::<i32>().unwrap(), 42);
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_greenlet_killed_inside_a_greenlet_returns_to_that_greenlet() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let outer = Greenlet::new(move |_| {
        let l2 = l.clone();
        let inner = Greenlet::new(move |_| {
            let _guard = Guard("inner's frame", l2);
            let parent = Greenlet::current().parent().unwrap();
            parent.switch(());
        });
        inner.switch(());
        drop(inner);
        l.borrow_mut().push("outer after the drop");
        "outer done"
    });
    assert_eq!(outer.switch(()).downcast::<&str>().unwrap(), "outer done");
    assert_eq!(*log.borrow(), ["inner's frame", "outer after the drop"]);
}

#[test]
fn a_cycle_through_a_suspended_stack_is_not_collected() {
    // As in Python, a greenlet whose own stack holds a strong handle to it
    // (here through the child whose parent link points back) is part of a
    // cycle and is never killed: there is no cycle collector. docs/semantics.md
    // explains how weak handles avoid such cycles.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let outer = Greenlet::new(move |_| {
        let _guard = Guard("outer's frame", l);
        let inner = Greenlet::new(|_| {
            let parent = Greenlet::current().parent().unwrap();
            parent.switch(());
        });
        inner.switch(());
        Greenlet::main().switch(());
        drop(inner);
    });
    outer.switch(());
    let weak = outer.downgrade();
    drop(outer);
    assert!(log.borrow().is_empty(), "the cycle kept it alive");
    // Break it by hand: resume it so it drops its child and finishes.
    let outer = weak.upgrade().expect("still alive in the cycle");
    outer.switch(());
    assert!(outer.is_dead());
    assert_eq!(*log.borrow(), ["outer's frame"]);
}

#[test]
fn a_temporary_handle_to_itself_held_across_a_switch_prevents_the_kill() {
    // `Greenlet::current().parent().unwrap().switch(x)` keeps the temporary
    // `Greenlet::current()` alive until the end of the statement, that is
    // across the switch: the greenlet then holds a handle to itself and is
    // never killed on drop (Rust's temporary lifetimes; docs/semantics.md).
    // Binding the parent first (`let p = ...; p.switch(x)`) avoids it.
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let holds_itself = Greenlet::new(move |_| {
        let _guard = Guard("temporary", l1);
        Greenlet::current().parent().unwrap().switch(());
    });
    let binds_first = Greenlet::new(move |_| {
        let _guard = Guard("bound", l2);
        let parent = Greenlet::current().parent().unwrap();
        parent.switch(());
    });
    holds_itself.switch(());
    binds_first.switch(());
    let weak = holds_itself.downgrade();
    drop(holds_itself);
    drop(binds_first);
    assert_eq!(*log.borrow(), ["bound"], "only the bound one was killed");
    let g = weak.upgrade().expect("kept alive by its own temporary");
    assert!(g.throw(GreenletExit).is::<GreenletExit>());
    assert_eq!(*log.borrow(), ["bound", "temporary"]);
}

// ------------------------------------------------- reported on stderr (children)

#[test]
fn a_kill_answered_by_another_panic_is_reported() {
    // test_greenlet.py: test_dealloc_catches_GreenletExit_throws_other (Python
    // reports it through sys.unraisablehook).
    if child::in_child() {
        let g = Greenlet::new(|_| {
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            panic::resume_unwind(Box::new("SomeError instead of dying"));
        });
        g.switch(());
        drop(g);
        println!("the dropper goes on");
        return;
    }
    let out = child::run_child("a_kill_answered_by_another_panic_is_reported");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("the dropper goes on"), "{stdout}");
    assert!(
        stderr.contains("raised a panic instead of dying quietly")
            && stderr.contains("SomeError instead of dying"),
        "no report: {stderr}"
    );
}

#[test]
fn a_greenlet_that_switches_elsewhere_instead_of_dying_is_leaked_not_freed() {
    if child::in_child() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let hub = Greenlet::new(|_| "hub ran");
        let h = hub.clone();
        let g = Greenlet::new(move |_| {
            let _guard = Guard("g's frame", l);
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            // Refuses: goes to the hub, which dies into main (the killer).
            h.switch(());
            unreachable!("never resumed");
        });
        g.switch(());
        drop(g);
        assert!(hub.is_dead());
        // The frames of g are alive (leaked), so its guard was never dropped.
        assert!(
            log.borrow().is_empty(),
            "a leaked stack's frames were freed"
        );
        // More greenlets must not reuse the leaked stack.
        let fresh: Vec<Greenlet> = (0usize..4)
            .map(|i| Greenlet::new(move |_| Greenlet::main().switch(i)))
            .collect();
        for (i, f) in fresh.iter().enumerate() {
            assert_eq!(f.switch(()).downcast::<usize>().unwrap(), i);
        }
        assert!(log.borrow().is_empty());
        println!("still fine");
        return;
    }
    let out =
        child::run_child("a_greenlet_that_switches_elsewhere_instead_of_dying_is_leaked_not_freed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("still fine"), "{stdout}");
    assert!(stderr.contains("did not die"), "no report: {stderr}");
}
