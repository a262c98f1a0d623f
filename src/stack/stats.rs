//! What this thread's stacks cost and how they are guarded, for tests, tools
//! and the examples.

use crate::stack::guard::{guard_fallback, guard_size, GuardFallback, GuardMode};
use crate::stack::thread;

/// This thread's shared mappings (the memory of every stack, slab or not,
/// wherever [`GuardMode::Regions`] holds), from
/// [`stack::slab_stats`](crate::stack::slab_stats). All zero on the fallback,
/// where each stack is a mapping of its own.
///
/// ```
/// use greenlet::stack::{self, GuardMode, Stack};
/// let before = stack::slab_stats();
/// let s = Stack::new(64 << 10).unwrap(); // not from the pool
/// let now = stack::slab_stats();
/// if stack::guard_mode() == GuardMode::Regions {
///     assert!(now.chunks >= 1);
///     // Slots in use are those carved and not free: one more now.
///     assert_eq!(now.carved - now.free, before.carved - before.free + 1);
/// } else {
///     assert_eq!(now, stack::SlabStats::default());
/// }
/// # drop(s);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Shared mappings (regions) mapped.
    pub chunks: usize,
    /// Slots handed out at least once (each with its guard region installed).
    pub carved: usize,
    /// Slots whose memory was given back, ready for reuse (pooled stacks are
    /// not counted here: see [`pooled`](crate::stack::pooled)).
    pub free: usize,
}

/// This thread's shared mappings: regions, carved slots, free slots.
///
/// ```
/// use greenlet::stack;
/// let s = stack::slab_stats();
/// assert!(s.free <= s.carved);
/// ```
pub fn slab_stats() -> SlabStats {
    thread::with(|t| t.shared.stats()).unwrap_or_default()
}

/// How stacks are guarded, and what this thread's stacks take, from
/// [`stack::stats`](crate::stack::stats()).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackStats {
    /// How stacks made now are guarded ([`guard_mode`](crate::stack::guard_mode())).
    pub guard_mode: GuardMode,
    /// Why not with guard regions, if not
    /// ([`guard_fallback`](crate::stack::guard_fallback())).
    pub fallback: Option<GuardFallback>,
    /// Bytes of the guard below every stack on this CPU, whichever the mode
    /// ([`guard_size`](crate::stack::guard_size())): address space, never
    /// memory.
    pub guard_size: usize,
    /// Stacks in this thread's pool.
    pub pooled: usize,
    /// This thread's shared mappings (see [`SlabStats`]).
    pub shared: SlabStats,
    /// This thread's stacks that are mappings of their own (two kernel
    /// mappings each: the stack and its `PROT_NONE` guard).
    pub single_mappings: usize,
}

/// This thread's stack statistics, with the process's guard mode.
///
/// ```
/// use greenlet::stack::{self, GuardMode};
/// let s = stack::take(64 << 10).unwrap();
/// let stats = stack::stats();
/// match stats.guard_mode {
///     GuardMode::Regions => assert!(stats.shared.carved >= 1),
///     GuardMode::Mprotect => assert!(stats.single_mappings >= 1),
/// }
/// assert_eq!(stats.fallback.is_some(), stats.guard_mode == GuardMode::Mprotect);
/// assert_eq!(stats.guard_size, s.guard_range().1 - s.guard_range().0);
/// # drop(s);
/// ```
///
/// # Panics
/// As [`guard_mode`](crate::stack::guard_mode).
pub fn stats() -> StackStats {
    let fallback = guard_fallback();
    let pooled = crate::stack::pooled();
    let (shared, single_mappings) =
        thread::with(|t| (t.shared.stats(), t.singles)).unwrap_or_default();
    StackStats {
        guard_mode: if fallback.is_some() {
            GuardMode::Mprotect
        } else {
            GuardMode::Regions
        },
        fallback,
        guard_size: guard_size(),
        pooled,
        shared,
        single_mappings,
    }
}
