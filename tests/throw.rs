//! Throw (SPEC S7) and GreenletExit (SPEC S6), ported from Python greenlet's
//! `test_throw.py` and the throw cases of `test_greenlet.py`: into suspended,
//! unstarted, current and dead greenlets.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit, Value};

/// Python's `RuntimeError("...")`.
#[derive(Debug, PartialEq)]
struct RuntimeError(&'static str);
/// Python's `IndexError`.
#[derive(Debug, PartialEq)]
struct IndexError;

/// Python's module-level `switch(*args)`: to the current greenlet's parent.
fn switch_to_parent<T: 'static>(v: T) -> Value {
    let parent = Greenlet::current().parent().expect("not main");
    parent.switch(v)
}

fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn std::any::Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

fn text(v: Value) -> &'static str {
    v.downcast::<&str>().expect("a &str")
}

#[test]
fn a_thrown_error_is_raised_from_the_pending_switch() {
    // test_throw.py: test_class
    let g = Greenlet::new(|_| {
        match caught(|| switch_to_parent("ok")) {
            Err(e) if e.is::<RuntimeError>() => {
                switch_to_parent("ok");
            }
            _ => {
                switch_to_parent("fail");
            }
        };
    });
    assert_eq!(text(g.switch(())), "ok");
    assert_eq!(text(g.throw(RuntimeError(""))), "ok");
}

#[test]
fn the_thrown_payload_arrives_intact() {
    // test_throw.py: test_val
    let f = || {
        Greenlet::new(|_| {
            if let Err(e) = caught(|| switch_to_parent("ok")) {
                if let Some(RuntimeError("ciao")) = e.downcast_ref::<RuntimeError>() {
                    switch_to_parent("ok");
                    return;
                }
            }
            switch_to_parent("fail");
        })
    };
    let g = f();
    assert_eq!(text(g.switch(())), "ok");
    assert_eq!(text(g.throw(RuntimeError("ciao"))), "ok");
    // Any `Any + Send` type travels: a String, as a formatted panic would carry.
    let g = Greenlet::new(|_| {
        let e = caught(|| switch_to_parent(())).unwrap_err();
        *e.downcast::<String>().unwrap()
    });
    g.switch(());
    let v = g.throw(String::from("a message"));
    assert_eq!(v.downcast::<String>().unwrap(), "a message");
}

#[test]
fn throwing_greenlet_exit_kills_quietly_and_the_dead_eat_it_again() {
    // test_throw.py: test_kill
    let g = Greenlet::new(|_| {
        switch_to_parent("ok");
        switch_to_parent("fail");
    });
    assert_eq!(text(g.switch(())), "ok");
    let res = g.throw(GreenletExit);
    assert_eq!(res.downcast::<GreenletExit>().unwrap(), GreenletExit);
    assert!(g.is_dead());
    // "immediately eaten by the already-dead greenlet"
    let res = g.throw(GreenletExit);
    assert_eq!(res.downcast::<GreenletExit>().unwrap(), GreenletExit);
}

/// Python's f1 in test_throw_goes_to_original_parent.
fn f1(_: Value) -> &'static str {
    let main = Greenlet::main();
    match caught(|| main.switch("f1 ready to catch")) {
        Err(e) if e.is::<IndexError>() => "caught",
        Err(e) => panic::resume_unwind(e),
        Ok(_) => "normal exit",
    }
}

fn f2(_: Value) {
    Greenlet::main().switch("from f2");
}

#[test]
fn a_throw_into_an_unstarted_greenlet_goes_to_its_unstarted_parent_and_on_up() {
    // test_throw_goes_to_original_parent, first part: neither has started, so
    // both die without running, and the error reaches main.
    let g1 = Greenlet::new(f1);
    let g2 = Greenlet::builder().parent(&g1).spawn(f2).unwrap();
    let err = caught(|| g2.throw(IndexError)).unwrap_err();
    assert!(err.is::<IndexError>());
    assert!(g2.is_dead());
    assert!(g1.is_dead());
}

#[test]
fn a_throw_into_an_unstarted_greenlet_is_caught_by_its_waiting_parent() {
    // test_throw_goes_to_original_parent, second part.
    let g1 = Greenlet::new(f1);
    let g2 = Greenlet::builder().parent(&g1).spawn(f2).unwrap();
    assert_eq!(text(g1.switch(())), "f1 ready to catch");
    assert_eq!(text(g2.throw(IndexError)), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
}

#[test]
fn a_throw_goes_to_the_parent_not_to_the_thrower() {
    // test_throw_goes_to_original_parent, third part: g2 waits in main, yet
    // its death goes to its parent g1.
    let g1 = Greenlet::new(f1);
    let g2 = Greenlet::builder().parent(&g1).spawn(f2).unwrap();
    assert_eq!(text(g1.switch(())), "f1 ready to catch");
    assert_eq!(text(g2.switch(())), "from f2");
    assert_eq!(text(g2.throw(IndexError)), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
}

#[test]
fn a_throw_into_an_unstarted_greenlet_never_calls_run_and_drops_its_closure() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let ran = Rc::new(Cell::new(false));
    let (flag, r) = (Flag(dropped.clone()), ran.clone());
    let g = Greenlet::new(move |_| {
        let _flag = flag;
        r.set(true);
    });
    let err = caught(|| g.throw(RuntimeError("never run"))).unwrap_err();
    assert_eq!(
        *err.downcast::<RuntimeError>().unwrap(),
        RuntimeError("never run")
    );
    assert!(!ran.get());
    assert!(dropped.get(), "the closure was dropped at its death");
    assert!(g.is_dead() && g.is_started(), "started (entered) and dead");
}

#[test]
fn a_throw_into_the_current_greenlet_is_raised_at_once() {
    let e = caught(|| Greenlet::current().throw(RuntimeError("here"))).unwrap_err();
    assert_eq!(*e.downcast::<RuntimeError>().unwrap(), RuntimeError("here"));
    // In a greenlet too; it is not killed by it when it catches it.
    let g = Greenlet::new(|_| {
        let e = caught(|| Greenlet::current().throw(GreenletExit)).unwrap_err();
        assert!(
            e.is::<GreenletExit>(),
            "GreenletExit is raised, not returned"
        );
        switch_to_parent("alive");
        "done"
    });
    assert_eq!(text(g.switch(())), "alive");
    assert!(g.is_active());
    assert_eq!(text(g.switch(())), "done");
}

#[test]
fn a_throw_into_the_current_greenlet_uncaught_kills_it() {
    let g = Greenlet::new(|_| {
        Greenlet::current().throw(RuntimeError("self"));
        unreachable!()
    });
    let e = caught(|| g.switch(())).unwrap_err();
    assert_eq!(*e.downcast::<RuntimeError>().unwrap(), RuntimeError("self"));
    assert!(g.is_dead());
}

#[test]
fn a_throw_into_a_dead_greenlet_is_raised_in_its_first_live_ancestor() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let p = Greenlet::new(move |_| {
        let c = Greenlet::new(|_| 1);
        c.switch(());
        assert!(c.is_dead());
        match caught(|| c.throw(RuntimeError("into the dead"))) {
            Err(e) => l
                .borrow_mut()
                .push(format!("{:?}", e.downcast::<RuntimeError>().unwrap())),
            Ok(_) => l.borrow_mut().push("returned".into()),
        }
        // GreenletExit into the dead comes back as a value (Python agrees).
        let v = c.throw(GreenletExit);
        l.borrow_mut()
            .push(format!("{:?}", v.downcast::<GreenletExit>().unwrap()));
        "p done"
    });
    assert_eq!(text(p.switch(())), "p done");
    assert_eq!(
        *log.borrow(),
        ["RuntimeError(\"into the dead\")", "GreenletExit"]
    );
    // From main, with main as the first live ancestor.
    let e = caught(|| p.throw(IndexError)).unwrap_err();
    assert!(e.is::<IndexError>());
    assert!(p.throw(GreenletExit).is::<GreenletExit>());
}

#[test]
fn greenlet_exit_escaping_run_is_a_quiet_death() {
    // SPEC S6: the parent's pending call returns Value::new(GreenletExit).
    let g = Greenlet::new(|_| -> i32 { panic::resume_unwind(Box::new(GreenletExit)) });
    let v = g.switch(());
    assert_eq!(v.downcast::<GreenletExit>().unwrap(), GreenletExit);
    assert!(g.is_dead());
    // Also when it reaches a greenlet parent.
    let parent = Greenlet::new(|_| {
        let child = Greenlet::new(|_| -> () { panic::resume_unwind(Box::new(GreenletExit)) });
        child.switch(()).is::<GreenletExit>()
    });
    assert!(parent.switch(()).downcast::<bool>().unwrap());
}

#[test]
fn a_caught_greenlet_exit_can_be_answered_with_a_value() {
    let g = Greenlet::new(|_| {
        let e = caught(|| switch_to_parent(())).unwrap_err();
        assert!(e.is::<GreenletExit>());
        "cleaned up"
    });
    g.switch(());
    assert_eq!(text(g.throw(GreenletExit)), "cleaned up");
    assert!(g.is_dead());
}

thread_local! {
    static HOOK_CALLS: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn a_throw_prints_no_panic_message() {
    // The panic hook is process-wide; count only the calls on this thread.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            HOOK_CALLS.with(|c| c.set(c.get() + 1));
            previous(info);
        }));
    });
    let before = HOOK_CALLS.with(Cell::get);
    let g = Greenlet::new(|_| switch_to_parent(()));
    g.switch(());
    assert!(caught(|| g.throw(RuntimeError("quiet"))).is_err());
    let g = Greenlet::new(|_| ());
    assert!(caught(|| g.throw(RuntimeError("quiet"))).is_err());
    assert!(caught(|| Greenlet::current().throw(RuntimeError("quiet"))).is_err());
    assert_eq!(
        HOOK_CALLS.with(Cell::get),
        before,
        "a throw ran the panic hook"
    );
    // A real panic does run it (so the counter works).
    let g = Greenlet::new(|_| -> () { panic!("loud on purpose (expected in test output)") });
    assert!(caught(|| g.switch(())).is_err());
    assert_eq!(HOOK_CALLS.with(Cell::get), before + 1);
}
