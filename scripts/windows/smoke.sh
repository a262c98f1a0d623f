#!/usr/bin/env bash
# Builds tests/windows_smoke (a program that depends on greenlet by path) for
# x86_64-pc-windows-gnu and runs it under wine: its checks must print
# `smoke ok`, and its `overflow` mode must end with the greenlet overflow
# message and a non-zero status. Needs mingw-w64 and wine (test.sh installs
# them) and, for speed, a running `wineserver -p`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# The crate's own target directory: the dependencies built for its Windows
# tests are reused.
target_dir=$root/target
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
cargo build --quiet --target x86_64-pc-windows-gnu \
  --manifest-path "$root/tests/windows_smoke/Cargo.toml" --target-dir "$target_dir"
exe=$target_dir/x86_64-pc-windows-gnu/debug/windows_smoke.exe
runner=$root/scripts/windows/wine-runner
export GREENLET_WINE_SHIM_DIR=$root/target/windows-shim

out=$("$runner" "$exe" 2>&1) || { echo "$out"; echo "FAIL: the smoke checks exited with $?"; exit 1; }
echo "$out"
grep -q '^smoke ok' <<<"$out" || { echo "FAIL: no 'smoke ok'"; exit 1; }

set +e
out=$("$runner" "$exe" overflow 2>&1)
status=$?
set -e
echo "$out"
if [ "$status" -eq 0 ]; then echo "FAIL: the overflow mode exited with status 0"; exit 1; fi
grep -q 'greenlet stack overflow' <<<"$out" || { echo "FAIL: no overflow message"; exit 1; }
if grep -q 'survived an endless recursion' <<<"$out"; then echo "FAIL: the overflow was not caught"; exit 1; fi
echo "overflow: ended with status $status and the message: ok"
echo "windows smoke: ok"
