//! Nested generators built on greenlets, ported from Python greenlet's
//! `test_generator_nested.py`: genlets that iterate other genlets, yields from
//! nested calls, recursive genlets (permutations), and multi-level yields that
//! skip a generator (`Yield(value, 2)`), which makes the skipped genlet resume
//! its child directly at its next `next`.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::rc::Rc;

use greenlet::{Greenlet, GreenletExit, WeakGreenlet};

thread_local! {
    /// Running genlets by identity, each with its `child` (Python's
    /// `genlet.child`): the genlet to resume directly at its next `next`.
    static GENLETS: RefCell<HashMap<u64, Option<WeakGreenlet>>> = RefCell::new(HashMap::new());
    static LIVE_BODIES: Cell<usize> = const { Cell::new(0) };
}

fn identity(g: &Greenlet) -> u64 {
    let mut h = DefaultHasher::new();
    g.hash(&mut h);
    h.finish()
}

fn is_genlet(g: &Greenlet) -> bool {
    GENLETS.with(|m| m.borrow().contains_key(&identity(g)))
}

fn child_of(g: &Greenlet) -> Option<Greenlet> {
    GENLETS
        .with(|m| m.borrow().get(&identity(g)).cloned().flatten())?
        .upgrade()
}

fn set_child(g: &Greenlet, child: Option<&Greenlet>) {
    let id = identity(g);
    GENLETS.with(|m| {
        let mut m = m.borrow_mut();
        let slot = m.get_mut(&id).expect("set_child on a genlet");
        *slot = child.map(Greenlet::downgrade);
    });
}

struct Registered(u64);

impl Registered {
    fn current() -> Registered {
        let id = identity(&Greenlet::current());
        GENLETS.with(|m| m.borrow_mut().insert(id, None));
        LIVE_BODIES.with(|n| n.set(n.get() + 1));
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        GENLETS.with(|m| m.borrow_mut().remove(&self.0));
        LIVE_BODIES.with(|n| n.set(n.get() - 1));
    }
}

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
        let result = match child_of(&self.g) {
            // A deeper genlet yielded past us: resume the deepest one directly.
            Some(mut child) => {
                while let Some(grandchild) = child_of(&child) {
                    set_child(&child, None);
                    child = grandchild;
                }
                child.switch(())
            }
            None => {
                self.g.set_parent(&Greenlet::current()).unwrap();
                self.g.switch(())
            }
        };
        self.g.is_active().then(|| {
            result
                .downcast()
                .expect("a yielded value of the genlet's type")
        })
    }
}

impl<T> Drop for Genlet<T> {
    /// Closes an abandoned genlet (see tests/generator.rs).
    fn drop(&mut self) {
        if self.g.is_active() {
            self.g.set_parent(&Greenlet::current()).unwrap();
            self.g.throw(GreenletExit);
        }
    }
}

/// Python's `Yield(value, level)`: `level` genlets up from the current one.
fn yield_level<T: 'static>(value: T, mut level: u32) {
    let mut g = Greenlet::current();
    while level != 0 {
        assert!(is_genlet(&g), "yield outside a genlet");
        let parent = g.parent().expect("a genlet has a consumer");
        if level > 1 {
            set_child(&parent, Some(&g));
        }
        g = parent;
        level -= 1;
    }
    g.switch(value);
}

fn yield_<T: 'static>(value: T) {
    yield_level(value, 1)
}

// ____________________________________________________________ the genlets

type Seen = Rc<RefCell<Vec<i32>>>;

/// g2: yields directly.
fn g2(n: i32, seen: Seen) -> Genlet<i32> {
    Genlet::new(move || {
        for i in 0..n {
            seen.borrow_mut().push(i + 1);
            yield_(i);
        }
    })
}

/// g3: yields from a nested plain call.
fn g3(n: i32, seen: Seen) -> Genlet<i32> {
    fn nested(i: i32) {
        yield_(i);
    }
    Genlet::new(move || {
        for i in 0..n {
            seen.borrow_mut().push(i + 1);
            nested(i);
        }
    })
}

/// ax: a genlet that iterates a smaller copy of itself.
fn ax(n: i32) -> Genlet<i32> {
    Genlet::new(move || {
        if n == 0 {
            return;
        }
        for ii in ax(n - 1) {
            yield_(ii);
        }
        yield_(n);
    })
}

fn perms(l: Vec<i32>) -> Genlet<Vec<i32>> {
    Genlet::new(move || {
        if l.len() > 1 {
            for &e in &l {
                let rest: Vec<i32> = l.iter().copied().filter(|&x| x != e).collect();
                let x: Vec<()> = perms(rest)
                    .map(|p| {
                        let mut v = vec![e];
                        v.extend(p);
                        yield_(v)
                    })
                    .collect();
                assert!(!x.is_empty());
            }
        } else {
            yield_(l);
        }
    })
}

/// gr1: yields every value to its consumer, and every square two levels up.
fn gr1(n: i32) -> Genlet<i32> {
    Genlet::new(move || {
        for ii in 1..n {
            yield_(ii);
            yield_level(ii * ii, 2);
        }
    })
}

fn gr2(n: i32, seen: Seen) -> Genlet<i32> {
    Genlet::new(move || {
        for ii in gr1(n) {
            seen.borrow_mut().push(ii);
        }
    })
}

fn no_body_left() {
    assert_eq!(
        LIVE_BODIES.with(Cell::get),
        0,
        "a genlet body was left behind"
    );
}

#[test]
fn layered_genlets() {
    let seen: Seen = Rc::default();
    for ii in gr2(5, seen.clone()) {
        seen.borrow_mut().push(ii);
    }
    assert_eq!(*seen.borrow(), [1, 1, 2, 4, 3, 9, 4, 16]);
    no_body_left();
}

#[test]
fn permutations() {
    let permutations: Vec<Vec<i32>> = perms((0..4).collect()).collect();
    assert_eq!(permutations.len(), 4 * 3 * 2);
    assert!(permutations.contains(&vec![0, 1, 2, 3]));
    assert!(permutations.contains(&vec![3, 2, 1, 0]));
    let mut sorted = permutations.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 24, "all distinct");
    no_body_left();
}

#[test]
fn zipped_permutations_close_the_longer_one() {
    // zip stops after the shorter; the longer generator (and the generators
    // nested in it) are abandoned mid-way and closed. Python's version of
    // this test leaks them (it is marked fails_leakcheck).
    let res: Vec<(Vec<i32>, Vec<i32>)> = perms((0..4).collect())
        .zip(perms((0..3).collect()))
        .collect();
    assert_eq!(
        res,
        [
            (vec![0, 1, 2, 3], vec![0, 1, 2]),
            (vec![0, 1, 3, 2], vec![0, 2, 1]),
            (vec![0, 2, 1, 3], vec![1, 0, 2]),
            (vec![0, 2, 3, 1], vec![1, 2, 0]),
            (vec![0, 3, 1, 2], vec![2, 0, 1]),
            (vec![0, 3, 2, 1], vec![2, 1, 0]),
        ]
    );
    no_body_left();
}

#[test]
fn simple_genlets() {
    // test_genlet_simple with g2 and g3 (g1 is a Python generator, which Rust
    // stable lacks; an iterator over the same values stands in for it).
    let g1 = |n: i32, seen: Seen| (0..n).inspect(move |i| seen.borrow_mut().push(i + 1));
    let once = [1, 0, 2, 1, 3, 2, 4, 3, 5, 4];
    let seen: Seen = Rc::default();
    for _ in 0..3 {
        for j in g1(5, seen.clone()) {
            seen.borrow_mut().push(j);
        }
    }
    assert_eq!(*seen.borrow(), once.repeat(3));
    for make in [g2 as fn(i32, Seen) -> Genlet<i32>, g3] {
        let seen: Seen = Rc::default();
        for _ in 0..3 {
            for j in make(5, seen.clone()) {
                seen.borrow_mut().push(j);
            }
        }
        assert_eq!(*seen.borrow(), once.repeat(3));
    }
    no_body_left();
}

#[test]
fn bad_genlet_use_is_a_clear_panic() {
    // test_genlet_bad
    let e = std::panic::catch_unwind(|| yield_(10)).unwrap_err();
    let message = e
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(message.contains("yield outside a genlet"));
}

#[test]
fn nested_genlets() {
    // test_nested_genlets: ax(5) yields 1, 2, 3, 4, 5 through five levels.
    let seen: Vec<i32> = ax(5).collect();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    no_body_left();
}
