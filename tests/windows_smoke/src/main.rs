//! Uses greenlet the way a program outside the crate does, on Windows:
//!
//! * no argument: switches back and forth passing values, raises a panic of
//!   a greenlet in its parent, kills a suspended greenlet on drop (its
//!   destructors run), and prints `smoke ok` when every check held;
//! * `overflow`: recurses without end in a greenlet, which must end the
//!   process with the greenlet overflow message and a non-zero status.
//!
//! scripts/windows/smoke.sh builds it, runs it under wine and checks both.

use std::cell::Cell;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit};

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => checks(),
        Some("overflow") => overflow(),
        Some(other) => panic!("unknown mode {other:?}: use no argument or `overflow`"),
    }
}

fn checks() {
    // Values there and back: a running sum kept by a greenlet.
    let adder = Greenlet::new(|first| {
        let mut total: u64 = first.downcast().unwrap();
        loop {
            let next: u64 = Greenlet::main().switch(total).downcast().unwrap();
            if next == 0 {
                return format!("total {total}");
            }
            total += next;
        }
    });
    let mut last = 0;
    for i in 1..=100u64 {
        last = adder.switch(i).downcast::<u64>().unwrap();
    }
    assert_eq!(last, 5050);
    let done: String = adder.switch(0u64).downcast().unwrap();
    assert_eq!(done, "total 5050");
    assert!(adder.is_dead());
    println!("switches and values: ok ({done})");

    // A panic in a greenlet comes out of the parent's switch.
    let faulty = Greenlet::new(|_| -> u32 {
        Greenlet::main().switch(());
        panic::panic_any(String::from("raised in the child"))
    });
    faulty.switch(());
    let err = panic::catch_unwind(AssertUnwindSafe(|| faulty.switch(()))).unwrap_err();
    assert_eq!(
        err.downcast_ref::<String>().map(String::as_str),
        Some("raised in the child")
    );
    assert!(faulty.is_dead());
    println!("panic raised in the parent: ok");

    // Dropping the last handle of a suspended greenlet kills it: GreenletExit
    // unwinds its stack, so its destructors run.
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let seen_exit = Rc::new(Cell::new(false));
    let (d, s) = (dropped.clone(), seen_exit.clone());
    let sleeper = Greenlet::new(move |_| {
        let _flag = Flag(d);
        let r = panic::catch_unwind(AssertUnwindSafe(|| Greenlet::main().switch(())));
        if let Err(payload) = r {
            s.set(payload.is::<GreenletExit>());
            panic::resume_unwind(payload);
        }
    });
    sleeper.switch(());
    drop(sleeper);
    assert!(dropped.get(), "the killed greenlet's destructor did not run");
    assert!(seen_exit.get(), "the killed greenlet did not see GreenletExit");
    println!("kill on drop: ok");
    println!("smoke ok");
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    black_box(&frame);
    recurse(depth + 1).wrapping_add(frame[5])
}

fn overflow() {
    let g = Greenlet::new(|_| recurse(0));
    g.switch(());
    println!("survived an endless recursion: the overflow was not caught");
}
