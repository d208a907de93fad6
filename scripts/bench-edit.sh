#!/usr/bin/env bash
# Benchmark: qie edit against qie emulate on 127.0.0.1.
#  1. 4 s of injected latency per request, 64 images, --concurrency 16:
#     wall time against the ideal 64 / 16 x 4 s = 16 s.
#  2. No latency, 64 images, --concurrency 1: client time per edit, with the
#     time of preparing the same images (qie prepare --provider) subtracted.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
if ! build=$(swift build -c release --product qie 2>&1); then echo "$build" >&2; exit 1; fi
qie=.build/release/qie
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-edit.XXXXXX")
cleanup() { kill "${emulator:-0}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/in"
for i in $(seq -w 1 64); do cp samples/hills-4x3.jpg "$work/in/img-$i.jpg"; done

start_emulator() {  # latency seconds
  "$qie" emulate --port 0 --api-key bench-key --latency "$1" >"$work/emulator.out" 2>/dev/null &
  emulator=$!
  for _ in $(seq 50); do grep -q "listening" "$work/emulator.out" 2>/dev/null && break; sleep 0.1; done
  base=$(grep -o "http://127.0.0.1:[0-9]*" "$work/emulator.out" | head -1)
}
seconds() { python3 -c "import time; print(time.time())"; }

start_emulator 4
t0=$(seconds)
RUNPOD_API_KEY=bench-key "$qie" edit "$work/in" --provider runpod --prompt bench --out "$work/out1" \
  --concurrency 16 --base-url "$base" >/dev/null
t1=$(seconds)
kill "$emulator"; wait "$emulator" 2>/dev/null || true

start_emulator 0
t2=$(seconds)
RUNPOD_API_KEY=bench-key "$qie" edit "$work/in" --provider runpod --prompt bench --out "$work/out2" \
  --concurrency 1 --base-url "$base" >/dev/null
t3=$(seconds)
"$qie" prepare "$work/in" --provider runpod --out "$work/prep" --concurrency 1 >/dev/null
t4=$(seconds)

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:])
latency_run = t1 - t0
print(f"64 edits, 4 s latency, concurrency 16: {latency_run:.2f} s = {latency_run / 16:.3f}x the ideal 16 s (target <= 1.15x)")
edit, prepare = t3 - t2, t4 - t3
print(f"64 edits, no latency, concurrency 1: {edit:.2f} s; preparing the same images: {prepare:.2f} s")
print(f"client overhead per edit (prepare excluded, emulator's own work included): {(edit - prepare) / 64 * 1000:.1f} ms (target < 5 ms)")
PY
