//! A million live, suspended greenlets in one process, made with
//! `Greenlet::new` and its default 1 MiB stacks.
//!
//! Where the kernel has guard regions (Linux 6.13 and later), stacks are
//! carved from 256 MiB shared mappings with a guard region below each, so a
//! million need about 4,000 kernel mappings, and a stack costs the pages its
//! frames touch (one, for these). Where it has not (or under qemu-user, or
//! with `GREENLET_GUARD=mprotect`), each stack is a mapping of its own with a
//! guard page, two kernel mappings each, and `vm.max_map_count` (65530 by
//! default) stops creation near 31,000 with a clear error.
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
//! `GREENLET_STACK_KIND=slab` runs the same with slab stacks (64 KiB by
//! default); `GREENLET_STACK_SIZE=<bytes>` sets the stack size. Without
//! either, every greenlet is made by plain `Greenlet::new`.
//!
//! On Windows (run under wine in CI: `wine million.exe 10000`) each stack is
//! an address-space reservation of its own, committed by the OS as it grows:
//! a suspended greenlet here costs its 8 KiB of initially committed stack,
//! which the example prints, since `/proc/self` is not this program there.
//! Windows caps reservations only by address space and commit charge; under
//! wine every reservation is a host mapping and its committed top another, so
//! the host's `vm.max_map_count` (65530 by default) stops creation near
//! 31,900 live greenlets (measured: 31,880) with the OS's error.
//!
//! Besides resident memory (what `/proc/self/statm` counts), the example
//! prints the page tables the kernel keeps for the process (`VmPTE` of
//! `/proc/self/status`): memory too, not counted as resident. Stacks 1 MiB
//! apart need a page-table page (4 KiB, covering 2 MiB) per two greenlets.

use std::time::Instant;

use greenlet::{stack, Greenlet, StackKind};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("GREENLET_COUNT").ok())
        .map(|s| s.parse().expect("the count must be a whole number"))
        .unwrap_or(1_000_000);
    let stack_size: Option<usize> = std::env::var("GREENLET_STACK_SIZE").ok().map(|s| {
        s.parse()
            .expect("GREENLET_STACK_SIZE must be a number of bytes")
    });
    let kind = match std::env::var("GREENLET_STACK_KIND").as_deref() {
        Ok("guarded") | Err(_) => StackKind::Guarded,
        Ok("slab") => StackKind::Slab,
        Ok(other) => panic!("GREENLET_STACK_KIND must be slab or guarded, not {other:?}"),
    };
    let plain = kind == StackKind::Guarded && stack_size.is_none();
    let size_shown = stack_size.unwrap_or(match kind {
        StackKind::Guarded => stack::DEFAULT_STACK_SIZE,
        StackKind::Slab => stack::DEFAULT_SLAB_STACK_SIZE,
    });

    let main = Greenlet::main();
    let mut greenlets = Vec::with_capacity(count);
    let rss_before = resident_bytes();
    let maps_before = mappings();
    let pte_before = page_table_bytes();
    let started = Instant::now();
    for i in 0..count {
        let run = move |_| {
            // Lives on this greenlet's stack while it is suspended.
            let mine = [i as u64; 4];
            Greenlet::main().switch(());
            let back: u64 = Greenlet::main().switch(()).downcast().unwrap();
            std::hint::black_box(mine).iter().sum::<u64>() + back
        };
        let g = if plain {
            // Greenlet::new panics where no stack can be had (on the
            // fallback, near vm.max_map_count): say how far it got.
            std::panic::catch_unwind(|| Greenlet::new(run)).unwrap_or_else(|_| {
                eprintln!("stopped after {i} live greenlets (the panic above says why)");
                std::process::exit(1)
            })
        } else {
            let mut builder = Greenlet::builder().stack_kind(kind);
            if let Some(bytes) = stack_size {
                builder = builder.stack_size(bytes);
            }
            builder.spawn(run).unwrap_or_else(|e| {
                eprintln!("greenlet {i} of {count} cannot be created: {e}");
                std::process::exit(1)
            })
        };
        g.switch(());
        greenlets.push(g);
    }
    let create_time = started.elapsed();
    let rss_alive = resident_bytes();
    let maps_alive = mappings();
    let pte_alive = page_table_bytes();
    let alive = greenlets.iter().filter(|g| g.is_active()).count();
    assert_eq!(alive, count, "every greenlet is alive and suspended");
    assert!(main.is_current());

    let per_greenlet = (rss_alive.saturating_sub(rss_before)) as f64 / count.max(1) as f64;
    let stats = stack::stats();
    let how = if plain {
        "made by Greenlet::new".to_string()
    } else {
        format!("on {kind:?} stacks")
    };
    println!("{count} live suspended greenlets {how}, stacks of {size_shown} bytes");
    match stats.fallback {
        None => println!(
            "  guards: {:?} (guard regions in shared mappings)",
            stats.guard_mode
        ),
        Some(why) => println!(
            "  guards: {:?} (one mapping per stack: {why})",
            stats.guard_mode
        ),
    }
    println!(
        "  created and started in {:.2?} ({:.0} ns each)",
        create_time,
        create_time.as_nanos() as f64 / count.max(1) as f64
    );
    if PROC_IS_OURS {
        println!(
            "  resident memory: {:.1} MiB before, {:.1} MiB with all alive: {:.0} bytes ({:.2} KiB) per greenlet",
            mib(rss_before),
            mib(rss_alive),
            per_greenlet,
            per_greenlet / 1024.0
        );
        println!(
            "  memory mappings: {maps_before} before, {maps_alive} with all alive ({} shared, {} of their own)",
            stats.shared.chunks, stats.single_mappings
        );
    } else {
        println!(
            "  resident memory and mappings: not measured here (no /proc of this program); {} \
             stacks are reservations of their own",
            stats.single_mappings
        );
    }
    if let Some(touched) = stack_memory_per_greenlet(&greenlets) {
        println!(
            "  stack memory committed per greenlet (its stack's touched pages, asked of the OS): \
             {touched:.0} bytes ({:.2} KiB)",
            touched / 1024.0
        );
    }
    if let (Some(before), Some(alive)) = (pte_before, pte_alive) {
        println!(
            "  page tables (not resident memory): {:.1} MiB more: {:.0} bytes per greenlet",
            mib(alive.saturating_sub(before)),
            alive.saturating_sub(before) as f64 / count.max(1) as f64
        );
    }

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
    let stats = stack::stats();
    println!(
        "  shared slots: {} carved, {} free for reuse; {} stacks pooled",
        stats.shared.carved, stats.shared.free, stats.pooled
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

/// The average of `stack_high_water` over up to 1,000 of the greenlets
/// (evenly spread), from their `Debug` output: the bytes of each stack that
/// are backed by memory (Linux: resident pages, by `mincore`; Windows:
/// committed pages, by `VirtualQuery`), the memory a suspended greenlet costs
/// beside its share of the heap.
fn stack_memory_per_greenlet(greenlets: &[Greenlet]) -> Option<f64> {
    let step = (greenlets.len() / 1000).max(1);
    let mut sum = 0usize;
    let mut n = 0usize;
    for g in greenlets.iter().step_by(step) {
        let debug = format!("{g:?}");
        let at = debug.find("stack_high_water: ")? + "stack_high_water: ".len();
        let digits = &debug[at..];
        let end = digits.find(|c: char| !c.is_ascii_digit())?;
        sum += digits[..end].parse::<usize>().ok()?;
        n += 1;
    }
    (n > 0).then(|| sum as f64 / n as f64)
}

/// Whether `/proc/self` describes this program: not on Windows (under wine it
/// is not the program's own view either).
const PROC_IS_OURS: bool = cfg!(not(windows));

/// Resident set size of this process, from /proc/self/statm (0 where there
/// is none of this program's: Windows).
fn resident_bytes() -> u64 {
    if !PROC_IS_OURS {
        return 0;
    }
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * stack::page_size() as u64
}

/// Page tables of this process (`VmPTE` in /proc/self/status), in bytes.
fn page_table_bytes() -> Option<u64> {
    if !PROC_IS_OURS {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPTE:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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
