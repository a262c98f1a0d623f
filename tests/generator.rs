//! Generators built on greenlets, as Python greenlet's `test_generator.py`
//! builds them: a "genlet" is a greenlet whose parent is set, at each `next`,
//! to whoever asks for the next value; `yield_` walks up from the current
//! greenlet to the nearest genlet and switches to that genlet's parent.
//! Because the yield is a switch, it works from any depth of plain function
//! calls inside the genlet, which stackless generators cannot do.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit};

thread_local! {
    /// Identities of the running genlets (Python checks `isinstance(g, genlet)`).
    static GENLETS: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
    /// Genlet bodies started and not finished, to check that none is left behind.
    static LIVE_BODIES: Cell<usize> = const { Cell::new(0) };
}

fn identity(g: &Greenlet) -> u64 {
    let mut h = DefaultHasher::new();
    g.hash(&mut h);
    h.finish()
}

/// Marks the current greenlet as a genlet for as long as its body runs.
struct Registered(u64);

impl Registered {
    fn current() -> Registered {
        let id = identity(&Greenlet::current());
        GENLETS.with(|s| s.borrow_mut().insert(id));
        LIVE_BODIES.with(|n| n.set(n.get() + 1));
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        GENLETS.with(|s| s.borrow_mut().remove(&self.0));
        LIVE_BODIES.with(|n| n.set(n.get() - 1));
    }
}

/// Python's `genlet`: iterating it resumes the body until its next yield.
struct Genlet<T> {
    g: Greenlet,
    _yields: PhantomData<T>,
}

impl<T: 'static> Genlet<T> {
    fn new(body: impl FnOnce() + 'static) -> Genlet<T> {
        let g = Greenlet::new(move |_| {
            let _registered = Registered::current();
            body();
        });
        Genlet {
            g,
            _yields: PhantomData,
        }
    }
}

impl<T: 'static> Iterator for Genlet<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // Whoever asks gets the value: the body's yields (and its death) go there.
        self.g.set_parent(&Greenlet::current()).unwrap();
        let result = self.g.switch(());
        self.g.is_active().then(|| {
            result
                .downcast()
                .expect("a yielded value of the genlet's type")
        })
    }
}

impl<T> Drop for Genlet<T> {
    /// Like closing a Python generator: an abandoned genlet is killed here,
    /// explicitly, rather than left for the last handle to go. Its parent link
    /// points at the consumer, whose stack may be the one holding this
    /// genlet: that cycle would otherwise keep both alive.
    fn drop(&mut self) {
        if self.g.is_active() {
            self.g.set_parent(&Greenlet::current()).unwrap();
            let v = self.g.throw(GreenletExit);
            debug_assert!(v.is::<GreenletExit>());
        }
    }
}

/// Python's `Yield`: hands `value` to the consumer of the nearest genlet.
fn yield_<T: 'static>(value: T) {
    let mut g = Greenlet::current();
    loop {
        if GENLETS.with(|s| s.borrow().contains(&identity(&g))) {
            let consumer = g.parent().expect("a genlet has a consumer");
            // No handle to ourselves may stay on our stack across the switch,
            // or dropping the genlet could never kill us.
            drop(g);
            consumer.switch(value);
            return;
        }
        g = g.parent().expect("yield outside a genlet");
    }
}

#[test]
fn a_generator_yields_in_order_and_can_be_run_again() {
    // test_generator.py: test_generator
    let seen: Rc<RefCell<Vec<i32>>> = Rc::default();
    let gen = |n: i32| {
        let seen = seen.clone();
        Genlet::<i32>::new(move || {
            for i in 0..n {
                seen.borrow_mut().push(i);
                yield_(i);
            }
        })
    };
    for _ in 0..3 {
        for j in gen(5) {
            seen.borrow_mut().push(j);
        }
    }
    let once = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4];
    assert_eq!(*seen.borrow(), once.repeat(3));
    assert_eq!(LIVE_BODIES.with(Cell::get), 0);
}

#[test]
fn yield_works_from_nested_plain_calls() {
    // An in-order walk of a binary tree that yields from its recursion: no
    // `yield from` chain is needed, the stack is the genlet's own.
    enum Tree {
        Leaf,
        Node(Box<Tree>, i32, Box<Tree>),
    }
    fn walk(t: &Tree) {
        if let Tree::Node(l, v, r) = t {
            walk(l);
            yield_(*v);
            walk(r);
        }
    }
    fn node(l: Tree, v: i32, r: Tree) -> Tree {
        Tree::Node(Box::new(l), v, Box::new(r))
    }
    use Tree::Leaf;
    let tree = node(
        node(node(Leaf, 1, Leaf), 2, node(Leaf, 3, Leaf)),
        4,
        node(Leaf, 5, node(node(Leaf, 6, Leaf), 7, Leaf)),
    );
    let walked: Vec<i32> = Genlet::new(move || walk(&tree)).collect();
    assert_eq!(walked, [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_plain_greenlet_inside_a_genlet_yields_for_it() {
    // Yield walks up the parents: code in a helper greenlet whose parent is
    // the genlet yields on the genlet's behalf, as in Python.
    let gen = Genlet::<&str>::new(|| {
        yield_("from the genlet");
        let helper = Greenlet::new(|_| yield_("from a helper greenlet"));
        helper.switch(());
        yield_("from the genlet again");
    });
    assert_eq!(
        gen.collect::<Vec<_>>(),
        [
            "from the genlet",
            "from a helper greenlet",
            "from the genlet again"
        ]
    );
}

#[test]
fn a_yield_outside_a_genlet_is_an_error() {
    // test_generator_nested.py: test_genlet_bad (RuntimeError).
    let e = panic::catch_unwind(|| yield_(10)).unwrap_err();
    let message = e
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(message.contains("yield outside a genlet"), "{message}");
}

#[test]
fn an_abandoned_generator_is_closed_and_its_destructors_run() {
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let mut gen = Genlet::<u32>::new(move || {
        struct Cleanup(Rc<Cell<bool>>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let _cleanup = Cleanup(c);
        for i in 0u32.. {
            yield_(i);
        }
    });
    assert_eq!(gen.next(), Some(0));
    assert_eq!(gen.next(), Some(1));
    drop(gen);
    assert!(cleaned.get());
    assert_eq!(LIVE_BODIES.with(Cell::get), 0);
}

#[test]
fn a_panic_in_a_generator_reaches_the_consumer() {
    let mut gen = Genlet::<i32>::new(|| {
        yield_(1);
        panic::resume_unwind(Box::new("generator failed"));
    });
    assert_eq!(gen.next(), Some(1));
    let e = panic::catch_unwind(AssertUnwindSafe(|| gen.next())).unwrap_err();
    assert_eq!(*e.downcast::<&str>().unwrap(), "generator failed");
    assert_eq!(gen.next(), None, "dead after the panic");
}

#[test]
fn generators_are_consumed_from_inside_other_greenlets() {
    // The consumer need not be main: each next() makes the asking greenlet
    // the parent.
    let consumer = Greenlet::new(|_| {
        let gen = Genlet::<i32>::new(|| {
            for i in 1..=4 {
                yield_(i * 10);
            }
        });
        gen.sum::<i32>()
    });
    assert_eq!(consumer.switch(()).downcast::<i32>().unwrap(), 100);
}
