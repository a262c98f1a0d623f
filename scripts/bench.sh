#!/usr/bin/env bash
# Runs every timed benchmark of docs/benchmarks.md in one go, on one machine,
# and prints the table the doc carries: criterion means for greenlet and its
# peers in the same process (corosensei, context), their ratios, the
# fp-control build's round trips beside the same peers, the memory table, and
# Python greenlet's equivalents when `python3 -c 'import greenlet'` works.
#
#   scripts/bench.sh            default criterion settings (about 6 minutes)
#   QUICK=1 scripts/bench.sh    shorter warm-up and measurement (noisier)
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
[ "${QUICK:-0}" = 1 ] && args=(--warm-up-time 1 --measurement-time 3)

echo "== machine"
grep -m1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc)   load: $(cut -d' ' -f1-3 /proc/loadavg)   $(uname -sr)"
rustc --version

rm -rf target/criterion
echo "== cargo bench --bench switch" >&2
cargo bench --bench switch -- "${args[@]}" >/dev/null 2>&1
echo "== cargo bench --bench switch --features fp-control -- round_trip" >&2
cargo bench --bench switch --features fp-control -- round_trip_fp_control "${args[@]}" >/dev/null 2>&1

py=""
if python3 -c 'import greenlet' 2>/dev/null; then
  py=$(python3 scripts/bench_greenlet.py)
else
  echo "!!! Python greenlet not installed (pip install greenlet): its column stays empty" >&2
fi

python3 - "$py" <<'PY'
import json, pathlib, sys
root = pathlib.Path("target/criterion")
def mean(group, fn, param=None):
    path = root / group / fn / (param or "") / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]
# scripts/bench_greenlet.py names its figures like criterion's benchmarks.
python_names = {
    "round_trip/python/u64": "round_trip",
    "create_run_die/python": "create_run_die",
    "throw_and_kill/python/throw_round_trip": "throw_round_trip",
    "throw_and_kill/python/kill_on_drop": "kill_on_drop",
    "ring/python_3_lap": "ring",
}
python = {}
for line in sys.argv[1].splitlines():
    name, _, value = line.partition(":")
    if value.strip().endswith("ns"):
        python[python_names.get(name.strip(), name.strip())] = float(value.strip()[:-2])
if sys.argv[1] and len(python) < len(python_names):
    sys.exit(f"scripts/bench_greenlet.py printed figures this script does not know: {sys.argv[1]!r}")

def fmt(ns):
    if ns is None:
        return "–"
    return f"{ns:,.1f}".replace(",", " ") if ns < 1000 else f"{ns/1000:,.2f} µs"
def ratio(a, b):
    return "–" if a is None or b is None else f"{a/b:.2f}×"

rows = [
    ("round trip, unit value", mean("round_trip", "greenlet", "unit"), mean("round_trip", "corosensei", "unit"), mean("round_trip", "context", "unit"), None),
    ("round trip, u64", mean("round_trip", "greenlet", "u64"), mean("round_trip", "corosensei", "u64"), mean("round_trip", "context", "u64"), python.get("round_trip")),
    ("round trip, the switch in a non-inlined helper", mean("round_trip", "greenlet", "in_helper"), mean("round_trip", "corosensei", "in_helper"), None, None),
    ("round trip, the same, the value dropped in the helper", mean("round_trip", "greenlet", "in_helper_dropping"), mean("round_trip", "corosensei", "in_helper"), None, None),
    ("round trip, unit, `fp-control` build", mean("round_trip_fp_control", "greenlet", "unit"), mean("round_trip_fp_control", "corosensei", "unit"), mean("round_trip_fp_control", "context", "unit"), None),
    ("round trip, u64, `fp-control` build", mean("round_trip_fp_control", "greenlet", "u64"), mean("round_trip_fp_control", "corosensei", "u64"), mean("round_trip_fp_control", "context", "u64"), None),
    ("create + run + die, pooled / reused stack", mean("create_run_die", "greenlet", "pooled"), mean("create_run_die", "corosensei", "reused"), None, python.get("create_run_die")),
    ("create + run + die, fresh stack", mean("create_run_die", "greenlet", "fresh"), mean("create_run_die", "corosensei", "fresh"), None, None),
    ("throw round trip (panic caught inside)", mean("throw_and_kill", "greenlet", "throw_round_trip"), None, None, python.get("throw_round_trip")),
    ("kill on drop (suspended, unwound)", mean("throw_and_kill", "greenlet", "kill_on_drop"), mean("throw_and_kill", "corosensei", "kill_on_drop"), None, python.get("kill_on_drop")),
    ("3-greenlet ring, one lap (4 switches)", mean("ring", "greenlet_3_lap"), None, None, python.get("ring")),
    ("*floor:* the bare asm switch, round trip", mean("round_trip", "asm_switch_only", "unit"), mean("round_trip", "corosensei", "unit"), None, None),
    ("*floor:* bare asm, `fp-control` build", mean("round_trip_fp_control", "asm_switch_only", "unit"), mean("round_trip_fp_control", "corosensei", "unit"), mean("round_trip_fp_control", "context", "unit"), None),
]
print()
print("| benchmark | greenlet | corosensei | context | Python greenlet | greenlet ÷ corosensei | greenlet ÷ context | Python ÷ greenlet |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, g, c, x, p in rows:
    print(f"| {name} | {fmt(g)} | {fmt(c)} | {fmt(x)} | {fmt(p)} | {ratio(g, c)} | {ratio(g, x)} | {ratio(p, g)} |")
bare = mean("round_trip", "asm_switch_only", "unit")
for label, key in (("unit", "unit"), ("u64", "u64")):
    g = mean("round_trip", "greenlet", key)
    if g and bare:
        print(f"\nRust layer: the {label} round trip is {g/bare:.2f}× the bare asm round trip.", end="")
print("\n\nTimes are criterion means in ns (µs where marked); ratios come from the same run.")
PY

echo
echo "== cargo bench --bench memory"
cargo bench --bench memory 2>/dev/null | grep -v '^$'
