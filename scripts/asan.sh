#!/usr/bin/env bash
# The test suite under AddressSanitizer, with the `asan` feature's fiber
# annotations (docs/reliability.md). Needs a nightly toolchain with rust-src
# (for -Zbuild-std); installs the component when it is missing.
#
#   scripts/asan.sh                     the whole suite (unit and integration tests)
#   scripts/asan.sh --test-threads=1    extra arguments go to the test binaries
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "!!! ASAN NOT RUN: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
  || rustup component add rust-src --toolchain nightly

# handle_segv/handle_sigbus=0: the overflow tests check the crate's own
# SIGSEGV handler, which ASan would otherwise replace. detect_leaks=0: some
# tests leak on purpose (greenlets that refuse to die keep their stacks), and
# the Valgrind step checks leaks. quarantine_size_mb=0: the churn test
# measures resident memory.
common="handle_segv=0:handle_sigbus=0:detect_leaks=0:quarantine_size_mb=0"
export RUSTFLAGS="-Zsanitizer=address"
export CARGO_TARGET_DIR=target/asan
export PROPTEST_CASES="${PROPTEST_CASES:-200}"
# Symbolising a panic's backtrace under ASan takes more than a 64 KiB slab
# stack holds; the tests that are about backtraces ask for them themselves.
export RUST_BACKTRACE=0
# Every ASan-instrumented switch is slow: the bridge's and the hub's loopback
# loads run at 200 connections x 20 messages here (the tests say so loudly).
export GREENLET_LOAD="${GREENLET_LOAD:-200,20}"
run() {
  cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu --features asan \
    --no-fail-fast --lib --tests -- "$@"
}

# Tests that cannot pass under ASan, for ASan's reasons (they run everywhere
# else, natively, under Valgrind and under qemu):
#  - its redzones make frames larger, so a panic with RUST_BACKTRACE=1 no
#    longer fits in the smallest stack, and a greenlet that goes 4 KiB short
#    of the end of the smallest stack natively runs off it;
#  - ASan-instrumented functions allocate a large frame without stack probes
#    (seen: `sub` of the whole 64 KiB frame, then a store 0x1720 bytes below
#    the region holding the stack), so a 64 KiB frame can jump any guard, as
#    on CPUs without probes;
#  - ASan's runtime intercepts mlock and mlockall and makes them do nothing
#    (locking its terabytes of shadow memory would be fatal), so a process
#    cannot be mlocked to see the guard-region fallback;
#  - ASan disables core dumps (its `disable_coredump=1` default on 64-bit,
#    for its terabytes of shadow memory), so the debugger test's kernel core
#    is never written, and gdb's gcore of an ASan process does not finish
#    within the test's time; the debugger tests on the live process run.
#  - the sparse-frame overflow tests locate the greenlet stack by the address
#    of a local, which ASan's instrumented frames keep off that stack (seen:
#    the local 16 TiB away from the reported stack); and a thread-stack
#    overflow is reported by ASan's own SIGSEGV handling, not Rust's.
asan_cannot=(
  --skip gdb_shows_the_greenlets_of_a_live_process_and_of_its_
  --skip sparse_
  --skip thread_stack_overflow_still_reaches_rusts_handler
  --skip a_panic_with_backtraces_on_fits_the_smallest_stack
  --skip the_same_program_without_overflow_runs_to_the_end
  --skip big_frames_
  --skip an_mlocked_process_gets_guard_pages
  --skip mlocking_later_switches_new_stacks_to_guard_pages
)

# Pass 1: locals on the real stack, so that every other test runs,
# stack-address and stack-usage tests included.
echo "--- ASan pass 1: detect_stack_use_after_return=0 (every test but those above)"
ASAN_OPTIONS="$common:detect_stack_use_after_return=0" run "${asan_cannot[@]}" "$@"

# Pass 2: ASan's fake stacks on, which is what exercises the fiber
# annotations' fake-stack handover. Locals whose address is taken then live
# on the fake stack, so the tests that measure the real stack (its use, its
# addresses, running into its guard page) cannot mean anything and are left
# out; everything else runs again. So is the test of the mapping cap on the
# guard-page fallback: ASan maps a fake stack of its own for every greenlet
# that runs, so the mappings that test counts run out in ASan's mmap first.
# And the backtrace test that proves, by the address of a local on each
# stack, that it has seen a resumer's stack both above and below the
# greenlet's: on fake stacks those addresses are ASan's, not the stacks'
# (the same backtraces are checked in pass 1 and under Valgrind).
echo "--- ASan pass 2: detect_stack_use_after_return=1 (fake stacks)"
ASAN_OPTIONS="$common:detect_stack_use_after_return=1" run "${asan_cannot[@]}" \
  --skip debug_of_a_slab_greenlet \
  --skip debug_of_main_and_of_the_running_greenlet \
  --skip debug_shows_state_parent_and_stack_usage \
  --skip debug_names_the_guard_of_the_stack \
  --skip a_thread_without_a_signal_stack_gets_one \
  --skip overflow_on_a_spawned_thread_is_reported_too \
  --skip endless_recursion_in_a_64k_greenlet_aborts_with_a_greenlet_message \
  --skip dead_slots_are_reused_last_in_first_out \
  --skip sparse_frames_ \
  --skip recursion_ \
  --skip on_the_fallback_spawning_stops_before_the_last_mappings \
  --skip a_backtrace_follows_a_resumer_above_or_below "$@"

# Pass 3: the stack tests again on the guard-page fallback (ASan passes
# MADV_GUARD_INSTALL on, so the passes above used guard regions where the
# kernel has them).
echo "--- ASan pass 3: GREENLET_GUARD=mprotect, the stack tests"
GREENLET_GUARD=mprotect ASAN_OPTIONS="$common:detect_stack_use_after_return=0" \
  cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu --features asan \
  --no-fail-fast --test guards --test overflow --test slab --test churn -- "${asan_cannot[@]}" "$@"
