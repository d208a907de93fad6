#!/usr/bin/env bash
# Benchmark: qie edit against qie emulate on 127.0.0.1.
#  1. 4 s of injected latency per request, 64 images, --concurrency 16:
#     wall time against the ideal 64 / 16 x 4 s = 16 s.
#  2. No latency, 64 images, --concurrency 1: the client's own time per edit,
#     from each sidecar's timings (endpoint + fetch) minus the time the
#     emulator itself took for those requests (its --log-requests lines):
#     building the body (base64), HTTP both ways, JSON, the download.
#  3. The same as 1 with Runflow's polling flow.
#   scripts/bench-edit.sh [--quick]
# --quick (run by `make test`, so the script keeps working) uses the debug
# build, 8 images, 0.3 s of latency and --concurrency 4; its figures are not
# the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
quick=0
[ "${1:-}" = "--quick" ] && quick=1
if [ $quick -eq 1 ]; then
  qie=.build/debug/qie
  [ -x "$qie" ] || { echo "build qie first (swift build --product qie)" >&2; exit 1; }
  images=8; latency=0.3; concurrency=4
else
  if ! build=$(SWIFT_DETERMINISTIC_HASHING=1 swift build -c release --product qie 2>&1); then echo "$build" >&2; exit 1; fi
  qie=.build/release/qie
  images=64; latency=4; concurrency=16
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-edit.XXXXXX")
cleanup() { if [ -n "${emulator:-}" ]; then kill "$emulator" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/in"
for i in $(seq -w 1 "$images"); do cp samples/hills-4x3.jpg "$work/in/img-$i.jpg"; done

start_emulator() {  # latency seconds
  "$qie" emulate --port 0 --api-key bench-key --latency "$1" --log-requests >"$work/emulator.out" 2>/dev/null &
  emulator=$!
  for _ in $(seq 50); do grep -q "listening" "$work/emulator.out" 2>/dev/null && break; sleep 0.1; done
  base=$(grep -o "http://127.0.0.1:[0-9]*" "$work/emulator.out" | head -1)
}
seconds() { python3 -c "import time; print(time.time())"; }

start_emulator "$latency"
t0=$(seconds)
RUNPOD_API_KEY=bench-key "$qie" edit "$work/in" --provider runpod --prompt bench --out "$work/out1" \
  --concurrency "$concurrency" --base-url "$base" >/dev/null
t1=$(seconds)
kill "$emulator"; wait "$emulator" 2>/dev/null || true

start_emulator 0
RUNPOD_API_KEY=bench-key "$qie" edit "$work/in" --provider runpod --prompt bench --out "$work/out2" \
  --concurrency 1 --base-url "$base" >/dev/null
cp "$work/emulator.out" "$work/emulator-nolatency.out"
kill "$emulator"; wait "$emulator" 2>/dev/null || true

start_emulator "$latency"
t4=$(seconds)
RUNFLOW_API_KEY=bench-key "$qie" edit "$work/in" --provider runflow --flow poll --prompt bench --out "$work/out3" \
  --concurrency "$concurrency" --base-url "$base" >/dev/null
t5=$(seconds)
polls=$(grep -c "^GET /v1/runs/" "$work/emulator.out" || true)

python3 - "$t0" "$t1" "$t4" "$t5" "$polls" "$work" "$images" "$latency" "$concurrency" <<'PY'
import glob, json, re, statistics, sys
t0, t1, t4, t5 = map(float, sys.argv[1:5])
polls, work = int(sys.argv[5]), sys.argv[6]
images, latency, concurrency = int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
ideal = images / concurrency * latency
latency_run = t1 - t0
print(f"runpod sync, {images} edits, {latency:g} s latency, concurrency {concurrency}: {latency_run:.2f} s = {latency_run / ideal:.3f}x the ideal {ideal:g} s (target <= 1.15x)")
poll_run = t5 - t4
print(f"runflow poll, {images} edits, {latency:g} s latency, concurrency {concurrency}: {poll_run:.2f} s = {poll_run / ideal:.3f}x the ideal {ideal:g} s ({polls} polls)")

# Sidecars only: the run's report.json sits in the same folder.
sidecars = [s for s in (json.load(open(p)) for p in glob.glob(f"{work}/out2/*.json")) if "timings" in s]
server = [float(m.group(1)) for m in re.finditer(r"\((\d+\.\d+) ms\)", open(f"{work}/emulator-nolatency.out").read())]
client = sum(s["timings"]["endpoint"] + s["timings"]["fetch"] for s in sidecars) * 1000
overhead = (client - sum(server)) / len(sidecars)
finish = statistics.mean(s["timings"]["finish"] for s in sidecars) * 1000
prepare = statistics.mean(s["timings"]["prepare"] for s in sidecars) * 1000
print(f"no latency, concurrency 1, {len(sidecars)} edits: client overhead per edit {overhead:.2f} ms (target < 5 ms)")
print(f"  (endpoint + fetch as the client saw them, minus the emulator's own {sum(server) / len(sidecars):.2f} ms per edit;")
print(f"   excluded: prepare {prepare:.1f} ms and writing the result {finish:.1f} ms per edit)")
PY
