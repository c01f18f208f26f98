#!/usr/bin/env bash
# abbench.sh: compares benchmarks of a package at an older commit ("before")
# and in the work tree ("after") side by side in one run: both test binaries
# are built first, then run alternately, round by round, so that the disk's
# and the machine's drift hits both alike. Prints every round and the median
# of each metric per side.
#
#   scripts/abbench.sh [-rounds N] [-benchtime T] REV PKG BENCH_REGEXP
#   scripts/abbench.sh -rounds 7 -benchtime 300x 071087e ./client 'JobCycle'
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
benchtime=200x
while [ $# -gt 0 ]; do
  case "$1" in
    -rounds) rounds=$2; shift 2 ;;
    -benchtime) benchtime=$2; shift 2 ;;
    -*) echo "abbench: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 3 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
rev=$1 pkg=$2 bench=$3
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/before" "$rev"
(cd "$tmp/before" && go test -c -o "$tmp/before.test" "$pkg")
go test -c -o "$tmp/after.test" "$pkg"
dir=$(cd "$pkg" && pwd)
for r in $(seq "$rounds"); do
  for side in before after; do
    # Run from the package's directory, as go test does.
    (cd "$dir" && "$tmp/$side.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" -test.benchmem) |
      awk -v side="$side" -v r="$r" '/^Benchmark/ {print side, r, $0}' | tee -a "$tmp/all.txt"
  done
done
echo
echo "medians over $rounds rounds (before -> after):"
awk '
  { name=$3; sub(/-[0-9]+$/, "", name)
    for (i = 5; i < NF; i += 2) { key = name SUBSEP $(i+1); vals[$1, key] = vals[$1, key] " " $i; keys[key] = 1 } }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (k in keys) {
      split(k, p, SUBSEP)
      b = median(vals["before", k]); a = median(vals["after", k])
      printf "  %-40s %-16s %12.4g -> %12.4g  (%+.1f%%)\n", p[1], p[2], b, a, (b != 0 ? 100 * (a - b) / b : 0)
    }
  }' "$tmp/all.txt" | sort
