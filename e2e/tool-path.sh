#!/usr/bin/env bash
# Prints the path of a test tool built by e2e/build-tools.sh into a versioned cache directory
# (helm, kubeconform, promtool, minio; olareg, cosign and oras for the supply-chain tests):
# $HELM_BIN / $KUBECONFORM_BIN when set, else the newest cache dir ~/.cache/flotilla/bin/NAME-*/.
set -euo pipefail
name=${1:?usage: e2e/tool-path.sh NAME}
var=$(echo "$name" | tr 'a-z-' 'A-Z_')_BIN
if [ -n "${!var:-}" ]; then echo "${!var}"; exit 0; fi
cached=$(ls -d "${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin/$name"-v* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$cached" ] && [ -x "$cached/$name" ]; then echo "$cached/$name"; exit 0; fi
echo "tool-path.sh: no $name binary: run e2e/build-tools.sh (builds it from its Go module), or set $var" >&2
exit 1
