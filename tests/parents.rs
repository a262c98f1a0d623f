//! The parent tree (SPEC S3, S4), ported from Python greenlet's
//! `test_greenlet.py` (TestGreenletSetParentErrors and the parent/dead cases).

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Error, Greenlet, Value};

fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn std::any::Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

#[test]
fn the_default_parent_is_the_creator() {
    // test_parent_equals_None: no parent given means the current greenlet.
    let g = Greenlet::new(|_| ());
    assert_eq!(g.parent(), Some(Greenlet::current()));
    let outer = Greenlet::new(|_| {
        let inner = Greenlet::new(|_| ());
        inner.parent() == Some(Greenlet::current())
    });
    assert!(outer.switch(()).downcast::<bool>().unwrap());
    assert_eq!(
        Greenlet::builder().spawn(|_| ()).unwrap().parent(),
        Some(Greenlet::main())
    );
}

#[test]
fn the_main_greenlet_has_no_parent_and_cannot_get_one() {
    // test_main_greenlet_parent_is_none, test_trivial_cycle_main
    let main = Greenlet::main();
    assert!(main.parent().is_none());
    assert_eq!(main.set_parent(&main), Err(Error::ParentOfMain));
    let g = Greenlet::new(|_| ());
    assert_eq!(main.set_parent(&g), Err(Error::ParentOfMain));
    assert!(main.parent().is_none());
}

#[test]
fn trivial_and_deeper_cycles_are_refused() {
    // test_trivial_cycle, test_deeper_cycle
    let glet = Greenlet::new(|_| ());
    assert_eq!(glet.set_parent(&glet), Err(Error::CyclicParent));
    let (g1, g2, g3) = (
        Greenlet::new(|_| ()),
        Greenlet::new(|_| ()),
        Greenlet::new(|_| ()),
    );
    g1.set_parent(&g2).unwrap();
    g2.set_parent(&g3).unwrap();
    assert_eq!(g3.set_parent(&g1), Err(Error::CyclicParent));
    // Refused means unchanged.
    assert_eq!(g3.parent(), Some(Greenlet::main()));
    assert_eq!(g1.parent(), Some(g2.clone()));
}

#[test]
fn errors_explain_themselves() {
    assert_eq!(
        Error::CyclicParent.to_string(),
        "cyclic parent chain: a greenlet cannot be its own ancestor"
    );
    assert_eq!(
        Error::ParentOfMain.to_string(),
        "a main greenlet cannot have a parent"
    );
    let as_std: &dyn std::error::Error = &Error::CyclicParent;
    assert!(as_std.source().is_none());
}

#[test]
fn the_parent_can_change_in_any_state() {
    // test_set_parent_wrong_types checks the parent of an unstarted and then of
    // a running greenlet; the wrong types are compile errors in Rust.
    let a = Greenlet::new(|_| ());
    let b = Greenlet::new(|_| ());
    let g = Greenlet::new(|_| {
        let me = Greenlet::current();
        Greenlet::main().switch(());
        me.parent()
    });
    g.set_parent(&a).unwrap(); // unstarted
    g.switch(());
    g.set_parent(&b).unwrap(); // suspended
    let from_g = Greenlet::new({
        let g = g.clone();
        let a = a.clone();
        move |_| g.set_parent(&a) // from another greenlet
    });
    assert_eq!(
        from_g.switch(()).downcast::<Result<(), Error>>().unwrap(),
        Ok(())
    );
    // g returns its parent as seen from inside (a), and dies into a, which
    // starts with that value and returns () into main.
    let v = g.switch(());
    assert!(v.is::<()>());
    assert!(g.is_dead() && a.is_dead());
    g.set_parent(&b).unwrap(); // dead
    assert_eq!(g.parent(), Some(b));
}

#[test]
fn a_greenlet_can_reparent_itself_while_running() {
    let p = Greenlet::new(|v| v.downcast::<&str>().unwrap().len());
    let p2 = p.clone();
    let g = Greenlet::new(move |_| {
        Greenlet::current().set_parent(&p2).unwrap();
        "hello"
    });
    // g dies into its new parent p, which starts with g's result.
    assert_eq!(g.switch(()).downcast::<usize>().unwrap(), 5);
    assert!(p.is_dead());
}

#[test]
fn falling_off_the_end_starts_an_unstarted_parent() {
    // test_falling_off_end_switches_to_unstarted_parent_works
    let parent_never_started = Greenlet::new(|x| (x.downcast::<i32>().unwrap(), 24));
    let child = Greenlet::builder()
        .parent(&parent_never_started)
        .spawn(|_| 42)
        .unwrap();
    assert_eq!(child.switch(()).downcast::<(i32, i32)>().unwrap(), (42, 24));
}

#[test]
fn an_unstarted_parent_that_fails_on_the_result_raises_in_main() {
    // test_falling_off_end_switches_to_unstarted_parent_raises_error: Python's
    // TypeError (wrong arity) becomes the parent's own panic on a wrong type.
    #[derive(Debug)]
    struct TypeError;
    let parent_never_started = Greenlet::new(|x: Value| match x.downcast::<()>() {
        Ok(()) => 13,
        Err(_) => panic::resume_unwind(Box::new(TypeError)),
    });
    let child = Greenlet::builder()
        .parent(&parent_never_started)
        .spawn(|_| 42)
        .unwrap();
    assert!(caught(|| child.switch(())).unwrap_err().is::<TypeError>());
    assert!(child.is_dead() && parent_never_started.is_dead());
}

#[test]
fn a_dead_greenlet_reparented_to_an_unstarted_one_starts_it() {
    // test_switch_to_dead_greenlet_reparent
    let seen: Rc<RefCell<Vec<i32>>> = Rc::default();
    let s = seen.clone();
    let parent_never_started = Greenlet::new(move |_| s.borrow_mut().push(24));
    let s = seen.clone();
    let child = Greenlet::new(move |_| s.borrow_mut().push(42));
    child.switch(());
    assert_eq!(*seen.borrow(), [42]);
    child.set_parent(&parent_never_started).unwrap();
    // The same as switching to the parent.
    let result = child.switch(());
    assert!(result.is::<()>());
    assert_eq!(*seen.borrow(), [42, 24]);
}

#[test]
fn a_switch_to_the_dead_climbs_to_the_first_live_ancestor() {
    // SPEC S4, through two dead generations to a suspended grandparent.
    let grand = Greenlet::new(|_| {
        let got = Greenlet::main().switch("grand waits");
        got.downcast::<&str>().unwrap()
    });
    assert_eq!(grand.switch(()).downcast::<&str>().unwrap(), "grand waits");
    let mid = Greenlet::builder().parent(&grand).spawn(|_| ()).unwrap();
    let leaf = Greenlet::builder().parent(&mid).spawn(|_| ()).unwrap();
    // Let both run and die into main, then hang them under grand again.
    leaf.set_parent(&Greenlet::main()).unwrap();
    mid.set_parent(&Greenlet::main()).unwrap();
    leaf.switch(());
    mid.switch(());
    leaf.set_parent(&mid).unwrap();
    mid.set_parent(&grand).unwrap();
    assert!(leaf.is_dead() && mid.is_dead() && grand.is_active());
    // leaf -> mid (dead) -> grand (suspended): grand's switch returns the value,
    // grand returns it, and dies into main.
    assert_eq!(
        leaf.switch("to grand").downcast::<&str>().unwrap(),
        "to grand"
    );
    assert!(grand.is_dead());
}

#[test]
fn a_panic_passes_through_unstarted_parents_without_running_them() {
    let ran: Rc<RefCell<Vec<&str>>> = Rc::default();
    let r = ran.clone();
    let top = Greenlet::new(move |_| r.borrow_mut().push("top ran"));
    let r = ran.clone();
    let mid = Greenlet::builder()
        .parent(&top)
        .spawn(move |_| r.borrow_mut().push("mid ran"))
        .unwrap();
    let leaf = Greenlet::builder()
        .parent(&mid)
        .spawn(|_| -> () { panic::resume_unwind(Box::new("leaf failed")) })
        .unwrap();
    let e = caught(|| leaf.switch(())).unwrap_err();
    assert_eq!(*e.downcast::<&str>().unwrap(), "leaf failed");
    assert!(ran.borrow().is_empty());
    assert!(leaf.is_dead() && mid.is_dead() && top.is_dead());
}

#[test]
fn parents_of_different_threads_cannot_mix() {
    // test_threaded_reparent, test_switch_to_another_thread: Python raises at
    // run time; here a Greenlet is !Send, so sending one to another thread to
    // use as a parent does not compile. Each thread has its own tree.
    let other_main_is_main = std::thread::spawn(|| {
        let g = Greenlet::new(|_| ());
        g.parent().unwrap().is_main() && g.parent() == Some(Greenlet::main())
    })
    .join()
    .unwrap();
    assert!(other_main_is_main);
}
