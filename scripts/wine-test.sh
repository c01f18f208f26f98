#!/usr/bin/env bash
# wine-test.sh: the Windows build, tested under Wine (Debian's wine64).
#
#  1. The test binaries of journal, session, client and replay, built with
#     GOOS=windows and run under Wine in their package folders (-test.short).
#     The tests in SKIP below cannot pass there; each says why.
#  2. dcworker.exe end to end against dctracker (the Linux binary, on
#     127.0.0.1), with cmd.exe running scripts/wine/job.bat as the worker's
#     command: a first run is killed (SIGKILL to the Wine process) while a
#     job is held with a checkpoint, its command must die with it (job
#     object); a restart on the same journal resumes that job from its
#     checkpoint and finishes the stage; the journal written on "Windows" is
#     read by the Linux dcjournal, and dcjournal.exe sees the running
#     worker's lock. Then a Ctrl-C (SIGINT, which Wine turns
#     into CTRL_C_EVENT) drains a third run: exit 0, the job left resumable.
#
# Usage: scripts/wine-test.sh        (needs wine64, and binutils-mingw-w64-x86-64
#                                     when Wine has no bcryptprimitives.dll)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Static and path-free like the release build, so that what .ci/run's cross
# build compiled is reused.
export CGO_ENABLED=0

# Tests that cannot run under Wine, by package, as -test.skip patterns.
# journal: compaction renames the compacted copy over the open journal;
#   Windows refuses to replace a file that is open without FILE_SHARE_DELETE
#   ("Sharing violation"), so Compact fails there: a bug of the journal on
#   Windows, not of Wine. TestCrash's child process and TestConcurrentSlots
#   call Compact too.
# journal: TestModesAndLock checks Unix permission bits (0600/0700), which
#   Windows does not have (TestOwnerOnlyACL checks what replaces them).
# journal: TestOwnerOnlyACL: Wine keeps no per-file ACL; SetNamedSecurityInfoW
#   answers success and the DACL read back is still the one Wine derives from
#   the Unix mode bits.
# session: TestImports runs `go list`: the Linux go command cannot be
#   started from a Windows program.
# session: TestMaxElapsedTime wants 3 attempts inside a 200 ms
#   MaxElapsedTime; under Wine on a busy machine the first attempt alone can
#   take that long ("attempts = 1, want several"). Timing-dependent.
# replay: TestSettleTable gives every request, the registration included, a
#   100 ms attempt timeout: under Wine on a busy machine the registration
#   misses it now and then ("session: new: attempt timed out after 100ms").
#   A timing-dependent test, to be fixed in the test.
declare -A SKIP=(
	[journal]='^(TestCrash|TestConcurrentSlots|TestSnapshotAndCompact|TestCompactWhileAnotherWaits|TestAutoCompact|TestModesAndLock|TestOwnerOnlyACL)$'
	[session]='^(TestImports|TestMaxElapsedTime)$'
	[client]=''
	[replay]='^TestSettleTable$'
)
packages=(journal session client replay)

wine=${WINE:-}
if [ -z "$wine" ]; then
	for w in wine64 /usr/lib/wine/wine64 wine; do
		if command -v "$w" >/dev/null 2>&1; then wine=$(command -v "$w"); break; fi
	done
fi
[ -n "$wine" ] || { echo "wine-test.sh: no wine64 (apt-get install wine64)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	WINEPREFIX="$work/prefix" "$(command -v wineserver || echo "$(dirname "$wine")/wineserver")" -k 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
start=$(date +%s)

# winpath turns a Linux path into the Z: path Wine maps it to.
winpath() { printf 'Z:%s' "${1//\//\\}"; }

echo "--- wine: $("$wine" --version 2>/dev/null || echo "$wine"), prefix $WINEPREFIX"
"$wine" wineboot --init >"$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log"; exit 1; }
sys32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
	as=x86_64-w64-mingw32-as
	command -v "$as" >/dev/null || { echo "wine-test.sh: Wine has no bcryptprimitives.dll (Go 1.24+ needs it) and $as is missing to build one (apt-get install binutils-mingw-w64-x86-64)" >&2; exit 1; }
	d="$work/shim"
	mkdir -p "$d"
	printf 'LIBRARY bcrypt.dll\nEXPORTS\nBCryptGenRandom\n' >"$d/bcrypt.def"
	printf 'LIBRARY bcryptprimitives.dll\nEXPORTS\nProcessPrng\n' >"$d/exports.def"
	x86_64-w64-mingw32-as -o "$d/prng.o" scripts/wine/bcryptprimitives.s
	x86_64-w64-mingw32-dlltool -d "$d/bcrypt.def" -l "$d/libbcrypt.a"
	x86_64-w64-mingw32-ld --shared -e DllMain -o "$sys32/bcryptprimitives.dll" "$d/exports.def" "$d/prng.o" "$d/libbcrypt.a"
	echo "wine-test.sh: built bcryptprimitives.dll (ProcessPrng over BCryptGenRandom) into the prefix"
fi
echo "wine-test.sh: prefix ready in $(( $(date +%s) - start ))s"

# 1. Unit tests.
overlay="$work/overlay.json"
{
	printf '{"Replace":{'
	sep=
	for p in "${packages[@]}"; do
		sed "s/^package PACKAGE/package $p/" scripts/wine/deleteat_fallback_test.go.tmpl >"$work/fallback_$p.go"
		printf '%s"%s/%s/zz_wine_deleteat_test.go":"%s"' "$sep" "$root" "$p" "$work/fallback_$p.go"
		sep=,
	done
	printf '}}\n'
} >"$overlay"
failed=()
for p in "${packages[@]}"; do
	GOOS=windows GOARCH=amd64 go test -c -trimpath -overlay "$overlay" -ldflags=-checklinkname=0 -o "$work/$p.test.exe" "./$p"
	skip=${SKIP[$p]}
	args=(-test.short -test.count=1 -test.v)
	[ -n "$skip" ] && args+=("-test.skip=$skip")
	t0=$(date +%s)
	if (cd "$p" && "$wine" "$work/$p.test.exe" "${args[@]}" >"$work/$p.log" 2>&1); then
		passed=$(grep -c '^--- PASS' "$work/$p.log" || true)
		skipped=$(grep -c '^--- SKIP' "$work/$p.log" || true)
		echo "ok   $p (windows/amd64 under wine) $(( $(date +%s) - t0 ))s: $passed tests passed, $skipped skipped by themselves${skip:+; not run: $skip}"
	else
		echo "FAIL $p (windows/amd64 under wine):"
		grep -v -E '^ *(=== |--- PASS)' "$work/$p.log" | tail -n 60
		failed+=("$p")
	fi
done

# 2. dcworker.exe end to end.
echo "--- wine: dcworker.exe end to end"
e2e="$work/e2e"
mkdir -p "$e2e"
GOOS=windows GOARCH=amd64 go build -trimpath -o "$e2e/" ./cmd/dcworker ./cmd/dcjournal
go build -trimpath -o "$e2e/" ./cmd/dctracker ./cmd/dcjournal
cp scripts/wine/job.bat "$e2e/"
journal="$(winpath "$e2e/j.db")"
job="$(winpath "$e2e/job.bat")"
hold="$e2e/hold"

fail() { echo "wine-test.sh: dcworker e2e: $*" >&2; for f in "$e2e"/*.log; do echo "== $f"; tail -n 30 "$f"; done >&2; exit 1; }
# waitfor DESC SECONDS CMD...: polls CMD every 0.2 s until it succeeds. The
# limits are far above what a loaded machine needs: only a failure meets them.
waitfor() {
	local desc=$1 secs=$2
	shift 2
	local deadline=$(( $(date +%s) + secs ))
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $desc"
		sleep 0.2
	done
}

"$e2e/dctracker" --addr 127.0.0.1:0 --stages CPU,GPU --brace 'shard-{1..4}' >"$e2e/tracker.out" 2>"$e2e/tracker.log" &
pids+=($!)
waitfor "the tracker's URL" 180 test -s "$e2e/tracker.out"
url=$(head -n 1 "$e2e/tracker.out")
jobcount() { curl -fsS "$url/api/jobCount?stage=$1"; }

# Run 1: holds a job, is killed.
touch "$hold"
HOLD="$(winpath "$hold")" "$wine" "$e2e/dcworker.exe" run --tracker "$url" --stage a --journal "$journal" \
	--status-addr 127.0.0.1:0 --status-journal -- cmd.exe /c "$job" >"$e2e/run1.out" 2>"$e2e/run1.log" &
w1=$!
pids+=($w1)
waitfor "job.bat to hold a job" 180 test ! -e "$hold"
held=$(tr -dc 0-9 <"$hold.job")
status() { grep -o 'status server listening addr=[0-9.:]*' "$e2e/run1.log" | sed 's/.*addr=//'; }
waitfor "the status address" 180 eval 'status >/dev/null'
addr=$(status)
checkpointed() { "$e2e/dcjournal" inspect --live "http://$addr" --json 2>/dev/null | grep -Eq '"checkpoint_bytes": *[1-9]'; }
waitfor "the checkpoint of job $held in the journal" 180 checkpointed
# dcjournal.exe meets the lock: exit 4. (It cannot name the holder here:
# Wine's Restart Manager is a stub that finds no process.)
rc=0
"$wine" "$e2e/dcjournal.exe" inspect "$journal" >"$e2e/locked.out" 2>"$e2e/locked.log" || rc=$?
[ "$rc" = 4 ] && grep -q "is locked by" "$e2e/locked.log" ||
	fail "dcjournal.exe inspect of the held journal: exit $rc, want 4 (locked): $(cat "$e2e/locked.log")"
kill -9 "$w1"
{ wait "$w1"; } 2>/dev/null || true
# The job object dies with dcworker: cmd.exe and its ping go too.
gone() { ! pgrep -f "${work##*/}.e2e.job\.bat" >/dev/null; }
waitfor "job.bat to end with the killed dcworker (job object)" 180 gone
echo "run 1: dcworker.exe killed (SIGKILL) holding job $held with a checkpoint; its command ended with it"
"$e2e/dcjournal" inspect "$e2e/j.db" --json >"$e2e/after-kill.json" || fail "dcjournal inspect after the kill failed"
grep -Eq "\"number\": *$held," "$e2e/after-kill.json" || fail "the journal does not show job $held held"

# Run 2: resumes the held job, finishes the stage.
rm -f "$hold"
HOLD="$(winpath "$hold")" "$wine" "$e2e/dcworker.exe" run --tracker "$url" --stage a --journal "$journal" \
	--exit-when-empty -- cmd.exe /c "$job" >"$e2e/run2.out" 2>"$e2e/run2.log" ||
	fail "the restarted dcworker.exe failed"
grep -q "resumed=\[$held\]" "$e2e/run2.log" || fail "run 2 did not resume job $held"
out=$("$e2e/dcjournal" inspect "$e2e/j.db" --job "$held" --json)
grep -q "\"output\": \"resumed:started shard-[0-9]*:shard-[0-9]*\"" <<<"$out" ||
	fail "job $held's output is not the resumed one: $(grep '"output"' <<<"$out")"
[ "$(jobcount a)" = 0 ] || fail "stage a still has $(jobcount a) open jobs"
[ "$(jobcount b)" = 4 ] || fail "stage b has $(jobcount b) jobs, want 4 (the outputs of stage a)"
"$e2e/dcjournal" verify "$e2e/j.db" >/dev/null || fail "dcjournal verify of the Windows journal failed"
echo "run 2: restarted on the same journal, resumed job $held from its checkpoint, completed stage a (4 jobs; stage b got 4)"

# Run 3: Ctrl-C drains. Without a console, Wine cannot send the command a
# Ctrl-Break (GenerateConsoleCtrlEvent: "Invalid access"), so the grace
# period ends with the job object's kill; the job stays held, resumable.
"$e2e/dctracker" --addr 127.0.0.1:0 --brace 'late-{1..2}' >"$e2e/tracker2.out" 2>"$e2e/tracker2.log" &
pids+=($!)
waitfor "the second tracker's URL" 180 test -s "$e2e/tracker2.out"
url2=$(head -n 1 "$e2e/tracker2.out")
touch "$hold"
HOLD="$(winpath "$hold")" "$wine" "$e2e/dcworker.exe" run --tracker "$url2" --stage a --journal "$(winpath "$e2e/j3.db")" \
	--grace 2s -- cmd.exe /c "$job" >"$e2e/run3.out" 2>"$e2e/run3.log" &
w3=$!
pids+=($w3)
waitfor "job.bat to hold a job" 180 test ! -e "$hold"
kill -INT "$w3"
rc=0
wait "$w3" || rc=$?
[ "$rc" = 0 ] || fail "dcworker.exe exited $rc after Ctrl-C, want 0 (drained)"
grep -q "stop signal: draining" "$e2e/run3.log" || fail "run 3 did not drain on Ctrl-C"
grep -q "job left resumable" "$e2e/run3.log" || fail "run 3 did not leave its job resumable"
waitfor "job.bat to end after the drain" 180 gone
echo "run 3: Ctrl-C drained dcworker.exe (exit 0), the command was ended at the grace period, its job left resumable"

echo "wine-test.sh: $(( $(date +%s) - start ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
	echo "wine-test.sh: failed under wine: ${failed[*]}" >&2
	exit 1
fi
