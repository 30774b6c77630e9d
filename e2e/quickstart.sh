#!/usr/bin/env bash
# Runs Flotilla on an embedded default: a local control plane (e2e/cluster.sh), the CRDs, the
# operator as a local process, examples/quickstart/ applied, and a push that replicates.
#
# The control plane's nodes are simulated (kwok), so nothing would run the registry pods: this
# script plays the kubelet for the two quickstart Registries, starting the real
# `docker-registry` (Debian package) with each pod's config.yml and Secret environment, on
# loopback ports the operator is told about (`--registry-url`). Then it pushes a small image to
# `dev` and waits until the push event has made the operator copy it to `mirror`.
#
#   e2e/quickstart.sh        bring it all up, push, show the replication
#   e2e/quickstart.sh down   stop the registries, the operator and the control plane
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FLOTILLA_QUICKSTART_DIR:-$HOME/.cache/flotilla/quickstart}
probe=127.0.0.1:18080 receiver=127.0.0.1:18081
declare -A api_port=([dev]=15000 [mirror]=15002) debug_port=([dev]=15001 [mirror]=15003)

stop_pid() { # FILE
  if [ -f "$1" ]; then kill -TERM "$(cat "$1")" 2>/dev/null || true; rm -f "$1"; fi
}

if [ "${1:-up}" = down ]; then
  for r in "${!api_port[@]}"; do stop_pid "$dir/pods/$r/pid"; done
  stop_pid "$dir/operator.pid"
  "$root/e2e/cluster.sh" down "$dir/cluster"
  echo "stopped"
  exit 0
fi

command -v docker-registry >/dev/null || {
  echo "quickstart: docker-registry not found: apt-get install docker-registry" >&2
  exit 1
}
"$root/e2e/build-tools.sh" >/dev/null
(cd "$root" && cargo build --quiet --bin flotilla)
flotilla=$root/target/debug/flotilla
mkdir -p "$dir"
[ -f "$dir/cluster/kube-apiserver.pid" ] || "$root/e2e/cluster.sh" up "$dir/cluster" >/dev/null
export KUBECONFIG=$dir/cluster/kubeconfig
kubectl=$("$root/e2e/cluster.sh" bin kubectl)
"$kubectl" apply -f "$root/crds/" >/dev/null
"$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null

if ! { [ -f "$dir/operator.pid" ] && kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null; }; then
  nohup "$flotilla" run --probe-addr "$probe" --receiver-addr "$receiver" \
    --receiver-url "http://$receiver/v1/events" \
    --registry-url "default/dev=http://127.0.0.1:${api_port[dev]}" \
    --registry-url "default/mirror=http://127.0.0.1:${api_port[mirror]}" \
    >"$dir/operator.log" 2>&1 &
  echo $! >"$dir/operator.pid"
fi
until curl -sf "http://$probe/readyz" >/dev/null; do
  kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null || { cat "$dir/operator.log"; exit 1; }
  sleep 0.2
done

# The Registries first, so their pods run before the policy's first sync.
"$kubectl" apply -f "$root/examples/quickstart/registries.yaml"
"$kubectl" wait --for=jsonpath='{.status.observedGeneration}'=1 registry/dev registry/mirror --timeout=60s >/dev/null

# The kubelet's part: the pod's config.yml from its ConfigMap, its environment from the Secret
# keys the Deployment names, and loopback addresses and a local data directory instead of the
# pod's (environment overrides of http.addr, http.debug.addr and the filesystem root).
run_pod() { # NAME
  local name=$1 pod=$dir/pods/$1 var secret key value
  if [ -f "$pod/pid" ] && kill -0 "$(cat "$pod/pid")" 2>/dev/null; then return; fi
  mkdir -p "$pod/data"
  "$kubectl" get configmap "$name-config" -o jsonpath='{.data.config\.yml}' >"$pod/config.yml"
  local env=(
    "REGISTRY_HTTP_ADDR=127.0.0.1:${api_port[$name]}"
    "REGISTRY_HTTP_DEBUG_ADDR=127.0.0.1:${debug_port[$name]}"
    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$pod/data"
  )
  while read -r var secret key; do
    [ -n "$secret" ] || continue
    value=$("$kubectl" get secret "$secret" -o jsonpath="{.data.${key//./\\.}}" | base64 -d)
    env+=("$var=$value")
  done < <("$kubectl" get deployment "$name" \
    -o jsonpath='{range .spec.template.spec.containers[0].env[*]}{.name} {.valueFrom.secretKeyRef.name} {.valueFrom.secretKeyRef.key}{"\n"}{end}')
  env -i "${env[@]}" docker-registry serve "$pod/config.yml" >"$pod/registry.log" 2>&1 &
  echo $! >"$pod/pid"
  until curl -sf "http://127.0.0.1:${debug_port[$name]}/debug/health" >/dev/null; do
    kill -0 "$(cat "$pod/pid")" 2>/dev/null || { cat "$pod/registry.log"; exit 1; }
    sleep 0.1
  done
}
for r in dev mirror; do run_pod "$r"; done

"$kubectl" apply -f "$root/examples/quickstart/policy.yaml"
# A full sync now that both registries run (on a re-run the policy's earlier syncs may have
# found them down); the push below then arrives as an event.
request=$(date +%s%N)
"$kubectl" annotate --overwrite replicationpolicy/dev-to-mirror "flotilla.dev/sync-requested=$request" >/dev/null
"$kubectl" wait --for=jsonpath="{.status.handledSyncRequest}=$request" replicationpolicy/dev-to-mirror --timeout=60s >/dev/null

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

started=$(date +%s.%N)
"$flotilla" copy --progress never --dest-insecure "oci:$image:v1" "http://127.0.0.1:${api_port[dev]}/demo/hello:v1" >/dev/null
mirror_has() {
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:${api_port[mirror]}/v2/demo/hello/manifests/v1" | tr -d '\r' |
    grep -qi "^docker-content-digest: sha256:$manifest$"
}
deadline=$((SECONDS + 60))
until mirror_has; do
  [ $SECONDS -lt $deadline ] || { echo "demo/hello:v1 did not reach mirror in 60 s; see $dir/operator.log" >&2; exit 1; }
  sleep 0.1
done
lag=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

"$kubectl" get registries,replicationpolicies
cat <<MSG

Pushed demo/hello:v1 (sha256:$manifest) to dev; the operator copied it to mirror ${lag} s later (polled every 0.1 s),
triggered by dev's push notification.

Flotilla is running (log: $dir/operator.log, metrics: http://$probe/metrics).
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe replicationpolicy dev-to-mirror
  registries: dev http://127.0.0.1:${api_port[dev]}  mirror http://127.0.0.1:${api_port[mirror]}
Stop everything with: e2e/quickstart.sh down
MSG
