//! A million live, suspended greenlets in one process, on slab stacks.
//!
//! Guarded stacks (the default) cost two kernel memory mappings each, and
//! `vm.max_map_count` (65530 by default) caps a process near 32k of them. Slab
//! stacks (`StackKind::Slab`) are carved out of 64 MiB chunks, so a million
//! need a few hundred mappings and cost about a page of memory each.
//!
//! ```text
//! cargo run --release --example million            # 1,000,000 greenlets
//! cargo run --release --example million -- 20000   # or any other count
//! GREENLET_COUNT=20000 cargo run --example million # same, through the environment
//! ```
//!
//! Every greenlet is started and pauses in a switch back to main, holding a
//! value on its own stack; with all of them alive at once the example prints
//! the resident memory per greenlet. Then it resumes each once (each pauses
//! again: a round trip through a million cold stacks), then once more, when
//! each finishes, and the results are checked. Last, the cost of a switch
//! between two hot greenlets.
//!
//! `GREENLET_STACK_KIND=guarded` runs the same with guarded stacks, for
//! comparison (expect it to fail near 32k greenlets: `vm.max_map_count`).
//! `GREENLET_STACK_SIZE=<bytes>` sets the stack size.

use std::time::Instant;

use greenlet::{stack, Greenlet, StackKind};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("GREENLET_COUNT").ok())
        .map(|s| s.parse().expect("the count must be a whole number"))
        .unwrap_or(1_000_000);
    let stack_size = std::env::var("GREENLET_STACK_SIZE")
        .ok()
        .map(|s| {
            s.parse()
                .expect("GREENLET_STACK_SIZE must be a number of bytes")
        })
        .unwrap_or(stack::DEFAULT_SLAB_STACK_SIZE);
    let kind = match std::env::var("GREENLET_STACK_KIND").as_deref() {
        Ok("guarded") => StackKind::Guarded,
        Ok("slab") | Err(_) => StackKind::Slab,
        Ok(other) => panic!("GREENLET_STACK_KIND must be slab or guarded, not {other:?}"),
    };

    let main = Greenlet::main();
    let rss_before = resident_bytes();
    let maps_before = mappings();
    let started = Instant::now();
    let mut greenlets = Vec::with_capacity(count);
    for i in 0..count {
        let g = Greenlet::builder()
            .stack_kind(kind)
            .stack_size(stack_size)
            .spawn(move |_| {
                // Lives on this greenlet's stack while it is suspended.
                let mine = [i as u64; 4];
                Greenlet::main().switch(());
                let back: u64 = Greenlet::main().switch(()).downcast().unwrap();
                std::hint::black_box(mine).iter().sum::<u64>() + back
            })
            .unwrap_or_else(|e| {
                // Not a panic: with the process out of mappings, even printing
                // a panic's backtrace may fail.
                eprintln!("greenlet {i} of {count} cannot be created: {e}");
                std::process::exit(1)
            });
        g.switch(());
        greenlets.push(g);
    }
    let create_time = started.elapsed();
    let rss_alive = resident_bytes();
    let maps_alive = mappings();
    let alive = greenlets.iter().filter(|g| g.is_active()).count();
    assert_eq!(alive, count, "every greenlet is alive and suspended");
    assert!(main.is_current());

    let per_greenlet = (rss_alive.saturating_sub(rss_before)) as f64 / count.max(1) as f64;
    let slabs = stack::slab_stats();
    println!("{count} live suspended greenlets on {kind:?} stacks of {stack_size} bytes");
    println!(
        "  created and started in {:.2?} ({:.0} ns each)",
        create_time,
        create_time.as_nanos() as f64 / count.max(1) as f64
    );
    println!(
        "  resident memory: {:.1} MiB before, {:.1} MiB with all alive: {:.0} bytes ({:.2} KiB) per greenlet",
        mib(rss_before),
        mib(rss_alive),
        per_greenlet,
        per_greenlet / 1024.0
    );
    println!(
        "  memory mappings: {maps_before} before, {maps_alive} with all alive ({} slab chunks)",
        slabs.chunks
    );

    let round = Instant::now();
    for g in &greenlets {
        g.switch(());
    }
    let round_time = round.elapsed();
    println!(
        "  resumed each once, each paused again, in {:.2?} ({:.0} ns per switch, cold)",
        round_time,
        round_time.as_nanos() as f64 / (2 * count.max(1)) as f64
    );

    let resumed = Instant::now();
    let mut total: u64 = 0;
    for (i, g) in greenlets.iter().enumerate() {
        let r: u64 = g.switch(1u64).downcast().unwrap();
        assert_eq!(r, 4 * i as u64 + 1, "greenlet {i} kept its stack intact");
        total = total.wrapping_add(r);
    }
    let resume_time = resumed.elapsed();
    assert!(greenlets.iter().all(Greenlet::is_dead));
    let expected: u64 = (0..count as u64).map(|i| 4 * i + 1).sum();
    assert_eq!(total, expected);
    println!(
        "  resumed once and finished in {:.2?} ({:.0} ns each); all {count} dead, results checked",
        resume_time,
        resume_time.as_nanos() as f64 / count.max(1) as f64
    );
    let slabs = stack::slab_stats();
    println!(
        "  slab slots: {} carved, {} free for reuse",
        slabs.carved, slabs.free
    );
    drop(greenlets);

    // Hot: two greenlets switching back and forth, caches warm.
    let rounds = 1_000_000u32;
    let ping = Greenlet::builder()
        .stack_kind(kind)
        .spawn(move |_| loop {
            Greenlet::main().switch(());
        })
        .unwrap();
    ping.switch(());
    let hot = Instant::now();
    for _ in 0..rounds {
        ping.switch(());
    }
    let hot_time = hot.elapsed();
    println!(
        "  hot switch between two greenlets: {:.1} ns",
        hot_time.as_nanos() as f64 / (2 * rounds) as f64
    );
}

/// Resident set size of this process, from /proc/self/statm.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * stack::page_size() as u64
}

/// Number of memory mappings of this process, from /proc/self/maps.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
