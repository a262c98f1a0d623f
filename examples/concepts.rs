//! The "Concepts" walk-through of Python's greenlet documentation, in Rust.
//!
//! Python:
//! ```python
//! def test1():
//!     print("[gr1] main  -> test1")
//!     gr2.switch()
//!     print("[gr1] test1 <- test2")
//!     return 'test1 done'
//!
//! def test2():
//!     print("[gr2] test1 -> test2")
//!     gr1.switch()
//!     print("This is never printed.")
//!
//! gr1 = greenlet(test1)
//! gr2 = greenlet(test2)
//! print(gr1.switch())
//! ```
//!
//! gr1 starts, switches to gr2, gr2 switches back to gr1, and gr1 then returns:
//! it dies and its result goes to its *parent* (main), not to gr2, which is left
//! suspended forever and never prints its last line.

use std::cell::OnceCell;
use std::rc::Rc;

use greenlet::Greenlet;

fn main() {
    // gr1 needs to name gr2 and the other way round; the slot is filled once
    // both exist. (A weak handle avoids a reference cycle through the closures.)
    let gr2_slot: Rc<OnceCell<greenlet::WeakGreenlet>> = Rc::new(OnceCell::new());
    let gr1_slot: Rc<OnceCell<greenlet::WeakGreenlet>> = Rc::new(OnceCell::new());

    let to_gr2 = gr2_slot.clone();
    let gr1 = Greenlet::new(move |_| {
        println!("[gr1] main  -> test1");
        to_gr2
            .get()
            .and_then(|w| w.upgrade())
            .expect("gr2 exists")
            .switch(());
        println!("[gr1] test1 <- test2");
        "test1 done"
    });

    let to_gr1 = gr1_slot.clone();
    let gr2 = Greenlet::new(move |_| {
        println!("[gr2] test1 -> test2");
        to_gr1
            .get()
            .and_then(|w| w.upgrade())
            .expect("gr1 exists")
            .switch(());
        println!("This is never printed.");
    });

    gr1_slot.set(gr1.downgrade()).expect("set once");
    gr2_slot.set(gr2.downgrade()).expect("set once");

    let result = gr1.switch(());
    println!(
        "{}",
        result.downcast::<&str>().expect("test1 returns a &str")
    );
    println!("gr1 dead: {}", gr1.is_dead());
    println!("gr2 dead: {}", gr2.is_dead());
}
