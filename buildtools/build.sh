#!/usr/bin/env bash
# build.sh NAME... — build pinned test/build tools into bin/tools/.
#
# The tools and their versions are pinned by the `tool` block of
# buildtools/go.mod (a module of its own, so the main module never depends on
# them). A binary is rebuilt only when the stamp next to it no longer matches
# the hash of buildtools/go.mod, buildtools/go.sum, the package path and the
# Go version; otherwise this is a no-op that takes milliseconds.
#
# Names: jaeger staticcheck ghz hey kubeconform, or "all".
# Environment:
#   TRACEBRIDGE_TOOLS_BIN  output directory (default: <repo>/bin/tools)
#   GO                     go command (default: go)
# Prints the path of each binary on stdout; build logs go to stderr.
# Safe to run concurrently: builds are serialised with flock(1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="${TRACEBRIDGE_TOOLS_BIN:-$root/bin/tools}"
GO="${GO:-go}"

pkg_of() {
	case "$1" in
	jaeger) echo github.com/jaegertracing/jaeger/cmd/jaeger ;;
	staticcheck) echo honnef.co/go/tools/cmd/staticcheck ;;
	ghz) echo github.com/bojand/ghz/cmd/ghz ;;
	hey) echo github.com/rakyll/hey ;;
	kubeconform) echo github.com/yannh/kubeconform/cmd/kubeconform ;;
	*) return 1 ;;
	esac
}
all_tools="jaeger staticcheck ghz hey kubeconform"

if [ $# -eq 0 ]; then
	echo "usage: $0 NAME... (one of: $all_tools, all)" >&2
	exit 2
fi
names=()
for n in "$@"; do
	if [ "$n" = all ]; then
		# shellcheck disable=SC2206
		names+=($all_tools)
	elif pkg_of "$n" >/dev/null; then
		names+=("$n")
	else
		echo "build.sh: unknown tool '$n' (known: $all_tools)" >&2
		exit 2
	fi
done

mkdir -p "$bin"
exec 9>"$bin/.build.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

# The main module's Makefile exports GOFLAGS; -mod=readonly on the command
# line wins over it, and GOWORK=off keeps any go.work out of this module.
export GOWORK=off
gover="$(cd "$here" && "$GO" env GOVERSION)"

for n in "${names[@]}"; do
	pkg="$(pkg_of "$n")"
	out="$bin/$n"
	stamp="$bin/.$n.stamp"
	want="$( { cat "$here/go.mod" "$here/go.sum"; echo "$pkg $gover"; } | sha256sum | cut -d' ' -f1)"
	if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		echo "$out"
		continue
	fi
	echo "build.sh: building $n ($pkg) ..." >&2
	start=$(date +%s)
	rm -f "$stamp"
	(cd "$here" && "$GO" build -mod=readonly -trimpath -ldflags='-s -w' -o "$out.tmp" "$pkg") >&2
	mv -f "$out.tmp" "$out"
	echo "$want" >"$stamp"
	echo "build.sh: built $n in $(($(date +%s) - start))s" >&2
	echo "$out"
done
