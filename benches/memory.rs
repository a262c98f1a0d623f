//! Resident memory and kernel mappings per live suspended greenlet, on both
//! guard paths (guard regions, and one mapping per stack with a guard page,
//! forced with `GREENLET_GUARD=mprotect`), with corosensei alongside; and what
//! happens on the fallback when mappings run out. Not a timing benchmark: it
//! prints a table (docs/benchmarks.md, docs/scale.md).
//!
//! Run: `cargo bench --bench memory`

use greenlet::{Greenlet, StackKind};

/// Resident set size of this process, in bytes (from /proc/self/statm).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * greenlet::stack::page_size()
}

/// Number of memory mappings of this process.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// Bytes of resident memory per greenlet and mappings added, with `n`
/// suspended at once.
fn greenlets_per_rss(n: usize, kind: StackKind) -> (f64, usize) {
    let (before, maps_before) = (rss(), mappings());
    let main = Greenlet::current();
    let live: Vec<Greenlet> = (0..n)
        .map(|i| {
            let main = main.clone();
            let g = Greenlet::builder()
                .stack_kind(kind)
                .spawn(move |_| {
                    main.switch(i);
                })
                .expect("spawn");
            g.switch(()); // started, a little stack used, suspended
            g
        })
        .collect();
    let per = (rss() - before) as f64 / n as f64;
    let maps = mappings() - maps_before;
    for g in &live {
        g.switch(()); // finish
    }
    drop(live);
    greenlet::stack::trim_pool();
    (per, maps)
}

fn coroutines_per_rss(n: usize) -> (f64, usize) {
    let (before, maps_before) = (rss(), mappings());
    let live: Vec<_> = (0..n)
        .map(|i| {
            let mut co =
                corosensei::Coroutine::new(move |y: &corosensei::Yielder<(), usize>, ()| {
                    y.suspend(i);
                });
            co.resume(());
            co
        })
        .collect();
    let per = (rss() - before) as f64 / n as f64;
    let maps = mappings() - maps_before;
    drop(live);
    (per, maps)
}

/// Spawns 16 KiB guarded greenlets until spawning fails, then checks that the
/// program can still allocate and unwind a panic (SPEC §6: the last mappings
/// are left to the rest of the program).
fn until_out_of_mappings() {
    let main = Greenlet::current();
    let mut live = Vec::new();
    let err = loop {
        let main = main.clone();
        match Greenlet::builder()
            .stack_size(16 << 10)
            .spawn(move |_| main.switch(()))
        {
            Ok(g) => live.push(g),
            Err(e) => break e,
        }
        if live.len() > 1_000_000 {
            println!("no mapping limit reached after 1,000,000 stacks");
            return;
        }
    };
    let big: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 20]).collect();
    let caught = std::panic::catch_unwind(|| panic!("still room to panic"));
    println!(
        "stopped after {} live greenlets ({} mappings): {err}; afterwards 64 MiB of new \
         allocations and a caught panic ({})",
        live.len(),
        mappings(),
        if caught.is_err() && big.len() == 64 {
            "ok"
        } else {
            "FAILED"
        }
    );
}

/// Runs one measurement in a fresh child process (so no run inherits pages
/// touched by an earlier one) and returns what it printed.
fn in_child(what: &str, n: usize, guard: &str) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args(["--measure", what, &n.to_string()])
        .env("GREENLET_GUARD", guard)
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` ask for the list
    }
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let n: usize = args[i + 2].parse().unwrap();
        let (per, maps) = match args[i + 1].as_str() {
            "default" => greenlets_per_rss(n, StackKind::Guarded),
            "slab" => greenlets_per_rss(n, StackKind::Slab),
            "limit" => return until_out_of_mappings(),
            _ => coroutines_per_rss(n),
        };
        println!("{per:.0} B, +{maps} mappings");
        return;
    }
    println!("guard mode here: {:?}", greenlet::stack::guard_mode());
    println!();
    println!(
        "| live suspended | greenlet 1 MiB, guard regions | greenlet 64 KiB slab, guard regions \
         | greenlet 1 MiB, guard pages | corosensei (1 MiB default stack) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for n in [10_000usize, 30_000] {
        let cells = [
            in_child("default", n, "auto"),
            in_child("slab", n, "auto"),
            in_child("default", n, "mprotect"),
            in_child("corosensei", n, "auto"),
        ];
        println!("| {n} | {} |", cells.join(" | "));
    }
    println!();
    println!(
        "guard pages (GREENLET_GUARD=mprotect): {}",
        in_child("limit", 0, "mprotect")
    );
}
