//! This thread's pool of ready stacks: the stacks of dead greenlets, kept
//! warm for the next ones, so that create + run + die costs no system call.
//!
//! A fixed array used as a stack (last in, first out): taking checks the top
//! entry first, since the stack just released is the one most likely to have
//! the size wanted next (and its pages are warm). Entries are whole
//! [`Stack`]s, moved in and out; nothing is searched unless the top entry has
//! another size.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::stack::{Stack, StackKind};

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
/// use greenlet::stack;
/// stack::trim_pool();
/// stack::release(stack::take(64 << 10).unwrap()); // as a dead greenlet's stack is
/// assert_eq!(stack::pooled(), 1);
/// let again = stack::take(64 << 10).unwrap(); // the next one reuses it
/// assert_eq!(stack::pooled(), 0);
/// # drop(again);
/// ```
pub fn pooled() -> usize {
    with(|pool| pool.len)
}

/// Gives the memory of every stack in this thread's pool back to the system;
/// returns how many there were. Later greenlets make new stacks until the
/// pool fills up again.
///
/// ```
/// use greenlet::stack;
/// stack::release(stack::take(64 << 10).unwrap()); // into the pool
/// assert!(stack::trim_pool() >= 1);
/// assert_eq!(stack::pooled(), 0);
/// ```
pub fn trim_pool() -> usize {
    let mut trimmed = 0;
    // One at a time, each dropped outside the pool (its contract).
    while let Some(stack) = pop() {
        drop(stack);
        trimmed += 1;
    }
    trimmed
}

thread_local! {
    /// A `const` thread local of a type without drop glue: reaching it is one
    /// TLS address computation, with no "initialised / destroyed" state to
    /// test. Its stacks are given back at thread exit by the thread's stack
    /// state ([`drain_and_close`], from src/stack/thread.rs), which every
    /// stack in here was made through.
    static POOL: UnsafeCell<Pool> = const { UnsafeCell::new(Pool::new()) };
}

struct Pool {
    /// Entries `[0, len)` are initialised; `len <= cap <= POOL_CAPACITY`.
    len: usize,
    /// POOL_CAPACITY, or 0 once the thread has given its pool back.
    cap: usize,
    stacks: [MaybeUninit<Stack>; POOL_CAPACITY],
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            len: 0,
            cap: POOL_CAPACITY,
            stacks: [const { MaybeUninit::uninit() }; POOL_CAPACITY],
        }
    }
}

/// Runs `f` on this thread's pool. `f` must not reach the pool again (it
/// does not drop stacks: those are handed out and dropped by the caller).
#[inline(always)]
fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    // SAFETY: the only reference to this thread's pool while `f` runs: every
    // caller is one of the functions below, none of which re-enters, and the
    // fault handler never reads the pool.
    POOL.with(|p| f(unsafe { &mut *p.get() }))
}

/// The most recently pooled stack if it has `usable` bytes, taken as `kind`.
#[inline(always)]
pub(crate) fn take_top(usable: usize, kind: StackKind) -> Option<Stack> {
    with(|pool| {
        let top = pool.len.checked_sub(1)?;
        // SAFETY: top < len <= POOL_CAPACITY, and entries below len are
        // initialised.
        let entry = unsafe { pool.stacks.get_unchecked_mut(top) };
        // SAFETY: as above: initialised.
        if unsafe { entry.assume_init_ref() }.usable_size() != usable {
            return None;
        }
        pool.len = top;
        // SAFETY: initialised, and no longer counted, so read out only once.
        let mut stack = unsafe { entry.assume_init_read() };
        stack.set_kind(kind);
        Some(stack)
    })
}

/// The most recently pooled stack of `usable` bytes below the top one.
pub(crate) fn take_deeper(usable: usize, kind: StackKind) -> Option<Stack> {
    with(|pool| {
        // SAFETY: entries below len are initialised.
        let at = (0..pool.len)
            .rev()
            .find(|&i| unsafe { pool.stacks[i].assume_init_ref() }.usable_size() == usable)?;
        // SAFETY: initialised; the entries above are moved down one place
        // below, so this one is read out only once.
        let mut stack = unsafe { pool.stacks[at].assume_init_read() };
        let base = pool.stacks.as_mut_ptr();
        // SAFETY: both ranges lie in the array (at < len <= POOL_CAPACITY);
        // a bitwise move, after which entry len - 1 is no longer counted.
        unsafe { std::ptr::copy(base.add(at + 1), base.add(at), pool.len - at - 1) };
        pool.len -= 1;
        stack.set_kind(kind);
        Some(stack)
    })
}

/// Keeps `stack`, or hands it back when the pool is full or closed.
#[inline(always)]
pub(crate) fn put(stack: Stack) -> Result<(), Stack> {
    with(|pool| {
        if pool.len >= pool.cap {
            return Err(stack);
        }
        // SAFETY: len < cap <= POOL_CAPACITY.
        unsafe { pool.stacks.get_unchecked_mut(pool.len) }.write(stack);
        pool.len += 1;
        Ok(())
    })
}

/// The most recently pooled stack, whatever its size.
fn pop() -> Option<Stack> {
    with(|pool| {
        pool.len = pool.len.checked_sub(1)?;
        // SAFETY: was initialised, and is no longer counted.
        Some(unsafe { pool.stacks[pool.len].assume_init_read() })
    })
}

/// At thread exit: closes the pool (stacks released later are given back at
/// once) and hands out every stack in it, most recent first.
pub(crate) fn drain_and_close() -> impl Iterator<Item = Stack> {
    with(|pool| pool.cap = 0);
    std::iter::from_fn(pop)
}
