#!/usr/bin/env bash
# Runs Flotilla on an embedded default, as a cluster admin would on a real cluster: a local
# control plane with one real node (e2e/cluster.sh up DIR --real-node: kubelet, containerd,
# kube-proxy, CoreDNS), the chart installed with `helm` (the operator runs in a pod, from an
# image built here from the release binary), examples/quickstart/ applied (two Registries,
# each a registry pod, and a policy), and a push to `dev` that the operator copies to `mirror`.
#
# It installs what it needs on a fresh machine (Debian packages, the Go-built programs of
# e2e/build-tools.sh, cached in ~/.cache/flotilla), so the first run takes a while; later runs
# reuse the running cluster. Needs root: the node uses a network namespace, cgroups, mounts.
#
#   e2e/quickstart.sh        bring it all up, push, show the replication
#   e2e/quickstart.sh down   stop everything (pods, node, control plane), leaving nothing
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FLOTILLA_QUICKSTART_DIR:-$HOME/.cache/flotilla/quickstart}
say() { echo "quickstart: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "${1:-up}" = down ]; then
  "$root/e2e/cluster.sh" down "$dir/cluster"
  rm -rf "$dir/cluster"
  say "stopped"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "the local node needs root (network namespace, cgroups, mounts): run it as root"

say "installing missing Debian packages (docker-registry, CNI plugins, busybox, ...)"
"$root/e2e/install-packages.sh"
command -v go >/dev/null || die "no Go toolchain: the cluster's programs are built from their Go modules (apt-get install golang-go, or Go from go.dev)"
command -v cargo >/dev/null || die "no cargo: Flotilla is built with Rust (rustup.rs)"
say "building the cluster's programs from their Go modules (cached; the first time takes about 45-50 minutes on 2 cores)"
"$root/e2e/build-tools.sh" >/dev/null
say "building flotilla (release)"
(cd "$root" && cargo build --quiet --release --locked --bin flotilla)
export FLOTILLA_BIN=$root/target/release/flotilla
helm=$("$root/e2e/tool-path.sh" helm)

mkdir -p "$dir"
if [ ! -f "$dir/cluster/kube-apiserver.pid" ]; then
  say "starting the control plane and the node"
  "$root/e2e/cluster.sh" up "$dir/cluster" --real-node >/dev/null
fi
export KUBECONFIG=$dir/cluster/kubeconfig
kubectl=$("$root/e2e/cluster.sh" bin kubectl)

# The operator image of this binary, pushed into the node's bootstrap registry.
image=$("$root/e2e/cluster.sh" image "$dir/cluster" operator "$FLOTILLA_BIN")
say "installing the chart (operator image $image)"
"$helm" upgrade --install flotilla "$root/charts/flotilla" --namespace flotilla-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set replicaCount=1 \
  --wait --timeout 180s >/dev/null

# The Registries run the Distribution image built for the node (docker.io is not reachable
# here), so the example gets an explicit spec.image.
registry_image=$(cat "$dir/cluster/registry.image")
sed "s|^spec:|spec:\n  image: $registry_image|" "$root/examples/quickstart/registries.yaml" | "$kubectl" apply -f - >/dev/null
"$kubectl" apply -f "$root/examples/quickstart/policy.yaml" >/dev/null
say "waiting for the registry pods and the policy"
"$kubectl" wait --for=condition=Available registry/dev registry/mirror --timeout=180s >/dev/null
"$kubectl" wait --for=condition=Ready replicationpolicy/dev-to-mirror --timeout=120s >/dev/null
dev=$("$kubectl" get service dev -o jsonpath='{.spec.clusterIP}'):5000
mirror=$("$kubectl" get service mirror -o jsonpath='{.spec.clusterIP}'):5000
until curl -sf "http://$dev/v2/" >/dev/null && curl -sf "http://$mirror/v2/" >/dev/null; do sleep 0.2; done

# A small image as an OCI layout (one gzip tar layer), pushed to dev with `flotilla copy`.
image=$dir/demo-image
rm -rf "$image" && mkdir -p "$image/blobs/sha256" "$image/rootfs"
date -u +"pushed at %FT%TZ by e2e/quickstart.sh" >"$image/rootfs/hello.txt"
blob() { # FILE -> prints DIGEST-HEX, stores the file as a blob
  local hex
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$image/blobs/sha256/$hex"
  echo "$hex"
}
tar -C "$image/rootfs" -cf "$image/layer.tar" hello.txt
diff_id=$(sha256sum "$image/layer.tar" | cut -d' ' -f1)
gzip -n -c "$image/layer.tar" >"$image/layer.tar.gz"
layer=$(blob "$image/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$image/config.json"
config=$(blob "$image/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$config" "$(stat -c %s "$image/config.json")" "$layer" "$(stat -c %s "$image/layer.tar.gz")" >"$image/manifest.json"
manifest=$(blob "$image/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
  "$manifest" "$(stat -c %s "$image/manifest.json")" >"$image/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$image/oci-layout"

say "pushing demo/hello:v1 to dev"
"$FLOTILLA_BIN" copy --progress never --dest-insecure "oci:$image:v1" "http://$dev/demo/hello:v1" >/dev/null
started=$(date +%s.%N)
mirror_has() {
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$mirror/v2/demo/hello/manifests/v1" | tr -d '\r' |
    grep -qi "^docker-content-digest: sha256:$manifest$"
}
deadline=$((SECONDS + 60))
until mirror_has; do
  [ $SECONDS -lt $deadline ] || die "demo/hello:v1 did not reach mirror in 60 s; see: $kubectl logs -n flotilla-system deploy/flotilla"
  sleep 0.05
done
lag=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

"$kubectl" get pods -A -o wide
"$kubectl" get registries,replicationpolicies
"$FLOTILLA_BIN" status 2>/dev/null || true
cat <<MSG

Pushed demo/hello:v1 (sha256:$manifest) to dev; the operator pod copied it to mirror ${lag} s later
(polled every 0.05 s from here), triggered by dev's push notification to the receiver Service.

Flotilla runs in the cluster (helm release flotilla in flotilla-system).
  export KUBECONFIG=$KUBECONFIG
  $kubectl logs -n flotilla-system deploy/flotilla
  $kubectl describe replicationpolicy dev-to-mirror
  registries (Service addresses, reachable from this machine): dev http://$dev  mirror http://$mirror
Stop everything with: e2e/quickstart.sh down
MSG
