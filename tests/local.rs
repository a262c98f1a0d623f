//! Greenlet-local storage (issue 9): each greenlet sees its own value, values
//! survive switches, and die with their greenlet.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::{greenlet_local, Greenlet};

greenlet_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static NAME: RefCell<String> = RefCell::new(String::from("unnamed"));
}

#[test]
fn each_greenlet_has_its_own_value_across_switches() {
    let main = Greenlet::current();
    let make = |label: &'static str, main: Greenlet| {
        Greenlet::new(move |_| {
            NAME.with(|n| *n.borrow_mut() = label.to_string());
            for _ in 0..3 {
                COUNTER.with(|c| c.set(c.get() + 1));
                main.switch(());
            }
            (NAME.with(|n| n.borrow().clone()), COUNTER.with(Cell::get))
        })
    };
    let a = make("a", main.clone());
    let b = make("b", main.clone());
    COUNTER.with(|c| c.set(100));
    for _ in 0..3 {
        a.switch(());
        b.switch(());
        COUNTER.with(|c| c.set(c.get() + 10));
    }
    let ra = a.switch(()).downcast::<(String, u32)>().unwrap();
    let rb = b.switch(()).downcast::<(String, u32)>().unwrap();
    assert_eq!(ra, ("a".to_string(), 3));
    assert_eq!(rb, ("b".to_string(), 3));
    assert_eq!(COUNTER.with(Cell::get), 130);
    assert_eq!(NAME.with(|n| n.borrow().clone()), "unnamed");
}

#[test]
fn set_and_is_set() {
    greenlet_local! { static SLOT: u64 = 1; }
    let g = Greenlet::new(|_| {
        let before = SLOT.is_set();
        SLOT.set(9);
        (before, SLOT.is_set(), SLOT.with(|v| *v))
    });
    assert_eq!(
        g.switch(()).downcast::<(bool, bool, u64)>().unwrap(),
        (false, true, 9)
    );
    assert_eq!(
        SLOT.with(|v| *v),
        1,
        "main's value was initialised separately"
    );
}

#[test]
fn values_are_dropped_when_their_greenlet_dies() {
    struct Noisy(Rc<Cell<u32>>);
    impl Drop for Noisy {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    greenlet_local! { static HELD: RefCell<Option<Noisy>> = RefCell::new(None); }
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let main = Greenlet::current();
    let g = Greenlet::new(move |_| {
        HELD.with(|h| *h.borrow_mut() = Some(Noisy(d)));
        main.switch(());
    });
    g.switch(());
    assert_eq!(drops.get(), 0, "alive while the greenlet is suspended");
    g.switch(());
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1, "dropped at death");

    // Kill on drop is a death too.
    let d = drops.clone();
    let main = Greenlet::current();
    let k = Greenlet::new(move |_| {
        HELD.with(|h| *h.borrow_mut() = Some(Noisy(d)));
        main.switch(());
    });
    k.switch(());
    drop(k);
    assert_eq!(drops.get(), 2);
}

#[test]
fn a_with_closure_may_switch_away_and_back() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |_| {
        COUNTER.with(|c| {
            c.set(5);
            main.switch(()); // other greenlets use COUNTER meanwhile
            c.get()
        })
    });
    g.switch(());
    COUNTER.with(|c| c.set(77));
    assert_eq!(g.switch(()).downcast::<u32>().unwrap(), 5);
}

#[test]
fn threads_are_separate() {
    COUNTER.with(|c| c.set(3));
    let other = std::thread::spawn(|| COUNTER.with(Cell::get))
        .join()
        .unwrap();
    assert_eq!(other, 0);
    assert_eq!(COUNTER.with(Cell::get), 3);
}
