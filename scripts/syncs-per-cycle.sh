#!/bin/sh
# syncs-per-cycle.sh: fsync/fdatasync calls per job cycle of the journaled
# client (claim, 10 x Log, complete), counted by strace around the benchmark
# binary. Runs BenchmarkJobCycleJournal at two cycle counts and divides the
# difference in calls by the difference in cycles, so set-up (Init, journal
# creation, registration) cancels out.
#
# Usage: scripts/syncs-per-cycle.sh [low high]   (default 100 300 cycles)
set -eu
low=${1:-100}
high=${2:-300}
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "strace not installed" >&2; exit 1; }
bin=$(mktemp -d)/client.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./client

count() { # count N -> "fdatasync fsync" calls for N cycles
	out=$(strace -f -c -e trace=fdatasync,fsync "$bin" -test.run '^$' \
		-test.bench '^BenchmarkJobCycleJournal$' -test.benchtime "${1}x" 2>&1 >/dev/null)
	fd=$(printf '%s\n' "$out" | awk '$NF=="fdatasync"{print $4}')
	fs=$(printf '%s\n' "$out" | awk '$NF=="fsync"{print $4}')
	echo "${fd:-0} ${fs:-0}"
}
set -- $(count "$low"); lo_fd=$1 lo_fs=$2
set -- $(count "$high"); hi_fd=$1 hi_fs=$2
cycles=$((high - low))
echo "cycles: $low -> $high"
echo "fdatasync: $lo_fd -> $hi_fd"
echo "fsync:     $lo_fs -> $hi_fs"
awk -v a="$lo_fd" -v b="$hi_fd" -v c="$lo_fs" -v d="$hi_fs" -v n="$cycles" 'BEGIN {
	printf "per cycle: %.2f fdatasync, %.2f fsync (target: at most 4 fdatasync)\n", (b-a)/n, (d-c)/n }'
