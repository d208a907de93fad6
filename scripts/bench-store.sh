#!/usr/bin/env bash
# Benchmark for the shared run store (not a test):
#  1. store overhead per job: the five committed moves of a job (registered,
#     claimed, about to be sent, submitted, completed), one job after another,
#     on PostgreSQL (a throwaway server from scripts/pg-server.sh, on
#     127.0.0.1) beside the SQLite ledger, in one run (qie-bench ledger);
#  2. workers: 1, 2 and 3 `qie edit` workers on one machine sharing one run
#     through that server, against `qie emulate` with 2 s latency and a fixed
#     concurrency per worker; each count's throughput against the single
#     worker's times the count (linear scaling is 1.00x).
# The images are small (64x48 and a little more) so that the run's own
# machinery is measured, not codecs on this machine's cores (the endpoints
# still return about a megapixel, and the emulator makes it on the same
# cores as the workers, as a real endpoint would not). 288 images give each
# of three workers 12 rounds of its concurrency, so the figure is the run's
# throughput rather than its start and its last round.
# --quick (run by `make test`, so the script keeps working) uses the debug
# build, 100 jobs, 24 images at 0.3 s; its figures are not the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
scripts/ensure-deps.sh postgresql python3
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ $quick -eq 1 ]; then
  qie=.build/debug/qie; bench=.build/debug/qie-bench
  need_debug_build "$qie" "$bench"
  jobs=100; images=24; latency=0.3; concurrency=4
else
  build_release qie qie-bench
  qie=.build/release/qie; bench=.build/release/qie-bench
  jobs=2000; images=288; latency=2; concurrency=8
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-store.XXXXXX")
chmod 755 "$work"
server="$work/pg"
cleanup() {
  if [ -n "${emulator:-}" ]; then kill "$emulator" 2>/dev/null || true; fi
  scripts/pg-server.sh stop "$server" >/dev/null 2>&1 || true
  [ -n "${KEEP_BENCH:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
url=$(scripts/pg-server.sh start "$server")

echo "== 1. store overhead per job ($jobs jobs)"
$bench ledger "$jobs" | tee "$work/sqlite.out"
$bench ledger "$jobs" "$url" | tee "$work/postgres.out"
per_job() { grep -o '= [0-9.]* ms per job' "$1" | grep -o '[0-9.]*'; }
sqlite=$(per_job "$work/sqlite.out")
postgres=$(per_job "$work/postgres.out")
figure "store overhead per job, PostgreSQL (ms) vs SQLite" "$postgres" "$sqlite" "< 5 ms"

echo
echo "== 2. workers sharing one run: $images images, ${latency} s latency, concurrency $concurrency each"
mkdir -p "$work/in"
python3 - "$work/in" "$images" <<'PY'
import struct, sys, zlib
folder, count = sys.argv[1], int(sys.argv[2])
def png(width, height, shade):
    rows = b"".join(b"\x00" + bytes([shade, 255 - shade, (shade * 7) % 256]) * width for _ in range(height))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
for index in range(count):
    with open(f"{folder}/img-{index:04d}.png", "wb") as f:
        f.write(png(64 + index % 17, 48 + index % 13, index % 256))
PY
port_file="$work/emulator.port"
$qie emulate --port 0 --api-key bench-key --latency "$latency" >"$port_file" 2>/dev/null &
emulator=$!
address=$(listening_address "$port_file" "$emulator")

single=""
for workers in 1 2 3; do
  out="$work/out-$workers"
  start=$(date +%s.%N)
  pids=()
  for ((w = 0; w < workers; w++)); do
    RUNPOD_API_KEY=bench-key $qie edit "$work/in" --provider runpod --prompt night --out "$out" \
      --concurrency "$concurrency" --base-url "$address" --ledger "$url" --lease 10 >"$work/worker-$workers-$w.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "a worker failed; its log:" >&2; cat "$work"/worker-$workers-*.log >&2; exit 1; }
  done
  seconds=$(python3 -c "import time,sys; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$start")
  done_count=$(find "$out" -maxdepth 1 -name '*.jpg' | wc -l)
  [ "$done_count" -eq "$images" ] || { echo "$workers workers wrote $done_count of $images images" >&2; exit 1; }
  rate=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$images" "$seconds")
  ideal=$(python3 -c "import sys; print(f'{int(sys.argv[1]) * int(sys.argv[2]) / float(sys.argv[3]) / int(sys.argv[4]):.3f}')" \
    "$workers" "$concurrency" "$latency" 1)
  echo "$workers worker(s): $images edits in $seconds s = $rate edits/s (endpoint-bound ideal $ideal edits/s)"
  if [ "$workers" -eq 1 ]; then
    single=$rate
  else
    linear=$(python3 -c "import sys; print(f'{float(sys.argv[1]) * int(sys.argv[2]):.3f}')" "$single" "$workers")
    figure "$workers workers' throughput (edits/s) vs $workers x one worker's" "$rate" "$linear" ">= 0.90x"
  fi
done
