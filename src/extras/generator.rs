//! A typed generator built only on the public greenlet API: the body runs in
//! its own greenlet and hands values out one at a time with
//! [`Yielder::yield_`]; the consumer pulls them with [`Iterator::next`] and
//! finally gets the body's return value.
//!
//! This is Python greenlet's `genlet` pattern (its `test_generator`): before
//! each resume the generator's parent is set to the consumer, so a yield is a
//! switch to the parent and the body's return is its death into the parent.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use crate::greenlet::builder::Builder;
use crate::greenlet::handle::{Greenlet, WeakGreenlet};
use crate::greenlet::value::Value;

/// What one [`Generator::resume`] produced.
///
/// ```
/// use greenlet::{Generator, GeneratorState};
/// let mut g = Generator::new(|y| { y.yield_(1); y.yield_(2); "done" });
/// let mut states = Vec::new();
/// while let Some(state) = g.resume() {
///     states.push(state);
/// }
/// use GeneratorState::{Complete, Yielded};
/// assert_eq!(states, [Yielded(1), Yielded(2), Complete("done")]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneratorState<Y, R> {
    /// The body yielded a value and is suspended.
    Yielded(Y),
    /// The body returned; the generator is finished.
    Complete(R),
}

/// A generator of `Y`s that finally returns an `R`, running its body in a
/// greenlet of its own.
///
/// ```
/// use greenlet::Generator;
///
/// let mut fib = Generator::new(|y| {
///     let (mut a, mut b) = (0u64, 1u64);
///     for _ in 0..10 {
///         y.yield_(a);
///         (a, b) = (b, a + b);
///     }
///     "ten numbers"
/// });
/// let numbers: Vec<u64> = fib.by_ref().collect();
/// assert_eq!(numbers, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
/// assert_eq!(fib.return_value(), Some("ten numbers"));
/// ```
///
/// Dropping an unfinished generator kills its greenlet: `GreenletExit` unwinds
/// the body, so its destructors run.
pub struct Generator<Y: 'static, R: 'static> {
    greenlet: Greenlet,
    returned: Option<R>,
    finished: bool,
    _yields: PhantomData<fn() -> Y>,
}

/// The body's handle for yielding values; only valid inside that body.
///
/// The body receives a `&Yielder`; pass it on to helpers that yield for it:
///
/// ```
/// use greenlet::{Generator, Yielder};
/// fn countdown(y: &Yielder<u32>, from: u32) {
///     for i in (1..=from).rev() {
///         y.yield_(i);
///     }
/// }
/// let g = Generator::new(|y| countdown(y, 3));
/// assert_eq!(g.collect::<Vec<_>>(), [3, 2, 1]);
/// ```
pub struct Yielder<Y: 'static> {
    greenlet: WeakGreenlet,
    _yields: PhantomData<fn(Y)>,
}

impl<Y: 'static, R: 'static> Generator<Y, R> {
    /// A generator whose body runs on a default-sized greenlet stack.
    ///
    /// Nothing runs until the first [`resume`](Generator::resume) (or `next`).
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let started = Rc::new(Cell::new(false));
    /// let flag = started.clone();
    /// let mut g = greenlet::Generator::new(move |y| {
    ///     flag.set(true);
    ///     y.yield_(1u8);
    /// });
    /// assert!(!started.get());
    /// assert_eq!(g.next(), Some(1));
    /// assert!(started.get());
    /// ```
    ///
    /// # Panics
    /// When no stack can be mapped (see [`Generator::with_builder`]).
    pub fn new<F>(body: F) -> Generator<Y, R>
    where
        F: FnOnce(&Yielder<Y>) -> R + 'static,
    {
        match Generator::with_builder(Greenlet::builder(), body) {
            Ok(g) => g,
            Err(e) => panic!("greenlet: cannot create a generator: {e}"),
        }
    }

    /// A generator whose greenlet is made by `builder` (e.g. for its stack size).
    ///
    /// ```
    /// let mut g = greenlet::Generator::<u8, ()>::with_builder(
    ///     greenlet::Greenlet::builder().stack_size(64 << 10),
    ///     |y| y.yield_(1),
    /// ).unwrap();
    /// assert_eq!(g.next(), Some(1));
    /// ```
    pub fn with_builder<F>(builder: Builder, body: F) -> io::Result<Generator<Y, R>>
    where
        F: FnOnce(&Yielder<Y>) -> R + 'static,
    {
        let greenlet = builder.spawn(move |_| {
            let yielder = Yielder {
                greenlet: Greenlet::current().downgrade(),
                _yields: PhantomData,
            };
            body(&yielder)
        })?;
        Ok(Generator {
            greenlet,
            returned: None,
            finished: false,
            _yields: PhantomData,
        })
    }

    /// Runs the body until it yields or returns. `None` once it has returned.
    ///
    /// A panic in the body continues from here, and the generator is finished.
    ///
    /// ```
    /// use greenlet::{Generator, GeneratorState};
    /// let mut g = Generator::new(|y| { y.yield_('a'); 7 });
    /// assert_eq!(g.resume(), Some(GeneratorState::Yielded('a')));
    /// assert_eq!(g.resume(), Some(GeneratorState::Complete(7)));
    /// assert_eq!(g.resume(), None);
    /// ```
    pub fn resume(&mut self) -> Option<GeneratorState<Y, R>> {
        if self.finished {
            return None;
        }
        // Whoever resumes is where the next yield (or the return) goes.
        self.greenlet
            .set_parent(&Greenlet::current())
            .expect("greenlet: a generator cannot be resumed from inside its own body");
        self.finished = true; // until proven otherwise: a panic leaves it finished
        let value = self.greenlet.switch(());
        if self.greenlet.is_dead() {
            Some(GeneratorState::Complete(expect_type::<R>(value, "return")))
        } else {
            self.finished = false;
            Some(GeneratorState::Yielded(expect_type::<Y>(value, "yield")))
        }
    }

    /// Has the body returned (or panicked)?
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// let mut g = greenlet::Generator::new(|y| y.yield_(1));
    /// assert_eq!(g.next(), Some(1));
    /// assert!(!g.is_complete()); // suspended in its yield
    /// assert_eq!(g.next(), None);
    /// assert!(g.is_complete());
    ///
    /// let mut bad = greenlet::Generator::<u8, ()>::new(|_| panic!("boom"));
    /// assert!(catch_unwind(AssertUnwindSafe(|| bad.resume())).is_err());
    /// assert!(bad.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.finished
    }

    /// The body's return value, once, after it has returned while iterating.
    ///
    /// ```
    /// let mut g = greenlet::Generator::new(|y| { y.yield_('x'); 42 });
    /// assert_eq!(g.return_value(), None); // not returned yet
    /// assert_eq!(g.by_ref().collect::<String>(), "x");
    /// assert_eq!(g.return_value(), Some(42));
    /// assert_eq!(g.return_value(), None); // handed out once
    /// ```
    pub fn return_value(&mut self) -> Option<R> {
        self.returned.take()
    }

    /// The greenlet the body runs in.
    ///
    /// ```
    /// use greenlet::{Generator, Greenlet};
    /// let mut g = Generator::new(|y| y.yield_(Greenlet::current()));
    /// assert!(!g.greenlet().is_started());
    /// let inside = g.next().unwrap();
    /// assert_eq!(&inside, g.greenlet());
    /// assert!(g.greenlet().is_active()); // suspended in its yield
    /// ```
    pub fn greenlet(&self) -> &Greenlet {
        &self.greenlet
    }
}

impl<Y: 'static, R: 'static> Iterator for Generator<Y, R> {
    type Item = Y;

    /// The next yielded value; `None` once the body has returned, whose value
    /// [`Generator::return_value`] then gives.
    fn next(&mut self) -> Option<Y> {
        match self.resume()? {
            GeneratorState::Yielded(y) => Some(y),
            GeneratorState::Complete(r) => {
                self.returned = Some(r);
                None
            }
        }
    }
}

impl<Y: 'static, R: 'static> fmt::Debug for Generator<Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("greenlet", &self.greenlet)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<Y: 'static> Yielder<Y> {
    /// Hands `value` to whoever resumed the generator and suspends the body
    /// until it is resumed again.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let reached = Rc::new(Cell::new(0));
    /// let mark = reached.clone();
    /// let mut g = greenlet::Generator::new(move |y| {
    ///     for i in 1..=3 {
    ///         mark.set(i);
    ///         y.yield_(i * 10); // the body waits here until the next resume
    ///     }
    /// });
    /// assert_eq!(g.next(), Some(10));
    /// assert_eq!(reached.get(), 1); // it stopped at its first yield
    /// assert_eq!(g.next(), Some(20));
    /// assert_eq!(reached.get(), 2);
    /// ```
    ///
    /// # Panics
    /// When called from any greenlet other than the generator's own (e.g. a
    /// `Yielder` smuggled out of its body).
    pub fn yield_(&self, value: Y) {
        let me = Greenlet::current();
        if self.greenlet.upgrade().as_ref() != Some(&me) {
            panic!("greenlet: Yielder::yield_ called outside its generator's body");
        }
        let consumer = me
            .parent()
            .expect("greenlet invariant: a generator greenlet has a parent");
        drop(me);
        consumer.switch(value);
    }
}

impl<Y: 'static> fmt::Debug for Yielder<Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder")
            .field("greenlet", &self.greenlet)
            .finish()
    }
}

fn expect_type<T: 'static>(value: Value, what: &str) -> T {
    match value.downcast::<T>() {
        Ok(v) => v,
        Err(other) => panic!(
            "greenlet: generator expected a {what} of type {}, but its greenlet was switched to with {other:?}",
            std::any::type_name::<T>()
        ),
    }
}
