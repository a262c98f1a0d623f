//! Leaks, ported from Python greenlet's `test_leaks.py` in Rust terms: Python
//! counts references to the arguments and greenlets; here an `Rc` (or `Arc`
//! across threads) rides along each path a value, payload, closure or handle
//! can take, and its count must come back to where it started. Memory-level
//! checks (RSS, mappings) live in tests/churn.rs.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use greenlet::{settrace, Event, Greenlet, GreenletExit, Tracer, Value};

/// A payload that can travel as a panic (must be Send): an Arc.
type Token = Arc<()>;

fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn std::any::Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

fn rounds() -> usize {
    if cfg!(debug_assertions) {
        100
    } else {
        1000
    }
}

#[test]
fn switch_arguments_are_not_leaked() {
    // test_arg_refs / test_kwarg_refs: pass the same values through 100 switches.
    let args = Rc::new(("a", "b", "c"));
    let before = Rc::strong_count(&args);
    let g = Greenlet::new(|mut v: Value| loop {
        let parent = Greenlet::current().parent().unwrap();
        v = parent.switch(v);
    });
    for _ in 0..rounds() {
        let back = g.switch(args.clone());
        assert!(back.is::<Rc<(&str, &str, &str)>>());
    }
    assert_eq!(Rc::strong_count(&args), before);
    drop(g); // killed in its loop
    assert_eq!(Rc::strong_count(&args), before);
}

#[test]
fn return_values_and_panic_payloads_are_not_leaked() {
    let token: Token = Arc::new(());
    for _ in 0..rounds() {
        let t = token.clone();
        let g = Greenlet::new(move |_| t);
        drop(g.switch(()));
        let t = token.clone();
        let g = Greenlet::new(move |_| -> () { panic::resume_unwind(Box::new(t)) });
        assert!(caught(|| g.switch(())).is_err());
    }
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn thrown_payloads_are_not_leaked_whatever_the_target() {
    let token: Token = Arc::new(());
    for _ in 0..rounds() {
        // Suspended, catching it.
        let g = Greenlet::new(|_| {
            let parent = Greenlet::current().parent().unwrap();
            let _ = caught(|| parent.switch(()));
        });
        g.switch(());
        g.throw(token.clone());
        // Unstarted: it goes to the parent.
        let g = Greenlet::new(|_| ());
        assert!(caught(|| g.throw(token.clone())).is_err());
        // Dead: raised in main.
        assert!(caught(|| g.throw(token.clone())).is_err());
        // Current.
        assert!(caught(|| Greenlet::current().throw(token.clone())).is_err());
    }
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn values_sent_to_the_dead_reach_the_ancestor_and_are_not_leaked() {
    let args = Rc::new(7);
    let g = Greenlet::new(|_| ());
    g.switch(());
    for _ in 0..rounds() {
        let back = g.switch(args.clone());
        assert_eq!(**back.downcast_ref::<Rc<i32>>().unwrap(), 7);
    }
    assert_eq!(Rc::strong_count(&args), 1);
}

#[test]
fn closures_of_unstarted_dead_and_killed_greenlets_are_released() {
    let captured = Rc::new(());
    for _ in 0..rounds() {
        let c = captured.clone();
        drop(Greenlet::new(move |_| drop(c))); // unstarted
        let c = captured.clone();
        Greenlet::new(move |_| drop(c)).switch(()); // ran and died
        let c = captured.clone();
        let g = Greenlet::new(move |_| {
            let _c = c;
            Greenlet::main().switch(());
        });
        g.switch(());
        drop(g); // killed
        let c = captured.clone();
        let g = Greenlet::new(move |_| {
            let _c = c;
            Greenlet::main().switch(());
        });
        g.switch(());
        assert!(g.throw(GreenletExit).is::<GreenletExit>()); // thrown out
    }
    assert_eq!(Rc::strong_count(&captured), 1);
}

#[test]
fn parent_links_are_released_with_the_child() {
    // An unstarted parent, held only by its children's parent links, is
    // released (its closure dropped) when the last child goes.
    let captured = Rc::new(());
    for _ in 0..rounds() {
        let c = captured.clone();
        let parent = Greenlet::new(move |_| drop(c));
        let kids: Vec<Greenlet> = (0..3)
            .map(|_| Greenlet::builder().parent(&parent).spawn(|_| ()).unwrap())
            .collect();
        let weak = parent.downgrade();
        drop(parent);
        assert!(weak.upgrade().is_some());
        drop(kids);
        assert!(weak.upgrade().is_none());
    }
    assert_eq!(Rc::strong_count(&captured), 1);
}

#[test]
fn tracers_are_released_when_replaced_or_when_they_fail() {
    let owned = Rc::new(());
    let o = owned.clone();
    let tracer: Tracer = Rc::new(move |_: Event, _: &Greenlet, _: &Greenlet| {
        let _ = &o;
    });
    let previous = settrace(Some(tracer));
    Greenlet::new(|_| ()).switch(());
    settrace(previous);
    assert_eq!(Rc::strong_count(&owned), 1);

    let o = owned.clone();
    let failing: Tracer = Rc::new(move |_: Event, _: &Greenlet, _: &Greenlet| {
        let _ = &o;
        panic::resume_unwind(Box::new("tracer fails"));
    });
    let previous = settrace(Some(failing));
    assert!(caught(|| Greenlet::new(|_| ()).switch(())).is_err());
    assert!(greenlet::gettrace().is_none());
    settrace(previous);
    assert_eq!(
        Rc::strong_count(&owned),
        1,
        "the uninstalled tracer was freed"
    );
}

#[test]
fn greenlets_finished_in_a_thread_release_everything_at_its_exit() {
    // test_threaded_leak / test_threaded_adv_leak: threads that touch only
    // their main greenlet, or run greenlets to completion, or leave one
    // suspended in a local, let go of everything they held.
    let token: Token = Arc::new(());
    for _ in 0..2 {
        let t = token.clone();
        std::thread::spawn(move || {
            let _main = Greenlet::main();
            let _t = t;
        })
        .join()
        .unwrap();
        let t = token.clone();
        std::thread::spawn(move || {
            let ll: Rc<RefCell<Vec<Greenlet>>> = Rc::default();
            for _ in 0..2 {
                let (l, t) = (ll.clone(), t.clone());
                Greenlet::new(move |_| {
                    let _t = t;
                    l.borrow_mut().push(Greenlet::current());
                })
                .switch(());
            }
            assert!(ll.borrow().iter().all(Greenlet::is_dead));
        })
        .join()
        .unwrap();
        let t = token.clone();
        std::thread::spawn(move || {
            let g = Greenlet::new(move |_| {
                let _t = t;
                Greenlet::main().switch(());
            });
            g.switch(());
            // g is dropped (killed) as the thread's closure returns.
        })
        .join()
        .unwrap();
    }
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn greenlet_exit_values_and_self_switches_are_not_leaked() {
    let args = Rc::new(());
    for _ in 0..rounds() {
        let v = Greenlet::current().switch(args.clone());
        drop(v);
        let g = Greenlet::new(|_| Greenlet::main().switch(()));
        g.switch(());
        drop(g.throw(GreenletExit));
        drop(g.throw(GreenletExit)); // into the dead
    }
    assert_eq!(Rc::strong_count(&args), 1);
}
