//! Greenlet stacks, every one with a hardware guard below it (SPEC §6), and a
//! small per-thread pool that recycles the stacks of dead greenlets so that
//! create + run + die costs no system call.
//!
//! Where the kernel has guard regions (`MADV_GUARD_INSTALL`, Linux 6.13 and
//! later, proven to work by a probe at the first stack), stacks are carved
//! from a few large shared mappings, a guard region below each, so a million
//! live greenlets need only a few thousand kernel mappings. Elsewhere (older
//! kernels, qemu-user, mlocked processes, or `GREENLET_GUARD=mprotect` in the
//! environment) each stack is a mapping of its own whose lowest page is made
//! `PROT_NONE`. [`guard_mode`] says which; both look the same from here:
//!
//! ```text
//!   high addresses
//!   +---------------------------+ <- top()      (16-aligned, initial frame below)
//!   |                           |
//!   |   usable stack            |   usable_size() bytes, a page multiple,
//!   |   (grows downward)        |   touched lazily by the kernel
//!   |                           |
//!   +---------------------------+ <- bottom()
//!   |   guard (faults on use)   |   guard_size() bytes: guard region or
//!   +---------------------------+   PROT_NONE pages
//!   low addresses
//! ```
//!
//! The guard is one page where the compiler emits stack probes (x86_64,
//! aarch64, ...), and larger where a frame can reach further below the stack
//! it runs off: 64 KiB more on riscv64 and arm, which have no probes, 4 KiB
//! more on s390x, whose probes leave the stack pointer a page below what they
//! touch ([`guard_size`] has the reasons).
//!
//! Running into the guard stops the process with a "greenlet stack overflow"
//! message naming the stack's range (the private `overflow` module). Both
//! [`StackKind`]s get the same guarded memory; they differ only in their
//! default size. No stack without a guard can be had.
//!
//! Greenlets take and release their stacks here on their own; the functions
//! are public for tests, tools and the curious:
//!
//! ```
//! use greenlet::stack;
//! let s = stack::take(stack::MIN_STACK_SIZE).unwrap();
//! let (guard_start, guard_end) = s.guard_range();
//! assert_eq!(guard_end - guard_start, stack::guard_size());
//! assert!(guard_end == s.bottom() as usize && s.bottom() < s.top());
//! stack::release(s); // into this thread's pool, for the next greenlet
//! ```
//!
//! A stack belongs to the thread that made it (its pool and mappings are that
//! thread's), so it cannot be sent to another:
//!
//! ```compile_fail
//! let s = greenlet::stack::take(64 << 10).unwrap();
//! std::thread::spawn(move || greenlet::stack::release(s)); // Stack is !Send
//! ```

use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

mod guard;
pub(crate) mod overflow;
mod pool;
mod registry;
pub(crate) mod sanitizer;
mod shared;
mod single;
mod stats;
mod thread;
#[cfg(unix)]
mod unix;
pub(crate) use os::os_thread_id;
pub(crate) mod valgrind;
#[cfg(windows)]
mod windows;

// The OS calls of this layer, one file per OS family, with the same functions.
#[cfg(unix)]
use crate::stack::unix as os;
#[cfg(windows)]
use crate::stack::windows as os;

pub use crate::stack::guard::{guard_fallback, guard_mode, guard_size, GuardFallback, GuardMode};
pub use crate::stack::pool::{pooled, trim_pool, POOL_CAPACITY};
pub use crate::stack::stats::{slab_stats, stats, SlabStats, StackStats};

/// Stack size used when [`crate::Builder::stack_size`] is not called: 1 MiB.
/// Untouched pages cost no memory, only address space.
///
/// ```
/// use greenlet::stack::{self, DEFAULT_STACK_SIZE};
/// assert_eq!(DEFAULT_STACK_SIZE, 1 << 20);
/// let s = stack::take(DEFAULT_STACK_SIZE).unwrap(); // what a greenlet gets by default
/// assert_eq!(s.usable_size(), DEFAULT_STACK_SIZE); // already whole pages
/// ```
pub const DEFAULT_STACK_SIZE: usize = 1 << 20;

/// Smallest usable stack handed out: requests below this are rounded up.
/// A `panic!` needs room of its own: the panic hook that prints the message
/// (and, with `RUST_BACKTRACE=1`, a backtrace) takes more than 16 KiB of stack,
/// and unwinding takes up to 10 KiB more in debug builds; 32 KiB leaves the
/// greenlet's own frames room beside both.
///
/// ```
/// use greenlet::stack::{self, MIN_STACK_SIZE};
/// let smallest = stack::usable_size_for(MIN_STACK_SIZE).unwrap();
/// assert_eq!(stack::usable_size_for(MIN_STACK_SIZE - 1).unwrap(), smallest);
/// assert_eq!(stack::usable_size_for(0).unwrap(), smallest);
/// assert!(stack::take(1).unwrap().usable_size() >= MIN_STACK_SIZE);
/// ```
pub const MIN_STACK_SIZE: usize = 32 << 10;

/// Stack size of a [`StackKind::Slab`] greenlet when
/// [`crate::Builder::stack_size`] is not called: 64 KiB.
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(stack::DEFAULT_SLAB_STACK_SIZE, StackKind::Slab).unwrap();
/// assert_eq!(s.usable_size(), stack::DEFAULT_SLAB_STACK_SIZE); // whole pages already
/// ```
pub const DEFAULT_SLAB_STACK_SIZE: usize = 64 << 10;

/// Slab stacks no longer have a canary: every stack, slab ones included, has
/// a guard region or guard page below it that faults at once. Zero bytes.
#[deprecated(
    since = "0.1.0",
    note = "slab stacks have a hardware guard below them now, not a canary; see Stack::guard_range"
)]
pub const SLAB_CANARY_BYTES: usize = 0;

/// The system page size.
///
/// ```
/// use greenlet::stack::{page_size, usable_size_for};
/// let page = page_size();
/// assert!(page.is_power_of_two() && page >= 4096);
/// assert_eq!(usable_size_for(100_000).unwrap() % page, 0); // stacks are whole pages
/// ```
#[inline]
pub fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let page = os::page_size();
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Rounds a requested stack size to the usable size actually mapped, or says
/// why it cannot be had.
///
/// ```
/// use greenlet::stack::{page_size, usable_size_for, MIN_STACK_SIZE};
/// let page = page_size();
/// assert_eq!(usable_size_for(40 * page + 1).unwrap(), 41 * page); // up to whole pages
/// assert!(usable_size_for(1).unwrap() >= MIN_STACK_SIZE); // and at least the minimum
/// let err = usable_size_for(usize::MAX).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[inline]
pub fn usable_size_for(requested: usize) -> io::Result<usize> {
    let page = page_size();
    // Whole pages, and room for the guard below (guard_size(), at most a few
    // pages and 64 KiB), within isize::MAX (the largest mapping there can
    // be): refusing anything above half of that, far beyond any address
    // space, lets one compare against a constant cover the rounding and the
    // guard.
    if requested > isize::MAX as usize / 2 {
        return Err(too_large(requested));
    }
    Ok((requested.max(MIN_STACK_SIZE) + page - 1) & !(page - 1))
}

#[cold]
fn too_large(requested: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("greenlet: stack size of {requested} bytes is too large to map"),
    )
}

/// Where a greenlet's stack memory comes from (see [`crate::Builder::stack_kind`]).
///
/// Both kinds get the same memory, with the same guard ([`guard_mode`] says
/// which); they differ in their default size only.
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(stack::DEFAULT_SLAB_STACK_SIZE, StackKind::Slab).unwrap();
/// assert_eq!(s.kind(), StackKind::Slab);
/// assert_eq!(s.guard(), stack::guard_mode()); // the same guard as any stack
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StackKind {
    /// The default: [`DEFAULT_STACK_SIZE`] (1 MiB) unless a size is given.
    /// With guard regions a million of these can be alive at once.
    #[default]
    Guarded,
    /// Small stacks, [`DEFAULT_SLAB_STACK_SIZE`] (64 KiB) unless a size is
    /// given, from the same guarded shared mappings. Once this kind had
    /// unguarded neighbours with a canary between them; now every stack has a
    /// guard, so the kind only changes the default size (see `docs/scale.md`).
    Slab,
}

/// One greenlet stack: `usable_size()` bytes with a guard below (see the
/// module docs). A few words: where it is, how big, how it is guarded.
/// `!Send`: it belongs to the pool and mappings of the thread that made it.
///
/// Greenlets get theirs from [`take_kind`]; a stack on its own is just memory:
///
/// ```
/// use greenlet::stack::Stack;
/// let s = Stack::new(64 << 10).unwrap();
/// assert_eq!(s.top() as usize - s.bottom() as usize, s.usable_size());
/// drop(s); // its memory goes back to the system
/// ```
pub struct Stack {
    /// Lowest usable byte, right above the guard. A `NonNull` pointer: it also
    /// makes the stack `!Send` and `!Sync`, and gives `io::Result<Stack>` a
    /// niche, so that it fits in two registers.
    bottom: NonNull<u8>,
    /// The usable size (a page multiple, so its low 12 bits are free: pages
    /// are 4 KiB or larger) with [`MAPPING_OF_ITS_OWN`] and [`SLAB`] in them.
    meta: usize,
}

/// Where a debugger finds a stack's range inside a [`Stack`] value (for the
/// exported debug table of src/greenlet/registry.rs): the offsets of its
/// lowest usable address and of the word whose bits `SIZE_MASK` are its
/// usable size. `Option<Stack>` is `Stack` with a null `bottom` for `None`.
pub(crate) mod debug_layout {
    use super::{Stack, FLAGS};
    /// Offset of the lowest usable address (a pointer; null: no stack).
    pub(crate) const BOTTOM: usize = std::mem::offset_of!(Stack, bottom);
    /// Offset of the word holding the usable size.
    pub(crate) const META: usize = std::mem::offset_of!(Stack, meta);
    /// The bits of that word that are the usable size.
    pub(crate) const SIZE_MASK: usize = !FLAGS;
    // `None` is the null `bottom`, and `Some`'s payload starts at offset 0
    // (the payload fills the whole value).
    const _: () = assert!(std::mem::size_of::<Option<Stack>>() == std::mem::size_of::<Stack>());
}

/// Flag in `Stack::meta`: the stack is a mapping of its own with a guard page
/// (else a slot of a shared mapping with a guard region).
const MAPPING_OF_ITS_OWN: usize = 1;
/// Flag in `Stack::meta`: taken as [`StackKind::Slab`].
const SLAB: usize = 2;
/// Bits of `Stack::meta` that are not the size.
const FLAGS: usize = 0xfff;

impl Stack {
    /// A stack of at least `requested` usable bytes (see [`usable_size_for`])
    /// that does not come from this thread's pool: a fresh slot of a shared
    /// mapping, a free one whose memory was given back, or a fresh mapping.
    ///
    /// ```
    /// use greenlet::{stack::{self, Stack}, StackKind};
    /// let s = Stack::new(100_000).unwrap();
    /// assert_eq!(s.kind(), StackKind::Guarded);
    /// assert_eq!(s.usable_size(), stack::usable_size_for(100_000).unwrap());
    /// ```
    pub fn new(requested: usize) -> io::Result<Stack> {
        make(usable_size_for(requested)?, StackKind::Guarded)
    }

    /// Exclusive upper end of the stack: where the first frame goes below.
    ///
    /// ```
    /// let s = greenlet::stack::Stack::new(64 << 10).unwrap();
    /// assert_eq!(s.top() as usize % 16, 0); // aligned for the first frame
    /// // SAFETY: the byte just below top() is usable stack memory that we own
    /// // and that nothing runs on.
    /// unsafe { s.top().sub(1).write(7) };
    /// ```
    #[inline]
    pub fn top(&self) -> *mut u8 {
        self.bottom.as_ptr().wrapping_add(self.usable_size())
    }

    /// Lowest usable address, right above the guard.
    ///
    /// ```
    /// let s = greenlet::stack::Stack::new(64 << 10).unwrap();
    /// assert_eq!(s.bottom() as usize, s.guard_range().1);
    /// // SAFETY: bottom() is the lowest byte of the usable range, which we own
    /// // and nothing runs on; the byte below it would fault.
    /// unsafe { s.bottom().write(7) };
    /// assert_eq!(unsafe { s.bottom().read() }, 7); // SAFETY: as above
    /// ```
    #[inline]
    pub fn bottom(&self) -> *mut u8 {
        self.bottom.as_ptr()
    }

    /// Usable bytes between [`Stack::bottom`] and [`Stack::top`].
    ///
    /// ```
    /// use greenlet::stack::{page_size, Stack};
    /// let s = Stack::new(100_000).unwrap();
    /// assert!(s.usable_size() >= 100_000 && s.usable_size() % page_size() == 0);
    /// ```
    #[inline]
    pub fn usable_size(&self) -> usize {
        self.meta & !FLAGS
    }

    /// Address range `[start, end)` of the guard right below the stack:
    /// [`guard_size`] bytes that fault on any access.
    ///
    /// ```
    /// use greenlet::stack::{guard_size, Stack};
    /// let s = Stack::new(64 << 10).unwrap();
    /// let (start, end) = s.guard_range();
    /// assert_eq!(end - start, guard_size());
    /// assert_eq!(end, s.bottom() as usize); // right below the stack
    /// ```
    pub fn guard_range(&self) -> (usize, usize) {
        let bottom = self.bottom() as usize;
        (bottom - guard_size(), bottom)
    }

    /// How this stack's guard was made: a guard region in a shared mapping,
    /// or a `PROT_NONE` page of a mapping of its own (see [`guard_mode`]).
    pub fn guard(&self) -> GuardMode {
        if self.meta & MAPPING_OF_ITS_OWN != 0 {
            GuardMode::Mprotect
        } else {
            GuardMode::Regions
        }
    }

    /// The kind this stack was taken as.
    ///
    /// ```
    /// use greenlet::{stack, StackKind};
    /// assert_eq!(stack::take(64 << 10).unwrap().kind(), StackKind::Guarded);
    /// assert_eq!(stack::take_kind(64 << 10, StackKind::Slab).unwrap().kind(), StackKind::Slab);
    /// ```
    pub fn kind(&self) -> StackKind {
        if self.meta & SLAB != 0 {
            StackKind::Slab
        } else {
            StackKind::Guarded
        }
    }

    #[inline(always)]
    fn set_kind(&mut self, kind: StackKind) {
        self.meta = (self.meta & !SLAB) | if kind == StackKind::Slab { SLAB } else { 0 };
    }

    /// Bytes from the top down to the start of the lowest resident page: the
    /// deepest this memory has been touched since it was last given back to
    /// the kernel (by this stack's user or, for a pooled stack, an earlier
    /// one), at page granularity. `mincore(2)` reads page tables only, so this
    /// touches no stack memory. `None` when `mincore` fails or nothing was
    /// touched.
    pub(crate) fn touched_depth(&self) -> Option<usize> {
        let page = page_size();
        let usable = self.usable_size();
        let mut resident = vec![0u8; usable / page];
        // SAFETY: [bottom, top) is page-aligned, mapped, and ours.
        unsafe { os::resident_pages(self.bottom() as usize, &mut resident) }.ok()?;
        let lowest = resident.iter().position(|&r| r & 1 != 0)?;
        Some(usable - lowest * page)
    }

    /// What Windows must be told about this stack while it runs (the TEB's
    /// `StackBase`, `StackLimit`, `DeallocationStack`): its top, its lowest
    /// committed byte now (asked of the OS: a pooled stack keeps what its
    /// last user committed), and the start of its reservation.
    #[cfg(windows)]
    pub(crate) fn os_bounds(&self) -> (usize, usize, usize) {
        let top = self.top() as usize;
        // SAFETY: top() is the end of a reservation made by this layer.
        let limit = unsafe { os::committed_limit(top) };
        (top, limit, self.bottom() as usize - guard_size())
    }

    /// Takes the stack apart without giving its memory back: bottom, usable
    /// size, guard.
    pub(crate) fn into_memory(self) -> (usize, usize, GuardMode) {
        let stack = ManuallyDrop::new(self);
        (stack.bottom() as usize, stack.usable_size(), stack.guard())
    }
}

impl Drop for Stack {
    /// Gives the memory back: a shared slot to its free list (memory
    /// discarded, guard kept), a mapping of its own unmapped.
    fn drop(&mut self) {
        let (bottom, usable, guard) = (self.bottom() as usize, self.usable_size(), self.guard());
        if thread::with(|t| t.give_back(bottom, usable, guard)).is_none()
            && guard == GuardMode::Mprotect
        {
            // The thread is exiting and its stack state is gone. A mapping of
            // its own is simply unmapped; a shared slot stays with its
            // mapping, which the teardown kept because this stack was live.
            // SAFETY: made by single::map (the guard says so); being dropped,
            // it has no frames.
            unsafe { single::unmap(bottom, usable, None) };
        }
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("bottom", &self.bottom())
            .field("top", &self.top())
            .field("usable_size", &self.usable_size())
            .field("guard", &self.guard())
            .field("kind", &self.kind())
            .finish()
    }
}

/// A guarded stack of `requested` usable bytes: [`take_kind`] with the
/// default kind.
///
/// ```
/// use greenlet::stack;
/// stack::trim_pool();
/// let s = stack::take(64 << 10).unwrap(); // the pool is empty: newly made
/// let top = s.top();
/// stack::release(s);
/// let again = stack::take(64 << 10).unwrap(); // same size: the pooled one
/// assert_eq!(again.top(), top);
/// assert_eq!(stack::pooled(), 0);
/// ```
#[inline]
pub fn take(requested: usize) -> io::Result<Stack> {
    take_kind(requested, StackKind::Guarded)
}

/// A stack of `kind` with `requested` usable bytes (rounded as
/// [`usable_size_for`] says): from this thread's pool when it holds one of
/// that size, else newly made (the first stack made in the process decides
/// the [`guard_mode`]). Installs the overflow handler and gives the thread an
/// alternate signal stack the first time.
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(64 << 10, StackKind::Slab).unwrap();
/// assert!(s.kind() == StackKind::Slab && s.usable_size() >= 64 << 10);
/// assert_eq!(s.guard(), stack::guard_mode());
/// ```
///
/// # Errors
/// A size too large to map (`InvalidInput`), or memory, address space or (on
/// the fallback) mappings running out.
#[inline]
pub fn take_kind(requested: usize, kind: StackKind) -> io::Result<Stack> {
    let usable = usable_size_for(requested)?;
    match pool::take_top(usable, kind) {
        Some(stack) => Ok(stack),
        None => take_cold(usable, kind),
    }
}

#[cold]
#[inline(never)]
fn take_cold(usable: usize, kind: StackKind) -> io::Result<Stack> {
    match pool::take_deeper(usable, kind) {
        Some(stack) => Ok(stack),
        None => make(usable, kind),
    }
}

/// Makes a stack of `usable` bytes (a page multiple), bypassing the pool.
fn make(usable: usize, kind: StackKind) -> io::Result<Stack> {
    // A guard hit on this thread must be reported (overflow.rs).
    overflow::prepare_thread();
    let (bottom, guard) = match thread::with(|t| t.make(usable)) {
        Some(made) => made?,
        // Thread teardown: a mapping of its own, unrecorded (and unknown to
        // Valgrind, which would lose track of its id).
        None => (single::map(usable, None)?, GuardMode::Mprotect),
    };
    let own = if guard == GuardMode::Mprotect {
        MAPPING_OF_ITS_OWN
    } else {
        0
    };
    let mut stack = Stack {
        bottom: NonNull::new(bottom as *mut u8).expect("no mapping starts at address 0"),
        meta: usable | own,
    };
    stack.set_kind(kind);
    Ok(stack)
}

/// Gives a stack that no frame lives on any more back to this thread's pool,
/// or, when the pool is full (or the thread is exiting), its memory back to
/// the system.
///
/// ```
/// use greenlet::stack;
/// stack::trim_pool();
/// stack::release(stack::take(64 << 10).unwrap());
/// assert_eq!(stack::pooled(), 1); // kept for the next stack of that size
/// ```
#[inline]
pub fn release(stack: Stack) {
    if let Err(refused) = pool::put(stack) {
        drop(refused);
    }
}

/// Puts a stack that no frame lives on any more into this thread's pool, or
/// gives it back when the pool is full (or the thread is shutting down). It
/// never unmaps anything or gives memory back, so a dying greenlet can give
/// back the stack it is still running on, as long as nothing else runs
/// before it leaves.
#[inline]
pub(crate) fn pool(stack: Stack) -> Result<(), Stack> {
    pool::put(stack)
}

// Two words, so that a stack moves in registers.
const _: () = assert!(std::mem::size_of::<Stack>() == 2 * std::mem::size_of::<usize>());
