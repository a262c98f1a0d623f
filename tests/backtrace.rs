//! Backtraces taken inside a greenlet end cleanly at the entry trampoline: no
//! frames of the stack that switched into it, no garbage, no unwinder crash
//! (SPEC §5: the trampoline's CFI marks the return address undefined; on
//! 32-bit ARM, whose unwinder reads EHABI tables, its table entry gives a
//! return address of 0).
//! docs/backtraces.md shows what they look like.

use std::backtrace::Backtrace;
use std::process::Command;

use greenlet::Greenlet;

#[path = "support/child.rs"]
mod child;

/// Function names of the frames of a captured backtrace, innermost first.
fn frame_names(bt: &Backtrace) -> Vec<String> {
    // The Debug form lists `{ fn: "name", file: ..., line: ... }` per frame.
    let text = format!("{bt:?}");
    text.split("fn: \"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

fn is_trampoline(name: &str) -> bool {
    name.starts_with("greenlet_") && name.ends_with("_entry")
}

/// Frames that only the thread's own stack has: finding one in a greenlet's
/// backtrace would mean the unwinder walked off the greenlet stack.
const MAIN_STACK_ONLY: &[&str] = &[
    "main_stack_marker",
    "lang_start",
    "run_test",
    "start_thread",
    "__libc_start",
    "clone",
    "thread_start",
];

fn assert_ends_at_trampoline(names: &[String]) {
    let shown = names.join("\n  ");
    assert!(
        names.last().is_some_and(|n| is_trampoline(n)),
        "the backtrace does not end at the entry trampoline:\n  {shown}"
    );
    assert!(
        // The entry is generic over the closure: nightly's demangler prints its
        // type parameters too.
        names.len() >= 2 && names[names.len() - 2].starts_with("greenlet::greenlet::entry::entry"),
        "the frame above the trampoline is not greenlet::greenlet::entry::entry:\n  {shown}"
    );
    for n in names {
        for bad in MAIN_STACK_ONLY {
            assert!(
                !n.contains(bad),
                "frame `{n}` of the switching stack leaked into the greenlet's backtrace:\n  {shown}"
            );
        }
    }
}

#[inline(never)]
fn main_stack_marker(g: &Greenlet) -> Vec<String> {
    let names = g.switch(()).downcast::<Vec<String>>().unwrap();
    std::hint::black_box(names)
}

#[test]
fn a_captured_backtrace_ends_at_the_entry_trampoline() {
    let g = Greenlet::new(|_| frame_names(&Backtrace::force_capture()));
    let names = main_stack_marker(&g);
    assert_ends_at_trampoline(&names);
}

#[test]
fn a_nested_greenlet_backtrace_stops_at_its_own_trampoline() {
    let outer = Greenlet::new(|_| {
        let inner = Greenlet::new(|_| frame_names(&Backtrace::force_capture()));
        inner.switch(()).downcast::<Vec<String>>().unwrap()
    });
    let names = main_stack_marker(&outer);
    assert_ends_at_trampoline(&names);
    // Exactly one trampoline and one entry: the outer greenlet's are not reached.
    assert_eq!(names.iter().filter(|n| is_trampoline(n)).count(), 1);
}

#[test]
fn a_backtrace_after_many_switches_still_ends_at_the_trampoline() {
    let g = Greenlet::new(|_| {
        for i in 0..100 {
            Greenlet::main().switch(i);
        }
        frame_names(&Backtrace::force_capture())
    });
    for _ in 0..100 {
        g.switch(());
    }
    let names = main_stack_marker(&g);
    assert_ends_at_trampoline(&names);
}

/// RUST_BACKTRACE=1 output of a panic inside a greenlet (printed by the
/// panic hook on the greenlet's stack) ends at the trampoline, and the panic
/// then continues in the parent as an ordinary panic (exit code 101).
#[test]
fn a_panic_backtrace_inside_a_greenlet_ends_at_the_trampoline() {
    if child::in_child() {
        let g = Greenlet::new(|_| -> () { panic!("boom inside a greenlet") });
        g.switch(());
        unreachable!();
    }
    let out = child::run_child_with(
        "a_panic_backtrace_inside_a_greenlet_ends_at_the_trampoline",
        &[("RUST_BACKTRACE", "1")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "stderr: {stderr}");
    assert!(stderr.contains("boom inside a greenlet"), "{stderr}");
    let start = stderr
        .find("stack backtrace:")
        .expect("no backtrace printed");
    let frames: Vec<&str> = stderr[start..]
        .lines()
        .filter_map(|l| {
            let (index, name) = l.trim_start().split_once(": ")?;
            index.parse::<usize>().ok().map(|_| name.trim())
        })
        .collect();
    assert!(
        frames.last().is_some_and(|n| is_trampoline(n)),
        "the panic backtrace does not end at the trampoline:\n{stderr}"
    );
    // The entry is generic over the closure: nightly's demangler prints its
    // type parameters too.
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("greenlet::greenlet::entry::entry")),
        "{stderr}"
    );
}

/// Called inside a greenlet in the gdb child, as the breakpoint.
#[no_mangle]
#[inline(never)]
pub extern "C" fn greenlet_backtrace_breakpoint() {
    std::hint::black_box(());
}

/// `gdb -batch -ex 'break …' -ex run -ex bt` inside a greenlet: the last
/// frame is the trampoline, with no "corrupt stack" or "Backtrace stopped".
#[test]
fn gdb_bt_inside_a_greenlet_ends_at_the_trampoline() {
    const NAME: &str = "gdb_bt_inside_a_greenlet_ends_at_the_trampoline";
    if child::in_child() {
        let g = Greenlet::new(|_| greenlet_backtrace_breakpoint());
        g.switch(());
        return;
    }
    if child::emulated() {
        eprintln!("NOTE: GDB CHECK NOT RUN: this test binary runs under emulation and the host gdb cannot debug it");
        return;
    }
    if cfg!(windows) {
        eprintln!(
            "NOTE: GDB CHECK NOT RUN ON WINDOWS: there is no Windows gdb here, and the host's gdb \
             cannot debug a program under wine; the std::backtrace and frame-pointer checks of \
             this file run there"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let gdb = Command::new("gdb")
        .args([
            "-nx",
            "-batch",
            "-ex",
            "break greenlet_backtrace_breakpoint",
        ])
        .args(["-ex", "run", "-ex", "bt", "-ex", "kill", "--args"])
        .arg(&exe)
        .args([NAME, "--exact", "--test-threads=1"])
        .env("GREENLET_TEST_CHILD", "1")
        // A preloaded tool runtime (Valgrind's, ASan's) is for this process,
        // not for gdb.
        .env_remove("LD_PRELOAD")
        .output();
    let out = match gdb {
        Ok(out) => out,
        Err(e) => {
            // CI sets GREENLET_REQUIRE_GDB=1 so that a missing gdb fails there.
            assert!(
                std::env::var_os("GREENLET_REQUIRE_GDB").is_none(),
                "GREENLET_REQUIRE_GDB is set but gdb cannot be started: {e}"
            );
            eprintln!("NOTE: GDB CHECK NOT RUN: cannot start gdb ({e}); install it (apt-get install gdb) to run this check");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        frames
            .first()
            .is_some_and(|f| f.contains("greenlet_backtrace_breakpoint")),
        "gdb did not stop at the breakpoint:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = frames.last().unwrap();
    assert!(
        last.contains("greenlet_") && last.contains("_entry ("),
        "gdb's backtrace does not end at the trampoline:\n{text}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.contains("greenlet::greenlet::entry::entry")),
        "{text}"
    );
    for bad in [
        "corrupt stack",
        "Backtrace stopped",
        "previous frame identical",
    ] {
        assert!(!text.contains(bad), "gdb says `{bad}`:\n{text}");
    }
}
