//! Greenlet-local storage: like `thread_local!`, but with one value per
//! greenlet (the role `gr_context` plays for Python's context variables).
//!
//! Values live in a per-thread side table keyed by greenlet identity. A
//! greenlet's values are dropped when it dies (on its own stack, before control
//! leaves it), and the main greenlet's when its thread exits.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::Greenlet;

type Slots = Vec<(usize, Rc<dyn Any>)>;

thread_local! {
    /// greenlet identity -> (key address, value) pairs.
    static TABLE: RefCell<HashMap<usize, Slots>> = RefCell::new(HashMap::new());
    /// Set once any greenlet of this thread has stored a value: until then a
    /// death need not look at the table (one load instead of a lazily made
    /// thread-local, a borrow and a lookup, on every death).
    static USED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A key for a value that each greenlet has its own copy of, initialised on
/// first use in that greenlet. Declare one with [`greenlet_local!`](crate::greenlet_local).
///
/// ```
/// use std::cell::Cell;
/// use greenlet::{greenlet_local, Greenlet};
///
/// greenlet_local! { static DEPTH: Cell<u32> = Cell::new(0); }
///
/// DEPTH.with(|d| d.set(5));
/// let g = Greenlet::new(|_| {
///     DEPTH.with(|d| d.set(d.get() + 1)); // a fresh value: starts at 0
///     DEPTH.with(Cell::get)
/// });
/// assert_eq!(g.switch(()).downcast::<u32>().unwrap(), 1);
/// assert_eq!(DEPTH.with(Cell::get), 5); // main's value is untouched
/// ```
pub struct GreenletLocal<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> GreenletLocal<T> {
    /// A key whose value starts as `init()` in each greenlet that uses it.
    /// [`greenlet_local!`](crate::greenlet_local) writes this for you.
    ///
    /// ```
    /// use greenlet::GreenletLocal;
    /// static NAME: GreenletLocal<String> = GreenletLocal::new(|| String::from("anon"));
    /// assert_eq!(NAME.with(String::clone), "anon");
    /// ```
    pub const fn new(init: fn() -> T) -> GreenletLocal<T> {
        GreenletLocal { init }
    }

    fn key(&'static self) -> usize {
        self as *const GreenletLocal<T> as usize
    }

    /// Calls `f` with the current greenlet's value, initialising it first if
    /// this greenlet has not used the key yet. `f` may switch to other
    /// greenlets; the reference stays valid meanwhile.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use greenlet::Greenlet;
    /// greenlet::greenlet_local! { static LOG: RefCell<Vec<&'static str>> = RefCell::new(Vec::new()); }
    /// let g = Greenlet::new(|_| {
    ///     LOG.with(|l| l.borrow_mut().push("before"));
    ///     Greenlet::main().switch(());
    ///     LOG.with(|l| l.borrow_mut().push("after"));
    ///     LOG.with(|l| l.borrow().clone())
    /// });
    /// g.switch(());
    /// LOG.with(|l| l.borrow_mut().push("main"));
    /// // g kept its own log across the switch; main's is separate.
    /// assert_eq!(g.switch(()).downcast::<Vec<&str>>().unwrap(), ["before", "after"]);
    /// assert_eq!(LOG.with(|l| l.borrow().clone()), ["main"]);
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let me = current_id();
        let key = self.key();
        let found = TABLE.with(|t| {
            t.borrow().get(&me).and_then(|slots| {
                slots
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
            })
        });
        let value = match found {
            Some(v) => v,
            None => {
                // Initialise outside the table borrow: `init` may use other keys.
                let fresh: Rc<dyn Any> = Rc::new((self.init)());
                insert(me, key, fresh.clone());
                fresh
            }
        };
        let value = value
            .downcast_ref::<T>()
            .expect("greenlet-local slots are keyed by type-unique statics");
        f(value)
    }

    /// Replaces the current greenlet's value (dropping the old one once no
    /// `with` call is still using it).
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// greenlet::greenlet_local! { static LEVEL: u8 = 0; }
    /// LEVEL.set(3);
    /// assert_eq!(LEVEL.with(|l| *l), 3);
    /// let g = Greenlet::new(|_| LEVEL.with(|l| *l));
    /// assert_eq!(g.switch(()).downcast::<u8>().unwrap(), 0); // set for main only
    /// ```
    pub fn set(&'static self, value: T) {
        insert(current_id(), self.key(), Rc::new(value));
    }

    /// Has the current greenlet a value for this key yet?
    ///
    /// ```
    /// use greenlet::Greenlet;
    /// greenlet::greenlet_local! { static ID: u64 = 7; }
    /// assert!(!ID.is_set());
    /// ID.with(|_| ()); // first use initialises it
    /// assert!(ID.is_set());
    /// let g = Greenlet::new(|_| ID.is_set()); // a new greenlet starts without one
    /// assert_eq!(g.switch(()).downcast::<bool>().unwrap(), false);
    /// ```
    pub fn is_set(&'static self) -> bool {
        let me = current_id();
        let key = self.key();
        TABLE.with(|t| {
            t.borrow()
                .get(&me)
                .is_some_and(|slots| slots.iter().any(|(k, _)| *k == key))
        })
    }
}

fn current_id() -> usize {
    Greenlet::current().identity()
}

fn insert(greenlet: usize, key: usize, value: Rc<dyn Any>) {
    USED.with(|used| used.set(true));
    let old = TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let slots = t.entry(greenlet).or_default();
        match slots.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                slots.push((key, value));
                None
            }
        }
    });
    drop(old); // after the borrow: its destructor may use greenlet-locals too
}

/// Drops every value of the greenlet with identity `greenlet` (at its death).
pub(crate) fn clear(greenlet: usize) {
    // Every death comes here: skip the table when no greenlet of this thread
    // ever stored a value, and the hashing when none holds one now.
    if !USED.try_with(std::cell::Cell::get).unwrap_or(true) {
        return;
    }
    let slots = TABLE
        .try_with(|t| {
            let mut t = t.borrow_mut();
            if t.is_empty() {
                None
            } else {
                t.remove(&greenlet)
            }
        })
        .ok()
        .flatten();
    drop(slots); // outside the borrow, as in `insert`
}

/// Declares [`GreenletLocal`] keys, the way `thread_local!` declares `LocalKey`s.
///
/// ```
/// greenlet::greenlet_local! {
///     /// Requests handled by this greenlet.
///     pub static HANDLED: std::cell::Cell<u64> = std::cell::Cell::new(0);
/// }
/// HANDLED.with(|h| h.set(h.get() + 1));
/// assert_eq!(HANDLED.with(|h| h.get()), 1);
/// ```
#[macro_export]
macro_rules! greenlet_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr;)+) => {
        $(
            $(#[$attr])*
            $vis static $name: $crate::GreenletLocal<$t> = $crate::GreenletLocal::new(|| $init);
        )+
    };
}
