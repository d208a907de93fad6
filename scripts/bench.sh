#!/usr/bin/env bash
# Every benchmark, one table: runs bench-prepare, bench-providers, bench-run,
# bench-edit, bench-gateway and bench-store (release builds, the real corpus), collects
# each figure with its reference tool's figure from the same run, the ratio
# and the target, prints them as one table and writes them to a JSON file
# (default .build/bench/figures-DATE.json) so two runs can be compared.
#
#   scripts/bench.sh [--quick] [--only NAME...] [--compare OLD.json] [--out FILE]
#
# NAME is prepare, providers, run, edit, gateway or store. Each script's own output
# goes to .build/bench/NAME.log. `make bench` runs this; `make test` runs it
# with --quick (every script's quick mode: debug builds, tiny inputs, seconds;
# its figures are not judged), so no benchmark rots.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .build/bench
out=".build/bench/figures-$(date -u +%Y%m%dT%H%M%SZ).json"
compare=""
only=()
quick=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick; out=.build/bench/quick.json ;;
    --out) out=$2; shift ;;
    --compare) compare=$2; shift ;;
    --only) shift; while [ $# -gt 0 ] && [[ $1 != --* ]]; do only+=("$1"); shift; done; continue ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only NAME...] [--compare OLD.json] [--out FILE]" >&2; exit 64 ;;
  esac
  shift
done
[ ${#only[@]} -gt 0 ] || only=(prepare providers run edit gateway store)

figures=$(mktemp)
trap 'rm -f "$figures"' EXIT
export QIE_BENCH_FIGURES=$figures
for name in "${only[@]}"; do
  echo "== $name (log: .build/bench/$name.log)" >&2
  if ! "scripts/bench-$name.sh" $quick >".build/bench/$name.log" 2>&1; then
    echo "bench-$name.sh failed; the end of its log:" >&2
    tail -20 ".build/bench/$name.log" >&2
    exit 1
  fi
done

python3 - "$figures" "$out" "$compare" "$quick" <<'PY'
import json, re, sys
path, out, compare, quick = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "--quick"
rows = []
for line in open(path):
    name, value, reference, target = line.rstrip("\n").split("\t")
    value = float(value)
    reference = float(reference) if reference else None
    ratio = value / reference if reference else None
    rows.append({"name": name, "value": value, "reference": reference, "ratio": ratio, "target": target})

def met(row):
    m = re.match(r"(<=|>=|<|>)\s*([0-9.]+)\s*(x?)", row["target"])
    if not m:
        return None
    op, bound, is_ratio = m.group(1), float(m.group(2)), m.group(3) == "x"
    measured = row["ratio"] if is_ratio else row["value"]
    if measured is None:
        return None
    return {"<=": measured <= bound, ">=": measured >= bound, "<": measured < bound, ">": measured > bound}[op]

old = {}
if compare:
    old = {row["name"]: row for row in json.load(open(compare))["figures"]}
print(f"| figure | qie | reference | ratio | target | |{' before |' if old else ''}")
print(f"|---|---|---|---|---|---|{'---|' if old else ''}")
for row in rows:
    row["met"] = None if quick else met(row)
    verdict = "quick run: not judged" if quick else {True: "met", False: "MISSED", None: ""}[row["met"]]
    reference = f"{row['reference']:.3g}" if row["reference"] is not None else ""
    ratio = f"{row['ratio']:.3f}x" if row["ratio"] is not None else ""
    before = ""
    if old:
        earlier = old.get(row["name"])
        before = (f" {earlier['ratio']:.3f}x |" if earlier and earlier.get("ratio") is not None
                  else f" {earlier['value']:.4g} |" if earlier else " |")
    print(f"| {row['name']} | {row['value']:.4g} | {reference} | {ratio} | {row['target']} | {verdict} |{before}")
json.dump({"figures": rows}, open(out, "w"), indent=1)
print(f"\nfigures written to {out}")
PY
