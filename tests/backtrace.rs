//! Backtraces taken inside a running greenlet show its own frames, end its
//! stack at the entry trampoline, then go on, marked, into the greenlet that
//! resumed it (SPEC §10): the trampoline's CFI describes that greenlet's saved
//! frame as its caller. A greenlet resumed by a death, or one without a
//! suspended resumer, ends at its trampoline: no frames of a dead stack, no
//! garbage, no unwinder crash. On the CPUs whose trampoline has no such CFI
//! (docs/backtraces.md has the table) every backtrace ends at the trampoline,
//! and these tests check that instead. docs/backtraces.md shows what they
//! look like.

use std::backtrace::Backtrace;
use std::process::Command;

use greenlet::{Greenlet, Value};

#[path = "support/child.rs"]
mod child;
#[path = "support/continuation.rs"]
mod continuation;
use continuation::CONTINUES;

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

/// The frames split after each trampoline: the greenlet's own frames (ending
/// with the trampoline), then each resumer's, the last one the thread's own
/// stack or a chain ended at a trampoline.
fn segments(names: &[String]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for n in names {
        out.last_mut().unwrap().push(n.clone());
        if is_trampoline(n) {
            out.push(Vec::new());
        }
    }
    if out.last().unwrap().is_empty() {
        out.pop();
    }
    out
}

/// The frames of one greenlet's stack: its frames, then
/// `greenlet::greenlet::entry::entry`, then the trampoline, and none of the
/// thread's own stack.
fn assert_one_greenlet_stack(segment: &[String], all: &[String]) {
    let shown = all.join("\n  ");
    assert!(
        segment.last().is_some_and(|n| is_trampoline(n)),
        "a greenlet's frames do not end at its entry trampoline:\n  {shown}"
    );
    assert!(
        // The entry is generic over the closure: nightly's demangler prints its
        // type parameters too.
        segment.len() >= 2
            && segment[segment.len() - 2].starts_with("greenlet::greenlet::entry::entry"),
        "the frame above a trampoline is not greenlet::greenlet::entry::entry:\n  {shown}"
    );
    for n in segment {
        for bad in MAIN_STACK_ONLY {
            assert!(
                !n.contains(bad),
                "frame `{n}` of the thread's stack is mixed into a greenlet's frames:\n  {shown}"
            );
        }
    }
}

/// The frame the trampoline names as its caller when there is no suspended
/// resumer to go on into (`asm/x86_64.S`): the mark of a chain's end.
fn is_chain_end(name: &str) -> bool {
    name.starts_with("greenlet_") && name.ends_with("_entry_no_resumer")
}

/// The backtrace ends at the first trampoline (a chain with no resumer, or a
/// CPU without the continuation): with the continuation, the one frame after
/// it is the chain-end mark.
fn assert_ends_at_trampoline(names: &[String]) {
    let shown = names.join("\n  ");
    let segs = segments(names);
    if CONTINUES {
        assert!(
            segs.len() == 2 && segs[1].len() == 1 && is_chain_end(&segs[1][0]),
            "the backtrace does not end at the trampoline and its chain-end mark:\n  {shown}"
        );
    } else {
        assert_eq!(
            segs.len(),
            1,
            "the backtrace goes on past the trampoline:\n  {shown}"
        );
    }
    assert_one_greenlet_stack(&segs[0], names);
}

/// The backtrace shows the greenlet's stack, then (on a CPU with the
/// continuation) one stack per entry of `resumers`, each holding its marker
/// function, the last of them the thread's own stack; elsewhere it ends at
/// the first trampoline.
fn assert_chain(names: &[String], resumers: &[&str]) {
    let shown = names.join("\n  ");
    if !CONTINUES {
        eprintln!(
            "NOTE: this CPU's trampoline ends every backtrace (docs/backtraces.md): checking \
             that the backtrace ends there instead of its continuation into {resumers:?}"
        );
        assert_ends_at_trampoline(names);
        return;
    }
    let segs = segments(names);
    assert_eq!(
        segs.len(),
        resumers.len() + 1,
        "expected the greenlet's stack and then {resumers:?}:\n  {shown}"
    );
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 < segs.len() {
            assert_one_greenlet_stack(seg, names);
        } else {
            assert!(
                seg.iter().any(|n| n.contains("run_test")),
                "the last stack is not the thread's own:\n  {shown}"
            );
        }
        if i > 0 {
            assert!(
                seg.iter().any(|n| n.contains(resumers[i - 1])),
                "stack {i} does not hold `{}`:\n  {shown}",
                resumers[i - 1]
            );
        }
    }
}

#[inline(never)]
fn main_stack_marker(g: &Greenlet) -> Vec<String> {
    std::hint::black_box(0x3a1);
    let names = g.switch(()).downcast::<Vec<String>>().unwrap();
    std::hint::black_box(names)
}

#[test]
fn a_captured_backtrace_goes_on_into_the_resumer() {
    let g = Greenlet::new(|_| frame_names(&Backtrace::force_capture()));
    let names = main_stack_marker(&g);
    assert_chain(&names, &["main_stack_marker"]);
}

#[inline(never)]
fn resumer_a(b: &Greenlet) -> Vec<String> {
    std::hint::black_box(0xa);
    std::hint::black_box(b.switch(()).downcast::<Vec<String>>().unwrap())
}

#[inline(never)]
fn resumer_b(c: &Greenlet) -> Vec<String> {
    std::hint::black_box(0xb);
    std::hint::black_box(c.switch(()).downcast::<Vec<String>>().unwrap())
}

/// A resumes B resumes C: C's backtrace shows C, B, A and the thread's
/// stack, in that order, each with its switching function.
#[test]
fn a_nested_backtrace_shows_each_resumer_in_order() {
    let a = Greenlet::new(|_| {
        let b = Greenlet::new(|_| {
            let c = Greenlet::new(|_| frame_names(&Backtrace::force_capture()));
            resumer_b(&c)
        });
        resumer_a(&b)
    });
    let names = main_stack_marker(&a);
    assert_chain(&names, &["resumer_b", "resumer_a", "main_stack_marker"]);
    if CONTINUES {
        assert_eq!(names.iter().filter(|n| is_trampoline(n)).count(), 3);
    }
}

#[inline(never)]
fn greenlet_resumer_side(worker: &Greenlet) -> Value {
    std::hint::black_box(0x51de);
    std::hint::black_box(worker.switch(()))
}

/// Both roles of [`a_backtrace_follows_a_resumer_above_or_below`]: sent a
/// greenlet, resume it and return its backtrace, its stack address and ours;
/// sent anything else, capture a backtrace and return it with our stack
/// address.
fn play(v: Value) -> Value {
    let local = 0u8;
    let here = std::hint::black_box(&local) as *const u8 as usize;
    match v.downcast::<Greenlet>() {
        Ok(worker) => {
            let (names, there) = greenlet_resumer_side(&worker)
                .downcast::<(Vec<String>, usize)>()
                .unwrap();
            Value::new((names, there, here))
        }
        Err(_) => Value::new((frame_names(&Backtrace::force_capture()), here)),
    }
}

/// The continuation works whichever way the resumer's stack lies from the
/// greenlet's: both orders are played (the first-made greenlet resumes the
/// second, then the other way round) and the stack addresses prove that both
/// happened.
#[test]
fn a_backtrace_follows_a_resumer_above_or_below() {
    let mut seen = [false; 2];
    for resumer_first in [true, false] {
        let x = Greenlet::new(play);
        let y = Greenlet::new(play);
        let (resumer, worker) = if resumer_first { (x, y) } else { (y, x) };
        worker.set_parent(&resumer).unwrap();
        let (names, worker_at, resumer_at) = resumer_marker_with(&resumer, worker.clone())
            .downcast::<(Vec<String>, usize, usize)>()
            .unwrap();
        seen[usize::from(resumer_at > worker_at)] = true;
        eprintln!(
            "resumer's stack {} the greenlet's ({resumer_at:#x} vs {worker_at:#x})",
            if resumer_at > worker_at {
                "above"
            } else {
                "below"
            }
        );
        assert_chain(&names, &["greenlet_resumer_side", "resumer_marker_with"]);
    }
    assert_eq!(
        seen,
        [true, true],
        "the two orders did not put the resumer's stack both above and below the greenlet's"
    );
}

#[inline(never)]
fn resumer_marker_with(g: &Greenlet, arg: Greenlet) -> Value {
    std::hint::black_box(0xa59);
    std::hint::black_box(g.switch(arg))
}

#[inline(never)]
fn resumer_marker(g: &Greenlet) -> Value {
    std::hint::black_box(0x4e5);
    std::hint::black_box(g.switch(()))
}

/// A greenlet resumed by a death (its child, started by another greenlet,
/// returned into it through RESUME) ends its chain at its own trampoline,
/// with none of the dead child's frames, even after the dead child's object
/// is reused by a suspended greenlet (the death left no resumer behind).
#[test]
fn a_greenlet_resumed_by_a_death_ends_at_its_entry() {
    use std::hash::{BuildHasher, RandomState};
    let a = Greenlet::new(|_| {
        let child = Greenlet::new(|_| dead_child_marker());
        // Main starts the child (so its RESUME is main's, not ours); its
        // death then comes back here.
        let from_child = Greenlet::main().switch(child).downcast::<&str>().unwrap();
        let first = frame_names(&Backtrace::force_capture());
        // Again after main has reused the dead child's object for a greenlet
        // that is now suspended.
        Greenlet::main().switch(from_child);
        let second = frame_names(&Backtrace::force_capture());
        (first, second)
    });
    let child = resumer_marker(&a).downcast::<Greenlet>().unwrap();
    let hasher = RandomState::new();
    let child_id = hasher.hash_one(&child);
    let died = resumer_marker(&child);
    assert_eq!(died.downcast::<&str>().unwrap(), "dead child's result");
    drop(child);
    let reuser = Greenlet::new(|_| {
        reuser_marker();
    });
    let reused = hasher.hash_one(&reuser) == child_id;
    if !reused {
        eprintln!(
            "NOTE: the dead child's object was not reused (no object cache in this build): \
             the second check only sees a dead resumer"
        );
    }
    reuser.switch(());
    assert!(reuser.is_active());
    let (first, second) = a
        .switch(())
        .downcast::<(Vec<String>, Vec<String>)>()
        .unwrap();
    for names in [&first, &second] {
        assert_ends_at_trampoline(names);
        for n in names.iter() {
            assert!(
                !n.contains("dead_child_marker") && !n.contains("reuser_marker"),
                "frame `{n}` of another greenlet:\n  {}",
                names.join("\n  ")
            );
        }
    }
}

#[inline(never)]
fn dead_child_marker() -> &'static str {
    std::hint::black_box("dead child's result")
}

#[inline(never)]
fn reuser_marker() {
    Greenlet::main().switch(());
}

#[inline(never)]
fn first_switch_marker(g: &Greenlet) {
    std::hint::black_box(0x1);
    std::hint::black_box(g.switch(()));
}

#[inline(never)]
fn second_switch_marker(g: &Greenlet) -> Vec<String> {
    std::hint::black_box(0x2);
    std::hint::black_box(g.switch(()).downcast::<Vec<String>>().unwrap())
}

/// B switches to main (YIELD: main's RESUME into it was pending) and main
/// back to B (RESUME): the chain goes to main's second switch, not its first.
#[test]
fn after_a_yield_and_a_resume_the_chain_shows_the_latest_resumer() {
    let b = Greenlet::new(|_| {
        Greenlet::main().switch(());
        frame_names(&Backtrace::force_capture())
    });
    first_switch_marker(&b);
    let names = second_switch_marker(&b);
    assert_chain(&names, &["second_switch_marker"]);
    assert!(
        !names.iter().any(|n| n.contains("first_switch_marker")),
        "{names:?}"
    );
}

#[test]
fn a_backtrace_after_many_switches_is_still_clean() {
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
    assert_chain(&names, &["main_stack_marker"]);
}

/// RUST_BACKTRACE=1 output of a panic inside a greenlet (printed by the
/// panic hook on the greenlet's stack) shows the greenlet's frames down to
/// the trampoline, then the resumer's (the test function that switched in);
/// the panic itself is caught at the greenlet's entry, never unwinds into the
/// resumer's frames, and continues in the parent as an ordinary panic (exit
/// code 101, with the parent's own backtrace not printed again).
#[test]
fn a_panic_backtrace_inside_a_greenlet_goes_on_into_the_resumer() {
    const NAME: &str = "a_panic_backtrace_inside_a_greenlet_goes_on_into_the_resumer";
    if child::in_child() {
        let g = Greenlet::new(|_| -> () { panic!("boom inside a greenlet") });
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panic_resumer_marker(&g)));
        // Raised again here, in the parent, by the switch: the unwind went
        // no further than the greenlet's entry.
        assert!(g.is_dead());
        std::panic::resume_unwind(caught.unwrap_err());
    }
    let out = child::run_child_with(NAME, &[("RUST_BACKTRACE", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "stderr: {stderr}");
    assert!(stderr.contains("boom inside a greenlet"), "{stderr}");
    let start = stderr
        .find("stack backtrace:")
        .expect("no backtrace printed");
    let frames: Vec<String> = stderr[start..]
        .lines()
        .filter_map(|l| {
            let (index, name) = l.trim_start().split_once(": ")?;
            index.parse::<usize>().ok().map(|_| name.trim().to_string())
        })
        .collect();
    // The entry is generic over the closure: nightly's demangler prints its
    // type parameters too.
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("greenlet::greenlet::entry::entry")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("stack backtrace:").count(),
        1,
        "the re-raise in the parent printed a backtrace too:\n{stderr}"
    );
    if CONTINUES {
        let segs = segments(&frames);
        assert!(
            segs.len() == 2 && segs[1].iter().any(|f| f.contains("panic_resumer_marker")),
            "the panic backtrace does not go on into the resumer, the test's switch:\n{stderr}"
        );
    } else {
        assert!(
            frames.last().is_some_and(|n| is_trampoline(n)),
            "the panic backtrace does not end at the trampoline:\n{stderr}"
        );
    }
}

#[inline(never)]
fn panic_resumer_marker(g: &Greenlet) -> Value {
    std::hint::black_box(0x9a1c);
    std::hint::black_box(g.switch(()))
}

/// Called inside a greenlet in the gdb child, as the breakpoint.
#[no_mangle]
#[inline(never)]
pub extern "C" fn greenlet_backtrace_breakpoint() {
    std::hint::black_box(());
}

#[inline(never)]
fn gdb_resumer_marker(g: &Greenlet) {
    std::hint::black_box(0x6db);
    std::hint::black_box(g.switch(()));
}

/// Runs test `name` of this binary as a child under `gdb -batch`, stopped at
/// [`greenlet_backtrace_breakpoint`], and returns what `bt` printed; None
/// (said loudly) where gdb cannot run.
fn gdb_bt_at_breakpoint(name: &str) -> Option<String> {
    if child::emulated() {
        eprintln!("NOTE: GDB CHECK NOT RUN: this test binary runs under emulation and the host gdb cannot debug it");
        return None;
    }
    if cfg!(windows) {
        eprintln!(
            "NOTE: GDB CHECK NOT RUN ON WINDOWS: there is no Windows gdb here, and the host's gdb \
             cannot debug a program under wine; the std::backtrace and frame-pointer checks of \
             this file run there"
        );
        return None;
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
        .args([name, "--exact", "--test-threads=1"])
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
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines()
            .find(|l| l.starts_with('#'))
            .is_some_and(|f| f.contains("greenlet_backtrace_breakpoint")),
        "gdb did not stop at the breakpoint:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in [
        "corrupt stack",
        "Backtrace stopped",
        "previous frame identical",
        "previous frame inner",
        // A frame at pc 0 (a return address of 0 below a signal frame).
        " 0x0000000000000000 in ",
        " 0x00000000 in ",
    ] {
        assert!(!text.contains(bad), "gdb says `{bad}`:\n{text}");
    }
    Some(text)
}

/// The frames of gdb's `bt`, split after the boundary: the trampoline, shown
/// as `<signal handler called>` where its CFI goes on, else by its name.
fn gdb_segments(text: &str) -> Vec<Vec<&str>> {
    let mut out = vec![Vec::new()];
    for f in text.lines().filter(|l| l.starts_with('#')) {
        out.last_mut().unwrap().push(f);
        if f.contains("<signal handler called>")
            || (f.contains("greenlet_") && f.contains("_entry ("))
        {
            out.push(Vec::new());
        }
    }
    if out.last().unwrap().is_empty() {
        out.pop();
    }
    out
}

/// gdb's `bt` at a breakpoint inside a greenlet: its frames down to
/// `greenlet::greenlet::entry::entry`, the boundary (`<signal handler
/// called>`), then the frames of the function that switched in, with no
/// "corrupt stack", "previous frame inner to this frame", "Backtrace
/// stopped" or frame at pc 0 (the resumer's stack may lie below the greenlet's: the signal
/// frame exempts it from gdb's rule that frame addresses rise).
#[test]
fn gdb_bt_inside_a_greenlet_goes_on_into_the_resumer() {
    const NAME: &str = "gdb_bt_inside_a_greenlet_goes_on_into_the_resumer";
    if child::in_child() {
        let g = Greenlet::new(|_| greenlet_backtrace_breakpoint());
        gdb_resumer_marker(&g);
        return;
    }
    let Some(text) = gdb_bt_at_breakpoint(NAME) else {
        return;
    };
    let segs = gdb_segments(&text);
    assert!(
        segs[0]
            .iter()
            .any(|f| f.contains("greenlet::greenlet::entry::entry")),
        "{text}"
    );
    if CONTINUES {
        assert!(
            segs[0].last().unwrap().contains("<signal handler called>"),
            "gdb's backtrace does not mark the boundary:\n{text}"
        );
        assert!(
            segs.len() == 2
                && segs[1].iter().any(|f| f.contains("gdb_resumer_marker"))
                // Inlined into the harness's call in a release build.
                && (!cfg!(debug_assertions) || segs[1].iter().any(|f| f.contains(NAME))),
            "gdb's backtrace does not go on into the resumer:\n{text}"
        );
    } else {
        assert_eq!(
            segs.len(),
            1,
            "gdb's backtrace goes past the trampoline:\n{text}"
        );
    }
}

/// gdb's `bt` in a greenlet resumed by a death (its child, started by main,
/// returned into it): its frames, then the boundary, and nothing more; none
/// of the dead child's frames, no frame at address 0.
#[test]
fn gdb_bt_in_a_greenlet_resumed_by_a_death_ends_at_its_entry() {
    const NAME: &str = "gdb_bt_in_a_greenlet_resumed_by_a_death_ends_at_its_entry";
    if child::in_child() {
        let a = Greenlet::new(|_| {
            let child = Greenlet::new(|_| dead_child_marker());
            Greenlet::main().switch(child);
            greenlet_backtrace_breakpoint();
        });
        let child = resumer_marker(&a).downcast::<Greenlet>().unwrap();
        resumer_marker(&child);
        return;
    }
    let Some(text) = gdb_bt_at_breakpoint(NAME) else {
        return;
    };
    let segs = gdb_segments(&text);
    assert!(
        segs[0]
            .iter()
            .any(|f| f.contains("greenlet::greenlet::entry::entry")),
        "{text}"
    );
    if CONTINUES {
        assert!(
            segs.len() == 2
                && segs[0].last().unwrap().contains("<signal handler called>")
                && segs[1].len() == 1
                && segs[1][0].contains("_entry_no_resumer ("),
            "gdb's backtrace does not end at the boundary and its chain-end mark:\n{text}"
        );
    } else {
        assert_eq!(
            segs.len(),
            1,
            "gdb's backtrace goes past the trampoline:\n{text}"
        );
    }
    assert!(!text.contains("dead_child_marker"), "{text}");
}

/// A greenlet resumed through YIELD keeps its older resumer (docs/backtraces.md),
/// which may have died meanwhile and had its object released. Here X's
/// resumer G dies (into Y, which then yields to X), G's last handles go, and
/// 64 greenlets are made and released on top of G's object, so that a
/// bounded object cache would have handed G's memory back to the allocator.
/// X's backtrace must still end cleanly at its entry: the trampoline's unwind
/// information reads G's object, which stays a greenlet object for the
/// thread's lifetime (`spare.rs`) and now says it is not suspended. Under
/// Valgrind (test.sh) a read of freed memory by the unwinder fails the run.
#[test]
fn a_dead_resumer_is_read_as_a_greenlet_object_and_ends_the_chain() {
    use std::cell::RefCell;
    use std::rc::Rc;
    type Cell = Rc<RefCell<Option<Greenlet>>>;
    let (s_cell, x_cell, y_cell): (Cell, Cell, Cell) = Default::default();
    let g_weak: Rc<RefCell<Option<greenlet::WeakGreenlet>>> = Default::default();
    let x = Greenlet::new({
        let y_cell = y_cell.clone();
        move |_| {
            let y = y_cell.borrow().clone().unwrap();
            y.switch(()); // X -> Y by RESUME; back by Y's YIELD
            frame_names(&Backtrace::force_capture())
        }
    });
    let y = Greenlet::new({
        let (s_cell, x_cell, g_weak) = (s_cell.clone(), x_cell.clone(), g_weak.clone());
        move |_| {
            let g = g_weak.borrow().as_ref().unwrap().upgrade().unwrap();
            // Y -> G by RESUME; G returns from its switch to X and dies into
            // its parent, us.
            assert_eq!(g.switch(()).downcast::<&str>().unwrap(), "g done");
            drop(g);
            // S still holds G in its pending switch: let it finish (it dies
            // into us too), and G has no handle left.
            let s = s_cell.borrow_mut().take().unwrap();
            s.switch(());
            drop(s);
            // And no weak one either: a weak handle keeps the allocation.
            let weak = g_weak.borrow_mut().take().unwrap();
            assert!(weak.upgrade().is_none());
            drop(weak);
            let many: Vec<Greenlet> = (0..64).map(|_| Greenlet::new(|_| ())).collect();
            drop(many.into_iter().rev().collect::<Vec<_>>());
            let x = x_cell.borrow().clone().unwrap();
            x.switch(()) // Y -> X by YIELD: X's resumer is still the dead G
        }
    });
    let s = Greenlet::new({
        let (x_cell, y, g_weak) = (x_cell.clone(), y.clone(), g_weak.clone());
        move |_| {
            let g = Greenlet::new(move |_| {
                let x = x_cell.borrow().clone().unwrap();
                x.switch(()); // G -> X by RESUME: G becomes X's resumer
                "g done"
            });
            g.set_parent(&y).unwrap();
            *g_weak.borrow_mut() = Some(g.downgrade());
            g.switch(());
        }
    });
    s.set_parent(&y).unwrap();
    *x_cell.borrow_mut() = Some(x.clone());
    *y_cell.borrow_mut() = Some(y.clone());
    *s_cell.borrow_mut() = Some(s.clone());
    let s_started = s.clone();
    drop(s);
    let names = s_started.switch(()).downcast::<Vec<String>>().unwrap();
    assert!(x.is_dead());
    assert_ends_at_trampoline(&names);
}
