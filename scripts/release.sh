#!/usr/bin/env bash
# release.sh: the release binaries. Builds dcworker, dcjournal and dctracker
# (and dcproxy once cmd/dcproxy exists) for every target below, static
# (CGO_ENABLED=0, no libc needed), with the version stamped in (each
# command's --version shows it); packs one archive per target (.tar.gz, .zip
# for Windows) holding the binaries, README.md and LICENSE if present; and
# writes SHA256SUMS over the archives. Then it checks that the binary built
# for this machine reports the version.
#
# Usage: scripts/release.sh [--snapshot] [--out DIR] [VERSION]
#   VERSION     default: `git describe --tags --dirty` (a leading "v" added to
#               a bare number), or dev-COMMIT when no tag is reachable
#   --snapshot  a test build: the version gets "-snapshot" appended (never a
#               real release's name); what CI runs
#   --out DIR   where the archives go (default dist/; emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64)
module=$(go list -m)

snapshot=0
out=dist
version=
while [ $# -gt 0 ]; do
	case "$1" in
	--snapshot) snapshot=1 ;;
	--out) out=${2:?--out needs a folder}; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "release.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
	*) version=$1 ;;
	esac
	shift
done
if [ -z "$version" ]; then
	version=$(git describe --tags --dirty 2>/dev/null ||
		echo "dev-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
	case "$version" in [0-9]*.[0-9]*) version="v$version" ;; esac
fi
if [ "$snapshot" = 1 ]; then
	version="$version-snapshot"
fi
case "$version" in
*[!A-Za-z0-9._+-]*|"") echo "release.sh: bad version \"$version\" (letters, digits and ._+- only)" >&2; exit 2 ;;
esac

cmds=(dcworker dcjournal dctracker)
[ -d cmd/dcproxy ] && cmds+=(dcproxy)

command -v zip >/dev/null || { echo "release.sh: zip is not installed (needed for the Windows archive)" >&2; exit 1; }

# Archives take their files' times from the commit, so that two runs on the
# same commit give the same bytes.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for target in "${targets[@]}"; do
	goos=${target%/*}
	goarch=${target#*/}
	name="distcompute-go_${version}_${goos}_${goarch}"
	dir="$stage/$name"
	mkdir -p "$dir"
	pkgs=()
	for c in "${cmds[@]}"; do pkgs+=("./cmd/$c"); done
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath \
		-ldflags "-s -w -X $module/internal/version.Version=$version" \
		-o "$dir/" "${pkgs[@]}"
	cp README.md "$dir/"
	[ -f LICENSE ] && cp LICENSE "$dir/"
	find "$dir" -exec touch -h -d "@$epoch" {} +
	if [ "$goos" = windows ]; then
		(cd "$stage" && zip -q -X -r "$out/$name.zip" "$name")
	else
		tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
			-cf - "$name" | gzip -n -9 > "$out/$name.tar.gz"
	fi
done

(cd "$out" && sha256sum -- *.tar.gz *.zip > SHA256SUMS)

# The binary for this machine must report the stamped version.
host="distcompute-go_${version}_$(go env GOOS)_$(go env GOARCH)"
if [ -d "$stage/$host" ]; then
	for c in "${cmds[@]}"; do
		got=$("$stage/$host/$c" --version)
		case "$got" in
		"$c $version "*) ;;
		*) echo "release.sh: $c --version says \"$got\", want \"$c $version ...\"" >&2; exit 1 ;;
		esac
	done
	echo "release.sh: $("$stage/$host/dcworker" --version)"
fi

echo "release.sh: version $version, artifacts in $out/:"
(cd "$out" && ls -l -- * | awk '{printf "  %10d  %s\n", $5, $NF}')
