//! Hostile inputs and re-entrancy (SPEC S14, issue 7): each gets a clear
//! error or a clear panic, never undefined behaviour. Valgrind runs these too
//! (see docs/reliability.md), which is what turns "did not crash" into "did not
//! touch freed or foreign memory".

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{settrace, Event, Greenlet, GreenletExit, Tracer};

#[path = "support/child.rs"]
mod child;

/// Counts drops.
struct Tally(Rc<Cell<usize>>);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A panic payload (or value) whose destructor panics, counting its drops.
struct PanicsOnDrop(Rc<Cell<usize>>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("PanicsOnDrop dropped");
    }
}

// PanicsOnDrop travels as a panic payload, which must be Send; the tests keep
// it on one thread. A wrapper makes that explicit.
struct SendAnyway<T>(T);
// SAFETY: every SendAnyway in this file is created, moved and dropped on the
// thread of the test that made it.
unsafe impl<T> Send for SendAnyway<T> {}

/// Silences the default panic message for panics this file triggers on
/// purpose, keeping the test output readable. Installed once per process.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|s| s.starts_with("PanicsOnDrop") || s.starts_with("hostile:"));
            if !expected {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------- stack sizes

#[test]
fn tiny_stack_sizes_are_rounded_up_and_work() {
    for size in [0, 1, 4095] {
        let g = Greenlet::builder()
            .stack_size(size)
            .spawn(|v| {
                // More than the request: a KiB of locals and a caught panic
                // unwinding on this stack. (A debug-build unwind alone takes
                // some 10 KiB on aarch64; see docs/reliability.md.)
                let buf = std::hint::black_box([7u8; 1024]);
                let caught = panic::catch_unwind(|| panic::resume_unwind(Box::new(1u8)));
                assert!(caught.is_err());
                v.downcast::<usize>().unwrap() + buf[1023] as usize
            })
            .unwrap_or_else(|e| panic!("stack_size({size}) should be rounded up, got {e}"));
        assert_eq!(g.switch(size).downcast::<usize>().unwrap(), size + 7);
    }
    assert!(greenlet::stack::usable_size_for(0).unwrap() >= greenlet::stack::MIN_STACK_SIZE);
}

/// The panic hook prints a backtrace on the panicking greenlet's own stack:
/// with `RUST_BACKTRACE=full` that takes more than 16 KiB, which once made a
/// `panic!` on the smallest stack hit the guard page. In a child process so
/// the variable is read fresh.
#[test]
fn a_panic_with_backtraces_on_fits_the_smallest_stack() {
    if child::in_child() {
        let g = Greenlet::builder()
            .stack_size(0)
            .spawn(|_| -> () { panic!("boom on the smallest stack") })
            .unwrap();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| g.switch(())));
        let payload = caught.expect_err("the panic must reach the parent");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"boom on the smallest stack")
        );
        println!("CAUGHT");
        return;
    }
    let out = child::run_child_with(
        "a_panic_with_backtraces_on_fits_the_smallest_stack",
        &[("RUST_BACKTRACE", "full")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("CAUGHT"),
        "child failed ({}): {stderr}",
        out.status
    );
    // The hook really did print a backtrace, so the test measured what it claims.
    assert!(
        stderr.contains("stack backtrace"),
        "no backtrace printed: {stderr}"
    );
}

#[test]
fn huge_stack_sizes_are_an_error_not_a_crash() {
    for size in [
        usize::MAX,
        usize::MAX - 4095,
        isize::MAX as usize,
        isize::MAX as usize + 1,
    ] {
        let err = Greenlet::builder()
            .stack_size(size)
            .spawn(|_| ())
            .expect_err("an impossible stack size was accepted");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::OutOfMemory)
                || err.raw_os_error() == Some(libc::ENOMEM),
            "stack_size({size}): unexpected error {err:?}"
        );
        assert!(err.to_string().contains("greenlet"), "unclear error: {err}");
    }
}

#[test]
fn a_failed_spawn_leaves_the_parent_untouched() {
    let parent = Greenlet::new(|_| 5);
    let before = parent.downgrade();
    let err = Greenlet::builder()
        .parent(&parent)
        .stack_size(usize::MAX)
        .spawn(|_| ());
    assert!(err.is_err());
    drop(parent);
    assert!(
        before.upgrade().is_none(),
        "the failed builder kept a handle to the parent"
    );
}

// ------------------------------------------------------ while the thread panics

/// Runs `f` from a destructor while the thread unwinds a panic.
fn during_unwinding<R: 'static>(f: impl FnOnce() -> R) -> R {
    struct RunOnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for RunOnDrop<F> {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            (self.0.take().unwrap())();
        }
    }
    quiet_expected_panics();
    let out = RefCell::new(None);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let _guard = RunOnDrop(Some(|| *out.borrow_mut() = Some(f())));
        panic!("hostile: unwinding");
    }));
    assert!(caught.is_err());
    out.into_inner().expect("the destructor did not run")
}

#[test]
fn switching_into_greenlets_while_the_thread_is_panicking() {
    let suspended = Greenlet::new(|v| {
        let a: i32 = v.downcast().unwrap();
        let b: i32 = Greenlet::main().switch(a + 1).downcast().unwrap();
        a + b
    });
    assert_eq!(suspended.switch(1).downcast::<i32>().unwrap(), 2);
    let (from_suspended, from_fresh, saw_panicking) = during_unwinding(move || {
        let from_suspended = suspended.switch(10).downcast::<i32>().unwrap();
        // The panic count is per thread, so code in a greenlet started from a
        // destructor during unwinding sees `panicking() == true` too.
        let fresh = Greenlet::new(|_| std::thread::panicking());
        let saw = fresh.switch(()).downcast::<bool>().unwrap();
        (from_suspended, 99, saw)
    });
    assert_eq!(from_suspended, 11);
    assert_eq!(from_fresh, 99);
    assert!(saw_panicking);
}

#[test]
fn a_greenlet_panicking_while_the_thread_is_panicking_is_caught_cleanly() {
    let message = during_unwinding(|| {
        let g = Greenlet::new(|_| -> () { panic!("hostile: second panic") });
        let caught = panic::catch_unwind(AssertUnwindSafe(|| g.switch(())));
        assert!(g.is_dead());
        *caught.unwrap_err().downcast::<&str>().unwrap()
    });
    assert_eq!(message, "hostile: second panic");
}

#[test]
fn a_suspended_greenlet_dropped_by_unwinding_is_killed() {
    quiet_expected_panics();
    let drops = Rc::new(Cell::new(0));
    let tally = Tally(drops.clone());
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let g = Greenlet::new(move |_| {
            let _tally = tally;
            Greenlet::main().switch(());
        });
        g.switch(());
        panic!("hostile: unwinding drops g");
    }));
    assert!(caught.is_err());
    assert_eq!(
        drops.get(),
        1,
        "the killed greenlet's destructors did not run"
    );
}

// ------------------------------------------------ handles dropped in odd places

#[test]
fn a_tracer_that_drops_the_last_handle_of_a_suspended_greenlet() {
    let drops = Rc::new(Cell::new(0));
    let tally = Tally(drops.clone());
    let victim = Greenlet::new(move |_| {
        let _tally = tally;
        Greenlet::main().switch(());
    });
    victim.switch(());
    let slot = Rc::new(RefCell::new(Some(victim)));
    let events = Rc::new(Cell::new(0));
    let (s, e) = (slot.clone(), events.clone());
    let tracer: Tracer = Rc::new(move |_: Event, _: &Greenlet, _: &Greenlet| {
        e.set(e.get() + 1);
        // Take it out before dropping: the drop kills it, which switches and
        // calls this tracer again.
        let last = s.borrow_mut().take();
        drop(last);
    });
    let previous = settrace(Some(tracer));
    let other = Greenlet::new(|_| 3);
    assert_eq!(other.switch(()).downcast::<i32>().unwrap(), 3);
    settrace(previous);
    assert_eq!(drops.get(), 1, "the victim was not killed");
    assert!(slot.borrow().is_none());
    // In and out of `other`, plus the kill's throw in and switch back.
    assert!(events.get() >= 4, "tracer saw only {} events", events.get());
}

#[test]
fn a_tracer_that_uninstalls_itself() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    settrace(Some(Rc::new(
        move |_: Event, _: &Greenlet, _: &Greenlet| {
            c.set(c.get() + 1);
            // Drops the installed Rc while this very closure runs.
            settrace(None);
        },
    )));
    let g = Greenlet::new(|_| 1);
    assert_eq!(g.switch(()).downcast::<i32>().unwrap(), 1);
    assert_eq!(calls.get(), 1);
    assert!(greenlet::gettrace().is_none());
}

#[test]
fn a_destructor_that_drops_the_last_handle_of_another_greenlet() {
    let drops = Rc::new(Cell::new(0));
    let tally_b = Tally(drops.clone());
    let b = Greenlet::new(move |_| {
        let _tally = tally_b;
        Greenlet::main().switch(());
    });
    b.switch(());
    /// Drops a greenlet handle in its own destructor.
    #[allow(dead_code)]
    struct Holder(Greenlet, Tally);
    let holder = Holder(b, Tally(drops.clone()));
    let a = Greenlet::new(move |_| {
        let _holder = holder; // dropped while `a` is being killed
        Greenlet::main().switch(());
    });
    a.switch(());
    drop(a); // kills a; a's unwinding drops b's last handle, which kills b
    assert_eq!(drops.get(), 2);
}

#[test]
fn a_value_carrying_the_last_handle_of_its_sender() {
    let drops = Rc::new(Cell::new(0));
    let tally = Tally(drops.clone());
    let g = Greenlet::new(move |_| {
        let _tally = tally;
        // Hands its own handle to main, then waits for ever.
        Greenlet::main().switch(Greenlet::current());
        unreachable!("killed instead");
    });
    let got = g.switch(());
    drop(g);
    assert_eq!(drops.get(), 0, "the handle in the Value keeps it alive");
    drop(got); // the last handle: kills it
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_greenlet_that_refuses_to_die_is_leaked_and_reported_not_freed() {
    if child::in_child() {
        let g = Greenlet::new(|_| loop {
            // Catches every GreenletExit and goes back to whoever killed it.
            let r = panic::catch_unwind(|| Greenlet::main().switch(()));
            if r.is_err() {
                println!("caught the exit");
            }
        });
        g.switch(());
        drop(g);
        println!("survived the drop");
        return;
    }
    let out = child::run_child("a_greenlet_that_refuses_to_die_is_leaked_and_reported_not_freed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("caught the exit") && stdout.contains("survived the drop"));
    assert!(stderr.contains("did not die"), "no report: {stderr}");
}

// -------------------------------------------- payloads that panic when dropped

#[test]
fn a_kill_answered_by_a_payload_that_panics_on_drop() {
    quiet_expected_panics();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |_| {
        let _ = panic::catch_unwind(|| Greenlet::main().switch(()));
        // Answers the kill with a panic whose payload panics when dropped.
        panic::resume_unwind(Box::new(SendAnyway(PanicsOnDrop(d))));
    });
    g.switch(());
    let weak = g.downgrade();
    drop(g); // reported on stderr; the payload's own panic is contained
    assert_eq!(drops.get(), 1, "the payload was not dropped");
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_tracer_panic_discarding_a_payload_that_panics_on_drop() {
    quiet_expected_panics();
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|_| {
        let caught = panic::catch_unwind(|| Greenlet::main().switch(()));
        *caught.unwrap_err().downcast::<&str>().unwrap()
    });
    g.switch(());
    settrace(Some(Rc::new(|_: Event, _: &Greenlet, _: &Greenlet| {
        panic!("hostile: tracer")
    })));
    // The throw's payload is discarded in favour of the tracer's panic.
    let out = g.throw(SendAnyway(PanicsOnDrop(drops.clone())));
    assert!(
        greenlet::gettrace().is_none(),
        "a panicking tracer stays installed"
    );
    assert_eq!(out.downcast::<&str>().unwrap(), "hostile: tracer");
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_payload_that_panics_on_drop_thrown_into_an_unstarted_greenlet() {
    quiet_expected_panics();
    let drops = Rc::new(Cell::new(0));
    let closure_drops = Rc::new(Cell::new(0));
    let tally = Tally(closure_drops.clone());
    let g = Greenlet::new(move |_| {
        let _tally = tally;
        unreachable!("run is never called when thrown into before starting");
    });
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        g.throw(SendAnyway(PanicsOnDrop(drops.clone())))
    }));
    let payload = caught.expect_err("the payload should come back to the parent");
    assert!(g.is_dead());
    assert_eq!(
        closure_drops.get(),
        1,
        "the unstarted closure was not dropped"
    );
    assert!(payload.is::<SendAnyway<PanicsOnDrop>>());
    // Dropping it panics, as its type says; that panic is ours to catch.
    assert!(panic::catch_unwind(AssertUnwindSafe(|| drop(payload))).is_err());
    assert_eq!(drops.get(), 1);
}

#[test]
fn dropping_an_unstarted_greenlet_whose_closure_panics_on_drop() {
    quiet_expected_panics();
    let drops = Rc::new(Cell::new(0));
    let bomb = PanicsOnDrop(drops.clone());
    let g = Greenlet::new(move |_| drop(bomb));
    let weak = g.downgrade();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| drop(g)));
    assert!(
        caught.is_err(),
        "the closure's destructor panic should surface"
    );
    assert_eq!(drops.get(), 1);
    assert!(weak.upgrade().is_none());
    drop(weak); // frees the object; Valgrind checks nothing is touched twice
}

#[test]
fn a_greenlet_exit_thrown_into_an_unstarted_greenlet_is_quiet() {
    let g = Greenlet::new(|_| unreachable!());
    let v = g.throw(GreenletExit);
    assert!(v.is::<GreenletExit>());
    assert!(g.is_dead());
}
