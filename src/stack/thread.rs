//! This thread's stack memory, in one thread local: the shared mappings, the
//! one-stack mappings, Valgrind's ids, and the registry the fault handler
//! reads. One place, so that thread exit tears them down in the one order
//! that works: the pool's stacks first (back to their mappings), then the
//! shared mappings that hold no live stack, then the registry.
//!
//! Only the slow paths come here (making a stack, giving its memory back):
//! the pool in front (src/stack/pool.rs) is a thread local of its own with no
//! destructor, so taking and releasing pooled stacks tests no TLS state.

use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::io;

use crate::stack::guard::{self, GuardMode};
use crate::stack::registry::Registry;
use crate::stack::shared::{Failure, Shared};
use crate::stack::{pool, single, valgrind};

pub(crate) struct ThreadStacks {
    pub(crate) shared: Shared,
    /// One-stack mappings of this thread alive now (pooled ones included).
    pub(crate) singles: usize,
    /// Valgrind's id of each stack it was told about, by bottom (only ever
    /// filled under Valgrind, where registering returns a non-zero id).
    valgrind_ids: BTreeMap<usize, usize>,
    /// Dropped after `shared` (declaration order): the handler may look up
    /// areas until their mappings are gone.
    registry: Registry,
}

thread_local! {
    static STACKS: UnsafeCell<ThreadStacks> = const {
        UnsafeCell::new(ThreadStacks {
            shared: Shared::new(),
            singles: 0,
            valgrind_ids: BTreeMap::new(),
            registry: Registry::new(),
        })
    };
}

/// Runs `f` on this thread's stack state; `None` once the thread is tearing
/// it down (`f` is then dropped uncalled).
///
/// `f` must not reach `with` again, directly or by dropping a
/// [`Stack`](crate::stack::Stack): hand stacks out of the closure and drop
/// them after.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut ThreadStacks) -> R) -> Option<R> {
    STACKS
        .try_with(|cell| {
            // SAFETY: the only access to this thread's cell; `with` is never
            // re-entered (its contract), and the fault handler reads only the
            // registry's atomics, never through this reference.
            f(unsafe { &mut *cell.get() })
        })
        .ok()
}

impl ThreadStacks {
    /// Memory for a new stack of `usable` bytes: a slot of a shared mapping
    /// with a guard region where those work, else a mapping of its own with a
    /// guard page. Returns its bottom and its guard.
    pub(crate) fn make(&mut self, usable: usize) -> io::Result<(usize, GuardMode)> {
        let (bottom, guard) = self.map(usable)?;
        let id = valgrind::register_stack(bottom, bottom + usable);
        if id != 0 {
            self.valgrind_ids.insert(bottom, id);
        }
        Ok((bottom, guard))
    }

    fn map(&mut self, usable: usize) -> io::Result<(usize, GuardMode)> {
        if guard::guard_mode() == GuardMode::Regions {
            match self.shared.take(usable, &mut self.registry) {
                Ok(bottom) => return Ok((bottom, GuardMode::Regions)),
                Err(Failure::Guard(e)) => guard::regions_failed(e.raw_os_error().unwrap_or(0)),
                // No shared mapping (out of address space or commit charge):
                // a smaller mapping of its own may still be had.
                Err(Failure::Map) => {}
            }
        }
        let bottom = single::map(usable, Some(&mut self.registry))?;
        self.singles += 1;
        Ok((bottom, GuardMode::Mprotect))
    }

    /// Takes back the memory of a stack on which no frame lives any more.
    pub(crate) fn give_back(&mut self, bottom: usize, usable: usize, guard: GuardMode) {
        if let Some(id) = self.valgrind_ids.remove(&bottom) {
            valgrind::deregister_stack(id);
        }
        match guard {
            GuardMode::Regions => self.shared.give_back(bottom, usable),
            GuardMode::Mprotect => {
                // SAFETY: made by single::map (the guard says so), unused now.
                unsafe { single::unmap(bottom, usable, Some(&mut self.registry)) };
                self.singles -= 1;
            }
        }
    }
}

impl Drop for ThreadStacks {
    fn drop(&mut self) {
        for stack in pool::drain_and_close() {
            let (bottom, usable, guard) = stack.into_memory();
            self.give_back(bottom, usable, guard);
        }
        // Then `shared` unmaps what it can, and `registry` is freed.
    }
}
