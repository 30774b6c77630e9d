#!/usr/bin/env bash
# Prints the path of a test tool built by e2e/build-tools.sh into a versioned cache directory
# (helm, kubeconform, promtool, minio; olareg, cosign and oras for the supply-chain tests; crane for the access tests):
# $HELM_BIN / $KUBECONFORM_BIN when set, else the newest cache dir ~/.cache/flotilla/bin/NAME-*/.
# Our own modules with a main.go under e2e/tools/NAME (lua-health, coredns) are keyed by their
# sources' hash: only the build of the current sources is found.
#   e2e/tool-path.sh NAME         the binary's path
#   e2e/tool-path.sh --key NAME   the hash key of e2e/tools/NAME (used by e2e/build-tools.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key_of() { # name -> hash of its module's sources
  local src=$here/tools/$1
  cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12
}
if [ "${1:-}" = --key ]; then key_of "${2:?usage: e2e/tool-path.sh --key NAME}"; exit 0; fi
name=${1:?usage: e2e/tool-path.sh NAME}
var=$(echo "$name" | tr 'a-z-' 'A-Z_')_BIN
if [ -n "${!var:-}" ]; then echo "${!var}"; exit 0; fi
suffix=
[ ! -f "$here/tools/$name/main.go" ] || suffix="-$(key_of "$name")"
cached=$(ls -d "${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin/$name"-v*$suffix 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$cached" ] && [ -x "$cached/$name" ]; then echo "$cached/$name"; exit 0; fi
echo "tool-path.sh: no $name binary: run e2e/build-tools.sh (builds it from its Go module), or set $var" >&2
exit 1
