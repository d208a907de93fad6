#!/usr/bin/env bash
# Benchmark for folder runs (not a test):
#  1. ledger overhead per job: the five committed moves of a job on a real
#     SQLite file (qie-bench ledger);
#  2. a 10,000-image dry run (plan and cost only) of `qie edit --dry-run`,
#     beside `qie cost` on the same folder, in one hyperfine run;
#  3. memory across a run: peak RSS of `qie edit` against `qie emulate` (no
#     latency) over 1,000 and 10,000 small images, with the ledger, sidecars,
#     thumbnails and report. Lumenfall takes any WxH, so the images stay at
#     64x48 both ways: the run's own machinery is measured, not 1 MP codecs.
# Needs the corpus for 2 (../shared/corpus/fetch-corpus.sh), copied once to
# ~/.cache/qie-bench-cost-10000 as scripts/bench-providers.sh does.
# Arguments pick parts: ledger, dry, memory (default: all three).
# --quick (run by `make test`, so the script keeps working) uses the debug
# build, 200 ledger jobs, a dry run over 50 copies of samples/ and 20 / 100
# edits; its figures are not the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
scripts/ensure-deps.sh hyperfine time
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ $quick -eq 1 ]; then
  qie=.build/debug/qie; bench=.build/debug/qie-bench
  need_debug_build "$qie" "$bench"
  jobs=200; dry=50; small=20; large=100
else
  build_release qie qie-bench
  qie=.build/release/qie; bench=.build/release/qie-bench
  jobs=5000; dry=10000; small=1000; large=10000
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-run.XXXXXX")
cleanup() { if [ -n "${emulator:-}" ]; then kill "$emulator" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

parts=" ${*:-ledger dry memory} "
if [[ $parts == *" ledger "* ]]; then
echo "== 1. ledger overhead"
$bench ledger "$jobs" | tee "$work/ledger.out"
figure "ledger overhead per job (ms)" "$(grep -o '= [0-9.]* ms per job' "$work/ledger.out" | grep -o '[0-9.]*')" "" "< 1 ms"
fi

if [[ $parts == *" dry "* ]]; then
echo
echo "== 2. dry run over $dry images"
corpus=${CORPUS:-$HOME/.cache/image-corpus}
folder="$HOME/.cache/qie-bench-cost-10000"
if [ $quick -eq 1 ]; then
  folder="$work/dry-in"; mkdir -p "$folder"
  mapfile -t images < <(find samples -maxdepth 1 -name '*.jpg' | sort)
  for ((i = 0; i < dry; i++)); do cp "${images[$((i % ${#images[@]}))]}" "$folder/$(printf '%05d' "$i").jpg"; done
elif [ ! -f "$folder/.complete" ]; then
  [ -d "$corpus/images" ] || ../shared/corpus/fetch-corpus.sh "$corpus" >&2
  rm -rf "$folder"; mkdir -p "$folder"
  mapfile -t images < <(find "$corpus/images" -maxdepth 1 -type f | sort)
  for ((i = 0; i < 10000; i++)); do
    src=${images[$((i % ${#images[@]}))]}
    cp "$src" "$folder/$(printf '%05d' "$i")-$(basename "$src")"
  done
  touch "$folder/.complete"
fi
hyperfine --style basic --warmup 1 --runs $([ $quick -eq 1 ] && echo 1 || echo 3) --export-json "$work/dry.json" \
  "$qie edit $folder --provider runflow --prompt 'make it night' --out $work/dry --dry-run >/dev/null" \
  "$qie cost $folder --provider runflow >/dev/null"
read -r dry_s cost_s < <(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(r[0]['min'], r[1]['min'])" "$work/dry.json")
figure "edit --dry-run over $dry files (s; qie cost beside it)" "$dry_s" "$cost_s" "< 10 s"
fi

[[ $parts == *" memory "* ]] || exit 0
echo
echo "== 3. peak memory, $small and $large edits (64x48 images, no latency)"
mkdir -p "$work/img"
# Pillow from the environment `make test` installs, when there is one.
python=.build/openai-sdk/bin/python
[ -x "$python" ] || python=python3
"$python" - "$work/img" <<'PY'
import sys
from PIL import Image
Image.new("RGB", (64, 48), (200, 90, 40)).save(sys.argv[1] + "/seed.jpg", quality=90)
PY
for n in $small $large; do
  mkdir -p "$work/in-$n"
  for ((i = 0; i < n; i++)); do cp "$work/img/seed.jpg" "$work/in-$n/$(printf '%05d' "$i").jpg"; done
done
"$qie" emulate --port 0 --api-key bench-key >"$work/emulator.out" 2>/dev/null &
emulator=$!
base=$(listening_address "$work/emulator.out" "$emulator")
for n in $small $large; do
  start=$(date +%s.%N)
  LUMENFALL_API_KEY=bench-key /usr/bin/time -f "%M" -o "$work/rss-$n" "$qie" edit "$work/in-$n" --provider lumenfall \
    --size 64x48 --prompt bench --out "$work/out-$n" --concurrency 8 --base-url "$base" >/dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; print(f'{sys.argv[1]:>6} edits: {float(sys.argv[3]) - float(sys.argv[2]):.1f} s, peak RSS {int(sys.argv[4]) / 1024:.1f} MB')" \
    "$n" "$start" "$end" "$(cat "$work/rss-$n")"
done
python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); print(f'peak RSS {sys.argv[4]} / {sys.argv[3]} edits = {b / a:.2f} (target within 20%)')" \
  "$(cat "$work/rss-$small")" "$(cat "$work/rss-$large")" "$small" "$large"
figure "edit peak RSS, $large / $small edits (KB)" "$(cat "$work/rss-$large")" "$(cat "$work/rss-$small")" "<= 1.20x"
