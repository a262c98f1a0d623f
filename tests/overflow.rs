//! Stack overflow inside a greenlet stops the process with a message naming a
//! greenlet stack overflow; every other fault keeps the behaviour it would have
//! without this crate (src/overflow.rs, SPEC §6).
//!
//! A process that overflows cannot report to a test harness, so each test
//! re-runs this test binary as a child with only itself selected (see
//! tests/support/child.rs, which also covers qemu-user); in the child the same
//! test function plays the scenario, and in the parent it checks how the child
//! died.
//!
//! On Windows (run under wine in CI) the overflow is a `STATUS_STACK_OVERFLOW`
//! or an access violation in the guard, caught by the crate's vectored
//! exception handler, and the process ends with status `0xC00000FD`; the
//! tests that install POSIX signal handlers or signal stacks say that they do
//! not apply there. Frames larger than a page are covered on every OS.

use std::hint::black_box;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

use greenlet::Greenlet;

#[path = "support/child.rs"]
mod child;
use child::{in_child, run_child};

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Recurses without end, with a frame the optimiser cannot fold away.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 32];
    black_box(&frame);
    recurse(depth + 1).wrapping_add(frame[3])
}

/// Parses `stack 0xLOW..0xHIGH (N bytes)` out of the overflow message.
fn reported_range(stderr: &str) -> (usize, usize) {
    let at = stderr
        .find("its stack 0x")
        .unwrap_or_else(|| panic!("no stack range in: {stderr}"));
    let rest = &stderr[at + "its stack ".len()..];
    let end = rest.find(' ').unwrap();
    let (low, high) = rest[..end].split_once("..").unwrap();
    let parse = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    (parse(low), parse(high))
}

fn printed_address(stdout: &[u8], label: &str) -> usize {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find_map(|l| l.find(label).map(|at| &l[at + label.len()..]))
        .unwrap_or_else(|| panic!("child printed no `{label}` line: {text}"));
    usize::from_str_radix(line.trim().trim_start_matches("0x"), 16).unwrap()
}

/// In the child: recurse without end in a greenlet with a 64 KiB stack,
/// printing the address of a local on that stack first.
fn overflow_a_64k_greenlet() -> ! {
    let g = Greenlet::builder()
        .stack_size(64 << 10)
        .spawn(|_| {
            let local = 0u8;
            println!("local at {:#x}", &local as *const u8 as usize);
            recurse(0)
        })
        .unwrap();
    g.switch(());
    panic!("the child survived an endless recursion");
}

/// The status the overflow handler ends the process with: SIGABRT, or on
/// Windows the exit code `STATUS_STACK_OVERFLOW`.
fn assert_ended_by_the_overflow_handler(out: &Output) {
    let stderr = stderr_of(out);
    #[cfg(unix)]
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "expected an abort; stderr: {stderr}"
    );
    #[cfg(windows)]
    assert_eq!(
        out.status.code(),
        Some(0xC00000FD_u32 as i32),
        "expected exit status STATUS_STACK_OVERFLOW; stderr: {stderr}"
    );
}

/// Says loudly, in the test's output, that a test does not apply here.
#[cfg(windows)]
fn not_on_windows(test: &str, why: &str) {
    eprintln!("NOT RUN ON WINDOWS: {test}: {why}");
}

fn assert_greenlet_overflow(out: &Output) {
    let stderr = stderr_of(out);
    assert!(!out.status.success(), "the child exited successfully");
    assert!(
        stderr.contains("greenlet stack overflow"),
        "no greenlet overflow message; stderr: {stderr}"
    );
    assert_ended_by_the_overflow_handler(out);
    let (low, high) = reported_range(&stderr);
    assert_eq!(
        high - low,
        64 << 10,
        "reported range is not the 64 KiB stack"
    );
    let local = printed_address(&out.stdout, "local at ");
    assert!(
        (low..high).contains(&local),
        "a local of the greenlet ({local:#x}) is outside the reported stack {low:#x}..{high:#x}"
    );
}

#[test]
fn endless_recursion_in_a_64k_greenlet_aborts_with_a_greenlet_message() {
    if in_child() {
        overflow_a_64k_greenlet();
    }
    let out = run_child("endless_recursion_in_a_64k_greenlet_aborts_with_a_greenlet_message");
    assert_greenlet_overflow(&out);
    assert!(stderr_of(&out).contains("stack overflow"));
}

#[test]
fn overflow_on_a_spawned_thread_is_reported_too() {
    if in_child() {
        std::thread::spawn(|| overflow_a_64k_greenlet())
            .join()
            .unwrap();
        unreachable!();
    }
    let out = run_child("overflow_on_a_spawned_thread_is_reported_too");
    assert_greenlet_overflow(&out);
}

/// Threads made by C code have no alternate signal stack; without one the
/// handler could not run on a thread whose stack is exhausted. The crate must
/// then make one itself.
#[test]
fn a_thread_without_a_signal_stack_gets_one() {
    #[cfg(windows)]
    return not_on_windows(
        "a_thread_without_a_signal_stack_gets_one",
        "Windows has no signal stacks: the exception handler runs on the faulting stack, in \
         the thread's guaranteed bytes (overflow_on_a_spawned_thread_is_reported_too covers a \
         thread there)",
    );
    #[cfg(unix)]
    if in_child() {
        std::thread::spawn(|| {
            let disable = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: turning off this thread's alternate signal stack (std's)
            // while no handler runs on it.
            assert_eq!(
                unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) },
                0
            );
            overflow_a_64k_greenlet()
        })
        .join()
        .unwrap();
        unreachable!();
    }
    #[cfg(unix)]
    assert_greenlet_overflow(&run_child("a_thread_without_a_signal_stack_gets_one"));
}

/// Recurses without end with a frame of `N` bytes of which only the lowest
/// word is written (a sparse frame: what a large buffer that is never filled
/// looks like), so that nothing but the compiler's stack probes touches the
/// pages in between.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse_sparse<const N: usize>(depth: u64) -> u64 {
    let mut frame = std::mem::MaybeUninit::<[u64; N]>::uninit();
    let lowest = frame.as_mut_ptr().cast::<u64>();
    // SAFETY: the first word of our own local array.
    unsafe { lowest.write_volatile(depth) };
    black_box(&mut frame);
    // SAFETY: written just above.
    recurse_sparse::<N>(depth + 1).wrapping_add(unsafe { lowest.read_volatile() })
}

fn overflow_with_sparse_frames<const N: usize>() -> ! {
    let g = Greenlet::builder()
        .stack_size(64 << 10)
        .spawn(|_| {
            let local = 0u8;
            println!("local at {:#x}", &local as *const u8 as usize);
            recurse_sparse::<N>(0)
        })
        .unwrap();
    g.switch(());
    panic!("the child survived an endless recursion");
}

/// Frames of 3 KiB, less than a page but not a divisor of it: the stack
/// pointer lands at every offset of a page, and each frame may reach the
/// next page only at its lowest word.
#[test]
fn sparse_3k_frames_overflow_with_the_message() {
    if in_child() {
        overflow_with_sparse_frames::<{ 3 * 1024 / 8 }>();
    }
    let out = run_child("sparse_3k_frames_overflow_with_the_message");
    assert_greenlet_overflow(&out);
}

/// Frames of 64 KiB, a whole 64 KiB stack each: without stack probes the
/// frame's one store would land far below the guard. The probes (`__chkstk`
/// on Windows, inline probes elsewhere) walk the pages, so the guard is hit.
#[test]
fn sparse_64k_frames_overflow_with_the_message() {
    if !cfg!(any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )) {
        eprintln!(
            "NOT RUN ON THIS CPU: sparse_64k_frames_overflow_with_the_message: Rust emits no stack \
             probes here, so a 64 KiB frame can jump the guard (src/stack/guard.rs)"
        );
        return;
    }
    if in_child() {
        overflow_with_sparse_frames::<{ 64 * 1024 / 8 }>();
    }
    let out = run_child("sparse_64k_frames_overflow_with_the_message");
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "the child exited successfully");
    assert!(
        stderr.contains("greenlet stack overflow"),
        "no greenlet overflow message; stderr: {stderr}"
    );
    assert_ended_by_the_overflow_handler(&out);
}

/// A fault that has nothing to do with greenlet stacks keeps its default
/// action: the process dies of SIGSEGV, without a greenlet message.
#[test]
fn other_faults_keep_the_default_action() {
    if in_child() {
        let g = Greenlet::new(|_| 1); // maps a stack: the handler is installed
        assert_eq!(g.switch(()).downcast::<i32>().unwrap(), 1);
        fault_on_a_protected_page();
    }
    let out = run_child("other_faults_keep_the_default_action");
    let stderr = stderr_of(&out);
    #[cfg(unix)]
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "expected death by SIGSEGV; stderr: {stderr}"
    );
    #[cfg(windows)]
    assert_eq!(
        out.status.code(),
        Some(0xC0000005_u32 as i32),
        "expected death by STATUS_ACCESS_VIOLATION; stderr: {stderr}"
    );
    assert!(!stderr.contains("greenlet stack overflow"), "{stderr}");
}

/// Writes to the lowest page of the address space, which Windows never maps:
/// a fault outside every greenlet stack.
#[cfg(windows)]
fn fault_on_a_protected_page() -> ! {
    let address = black_box(0x100usize) as *mut u8;
    // SAFETY: deliberately faulting; the write never completes.
    unsafe { address.write_volatile(1) };
    panic!("writing to the null page did not fault");
}

/// Writes to a fresh PROT_NONE page: a fault outside every greenlet stack.
#[cfg(unix)]
fn fault_on_a_protected_page() -> ! {
    // SAFETY: a new anonymous mapping, owned by nobody else.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: deliberately faulting; the write never completes.
    unsafe { page.cast::<u8>().write_volatile(1) };
    panic!("writing to a PROT_NONE page did not fault");
}

/// Rust's own handler (installed before ours) still reports an overflow of an
/// ordinary thread stack.
#[test]
fn thread_stack_overflow_still_reaches_rusts_handler() {
    if in_child() {
        let g = Greenlet::new(|_| ());
        g.switch(());
        std::thread::Builder::new()
            .name("deep".into())
            .stack_size(256 << 10)
            .spawn(|| recurse(0))
            .unwrap()
            .join()
            .unwrap();
        unreachable!();
    }
    let out = run_child("thread_stack_overflow_still_reaches_rusts_handler");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("thread 'deep'") && stderr.contains("has overflowed its stack"),
        "Rust's message is missing; stderr: {stderr}"
    );
    assert!(!stderr.contains("greenlet stack overflow"), "{stderr}");
    assert!(!out.status.success());
}

#[cfg(unix)]
static USER_HANDLER_MESSAGE: &[u8] = b"user handler saw the fault\n";

#[cfg(unix)]
extern "C" fn user_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(
            2,
            USER_HANDLER_MESSAGE.as_ptr().cast(),
            USER_HANDLER_MESSAGE.len(),
        );
        libc::_exit(42);
    }
}

/// A SIGSEGV handler that the program installed before the first greenlet is
/// not replaced: faults outside greenlet stacks still reach it.
#[test]
fn a_handler_installed_before_still_gets_its_faults() {
    #[cfg(windows)]
    return not_on_windows(
        "a_handler_installed_before_still_gets_its_faults",
        "it installs a POSIX SIGSEGV handler; on Windows the crate's vectored handler passes \
         every exception that is not a greenlet overflow on (other_faults_keep_the_default_action)",
    );
    #[cfg(unix)]
    if in_child() {
        // SAFETY: installing a valid SA_SIGINFO handler; zeroed is a valid start.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = user_handler as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
                0
            );
        }
        let g = Greenlet::new(|_| ());
        g.switch(());
        fault_on_a_protected_page();
    }
    #[cfg(unix)]
    {
        let out = run_child("a_handler_installed_before_still_gets_its_faults");
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(42), "stderr: {stderr}");
        assert!(stderr.contains("user handler saw the fault"), "{stderr}");
    }
}
