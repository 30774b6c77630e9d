#!/usr/bin/env bash
# Builds the real programs Flotilla's tests run (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok; for a real node kubelet, kube-proxy, containerd, its runc shim, ctr and runc;
# for the supply-chain tests olareg, cosign and oras; the Gateway API CRDs) from their Go modules at the versions pinned under e2e/tools/, into a cache
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
# The node's kubelet and kube-proxy: same module and version as the control plane, with the
# version stamped (else they report v0.0.0-master and the API server shows that for the node).
k8s_version_x="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v) \
  -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
  -X k8s.io/component-base/version.gitTreeState=clean"
build_node() { # name, package
  local name=$1 pkg=$2
  if [ -x "$out/$name" ]; then return; fi
  echo "building $name ($pkg)" >&2
  (cd "$here/tools/kube" && go build -ldflags="-s -w $k8s_version_x" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}
build_node kubelet k8s.io/kubernetes/cmd/kubelet
build_node kube-proxy k8s.io/kubernetes/cmd/kube-proxy
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
# promtool (alert rule checks and unit tests: tests/it/chart_alerts.rs), from the Prometheus module.
PROMTOOL_VERSION=v0.316.0
build_module promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool
# --- supply chain (tests/engine_signatures*.rs) ------------------------------------------------
# olareg: a registry that serves the OCI 1.1 referrers API (Distribution 2.8/3.x has none);
# cosign: real key-based signatures (simple signing, cosign's tag scheme or OCI 1.1 referrers);
# oras: real `oras attach --artifact-type` (an SBOM as an OCI 1.1 referrer).
# The proxy refuses olareg's version list (so `go install olareg@v…` fails loading its
# deprecation): olareg builds from e2e/tools/olareg, whose go.mod pins it.
OLAREG_VERSION=v0.1.2
COSIGN_VERSION=v2.6.5
ORAS_VERSION=v1.3.6
olareg_dir="$cache/bin/olareg-$OLAREG_VERSION"
if [ ! -x "$olareg_dir/olareg" ]; then
  echo "building olareg (github.com/olareg/olareg/cmd/olareg@$OLAREG_VERSION, e2e/tools/olareg)" >&2
  mkdir -p "$olareg_dir"
  (cd "$here/tools/olareg" && go build -ldflags="-s -w" -o "$olareg_dir/olareg.tmp" github.com/olareg/olareg/cmd/olareg)
  mv "$olareg_dir/olareg.tmp" "$olareg_dir/olareg"
fi
build_module cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign \
  "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
build_module oras "$ORAS_VERSION" oras.land/oras/cmd/oras
# crane: a second real client (go-containerregistry) for the access-rule tests (tests/e2e_access.rs).
CRANE_VERSION=v0.22.1  # the version bench/peers.rs measures
build_module crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane
# Our own small modules under e2e/tools/NAME, each keyed by its sources' hash (e2e/tool-path.sh
# finds exactly the build of the current sources): build_own NAME LABEL WHAT.
build_own() {
  local name=$1 label=$2 what=$3 key dir
  key=$("$here/tool-path.sh" --key "$name")
  dir="$cache/bin/$name-$label-$key"
  if [ -x "$dir/$name" ]; then return; fi
  echo "building $name ($what)" >&2
  mkdir -p "$dir"
  (cd "$here/tools/$name" && go build -ldflags="-s -w" -o "$dir/$name.tmp" .)
  mv "$dir/$name.tmp" "$dir/$name"
}
# lua-health: Argo CD's Lua VM (gopher-lua) running examples/argocd/health.lua on live objects
# (tests/e2e_argocd_health.rs).
build_own lua-health v1.1.2 "github.com/yuin/gopher-lua v1.1.2"
# coredns: the real node's cluster DNS (Services by name, as in any cluster): CoreDNS's own
# server with only the plugins a cluster DNS needs.
build_own coredns v1.15.0 "github.com/coredns/coredns v1.15.0, plugins of e2e/tools/coredns"
# ----------------------------------------------------------------------------------------------
# --- container runtime for a real node (e2e/cluster.sh up DIR --real-node) --------------------
# containerd v2 (Kubernetes 1.36+ needs 2.x; Debian's 1.6 is too old) builds without cgo.
# runc needs cgo and libseccomp (apt-get install libseccomp-dev pkg-config); Debian's runc 1.1.5
# fails every sandbox on these machines. CNI plugins come from Debian (containernetworking-plugins).
CONTAINERD_VERSION=v2.3.7
RUNC_VERSION=v1.5.3
ctrd_dir="$cache/bin/containerd-$CONTAINERD_VERSION"
ctrd_x=github.com/containerd/containerd/v2/version
for name in containerd containerd-shim-runc-v2 ctr; do
  [ -x "$ctrd_dir/$name" ] && continue
  echo "building $name (github.com/containerd/containerd/v2/cmd/$name@$CONTAINERD_VERSION)" >&2
  mkdir -p "$ctrd_dir"
  CGO_ENABLED=0 GOBIN="$ctrd_dir/.tmp" go install -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags="-s -w -X $ctrd_x.Version=$CONTAINERD_VERSION -X $ctrd_x.Package=github.com/containerd/containerd/v2" \
    "github.com/containerd/containerd/v2/cmd/$name@$CONTAINERD_VERSION"
  mv "$ctrd_dir/.tmp/$name" "$ctrd_dir/$name" && rmdir "$ctrd_dir/.tmp"
done
runc_dir="$cache/bin/runc-$RUNC_VERSION"
if [ ! -x "$runc_dir/runc" ]; then
  pkg-config --exists libseccomp 2>/dev/null \
    || { echo "build-tools.sh: runc needs libseccomp: apt-get install libseccomp-dev pkg-config" >&2; exit 1; }
  echo "building runc (github.com/opencontainers/runc@$RUNC_VERSION, cgo + seccomp)" >&2
  mkdir -p "$runc_dir"
  CGO_ENABLED=1 GOBIN="$runc_dir/.tmp" go install -tags seccomp \
    -ldflags="-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
  mv "$runc_dir/.tmp/runc" "$runc_dir/runc" && rmdir "$runc_dir/.tmp"
fi
# --- Gateway API CRDs (standard channel; tests/it/e2e_ingress.rs and e2e_packaging.rs) ---------
# Not a program: the CRD manifests from the module's zip (config/crd/standard/*.yaml), fetched
# from the Go module proxy (verified against the Go checksum database) into a directory keyed
# by version.
GATEWAY_API_VERSION=v1.4.1
gw_dir="$cache/gateway-api-$GATEWAY_API_VERSION"
if [ ! -f "$gw_dir/gateway.networking.k8s.io_httproutes.yaml" ]; then
  echo "fetching Gateway API CRDs (sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION)" >&2
  gw_src=$(cd "$here" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$gw_dir.tmp"
  cp "$gw_src"/config/crd/standard/*.yaml "$gw_dir.tmp/"
  rm -rf "$gw_dir" && mv "$gw_dir.tmp" "$gw_dir"
fi
# ----------------------------------------------------------------------------------------------
echo "$out"
