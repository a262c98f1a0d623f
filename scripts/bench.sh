#!/usr/bin/env bash
# Runs every benchmark of docs/benchmarks.md in one go, on one machine:
# criterion benches against corosensei and context, the memory table, and
# Python greenlet's equivalents when Python with greenlet is available.
#
#   scripts/bench.sh            default criterion settings
#   QUICK=1 scripts/bench.sh    shorter warm-up and measurement (noisier)
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
[ "${QUICK:-0}" = 1 ] && args=(--warm-up-time 1 --measurement-time 3)

echo "== machine"
grep -m1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc)   load: $(cut -d' ' -f1-3 /proc/loadavg)"
rustc --version

echo "== cargo bench --bench switch"
cargo bench --bench switch -- "${args[@]}" >/dev/null

echo "== criterion means (ns)"
for f in $(find target/criterion -path '*/new/estimates.json' | sort); do
  name=${f#target/criterion/}; name=${name%/new/estimates.json}
  python3 -c "import json,sys; print(f\"{sys.argv[1]:<45} {json.load(open(sys.argv[2]))['mean']['point_estimate']:>10.2f}\")" "$name" "$f"
done

echo "== cargo bench --bench memory"
cargo bench --bench memory 2>/dev/null | grep -v '^$'

if python3 -c 'import greenlet' 2>/dev/null; then
  echo "== python greenlet"
  python3 scripts/bench_greenlet.py
else
  echo "== python greenlet: not installed (pip install greenlet), skipped"
fi
