# Shared by the benchmark scripts. `figure NAME VALUE REFERENCE TARGET`
# records one figure for scripts/bench.sh's table and JSON (when it set
# QIE_BENCH_FIGURES): VALUE is qie's, REFERENCE the reference tool's from the
# same run (empty when there is none), TARGET the goal as text
# ("<= 1.10x" for VALUE / REFERENCE, "< 400 MB" for VALUE alone).
figure() {
  [ -n "${QIE_BENCH_FIGURES:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$QIE_BENCH_FIGURES"
}

# Builds the release products named, from the repository's root; on failure
# prints the build's output and ends the script.
build_release() {
  local product build
  for product in "$@"; do
    if ! build=$(SWIFT_DETERMINISTIC_HASHING=1 swift build -c release --product "$product" 2>&1); then
      echo "$build" >&2
      exit 1
    fi
  done
}

# Quick modes use the debug build `make test` made: ends the script when one
# of the executables named is missing.
need_debug_build() {
  local executable
  for executable in "$@"; do
    [ -x "$executable" ] || { echo "build first (swift build --build-tests): $executable is missing" >&2; exit 1; }
  done
}

# `listening_address FILE PID`: waits until the process PID has printed an
# address (http://HOST:PORT) into FILE, and prints it. An event, not a time:
# a debug build on a busy machine may take long to start; the wait ends when
# the address is printed, or fails at once when the process is gone.
listening_address() {
  until grep -q "http://[0-9.]*:[0-9]" "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "$(basename "$1") : the process exited before listening:" >&2; cat "$1" >&2; return 1; }
    sleep 0.05
  done
  grep -o "http://[0-9.]*:[0-9]*" "$1" | head -1
}
