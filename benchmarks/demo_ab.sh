#!/bin/bash
# Compare `mlskip demo`'s speed-ups of two checkouts, each with its own .venv (make setup):
#   benchmarks/demo_ab.sh OLD_CHECKOUT NEW_CHECKOUT [ALTERNATIONS] [ROUNDS]
# Builds each checkout's demo files once (mlskip demo --out <checkout>/.demo), then
# alternates the two versions' runs of demo_speedups.py and prints the medians.
# Run it alone: it is a timing.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); alternations=${3:-6}; rounds=${4:-3}
here=$(dirname "$(realpath "$0")")
log=$(mktemp)
for v in "$old" "$new"; do
  [ -f "$v/.demo/lineitem.parquet" ] || (cd "$v" && .venv/bin/mlskip demo --out "$v/.demo" >/dev/null)
done
for _ in $(seq "$alternations"); do
  for v in "$old" "$new"; do
    echo "$v $(cd "$v" && .venv/bin/python "$here/demo_speedups.py" "$v/.demo" "$rounds" 2>/dev/null)" >> "$log"
  done
done
python3 - "$log" "$old" "$new" <<'PY'
import json, statistics, sys
log, old, new = sys.argv[1:]
runs = {old: {}, new: {}}
for line in open(log):
    version, text = line.split(" ", 1)
    for kind, by_query in json.loads(text).items():
        for q, values in by_query.items():
            runs[version].setdefault((kind, q), []).extend(values)
for q in ("top", "band", "cheap"):
    a, b = (statistics.median(runs[v][("speedup", q)]) for v in (old, new))
    ma, mb = (statistics.median(runs[v][("ms", q)]) for v in (old, new))
    n = len(runs[old][("speedup", q)])
    print(f"{q:6s} old {a:6.2f}x ({ma:5.1f} ms)  new {b:6.2f}x ({mb:5.1f} ms)  new/old {b / a:.3f}  ({n} rounds each)")
PY
