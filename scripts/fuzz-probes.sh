#!/usr/bin/env bash
# Fuzzes the C header probes (JPEG, PNG, WebP, EXIF) and the WebP metadata
# remover with libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer,
# starting from the test fixtures and samples.
#
#   scripts/fuzz-probes.sh [SECONDS]     (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
scripts/ensure-deps.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/qie-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
shims=CModules/CCodecShims
# shellcheck disable=SC2046
clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$shims/include" $(pkg-config --cflags libpng libwebpmux) \
  Tests/Fuzz/probe_fuzzer.c "$shims"/*.c -o "$work/fuzzer" $(pkg-config --libs libpng libjpeg libwebpmux) 2>/dev/null
mkdir -p "$work/corpus"
cp Tests/QieImagingTests/Fixtures/*.jpg Tests/QieImagingTests/Fixtures/*.png samples/*.jpg samples/*.png samples/*.webp "$work/corpus/"
"$work/fuzzer" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 "$work/corpus" 2>&1 |
  grep -E "ERROR|SUMMARY|number_of_executed_units|Done"
