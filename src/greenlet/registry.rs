//! The registry of live greenlets, for debuggers and profilers (SPEC §10):
//! per thread, a list of every greenlet object, reached from one exported,
//! versioned symbol that also says where each field a tool needs is. The gdb
//! script (`gdb/greenlet_gdb.py`) reads it; docs/backtraces.md has the table.
//!
//! It costs the switch nothing, and creating a greenlet one store or so:
//!
//! * The list links *allocations* (the [`Slot`] around each greenlet object),
//!   not greenlets. A slot is linked when it is allocated and unlinked when
//!   its memory is freed, and both only happen when the per-thread cache of
//!   objects (`spare.rs`) misses or overflows. A greenlet created in a cached
//!   slot is registered by giving it an id ([`born`]), and its release gives
//!   the id back ([`vacate`]): a slot whose id is 0 holds no greenlet.
//! * Everything else a tool reads (state, parent, stack, saved stack
//!   pointer) is read where the core keeps it anyway, at the offsets the
//!   symbol gives.
//!
//! Each thread's record sits in a thread local and is put on a process-wide
//! list when its first slot is allocated, with its kernel thread id (gdb's
//! LWP), so a tool finds the list of the thread it looks at; it comes off
//! that list at thread exit. The list changes under a lock; a tool reads a
//! stopped process and needs none.

use std::cell::Cell;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use super::object::{Inner, State};
use crate::arch::debug_frame;
use crate::stack;

/// The allocation of one greenlet object: the object first (so a pointer to
/// the slot is a pointer to the object), then the registry's links and id.
#[repr(C)]
pub(crate) struct Slot {
    inner: MaybeUninit<Inner>,
    next: Cell<*mut Slot>,
    prev: Cell<*mut Slot>,
    /// This thread's id of the greenlet in the slot; 0: none (free, cached,
    /// or not written yet).
    id: Cell<u64>,
}

/// One thread's registry.
#[repr(C)]
pub(crate) struct ThreadRecord {
    /// The process-wide list of thread records, changed under [`LOCK`].
    next: AtomicPtr<ThreadRecord>,
    prev: AtomicPtr<ThreadRecord>,
    /// The kernel's id of the thread (written before the record is listed).
    os_tid: Cell<u64>,
    /// Every slot this thread has allocated and not freed.
    slots: Cell<*mut Slot>,
    /// The id the next greenlet gets; ids start at 1.
    next_id: Cell<u64>,
    /// 0: not on the process-wide list yet; 1: on it; 2: taken off (the
    /// thread is exiting).
    listed: Cell<u8>,
}

thread_local! {
    static THREAD: ThreadRecord = const {
        ThreadRecord {
            next: AtomicPtr::new(ptr::null_mut()),
            prev: AtomicPtr::new(ptr::null_mut()),
            os_tid: Cell::new(0),
            slots: Cell::new(ptr::null_mut()),
            next_id: Cell::new(1),
            listed: Cell::new(0),
        }
    };
    /// Takes this thread's record off the process-wide list at thread exit.
    static UNLIST: Unlist = const { Unlist };
}

/// Guards changes to the process-wide list of thread records.
static LOCK: Mutex<()> = Mutex::new(());

/// The exported table (see the module docs and docs/backtraces.md). Every
/// offset is in bytes; `u32` unless said otherwise.
#[repr(C)]
pub(crate) struct DebugInfo {
    /// `b"GREENLET"`.
    magic: [u8; 8],
    /// Layout version of this table: 1. Fields are only ever added at the
    /// end (and `size` grows); a change to existing ones renames the symbol.
    version: u32,
    size: u32,
    pointer_size: u32,
    /// Offset of `threads` in this table.
    threads_offset: u32,
    thread_next: u32,
    /// A `u64`.
    thread_tid: u32,
    thread_slots: u32,
    slot_next: u32,
    /// A `u64`; 0: the slot holds no greenlet.
    slot_id: u32,
    slot_inner: u32,
    /// Offsets in the greenlet object.
    inner_sp: u32,
    /// A `u8`, one of `state_values`.
    inner_state: u32,
    /// A pointer to the parent's object (its slot); null: none (main).
    inner_parent: u32,
    /// A pointer, the stack's lowest usable byte; null: no stack of its own
    /// (a main greenlet, or dead).
    inner_stack_bottom: u32,
    /// A word whose bits `stack_size_mask` are the stack's usable size.
    inner_stack_meta: u32,
    /// Unstarted, suspended, running, dead.
    state_values: [u8; 4],
    stack_size_mask: u64,
    /// 1 when the frame description below is filled in for this CPU.
    frame_known: u8,
    frame_saved_count: u8,
    /// DWARF number of the stack pointer.
    frame_sp_dwarf: u16,
    /// DWARF number of the return address column.
    frame_pc_dwarf: u16,
    /// Offset of the resume address from the saved stack pointer.
    frame_pc_offset: u16,
    /// The suspended code's stack pointer is the saved one plus this.
    frame_bytes: u16,
    /// Offset, in a not yet started greenlet's frame, of its entry function.
    frame_init_entry: u16,
    /// Saved registers: (DWARF number, offset from the saved stack pointer).
    frame_saved: [[u16; 2]; debug_frame::MAX_SAVED],
    /// The CPU as gdb names it (`show architecture`), NUL-padded.
    arch: [u8; 20],
    /// Head of the process-wide list of thread records.
    threads: AtomicPtr<ThreadRecord>,
}

const fn u32_of(n: usize) -> u32 {
    assert!(n <= u32::MAX as usize);
    n as u32
}

const fn arch_name() -> [u8; 20] {
    let name = debug_frame::NAME.as_bytes();
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < name.len() {
        out[i] = name[i];
        i += 1;
    }
    out
}

const fn saved_registers() -> [[u16; 2]; debug_frame::MAX_SAVED] {
    let mut out = [[0u16; 2]; debug_frame::MAX_SAVED];
    // Every slot: those past SAVED_COUNT are zero in SAVED too (and a bound
    // of SAVED_COUNT, 0 on some CPUs, is a comparison clippy rejects there).
    let mut i = 0;
    while i < debug_frame::MAX_SAVED {
        out[i] = [debug_frame::SAVED[i].dwarf, debug_frame::SAVED[i].offset];
        i += 1;
    }
    out
}

/// The exported symbol: `greenlet_<major>_<minor>_<patch>_debug`, like the
/// assembly's names, so that two versions of the crate in one program keep
/// their own.
#[used]
#[export_name = concat!(
    "greenlet_",
    env!("CARGO_PKG_VERSION_MAJOR"),
    "_",
    env!("CARGO_PKG_VERSION_MINOR"),
    "_",
    env!("CARGO_PKG_VERSION_PATCH"),
    "_debug"
)]
static DEBUG_INFO: DebugInfo = DebugInfo {
    magic: *b"GREENLET",
    version: 1,
    size: u32_of(size_of::<DebugInfo>()),
    pointer_size: u32_of(size_of::<usize>()),
    threads_offset: u32_of(offset_of!(DebugInfo, threads)),
    thread_next: u32_of(offset_of!(ThreadRecord, next)),
    thread_tid: u32_of(offset_of!(ThreadRecord, os_tid)),
    thread_slots: u32_of(offset_of!(ThreadRecord, slots)),
    slot_next: u32_of(offset_of!(Slot, next)),
    slot_id: u32_of(offset_of!(Slot, id)),
    slot_inner: u32_of(offset_of!(Slot, inner)),
    inner_sp: u32_of(offset_of!(Inner, sp)),
    inner_state: u32_of(offset_of!(Inner, state)),
    inner_parent: u32_of(offset_of!(Inner, parent)),
    inner_stack_bottom: u32_of(offset_of!(Inner, stack) + stack::debug_layout::BOTTOM),
    inner_stack_meta: u32_of(offset_of!(Inner, stack) + stack::debug_layout::META),
    state_values: [
        State::Unstarted as u8,
        State::Suspended as u8,
        State::Running as u8,
        State::Dead as u8,
    ],
    stack_size_mask: stack::debug_layout::SIZE_MASK as u64,
    frame_known: debug_frame::KNOWN as u8,
    frame_saved_count: debug_frame::SAVED_COUNT as u8,
    frame_sp_dwarf: debug_frame::SP_DWARF,
    frame_pc_dwarf: debug_frame::PC_DWARF,
    frame_pc_offset: debug_frame::PC_OFFSET,
    frame_bytes: debug_frame::FRAME_BYTES,
    frame_init_entry: debug_frame::INIT_ENTRY_OFFSET,
    frame_saved: saved_registers(),
    arch: arch_name(),
    threads: AtomicPtr::new(ptr::null_mut()),
};

// What the table promises about the fields it points at: a parent link is
// one pointer (null for none), the state one byte, the saved stack pointer
// one pointer.
const _: () = {
    assert!(size_of::<Option<super::object::Greenlet>>() == size_of::<usize>());
    assert!(size_of::<State>() == 1);
    assert!(offset_of!(Slot, inner) == 0);
};

/// A fresh allocation for a greenlet object, linked into this thread's list
/// with no id: uninitialised memory with `Inner`'s layout, for the caller to
/// write in place. What `spare::slot` makes when its cache is empty.
pub(crate) fn alloc() -> *mut Inner {
    let slot = Box::into_raw(Box::new(Slot {
        inner: MaybeUninit::uninit(),
        next: Cell::new(ptr::null_mut()),
        prev: Cell::new(ptr::null_mut()),
        id: Cell::new(0),
    }));
    // Once thread-local destructors have run, THREAD may still be read (it
    // has none), so the slot is always linked.
    THREAD.with(|t| {
        if t.listed.get() == 0 {
            list_thread(t);
        }
        let head = t.slots.get();
        // SAFETY: `slot` is ours; `head`, if any, is a live slot of this
        // thread's list (unlinked only when freed).
        unsafe {
            (*slot).next.set(head);
            if !head.is_null() {
                (*head).prev.set(slot);
            }
        }
        t.slots.set(slot);
    });
    slot.cast()
}

/// Unlinks and frees an allocation made by [`alloc`].
///
/// # Safety
/// `object` must come from [`alloc`] on this thread, hold nothing that needs
/// dropping, and be unreachable.
pub(crate) unsafe fn dealloc(object: *mut Inner) {
    let slot = object.cast::<Slot>();
    // SAFETY: per the contract the slot is live and on this thread's list,
    // and so are its neighbours.
    unsafe {
        let (next, prev) = ((*slot).next.get(), (*slot).prev.get());
        if !next.is_null() {
            (*next).prev.set(prev);
        }
        if prev.is_null() {
            THREAD.with(|t| t.slots.set(next));
        } else {
            (*prev).next.set(next);
        }
        drop(Box::from_raw(slot));
    }
}

/// Registers the greenlet just written into `object`: gives it this
/// thread's next id.
///
/// # Safety
/// `object` must come from [`alloc`] (maybe through the cache) and hold a
/// fully written greenlet object.
#[inline(always)]
pub(crate) unsafe fn born(object: *mut Inner) {
    let id = THREAD.with(|t| {
        let id = t.next_id.get();
        t.next_id.set(id + 1);
        id
    });
    // SAFETY: a live slot, per the contract.
    unsafe { (*object.cast::<Slot>()).id.set(id) }
}

/// The greenlet in `object` is being released: the slot holds none any more.
///
/// # Safety
/// `object` must come from [`alloc`] and be live.
#[inline(always)]
pub(crate) unsafe fn vacate(object: *mut Inner) {
    // SAFETY: a live slot, per the contract.
    unsafe { (*object.cast::<Slot>()).id.set(0) }
}

/// This thread's id of the greenlet object `object` (0 if none).
///
/// # Safety
/// `object` must come from [`alloc`] and be live.
#[cfg(test)]
pub(crate) unsafe fn id_of(object: *const Inner) -> u64 {
    // SAFETY: a live slot, per the contract.
    unsafe { (*object.cast::<Slot>()).id.get() }
}

/// Puts this thread's record on the process-wide list (once).
#[cold]
#[inline(never)]
fn list_thread(t: &ThreadRecord) {
    // Registering the destructor that takes the record off again fails once
    // the thread's destructors run: then the record is never listed.
    if UNLIST.try_with(|_| ()).is_err() {
        t.listed.set(2);
        return;
    }
    t.os_tid.set(stack::os_thread_id());
    let me = t as *const ThreadRecord as *mut ThreadRecord;
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let head = DEBUG_INFO.threads.load(Ordering::Relaxed);
    t.next.store(head, Ordering::Relaxed);
    t.prev.store(ptr::null_mut(), Ordering::Relaxed);
    if !head.is_null() {
        // SAFETY: listed records are live: each leaves the list (under the
        // lock) before its thread's locals go away.
        unsafe { (*head).prev.store(me, Ordering::Relaxed) };
    }
    DEBUG_INFO.threads.store(me, Ordering::Release);
    t.listed.set(1);
}

/// Its drop takes this thread's record off the process-wide list.
struct Unlist;

impl Drop for Unlist {
    fn drop(&mut self) {
        let _ = THREAD.try_with(|t| {
            if t.listed.get() != 1 {
                return;
            }
            let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let (next, prev) = (
                t.next.load(Ordering::Relaxed),
                t.prev.load(Ordering::Relaxed),
            );
            // SAFETY: neighbours on the list are live, as in list_thread.
            unsafe {
                if !next.is_null() {
                    (*next).prev.store(prev, Ordering::Relaxed);
                }
                if prev.is_null() {
                    DEBUG_INFO.threads.store(next, Ordering::Release);
                } else {
                    (*prev).next.store(next, Ordering::Relaxed);
                }
            }
            t.listed.set(2);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Greenlet;

    /// The ids of this thread's registered greenlets, walking the list the
    /// way a debugger does.
    fn listed_ids() -> Vec<u64> {
        let mut ids = Vec::new();
        THREAD.with(|t| {
            let mut slot = t.slots.get();
            while !slot.is_null() {
                // SAFETY: slots on the list are live.
                unsafe {
                    if (*slot).id.get() != 0 {
                        ids.push((*slot).id.get());
                    }
                    slot = (*slot).next.get();
                }
            }
        });
        ids.sort_unstable();
        ids
    }

    #[test]
    fn greenlets_are_listed_while_they_exist_and_this_thread_is_on_the_list() {
        std::thread::spawn(|| {
            let main = Greenlet::main();
            // SAFETY: the handle keeps the object live.
            let main_id = unsafe { id_of(main.as_ptr()) };
            assert_eq!(main_id, 1, "the main greenlet is the thread's first");
            let g = Greenlet::new(|_| Greenlet::main().switch(()));
            // SAFETY: as above.
            let g_id = unsafe { id_of(g.as_ptr()) };
            assert_eq!(listed_ids(), vec![main_id, g_id]);
            g.switch(());
            drop(g); // killed, then released: its id goes
            assert_eq!(listed_ids(), vec![main_id]);
            let tid = stack::os_thread_id();
            let _guard = LOCK.lock().unwrap();
            let mut record = DEBUG_INFO.threads.load(Ordering::Acquire);
            let mut found = false;
            while !record.is_null() {
                // SAFETY: listed records are live while the lock is held.
                unsafe {
                    found |= (*record).os_tid.get() == tid;
                    record = (*record).next.load(Ordering::Relaxed);
                }
            }
            assert!(found, "this thread's record is not on the list");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_exited_thread_leaves_the_list() {
        let tid = std::thread::spawn(|| {
            drop(Greenlet::new(|_| ()));
            stack::os_thread_id()
        })
        .join()
        .unwrap();
        let _guard = LOCK.lock().unwrap();
        let mut record = DEBUG_INFO.threads.load(Ordering::Acquire);
        while !record.is_null() {
            // SAFETY: as above.
            unsafe {
                assert_ne!(
                    (*record).os_tid.get(),
                    tid,
                    "an exited thread is still listed"
                );
                record = (*record).next.load(Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn the_gdb_script_names_this_versions_symbol() {
        let script = include_str!("../../gdb/greenlet_gdb.py");
        let name = concat!(
            "_SYMBOL = \"greenlet_",
            env!("CARGO_PKG_VERSION_MAJOR"),
            "_",
            env!("CARGO_PKG_VERSION_MINOR"),
            "_",
            env!("CARGO_PKG_VERSION_PATCH"),
            "_debug\""
        );
        assert!(
            script.contains(name),
            "gdb/greenlet_gdb.py must look for {name} (the crate version changed?)"
        );
    }

    #[test]
    fn the_table_matches_its_documentation_on_x86_64() {
        if !cfg!(target_arch = "x86_64") {
            eprintln!("NOTE: the documented offsets are x86_64's; not checked on this CPU");
            return;
        }
        let d = &DEBUG_INFO;
        assert_eq!(offset_of!(DebugInfo, threads), 128);
        assert_eq!(d.size, 136);
        assert_eq!(d.slot_inner, 0);
        assert_eq!(d.inner_sp, 0);
        assert_eq!(d.state_values, [0, 1, 2, 3]);
        assert_eq!(d.frame_known, 1);
        assert_eq!(d.frame_saved_count, 2);
        let f = if cfg!(feature = "fp-control") { 8 } else { 0 };
        assert_eq!(d.frame_pc_offset, f + 16);
        assert_eq!(d.frame_bytes, f + 24);
        assert_eq!(d.frame_saved, [[3, f], [6, f + 8], [0, 0], [0, 0]]);
    }
}
