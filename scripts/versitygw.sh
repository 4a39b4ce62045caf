#!/usr/bin/env bash
# Installs versitygw, the S3-compatible server the S3 store tests run
# against, into $SNAPFS_TOOLS_BIN (default ~/.cache/snapfs/bin, outside the
# checkout so fresh clones on the same machine reuse it) at the version
# pinned by scripts/tools/versitygw/go.mod.
#
#   scripts/versitygw.sh          install if missing (quiet if present)
#   scripts/versitygw.sh --path   install if missing, then print the binary's path
#   scripts/versitygw.sh --force  rebuild even if present
#
# Tests find the binary through $SNAPFS_VERSITYGW (scripts/test.sh sets it)
# or at <repo>/.bin/versitygw.
# A cold build takes a few minutes on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=${SNAPFS_TOOLS_BIN:-$HOME/.cache/snapfs/bin}
bin="$bindir/versitygw"
want=$(cd "$repo/scripts/tools/versitygw" && go list -m -f '{{.Version}}' github.com/versity/versitygw)

print=0 force=0
for arg in "$@"; do
	case $arg in
	--path) print=1 ;;
	--force) force=1 ;;
	-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "versitygw.sh: unknown argument $arg" >&2; exit 2 ;;
	esac
done

# Rebuild when the binary is missing or was built from another version.
have=""
if [[ -x $bin ]]; then
	have=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }')
fi
if [[ $force == 1 || $have != "$want" ]]; then
	echo "versitygw.sh: installing versitygw $want into $bindir" >&2
	mkdir -p "$bindir"
	(cd "$repo/scripts/tools/versitygw" && GOBIN="$bindir" go install github.com/versity/versitygw/cmd/versitygw)
fi

if [[ $print == 1 ]]; then
	echo "$bin"
fi
