//! Switching, death and panics in the parent (SPEC S1, S2, S4, S5, S8),
//! ported from the scenarios of Python greenlet's `test_greenlet.py`
//! (TestGreenlet and TestRepr).

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, Value};

#[derive(Debug, PartialEq)]
struct SomeError;
#[derive(Debug, PartialEq)]
struct KeyError;

type Log<T> = Rc<RefCell<Vec<T>>>;

fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn std::any::Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

fn switch_to_parent<T: 'static>(v: T) -> Value {
    let parent = Greenlet::current().parent().expect("not main");
    parent.switch(v)
}

fn simple() -> Vec<i32> {
    let lst: Log<i32> = Rc::default();
    let l = lst.clone();
    let g = Greenlet::new(move |_| {
        l.borrow_mut().push(1);
        switch_to_parent(());
        l.borrow_mut().push(3);
    });
    lst.borrow_mut().push(0);
    g.switch(());
    lst.borrow_mut().push(2);
    g.switch(());
    lst.borrow_mut().push(4);
    let out = lst.borrow().clone();
    out
}

#[test]
fn test_simple() {
    assert_eq!(simple(), [0, 1, 2, 3, 4]);
}

#[test]
fn two_children() {
    let lst: Log<i32> = Rc::default();
    let make = || {
        let l = lst.clone();
        Greenlet::new(move |_| {
            l.borrow_mut().push(1);
            switch_to_parent(());
            l.borrow_mut().extend([1, 1]);
        })
    };
    let (g, h) = (make(), make());
    g.switch(());
    assert_eq!(lst.borrow().len(), 1);
    h.switch(());
    assert_eq!(lst.borrow().len(), 2);
    h.switch(());
    assert_eq!(lst.borrow().len(), 4);
    assert!(h.is_dead());
    g.switch(());
    assert_eq!(lst.borrow().len(), 6);
    assert!(g.is_dead());
}

#[test]
fn two_recursive_children() {
    let lst: Log<char> = Rc::default();
    let l = lst.clone();
    let g = Greenlet::new(move |_| {
        l.borrow_mut().push('a');
        let l2 = l.clone();
        let inner = Greenlet::new(move |_| {
            l2.borrow_mut().push('b');
            switch_to_parent(());
        });
        inner.switch(());
        l.borrow_mut().push('c');
    });
    g.switch(());
    assert_eq!(*lst.borrow(), ['a', 'b', 'c']);
    assert!(g.is_dead());
}

#[test]
fn each_thread_switches_its_own_greenlets() {
    // test_threads: ten threads each run the simple scenario.
    let threads: Vec<_> = (0..10).map(|_| std::thread::spawn(simple)).collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), [0, 1, 2, 3, 4]);
    }
}

/// Python's `fmain`: waits in its parent; records what is raised there and
/// lets it go on; if resumed normally, raises SomeError.
fn fmain(seen: Log<&'static str>) -> impl FnOnce(Value) {
    move |_| {
        if let Err(e) = caught(|| switch_to_parent(())) {
            seen.borrow_mut().push(if e.is::<SomeError>() {
                "SomeError"
            } else if e.is::<KeyError>() {
                "KeyError"
            } else {
                "other"
            });
            panic::resume_unwind(e);
        }
        panic::resume_unwind(Box::new(SomeError));
    }
}

#[test]
fn a_panic_goes_to_the_new_parent_and_the_dead_pass_switches_on() {
    // test_exception
    let seen: Log<&str> = Rc::default();
    let g1 = Greenlet::new(fmain(seen.clone()));
    let g2 = Greenlet::new(fmain(seen.clone()));
    g1.switch(());
    g2.switch(());
    g2.set_parent(&g1).unwrap();
    assert!(seen.borrow().is_empty());
    // g2 raises SomeError; it goes to g1, which records it and dies with it.
    let e = caught(|| g2.switch(())).unwrap_err();
    assert!(e.is::<SomeError>());
    assert_eq!(*seen.borrow(), ["SomeError"]);
    assert!(g1.is_dead() && g2.is_dead());
    // Both dead: switches land in main, handed straight back.
    assert!(g2.switch(()).is::<()>());
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(g2.switch(25).downcast::<i32>().unwrap(), 25);
}

#[test]
fn send_exception_through_a_crashing_child() {
    // test_send_exception: a child whose parent is g raises in g.
    let seen: Log<&str> = Rc::default();
    let g1 = Greenlet::new(fmain(seen.clone()));
    g1.switch(());
    let crasher = Greenlet::builder()
        .parent(&g1)
        .spawn(|_| -> () { panic::resume_unwind(Box::new(KeyError)) })
        .unwrap();
    let e = caught(|| crasher.switch(())).unwrap_err();
    assert!(e.is::<KeyError>());
    assert_eq!(*seen.borrow(), ["KeyError"]);
}

#[test]
fn several_values_travel_as_one() {
    // test_switch_kwargs / test_switch_kwargs_to_parent: Rust passes one value;
    // tuples and structs play the part of *args and **kwargs.
    #[derive(Debug, PartialEq)]
    struct Kwargs {
        x: i32,
    }
    let g = Greenlet::new(|v| {
        let x: i32 = v.downcast().unwrap();
        switch_to_parent(Kwargs { x });
        switch_to_parent(((2,), Kwargs { x: 3 }));
        (x, x * x)
    });
    assert_eq!(g.switch(3).downcast::<Kwargs>().unwrap(), Kwargs { x: 3 });
    assert_eq!(
        g.switch(()).downcast::<((i32,), Kwargs)>().unwrap(),
        ((2,), Kwargs { x: 3 })
    );
    assert_eq!(g.switch(()).downcast::<(i32, i32)>().unwrap(), (3, 9));
}

#[test]
fn a_switch_to_self_hands_the_value_straight_back() {
    let main = Greenlet::current();
    assert_eq!(main.switch("me").downcast::<&str>().unwrap(), "me");
    let g = Greenlet::new(|v| {
        let me = Greenlet::current();
        let a = me.switch(v).downcast::<i32>().unwrap();
        a + 1
    });
    assert_eq!(g.switch(41).downcast::<i32>().unwrap(), 42);
}

#[test]
fn state_flags_through_a_life() {
    // Python's started / active (bool(g)) / dead / getcurrent().
    let g = Greenlet::new(|_| {
        let me = Greenlet::current();
        assert!(me.is_started() && me.is_active() && !me.is_dead() && me.is_current());
        switch_to_parent(());
    });
    assert!(!g.is_started() && !g.is_active() && !g.is_dead() && !g.is_current());
    g.switch(());
    assert!(g.is_started() && g.is_active() && !g.is_dead() && !g.is_current());
    g.switch(());
    assert!(g.is_started() && !g.is_active() && g.is_dead() && !g.is_current());
    let main = Greenlet::main();
    assert!(main.is_main() && main.is_started() && main.is_active() && !main.is_dead());
}

#[test]
fn debug_shows_the_state() {
    // TestRepr: main while running / in the background, unstarted, dead.
    assert!(format!("{:?}", Greenlet::current()).contains("\"running\""));
    let main = Greenlet::main();
    let g = Greenlet::new(move |_| format!("{main:?}"));
    assert!(format!("{g:?}").contains("\"unstarted\""));
    let seen_from_g = g.switch(()).downcast::<String>().unwrap();
    assert!(seen_from_g.contains("\"suspended\"") && seen_from_g.contains("main: true"));
    let dead = format!("{g:?}");
    assert!(
        dead.contains("\"dead\"") && !dead.contains("suspended"),
        "{dead}"
    );
    let h = Greenlet::new(|_| switch_to_parent(()));
    h.switch(());
    assert!(format!("{h:?}").contains("\"suspended\""));
}

#[test]
fn a_suspended_greenlet_has_frames_a_dead_one_none() {
    // test_frame: gr_frame is the suspended greenlet's frame, None once dead.
    // Rust has no frame objects; Greenlet::backtrace plays that part.
    let g = Greenlet::new(|_| {
        switch_to_parent(());
        "meaning of life"
    });
    assert!(g.backtrace().is_none(), "unstarted: no frames yet");
    g.switch(());
    assert!(g.is_active());
    let frames = g.backtrace().expect("a suspended greenlet has frames");
    drop(frames);
    assert_eq!(g.switch(()).downcast::<&str>().unwrap(), "meaning of life");
    assert!(!g.is_active());
    assert!(g.backtrace().is_none());
}

#[test]
fn death_goes_to_the_parent_even_after_other_switches() {
    // The parent, not the last switcher, gets the result (SPEC S2).
    let a = Greenlet::new(|_| {
        let b = Greenlet::builder()
            .parent(&Greenlet::main())
            .spawn(|_| "b's result")
            .unwrap();
        // a switches to b; b's parent is main, so main gets b's result.
        b.switch(());
        unreachable!("a is never resumed")
    });
    assert_eq!(a.switch(()).downcast::<&str>().unwrap(), "b's result");
    assert!(a.is_active());
    assert!(a
        .throw(greenlet::GreenletExit)
        .is::<greenlet::GreenletExit>());
}

#[test]
fn a_value_is_forwarded_unwrapped_through_several_greenlets() {
    let g = Greenlet::new(|v: Value| {
        // Passed on as it came: a Value argument is not wrapped again.
        switch_to_parent(v)
    });
    let v = g.switch(Value::new(vec![1u8, 2, 3]));
    assert_eq!(v.downcast::<Vec<u8>>().unwrap(), [1, 2, 3]);
}

#[test]
fn many_greenlets_ping_pong() {
    let n = if cfg!(debug_assertions) { 200 } else { 2000 };
    let ping = Greenlet::new(move |v| {
        let mut count: u32 = v.downcast().unwrap();
        while count < n {
            count = switch_to_parent(count + 1).downcast().unwrap();
        }
        count
    });
    let mut v = ping.switch(0u32);
    while ping.is_active() {
        let c: u32 = v.downcast().unwrap();
        v = ping.switch(c + 1);
    }
    assert_eq!(v.downcast::<u32>().unwrap(), n);
}

/// Every kind of value a switch carries in registers (SPEC §5), through each
/// way a value crosses: the start of `run`, a switch into a suspended
/// greenlet, a switch back, and the return value at death. Values with
/// uninitialised padding (a tuple's gap, an `Option`'s unused payload) are
/// frozen into words on the way; pointers keep pointing where they did.
#[test]
fn values_of_every_shape_cross_every_kind_of_switch() {
    fn check_all(through: impl Fn(Value) -> Value) {
        let rc = Rc::new(5u8);
        let text: &'static str = "static text";
        macro_rules! check {
            ($v:expr, $t:ty) => {{
                let got = through(Value::new($v)).downcast::<$t>();
                assert_eq!(got.ok(), Some($v), "{} came back changed", stringify!($t));
            }};
        }
        check!((7u8, 9u32), (u8, u32));
        check!((1u8, u64::MAX), (u8, u64));
        check!(None::<u32>, Option<u32>);
        check!(Some(-3i16), Option<i16>);
        check!(0x0123_4567_89ab_cdefu64, u64);
        check!(-2.5f64, f64);
        check!('λ', char);
        check!(true, bool);
        check!(String::from("boxed"), String);
        check!([1u64, 2, 3], [u64; 3]);
        check!((), ());
        let back = through(Value::new(text)).downcast::<&str>().unwrap();
        assert!(std::ptr::eq(back, text));
        let back = through(Value::new(rc.clone()))
            .downcast::<Rc<u8>>()
            .unwrap();
        assert!(Rc::ptr_eq(&back, &rc) && *back == 5);
        drop(back);
        assert_eq!(Rc::strong_count(&rc), 1, "exactly one drop on the way");
    }
    // Into `run` and back out as its return value (start and death).
    check_all(|v| Greenlet::new(|arg: Value| arg).switch(v));
    // Into a suspended greenlet's pending switch and back out of ours.
    let echo = Greenlet::new(|first: Value| {
        let main = Greenlet::main();
        let mut v = first;
        loop {
            v = main.switch(v);
        }
    });
    echo.switch(());
    check_all(|v| echo.switch(v));
}
