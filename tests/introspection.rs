//! Introspection: `Greenlet::backtrace` (the call stack of a suspended
//! greenlet, like Python's `gr_frame`) and the stack usage in `Debug`.
//!
//! Symbol names in backtraces depend on debug info and on the symbolizer
//! working (under qemu-user it may not, and release builds inline frames), so
//! these tests assert on names only when the backtrace shows that symbols
//! resolved, and otherwise on what never depends on symbols: how many frames
//! there are, and that capturing leaves the greenlet exactly as it was.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;

use greenlet::{settrace, Event, Greenlet, StackKind};

/// Frames listed by a backtrace's `Display` (lines like `  12: name`).
fn frame_count(bt: &Backtrace) -> usize {
    bt.to_string()
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && t[digits..].starts_with(':')
        })
        .count()
}

/// True when the symbolizer resolved names in this backtrace (it names the
/// given function of this test file).
fn resolved(bt: &str, name: &str) -> bool {
    bt.contains(name)
}

/// Recurses `depth` levels, then pauses in a switch to main; on resume,
/// unwinds and returns `depth`.
#[inline(never)]
fn introspection_marker_recurse(depth: u32) -> u32 {
    if depth == 0 {
        Greenlet::main().switch(());
        return 0;
    }
    black_box(introspection_marker_recurse(black_box(depth - 1))) + 1
}

fn suspended_at_depth(depth: u32) -> Greenlet {
    let g = Greenlet::new(move |_| introspection_marker_recurse(depth));
    g.switch(());
    assert!(g.is_active());
    g
}

#[test]
fn none_before_start_and_after_death() {
    let g = Greenlet::new(|_| Greenlet::main().switch(()));
    assert!(
        g.backtrace().is_none(),
        "an unstarted greenlet has no frames"
    );
    g.switch(());
    assert!(g.backtrace().is_some());
    g.switch(());
    assert!(g.is_dead());
    assert!(g.backtrace().is_none(), "a dead greenlet has no stack");
}

#[inline(never)]
fn requester_side_function(g: &Greenlet) -> Backtrace {
    black_box(g.backtrace().expect("a suspended greenlet has a backtrace"))
}

#[test]
fn backtrace_shows_the_suspended_greenlets_own_frames() {
    let g = suspended_at_depth(5);
    let bt = requester_side_function(&g);
    assert_eq!(bt.status(), BacktraceStatus::Captured);
    let text = bt.to_string();
    assert!(frame_count(&bt) >= 3, "too few frames:\n{text}");
    if resolved(&text, "introspection_marker_recurse") {
        // Six levels of the marker in debug builds (recursion is not inlined
        // across black_box calls), at least one in any build.
        assert!(
            text.matches("introspection_marker_recurse").count() >= 1,
            "{text}"
        );
        assert!(
            !text.contains("requester_side_function"),
            "the backtrace is of the caller's stack, not the greenlet's:\n{text}"
        );
    } else {
        eprintln!("NOTE: symbols did not resolve here; checked frame counts only");
    }
    assert_eq!(g.switch(()).downcast::<u32>().unwrap(), 5);
}

#[test]
fn deeper_suspension_gives_more_frames() {
    let shallow = suspended_at_depth(2);
    let deep = suspended_at_depth(40);
    let a = frame_count(&shallow.backtrace().unwrap());
    let b = frame_count(&deep.backtrace().unwrap());
    // 38 more levels of a non-inlinable recursion: 38 more frames, whether or
    // not their names resolve.
    assert!(b >= a + 38, "shallow {a} frames, deep {b} frames");
    assert_eq!(deep.switch(()).downcast::<u32>().unwrap(), 40);
    assert_eq!(shallow.switch(()).downcast::<u32>().unwrap(), 2);
}

#[test]
fn capturing_does_not_resume_the_greenlet_or_call_the_tracer() {
    let resumed = Rc::new(Cell::new(0));
    let r = resumed.clone();
    let g = Greenlet::new(move |_| loop {
        let v = Greenlet::main().switch(());
        r.set(r.get() + 1);
        if v.is::<&str>() {
            return r.get();
        }
    });
    g.switch(());
    let events = Rc::new(Cell::new(0));
    let e = events.clone();
    let previous = settrace(Some(Rc::new(
        move |_: Event, _: &Greenlet, _: &Greenlet| e.set(e.get() + 1),
    )));
    for _ in 0..20 {
        assert!(g.backtrace().is_some());
    }
    assert_eq!(events.get(), 0, "introspection is not a traced switch");
    assert_eq!(resumed.get(), 0, "the greenlet's code ran during a capture");
    assert!(Greenlet::main().is_current());
    g.switch(1);
    assert_eq!(events.get(), 2, "real switches are still traced");
    settrace(previous);
    assert_eq!(resumed.get(), 1);
    assert_eq!(g.switch("end").downcast::<i32>().unwrap(), 2);
}

#[test]
fn the_current_greenlet_gets_its_own_backtrace() {
    let g = Greenlet::new(|_| {
        let me = Greenlet::current();
        let bt = me.backtrace().expect("the running greenlet has frames");
        (frame_count(&bt), bt.to_string())
    });
    let (frames, text) = g.switch(()).downcast::<(usize, String)>().unwrap();
    assert!(frames >= 2, "{text}");
    if resolved(&text, "the_current_greenlet_gets_its_own_backtrace") {
        // On the greenlet's stack: no frame of the test harness among its
        // own frames, down to the trampoline (where the CPU's trampoline
        // describes it, the backtrace goes on into the resumer, the test,
        // after it: docs/backtraces.md).
        let own = text.split("_entry\n").next().unwrap();
        assert!(!own.contains("test::run_test"), "{text}");
    }
    assert!(Greenlet::current().backtrace().is_some());
}

#[inline(never)]
fn introspecting_side_marker(g: &Greenlet) -> String {
    black_box(g.backtrace().unwrap().to_string())
}

/// The backtrace of a suspended greenlet whose resumer (main, here) is itself
/// suspended, in the capture, is the greenlet's frames only: it does not go
/// on into the resumer's, as a backtrace taken by the greenlet itself does
/// (docs/backtraces.md).
#[test]
fn a_suspended_greenlets_backtrace_stops_at_its_own_entry() {
    // main resumes g, g resumes h, h switches to main: g's resumer is main.
    let g = Greenlet::new(|_| {
        let h = Greenlet::new(|_| {
            Greenlet::main().switch(());
        });
        h.switch(());
    });
    g.switch(());
    let text = introspecting_side_marker(&g);
    assert!(frame_count(&g.backtrace().unwrap()) >= 2);
    if resolved(
        &text,
        "a_suspended_greenlets_backtrace_stops_at_its_own_entry",
    ) {
        assert!(!text.contains("introspecting_side_marker"), "{text}");
        assert!(!text.contains("test::run_test"), "{text}");
    }
    g.switch(());
}

#[inline(never)]
fn main_side_marker_function(g: &Greenlet) -> String {
    black_box(g.switch(())).downcast::<String>().unwrap()
}

#[test]
fn a_greenlet_can_look_at_main_and_at_a_sibling() {
    let sibling = suspended_at_depth(3);
    let s = sibling.clone();
    let g = Greenlet::new(move |_| {
        let main_bt = Greenlet::main().backtrace().unwrap();
        let sib_bt = s.backtrace().unwrap();
        assert!(frame_count(&main_bt) >= 2);
        assert!(frame_count(&sib_bt) >= 2);
        format!("{main_bt}\n=====\n{sib_bt}")
    });
    let text = main_side_marker_function(&g);
    let (main_part, sib_part) = text.split_once("\n=====\n").unwrap();
    if resolved(main_part, "main_side_marker_function") {
        assert!(!main_part.contains("introspection_marker_recurse"));
        assert!(sib_part.contains("introspection_marker_recurse"));
        assert!(!sib_part.contains("main_side_marker_function"));
    }
    assert!(g.is_dead());
    assert_eq!(sibling.switch(()).downcast::<u32>().unwrap(), 3);
}

#[test]
fn slab_greenlets_have_backtraces_too() {
    let g = Greenlet::builder()
        .stack_kind(StackKind::Slab)
        .spawn(|_| introspection_marker_recurse(4))
        .unwrap();
    g.switch(());
    let bt = requester_side_function(&g);
    assert!(frame_count(&bt) >= 3);
    // Symbolizing needs tens of KiB of stack: done here, on main's stack.
    let text = bt.to_string();
    if resolved(&text, "introspection_marker_recurse") {
        assert!(!text.contains("requester_side_function"), "{text}");
    }
    assert_eq!(g.switch(()).downcast::<u32>().unwrap(), 4);
}

#[test]
fn a_thrown_into_greenlet_after_capture_behaves_normally() {
    let g = Greenlet::new(|_| {
        let caught = std::panic::catch_unwind(|| Greenlet::main().switch(()));
        *caught.unwrap_err().downcast::<&str>().unwrap()
    });
    g.switch(());
    let _ = g.backtrace().unwrap();
    assert_eq!(g.throw("after").downcast::<&str>().unwrap(), "after");
    assert!(g.is_dead());
}

// ---- Debug ----------------------------------------------------------------

/// The value of `field: N` in a Debug string.
fn field(debug: &str, name: &str) -> Option<usize> {
    let at = debug.find(&format!("{name}: "))? + name.len() + 2;
    let digits: String = debug[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[inline(never)]
fn use_stack(bytes: usize) -> u64 {
    let frame = [bytes as u8; 1024];
    black_box(&frame);
    if bytes <= 1024 {
        return frame[1] as u64;
    }
    use_stack(bytes - 1024) + frame[2] as u64
}

#[test]
fn debug_shows_state_parent_and_stack_usage() {
    // An unusual size, so the stack is freshly mapped, not from the pool.
    let size = (1 << 20) + 3 * 4096;
    let g = Greenlet::builder()
        .stack_size(size)
        .spawn(|_| {
            black_box(use_stack(200 << 10));
            Greenlet::main().switch(());
        })
        .unwrap();
    let before = format!("{g:?}");
    assert!(before.contains("state: \"unstarted\""), "{before}");
    assert!(before.contains("parent: 0x"), "{before}");
    let stack_size = field(&before, "stack_size").expect(&before);
    assert!(stack_size >= size, "{before}");

    g.switch(());
    let after = format!("{g:?}");
    assert!(after.contains("state: \"suspended\""), "{after}");
    let in_use = field(&after, "stack_in_use").expect(&after);
    assert!(in_use > 0 && in_use < 64 << 10, "{after}");
    let high = field(&after, "stack_high_water").expect("mincore works here");
    assert!(
        high >= 200 << 10,
        "200 KiB were used, high water says {high}: {after}"
    );
    assert!(
        high < stack_size / 2,
        "pages below the deepest use count as used: {after}"
    );
    // Looking does not touch: the high-water mark is not moved by Debug.
    for _ in 0..3 {
        assert_eq!(field(&format!("{g:?}"), "stack_high_water"), Some(high));
    }
    g.switch(());
    let dead = format!("{g:?}");
    assert!(dead.contains("state: \"dead\""), "{dead}");
    assert!(
        !dead.contains("stack_size"),
        "a dead greenlet has no stack: {dead}"
    );
}

#[test]
fn debug_of_main_and_of_the_running_greenlet() {
    let main = format!("{:?}", Greenlet::main());
    assert!(
        main.contains("main: true") && main.contains("running"),
        "{main}"
    );
    assert!(
        !main.contains("stack_size"),
        "main runs on the thread's stack: {main}"
    );
    let inside = Greenlet::new(|_| format!("{:?}", Greenlet::current()))
        .switch(())
        .downcast::<String>()
        .unwrap();
    assert!(inside.contains("state: \"running\""), "{inside}");
    let in_use = field(&inside, "stack_in_use").expect(&inside);
    assert!(in_use > 0, "{inside}");
}

#[test]
fn debug_of_a_slab_greenlet() {
    // 64 KiB: 20 KiB of the test's own frames fit with room to spare even
    // where frames are larger (AddressSanitizer's redzones).
    let g = Greenlet::builder()
        .stack_kind(StackKind::Slab)
        .stack_size(64 << 10)
        .spawn(|_| {
            black_box(use_stack(20 << 10));
            Greenlet::main().switch(());
        })
        .unwrap();
    g.switch(());
    let d = format!("{g:?}");
    let size = field(&d, "stack_size").expect(&d);
    assert!(size >= 64 << 10, "{d}");
    let high = field(&d, "stack_high_water").expect(&d);
    assert!(high >= 20 << 10 && high <= size, "{d}");
    g.switch(());
}

#[test]
fn debug_names_the_guard_of_the_stack() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |_| main.switch(()));
    g.switch(());
    let shown = format!("{g:?}");
    let expected = format!("guard: {:?}", greenlet::stack::guard_mode());
    assert!(shown.contains(&expected), "{shown} lacks `{expected}`");
    // A main greenlet runs on the thread's own stack: no guard of ours.
    assert!(!format!("{:?}", Greenlet::main()).contains("guard"));
    g.switch(());
}
