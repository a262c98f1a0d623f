//! Guarded stacks: one anonymous mapping per stack, with its lowest page made
//! `PROT_NONE` so that running off the end faults instead of corrupting the
//! neighbour, and a small per-thread pool that recycles the stacks of dead
//! greenlets so that create+run+die costs no system call.
//!
//! This module is the one place greenlet stack memory comes from. Besides the
//! guarded stacks described here it hands out slab stacks
//! ([`StackKind::Slab`], carved from shared mappings by the private `slab`
//! module) for programs that need more live greenlets than the kernel allows
//! mappings.
//!
//! ```text
//!   high addresses
//!   +---------------------------+ <- top()      (16-aligned, initial frame below)
//!   |                           |
//!   |   usable stack            |   usable_size() bytes, a page multiple,
//!   |   (grows downward)        |   touched lazily by the kernel
//!   |                           |
//!   +---------------------------+ <- bottom()
//!   |   guard page (PROT_NONE)  |   one page
//!   +---------------------------+ <- mapping start
//!   low addresses
//! ```
//!
//! Greenlets take and release their stacks here on their own; the functions
//! are public for tests, tools and the curious:
//!
//! ```
//! use greenlet::stack;
//! let s = stack::take(stack::MIN_STACK_SIZE).unwrap();
//! let (guard_start, guard_end) = s.guard_range();
//! assert_eq!(guard_end - guard_start, stack::page_size());
//! assert!(guard_end == s.bottom() as usize && s.bottom() < s.top());
//! stack::release(s); // into this thread's pool, for the next greenlet
//! ```

use std::cell::RefCell;
use std::io;

use memmap2::{MmapMut, MmapOptions};

pub(crate) mod overflow;
pub(crate) mod sanitizer;
pub(crate) mod slab;
pub(crate) mod valgrind;

/// Stack size used when [`crate::Builder::stack_size`] is not called: 1 MiB.
/// Untouched pages cost no memory, only address space.
///
/// ```
/// use greenlet::stack::{self, DEFAULT_STACK_SIZE};
/// assert_eq!(DEFAULT_STACK_SIZE, 1 << 20);
/// let s = stack::take(DEFAULT_STACK_SIZE).unwrap(); // what `Greenlet::new` takes
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
/// use greenlet::{stack::{self, MIN_STACK_SIZE}, Greenlet, GreenletExit};
/// let smallest = stack::usable_size_for(MIN_STACK_SIZE).unwrap();
/// assert_eq!(stack::usable_size_for(MIN_STACK_SIZE - 1).unwrap(), smallest);
/// assert_eq!(stack::usable_size_for(0).unwrap(), smallest);
/// // A builder asking for less gets that much, with room to unwind a kill.
/// let g = Greenlet::builder().stack_size(MIN_STACK_SIZE - 1).spawn(|_| Greenlet::main().switch(())).unwrap();
/// g.switch(());
/// assert!(g.throw(GreenletExit).is::<GreenletExit>() && g.is_dead());
/// ```
pub const MIN_STACK_SIZE: usize = 32 << 10;

/// A fresh private anonymous mapping of `len` bytes (a whole number of
/// pages) whose lowest page is `PROT_NONE` and the rest read-write. Pages are
/// reserved lazily (`MAP_NORESERVE`): untouched ones cost neither memory nor
/// commit charge. For memory made by hand rather than through `memmap2`: slab
/// chunks and the overflow handler's signal stacks.
pub(crate) fn map_with_low_guard(len: usize) -> io::Result<*mut libc::c_void> {
    // SAFETY: a fresh private anonymous mapping: no existing memory involved.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("cannot map {len} bytes: {err}"),
        ));
    }
    // SAFETY: the first page is inside the mapping just made; nothing uses it.
    if unsafe { libc::mprotect(start, page_size(), libc::PROT_NONE) } != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: our own mapping, not handed out.
        unsafe { libc::munmap(start, len) };
        return Err(io::Error::new(
            err.kind(),
            format!("cannot protect a guard page: {err}"),
        ));
    }
    Ok(start)
}

/// Most stacks a thread keeps for reuse; stacks released beyond this are unmapped.
///
/// ```
/// use greenlet::stack::{self, POOL_CAPACITY};
/// stack::trim_pool();
/// let stacks: Vec<_> = (0..POOL_CAPACITY + 2).map(|_| stack::take(64 << 10).unwrap()).collect();
/// stacks.into_iter().for_each(stack::release);
/// assert_eq!(stack::pooled(), POOL_CAPACITY); // the last two were unmapped
/// ```
pub const POOL_CAPACITY: usize = 16;

/// The system page size.
///
/// ```
/// use greenlet::stack::{page_size, usable_size_for};
/// let page = page_size();
/// assert!(page.is_power_of_two() && page >= 4096);
/// assert_eq!(usable_size_for(100_000).unwrap() % page, 0); // stacks are whole pages
/// ```
pub fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
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
pub fn usable_size_for(requested: usize) -> io::Result<usize> {
    let page = page_size();
    let wanted = requested.max(MIN_STACK_SIZE);
    let rounded = wanted
        .checked_add(page - 1)
        .map(|n| n & !(page - 1))
        // The guard page must fit too, and mmap lengths must stay below isize::MAX.
        .filter(|n| {
            n.checked_add(page)
                .is_some_and(|total| total <= isize::MAX as usize)
        });
    rounded.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("greenlet: stack size of {requested} bytes is too large to map"),
        )
    })
}

/// Where a greenlet's stack memory comes from (see [`crate::Builder::stack_kind`]).
///
/// ```
/// use greenlet::{Greenlet, StackKind};
/// let g = Greenlet::builder().stack_kind(StackKind::Slab).spawn(|_| 7).unwrap();
/// assert_eq!(g.switch(()).downcast::<i32>().unwrap(), 7);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StackKind {
    /// The default: one memory mapping per stack with a `PROT_NONE` guard page
    /// below it, so that running off the end faults at once and the process
    /// stops with a "greenlet stack overflow" message. Each stack costs two
    /// kernel mappings, so `vm.max_map_count` (65530 by default) caps a process
    /// near 32k live guarded greenlets.
    #[default]
    Guarded,
    /// Small stacks carved out of large shared mappings (64 MiB chunks), for
    /// hundreds of thousands to millions of live greenlets. There is no guard
    /// page between neighbours: a canary below each stack is checked whenever
    /// its greenlet switches away and when it dies, and an overwritten canary
    /// aborts the process with "greenlet stack overflow (slab stack ...)".
    /// Detection is after the fact, and a single frame larger than the canary
    /// ([`SLAB_CANARY_BYTES`]) can jump over it into the neighbour unnoticed;
    /// see `docs/scale.md`. Default size [`DEFAULT_SLAB_STACK_SIZE`].
    Slab,
}

/// Stack size of a [`StackKind::Slab`] greenlet when
/// [`crate::Builder::stack_size`] is not called: 64 KiB.
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(stack::DEFAULT_SLAB_STACK_SIZE, StackKind::Slab).unwrap();
/// // At least that much: the slot (stack + canary) is rounded up to whole pages.
/// assert!(s.usable_size() >= stack::DEFAULT_SLAB_STACK_SIZE);
/// ```
pub const DEFAULT_SLAB_STACK_SIZE: usize = 64 << 10;

/// Bytes of the canary below every slab stack.
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(64 << 10, StackKind::Slab).unwrap();
/// let (start, end) = s.guard_range(); // for a slab stack, its canary
/// assert_eq!(end - start, stack::SLAB_CANARY_BYTES);
/// assert_eq!(end, s.bottom() as usize); // right below the stack
/// ```
pub const SLAB_CANARY_BYTES: usize = crate::stack::slab::CANARY_BYTES;

pub use crate::stack::slab::SlabStats;

/// One greenlet stack: its own mapping with a guard page (made by
/// [`Stack::new`]), or a slot of a slab ([`StackKind::Slab`]).
///
/// Greenlets get theirs from [`take_kind`]; a stack on its own is just memory:
///
/// ```
/// use greenlet::stack::Stack;
/// let s = Stack::new(64 << 10).unwrap();
/// assert_eq!(s.top() as usize - s.bottom() as usize, s.usable_size());
/// drop(s); // unmapped
/// ```
pub struct Stack {
    memory: Memory,
    /// Valgrind's id for this stack (0 when not running under Valgrind).
    valgrind_id: usize,
}

enum Memory {
    Guarded(MmapMut),
    /// Goes back to this thread's slab free list when dropped.
    Slab(crate::stack::slab::Slot),
}

impl Stack {
    /// Maps a new stack of at least `requested` usable bytes (see [`usable_size_for`]).
    /// Always a fresh mapping: [`take`] reuses pooled stacks first.
    ///
    /// ```
    /// use greenlet::{stack::{self, Stack}, StackKind};
    /// let s = Stack::new(100_000).unwrap();
    /// assert_eq!(s.kind(), StackKind::Guarded);
    /// assert_eq!(s.usable_size(), stack::usable_size_for(100_000).unwrap());
    /// ```
    pub fn new(requested: usize) -> io::Result<Stack> {
        let usable = usable_size_for(requested)?;
        let page = page_size();
        let map = MmapOptions::new()
            .len(usable + page)
            .stack()
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| annotate(e, usable + page))?;
        // SAFETY: the first page lies inside the mapping we own; making it
        // inaccessible cannot invalidate any Rust reference because nothing has
        // been handed out yet.
        let rc =
            unsafe { libc::mprotect(map.as_ptr() as *mut libc::c_void, page, libc::PROT_NONE) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(annotate(err, usable + page));
        }
        // A guard-page hit on this thread must be reported (src/overflow.rs).
        crate::stack::overflow::prepare_thread();
        let start = map.as_ptr() as usize;
        let valgrind_id = crate::stack::valgrind::register_stack(start + page, start + map.len());
        Ok(Stack {
            memory: Memory::Guarded(map),
            valgrind_id,
        })
    }

    /// A slab stack of at least `requested` usable bytes (see [`StackKind::Slab`]).
    fn new_slab(requested: usize) -> io::Result<Stack> {
        let slot = crate::stack::slab::take(usable_size_for(requested)?)?;
        let valgrind_id =
            crate::stack::valgrind::register_stack(slot.bottom() as usize, slot.top() as usize);
        Ok(Stack {
            memory: Memory::Slab(slot),
            valgrind_id,
        })
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
    pub fn top(&self) -> *mut u8 {
        match &self.memory {
            Memory::Guarded(map) => map.as_ptr().wrapping_add(map.len()) as *mut u8,
            Memory::Slab(slot) => slot.top(),
        }
    }

    /// Lowest usable address (just above the guard page or the canary).
    ///
    /// ```
    /// let s = greenlet::stack::Stack::new(64 << 10).unwrap();
    /// assert_eq!(s.bottom() as usize, s.guard_range().1);
    /// // SAFETY: bottom() is the lowest byte of the usable range, which we own
    /// // and nothing runs on; the byte below it would fault.
    /// unsafe { s.bottom().write(7) };
    /// assert_eq!(unsafe { s.bottom().read() }, 7); // SAFETY: as above
    /// ```
    pub fn bottom(&self) -> *mut u8 {
        match &self.memory {
            Memory::Guarded(map) => map.as_ptr().wrapping_add(page_size()) as *mut u8,
            Memory::Slab(slot) => slot.bottom(),
        }
    }

    /// Usable bytes between [`Stack::bottom`] and [`Stack::top`].
    ///
    /// ```
    /// use greenlet::stack::{page_size, Stack};
    /// let s = Stack::new(100_000).unwrap();
    /// assert!(s.usable_size() >= 100_000 && s.usable_size() % page_size() == 0);
    /// ```
    pub fn usable_size(&self) -> usize {
        match &self.memory {
            Memory::Guarded(map) => map.len() - page_size(),
            Memory::Slab(slot) => slot.usable_size(),
        }
    }

    /// Address range `[start, end)` of the guard page, or of the canary of a
    /// slab stack (which is ordinary writable memory: it never faults).
    ///
    /// ```
    /// use greenlet::stack::{page_size, Stack};
    /// let s = Stack::new(64 << 10).unwrap();
    /// let (start, end) = s.guard_range();
    /// assert_eq!(end - start, page_size()); // one PROT_NONE page...
    /// assert_eq!(end, s.bottom() as usize); // ...right below the stack
    /// ```
    pub fn guard_range(&self) -> (usize, usize) {
        match &self.memory {
            Memory::Guarded(map) => {
                let start = map.as_ptr() as usize;
                (start, start + page_size())
            }
            Memory::Slab(slot) => slot.canary_range(),
        }
    }

    /// Which kind of stack this is.
    ///
    /// ```
    /// use greenlet::{stack, StackKind};
    /// assert_eq!(stack::take(64 << 10).unwrap().kind(), StackKind::Guarded);
    /// assert_eq!(stack::take_kind(64 << 10, StackKind::Slab).unwrap().kind(), StackKind::Slab);
    /// ```
    pub fn kind(&self) -> StackKind {
        match &self.memory {
            Memory::Guarded(_) => StackKind::Guarded,
            Memory::Slab(_) => StackKind::Slab,
        }
    }

    /// Aborts the process with a "greenlet stack overflow (slab stack ...)"
    /// message when this is a slab stack whose canary was overwritten; nothing
    /// to do for a guarded stack, whose guard page faults at once.
    #[inline]
    pub(crate) fn check_canary(&self) {
        if let Memory::Slab(slot) = &self.memory {
            slot.check_canary();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        crate::stack::valgrind::deregister_stack(self.valgrind_id);
        // The mapping itself is released by MmapMut's destructor.
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Stack({:#x}..{:#x})",
            self.bottom() as usize,
            self.top() as usize
        )
    }
}

fn annotate(err: io::Error, bytes: usize) -> io::Error {
    let hint = if err.raw_os_error() == Some(libc::ENOMEM) {
        " (out of memory or out of memory mappings: see vm.max_map_count)"
    } else {
        ""
    };
    io::Error::new(
        err.kind(),
        format!("greenlet: cannot map a {bytes}-byte stack: {err}{hint}"),
    )
}

thread_local! {
    static POOL: RefCell<Vec<Stack>> = const { RefCell::new(Vec::new()) };
}

/// A stack of `kind` with `requested` usable bytes (rounded as
/// [`usable_size_for`] says): from the guarded pool or freshly mapped for
/// [`StackKind::Guarded`] (as [`take`]), from this thread's slab for
/// [`StackKind::Slab`].
///
/// ```
/// use greenlet::{stack, StackKind};
/// let s = stack::take_kind(64 << 10, StackKind::Slab).unwrap();
/// assert!(s.kind() == StackKind::Slab && s.usable_size() >= 64 << 10);
/// let free = stack::slab_stats().free;
/// stack::release(s); // back on the slab's free list
/// assert_eq!(stack::slab_stats().free, free + 1);
/// ```
pub fn take_kind(requested: usize, kind: StackKind) -> io::Result<Stack> {
    match kind {
        StackKind::Guarded => take(requested),
        StackKind::Slab => Stack::new_slab(requested),
    }
}

/// This thread's slab statistics: chunks mapped, slots carved, slots free.
///
/// ```
/// use greenlet::{stack, Greenlet, StackKind};
/// let in_use = || { let s = stack::slab_stats(); s.carved - s.free };
/// let before = in_use();
/// let g = Greenlet::builder().stack_kind(StackKind::Slab).spawn(|_| ()).unwrap();
/// assert_eq!(in_use(), before + 1);
/// g.switch(()); // g dies: its slot goes back on the free list
/// assert_eq!(in_use(), before);
/// ```
pub fn slab_stats() -> SlabStats {
    crate::stack::slab::stats()
}

/// A guarded stack of `requested` usable bytes, from this thread's pool when
/// one of exactly that size is there, otherwise freshly mapped.
///
/// ```
/// use greenlet::stack;
/// stack::trim_pool();
/// let s = stack::take(64 << 10).unwrap(); // the pool is empty: freshly mapped
/// let top = s.top();
/// stack::release(s);
/// let again = stack::take(64 << 10).unwrap(); // same size: the pooled one
/// assert_eq!(again.top(), top);
/// assert_eq!(stack::pooled(), 0);
/// ```
pub fn take(requested: usize) -> io::Result<Stack> {
    let usable = usable_size_for(requested)?;
    let pooled = POOL
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let at = pool.iter().rposition(|s| s.usable_size() == usable)?;
            Some(pool.swap_remove(at))
        })
        .ok()
        .flatten();
    match pooled {
        Some(stack) => Ok(stack),
        None => Stack::new(usable),
    }
}

/// Gives a stack that no frame lives on any more back to this thread's pool,
/// or unmaps it when the pool is full or the thread is shutting down. A slab
/// stack goes back to this thread's slab free list.
///
/// ```
/// use greenlet::stack;
/// stack::trim_pool();
/// stack::release(stack::take(64 << 10).unwrap());
/// assert_eq!(stack::pooled(), 1); // kept for the next stack of that size
/// ```
pub fn release(stack: Stack) {
    // A stack not kept is dropped (unmapped) here.
    let _ = pool(stack);
}

/// Puts a stack that no frame lives on any more into this thread's pool, or
/// gives it back when the pool is full (or the thread is shutting down). It
/// never unmaps anything, so a dying greenlet can give back the stack it is
/// still running on, as long as nothing else runs before it leaves.
pub(crate) fn pool(stack: Stack) -> Result<(), Stack> {
    if stack.kind() == StackKind::Slab {
        drop(stack); // Memory::Slab's slot returns itself to the slab's free list
        return Ok(());
    }
    let mut stack = Some(stack);
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_CAPACITY {
            pool.extend(stack.take());
        }
    });
    match stack {
        None => Ok(()),
        Some(stack) => Err(stack),
    }
}

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
    POOL.try_with(|p| p.borrow().len()).unwrap_or(0)
}

/// Unmaps every stack in this thread's pool, giving their memory and address
/// space back to the system; returns how many were unmapped. Later greenlets
/// map fresh stacks until the pool fills up again.
///
/// ```
/// greenlet::Greenlet::new(|_| ()).switch(()); // its stack goes to the pool
/// assert!(greenlet::stack::trim_pool() >= 1);
/// assert_eq!(greenlet::stack::pooled(), 0);
/// ```
pub fn trim_pool() -> usize {
    let stacks = POOL
        .try_with(|p| std::mem::take(&mut *p.borrow_mut()))
        .unwrap_or_default();
    stacks.len() // dropped (unmapped) here, outside the borrow
}
