//! Resident memory per live suspended greenlet, guarded and slab stacks, with
//! corosensei alongside; and the failure mode when memory mappings run out.
//! Not a timing benchmark: it prints a table (docs/benchmarks.md).
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

/// Bytes of resident memory per greenlet with `n` suspended at once.
fn greenlets_per_rss(n: usize, kind: StackKind) -> (f64, usize) {
    let before = rss();
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
    let maps = mappings();
    for g in &live {
        g.switch(()); // finish
    }
    drop(live);
    greenlet::stack::trim_pool();
    (per, maps)
}

fn coroutines_per_rss(n: usize) -> f64 {
    let before = rss();
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
    drop(live);
    per
}

/// Runs one measurement in a fresh child process (so no run inherits pages
/// touched by an earlier one) and returns what it printed.
fn in_child(what: &str, n: usize) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args(["--measure", what, &n.to_string()])
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
        match args[i + 1].as_str() {
            "guarded" => {
                let (per, maps) = greenlets_per_rss(n, StackKind::Guarded);
                println!("{per:.0} B/greenlet ({maps} mappings)");
            }
            "slab" => {
                let (per, maps) = greenlets_per_rss(n, StackKind::Slab);
                println!("{per:.0} B/greenlet ({maps} mappings)");
            }
            _ => println!("{:.0} B/coroutine", coroutines_per_rss(n)),
        }
        return;
    }
    println!("| live suspended | greenlet, guarded | greenlet, slab | corosensei (1 MiB default stack) |");
    println!("| --- | --- | --- | --- |");
    for n in [10_000usize, 30_000] {
        let cells: Vec<String> = ["guarded", "slab", "corosensei"]
            .iter()
            .map(|w| in_child(w, n))
            .collect();
        println!("| {n} | {} |", cells.join(" | "));
    }

    // Out of mappings: guarded stacks cost two mappings each, so spawning
    // without end must stop with a clear io::Error, not a crash.
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
            println!("no mapping limit reached after 1,000,000 guarded stacks");
            return;
        }
    };
    println!(
        "\nguarded stacks stop after {} live greenlets: {err}",
        live.len()
    );
}
