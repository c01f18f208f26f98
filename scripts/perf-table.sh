#!/usr/bin/env bash
# perf-table.sh: the job cycle (claim, one Log, complete) of the upstream
# Python client and of the Go configurations (1 slot on disk and NoSync,
# Pool 4/16/32, dcworker + /bin/cat with 1 and 8 slots, the session alone,
# raw 4 x fdatasync on the same disk, two bare bbolt transactions synced and
# NoSync, the spawn floor: /bin/cat run by os/exec alone) against one
# dctracker, alternated round by round; prints the table with ratios, client
# CPU per cycle, the targets of issue 15 and the floors under them that the
# same rounds measured (internal/perftable).
#
#   scripts/perf-table.sh [-before REV] [perftable flags: -rounds 5 -cycles 2000 -profiles DIR ...]
#
# -before REV also runs the Go rows on the code at REV (the harness is
# copied into a worktree of REV and built there), in the same rounds.
# The upstream client is taken from ../shared/upstream beside the
# repository (python3 with requests); without it the upstream row is left
# out.
set -euo pipefail
cd "$(dirname "$0")/.."
before=
if [ "${1:-}" = -before ]; then before=$2; shift 2; fi
tmp=$(mktemp -d)
cleanup() {
  if [ -n "$before" ]; then git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/dctracker" ./cmd/dctracker
go build -o "$tmp/perftable" ./internal/perftable
args=(-dctracker "$tmp/dctracker")
if [ -n "$before" ]; then
  git worktree add -q --detach "$tmp/before" "$before"
  rm -rf "$tmp/before/internal/perftable"
  cp -r internal/perftable "$tmp/before/internal/perftable"
  (cd "$tmp/before" && go build -o "$tmp/perftable-before" ./internal/perftable)
  args+=(-before "$tmp/perftable-before")
fi
up=$(cd .. && pwd)/shared/upstream/distcompute-client-1.0.0
if [ -f "$up/distcompute_client/client.py" ] && python3 -c 'import requests' 2>/dev/null; then
  args+=(-upstream "$up")
else
  echo "perf-table: no upstream client at $up (or no python3 with requests): no upstream row" >&2
fi
"$tmp/perftable" "${args[@]}" "$@"
