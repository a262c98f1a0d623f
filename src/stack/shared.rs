//! Stacks carved from large shared mappings, each with a guard region below it
//! (used when [`GuardMode::Regions`](crate::stack::GuardMode) holds).
//!
//! A guard region (`MADV_GUARD_INSTALL`) does not split the mapping it lies
//! in, so a thousand stacks with their guards are one kernel mapping, and the
//! number of live stacks is not capped by `vm.max_map_count`. Stacks of one
//! usable size form a *class*; a class maps *regions* of about
//! [`REGION_BYTES`] and cuts them into *slots* of `usable + guard` bytes
//! (the guard is [`guard_size`] bytes: a page, or more on CPUs where a frame
//! can reach further):
//!
//! ```text
//!   region (one mapping)                                  high addresses
//!   +------------------------------+ <- slot 1 top
//!   | stack of slot 1              |  usable bytes
//!   +------------------------------+
//!   | guard region of slot 1       |  guard_size() bytes
//!   +------------------------------+ <- slot 1 = slot 0 top
//!   | stack of slot 0              |
//!   +------------------------------+
//!   | guard region of slot 0       |  also guards the region's start
//!   +------------------------------+ <- region start                low addresses
//! ```
//!
//! Costs: a slot is carved with exactly one system call, the `madvise` that
//! installs its guard (its memory is touched only by the stack's own frames).
//! A stack given back (beyond this thread's pool) has its memory discarded
//! with `MADV_DONTNEED`, which keeps the guard, and its slot goes on the
//! class's free list, last in first out; taking it again costs no system call.
//! Regions are unmapped when the thread exits, those that still hold a live
//! (leaked) stack excepted: frames may live there.

use std::io;
use std::mem::ManuallyDrop;

use memmap2::MmapMut;

use crate::stack::registry::{Area, GuardHow, Registry};
use crate::stack::{guard_size, os, SlabStats};

/// Bytes of address space a region spans (at least one slot): reserved, not
/// committed, so the size costs nothing but keeps the mapping count low: a
/// million 1 MiB stacks take about 4,000 regions.
pub(crate) const REGION_BYTES: usize = if cfg!(target_pointer_width = "64") {
    256 << 20
} else {
    32 << 20
};

/// Why no slot could be had.
pub(crate) enum Failure {
    /// The region could not be mapped (out of address space or commit).
    Map,
    /// The kernel refused the guard region: guard regions no longer work here.
    Guard(io::Error),
}

struct Region {
    /// Unmapped at thread exit when every carved slot is free, else leaked.
    map: ManuallyDrop<MmapMut>,
    carved: usize,
    capacity: usize,
}

impl Region {
    fn start(&self) -> usize {
        self.map.as_ptr() as usize
    }
}

/// All slots of one usable size on this thread.
struct Class {
    usable: usize,
    regions: Vec<Region>,
    /// Bottoms of stacks given back, most recently freed last.
    free: Vec<usize>,
}

/// This thread's shared mappings.
pub(crate) struct Shared {
    classes: Vec<Class>,
}

impl Shared {
    pub(crate) const fn new() -> Shared {
        Shared {
            classes: Vec::new(),
        }
    }

    fn class(&mut self, usable: usize) -> &mut Class {
        let at = match self.classes.iter().position(|c| c.usable == usable) {
            Some(at) => at,
            None => {
                self.classes.push(Class {
                    usable,
                    regions: Vec::new(),
                    free: Vec::new(),
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[at]
    }

    /// The bottom of a stack of `usable` bytes (a page multiple) with a guard
    /// region right below it: a free slot, else a fresh one.
    pub(crate) fn take(
        &mut self,
        usable: usize,
        registry: &mut Registry,
    ) -> Result<usize, Failure> {
        let guard = guard_size();
        let class = self.class(usable);
        if let Some(bottom) = class.free.pop() {
            return Ok(bottom);
        }
        let stride = usable + guard; // cannot overflow: usable_size_for checked it
        if class
            .regions
            .last()
            .map_or(true, |r| r.carved == r.capacity)
        {
            let capacity = (REGION_BYTES / stride).max(1);
            let len = capacity.checked_mul(stride).ok_or(Failure::Map)?;
            let map = os::map_region(len).map_err(|_| Failure::Map)?;
            let start = map.as_ptr() as usize;
            registry.add(Area {
                start,
                end: start + len,
                stride,
                guard,
                how: GuardHow::Region,
            });
            class.regions.push(Region {
                map: ManuallyDrop::new(map),
                carved: 0,
                capacity,
            });
        }
        let region = class
            .regions
            .last_mut()
            .expect("a region with room was just ensured");
        let slot = region.start() + region.carved * stride;
        // SAFETY: the slot's guard bytes lie in our region and were never
        // handed out, so no memory in use is zapped.
        unsafe { os::install_guard(slot, guard) }.map_err(Failure::Guard)?;
        region.carved += 1;
        Ok(slot + guard)
    }

    /// Takes back the stack at `bottom` of `usable` bytes, on which no frame
    /// lives any more: its memory goes back to the kernel, its slot (guard
    /// kept) on the free list.
    pub(crate) fn give_back(&mut self, bottom: usize, usable: usize) {
        // SAFETY: the stack's usable range, in our region, no longer in use.
        unsafe { os::discard(bottom, usable) };
        self.class(usable).free.push(bottom);
    }

    /// Mappings, carved slots and free slots of this thread.
    pub(crate) fn stats(&self) -> SlabStats {
        let mut stats = SlabStats::default();
        for class in &self.classes {
            stats.chunks += class.regions.len();
            stats.carved += class.regions.iter().map(|r| r.carved).sum::<usize>();
            stats.free += class.free.len();
        }
        stats
    }
}

impl Drop for Shared {
    /// At thread exit: unmaps every region whose carved slots are all free.
    /// A region still holding a live stack (a greenlet that could not be
    /// killed) stays mapped for the life of the process.
    fn drop(&mut self) {
        let guard = guard_size();
        for class in &mut self.classes {
            class.free.sort_unstable();
            let stride = class.usable + guard;
            for region in &mut class.regions {
                let start = region.start();
                let end = start + region.capacity * stride;
                let lo = class.free.partition_point(|&b| b < start);
                let hi = class.free.partition_point(|&b| b < end);
                if hi - lo == region.carved {
                    // SAFETY: every carved slot is free, so no frame lives in
                    // this mapping; it is dropped once, here.
                    unsafe { ManuallyDrop::drop(&mut region.map) };
                }
            }
        }
    }
}
