//! This thread's pool of ready stacks: the stacks of dead greenlets, kept
//! warm for the next ones, so that create + run + die costs no system call.
//!
//! A fixed array used as a stack (last in, first out): taking checks the top
//! entry first, since the stack just released is the one most likely to have
//! the size wanted next (and its pages are warm). Entries are whole
//! [`Stack`]s, moved in and out; nothing is searched unless the top entry has
//! another size.

use std::mem::MaybeUninit;

use crate::stack::{thread, Stack};

/// Most stacks a thread keeps for reuse; stacks released beyond this give
/// their memory back to the system.
///
/// ```
/// use greenlet::stack::{self, POOL_CAPACITY};
/// stack::trim_pool();
/// let stacks: Vec<_> = (0..POOL_CAPACITY + 2).map(|_| stack::take(64 << 10).unwrap()).collect();
/// stacks.into_iter().for_each(stack::release);
/// assert_eq!(stack::pooled(), POOL_CAPACITY); // the last two went back
/// ```
pub const POOL_CAPACITY: usize = 16;

/// Number of stacks in this thread's pool (for tests and introspection).
///
/// ```
/// use greenlet::{stack, Greenlet};
/// stack::trim_pool();
/// Greenlet::new(|_| ()).switch(()); // a greenlet that dies gives its stack back
/// assert_eq!(stack::pooled(), 1);
/// Greenlet::new(|_| ()).switch(()); // the next one reuses that same stack
/// assert_eq!(stack::pooled(), 1);
/// ```
pub fn pooled() -> usize {
    thread::with(|t| t.pool.len()).unwrap_or(0)
}

/// Gives the memory of every stack in this thread's pool back to the system;
/// returns how many there were. Later greenlets make new stacks until the
/// pool fills up again.
///
/// ```
/// greenlet::Greenlet::new(|_| ()).switch(()); // its stack goes to the pool
/// assert!(greenlet::stack::trim_pool() >= 1);
/// assert_eq!(greenlet::stack::pooled(), 0);
/// ```
pub fn trim_pool() -> usize {
    let mut trimmed = 0;
    // One at a time, each dropped outside `thread::with` (its contract).
    while let Some(Some(stack)) = thread::with(|t| t.pool.pop()) {
        drop(stack);
        trimmed += 1;
    }
    trimmed
}

pub(crate) struct Pool {
    /// Entries `[0, len)` are initialised; `len <= POOL_CAPACITY` always.
    len: usize,
    stacks: [MaybeUninit<Stack>; POOL_CAPACITY],
}

impl Pool {
    pub(crate) const fn new() -> Pool {
        Pool {
            len: 0,
            stacks: [const { MaybeUninit::uninit() }; POOL_CAPACITY],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most recently pooled stack if it has `usable` bytes.
    #[inline]
    pub(crate) fn take_top(&mut self, usable: usize) -> Option<Stack> {
        let top = self.len.checked_sub(1)?;
        // SAFETY: top < len <= POOL_CAPACITY, and entries below len are
        // initialised.
        let entry = unsafe { self.stacks.get_unchecked_mut(top) };
        // SAFETY: as above: initialised.
        if unsafe { entry.assume_init_ref() }.usable_size() != usable {
            return None;
        }
        self.len = top;
        // SAFETY: initialised, and no longer counted, so read out only once.
        Some(unsafe { entry.assume_init_read() })
    }

    /// The most recently pooled stack of `usable` bytes below the top one.
    pub(crate) fn take_deeper(&mut self, usable: usize) -> Option<Stack> {
        // SAFETY: entries below len are initialised.
        let at = (0..self.len)
            .rev()
            .find(|&i| unsafe { self.stacks[i].assume_init_ref() }.usable_size() == usable)?;
        // SAFETY: initialised; the entries above are moved down one place
        // below, so this one is read out only once.
        let stack = unsafe { self.stacks[at].assume_init_read() };
        let base = self.stacks.as_mut_ptr();
        // SAFETY: both ranges lie in the array (at < len <= POOL_CAPACITY);
        // a bitwise move, after which entry len - 1 is no longer counted.
        unsafe { std::ptr::copy(base.add(at + 1), base.add(at), self.len - at - 1) };
        self.len -= 1;
        Some(stack)
    }

    /// Keeps `stack`, or hands it back when the pool is full.
    #[inline]
    pub(crate) fn put(&mut self, stack: Stack) -> Result<(), Stack> {
        if self.len == POOL_CAPACITY {
            return Err(stack);
        }
        // SAFETY: len < POOL_CAPACITY.
        unsafe { self.stacks.get_unchecked_mut(self.len) }.write(stack);
        self.len += 1;
        Ok(())
    }

    /// The most recently pooled stack, whatever its size.
    pub(crate) fn pop(&mut self) -> Option<Stack> {
        self.len = self.len.checked_sub(1)?;
        // SAFETY: was initialised, and is no longer counted.
        Some(unsafe { self.stacks[self.len].assume_init_read() })
    }
}
