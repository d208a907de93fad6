#!/usr/bin/env bash
# Benchmark: qie prepare / qie probe against vipsthumbnail, ImageMagick,
# Pillow and vipsheader on the real-world corpus, in one run, as ratios.
#
#   scripts/bench-prepare.sh [--no-imagemagick | --quick]
#
# CORPUS (default ~/.cache/image-corpus) is built by
# ../shared/corpus/fetch-corpus.sh when missing. Wall time and peak memory come
# from GNU time; every tool reads the same files from a warm page cache and
# writes into a scratch folder that is removed afterwards. Each command runs
# RUNS times (default 2, ImageMagick once) and keeps its fastest time, since
# a shared machine's noise only ever adds time. --no-imagemagick skips
# ImageMagick (minutes). --quick (run by `make test`, so the script keeps
# working) runs the debug build once on samples/ without ImageMagick, in
# seconds; its figures are not the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
root=$(pwd)
imagemagick=1; quick=0
case "${1:-}" in
  --quick) quick=1; imagemagick=0 ;;
  --no-imagemagick) imagemagick=0 ;;
esac

scratch=$(mktemp -d "${TMPDIR:-/tmp}/qie-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# Pillow from the environment `make test` installs, when there is one.
python=.build/openai-sdk/bin/python
[ -x "$python" ] || python=python3
if [ $quick -eq 1 ]; then
  scripts/ensure-deps.sh vipsthumbnail hyperfine time
  qie="$root/.build/debug/qie"
  [ -x "$qie" ] || { echo "build qie first (swift build --product qie)" >&2; exit 1; }
  images="$scratch/images"; mkdir -p "$images"
  cp samples/*.jpg samples/*.png samples/*.webp "$images"/
  RUNS=1
else
  scripts/ensure-deps.sh vipsthumbnail convert hyperfine time
  corpus=${CORPUS:-$HOME/.cache/image-corpus}
  if [ ! -s "$corpus/MANIFEST.tsv" ]; then
    fetch="$root/../shared/corpus/fetch-corpus.sh"
    [ -x "$fetch" ] || { echo "no corpus at $corpus and no $fetch to build it" >&2; exit 1; }
    "$fetch" "$corpus"
  fi
  images="$corpus/images"
  build_release qie
  qie="$root/.build/release/qie"
fi
"$python" -c "import PIL" 2>/dev/null || "$python" -m pip install -q Pillow >/dev/null 2>&1 || {
  echo "Pillow is needed for the comparison: pip install Pillow" >&2; exit 1; }
count=$(find "$images" -maxdepth 1 -type f | wc -l)
cat "$images"/* >/dev/null  # warm the page cache

# A folder of the corpus three times over (copies: qie reads a file reached
# through two links once), to show memory stays flat as the folder grows.
mkdir -p "$scratch/x3"
for copy in 1 2 3; do
  for f in "$images"/*; do cp "$f" "$scratch/x3/$copy-$(basename "$f")"; done
done

sync  # let the copies reach the disk before anything is timed

# Each command runs RUNS times (default 2); the fastest wall time and the
# largest peak memory are kept. Outputs are removed and synced between runs.
runs=${RUNS:-2}
declare -A wall mem
measure() {  # name, command...
  local name=$1; shift
  local best="" peak=0 n
  for n in $(seq "$runs"); do
    rm -rf "$scratch/out"; mkdir -p "$scratch/out"; sync
    /usr/bin/time -f "%e %M" -o "$scratch/time" "$@" >/dev/null 2>"$scratch/stderr" || {
      echo "$name failed:" >&2; tail -5 "$scratch/stderr" >&2; exit 1; }
    read -r seconds kb <"$scratch/time"
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $seconds < $best else 1)"; then best=$seconds; fi
    [ $((kb / 1024)) -gt $peak ] && peak=$((kb / 1024))
  done
  wall[$name]=$best
  mem[$name]=$peak
  printf '  %-34s %8.2f s %7d MB\n' "$name" "$best" "$peak" >&2
}

cat >"$scratch/pillow_pad.py" <<'PY'
import os, sys
from PIL import Image, ImageOps
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    with Image.open(os.path.join(src, name)) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        ImageOps.pad(im, (1024, 1280), color=(255, 255, 255)).save(os.path.join(dst, name + ".png"))
PY

echo "corpus: $count images in $images; $(nproc) cores" >&2
measure "qie prepare -> jpeg q90" "$qie" prepare "$images" --size 1024x1280 --fit contain --format jpeg --quality 90 --out "$scratch/out"
measure "qie prepare -> png" "$qie" prepare "$images" --size 1024x1280 --fit contain --format png --out "$scratch/out"
measure "qie prepare -> jpeg, corpus x3" "$qie" prepare "$scratch/x3" --size 1024x1280 --fit contain --format jpeg --quality 90 --out "$scratch/out"
measure "vipsthumbnail -> jpeg q90" sh -c 'vipsthumbnail -s 1024x1280 -o "$1/%s.jpg[Q=90]" "$0"/*' "$images" "$scratch/out"
measure "vipsthumbnail -> png" sh -c 'vipsthumbnail -s 1024x1280 -o "$1/%s.png" "$0"/*' "$images" "$scratch/out"
measure "Pillow ImageOps.pad -> png" "$python" "$scratch/pillow_pad.py" "$images" "$scratch/out"
if [ $imagemagick -eq 1 ]; then
  runs=1  # ImageMagick takes minutes; one run is plenty to compare
  measure "ImageMagick convert -> png" sh -c 'for f in "$0"/*; do convert "$f" -resize 1024x1280 -gravity center -background white -extent 1024x1280 "$1/$(basename "$f").png"; done' "$images" "$scratch/out"
fi

# Probing: many fast runs, so hyperfine.
hyperfine --style none --warmup 2 --runs 10 --export-json "$scratch/probe.json" \
  "$qie probe $images" "vipsheader $images/*" >/dev/null 2>&1 || true
probe_qie=$(python3 -c "import json;r=json.load(open('$scratch/probe.json'))['results'];print(r[0]['mean'])")
probe_vh=$(python3 -c "import json;r=json.load(open('$scratch/probe.json'))['results'];print(r[1]['mean'])")

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
verdict() {  # a quick run's figures (debug build, samples/) are not judged
  if [ $quick -eq 1 ]; then echo "quick run: not judged"; else python3 -c "print('met' if $1 else 'MISSED')"; fi
}
q_jpeg=${wall["qie prepare -> jpeg q90"]}; q_png=${wall["qie prepare -> png"]}
v_jpeg=${wall["vipsthumbnail -> jpeg q90"]}; pil=${wall["Pillow ImageOps.pad -> png"]}
peak=${mem["qie prepare -> jpeg q90"]}; peak_png=${mem["qie prepare -> png"]}; peak3=${mem["qie prepare -> jpeg, corpus x3"]}

figure "prepare -> jpeg: qie / vipsthumbnail (s)" "$q_jpeg" "$v_jpeg" "<= 0.60x"
figure "prepare -> png: qie / Pillow (s)" "$q_png" "$pil" "<= 0.40x"
[ $imagemagick -eq 1 ] && figure "prepare -> png: qie / ImageMagick (s)" "$q_png" "${wall["ImageMagick convert -> png"]}" "<= 0.20x"
figure "prepare peak memory, corpus x3 (MB)" "$peak3" "" "< 400 MB"
figure "probe: qie / vipsheader (s)" "$probe_qie" "$probe_vh" "<= 1.00x"

echo
echo "| measure | value | target | |"
echo "|---|---|---|---|"
echo "| qie jpeg / vipsthumbnail jpeg (wall) | $(ratio "$q_jpeg" "$v_jpeg")x ($q_jpeg s vs $v_jpeg s) | <= 0.60x | $(verdict "$q_jpeg/$v_jpeg <= 0.6") |"
echo "| Pillow png / qie png (wall) | $(ratio "$pil" "$q_png")x faster ($pil s vs $q_png s) | >= 2.5x | $(verdict "$pil/$q_png >= 2.5") |"
if [ $imagemagick -eq 1 ]; then
  im=${wall["ImageMagick convert -> png"]}
  echo "| ImageMagick png / qie png (wall) | $(ratio "$im" "$q_png")x faster ($im s vs $q_png s) | >= 5x | $(verdict "$im/$q_png >= 5") |"
fi
echo "| qie peak memory (jpeg, png, corpus x3) | $peak MB, $peak_png MB, $peak3 MB | < 400 MB | $(verdict "max($peak, $peak_png, $peak3) < 400") |"
echo "| qie probe / vipsheader (wall, mean of 10) | $(ratio "$probe_qie" "$probe_vh")x ($(printf '%.3f' "$probe_qie") s vs $(printf '%.3f' "$probe_vh") s) | <= 1.00x | $(verdict "$probe_qie <= $probe_vh") |"
