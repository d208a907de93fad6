#!/usr/bin/env bash
# Benchmark: data-URI encoding throughput (qie vs swift-extras-base64 vs
# Foundation, one core), `qie cost` over a folder of the corpus copied to
# COUNT files (default 10,000), in files per second, and routing by price
# over the corpus (scripts/route-check.py: per release, each priced endpoint
# alone and routed; the routed total must be each image's cheapest price).
#
#   scripts/bench-providers.sh [--quick]
#
# The copied folder is kept in ~/.cache/qie-bench-cost-COUNT for later runs
# (about 14 GB for 10,000 files: real copies, since qie reads a file reached
# through two links once). Timings are warm-cache, best of 3.
# --quick (run by `make test`, so the script keeps working) uses the debug
# build, one small buffer and 40 copies of samples/; its figures are not the
# benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
root=$(pwd)
count=${COUNT:-10000}
scripts/ensure-deps.sh hyperfine

if [ "${1:-}" = "--quick" ]; then
  qie=.build/debug/qie; bench=.build/debug/qie-bench
  need_debug_build "$qie" "$bench"
  folder=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench-providers.XXXXXX")
  trap 'rm -rf "$folder"' EXIT
  "$bench" base64 quick | tee "$folder/base64.out"
  read -r qie_mbs foundation_mbs < <(awk '$1 == 256 { print $3, $7 }' "$folder/base64.out")
  figure "data-URI encoding, 256 KB: qie / Foundation (MB/s)" "$qie_mbs" "$foundation_mbs" ">= 1.00x"
  mkdir "$folder/in"
  for i in $(seq 1 8); do for f in samples/*.jpg samples/*.png samples/*.webp; do cp "$f" "$folder/in/$i-$(basename "$f")"; done; done
  files=$(find "$folder/in" -type f | wc -l)
  hyperfine --style basic --runs 1 --export-json "$folder/cost.json" "$qie cost $folder/in --provider runpod-qwen-image-edit-2511 >/dev/null"
  figure "qie cost over $files files (files/s)" "$(python3 -c "import json,sys; print($files / json.load(open(sys.argv[1]))['results'][0]['min'])" "$folder/cost.json")" "" ">= 5000 files/s"
  python3 scripts/route-check.py "$qie" samples "${QIE_BENCH_FIGURES:-}"
  exit 0
fi

corpus=${CORPUS:-$HOME/.cache/image-corpus}
if [ ! -s "$corpus/MANIFEST.tsv" ]; then
  "$root/../shared/corpus/fetch-corpus.sh" "$corpus"
fi
build_release qie qie-bench

echo "== routing by price over the corpus ($corpus/images): each endpoint alone, then --route cheapest"
python3 scripts/route-check.py .build/release/qie "$corpus/images" "${QIE_BENCH_FIGURES:-}"
# A size RunPod's list lacks, where per-megapixel prices win on small outputs.
python3 scripts/route-check.py .build/release/qie "$corpus/images" "${QIE_BENCH_FIGURES:-}" -- --size 768x768

echo "== data-URI encoding"
.build/release/qie-bench | tee /tmp/qie-bench-base64.out
# The 2 MB buffer: a typical prepared image.
read -r qie_mbs foundation_mbs < <(awk '$1 == 2048 { print $3, $7 }' /tmp/qie-bench-base64.out)
figure "data-URI encoding, 2 MB: qie / Foundation (MB/s)" "$qie_mbs" "$foundation_mbs" ">= 1.00x"

folder="$HOME/.cache/qie-bench-cost-$count"
if [ ! -f "$folder/.complete" ]; then
  echo "== copying the corpus to $count files in $folder (once)" >&2
  rm -rf "$folder"; mkdir -p "$folder"
  mapfile -t images < <(find "$corpus/images" -maxdepth 1 -type f | sort)
  for ((i = 0; i < count; i++)); do
    src=${images[$((i % ${#images[@]}))]}
    cp "$src" "$folder/$(printf '%05d' "$i")-$(basename "$src")"
  done
  touch "$folder/.complete"
fi

echo
echo "== qie cost over $count files"
hyperfine --style basic --warmup 1 --runs 3 --export-json /tmp/qie-bench-cost.json \
  ".build/release/qie cost $folder --provider runpod-qwen-image-edit-2511 >/dev/null" \
  ".build/release/qie cost $folder --provider runflow --json >/dev/null"
python3 - "$count" <<'PY'
import json, sys
count = int(sys.argv[1])
for result in json.load(open("/tmp/qie-bench-cost.json"))["results"]:
    best = result["min"]
    print(f"{result['command'].split(' --provider ')[1].split()[0]:>32}: {best:.2f} s best, {count / best:,.0f} files/s (target >= 5,000)")
PY
figure "qie cost over $count files (files/s)" "$(python3 -c "import json; print($count / json.load(open('/tmp/qie-bench-cost.json'))['results'][0]['min'])")" "" ">= 5000 files/s"
