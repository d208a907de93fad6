# Shared by the benchmark scripts. `figure NAME VALUE REFERENCE TARGET`
# records one figure for scripts/bench.sh's table and JSON (when it set
# QIE_BENCH_FIGURES): VALUE is qie's, REFERENCE the reference tool's from the
# same run (empty when there is none), TARGET the goal as text
# ("<= 1.10x" for VALUE / REFERENCE, "< 400 MB" for VALUE alone).
figure() {
  [ -n "${QIE_BENCH_FIGURES:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$QIE_BENCH_FIGURES"
}
