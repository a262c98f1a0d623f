//! AddressSanitizer sees inside greenlets (feature `asan`, scripts/asan.sh).
//!
//! The rest of the suite shows that ASan reports nothing false on greenlet
//! stacks (every switch is announced, reused stacks are unpoisoned); these
//! tests show the other half: a real bug on a greenlet's stack, or on the heap
//! from inside a greenlet, is reported, with the greenlet's frames. Each bug
//! is played in a child process, which ASan stops.
//!
//! Without the `asan` feature (and an ASan build) there is nothing to test, so
//! the file is empty then.
#![cfg(feature = "asan")]

use std::hint::black_box;
use std::process::Output;

use greenlet::{Greenlet, StackKind};

#[path = "support/child.rs"]
mod child;
use child::{in_child, run_child, run_child_with};

fn assert_reported(out: &Output, kind: &str, function: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child should have been stopped by ASan:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("ERROR: AddressSanitizer: {kind}")),
        "ASan should report {kind}:\n{stderr}"
    );
    assert!(
        stderr.contains(function),
        "the report should name {function}:\n{stderr}"
    );
}

#[inline(never)]
fn read_past_a_local_array(i: usize) -> u8 {
    let local = black_box([7u8; 16]);
    // SAFETY: none: this is the bug ASan must catch (one byte past the array).
    unsafe { *local.as_ptr().add(i) }
}

#[inline(never)]
fn read_freed_memory() -> u64 {
    let boxed = Box::new(41u64);
    let ptr: *const u64 = &*boxed;
    drop(black_box(boxed));
    // SAFETY: none: this is the bug ASan must catch (a read after free).
    unsafe { std::ptr::read_volatile(ptr) }
}

fn play_in_a_greenlet(kind: StackKind, bug: fn() -> u64) {
    let g = Greenlet::builder()
        .stack_kind(kind)
        .spawn(move |_| {
            Greenlet::main().switch(());
            bug()
        })
        .unwrap();
    g.switch(()); // suspended once, so the bug runs after a real resume
    let v = g.switch(()).downcast::<u64>().unwrap();
    println!("no report: {v}");
}

#[test]
fn a_stack_buffer_overflow_on_a_greenlet_stack_is_reported() {
    if in_child() {
        play_in_a_greenlet(StackKind::Guarded, || {
            read_past_a_local_array(black_box(16)) as u64
        });
        return;
    }
    let out = run_child("a_stack_buffer_overflow_on_a_greenlet_stack_is_reported");
    assert_reported(&out, "stack-buffer-overflow", "read_past_a_local_array");
}

#[test]
fn a_stack_buffer_overflow_on_a_slab_stack_is_reported() {
    if in_child() {
        play_in_a_greenlet(StackKind::Slab, || {
            read_past_a_local_array(black_box(16)) as u64
        });
        return;
    }
    let out = run_child("a_stack_buffer_overflow_on_a_slab_stack_is_reported");
    assert_reported(&out, "stack-buffer-overflow", "read_past_a_local_array");
}

#[test]
fn a_use_after_free_inside_a_greenlet_is_reported() {
    if in_child() {
        play_in_a_greenlet(StackKind::Guarded, read_freed_memory);
        return;
    }
    // With scripts/asan.sh's quarantine_size_mb=0 the freed block is reused at
    // once and the read looks like an overflow; keep ASan's default quarantine.
    let out = run_child_with(
        "a_use_after_free_inside_a_greenlet_is_reported",
        &[("ASAN_OPTIONS", "detect_leaks=0")],
    );
    assert_reported(&out, "heap-use-after-free", "read_freed_memory");
}
