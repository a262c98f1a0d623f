//! The per-greenlet table behind greenlet-local storage
//! (`src/extras/local.rs`): a few `(key, value)` pairs kept in the greenlet
//! object itself, so a lookup needs no hashing and a greenlet's values die
//! with it, on its own stack, before its death switch (`entry.rs`).

use std::any::Any;
use std::cell::UnsafeCell;
use std::rc::Rc;

/// `(key, value)` pairs: the key is the address of a `GreenletLocal`.
type Slots = Vec<(usize, Rc<dyn Any>)>;

/// One greenlet's values, keyed by the address of their `GreenletLocal`.
pub(crate) struct Locals {
    /// Never borrowed across a call that could run user code: every method
    /// below clones, pushes or swaps and returns, and anything it drops is
    /// dropped after the borrow ends.
    /// Boxed, so that a greenlet that stores nothing (most) carries one
    /// null word.
    slots: UnsafeCell<Option<Box<Slots>>>,
}

impl Locals {
    pub(crate) const fn new() -> Locals {
        Locals {
            slots: UnsafeCell::new(None),
        }
    }

    pub(crate) fn get(&self, key: usize) -> Option<Rc<dyn Any>> {
        // SAFETY: see `slots`; the clone runs no user code.
        let slots = unsafe { (*self.slots.get()).as_deref()? };
        slots
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn insert(&self, key: usize, value: Rc<dyn Any>) -> Option<Rc<dyn Any>> {
        // SAFETY: see `slots`; the replaced value is returned, not dropped here.
        let slots = unsafe { (*self.slots.get()).get_or_insert_with(Box::default) };
        match slots.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                slots.push((key, value));
                None
            }
        }
    }

    /// Holds no value?
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: see `slots`; a plain read of the option.
        unsafe { (*self.slots.get()).is_none() }
    }

    /// Drops every value (at death, and when a main greenlet is released).
    #[inline]
    pub(crate) fn clear(&self) {
        // SAFETY: see `slots`: the table is moved out, then dropped after the
        // borrow (its destructors may use greenlet-locals again).
        let slots = unsafe { (*self.slots.get()).take() };
        drop(slots);
    }
}
