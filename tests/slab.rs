//! Slab stacks (`StackKind::Slab`) keep the semantics of guarded ones:
//! switching, death into the parent, panics, throw, kill on drop, reuse of the
//! stacks of dead greenlets, and a loud stop when a greenlet runs off its
//! stack (the canary check, seen from a child process).
//!
//! Counts are small so that the file runs quickly under qemu-user too; the
//! million-greenlet run is `examples/million.rs`.

use std::cell::RefCell;
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::rc::Rc;

use greenlet::{stack, Greenlet, GreenletExit, StackKind};

#[path = "support/child.rs"]
mod child;
use child::{in_child, run_child};

fn slab<F, R>(run: F) -> Greenlet
where
    F: FnOnce(greenlet::Value) -> R + 'static,
    R: 'static,
{
    Greenlet::builder()
        .stack_kind(StackKind::Slab)
        .spawn(run)
        .expect("a slab stack")
}

fn slab_sized<F, R>(bytes: usize, run: F) -> Greenlet
where
    F: FnOnce(greenlet::Value) -> R + 'static,
    R: 'static,
{
    Greenlet::builder()
        .stack_kind(StackKind::Slab)
        .stack_size(bytes)
        .spawn(run)
        .expect("a slab stack")
}

/// Address of a local of the caller's frame: where on which stack it runs.
#[inline(never)]
fn here() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

#[test]
fn values_go_back_and_forth() {
    let g = slab(|first| {
        let mut sum: i64 = first.downcast().unwrap();
        loop {
            let next = Greenlet::main().switch(sum);
            match next.downcast::<i64>() {
                Ok(n) => sum += n,
                Err(_) => return sum * 100,
            }
        }
    });
    assert_eq!(g.switch(1i64).downcast::<i64>().unwrap(), 1);
    assert_eq!(g.switch(2i64).downcast::<i64>().unwrap(), 3);
    assert_eq!(g.switch(39i64).downcast::<i64>().unwrap(), 42);
    assert!(g.is_active());
    assert_eq!(g.switch("stop").downcast::<i64>().unwrap(), 4200);
    assert!(g.is_dead());
}

#[test]
fn each_greenlet_runs_on_its_own_slab_stack() {
    let main_local = here();
    let gs: Vec<Greenlet> = (0..8)
        .map(|_| slab(|_| Greenlet::main().switch(here())))
        .collect();
    let addresses: Vec<usize> = gs
        .iter()
        .map(|g| g.switch(()).downcast::<usize>().unwrap())
        .collect();
    let mut sorted = addresses.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        8,
        "two greenlets share a stack: {addresses:x?}"
    );
    for a in &addresses {
        assert!(
            a.abs_diff(main_local) > stack::DEFAULT_SLAB_STACK_SIZE,
            "a greenlet ran on the main stack"
        );
    }
    // Neighbours in one slab are one slot apart: far less than a guarded stack.
    let closest = sorted.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        closest >= stack::DEFAULT_SLAB_STACK_SIZE,
        "stacks overlap: {closest}"
    );
}

#[test]
fn switching_between_slab_and_guarded_greenlets() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let guarded = Greenlet::new(move |v| {
        l.borrow_mut()
            .push(format!("guarded got {}", v.downcast::<i32>().unwrap()));
        let back = Greenlet::main().switch(2);
        l.borrow_mut()
            .push(format!("guarded got {}", back.downcast::<i32>().unwrap()));
        "guarded done"
    });
    let l = log.clone();
    let target = guarded.clone();
    let slabbed = slab(move |v| {
        l.borrow_mut()
            .push(format!("slab got {}", v.downcast::<i32>().unwrap()));
        // Into the guarded greenlet, which goes back to main.
        let r = target.switch(1);
        l.borrow_mut()
            .push(format!("slab got {}", r.downcast::<i32>().unwrap()));
        target.switch(4)
    });
    assert_eq!(slabbed.switch(0).downcast::<i32>().unwrap(), 2);
    // `guarded` was created by main: it dies into main, so main gets its result.
    assert_eq!(
        slabbed.switch(3).downcast::<&str>().unwrap(),
        "guarded done"
    );
    assert_eq!(
        *log.borrow(),
        ["slab got 0", "guarded got 1", "slab got 3", "guarded got 4"]
    );
    assert!(guarded.is_dead());
    assert!(slabbed.is_active());
}

#[test]
fn death_goes_to_the_parent_and_frees_the_slot() {
    let before = stack::slab_stats();
    let parent = slab(|v| {
        let child = slab(|v| v.downcast::<u32>().unwrap() + 1);
        let r = child.switch(v);
        assert!(child.is_dead());
        r.downcast::<u32>().unwrap() * 2
    });
    assert_eq!(parent.switch(20u32).downcast::<u32>().unwrap(), 42);
    assert!(parent.is_dead());
    let after = stack::slab_stats();
    // Both stacks went back at death, while `parent` still has a handle.
    assert_eq!(
        after.free - before.free.min(after.free),
        after.carved - before.carved,
        "slots of dead greenlets are free again: {before:?} -> {after:?}"
    );
}

#[test]
fn dead_slots_are_reused_last_in_first_out() {
    let first = slab(|_| here());
    let a = first.switch(()).downcast::<usize>().unwrap();
    let carved = stack::slab_stats().carved;
    for _ in 0..50 {
        let g = slab(|_| here());
        let b = g.switch(()).downcast::<usize>().unwrap();
        assert_eq!(a, b, "a new greenlet did not get the slot just freed");
    }
    assert_eq!(
        stack::slab_stats().carved,
        carved,
        "churn carved new slots instead of reusing"
    );
}

#[test]
fn a_panic_is_raised_in_the_parent() {
    let g = slab(|_| {
        Greenlet::main().switch(());
        panic!("boom in slab")
    });
    g.switch(());
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.switch(())))
        .expect_err("the panic reaches main");
    assert_eq!(*err.downcast::<&str>().unwrap(), "boom in slab");
    assert!(g.is_dead());
}

#[test]
fn throw_and_greenlet_exit() {
    let g = slab(|_| {
        let caught = std::panic::catch_unwind(|| Greenlet::main().switch(()));
        let payload = caught.unwrap_err();
        *payload.downcast::<u64>().unwrap()
    });
    g.switch(());
    assert_eq!(g.throw(7u64).downcast::<u64>().unwrap(), 7);

    let h = slab(|_| Greenlet::main().switch(()));
    h.switch(());
    assert!(h.throw(GreenletExit).is::<GreenletExit>());
    assert!(h.is_dead());
}

#[test]
fn dropping_a_suspended_slab_greenlet_kills_it() {
    struct Flag(Rc<RefCell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.borrow_mut() = true;
        }
    }
    let dropped = Rc::new(RefCell::new(false));
    let d = dropped.clone();
    let free_before = stack::slab_stats().free;
    let g = slab(move |_| {
        let _flag = Flag(d);
        Greenlet::main().switch(());
        unreachable!("killed while suspended")
    });
    g.switch(());
    assert!(!*dropped.borrow());
    drop(g);
    assert!(
        *dropped.borrow(),
        "the destructor on the slab stack did not run"
    );
    assert!(stack::slab_stats().free > free_before.saturating_sub(1));
}

/// Recursion that writes `frame` bytes of data per level, `depth` levels deep,
/// then switches to main; returns a checksum so nothing is optimised away.
#[inline(never)]
fn deep_then_switch(depth: usize) -> u64 {
    let frame = [depth as u64 + 1; 32];
    black_box(&frame);
    if depth == 0 {
        Greenlet::main().switch(());
        return 1;
    }
    deep_then_switch(depth - 1) + frame[7]
}

#[test]
fn using_most_of_the_stack_is_not_an_overflow() {
    // 64 KiB requested; 40 levels of a few hundred bytes stay well inside.
    let gs: Vec<Greenlet> = (0..4)
        .map(|_| slab_sized(64 << 10, |_| deep_then_switch(40)))
        .collect();
    for g in &gs {
        g.switch(());
    }
    for g in &gs {
        assert!(g.switch(()).downcast::<u64>().unwrap() > 40);
    }
}

#[test]
fn many_live_slab_greenlets_share_few_mappings() {
    let n: usize = 3000;
    let chunks_before = stack::slab_stats().chunks;
    let gs: Vec<Greenlet> = (0..n)
        .map(|i| slab_sized(stack::MIN_STACK_SIZE, move |_| Greenlet::main().switch(i)))
        .collect();
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.switch(()).downcast::<usize>().unwrap(), i);
    }
    let chunks = stack::slab_stats().chunks - chunks_before;
    // Each slot is the stack and its canary, rounded up to whole pages: ~36 KiB
    // with 4 KiB pages, 48 KiB with 16 KiB pages (loongarch64), 128 KiB with
    // 64 KiB pages (many powerpc64le kernels). They fill that many 64 MiB
    // chunks, and at most one more for the part of a chunk left over.
    let page = stack::page_size();
    let slot = (stack::MIN_STACK_SIZE + stack::SLAB_CANARY_BYTES).div_ceil(page) * page;
    let fits_in = (n * slot).div_ceil(64 << 20);
    assert!(
        chunks <= fits_in + 1,
        "{chunks} chunks for {n} stacks of {slot} bytes"
    );
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.switch(i * 2).downcast::<usize>().unwrap(), i * 2);
        assert!(g.is_dead());
    }
}

#[test]
fn slab_greenlets_on_another_thread() {
    let sum = std::thread::spawn(|| {
        let gs: Vec<Greenlet> = (0..100u64)
            .map(|i| slab(move |_| i + Greenlet::main().switch(()).downcast::<u64>().unwrap()))
            .collect();
        gs.iter().for_each(|g| drop(g.switch(())));
        gs.iter()
            .map(|g| g.switch(1u64).downcast::<u64>().unwrap())
            .sum::<u64>()
    })
    .join()
    .unwrap();
    assert_eq!(sum, (0..100).sum::<u64>() + 100);
}

// ---- overflow detection, in child processes -------------------------------

/// Recurses until the stack pointer is `past` bytes below `start`, writing a
/// frame of data at every level, then returns.
#[inline(never)]
fn run_down(start: usize, past: usize) -> u64 {
    let frame = [start as u64 | 1; 16];
    black_box(&frame);
    if start - here() >= past {
        return frame[0];
    }
    run_down(start, past).wrapping_add(frame[1])
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_slab_overflow(out: &Output) {
    let stderr = stderr_of(out);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "expected an abort; status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("greenlet stack overflow (slab stack 0x"),
        "no slab overflow message; stderr: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("SURVIVED"),
        "the child went on after the overflow"
    );
}

/// In the child: a victim greenlet suspended on the slot below, then a
/// greenlet that runs 2 KiB past the end of its smallest-class stack.
fn overflow_then(switch_away: bool) -> ! {
    let victim = slab_sized(stack::MIN_STACK_SIZE, |_| Greenlet::main().switch(()));
    victim.switch(());
    let g = slab_sized(stack::MIN_STACK_SIZE, move |_| {
        let start = here();
        // Usable size is the minimum rounded up, plus at most a page: going that far
        // and 2 KiB more is past the end and the canary, inside the victim's slot.
        let usable = stack::MIN_STACK_SIZE + stack::page_size();
        black_box(run_down(start, usable + 2048));
        if switch_away {
            Greenlet::main().switch(());
        }
        // else: die right here, which checks the canary too
    });
    g.switch(());
    println!("SURVIVED");
    victim.switch(());
    std::process::exit(0);
}

#[test]
fn overflow_is_caught_when_the_greenlet_switches_away() {
    if in_child() {
        overflow_then(true);
    }
    let out = run_child("overflow_is_caught_when_the_greenlet_switches_away");
    assert_slab_overflow(&out);
}

#[test]
fn overflow_is_caught_when_the_greenlet_dies() {
    if in_child() {
        overflow_then(false);
    }
    let out = run_child("overflow_is_caught_when_the_greenlet_dies");
    assert_slab_overflow(&out);
}

#[test]
fn the_same_program_without_overflow_runs_to_the_end() {
    // The control for the two tests above: same shape, 4 KiB short of the end.
    if in_child() {
        let victim = slab_sized(stack::MIN_STACK_SIZE, |_| Greenlet::main().switch(()));
        victim.switch(());
        let g = slab_sized(stack::MIN_STACK_SIZE, |_| {
            black_box(run_down(here(), stack::MIN_STACK_SIZE - (4 << 10)));
            Greenlet::main().switch(());
        });
        g.switch(());
        g.switch(());
        victim.switch(());
        println!("SURVIVED");
        std::process::exit(0);
    }
    let out = run_child("the_same_program_without_overflow_runs_to_the_end");
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        stderr_of(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SURVIVED"));
}
