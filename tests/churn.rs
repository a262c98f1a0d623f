//! Churn: making, running, throwing into and dropping many greenlets keeps
//! resident memory and the number of mappings flat, and threads that exit with
//! suspended greenlets neither crash nor leak their stacks.
//!
//! Resident memory is read from `/proc/self/statm`, so the tests in this file
//! run one at a time (a lock) and nothing else shares the process. Under
//! Valgrind resident memory is Valgrind's own, so that one assertion is skipped
//! there (loudly); Valgrind's leak check takes its place. Mapping counts are
//! checked everywhere.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Mutex;

use greenlet::{Greenlet, GreenletExit};

#[path = "support/child.rs"]
mod child;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

fn page_size() -> usize {
    greenlet::stack::page_size()
}

/// Whether this process can read its own `/proc` files: on Linux. Not on
/// Windows; under wine a Windows program can open `/proc/self/statm` through
/// the Z: drive, but it does not describe the program (its counts stay flat
/// whatever the program maps), so it would prove nothing.
fn proc_readable() -> bool {
    cfg!(not(windows)) && std::path::Path::new("/proc/self/statm").exists()
}

/// Resident set size in bytes (second field of /proc/self/statm, in pages).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("resident field of /proc/self/statm");
    pages * page_size()
}

/// Stacks of this thread in use now (not pooled, not free): with guard
/// regions a leaked stack is a slot of a shared mapping, invisible in the
/// mapping count, so it is counted here.
fn stacks_in_use() -> usize {
    let s = greenlet::stack::stats();
    s.shared.carved - s.shared.free + s.single_mappings - s.pooled
}

/// Number of memory mappings of this process.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count()
}

/// Counts drops, so that the test can tell every destructor on every stack ran.
struct Tally(Rc<Cell<usize>>);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// One round of churn, `n` greenlets in four flavours. Returns how many
/// destructors were expected to run.
fn churn(n: usize, drops: &Rc<Cell<usize>>) -> usize {
    let mut expected = 0;
    for i in 0..n {
        let tally = Tally(drops.clone());
        expected += 1;
        match i % 4 {
            // Runs to the end, handing a heap value back.
            0 => {
                let g = Greenlet::new(move |v| {
                    let _tally = tally;
                    let n: usize = v.downcast().unwrap();
                    vec![n as u8; 100]
                });
                let out: Vec<u8> = g.switch(i).downcast().unwrap();
                assert_eq!(out.len(), 100);
                assert!(g.is_dead());
            }
            // Suspended, then thrown into: the panic comes out of the throw.
            1 => {
                let g = Greenlet::new(move |_| {
                    let _tally = tally;
                    let _held = Box::new([7u8; 256]);
                    Greenlet::main().switch(());
                    unreachable!("thrown into before it was resumed");
                });
                g.switch(());
                let err = panic::catch_unwind(AssertUnwindSafe(|| g.throw(String::from("boom"))))
                    .unwrap_err();
                assert_eq!(*err.downcast::<String>().unwrap(), "boom");
                assert!(g.is_dead());
            }
            // Suspended, then its last handle dropped: killed with GreenletExit.
            2 => {
                let g = Greenlet::new(move |_| {
                    let _tally = tally;
                    let _held = vec![1u64; 64];
                    Greenlet::main().switch(());
                    unreachable!("killed before it was resumed");
                });
                g.switch(());
                drop(g);
            }
            // A small tree: the child dies into a parent that is then killed.
            _ => {
                let parent = Greenlet::new(move |_| {
                    let _tally = tally;
                    Greenlet::main().switch(());
                });
                parent.switch(());
                let child = Greenlet::builder()
                    .parent(&parent)
                    .stack_size(32 << 10)
                    .spawn(|_| GreenletExit)
                    .unwrap();
                child.switch(());
                assert!(child.is_dead());
                drop(child);
                drop(parent);
            }
        }
    }
    expected
}

#[test]
fn churn_of_60k_greenlets_keeps_memory_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !proc_readable() {
        eprintln!(
            "NOT RUN HERE: churn_of_60k_greenlets_keeps_memory_flat measures resident memory and \
             mappings through /proc/self, which does not describe this program here (Windows, \
             wine); tests/windows_stacks.rs checks the Windows stacks' committed memory"
        );
        return;
    }
    let valgrind = under_valgrind();
    let (warm, rounds) = (6_000, 60_000);
    let drops = Rc::new(Cell::new(0));

    let expected = churn(warm, &drops);
    assert_eq!(drops.get(), expected, "destructors missing in warm-up");
    let rss_before = resident_bytes();
    let maps_before = mappings();
    let in_use_before = stacks_in_use();

    let expected = expected + churn(rounds, &drops);
    let rss_after = resident_bytes();
    let maps_after = mappings();
    let in_use_after = stacks_in_use();

    assert_eq!(
        drops.get(),
        expected,
        "some destructor on a greenlet stack never ran"
    );
    assert!(
        greenlet::stack::pooled() <= greenlet::stack::POOL_CAPACITY,
        "the stack pool outgrew its capacity"
    );
    eprintln!(
        "churn of {rounds} greenlets ({:?} guards): resident {} KiB -> {} KiB, mappings \
         {maps_before} -> {maps_after}, stacks in use {in_use_before} -> {in_use_after}",
        greenlet::stack::guard_mode(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert_eq!(
        in_use_after, in_use_before,
        "stacks in use went from {in_use_before} to {in_use_after}: stacks are leaking"
    );
    // On the fallback each leaked stack would also be a mapping of its own
    // (two, with its guard page).
    assert!(
        maps_after <= maps_before + 4,
        "mappings grew from {maps_before} to {maps_after}: stacks are leaking"
    );
    if valgrind {
        eprintln!("NOTE: under Valgrind resident memory is Valgrind's own: the 4 MiB assertion is skipped, the leak check replaces it");
        return;
    }
    let grown = rss_after.saturating_sub(rss_before);
    assert!(
        grown < 4 * MIB,
        "resident memory grew by {} KiB over {rounds} greenlets",
        grown / 1024
    );
}

thread_local! {
    static PARKED: RefCell<Vec<Greenlet>> = const { RefCell::new(Vec::new()) };
}

/// A thread that ends with greenlets still suspended: the ones whose handles
/// drop with the thread's closure are killed (their destructors run); the ones
/// parked in a thread local are killed or, if the greenlet state is already
/// gone, deliberately leaked with a report. Nothing crashes, and repeating it
/// does not pile up stacks.
#[test]
fn threads_exiting_with_suspended_greenlets_do_not_crash_or_pile_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let threads = 200;

    let run_one = || {
        std::thread::spawn(|| {
            let killed = Rc::new(Cell::new(0));
            let suspended = |drops: &Rc<Cell<usize>>| {
                let tally = Tally(drops.clone());
                let g = Greenlet::new(move |_| {
                    let _tally = tally;
                    Greenlet::main().switch(());
                });
                g.switch(());
                g
            };
            let a = suspended(&killed);
            let b = suspended(&killed);
            let parked = suspended(&Rc::new(Cell::new(0)));
            PARKED.with(|p| p.borrow_mut().push(parked));
            drop(a);
            let _ = b; // dropped with the closure, after this line
                       // `a` was killed by the drop above, with its destructor run.
            killed.get()
        })
        .join()
        .expect("a thread exiting with suspended greenlets crashed")
    };

    assert_eq!(run_one(), 1);
    let maps_before = mappings();
    for _ in 0..threads {
        run_one();
    }
    let maps_after = mappings();
    eprintln!("{threads} threads exiting with suspended greenlets: mappings {maps_before} -> {maps_after}");
    assert!(
        maps_after <= maps_before + 8,
        "mappings grew from {maps_before} to {maps_after} over {threads} threads"
    );
}

thread_local! {
    static PARKED_EARLY: RefCell<Vec<Greenlet>> = const { RefCell::new(Vec::new()) };
}

/// The hard case: a suspended greenlet whose last handle sits in a thread
/// local that is destroyed *after* the thread's greenlet state. It can no
/// longer be killed (there is no main greenlet to return to), so its frames
/// stay alive: its stack is leaked on purpose, never freed under them, and
/// that is reported on stderr. Run in a child process, both to read the report
/// and to keep this deliberate leak out of Valgrind's leak check.
#[test]
fn a_greenlet_outliving_its_threads_state_is_leaked_and_reported() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DESTRUCTORS: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DESTRUCTORS.fetch_add(1, Ordering::SeqCst);
        }
    }
    if child::in_child() {
        std::thread::spawn(|| {
            // Touched first, so it is destroyed after the greenlet state.
            PARKED_EARLY.with(|p| p.borrow_mut().clear());
            let g = Greenlet::new(|_| {
                let _counted = Counted;
                Greenlet::main().switch(());
            });
            g.switch(());
            PARKED_EARLY.with(|p| p.borrow_mut().push(g));
        })
        .join()
        .expect("the thread crashed at exit");
        println!("destructors run: {}", DESTRUCTORS.load(Ordering::SeqCst));
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = child::run_child("a_greenlet_outliving_its_threads_state_is_leaked_and_reported");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("destructors run: 0"),
        "a destructor ran on a stack whose greenlet was never killed: {stdout}"
    );
    assert!(
        stderr.contains("its stack is leaked"),
        "the deliberate leak was not reported: {stderr}"
    );
}
