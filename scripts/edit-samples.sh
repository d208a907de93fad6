#!/usr/bin/env bash
# The edit half of `make samples`: qie edit on samples/ against a local
# `qie emulate` (no network, no key of yours), restoring each result to its
# input's size, then the ledger's summary and the report's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-samples-out/edited}
qie=${QIE:-.build/release/qie}
log=$(mktemp)
"$qie" emulate --port 0 --api-key samples-key --latency 0.5 >"$log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null || true; rm -f "$log"' EXIT
# Waits for its address (however long a busy machine takes), unless it exits first.
until grep -q "http://127.0.0.1:[0-9]" "$log"; do
  kill -0 "$emulator" 2>/dev/null || { echo "qie emulate exited before listening:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.05
done
base=$(grep -o "http://127.0.0.1:[0-9]*" "$log" | head -1)
RUNFLOW_API_KEY=samples-key "$qie" edit samples --provider runflow --prompt "Make it dusk" \
  --restore exact --format webp --out "$out" --base-url "$base"
"$qie" status "$out"
