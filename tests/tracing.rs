//! Tracing (SPEC S11), ported from Python greenlet's `test_tracing.py`, plus
//! the event sequences Python greenlet 3.x reports for deaths, throws (into
//! unstarted, suspended, current and dead greenlets) and kills. Each expected
//! log below is what Python prints for the same scenario.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{gettrace, settrace, Event, Greenlet, GreenletExit, Tracer};

#[path = "support/recorder.rs"]
mod recorder;
use recorder::Recorder;

/// A custom error raised without the panic hook (as Python raises an exception).
#[derive(Debug, PartialEq)]
struct SomeError(&'static str);

fn raise(e: SomeError) -> ! {
    panic::resume_unwind(Box::new(e))
}

/// Runs `f`, returning the `SomeError` it raised.
fn expect_some_error<R>(f: impl FnOnce() -> R) -> SomeError {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a SomeError panic"),
        Err(p) => *p.downcast::<SomeError>().expect("a SomeError payload"),
    }
}

#[test]
fn a_greenlet_tracing() {
    // test_tracing.py: test_a_greenlet_tracing
    let rec = Recorder::new();
    let g1 = Greenlet::new(|_| ());
    let g2 = Greenlet::new(|_| -> () { raise(SomeError("dummyexc")) });
    rec.name(&g1, "g1");
    rec.name(&g2, "g2");
    let guard = rec.install();
    g1.switch(());
    let err = expect_some_error(|| g2.switch(()));
    drop(guard);
    assert_eq!(err, SomeError("dummyexc"));
    assert_eq!(
        rec.take(),
        [
            "switch main->g1",
            "switch g1->main",
            "switch main->g2",
            "throw g2->main"
        ]
    );
}

#[test]
fn an_exception_in_the_tracer_disables_tracing() {
    // test_tracing.py: test_b_exception_disables_tracing. The tracer's panic
    // is raised in the target (g), which does not catch it, so it dies and the
    // panic reaches main; no event is reported for that death.
    let g = Greenlet::new(|_| {
        Greenlet::main().switch(());
    });
    g.switch(());
    let rec = Recorder::new();
    rec.name(&g, "g");
    let inner = rec.tracer();
    let failing: Tracer = Rc::new(move |e, o, t| {
        inner(e, o, t);
        assert_eq!(*t, Greenlet::current(), "the tracer runs in the target");
        raise(SomeError("from the tracer"))
    });
    let previous = settrace(Some(failing));
    let err = expect_some_error(|| g.switch(()));
    assert!(gettrace().is_none(), "a failing tracer is uninstalled");
    settrace(previous);
    assert_eq!(err, SomeError("from the tracer"));
    assert!(g.is_dead(), "the panic was raised in g, killing it");
    assert_eq!(rec.take(), ["switch main->g"]);
}

#[test]
fn a_tracer_panic_can_be_caught_by_the_target() {
    // The panic comes out of the target's pending switch, where the target can
    // catch it like any other.
    let g = Greenlet::new(|_| {
        let r = panic::catch_unwind(|| Greenlet::main().switch(()));
        *r.unwrap_err().downcast::<SomeError>().unwrap()
    });
    g.switch(());
    let tracer: Tracer = Rc::new(|_, _, _| raise(SomeError("tracer")));
    let previous = settrace(Some(tracer));
    let v = g.switch(());
    assert!(gettrace().is_none());
    settrace(previous);
    assert_eq!(v.downcast::<SomeError>().unwrap(), SomeError("tracer"));
}

#[test]
fn setting_the_same_tracer_twice() {
    // test_tracing.py: test_set_same_tracer_twice (a refcounting bug in Python).
    let rec = Recorder::new();
    let tracer = rec.tracer();
    let before = settrace(Some(tracer.clone()));
    let first = settrace(Some(tracer.clone())).expect("the tracer was installed");
    assert!(Rc::ptr_eq(&first, &tracer));
    assert!(Rc::ptr_eq(&gettrace().unwrap(), &tracer));
    Greenlet::new(|_| ()).switch(());
    settrace(before);
    assert_eq!(rec.take().len(), 2, "one tracer, called once per switch");
}

#[test]
fn settrace_returns_the_previous_tracer_and_is_per_thread() {
    let rec = Recorder::new();
    let previous = settrace(Some(rec.tracer()));
    assert!(previous.is_none());
    let seen_in_thread = std::thread::spawn(|| {
        let none = gettrace().is_none();
        Greenlet::new(|_| ()).switch(());
        none
    })
    .join()
    .unwrap();
    assert!(seen_in_thread, "another thread has no tracer");
    let back = settrace(None).expect("ours");
    drop(back);
    assert!(gettrace().is_none());
    assert!(
        rec.take().is_empty(),
        "the other thread's switches were not traced here"
    );
}

#[test]
fn the_tracer_runs_in_the_target_before_it_resumes() {
    let rec = Recorder::new();
    let r2 = rec.clone();
    let g = Greenlet::new(move |_| {
        r2.note("run starts");
        Greenlet::main().switch(());
        r2.note("g resumed");
    });
    rec.name(&g, "g");
    let r3 = rec.clone();
    let inner = rec.tracer();
    let previous = settrace(Some(Rc::new(move |e, o, t| {
        assert!(t.is_current(), "the tracer runs on the target");
        assert!(!o.is_current());
        inner(e, o, t);
        r3.note(format!("current={}", r3.name_of(&Greenlet::current())));
    })));
    g.switch(());
    rec.note("main resumed");
    g.switch(());
    settrace(previous);
    assert_eq!(
        rec.take(),
        [
            "switch main->g",
            "current=g",
            "run starts",
            "switch g->main",
            "current=main",
            "main resumed",
            "switch main->g",
            "current=g",
            "g resumed",
            "switch g->main",
            "current=main",
        ]
    );
}

// ------------------------------------------------ events Python reports

/// Runs `f` under a fresh recorder and returns the log, with what `f` did at the end.
fn traced(f: impl FnOnce(&Rc<Recorder>) -> String) -> Vec<String> {
    let rec = Recorder::new();
    let guard = rec.install();
    let outcome = f(&rec);
    drop(guard);
    let mut log = rec.take();
    log.push(outcome);
    log
}

#[test]
fn death_by_return_is_a_switch_to_the_parent() {
    let log = traced(|rec| {
        let g = Greenlet::new(|_| 1);
        rec.name(&g, "g");
        format!("ret {}", g.switch(()).downcast::<i32>().unwrap())
    });
    assert_eq!(log, ["switch main->g", "switch g->main", "ret 1"]);
}

#[test]
fn death_by_panic_is_a_throw_to_the_parent() {
    let log = traced(|rec| {
        let g = Greenlet::new(|_| -> () { raise(SomeError("e")) });
        rec.name(&g, "g");
        format!("raised {:?}", expect_some_error(|| g.switch(())))
    });
    assert_eq!(
        log,
        ["switch main->g", "throw g->main", "raised SomeError(\"e\")"]
    );
}

#[test]
fn throw_into_an_unstarted_greenlet_is_traced_in_and_out() {
    // Python: [('throw', (main, g)), ('throw', (g, main))] and the error in main.
    let log = traced(|rec| {
        let g = Greenlet::new(|_| 1);
        rec.name(&g, "g");
        format!("raised {:?}", expect_some_error(|| g.throw(SomeError("x"))))
    });
    assert_eq!(
        log,
        ["throw main->g", "throw g->main", "raised SomeError(\"x\")"]
    );
}

#[test]
fn greenlet_exit_into_an_unstarted_greenlet_comes_back_as_a_switch() {
    // Python: [('throw', (main, g)), ('switch', (g, main))], returns GreenletExit.
    let log = traced(|rec| {
        let g = Greenlet::new(|_| 1);
        rec.name(&g, "g");
        let v = g.throw(GreenletExit);
        format!("ret {:?}", v.downcast::<GreenletExit>().unwrap())
    });
    assert_eq!(log, ["throw main->g", "switch g->main", "ret GreenletExit"]);
}

#[test]
fn throw_into_a_suspended_greenlet_that_catches_it() {
    let log = traced(|rec| {
        let g = Greenlet::new(|_| {
            let r = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert_eq!(
                *r.unwrap_err().downcast::<SomeError>().unwrap(),
                SomeError("v")
            );
            5
        });
        rec.name(&g, "g");
        g.switch(());
        format!("ret {}", g.throw(SomeError("v")).downcast::<i32>().unwrap())
    });
    assert_eq!(
        log,
        [
            "switch main->g",
            "switch g->main",
            "throw main->g",
            "switch g->main",
            "ret 5"
        ]
    );
}

#[test]
fn self_switches_and_self_throws_are_traced() {
    let log = traced(|_| {
        let v = Greenlet::current().switch(3).downcast::<i32>().unwrap();
        let e = expect_some_error(|| Greenlet::main().throw(SomeError("self")));
        format!("ret {v}, raised {e:?}")
    });
    assert_eq!(
        log,
        [
            "switch main->main",
            "throw main->main",
            "ret 3, raised SomeError(\"self\")"
        ]
    );
}

#[test]
fn switches_and_throws_into_the_dead_are_traced_as_self_events_of_the_ancestor() {
    let log = traced(|rec| {
        let g = Greenlet::new(|_| 1);
        rec.name(&g, "g");
        g.switch(());
        rec.note("dead");
        let v = g.switch(7).downcast::<i32>().unwrap();
        let e = expect_some_error(|| g.throw(SomeError("dead")));
        let exit = g.throw(GreenletExit);
        format!(
            "ret {v}, raised {e:?}, then {:?}",
            exit.downcast::<GreenletExit>().unwrap()
        )
    });
    // Python: a GreenletExit thrown into a dead greenlet is turned into a
    // return value, so that one is reported as a switch.
    assert_eq!(
        log,
        [
            "switch main->g",
            "switch g->main",
            "dead",
            "switch main->main",
            "throw main->main",
            "switch main->main",
            "ret 7, raised SomeError(\"dead\"), then GreenletExit"
        ]
    );
}

#[test]
fn death_into_an_unstarted_parent_starts_it() {
    let log = traced(|rec| {
        let p = Greenlet::new(|v| v.downcast::<i32>().unwrap() * 2);
        let c = Greenlet::builder().parent(&p).spawn(|_| 21).unwrap();
        rec.name(&p, "p");
        rec.name(&c, "c");
        format!("ret {}", c.switch(()).downcast::<i32>().unwrap())
    });
    assert_eq!(
        log,
        ["switch main->c", "switch c->p", "switch p->main", "ret 42"]
    );
}

#[test]
fn a_kill_on_drop_is_a_throw_in_and_a_switch_back() {
    let log = traced(|rec| {
        let r = rec.clone();
        let g = Greenlet::new(move |_| {
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            let parent = Greenlet::current().parent().unwrap();
            r.note(format!("got exit, parent {}", r.name_of(&parent)));
            panic::resume_unwind(Box::new(GreenletExit));
        });
        rec.name(&g, "g");
        g.switch(());
        drop(g);
        "dropped".to_string()
    });
    assert_eq!(
        log,
        [
            "switch main->g",
            "switch g->main",
            "throw main->g",
            "got exit, parent main",
            "switch g->main",
            "dropped"
        ]
    );
}

#[test]
fn a_kill_from_a_child_returns_to_the_dropper() {
    // Python: the dropper (h), not main, gets control back after the kill.
    let log = traced(|rec| {
        let r = rec.clone();
        let h = Greenlet::new(move |_| {
            let r2 = r.clone();
            let g = Greenlet::new(move |_| {
                // Bind the parent first: a temporary `Greenlet::current()`
                // would live across the switch, and a greenlet holding a
                // handle to itself on its own stack is never dropped.
                let parent = Greenlet::current().parent().unwrap();
                let caught = panic::catch_unwind(AssertUnwindSafe(|| parent.switch(())));
                assert!(caught.unwrap_err().is::<GreenletExit>());
                let parent = Greenlet::current().parent().unwrap();
                r2.note(format!("got exit, parent {}", r2.name_of(&parent)));
            });
            r.name(&g, "g");
            g.switch(());
            r.note("h drops g");
            drop(g);
            r.note("h after drop");
        });
        rec.name(&h, "h");
        h.switch(());
        "done".to_string()
    });
    assert_eq!(
        log,
        [
            "switch main->h",
            "switch h->g",
            "switch g->h",
            "h drops g",
            "throw h->g",
            "got exit, parent h",
            "switch g->h",
            "h after drop",
            "switch h->main",
            "done"
        ]
    );
}

#[test]
fn a_kill_answered_by_another_panic_goes_back_as_a_throw() {
    // Python: [..., ('throw', (main, g)), ('throw', (g, main))]; the panic
    // itself is reported on stderr (one expected line in the test output).
    let log = traced(|rec| {
        let g = Greenlet::new(|_| {
            let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
            assert!(caught.unwrap_err().is::<GreenletExit>());
            raise(SomeError("expected: answering a kill with another panic"));
        });
        rec.name(&g, "g");
        g.switch(());
        drop(g);
        "dropped".to_string()
    });
    assert_eq!(
        log,
        [
            "switch main->g",
            "switch g->main",
            "throw main->g",
            "throw g->main",
            "dropped"
        ]
    );
}

#[test]
fn dropping_an_unstarted_greenlet_is_not_traced() {
    let log = traced(|rec| {
        let g = Greenlet::new(|_| 1);
        rec.name(&g, "g");
        drop(g);
        "dropped".to_string()
    });
    assert_eq!(log, ["dropped"]);
}

#[test]
fn event_kinds_are_distinct_and_printable() {
    assert_ne!(Event::Switch, Event::Throw);
    assert_eq!(
        format!("{:?} {:?}", Event::Switch, Event::Throw),
        "Switch Throw"
    );
}
