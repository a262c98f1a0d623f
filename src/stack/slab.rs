//! Slab stacks: many small stacks carved out of a few large mappings, for
//! programs that keep hundreds of thousands of greenlets alive at once.
//!
//! A guarded stack costs two memory mappings (its guard page splits the VMA),
//! and Linux caps a process at `vm.max_map_count` mappings (65530 by default),
//! so guarded stacks top out near 32k live greenlets. Slab stacks live side by
//! side in 64 MiB *chunks*, one mapping (plus one guard page) per chunk, so a
//! million of them need a few hundred mappings.
//!
//! There is no guard page between neighbours. Instead each stack has a
//! *canary*: [`CANARY_BYTES`] bytes of a fixed pattern just below its lowest
//! usable address, written when the slot is handed out and checked whenever
//! the greenlet switches away and when it dies. A greenlet that ran past the
//! end of its stack has overwritten the canary; the check then aborts the
//! process with "greenlet stack overflow (slab stack ...)" before the
//! neighbour whose memory it trampled can run again.
//!
//! ```text
//!   chunk (one mapping)                                   high addresses
//!   +-------------------------------+
//!   | canary of slot n (unused)     |  CANARY_BYTES
//!   | slot n-1 stack  ^ top         |
//!   |   ...                         |
//!   +-------------------------------+ <- slot n-1 base
//!   | canary of slot n-1            |  top CANARY_BYTES of slot n-2
//!   | slot n-2 stack                |
//!   +-------------------------------+
//!   |   ...                         |
//!   +-------------------------------+ <- slot 0 base
//!   | canary of slot 0              |  top of the pad page
//!   | pad page                      |
//!   +-------------------------------+
//!   | guard page (PROT_NONE)        |  stops a runaway slot 0
//!   +-------------------------------+ <- chunk start           low addresses
//! ```
//!
//! The canary of a slot sits in the top bytes of the slot below it, which that
//! slot's own stack never uses (its top is below them). So the canary shares a
//! page with the neighbour's newest frames, a page that is resident anyway once
//! the neighbour runs: a suspended greenlet whose frames fit in one page costs
//! one resident page, not two.
//!
//! Trade-off, stated plainly: an overflow is detected *after the fact*, at the
//! next switch or at death, not when it happens; and a single frame larger than
//! the canary can jump over it and write into the neighbour without touching
//! it. Rust's stack probes (x86_64, aarch64) write to every page of a frame
//! larger than a page, in order from the top, which narrows that gap but does
//! not close it for frames between [`CANARY_BYTES`] and a page. Use guarded
//! stacks (the default) wherever a hard guarantee matters more than count.
//!
//! Memory: slots of dead greenlets go on a per-thread free list (last in,
//! first out, so a warm slot is reused first) and are never handed back to the
//! kernel while the thread lives. When the thread exits, chunks with no live
//! slot are unmapped; chunks still holding a live (leaked) greenlet stay
//! mapped, since frames may live on them.

use std::cell::RefCell;
use std::io;

/// Bytes of the canary below every slab stack. A multiple of 64 (whole cache
/// lines); checked in full at every switch away and at death.
pub const CANARY_BYTES: usize = 1024;

/// Size of the mappings slab stacks are carved from (more when a single stack
/// is larger than this).
pub const CHUNK_BYTES: usize = 64 << 20;

/// The canary pattern, repeated: unlikely as a return address, a saved
/// register, a pointer or a small integer, and never all zeros (zeroing
/// stores, such as `mov $0` stack probes, change it).
const PATTERN: u64 = 0xC5A7_0B5E_57AC_C0DE;

const CANARY_WORDS: usize = CANARY_BYTES / 8;

/// One slab stack: a slot of `slot_size` bytes starting at `base`.
///
/// ```text
///   base + slot_size  +------------------+
///                     | next slot's      |
///                     | canary           |  CANARY_BYTES
///   top               +------------------+
///                     | usable stack     |  slot_size - CANARY_BYTES
///   base = bottom     +------------------+
///                     | our canary       |  CANARY_BYTES (in the slot below)
///   base - CANARY     +------------------+
/// ```
///
/// Owned by exactly one greenlet; goes back to the free list when dropped. It is not
/// `Send` in spirit: only the thread that took it may release it. The crate
/// keeps it inside greenlet objects, which are `!Send`.
#[derive(Debug)]
pub(crate) struct Slot {
    base: usize,
    slot_size: usize,
}

impl Slot {
    /// Exclusive upper end of the stack, 16-byte aligned.
    #[inline]
    pub(crate) fn top(&self) -> *mut u8 {
        (self.base + self.usable_size()) as *mut u8
    }

    /// Lowest usable address.
    #[inline]
    pub(crate) fn bottom(&self) -> *mut u8 {
        self.base as *mut u8
    }

    #[inline]
    pub(crate) fn usable_size(&self) -> usize {
        self.slot_size - CANARY_BYTES
    }

    /// Address range `[start, end)` of this stack's canary.
    pub(crate) fn canary_range(&self) -> (usize, usize) {
        (self.base - CANARY_BYTES, self.base)
    }

    /// Aborts the process with a clear message when the canary below this
    /// stack has been overwritten: the greenlet on it ran off its end.
    #[inline]
    pub(crate) fn check_canary(&self) {
        if !canary_intact(self.base - CANARY_BYTES) {
            overflowed(self)
        }
    }
}

/// Does the canary at `start` still hold the pattern in every word?
#[inline]
fn canary_intact(start: usize) -> bool {
    // SAFETY: `start` is the canary of a slot handed out by `take`: the top
    // CANARY_BYTES of the slot below it (or of the chunk's pad page), inside a
    // mapping that stays mapped while the slot is in use, and 8-aligned. The
    // bytes are changed only by stack frames that ran off the end of a stack,
    // outside anything the compiler sees from here (every check follows an
    // opaque switch or call), so plain reads that it can vectorise are fine.
    let words = unsafe { std::slice::from_raw_parts(start as *const u64, CANARY_WORDS) };
    words.iter().fold(0, |diff, &w| diff | (w ^ PATTERN)) == 0
}

fn write_canary(start: usize) {
    let words = start as *mut u64;
    for i in 0..CANARY_WORDS {
        // SAFETY: as in `canary_intact`; no stack uses these bytes (they are
        // above the top of the slot below).
        unsafe { words.add(i).write_volatile(PATTERN) };
    }
}

#[cold]
#[inline(never)]
fn overflowed(slot: &Slot) -> ! {
    let (canary, _) = slot.canary_range();
    crate::report(&format!(
        "greenlet: greenlet stack overflow (slab stack {:#x}..{:#x}, {} bytes): the canary at \
         {:#x}..{:#x} below it was overwritten, so a greenlet ran off the end of its stack and may \
         have corrupted its neighbour; aborting (give it more room with Builder::stack_size, or \
         use guarded stacks)",
        slot.bottom() as usize,
        slot.top() as usize,
        slot.usable_size(),
        canary,
        slot.base,
    ));
    std::process::abort()
}

/// The slot size (in bytes, page multiple) that gives at least `usable` bytes
/// of stack, or `None` when that does not fit in the address space.
pub(crate) fn slot_size_for(usable: usize) -> Option<usize> {
    let page = crate::stack::page_size();
    usable
        .checked_add(CANARY_BYTES + page - 1)
        .map(|n| n & !(page - 1))
        .filter(|&n| {
            n.checked_add(2 * page)
                .is_some_and(|t| t <= isize::MAX as usize)
        })
}

/// One mapping that slots are carved from, lowest address first.
struct Chunk {
    /// Start of the mapping (the guard page).
    start: usize,
    len: usize,
    /// Base of slot 0.
    first_slot: usize,
    /// Slots carved so far (handed out at least once).
    carved: usize,
    capacity: usize,
}

/// All slab stacks of one slot size on this thread.
struct Class {
    slot_size: usize,
    chunks: Vec<Chunk>,
    /// Bases of slots whose greenlet died, most recently freed last.
    free: Vec<usize>,
}

impl Class {
    fn take(&mut self) -> io::Result<usize> {
        if let Some(base) = self.free.pop() {
            return Ok(base);
        }
        let need_chunk = self.chunks.last().map_or(true, |c| c.carved == c.capacity);
        if need_chunk {
            self.chunks.push(map_chunk(self.slot_size)?);
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
        let base = chunk.first_slot + chunk.carved * self.slot_size;
        chunk.carved += 1;
        Ok(base)
    }
}

fn map_chunk(slot_size: usize) -> io::Result<Chunk> {
    let page = crate::stack::page_size();
    let capacity = (CHUNK_BYTES / slot_size).max(1);
    let len = capacity
        .checked_mul(slot_size)
        .and_then(|n| n.checked_add(2 * page))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "greenlet: slab too large"))?;
    // Untouched slots cost neither memory nor commit charge; the lowest page
    // guards slot 0's overflow.
    let start = crate::stack::map_with_low_guard(len).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("greenlet: a {len}-byte slab chunk: {err}"),
        )
    })?;
    // Transparent huge pages would make one touched byte cost 2 MiB of a chunk
    // shared by hundreds of stacks; ask for small pages (advice only: failure
    // is harmless).
    // SAFETY: advice on our own mapping.
    unsafe { libc::madvise(start, len, libc::MADV_NOHUGEPAGE) };
    // The stack-overflow reporter wants to know about this thread too: a slot 0
    // that runs far enough hits the chunk's guard page.
    crate::stack::overflow::prepare_thread();
    let start = start as usize;
    Ok(Chunk {
        start,
        len,
        first_slot: start + 2 * page,
        carved: 0,
        capacity,
    })
}

/// Per-thread slab allocator, one class per slot size.
struct Slabs {
    classes: Vec<Class>,
}

impl Slabs {
    fn class(&mut self, slot_size: usize) -> &mut Class {
        let at = match self.classes.iter().position(|c| c.slot_size == slot_size) {
            Some(at) => at,
            None => {
                self.classes.push(Class {
                    slot_size,
                    chunks: Vec::new(),
                    free: Vec::new(),
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[at]
    }
}

impl Drop for Slabs {
    fn drop(&mut self) {
        for class in &mut self.classes {
            class.free.sort_unstable();
            for chunk in &class.chunks {
                let end = chunk.first_slot + chunk.capacity * class.slot_size;
                let lo = class.free.partition_point(|&b| b < chunk.first_slot);
                let hi = class.free.partition_point(|&b| b < end);
                if hi - lo == chunk.carved {
                    // SAFETY: every carved slot is free, so no frame lives in
                    // this mapping, and nothing refers to it any more.
                    unsafe { libc::munmap(chunk.start as *mut libc::c_void, chunk.len) };
                }
                // Otherwise a leaked greenlet still has frames here: the
                // mapping stays for the life of the process.
            }
        }
    }
}

thread_local! {
    static SLABS: RefCell<Slabs> = const { RefCell::new(Slabs { classes: Vec::new() }) };
}

/// A slab stack with at least `usable` bytes (already page-rounded by the
/// caller), with a fresh canary below it.
pub(crate) fn take(usable: usize) -> io::Result<Slot> {
    let slot_size = slot_size_for(usable).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("greenlet: slab stack size of {usable} bytes is too large to map"),
        )
    })?;
    let base = SLABS
        .try_with(|slabs| slabs.borrow_mut().class(slot_size).take())
        .map_err(|_| io::Error::other("greenlet: no slab stacks during thread teardown"))??;
    write_canary(base - CANARY_BYTES);
    Ok(Slot { base, slot_size })
}

impl Drop for Slot {
    /// Puts the slot back on this thread's free list (or leaks it, during
    /// thread teardown). Only dropped once no frame lives on it any more: at
    /// the greenlet's death, or with an unstarted greenlet.
    fn drop(&mut self) {
        let (slot_size, base) = (self.slot_size, self.base);
        let _ = SLABS.try_with(|slabs| slabs.borrow_mut().class(slot_size).free.push(base));
    }
}

/// Statistics of this thread's slab allocator, from
/// [`stack::slab_stats`](crate::stack::slab_stats).
///
/// ```
/// use greenlet::{stack, Greenlet, StackKind};
/// let before = stack::slab_stats();
/// let _g = Greenlet::builder().stack_kind(StackKind::Slab).spawn(|_| ()).unwrap();
/// let now = stack::slab_stats();
/// assert!(now.chunks >= 1);
/// // Slots in use are those carved and not on a free list: one more now.
/// assert_eq!(now.carved - now.free, before.carved - before.free + 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Chunks (memory mappings) mapped.
    pub chunks: usize,
    /// Slots handed out at least once.
    pub carved: usize,
    /// Slots on the free lists, ready for reuse.
    pub free: usize,
}

/// This thread's slab statistics (all zero before the first slab stack).
pub(crate) fn stats() -> SlabStats {
    SLABS
        .try_with(|slabs| {
            let slabs = slabs.borrow();
            let mut s = SlabStats::default();
            for class in &slabs.classes {
                s.chunks += class.chunks.len();
                s.carved += class.chunks.iter().map(|c| c.carved).sum::<usize>();
                s.free += class.free.len();
            }
            s
        })
        .unwrap_or_default()
}
