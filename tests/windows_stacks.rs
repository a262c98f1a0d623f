//! Windows greenlet stacks (src/stack/windows.rs): reserved address space that
//! the OS commits on demand through a `PAGE_GUARD` page as the greenlet runs,
//! told where the stack is by the TEB fields the switch loads, with a guard
//! below that ends the process with the greenlet message. Run under wine in
//! CI. On other systems this file has no tests (tests/guards.rs covers their
//! guards).
#![cfg(windows)]

use std::hint::black_box;

use greenlet::stack;
use greenlet::Greenlet;

#[path = "support/child.rs"]
mod child;
use child::{in_child, run_child};

#[test]
fn guards_rs_does_not_apply_here() {
    eprintln!(
        "NOT RUN ON WINDOWS: tests/guards.rs examines guard regions, mprotect guard pages, \
         mlockall and POSIX signal handlers; this file and tests/overflow.rs test the Windows \
         stacks instead"
    );
}

/// Recurses `depth` frames of about 1 KiB each, touching every frame.
#[inline(never)]
fn deep(depth: usize) -> usize {
    let frame = [depth as u8; 1000];
    let frame = black_box(frame);
    if depth == 0 {
        return frame[7] as usize;
    }
    deep(depth - 1) + frame[999] as usize
}

/// `stack_high_water` of a greenlet's `Debug` output: the bytes of its stack
/// that are committed (touched), asked of the OS.
fn committed_bytes(g: &Greenlet) -> usize {
    let debug = format!("{g:?}");
    let at = debug
        .find("stack_high_water: ")
        .unwrap_or_else(|| panic!("no high water in {debug}"));
    let rest = &debug[at + "stack_high_water: ".len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

/// A fresh 1 MiB stack costs a few pages until the greenlet runs deeper; then
/// the OS commits what it touched, through the guard page, and no more.
#[test]
fn stacks_are_committed_on_demand() {
    stack::trim_pool();
    let g = Greenlet::builder()
        .stack_size(1 << 20)
        .spawn(|_| {
            let depth = deep(150);
            Greenlet::main().switch(());
            depth
        })
        .unwrap();
    let before = committed_bytes(&g);
    assert!(
        before <= 16 << 10,
        "a new stack has {before} bytes committed"
    );
    g.switch(());
    let after = committed_bytes(&g);
    assert!(
        (150 * 1000..768 << 10).contains(&after),
        "150 frames of 1 KiB or more (3 KiB in debug builds) committed {after} bytes of a 1 MiB \
         stack"
    );
    assert!(g.switch(()).is::<usize>());
}

/// Nearly the whole usable stack can be used, repeatedly, on a stack that
/// comes back from the pool with its pages still committed: the TEB's
/// StackLimit that the next greenlet starts with must agree with what is
/// committed, or a panic deep down fails to unwind.
#[test]
fn a_pooled_stack_grows_and_unwinds_again_for_its_next_greenlet() {
    for round in 0..4 {
        let g = Greenlet::builder()
            .stack_size(1 << 20)
            .spawn(move |_| {
                // 200 frames of 1 KiB or more, then a panic at the bottom: unwinding
                // walks every frame, which the OS checks against the TEB.
                let result = std::panic::catch_unwind(|| {
                    deep(200);
                    deep_panic(200 + round)
                });
                assert!(result.is_err());
                deep(220)
            })
            .unwrap();
        assert!(g.switch(()).is::<usize>(), "round {round}");
    }
}

#[inline(never)]
fn deep_panic(depth: usize) -> usize {
    let frame = black_box([depth as u8; 1000]);
    if depth == 0 {
        std::panic::panic_any("deep down (expected in test output)");
    }
    deep_panic(depth - 1) + frame[1] as usize
}

/// The stack's usable part may be read and written from another stack
/// before the greenlet grows into it (what `Stack::bottom` promises): the
/// exception handler commits the page. Then the stack still grows through its
/// guard page and unwinds a panic from deep down.
#[test]
fn memory_of_a_stack_can_be_touched_from_another_stack() {
    let s = stack::Stack::new(128 << 10).unwrap();
    // SAFETY: the lowest usable byte and the one below the top: memory of a
    // stack we own that nothing runs on.
    unsafe {
        s.bottom().write(7);
        s.top().sub(1).write(9);
        assert_eq!(s.bottom().read(), 7);
        assert_eq!(s.top().sub(1).read(), 9);
    }
    drop(s);
    let g = Greenlet::builder()
        .stack_size(512 << 10)
        .spawn(|_| {
            assert!(std::panic::catch_unwind(|| deep_panic(90)).is_err());
            deep(100)
        })
        .unwrap();
    assert!(g.switch(()).is::<usize>());
}

/// Running off a stack that was used before (from the pool, its pages
/// committed by an earlier greenlet) ends the process with the message too.
#[test]
fn overflow_of_a_pooled_stack_gets_the_message() {
    if in_child() {
        let first = Greenlet::builder()
            .stack_size(64 << 10)
            .spawn(|_| deep(40))
            .unwrap();
        first.switch(());
        assert!(first.is_dead());
        let g = Greenlet::builder()
            .stack_size(64 << 10)
            .spawn(|_| deep(usize::MAX / 2))
            .unwrap();
        g.switch(());
        panic!("the child survived an endless recursion");
    }
    let out = run_child("overflow_of_a_pooled_stack_gets_the_message");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("greenlet stack overflow") && stderr.contains("(65536 bytes)"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0xC00000FD_u32 as i32), "{stderr}");
}

/// A panic in a greenlet is raised in its parent, through the OS's exception
/// dispatch on both stacks (the ExceptionList and stack bounds switched).
#[test]
fn a_panic_crosses_into_the_parent() {
    let g = Greenlet::new(|_| -> () { std::panic::panic_any(42u32) });
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.switch(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<u32>(), Some(&42));
    assert!(g.is_dead());
}
