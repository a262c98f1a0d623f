//! Greenlet-local storage: like `thread_local!`, but with one value per
//! greenlet (the role `gr_context` plays for Python's context variables).
//!
//! Values live in a small table inside each greenlet object, keyed by the
//! address of their key (the core's `locals` module). A greenlet's values are
//! dropped when it dies (on its own stack, before control leaves it), and the
//! main greenlet's when its thread exits.

use std::any::Any;
use std::rc::Rc;

use crate::greenlet::thread::{local_get, local_insert};

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
        let key = self.key();
        let value = match local_get(key) {
            Some(v) => v,
            None => {
                // Initialise outside the table: `init` may use other keys.
                let fresh: Rc<dyn Any> = Rc::new((self.init)());
                drop(local_insert(key, fresh.clone()));
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
        // The old value is dropped after the table is left: its destructor
        // may use greenlet-locals too.
        drop(local_insert(self.key(), Rc::new(value)));
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
        local_get(self.key()).is_some()
    }
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
