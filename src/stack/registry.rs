//! This thread's record of where its stacks and their guards are, for the
//! fault handler: a fault address is looked up here, never in anything above
//! the stack layer, and nothing is recorded per switch.
//!
//! Each record describes an *area*: `[start, end)` cut into equal slots of
//! `stride` bytes, each slot a guard of `guard` bytes with a stack above it. A
//! shared mapping is one area of many slots; a one-stack mapping is an area of
//! one slot. So any address maps to its slot, its guard and its stack with two
//! subtractions and a division.
//!
//! The handler runs on this thread, interrupting it at any instruction, so it
//! must always find a consistent table without a lock. Every update is
//! therefore a sequence of single-word stores in an order that keeps each
//! intermediate state valid:
//!
//! * a record counts only while its `start` is non-zero; `start` is stored
//!   last when a record is written and cleared first when it is removed;
//! * a new record at the end is written before the length that includes it;
//! * a table that is full is copied into a larger one, which is then
//!   published by one pointer store; the old one is freed afterwards.
//!
//! The handler reads with atomic loads only. The bookkeeping that updates
//! need (which record holds which area, which records are vacant) lives in
//! [`Registry`], owned by this thread's stack state and never read by the
//! handler.

use std::collections::BTreeMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// How the guards of an area were made (for the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardHow {
    /// `MADV_GUARD_INSTALL` guard regions.
    Region = 1,
    /// `PROT_NONE` pages (`mprotect`).
    Page = 2,
}

/// An area of slots, as recorded (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Area {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) stride: usize,
    pub(crate) guard: usize,
    pub(crate) how: GuardHow,
}

/// What the handler learns about a faulting address inside a guard.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardHit {
    pub(crate) guard_start: usize,
    pub(crate) guard_end: usize,
    /// The stack right above the guard: `[guard_end, top)`.
    pub(crate) top: usize,
    pub(crate) how: GuardHow,
}

#[derive(Default)]
struct Record {
    start: AtomicUsize,
    end: AtomicUsize,
    stride: AtomicUsize,
    guard: AtomicUsize,
    how: AtomicUsize,
}

/// The table the handler reads: `len` records in use or vacant (start 0).
struct Table {
    len: AtomicUsize,
    records: Box<[Record]>,
}

impl Table {
    fn with_capacity(capacity: usize) -> Box<Table> {
        Box::new(Table {
            len: AtomicUsize::new(0),
            records: (0..capacity).map(|_| Record::default()).collect(),
        })
    }
}

/// The lowest start and highest end of every area any thread ever recorded:
/// a fault outside is nobody's guard, which the handler learns without
/// touching thread-local storage (which, where thread locals live in OS TLS
/// slots, may allocate: too much for a thread stack that has just
/// overflowed, on Windows where the handler runs on that stack).
static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);
static HIGHEST: AtomicUsize = AtomicUsize::new(0);

/// Whether `address` may lie in some thread's area (see [`LOWEST`]).
#[inline]
fn may_be_recorded(address: usize) -> bool {
    address >= LOWEST.load(Ordering::Relaxed) && address < HIGHEST.load(Ordering::Relaxed)
}

thread_local! {
    /// This thread's published table, or null. A `const` thread local with no
    /// destructor: reading it is one TLS access, safe inside a signal handler.
    static PUBLISHED: AtomicPtr<Table> = const { AtomicPtr::new(ptr::null_mut()) };
}

/// The slot, guard and stack of `address` if it lies in a guard of one of this
/// thread's areas. Async-signal-safe: a TLS load and atomic loads only.
pub(crate) fn find_guard(address: usize) -> Option<GuardHit> {
    if !may_be_recorded(address) {
        return None;
    }
    let table = PUBLISHED.try_with(|p| p.load(Ordering::Acquire)).ok()?;
    // SAFETY: a published table stays allocated until a newer one (or null)
    // has been published on this thread, and this runs on this thread, either
    // outside every update or interrupting one, never concurrently with one.
    let table = unsafe { table.as_ref() }?;
    let len = table.len.load(Ordering::Acquire).min(table.records.len());
    for record in &table.records[..len] {
        let start = record.start.load(Ordering::Acquire);
        if start == 0 || address < start {
            continue;
        }
        let end = record.end.load(Ordering::Relaxed);
        if address >= end {
            continue;
        }
        let stride = record.stride.load(Ordering::Relaxed);
        let guard = record.guard.load(Ordering::Relaxed);
        if stride == 0 {
            return None; // never written so; a stale read cannot divide by zero
        }
        let slot = address - (address - start) % stride;
        if address >= slot + guard {
            return None; // inside a stack, not a guard: not an overflow
        }
        let how = if record.how.load(Ordering::Relaxed) == GuardHow::Region as usize {
            GuardHow::Region
        } else {
            GuardHow::Page
        };
        return Some(GuardHit {
            guard_start: slot,
            guard_end: slot + guard,
            top: slot + stride,
            how,
        });
    }
    None
}

/// The slot, guard and stack of `address` if it lies anywhere in one of this
/// thread's areas, guard or stack (for Windows, where the OS reports a stack
/// overflow at the page where it stopped growing the stack, which may lie in
/// the stack when the thread's stack guarantee is larger than the guard).
/// Async-signal-safe, as [`find_guard`].
#[cfg(windows)]
pub(crate) fn find_slot(address: usize) -> Option<GuardHit> {
    if !may_be_recorded(address) {
        return None;
    }
    let table = PUBLISHED.try_with(|p| p.load(Ordering::Acquire)).ok()?;
    // SAFETY: as in find_guard.
    let table = unsafe { table.as_ref() }?;
    let len = table.len.load(Ordering::Acquire).min(table.records.len());
    for record in &table.records[..len] {
        let start = record.start.load(Ordering::Acquire);
        if start == 0 || address < start || address >= record.end.load(Ordering::Relaxed) {
            continue;
        }
        let stride = record.stride.load(Ordering::Relaxed);
        if stride == 0 {
            return None;
        }
        let slot = address - (address - start) % stride;
        let guard = record.guard.load(Ordering::Relaxed);
        return Some(GuardHit {
            guard_start: slot,
            guard_end: slot + guard,
            top: slot + stride,
            how: GuardHow::Page,
        });
    }
    None
}

/// This thread's updater of the published table.
pub(crate) struct Registry {
    /// Record index of each area, by start address.
    index: BTreeMap<usize, usize>,
    /// Indices of records removed (start 0), for reuse.
    vacant: Vec<usize>,
}

impl Registry {
    pub(crate) const fn new() -> Registry {
        Registry {
            index: BTreeMap::new(),
            vacant: Vec::new(),
        }
    }

    /// Records `area`, so that a fault in one of its guards is reported.
    pub(crate) fn add(&mut self, area: Area) {
        LOWEST.fetch_min(area.start, Ordering::Relaxed);
        HIGHEST.fetch_max(area.end, Ordering::Relaxed);
        let vacant = self.vacant.pop();
        if vacant.is_none() {
            grow_if_full();
        }
        // SAFETY: grow_if_full published a table if there was none; only this
        // thread's Registry replaces or frees it, and it does not do so below.
        let table = unsafe { &*published() };
        let len = table.len.load(Ordering::Relaxed);
        let at = vacant.unwrap_or(len);
        let record = &table.records[at];
        record.end.store(area.end, Ordering::Relaxed);
        record.stride.store(area.stride, Ordering::Relaxed);
        record.guard.store(area.guard, Ordering::Relaxed);
        record.how.store(area.how as usize, Ordering::Relaxed);
        record.start.store(area.start, Ordering::Release);
        if at == len {
            table.len.store(len + 1, Ordering::Release);
        }
        self.index.insert(area.start, at);
    }

    /// Forgets the area that starts at `start` (before it is unmapped).
    pub(crate) fn remove(&mut self, start: usize) {
        let Some(at) = self.index.remove(&start) else {
            return;
        };
        // SAFETY: as in `add`. A recorded area implies a published table,
        // except at thread exit where thread locals live in OS TLS slots
        // (Windows): there std may destroy PUBLISHED before the stack state
        // and hand out a fresh, null one afterwards; nothing is published to
        // clear then.
        let Some(table) = (unsafe { published().as_ref() }) else {
            return;
        };
        table.records[at].start.store(0, Ordering::Release);
        self.vacant.push(at);
    }
}

/// This thread's published table (null before the first area).
fn published() -> *const Table {
    PUBLISHED.with(|p| p.load(Ordering::Relaxed))
}

/// Publishes a larger copy of this thread's table when it has no room at the
/// end (or publishes a first one), then frees the old one.
fn grow_if_full() {
    // SAFETY: only the thread's Registry replaces or frees its table.
    let old = unsafe { published().as_ref() };
    let (len, capacity) = old.map_or((0, 0), |t| (t.len.load(Ordering::Relaxed), t.records.len()));
    if len < capacity {
        return;
    }
    let bigger = Table::with_capacity((capacity * 2).max(16));
    if let Some(old) = old {
        for (new, old) in bigger.records.iter().zip(old.records.iter()) {
            new.end
                .store(old.end.load(Ordering::Relaxed), Ordering::Relaxed);
            new.stride
                .store(old.stride.load(Ordering::Relaxed), Ordering::Relaxed);
            new.guard
                .store(old.guard.load(Ordering::Relaxed), Ordering::Relaxed);
            new.how
                .store(old.how.load(Ordering::Relaxed), Ordering::Relaxed);
            new.start
                .store(old.start.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        bigger.len.store(len, Ordering::Relaxed);
    }
    let old = PUBLISHED.with(|p| p.swap(Box::into_raw(bigger), Ordering::Release));
    if !old.is_null() {
        // SAFETY: made by Box::into_raw in an earlier call; no longer
        // published, and the handler reads only what is.
        drop(unsafe { Box::from_raw(old) });
    }
}

impl Drop for Registry {
    /// At thread exit: unpublishes and frees the table. Stacks made after this
    /// (by destructors that run later still) go unrecorded: an overflow on one
    /// is then a plain SIGSEGV, still loud.
    fn drop(&mut self) {
        let old = PUBLISHED
            .try_with(|p| p.swap(ptr::null_mut(), Ordering::Release))
            .unwrap_or(ptr::null_mut());
        if !old.is_null() {
            // SAFETY: made by Box::into_raw in `grow_if_full`, unpublished now.
            drop(unsafe { Box::from_raw(old) });
        }
    }
}
