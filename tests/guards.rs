//! Every greenlet stack has a hardware guard below it (SPEC §6): guard regions
//! in shared mappings where the kernel has them, else a `PROT_NONE` page per
//! stack. These tests check which one is in use against what the platform
//! really does, and that running off a stack ends the process with the
//! greenlet message, wherever the stack sits (first in a fresh mapping,
//! between live neighbours, recycled from the pool or from the free list),
//! whatever the frames look like (sparse 3 KiB frames with only their lowest
//! word written, 64 KiB frames, plain recursion), with no neighbour ever seen
//! corrupted. Each scenario runs twice: with the guard the probe chose, and
//! with the fallback forced by `GREENLET_GUARD=mprotect`.
//!
//! Each test re-runs this binary as a child (tests/support/child.rs); the
//! child plays the scenario and dies, the parent checks how.
//!
//! Linux and macOS only: guard regions, `mprotect`, `mlockall`, pipes and
//! POSIX signal handlers are what these tests examine. On Windows, whose
//! stacks are reservations the OS grows through a `PAGE_GUARD` page, this file
//! compiles to no tests; tests/windows_stacks.rs tests those stacks and says
//! so in its output (`guards_rs_does_not_apply_here`).
#![cfg(unix)]

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use greenlet::stack::{self, GuardFallback, GuardMode};
use greenlet::{Greenlet, StackKind};

#[path = "support/child.rs"]
mod child;
use child::{emulated, in_child, run_child, run_child_with};

/// True when children run under an emulator: a foreign CPU under qemu-user,
/// or the host's CPU with GREENLET_CHILD_RUNNER naming one.
fn children_emulated() -> bool {
    emulated() || std::env::var("GREENLET_CHILD_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `key: value` line the child printed.
fn printed<'a>(stdout: &'a str, key: &str) -> &'a str {
    // libtest's "test name ... " may share the first line.
    let key = format!("{key}: ");
    stdout
        .lines()
        .find_map(|l| l.find(&key).map(|at| l[at + key.len()..].trim()))
        .unwrap_or_else(|| panic!("the child printed no `{key}` line; stdout: {stdout}"))
}

fn hex(s: &str) -> usize {
    usize::from_str_radix(s.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("{s:?} is not a hex address: {e}"))
}

// ---- which guard, against what the platform does ------------------------------

/// In the child: the crate's verdict first, then a guard region installed by
/// hand and touched. A platform with guard regions kills the child with
/// SIGSEGV; one that ignores the advice lets it go on and exit 0; one that
/// refuses it makes it exit 3. Both happen in the one process, so the
/// comparison holds even where the parent runs elsewhere (qemu-x86_64 on an
/// x86_64 host runs children natively unless GREENLET_CHILD_RUNNER says so).
#[test]
fn the_guard_mode_matches_what_the_platform_does() {
    if in_child() {
        println!("mode: {:?}", stack::guard_mode());
        println!("fallback: {:?}", stack::guard_fallback());
        // SAFETY: a fresh private mapping of two pages, ours alone; the
        // advice and the write touch only its first page.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let start = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(start, libc::MAP_FAILED);
            if libc::madvise(start, page, 102 /* MADV_GUARD_INSTALL */) != 0 {
                println!("refused: {}", std::io::Error::last_os_error());
                std::process::exit(3);
            }
            start.cast::<u8>().write_volatile(1);
        }
        println!("the guard page was written: no guard regions");
        std::process::exit(0);
    }
    let out = run_child("the_guard_mode_matches_what_the_platform_does");
    let stdout = text(&out.stdout);
    let platform_has_them = out.status.signal() == Some(libc::SIGSEGV);
    let forced = std::env::var("GREENLET_GUARD").as_deref() == Ok("mprotect");
    let (mode, why) = (printed(&stdout, "mode"), printed(&stdout, "fallback"));
    eprintln!(
        "guard mode {mode} ({why}); by hand the platform {} guard regions ({:?})",
        if platform_has_them { "has" } else { "has no" },
        out.status,
    );
    if forced {
        assert_eq!((mode, why), ("Mprotect", "Some(Forced)"), "{stdout}");
    } else if platform_has_them {
        assert_eq!((mode, why), ("Regions", "None"), "{stdout}");
    } else {
        assert_eq!(mode, "Mprotect", "{stdout}");
        assert!(
            why.starts_with("Some(Ignored") || why.starts_with("Some(Refused"),
            "{stdout}"
        );
        eprintln!(
            "!!! NOTE: no guard regions here ({why}): the guard-region path is NOT exercised by \
             this run, only the mprotect fallback"
        );
    }
    if emulated() || children_emulated() {
        // qemu-user accepts MADV_GUARD_INSTALL and installs nothing: the
        // probe must have seen through it.
        assert_eq!(why, "Some(Ignored)", "under qemu-user; {stdout}");
    }
}

/// One line of `/proc/self/maps`: `[start, end)` and the permissions.
struct Vma {
    start: usize,
    end: usize,
    perms: String,
}

fn vmas() -> Vec<Vma> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (start, end) = words.next().unwrap().split_once('-').unwrap();
            Vma {
                start: hex(start),
                end: hex(end),
                perms: words.next().unwrap().to_string(),
            }
        })
        .collect()
}

/// Whether the kernel can read the byte at `address`: `write(2)` of it into a
/// pipe succeeds, or fails with `EFAULT` (no signal either way).
fn kernel_can_read(address: usize) -> bool {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for two descriptors; write reads one byte at
    // `address` in the kernel, which answers EFAULT rather than faulting; the
    // pipe is ours and closed here.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let written = libc::write(fds[1], address as *const libc::c_void, 1);
        let err = std::io::Error::last_os_error();
        libc::close(fds[0]);
        libc::close(fds[1]);
        match written {
            1 => true,
            _ if err.raw_os_error() == Some(libc::EFAULT) => false,
            _ => panic!("write(2) from {address:#x} failed otherwise: {err}"),
        }
    }
}

/// On the fallback each stack is a mapping of its own whose lowest
/// `guard_size()` bytes are `PROT_NONE`. Checked per stack, not by counting
/// lines of `/proc/self/maps`: a stack's top may merge with a read-write
/// mapping above it, and under qemu-user for 32-bit guests the lowest guard
/// is missing from the emulated maps (qemu reserves the guest's whole address
/// space as one host `PROT_NONE` mapping, the guard merges with it on the
/// host, and qemu lists no host mapping whose start the guest has not
/// mapped). So: the kernel cannot read any end of any guard; the stack's
/// mapping is split exactly at its bottom; and every guard that maps lists is
/// `---p` and ends exactly there.
#[test]
fn forcing_the_fallback_gives_every_stack_a_guard_page_of_its_own() {
    if in_child() {
        let stacks: Vec<_> = (0..50)
            .map(|_| stack::Stack::new(64 << 10).unwrap())
            .collect();
        assert!(stacks.iter().all(|s| s.guard() == GuardMode::Mprotect));
        assert_eq!(stack::guard_fallback(), Some(GuardFallback::Forced));
        let stats = stack::stats();
        println!("mode: {:?}", stats.guard_mode);
        println!("fallback: {:?}", stats.fallback);
        println!("single: {}", stats.single_mappings);
        println!("chunks: {}", stats.shared.chunks);
        println!("guard size: {}", stats.guard_size);
        let maps = vmas();
        let holding = |address: usize| maps.iter().find(|v| (v.start..v.end).contains(&address));
        let (mut faulting, mut split, mut listed, mut missing) = (0, 0, 0, 0);
        for s in &stacks {
            let (guard_start, guard_end) = s.guard_range();
            let bottom = s.bottom() as usize;
            assert_eq!(guard_end, bottom);
            assert_eq!(guard_end - guard_start, stats.guard_size);
            if !kernel_can_read(guard_start)
                && !kernel_can_read(guard_end - 1)
                && kernel_can_read(bottom)
            {
                faulting += 1;
            }
            if holding(bottom).is_some_and(|v| v.start == bottom && v.perms.starts_with("rw")) {
                split += 1;
            }
            match holding(guard_end - 1) {
                Some(v) => {
                    let whole = v.start <= guard_start && v.end == bottom;
                    assert!(
                        whole && v.perms.starts_with("---"),
                        "the guard {guard_start:#x}..{guard_end:#x} is listed as \
                         {:#x}-{:#x} {}",
                        v.start,
                        v.end,
                        v.perms
                    );
                    listed += 1;
                }
                None => missing += 1,
            }
        }
        println!("guards the kernel cannot read: {faulting}");
        println!("stacks split at their bottom: {split}");
        println!("guards listed: {listed}");
        println!("guards not listed: {missing}");
        std::process::exit(0);
    }
    let out = run_child_with(
        "forcing_the_fallback_gives_every_stack_a_guard_page_of_its_own",
        &[("GREENLET_GUARD", "mprotect")],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(printed(&stdout, "mode"), "Mprotect");
    assert_eq!(printed(&stdout, "fallback"), "Some(Forced)");
    assert_eq!(printed(&stdout, "single"), "50");
    assert_eq!(printed(&stdout, "chunks"), "0");
    assert_eq!(
        printed(&stdout, "guard size"),
        stack::guard_size().to_string()
    );
    assert_eq!(
        printed(&stdout, "guards the kernel cannot read"),
        "50",
        "{stdout}"
    );
    assert_eq!(
        printed(&stdout, "stacks split at their bottom"),
        "50",
        "{stdout}"
    );
    let missing: usize = printed(&stdout, "guards not listed").parse().unwrap();
    if children_emulated() && missing > 0 {
        eprintln!(
            "!!! NOTE: {missing} of 50 guards are not in qemu-user's emulated /proc/self/maps \
             (checked through write(2) instead)"
        );
    } else {
        assert_eq!(printed(&stdout, "guards listed"), "50", "{stdout}");
    }
}

#[test]
fn an_unknown_guard_setting_is_refused_with_a_clear_panic() {
    if in_child() {
        let _g = Greenlet::new(|_| ());
        println!("SURVIVED");
        std::process::exit(0);
    }
    let out = run_child_with(
        "an_unknown_guard_setting_is_refused_with_a_clear_panic",
        &[("GREENLET_GUARD", "none")],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && !text(&out.stdout).contains("SURVIVED"));
    assert!(
        stderr.contains("GREENLET_GUARD=\"none\" is not understood"),
        "{stderr}"
    );
}

// ---- overflow scenarios -------------------------------------------------------

/// How the runaway greenlet uses its stack.
#[derive(Clone, Copy, Debug)]
enum Frames {
    /// 3 KiB frames of which only the lowest word is written: below a page, so
    /// no stack probe runs, and each frame skips most of its memory.
    Sparse3K,
    /// 64 KiB frames, lowest word written (the compiler's stack probes touch
    /// each page on the way down).
    Big64K,
    /// Small frames, every word written.
    Plain,
}

/// Where the runaway greenlet's stack sits.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// The first stack of a fresh shared mapping (a slab stack of its default
    /// size, the first of its size in the process).
    FreshMapping,
    /// Between two live, suspended greenlets of the same size.
    BetweenNeighbours,
    /// The stack of a dead greenlet, from the pool.
    FromThePool,
    /// A stack given back beyond the pool (memory discarded), taken again.
    FromTheFreeList,
}

/// Stack size of the scenarios other than FreshMapping: a size nothing else
/// in the test binary uses, so that its stacks start a class of their own.
const SIZE: usize = 100 << 10;

#[allow(unconditional_recursion)]
#[inline(never)]
fn sparse_3k(depth: u64) -> u64 {
    let mut frame = MaybeUninit::<[u64; 384]>::uninit();
    // SAFETY: writes the first (lowest) word of our own local array.
    unsafe { frame.as_mut_ptr().cast::<u64>().write_volatile(depth) };
    black_box(&mut frame);
    sparse_3k(depth + 1).wrapping_add(1)
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn big_64k(depth: u64) -> u64 {
    let mut frame = MaybeUninit::<[u64; 8192]>::uninit();
    // SAFETY: as in sparse_3k.
    unsafe { frame.as_mut_ptr().cast::<u64>().write_volatile(depth) };
    black_box(&mut frame);
    big_64k(depth + 1).wrapping_add(1)
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn plain(depth: u64) -> u64 {
    let frame = [depth; 16];
    black_box(&frame);
    plain(depth + 1).wrapping_add(frame[3])
}

fn run_off(frames: Frames) -> u64 {
    match frames {
        Frames::Sparse3K => sparse_3k(0),
        Frames::Big64K => big_64k(0),
        Frames::Plain => plain(0),
    }
}

/// Address of a local of the caller's frame.
#[inline(never)]
fn here() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

const PATTERN_BYTES: usize = 8 << 10;
/// Start and length of each neighbour's pattern, for the SIGABRT handler.
static NEIGHBOURS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn pattern_byte(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ 0xA5
}

/// What a scenario's greenlet does. All of them run the same closure type
/// into [`body`], so their frames sit at the same offsets from their stacks'
/// tops and the addresses of their first locals are exactly one slot apart.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// Live and suspended for good, with 8 KiB of known bytes on its stack
    /// (for the SIGABRT handler, in slot `n` of NEIGHBOURS).
    Neighbour(usize),
    /// Suspends once, then runs off its stack.
    Runaway(Frames),
    /// Returns at once (its stack goes to the pool).
    Dies,
}

fn spawn(builder: greenlet::Builder, role: Role) -> Greenlet {
    let g = builder.spawn(move |_| body(role)).unwrap();
    g.switch(());
    g
}

#[inline(never)]
fn body(role: Role) -> usize {
    let local = here();
    match role {
        Role::Neighbour(slot) => {
            println!("neighbour {slot}: {local:#x}");
            hold_pattern(slot);
        }
        Role::Runaway(frames) => {
            println!("runaway local: {local:#x}");
            Greenlet::main().switch(());
            black_box(run_off(frames));
        }
        Role::Dies => println!("recycled local: {local:#x}"),
    }
    local
}

#[inline(never)]
fn hold_pattern(slot: usize) {
    let mut bytes = [0u8; PATTERN_BYTES];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern_byte(i);
    }
    NEIGHBOURS[slot].store(black_box(&mut bytes).as_ptr() as usize, Ordering::SeqCst);
    Greenlet::main().switch(());
    black_box(&bytes);
}

/// Checks the neighbours' patterns when the process aborts, after the
/// overflow message: the one moment a corruption could still be seen.
extern "C" fn check_neighbours(_: libc::c_int) {
    let mut intact = true;
    for n in &NEIGHBOURS {
        let at = n.load(Ordering::SeqCst);
        if at == 0 {
            continue;
        }
        for i in 0..PATTERN_BYTES {
            // SAFETY: the pattern lives on a suspended greenlet's stack, which
            // stays mapped; reading it changes nothing.
            if unsafe { ((at + i) as *const u8).read_volatile() } != pattern_byte(i) {
                intact = false;
            }
        }
    }
    let message: &[u8] = if intact {
        b"check: neighbours intact\n"
    } else {
        b"check: NEIGHBOUR CORRUPTED\n"
    };
    // SAFETY: write(2) is async-signal-safe; the buffer is static.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
}

fn on_abort_check_neighbours() {
    // SAFETY: installing a plain handler; zeroed is a valid start.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = check_neighbours as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// In the child: sets the scene, then runs a greenlet off its stack.
fn play(frames: Frames, place: Place) -> ! {
    on_abort_check_neighbours();
    let sized = || Greenlet::builder().stack_size(SIZE);
    let before = stack::stats();
    let mut neighbours = Vec::new();
    let mut builder = sized();
    match place {
        Place::FreshMapping => builder = Greenlet::builder().stack_kind(StackKind::Slab),
        Place::BetweenNeighbours => neighbours.push(spawn(sized(), Role::Neighbour(0))),
        Place::FromThePool => assert!(spawn(sized(), Role::Dies).is_dead()),
        Place::FromTheFreeList => {
            let given_back = stack::Stack::new(SIZE).unwrap();
            println!("given back: {:#x}", given_back.top() as usize);
            drop(given_back); // not released into the pool: its memory goes back
        }
    }
    let runaway = spawn(builder, Role::Runaway(frames));
    let after = stack::stats();
    if let Place::BetweenNeighbours = place {
        neighbours.push(spawn(sized(), Role::Neighbour(1)));
    }
    println!("mode: {:?}", after.guard_mode);
    println!("new chunks: {}", after.shared.chunks - before.shared.chunks);
    println!("pooled: {} -> {}", before.pooled, after.pooled);
    runaway.switch(());
    println!("SURVIVED");
    std::process::exit(0);
}

/// In the parent: the child died of the overflow, with the message naming
/// the runaway's stack, and no neighbour corrupted.
fn check(name: &str, out: &Output, frames: Frames, place: Place, forced: bool) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("{name}: {frames:?} {place:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{context}");
    assert!(!stdout.contains("SURVIVED"), "{context}");
    let message = stderr
        .lines()
        .find(|l| l.contains("greenlet stack overflow"))
        .unwrap_or_else(|| panic!("no overflow message; {context}"));
    let mode = printed(&stdout, "mode");
    if forced {
        assert_eq!(mode, "Mprotect", "{context}");
    }
    let guard_word = if mode == "Regions" {
        "guard region"
    } else {
        "guard page"
    };
    assert!(message.contains(guard_word), "{context}");

    // The reported stack is the runaway's: it holds the runaway's local.
    let range = message
        .split("its stack ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let (low, high) = range.split_once("..").unwrap();
    let (low, high) = (hex(low), hex(high));
    let local = hex(printed(&stdout, "runaway local"));
    assert!((low..high).contains(&local), "{context}");
    let size = if let Place::FreshMapping = place {
        stack::DEFAULT_SLAB_STACK_SIZE
    } else {
        stack::usable_size_for(SIZE).unwrap()
    };
    assert_eq!(high - low, size, "{context}");
    let regions = mode == "Regions";
    match place {
        Place::FreshMapping if regions => {
            assert_eq!(printed(&stdout, "new chunks"), "1", "{context}");
        }
        Place::FreshMapping => {}
        Place::BetweenNeighbours => {
            let below = hex(printed(&stdout, "neighbour 0"));
            let above = hex(printed(&stdout, "neighbour 1"));
            for n in [below, above] {
                assert!(!(low..high).contains(&n), "{context}");
            }
            if regions {
                // Three consecutive slots of one mapping: one stride apart.
                let stride = size + stack::guard_size();
                assert_eq!(local - below, stride, "not adjacent; {context}");
                assert_eq!(above - local, stride, "not adjacent; {context}");
            }
            assert!(stderr.contains("check: neighbours intact"), "{context}");
        }
        Place::FromThePool => {
            let recycled = hex(printed(&stdout, "recycled local"));
            assert_eq!(recycled, local, "not the pooled stack; {context}");
        }
        Place::FromTheFreeList if regions => {
            assert_eq!(hex(printed(&stdout, "given back")), high, "{context}");
        }
        // A mapping of its own is unmapped when given back: the next one may
        // land anywhere.
        Place::FromTheFreeList => {}
    }
    assert!(!stderr.contains("CORRUPTED"), "{context}");
}

macro_rules! overflow_tests {
    ($($name:ident, $forced:ident: $frames:ident at $place:ident;)*) => {$(
        #[test]
        fn $name() {
            if in_child() {
                play(Frames::$frames, Place::$place);
            }
            let name = stringify!($name);
            let forced = stringify!($forced) == "forced";
            let envs: &[(&str, &str)] = if forced { &[("GREENLET_GUARD", "mprotect")] } else { &[] };
            let out = run_child_with(name, envs);
            check(name, &out, Frames::$frames, Place::$place, forced);
        }
    )*};
}

overflow_tests! {
    sparse_frames_first_in_a_fresh_mapping, probed: Sparse3K at FreshMapping;
    sparse_frames_between_neighbours, probed: Sparse3K at BetweenNeighbours;
    sparse_frames_on_a_pooled_stack, probed: Sparse3K at FromThePool;
    sparse_frames_on_a_freed_stack, probed: Sparse3K at FromTheFreeList;
    big_frames_first_in_a_fresh_mapping, probed: Big64K at FreshMapping;
    big_frames_between_neighbours, probed: Big64K at BetweenNeighbours;
    big_frames_on_a_pooled_stack, probed: Big64K at FromThePool;
    big_frames_on_a_freed_stack, probed: Big64K at FromTheFreeList;
    recursion_first_in_a_fresh_mapping, probed: Plain at FreshMapping;
    recursion_between_neighbours, probed: Plain at BetweenNeighbours;
    recursion_on_a_pooled_stack, probed: Plain at FromThePool;
    recursion_on_a_freed_stack, probed: Plain at FromTheFreeList;
    fallback_sparse_frames_first_in_a_fresh_mapping, forced: Sparse3K at FreshMapping;
    fallback_sparse_frames_between_neighbours, forced: Sparse3K at BetweenNeighbours;
    fallback_sparse_frames_on_a_pooled_stack, forced: Sparse3K at FromThePool;
    fallback_sparse_frames_on_a_freed_stack, forced: Sparse3K at FromTheFreeList;
    fallback_big_frames_first_in_a_fresh_mapping, forced: Big64K at FreshMapping;
    fallback_big_frames_between_neighbours, forced: Big64K at BetweenNeighbours;
    fallback_big_frames_on_a_pooled_stack, forced: Big64K at FromThePool;
    fallback_big_frames_on_a_freed_stack, forced: Big64K at FromTheFreeList;
    fallback_recursion_first_in_a_fresh_mapping, forced: Plain at FreshMapping;
    fallback_recursion_between_neighbours, forced: Plain at BetweenNeighbours;
    fallback_recursion_on_a_pooled_stack, forced: Plain at FromThePool;
    fallback_recursion_on_a_freed_stack, forced: Plain at FromTheFreeList;
}

// ---- running out of mappings on the fallback ------------------------------------

/// With a mapping per stack, spawning refuses with its `io::Error` while
/// mappings remain for the rest of the program (SPEC §6): afterwards memory
/// can still be mapped and a panic with `RUST_BACKTRACE=1` reported (with the
/// last mappings gone to stacks, that panic's allocation failed and the
/// process hung in std's allocation-error hook).
#[test]
fn on_the_fallback_spawning_stops_before_the_last_mappings() {
    if in_child() {
        let mut live = Vec::new();
        let err = loop {
            match Greenlet::builder()
                .stack_size(stack::MIN_STACK_SIZE)
                .spawn(|_| Greenlet::main().switch(()))
            {
                Ok(g) => {
                    g.switch(());
                    live.push(g);
                }
                Err(e) => break e,
            }
        };
        println!("stopped after: {}", live.len());
        println!("kind: {:?}", err.kind());
        println!("error: {err}");
        let panicked = std::panic::catch_unwind(|| Greenlet::new(|_| ()));
        let big: Vec<Vec<u8>> = (0..32).map(|i| vec![i as u8; 1 << 20]).collect();
        println!("panic caught: {}", panicked.is_err());
        println!("allocated: {} MiB", big.len());
        drop(live); // every one killed, its stack given back
        let again = Greenlet::new(|_| 5).switch(()).downcast::<i32>().unwrap();
        println!("made again: {again}");
        std::process::exit(0);
    }
    let out = run_child_with(
        "on_the_fallback_spawning_stops_before_the_last_mappings",
        &[("GREENLET_GUARD", "mprotect"), ("RUST_BACKTRACE", "1")],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("stdout: {stdout}\nstderr: {stderr}");
    assert!(out.status.success(), "{:?}; {context}", out.status);
    assert_eq!(printed(&stdout, "kind"), "OutOfMemory", "{context}");
    assert!(
        printed(&stdout, "error").contains("vm.max_map_count"),
        "{context}"
    );
    let made: usize = printed(&stdout, "stopped after").parse().unwrap();
    assert!(made > 1000, "{context}");
    assert_eq!(printed(&stdout, "panic caught"), "true", "{context}");
    assert_eq!(printed(&stdout, "allocated"), "32 MiB", "{context}");
    assert_eq!(printed(&stdout, "made again"), "5", "{context}");
    assert!(
        stderr.contains("vm.max_map_count"),
        "the panic names the cause; {context}"
    );
}

/// A builder asking for less than the minimum gets the minimum, which has
/// room to unwind a kill.
#[test]
fn the_smallest_stack_has_room_to_unwind_a_kill() {
    let g = Greenlet::builder()
        .stack_size(stack::MIN_STACK_SIZE - 1)
        .spawn(|_| Greenlet::main().switch(()))
        .unwrap();
    g.switch(());
    assert!(g
        .throw(greenlet::GreenletExit)
        .is::<greenlet::GreenletExit>());
    assert!(g.is_dead());
}

// ---- mlocked processes ------------------------------------------------------------

/// `mlockall(MCL_FUTURE)` (lock on fault, so nothing is populated) makes every
/// new mapping locked, and the kernel refuses guard regions in locked memory.
/// `MCL_ONFAULT` is Linux's; elsewhere (macOS, whose `mlockall` is refused
/// anyway) the plain call is made, and its refusal reported as below.
fn lock_future_mappings() {
    #[cfg(target_os = "linux")]
    let flags = libc::MCL_FUTURE | libc::MCL_ONFAULT;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MCL_FUTURE;
    // SAFETY: mlockall has no memory-safety preconditions.
    if unsafe { libc::mlockall(flags) } != 0 {
        println!("mlockall refused: {}", std::io::Error::last_os_error());
        std::process::exit(4);
    }
}

fn child_could_not_lock(out: &Output) -> bool {
    if out.status.code() == Some(4) {
        eprintln!(
            "!!! NOT TESTED HERE: mlockall was refused ({}); the mlock fallback needs \
             RLIMIT_MEMLOCK or CAP_IPC_LOCK",
            text(&out.stdout).trim()
        );
        return true;
    }
    false
}

/// Locked before the first stack: the probe itself is refused, and every
/// stack gets a guard page.
#[test]
fn an_mlocked_process_gets_guard_pages() {
    if in_child() {
        lock_future_mappings();
        let s = stack::take(SIZE).unwrap();
        println!("guard: {:?}", s.guard());
        println!("fallback: {:?}", stack::guard_fallback());
        std::process::exit(0);
    }
    let out = run_child("an_mlocked_process_gets_guard_pages");
    if child_could_not_lock(&out) {
        return;
    }
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(printed(&stdout, "guard"), "Mprotect", "{stdout}");
    let why = printed(&stdout, "fallback");
    // EINVAL natively; under qemu-user the advice is ignored before anything;
    // with GREENLET_GUARD=mprotect no probe runs.
    let forced = std::env::var("GREENLET_GUARD").as_deref() == Ok("mprotect");
    let expected: &[&str] = if forced {
        &["Some(Forced)"]
    } else {
        &["Some(Refused(22))", "Some(Ignored)"]
    };
    assert!(expected.contains(&why), "{stdout}");
}

/// Locked after guard regions were in use: the next install fails, stacks
/// from then on get guard pages (and still report an overflow), and the
/// stacks made before keep their guard regions.
#[test]
fn mlocking_later_switches_new_stacks_to_guard_pages() {
    if in_child() {
        let before = stack::take(SIZE).unwrap();
        println!("mode before: {:?}", stack::guard_mode());
        lock_future_mappings();
        let after = stack::take(SIZE + (64 << 10)).unwrap(); // a new class: a new region
        println!("stack before: {:?}", before.guard());
        println!("stack after: {:?}", after.guard());
        println!("fallback: {:?}", stack::guard_fallback());
        let g = Greenlet::builder()
            .stack_size(SIZE + (128 << 10))
            .spawn(|_| plain(0))
            .unwrap();
        g.switch(());
        println!("SURVIVED");
        std::process::exit(0);
    }
    let out = run_child("mlocking_later_switches_new_stacks_to_guard_pages");
    if child_could_not_lock(&out) {
        return;
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{context}");
    assert!(stderr.contains("greenlet stack overflow"), "{context}");
    assert!(stderr.contains("guard page"), "{context}");
    assert_eq!(printed(&stdout, "stack after"), "Mprotect", "{context}");
    if printed(&stdout, "mode before") == "Regions" {
        assert_eq!(printed(&stdout, "stack before"), "Regions", "{context}");
        assert_eq!(
            printed(&stdout, "fallback"),
            "Some(FailedLater(22))",
            "{context}"
        );
    } else {
        eprintln!("NOTE: no guard regions to lose here: only the guard-page path ran");
    }
}
