//! Slab stacks (`StackKind::Slab`) keep the semantics of guarded ones:
//! switching, death into the parent, panics, throw, kill on drop, reuse of the
//! stacks of dead greenlets. They are the same guarded memory as the default
//! kind with a smaller default size; running off one is stopped by its guard
//! (tests/guards.rs runs every overflow scenario, slab stacks among them, and
//! this file the one the canary used to miss).
//!
//! Counts are small so that the file runs quickly under qemu-user too; the
//! million-greenlet run is `examples/million.rs`.

use std::cell::RefCell;
use std::hint::black_box;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::rc::Rc;

use greenlet::stack::{self, GuardMode};
use greenlet::{Greenlet, GreenletExit, StackKind};

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
fn death_goes_to_the_parent_and_gives_the_stacks_back() {
    stack::trim_pool();
    let parent = slab(|v| {
        let child = slab(|v| v.downcast::<u32>().unwrap() + 1);
        let r = child.switch(v);
        assert!(child.is_dead());
        r.downcast::<u32>().unwrap() * 2
    });
    assert_eq!(parent.switch(20u32).downcast::<u32>().unwrap(), 42);
    assert!(parent.is_dead());
    // Both stacks went back at death, while `parent` still has a handle.
    assert_eq!(stack::pooled(), 2, "the stacks of the dead are pooled");
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
    stack::trim_pool();
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
    assert_eq!(stack::pooled(), 1, "the killed greenlet's stack is pooled");
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
    let before = stack::stats();
    let gs: Vec<Greenlet> = (0..n)
        .map(|i| slab_sized(stack::MIN_STACK_SIZE, move |_| Greenlet::main().switch(i)))
        .collect();
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.switch(()).downcast::<usize>().unwrap(), i);
    }
    let after = stack::stats();
    match after.guard_mode {
        GuardMode::Regions => {
            // Each slot is the stack and its guard; regions span 256 MiB on
            // 64-bit CPUs and 32 MiB on 32-bit ones (src/stack/shared.rs), so
            // 3000 slots of 36 KiB (100 KiB where the guard is 68 KiB) take
            // one to a few regions: as many as they fill, or one fewer if
            // this thread had begun one of this size before.
            let region: usize = if cfg!(target_pointer_width = "64") {
                256 << 20
            } else {
                32 << 20
            };
            let stride = stack::usable_size_for(stack::MIN_STACK_SIZE).unwrap() + after.guard_size;
            let filled = n.div_ceil(region / stride);
            let chunks = after.shared.chunks - before.shared.chunks;
            assert!(
                (filled.saturating_sub(1).max(1)..=filled).contains(&chunks),
                "{chunks} mappings for {n} stacks of {stride}-byte slots"
            );
        }
        GuardMode::Mprotect => {
            // Each is a mapping of its own (two VMAs: stack and guard page).
            let singles = after.single_mappings - before.single_mappings;
            assert!(
                singles + stack::POOL_CAPACITY >= n,
                "{singles} mappings for {n} stacks"
            );
            eprintln!(
                "NOTE: guard pages here ({}): {n} slab stacks took {singles} mappings of their own",
                after.fallback.unwrap()
            );
        }
    }
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

// ---- overflow, in child processes -------------------------------------------

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

/// Recursion with 3 KiB frames, only the lowest word of each written (below a
/// page: no stack probe runs).
#[allow(unconditional_recursion)]
#[inline(never)]
fn sparse_frames(depth: u64) -> u64 {
    let mut frame = std::mem::MaybeUninit::<[u64; 384]>::uninit();
    // SAFETY: writes the first word of our own local array.
    unsafe { frame.as_mut_ptr().cast::<u64>().write_volatile(depth) };
    black_box(&mut frame);
    sparse_frames(depth + 1).wrapping_add(1)
}

/// The case the canary missed: the first slab greenlet (at the bottom of its
/// mapping), recursing with 3 KiB frames, used to die of a bare SIGSEGV
/// (exit 139, no message). Now its guard stops it with the message.
#[test]
fn the_first_slab_greenlet_running_off_with_sparse_frames_gets_the_message() {
    if in_child() {
        let g = slab(|_| sparse_frames(0));
        g.switch(());
        println!("SURVIVED");
        std::process::exit(0);
    }
    let out = run_child("the_first_slab_greenlet_running_off_with_sparse_frames_gets_the_message");
    let stderr = stderr_of(&out);
    #[cfg(unix)]
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}: {stderr}",
        out.status
    );
    // Windows: the handler ends the process with STATUS_STACK_OVERFLOW.
    #[cfg(windows)]
    assert_eq!(
        out.status.code(),
        Some(0xC00000FD_u32 as i32),
        "{:?}: {stderr}",
        out.status
    );
    assert!(stderr.contains("greenlet stack overflow"), "{stderr}");
    assert!(
        stderr.contains(&format!("({} bytes)", stack::DEFAULT_SLAB_STACK_SIZE)),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SURVIVED"));
}

#[test]
fn the_same_program_without_overflow_runs_to_the_end() {
    // The control for the overflow tests: a victim below, a greenlet that goes
    // 4 KiB short of the end of its stack.
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
