#!/usr/bin/env bash
# Builds the real programs Flotilla's tests run (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok) from their Go modules at the versions pinned under e2e/tools/, into a cache
# outside the repository keyed by version. A binary already in the cache is reused.
# Prints the cache directory (use it as KUBEBUILDER_ASSETS) on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0
cache=${FLOTILLA_CACHE:-$HOME/.cache/flotilla}
out="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$out"
export GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0

build() { # name, module dir, package
  local name=$1 dir=$2 pkg=$3
  if [ -x "$out/$name" ]; then return; fi
  echo "building $name ($pkg)" >&2
  (cd "$dir" && go build -ldflags="-s -w" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}

build etcd "$here/tools/etcd" .
build kube-apiserver "$here/tools/kube" k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager "$here/tools/kube" k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler "$here/tools/kube" k8s.io/kubernetes/cmd/kube-scheduler
build kubectl "$here/tools/kube" k8s.io/kubernetes/cmd/kubectl
if [ ! -x "$out/kwok" ]; then
  echo "building kwok (sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION)" >&2
  GOBIN="$out/.kwok" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$out/.kwok/kwok" "$out/kwok" && rmdir "$out/.kwok"
fi
# --- MinIO (S3-compatible server for the Registry config conformance tests) -------------------
# MinIO publishes no semver tags, so the Go module proxy serves it as a pseudo-version; pin one.
# `go install` accepts the module as is (no replace directives in its go.mod).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
minio_out="$cache/bin/minio-$MINIO_VERSION"
if [ ! -x "$minio_out/minio" ]; then
  echo "building minio (github.com/minio/minio@$MINIO_VERSION)" >&2
  mkdir -p "$minio_out"
  GOBIN="$minio_out/.tmp" go install -ldflags="-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$minio_out/.tmp/minio" "$minio_out/minio" && rmdir "$minio_out/.tmp"
fi
# ----------------------------------------------------------------------------------------------
# --- helm and kubeconform (packaging tests: tests/e2e_packaging.rs) ---------------------------
# Built from their Go modules with `go install` at pinned versions, each into its own cache
# directory keyed by version (found by e2e/tool-path.sh NAME), reused when present. Helm gets
# the -X flags of its own Makefile: its version, and the Kubernetes version its client modules
# speak (1.37 for v3.22), which `helm template`/`helm lint` assume without a cluster.
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
build_module() { # name, version, package, extra ldflags
  local name=$1 version=$2 pkg=$3 ldflags=${4:-} dir="$cache/bin/$1-$2"
  if [ -x "$dir/$name" ]; then return; fi
  echo "building $name ($pkg@$version)" >&2
  mkdir -p "$dir"
  GOBIN="$dir/.tmp" go install -ldflags="-s -w $ldflags" "$pkg@$version"
  mv "$dir/.tmp/$name" "$dir/$name" && rmdir "$dir/.tmp"
}
helm_x=helm.sh/helm/v3
build_module helm "$HELM_VERSION" $helm_x/cmd/helm "-X $helm_x/internal/version.version=$HELM_VERSION \
  -X $helm_x/internal/version.gitTreeState=clean \
  -X $helm_x/pkg/lint/rules.k8sVersionMajor=1 -X $helm_x/pkg/lint/rules.k8sVersionMinor=37 \
  -X $helm_x/pkg/chartutil.k8sVersionMajor=1 -X $helm_x/pkg/chartutil.k8sVersionMinor=37"
build_module kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
# promtool (alert rule checks and unit tests: tests/chart_alerts.rs), from the Prometheus module.
PROMTOOL_VERSION=v0.316.0
build_module promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool
# lua-health: Argo CD's Lua VM (gopher-lua) running examples/argocd/health.lua on live objects
# (tests/e2e_argocd_health.rs). Our own small module: keyed by its sources' hash.
lua_src="$here/tools/lua-health"
lua_key=$(cat "$lua_src/main.go" "$lua_src/go.mod" "$lua_src/go.sum" | sha256sum | cut -c1-12)
lua_dir="$cache/bin/lua-health-v1.1.2-$lua_key"
if [ ! -x "$lua_dir/lua-health" ]; then
  echo "building lua-health (github.com/yuin/gopher-lua v1.1.2)" >&2
  mkdir -p "$lua_dir"
  (cd "$lua_src" && go build -ldflags="-s -w" -o "$lua_dir/lua-health.tmp" .)
  mv "$lua_dir/lua-health.tmp" "$lua_dir/lua-health"
fi
# ----------------------------------------------------------------------------------------------
echo "$out"
