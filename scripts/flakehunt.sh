#!/usr/bin/env bash
# flakehunt.sh: runs the test packages that use real processes, timers and
# the disk with -race -count=N, on an idle machine and then beside a CPU hog
# (one busy loop per core) and a disk writer (fdatasync in a loop), and
# prints the failures per test for each condition.
#
#   scripts/flakehunt.sh [-count N] [-mode idle|loaded|both] [-run REGEXP] [PKG...]
#
# Exit status: 0 when no test failed in any condition, 1 otherwise.
# A test that fails here fails CI one run in N: fix the test (make its
# workload adapt to the machine), never raise a timeout to hide it.
set -uo pipefail
cd "$(dirname "$0")/.."

count=20
mode=both
run=
pkgs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -count) count=$2; shift 2 ;;
    -mode) mode=$2; shift 2 ;;
    -run) run=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "flakehunt: unknown flag $1" >&2; exit 2 ;;
    *) pkgs+=("$1"); shift ;;
  esac
done
case "$mode" in idle|loaded|both) ;; *) echo "flakehunt: -mode is idle, loaded or both" >&2; exit 2 ;; esac

# The packages whose tests use real processes, timers or the disk. A new
# suite with real processes or timers is added here.
if [ ${#pkgs[@]} -eq 0 ]; then
  pkgs=(
    ./internal/crashtest
    ./internal/worker
    ./internal/preempt
    ./internal/faultnet
    ./client
    ./replay
    ./session
    ./journal
    ./trackertest
    ./cmd/dcworker
    ./cmd/dcjournal
    ./cmd/dcdemo
    ./cmd/dctracker
    ./internal/corruption
    ./internal/proxy
    ./internal/statusserver
    ./cmd/dcproxy
    ./internal/storagefault
  )
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/flakehunt.XXXXXX")
status=0
hogs=()
stop_hogs() {
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done
  wait "${hogs[@]}" 2>/dev/null
  hogs=()
}
# The logs are kept when a test failed (the path is printed), removed otherwise.
# An interrupted hunt keeps its logs too (they hold the runs so far).
trap 'stop_hogs; if [ "$status" -eq 0 ]; then rm -rf "$out"; else echo "flakehunt: logs kept in $out" >&2; fi' EXIT
trap 'status=130; echo "flakehunt: interrupted" >&2; exit 130' INT TERM

start_hogs() {
  local n
  n=$(nproc)
  for _ in $(seq "$n"); do
    ( while :; do :; done ) &
    hogs+=($!)
  done
  # A disk writer: 1 MiB written and fdatasynced in a loop, in the temp dir
  # the tests use.
  ( f="$out/diskhog"; while :; do dd if=/dev/zero of="$f" bs=1M count=1 conv=fdatasync status=none; done ) &
  hogs+=($!)
}

# hunt CONDITION: runs the packages once with -count, prints the failures.
hunt() {
  local cond=$1 log="$out/$1.json" t0 t1
  t0=$(date +%s)
  local args=(-race -count="$count" -timeout 60m -json)
  [ -n "$run" ] && args+=(-run "$run")
  go test "${args[@]}" "${pkgs[@]}" >"$log" 2>"$out/$cond.stderr"
  local rc=$?
  t1=$(date +%s)
  # Count test runs and failures per test from the JSON stream.
  local runs fails
  runs=$(grep -c '"Action":"pass","Package":"[^"]*","Test":' "$log")
  fails=$(grep '"Action":"fail","Package":"[^"]*","Test":' "$log" |
    sed -E 's/.*"Package":"([^"]*)","Test":"([^"]*)".*/\1 \2/' | sort | uniq -c | sort -rn)
  printf '%s: %d test runs passed in %ds (-count=%s, %s)\n' "$cond" "$runs" $((t1 - t0)) "$count" "$(nproc) cores"
  # A package can fail outside its tests (a panic after a test ended, a
  # timeout): go test then marks the package, not a test.
  local pkgfails
  pkgfails=$(grep '"Action":"fail","Package":"[^"]*","Elapsed"' "$log" |
    sed -E 's/.*"Package":"([^"]*)".*/\1/' | while read -r pkg; do
      grep -q "\"Action\":\"fail\",\"Package\":\"$pkg\",\"Test\":" "$log" || echo "$pkg"
    done)
  if [ -n "$pkgfails" ]; then
    status=1
    echo "$cond: packages that failed outside any test (a panic after a test ended, a timeout):"
    echo "$pkgfails" | while read -r pkg; do
      echo "  $pkg:"
      if command -v jq >/dev/null; then
        jq -r --arg p "$pkg" 'select(.Package == $p and .Action == "output") | .Output' "$log" |
          grep -E '^panic:|test timed out|^fatal error:' | cut -c1-300 | head -3 | sed 's/^/    /'
      fi
    done
  fi
  if [ -n "$fails" ]; then
    status=1
    echo "$cond: failures per test (count, package, test):"
    echo "$fails" | sed 's/^/  /'
    # What each failing test said: its file:line messages, first of each.
    if command -v jq >/dev/null; then
      echo "$fails" | while read -r _ pkg test; do
        echo "  $pkg $test said:"
        # The output of the runs that failed (a run's lines come before
        # its pass or fail), file:line messages only.
        jq -r --arg p "$pkg" --arg t "$test" \
          'select(.Package == $p and .Test == $t) |
           if .Action == "output" then "O" + (.Output | rtrimstr("\n"))
           elif .Action == "fail" then "F" elif .Action == "pass" or .Action == "skip" then "P" else empty end' "$log" |
          awk '/^O/ { buf = buf substr($0, 2) "\n"; next } /^F/ { printf "%s", buf } { buf = "" }' |
          grep -E '^\s+[A-Za-z0-9_]+\.go:[0-9]+:' | cut -c1-300 | sort | uniq -c | sort -rn | head -8 | sed 's/^/    /'
      done
    fi
  elif [ $rc -ne 0 ]; then
    status=1
    echo "$cond: go test exited $rc without a failing test (a build error or a panic?):"
    grep -h -v '^{' "$out/$cond.stderr" | tail -20 | sed 's/^/  /'
    grep '"Action":"output"' "$log" | grep -i 'panic\|build failed\|timed out' | head -5 | sed 's/^/  /'
  else
    echo "$cond: 0 failures"
  fi
}

if [ "$mode" != loaded ]; then hunt idle; fi
if [ "$mode" != idle ]; then
  start_hogs
  hunt loaded
  stop_hogs
fi
exit $status
