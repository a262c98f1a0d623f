//! The debugger view (SPEC §10): this test binary, re-run as a child under
//! `gdb -batch`, makes five greenlets besides main (two suspended at known
//! functions, one unstarted, one dead, one running) and stops at a breakpoint
//! in the running one. The test checks what the crate's gdb script
//! (gdb/greenlet_gdb.py, embedded by `debugger_visualizer` in builds with
//! debug info) shows: `info greenlets`, `greenlet ID bt`, `greenlet ID info
//! locals`, `greenlet apply all bt`, the pretty-printers and `bt` in the
//! running greenlet; then the same on a core dump of the child (gcore).
//! docs/backtraces.md shows a transcript.

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Output};

use greenlet::{Greenlet, WeakGreenlet};

#[path = "support/child.rs"]
mod child;
#[path = "support/continuation.rs"]
mod continuation;

/// The breakpoint, called in the running greenlet.
#[no_mangle]
#[inline(never)]
pub extern "C" fn greenlet_debugger_breakpoint() {
    if std::env::var_os("GREENLET_DEBUGGER_CRASH").is_some() {
        crash_here();
    }
    black_box(());
}

/// Dies of a signal whose default action dumps core (x86: an illegal
/// instruction; elsewhere abort, in libc's frames). Inlined: with debug info
/// the core's innermost frame is then an inlined one, which the script must
/// look past.
#[inline(always)]
fn crash_here() {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    // SAFETY: ud2 raises SIGILL, which ends the process (nothing handles it).
    unsafe {
        std::arch::asm!("ud2")
    };
    std::process::abort();
}

/// Where greenlet 2 waits, with a local the test looks for.
#[inline(never)]
fn suspended_at_alpha() {
    let alpha_local: u64 = black_box(4242);
    Greenlet::main().switch(());
    black_box(&alpha_local);
}

/// Where greenlet 3 waits.
#[inline(never)]
fn suspended_at_beta() {
    let beta_local: u32 = black_box(77);
    Greenlet::main().switch(());
    black_box(&beta_local);
}

/// The body of the running greenlet (6); the handles are for `print`.
#[inline(never)]
fn running_greenlet(handle: &Greenlet, weak: &WeakGreenlet) {
    black_box((handle, weak));
    greenlet_debugger_breakpoint();
    black_box((handle, weak));
}

/// The main greenlet's side (1): it waits here while 6 runs.
#[inline(never)]
fn scenario_main() {
    let alpha = Greenlet::new(|_| suspended_at_alpha()); // 2
    alpha.switch(());
    let beta = Greenlet::new(|_| suspended_at_beta()); // 3
    beta.switch(());
    let unstarted = Greenlet::new(|_| ()); // 4
    let dead = Greenlet::new(|_| 5); // 5
    dead.switch(());
    assert!(dead.is_dead());
    let (handle, weak) = (alpha.clone(), beta.downgrade());
    let running = Greenlet::new(move |_| running_greenlet(&handle, &weak)); // 6
    running.switch(());
    black_box((&alpha, &beta, &unstarted, &dead));
}

/// One `info greenlets` row: (running mark, id, state, parent, function).
#[derive(Debug)]
struct Row {
    current: bool,
    id: u64,
    state: String,
    parent: String,
    function: String,
}

fn info_greenlets_rows(text: &str) -> Vec<Row> {
    let start = text
        .find("Id   State")
        .unwrap_or_else(|| panic!("no `info greenlets` table in gdb's output:\n{text}"));
    text[start..]
        .lines()
        .skip(1)
        .map_while(|line| {
            let current = line.starts_with('*');
            let mut words = line[1..].split_whitespace();
            let id = words.next()?.parse().ok()?;
            let state = words.next()?.to_string();
            let parent = words.next()?.to_string();
            // "(thread stack)" for a main greenlet: two words.
            if words.next()?.starts_with("(thread") {
                words.next()?;
            }
            let function = words.collect::<Vec<_>>().join(" ");
            Some(Row {
                current,
                id,
                state,
                parent,
                function,
            })
        })
        .collect()
}

/// The text between `echo`ed markers `@@name@@` and the next marker.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let marker = format!("@@{name}@@");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("marker {marker} missing from gdb's output:\n{text}"))
        + marker.len();
    let end = text[start..].find("@@").map_or(text.len(), |e| start + e);
    &text[start..end]
}

/// Frame lines (`#N ...`) of a section.
fn frames(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#'))
        .collect()
}

/// Runs `program` (gdb, or a shell that starts it) with `args` in `dir`;
/// None (with a loud note) if it cannot be started and GREENLET_REQUIRE_GDB
/// is not set.
fn run(program: &str, args: &[String], dir: &Path, envs: &[(&str, &str)]) -> Option<Output> {
    if Command::new("gdb").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("GREENLET_REQUIRE_GDB").is_none(),
            "GREENLET_REQUIRE_GDB is set but gdb cannot be started"
        );
        eprintln!("NOTE: GDB CHECKS NOT RUN: cannot start gdb; install it (apt-get install gdb) to run them");
        return None;
    }
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GREENLET_TEST_CHILD", "1")
        .envs(envs.iter().copied())
        // A preloaded tool runtime (Valgrind's, ASan's) is for this process.
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Some(out)
}

/// The commands whose output the checks read, each after a marker.
fn inspection_commands() -> Vec<String> {
    let mut args = Vec::new();
    for (marker, command) in [
        ("info", "info greenlets"),
        ("info_all", "info greenlets all"),
        ("alpha_bt", "greenlet 2 bt"),
        ("alpha_locals", "greenlet 2 info locals"),
        ("beta_frame", "greenlet 3 frame 1"),
        ("apply_all", "greenlet apply all bt"),
        ("unstarted", "greenlet 4 bt"),
        ("print", "frame function debugger::running_greenlet"),
        ("print_handle", "print *handle"),
        ("print_weak", "print *weak"),
        ("running_bt", "bt"),
    ] {
        args.push("-ex".into());
        args.push(format!("echo @@{marker}@@\\n"));
        args.push("-ex".into());
        args.push(command.into());
    }
    args.push("-ex".into());
    args.push("echo @@end@@\\n".into());
    args
}

/// How gdb gets the script: auto-loaded from the binary where it was built
/// with debug info (the embedding is part of what is tested), else sourced.
fn script_args(exe: &Path) -> Vec<String> {
    if cfg!(debug_assertions) {
        vec![
            "-iex".into(),
            format!("add-auto-load-safe-path {}", exe.display()),
        ]
    } else {
        eprintln!("NOTE: a build without debug info embeds no gdb script: it is sourced here, and `info locals` and the pretty-printers (which need debug info) are not checked");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("gdb/greenlet_gdb.py");
        vec!["-ex".into(), format!("source {}", script.display())]
    }
}

fn check(text: &str, what: &str) {
    let all = |needle: &str, part: &str| {
        assert!(
            section(text, part).contains(needle),
            "{what}: `{needle}` missing from the `{part}` output:\n{}\n--- whole output:\n{text}",
            section(text, part)
        )
    };
    let rows = info_greenlets_rows(section(text, "info"));
    let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 6],
        "{what}: the live greenlets, the dead one (5) left out:\n{text}"
    );
    let row = |id: u64| rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        row(1).state,
        "suspended",
        "{what}: main waits in its switch"
    );
    assert_eq!(row(1).parent, "-", "{what}: main has no parent");
    assert!(
        row(1).function.contains("scenario_main"),
        "{what}: {rows:?}"
    );
    assert_eq!(row(2).state, "suspended", "{what}: {rows:?}");
    assert!(
        row(2).function.contains("suspended_at_alpha"),
        "{what}: {rows:?}"
    );
    assert_eq!(row(3).state, "suspended", "{what}: {rows:?}");
    assert!(
        row(3).function.contains("suspended_at_beta"),
        "{what}: {rows:?}"
    );
    assert_eq!(row(4).state, "unstarted", "{what}: {rows:?}");
    assert_eq!(row(6).state, "running", "{what}: {rows:?}");
    assert!(
        row(6).function.contains("greenlet_debugger_breakpoint")
            || row(6).function.contains("crash_here"),
        "{what}: {rows:?}"
    );
    for r in &rows {
        assert_eq!(
            r.current,
            r.id == 6,
            "{what}: only 6 is marked `*`: {rows:?}"
        );
        if r.id != 1 {
            assert_eq!(r.parent, "1", "{what}: {rows:?}");
        }
    }
    let all_rows = info_greenlets_rows(section(text, "info_all"));
    assert!(
        all_rows.iter().any(|r| r.id == 5 && r.state == "dead"),
        "{what}: `info greenlets all` lists the dead one:\n{text}"
    );

    // greenlet 2 bt: its own frames, from where it switched down to its
    // entry, and none of the running greenlet's.
    let alpha = frames(section(text, "alpha_bt"));
    assert!(
        alpha.first().is_some_and(|f| !f.starts_with("#0 ")),
        "{what}: the thread's own innermost frame is hidden:\n{text}"
    );
    let position = |frames: &[&str], needle: &str| frames.iter().position(|f| f.contains(needle));
    let at = position(&alpha, "suspended_at_alpha")
        .unwrap_or_else(|| panic!("{what}: no suspended_at_alpha frame:\n{text}"));
    let entry = position(&alpha, "_entry").unwrap_or_else(|| {
        panic!("{what}: greenlet 2's backtrace does not reach its entry:\n{text}")
    });
    assert!(at < entry, "{what}:\n{text}");
    assert!(
        alpha.last().unwrap().contains("greenlet_") && alpha.last().unwrap().contains("_entry"),
        "{what}: greenlet 2's backtrace ends at the trampoline:\n{text}"
    );
    for bad in [
        "running_greenlet",
        "greenlet_debugger_breakpoint",
        // main's own frame (the closures are 2's), with debug info and
        // without (then the symbol's hash follows the name)
        "scenario_main (",
        "scenario_main::h",
    ] {
        assert!(
            position(&alpha, bad).is_none(),
            "{what}: `{bad}` is not greenlet 2's:\n{text}"
        );
    }
    for bad in ["corrupt stack", "Backtrace stopped"] {
        assert!(!text.contains(bad), "{what}: gdb says `{bad}`:\n{text}");
    }
    if cfg!(debug_assertions) {
        all("alpha_local = 4242", "alpha_locals");
    }
    all("#1 ", "beta_frame");
    // apply all: each suspended greenlet's frames, under its heading.
    let apply = section(text, "apply_all");
    for heading in ["Greenlet 1 ", "Greenlet 2 ", "Greenlet 3 "] {
        assert!(apply.contains(heading), "{what}: {heading} in:\n{apply}");
    }
    assert!(!apply.contains("Greenlet 4 ") && !apply.contains("Greenlet 6 "));
    for function in ["suspended_at_alpha", "suspended_at_beta"] {
        assert!(apply.contains(function), "{what}: {function} in:\n{apply}");
    }
    assert!(
        apply.contains("scenario_main (") || apply.contains("scenario_main::h"),
        "{what}: main's frame in:\n{apply}"
    );
    assert!(
        text.contains("greenlet 4 is unstarted"),
        "{what}: a greenlet that has not started has no frames to show:\n{text}"
    );
    // Pretty-printing needs the types, from debug info.
    if cfg!(debug_assertions) {
        all("Greenlet 2 (suspended, parent 1)", "print_handle");
        all("WeakGreenlet 3 (suspended, parent 1)", "print_weak");
    }
    // bt in the running greenlet: its frames, ending at its trampoline.
    let running = frames(section(text, "running_bt"));
    assert!(
        running.first().is_some_and(|f| f.contains("greenlet_debugger_breakpoint")
            || f.contains("crash_here")),
        "{what}:\n{text}"
    );
    assert!(
        position(&running, "greenlet_debugger_breakpoint").is_some(),
        "{what}:\n{text}"
    );
    assert!(
        position(&running, "running_greenlet").is_some(),
        "{what}:\n{text}"
    );
    // Then, where the trampoline's CFI goes on (docs/backtraces.md), the
    // boundary and main's frames, suspended in its switch to 6; elsewhere the
    // trampoline ends it.
    if continuation::CONTINUES {
        let boundary = position(&running, "<signal handler called>");
        assert!(
            boundary.is_some_and(|b| position(&running, "running_greenlet").unwrap() < b
                && running[b + 1..]
                    .iter()
                    .any(|f| f.contains("scenario_main (") || f.contains("scenario_main::h"))),
            "{what}: goes on, past the boundary, into main's frames:\n{text}"
        );
        for bad in [
            "previous frame inner",
            "Backtrace stopped",
            " 0x0000000000000000 in ",
            " 0x00000000 in ",
        ] {
            assert!(!text.contains(bad), "{what}: gdb says `{bad}`:\n{text}");
        }
    } else {
        assert!(
            running.last().unwrap().contains("_entry"),
            "{what}: ends at the trampoline:\n{text}"
        );
    }
}

/// How the live session ends, leaving a core dump behind.
#[derive(Clone, Copy, PartialEq)]
enum Dump {
    /// The child run again on its own, dying of SIGILL at the breakpoint's
    /// place: the kernel writes the core (RLIMIT_CORE raised, core_pattern a
    /// plain file name, in the child's working directory). (Not a signal
    /// sent under gdb: gdb races with the dying threads, "Couldn't get
    /// registers: No such process", and kills the child in mid-dump.)
    Kernel,
    /// gdb's `generate-core-file` (gcore), then the child goes on.
    Gcore,
}

/// Runs the scenario (test `name` of this binary, as a child) under gdb,
/// checks the live process, dumps its core, and checks the core.
fn live_then_core(name: &str, dump: Dump, envs: &[(&str, &str)]) {
    if child::emulated() {
        eprintln!("NOTE: GDB CHECKS NOT RUN: this test binary runs under emulation and the host gdb cannot debug it");
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        // src/arch/debug_frame.rs describes x86_64's saved frame only so
        // far: elsewhere the script lists greenlets but cannot unwind them.
        eprintln!("NOTE: GDB CHECKS NOT RUN: the saved frame of this CPU is not described to debuggers yet (src/arch/debug_frame.rs)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("greenlet-debugger-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let kernel_dumps_here = !pattern.starts_with('|');
    let mut args: Vec<String> = vec!["-nx".into(), "-batch".into()];
    args.extend(script_args(&exe));
    args.extend([
        "-ex".into(),
        "break greenlet_debugger_breakpoint".into(),
        "-ex".into(),
        "run".into(),
    ]);
    args.extend(inspection_commands());
    let gcore = dir.join("gcore.core");
    match dump {
        Dump::Kernel => args.extend(["-ex".into(), "kill".into()]),
        Dump::Gcore => args.extend([
            "-ex".into(),
            format!("generate-core-file {}", gcore.display()),
            "-ex".into(),
            "continue".into(),
        ]),
    }
    args.extend([
        "--args".into(),
        exe.display().to_string(),
        name.into(),
        "--exact".into(),
        "--test-threads=1".into(),
    ]);
    let Some(out) = run("gdb", &args, &dir, envs) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let whole = format!("{text}\n--- stderr:\n{stderr}");
    assert!(
        text.contains("greenlet_debugger_breakpoint"),
        "gdb did not stop at the breakpoint:\n{whole}"
    );
    assert!(
        !whole.contains("Python Exception"),
        "the script raised:\n{whole}"
    );
    check(&whole, "live process");
    let core = match dump {
        Dump::Gcore => {
            assert!(
                text.contains("exited normally"),
                "the child goes on and exits normally after the inspection:\n{whole}"
            );
            gcore
        }
        Dump::Kernel => {
            // The shell raises the core size limit for the child.
            let crashed = Command::new("sh")
                .args(["-c", "ulimit -c unlimited 2>/dev/null; exec \"$0\" \"$@\""])
                .arg(&exe)
                .args([name, "--exact", "--test-threads=1"])
                .current_dir(&dir)
                .env("GREENLET_TEST_CHILD", "1")
                .env("GREENLET_DEBUGGER_CRASH", "1")
                .envs(envs.iter().copied())
                .env_remove("LD_PRELOAD")
                .output()
                .expect("the child runs");
            assert!(
                crashed.status.code().is_none(),
                "the child was to die of a signal: {crashed:?}"
            );
            let found = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("core"))
                });
            match found {
                Some(core) => core,
                None if !kernel_dumps_here => {
                    eprintln!("NOTE: KERNEL CORE DUMP CHECK NOT RUN: core_pattern pipes cores to {pattern:?}");
                    let _ = std::fs::remove_dir_all(&dir);
                    return;
                }
                None => panic!(
                    "the kernel wrote no core file in {} (core_pattern {pattern:?}; is the hard core size limit 0?): {crashed:?}",
                    dir.display()
                ),
            }
        }
    };
    assert!(core.exists(), "no core file:\n{whole}");
    let mut args: Vec<String> = vec!["-nx".into(), "-batch".into()];
    args.extend(script_args(&exe));
    args.extend([exe.display().to_string(), core.display().to_string()]);
    // The core's thread stopped in the breakpoint, frame 0, as the live one.
    args.extend(inspection_commands());
    let out = run("gdb", &args, &dir, envs);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(out) = out else { return };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let whole = format!(
        "{text}\n--- stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !whole.contains("Python Exception"),
        "the script raised:\n{whole}"
    );
    check(&whole, "core dump");
}

/// Guard regions (the default where the kernel has them), a kernel core
/// dump. (gcore cannot dump the shared mappings that hold guard regions: its
/// read of a guard fails and it leaves the whole mapping out.)
#[test]
fn gdb_shows_the_greenlets_of_a_live_process_and_of_its_kernel_core_dump() {
    const NAME: &str = "gdb_shows_the_greenlets_of_a_live_process_and_of_its_kernel_core_dump";
    if child::in_child() {
        scenario_main();
        return;
    }
    live_then_core(NAME, Dump::Kernel, &[]);
}

/// Guard pages (one mapping per stack), a gcore dump.
#[test]
fn gdb_shows_the_greenlets_of_a_live_process_and_of_its_gcore_dump() {
    const NAME: &str = "gdb_shows_the_greenlets_of_a_live_process_and_of_its_gcore_dump";
    if child::in_child() {
        scenario_main();
        return;
    }
    live_then_core(NAME, Dump::Gcore, &[("GREENLET_GUARD", "mprotect")]);
}

/// Without the crate's symbol the script does nothing: its commands say
/// there is nothing to show, and gdb's own commands are unchanged.
#[test]
fn the_script_does_nothing_in_a_program_without_greenlets() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("gdb/greenlet_gdb.py");
    let Some(out) = run(
        "gdb",
        &[
            "-nx".into(),
            "-batch".into(),
            "-ex".into(),
            format!("source {}", script.display()),
            "-ex".into(),
            "info greenlets".into(),
            "-ex".into(),
            "echo @@after@@\\n".into(),
            "/bin/true".into(),
        ],
        &std::env::temp_dir(),
        &[],
    ) else {
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no greenlet_0_1_0_debug symbol"), "{text}");
    assert!(!text.contains("Python Exception"), "{text}");
}

/// Busy for a while, in a greenlet: what `perf` should see.
#[inline(never)]
fn spin_in_greenlet() -> u64 {
    let mut x = 1u64;
    for _ in 0..100_000_000u64 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

/// The side that starts the busy greenlet, as the resumer.
#[inline(never)]
fn perf_resumer_side(g: &Greenlet) {
    black_box(g.switch(()));
}

/// `perf record -e cpu-clock --call-graph fp` of a CPU-bound greenlet: its
/// samples' call chains, walked by frame pointers, go from the busy function
/// through the closure down to the greenlet's entry, and stop there (the
/// trampoline's zero frame pointer), without running onto another stack.
#[test]
fn perf_frame_pointer_call_chains_of_a_greenlet_end_at_its_entry() {
    const NAME: &str = "perf_frame_pointer_call_chains_of_a_greenlet_end_at_its_entry";
    if child::in_child() {
        let g = Greenlet::new(|_| spin_in_greenlet());
        perf_resumer_side(&g);
        return;
    }
    if child::emulated() {
        eprintln!("NOTE: PERF CHECK NOT RUN: this test binary runs under emulation");
        return;
    }
    let dir = std::env::temp_dir();
    let data = dir.join(format!("greenlet-perf-{}.data", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let record = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "--call-graph",
            "fp",
            "-o",
        ])
        .arg(&data)
        .arg("--")
        .arg(&exe)
        .args([NAME, "--exact", "--test-threads=1"])
        .env("GREENLET_TEST_CHILD", "1")
        .env_remove("LD_PRELOAD")
        .output();
    let out = match record {
        Ok(out) if out.status.success() => out,
        other => {
            eprintln!("NOTE: PERF CHECK NOT RUN: `perf record` cannot run here ({other:?}); install linux-perf and allow perf events (perf_event_paranoid) to run it");
            return;
        }
    };
    drop(out);
    let script = Command::new("perf")
        .args(["script", "-F", "ip,sym", "-i"])
        .arg(&data)
        .output()
        .expect("perf script");
    let _ = std::fs::remove_file(&data);
    let text = String::from_utf8_lossy(&script.stdout);
    // Samples are separated by blank lines; each lists its chain innermost first.
    let chains: Vec<Vec<&str>> = text
        .split("\n\n")
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
        .filter(|c: &Vec<&str>| c.iter().any(|l| l.contains("spin_in_greenlet")))
        .collect();
    assert!(
        chains.len() >= 10,
        "perf saw too few samples in spin_in_greenlet ({}):\n{text}",
        chains.len()
    );
    for chain in &chains {
        // Innermost first: nothing after the trampoline, and never the
        // frames of the side that switched in (the walk stays on the
        // greenlet's stack).
        if let Some(at) = chain
            .iter()
            .position(|f| f.contains("greenlet_0_1_0_entry"))
        {
            assert_eq!(at, chain.len() - 1, "frames past the trampoline: {chain:?}");
        }
        assert!(
            !chain.iter().any(|f| f.contains("perf_resumer_side")),
            "a frame-pointer walk ran onto the resumer's stack: {chain:?}"
        );
    }
    if chains.iter().all(|c| c.len() == 1) {
        eprintln!(
            "NOTE: this build omits frame pointers, so every chain is its leaf alone ({} samples); \
             with RUSTFLAGS=-Cforce-frame-pointers=yes they run spin_in_greenlet, entry, \
             greenlet_0_1_0_entry (docs/backtraces.md, perf)",
            chains.len()
        );
    }
}
