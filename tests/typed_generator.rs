//! The typed `Generator<Y, R>` facade (issue 9): yields in order, the final
//! return, panics, early drop, nesting, and misuse.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Generator, GeneratorState, Greenlet, Yielder};

#[test]
fn yields_in_order_then_returns() {
    let mut g = Generator::new(|y: &Yielder<u32>| {
        for i in 1..=3 {
            y.yield_(i * i);
        }
        String::from("end")
    });
    assert!(!g.is_complete());
    assert_eq!(g.resume(), Some(GeneratorState::Yielded(1)));
    assert_eq!(g.next(), Some(4));
    assert_eq!(g.next(), Some(9));
    assert_eq!(g.next(), None);
    assert!(g.is_complete() && g.greenlet().is_dead());
    assert_eq!(g.return_value().as_deref(), Some("end"));
    assert_eq!(
        g.return_value(),
        None,
        "the return value is handed out once"
    );
    assert_eq!(g.next(), None, "a finished generator stays finished");
}

#[test]
fn is_lazy() {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let mut g = Generator::new(move |y: &Yielder<()>| loop {
        r.set(r.get() + 1);
        y.yield_(());
    });
    assert_eq!(ran.get(), 0, "nothing runs before the first next()");
    g.next();
    g.next();
    assert_eq!(ran.get(), 2);
}

#[test]
fn a_panic_in_the_body_reaches_the_consumer_and_finishes_it() {
    let mut g = Generator::new(|y: &Yielder<i32>| -> () {
        y.yield_(1);
        panic!("body failed");
    });
    assert_eq!(g.next(), Some(1));
    let err = catch_unwind(AssertUnwindSafe(|| g.next())).unwrap_err();
    assert_eq!(*err.downcast::<&str>().unwrap(), "body failed");
    assert!(g.is_complete());
    assert_eq!(g.next(), None);
}

#[test]
fn dropping_an_unfinished_generator_runs_its_destructors() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let mut g = Generator::new(move |y: &Yielder<u8>| {
        let _flag = Flag(d);
        loop {
            y.yield_(0);
        }
    });
    g.next();
    assert!(!dropped.get());
    drop(g);
    assert!(dropped.get(), "kill on drop unwinds the body");
}

#[test]
fn generators_nest_and_can_be_consumed_from_another_greenlet() {
    // An outer generator that re-yields an inner generator's values, doubled.
    let mut outer = Generator::new(|y: &Yielder<u64>| {
        let inner = Generator::new(|yi: &Yielder<u64>| {
            for i in 0..4 {
                yi.yield_(i);
            }
        });
        let mut count = 0;
        for v in inner {
            y.yield_(v * 2);
            count += 1;
        }
        count
    });
    let consumer = Greenlet::new(move |_| {
        let got: Vec<u64> = outer.by_ref().collect();
        (got, outer.return_value())
    });
    let (got, ret) = consumer
        .switch(())
        .downcast::<(Vec<u64>, Option<i32>)>()
        .unwrap();
    assert_eq!(got, [0, 2, 4, 6]);
    assert_eq!(ret, Some(4));
}

#[test]
fn yield_from_a_nested_greenlet_panics_with_a_clear_message() {
    let mut g = Generator::new(|y: &Yielder<u8>| {
        let y_ptr: *const Yielder<u8> = y;
        let nested = Greenlet::new(move |_| {
            // SAFETY: the generator body (which owns `y`) is suspended in the
            // switch to `nested` below, so `y` is alive while this runs.
            let y = unsafe { &*y_ptr };
            y.yield_(9);
        });
        let err = catch_unwind(AssertUnwindSafe(|| nested.switch(()))).unwrap_err();
        let msg = err
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(msg.contains("outside its generator's body"), "{msg}");
        y.yield_(1);
    });
    assert_eq!(g.next(), Some(1));
}

#[test]
fn large_yields_and_returns() {
    let mut g = Generator::new(|y: &Yielder<Vec<String>>| {
        y.yield_(vec!["a".into(); 100]);
        [7u64; 32]
    });
    assert_eq!(g.next().map(|v| v.len()), Some(100));
    assert_eq!(g.resume(), Some(GeneratorState::Complete([7u64; 32])));
}
