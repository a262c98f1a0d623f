#!/usr/bin/env bash
# Instructions per operation, counted by valgrind's callgrind: each operation
# of benches/instructions.rs runs at two counts, and the difference divided by
# the difference in counts is what one operation costs (start-up cancels out).
# Repeatable for the same binary, whatever else the machine is doing.
#
#   scripts/instructions.sh [cargo flags, e.g. --features fp-control]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

bin=$(cargo bench --bench instructions --no-run --message-format=json "$@" 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])' | tail -1)
[ -n "$bin" ] || { echo "could not build benches/instructions.rs" >&2; exit 1; }

count() { # operation iterations -> instructions of the whole run
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^totals:/ {print $2}' "$out"
  rm -f "$out"
}

ops=(unit_round_trip u64_round_trip unit_in_helper create_run_die kill_on_drop bare_switch_round_trip)
if [ "$(uname -m)" = x86_64 ]; then
  ops+=(corosensei_unit corosensei_u64 corosensei_in_helper corosensei_create_reused corosensei_force_unwind)
fi
lo=${LO:-10000}; hi=${HI:-20000}
printf '%-28s %12s\n' operation "instructions"
for op in "${ops[@]}"; do
  a=$(count "$op" "$lo"); b=$(count "$op" "$hi")
  python3 -c "import sys; print(f'{sys.argv[1]:<28} {(int(sys.argv[3])-int(sys.argv[2]))/(int(sys.argv[5])-int(sys.argv[4])):>12.1f}')" "$op" "$a" "$b" "$lo" "$hi"
done
