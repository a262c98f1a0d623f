//! Generators built from plain greenlets, the way Python greenlet's own tests
//! build them (`test_generator.py`, `test_generator_nested.py`): a "genlet" is
//! a greenlet whose parent is set, at each `next`, to whoever asks; `yield_`
//! is a switch to that parent. Since a yield is just a switch, it works from
//! any depth of ordinary function calls, and genlets nest: a genlet may
//! iterate other genlets, recursively.
//!
//! (For a ready-made typed generator, see `greenlet::Generator` and
//! `examples/typed_generator.rs`; this example shows the mechanism.)
//!
//! Run: `cargo run --example generator`

use std::marker::PhantomData;

use greenlet::{greenlet_local, Greenlet, GreenletExit};

greenlet_local! {
    /// Set in each genlet's own greenlet, so that `yield_` can tell a
    /// genlet from a plain greenlet.
    static IS_GENLET: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// An iterator whose items are produced by `body` running on its own greenlet.
struct Genlet<T> {
    g: Greenlet,
    _item: PhantomData<T>,
}

impl<T: 'static> Genlet<T> {
    fn new(body: impl FnOnce() + 'static) -> Genlet<T> {
        let g = Greenlet::new(move |_| {
            IS_GENLET.with(|f| f.set(true));
            body();
        });
        Genlet {
            g,
            _item: PhantomData,
        }
    }
}

impl<T: 'static> Iterator for Genlet<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // The asker becomes the parent: yields, and the final death, go there.
        self.g
            .set_parent(&Greenlet::current())
            .expect("the asker is not inside this genlet");
        let v = self.g.switch(());
        // Alive means it yielded; dead means its body returned.
        self.g
            .is_active()
            .then(|| v.downcast().expect("the genlet yields values of type T"))
    }
}

impl<T> Drop for Genlet<T> {
    /// Closes a genlet abandoned mid-way (like Python's `generator.close()`),
    /// so that its stack unwinds and every destructor on it runs now.
    fn drop(&mut self) {
        if self.g.is_active() {
            let _ = self.g.set_parent(&Greenlet::current());
            self.g.throw(GreenletExit);
        }
    }
}

/// Hands `value` to whoever asked the current genlet for its next item.
fn yield_<T: 'static>(value: T) {
    assert!(IS_GENLET.with(|f| f.get()), "yield_ outside a genlet");
    let asker = Greenlet::current().parent().expect("a genlet has a parent");
    asker.switch(value);
}

/// An endless generator: the Fibonacci numbers.
fn fibonacci() -> Genlet<u64> {
    Genlet::new(|| {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            yield_(a);
            (a, b) = (b, a + b);
        }
    })
}

enum Tree {
    Leaf,
    Node(Box<Tree>, &'static str, Box<Tree>),
}

/// An in-order walk that yields from inside its own recursion.
fn walk(tree: &Tree) {
    if let Tree::Node(left, word, right) = tree {
        walk(left);
        yield_(*word);
        walk(right);
    }
}

/// Permutations by recursion on genlets: each level iterates a smaller genlet.
fn permutations(items: Vec<char>) -> Genlet<Vec<char>> {
    Genlet::new(move || {
        if items.len() <= 1 {
            return yield_(items);
        }
        for (i, &first) in items.iter().enumerate() {
            let mut rest = items.clone();
            rest.remove(i);
            for mut tail in permutations(rest) {
                tail.insert(0, first);
                yield_(tail);
            }
        }
    })
}

/// A genlet consuming another: the even numbers among its input.
fn evens(input: Genlet<u64>) -> Genlet<u64> {
    Genlet::new(move || {
        for n in input {
            if n % 2 == 0 {
                yield_(n);
            }
        }
    })
}

fn main() {
    let first: Vec<u64> = fibonacci().take(12).collect();
    println!("fibonacci:      {first:?}");

    let node = |l, w, r| Tree::Node(Box::new(l), w, Box::new(r));
    use Tree::Leaf;
    let tree = node(
        node(node(Leaf, "greenlets", Leaf), "switch", Leaf),
        "on",
        node(node(Leaf, "their", Leaf), "own", node(Leaf, "stacks", Leaf)),
    );
    let words: Vec<&str> = Genlet::new(move || walk(&tree)).collect();
    println!("tree walk:      {}", words.join(" "));

    let perms: Vec<String> = permutations(vec!['a', 'b', 'c'])
        .map(|p| p.into_iter().collect())
        .collect();
    println!("permutations:   {}", perms.join(" "));

    // The endless generator is abandoned after five items; dropping it closes it.
    let even_fibs: Vec<u64> = evens(fibonacci()).take(5).collect();
    println!("even fibonacci: {even_fibs:?}");

    assert_eq!(first, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]);
    assert_eq!(
        words,
        ["greenlets", "switch", "on", "their", "own", "stacks"]
    );
    assert_eq!(perms, ["abc", "acb", "bac", "bca", "cab", "cba"]);
    assert_eq!(even_fibs, [0, 2, 8, 34, 144]);
}
