#!/usr/bin/env bash
# Runs Flotilla on an embedded default: a local control plane (e2e/cluster.sh), the CRDs, the
# operator as a local process, and examples/quickstart/ applied.
#
#   e2e/quickstart.sh        bring it all up and show the resources
#   e2e/quickstart.sh down   stop the operator and the control plane
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FLOTILLA_QUICKSTART_DIR:-$HOME/.cache/flotilla/quickstart}

if [ "${1:-up}" = down ]; then
  if [ -f "$dir/operator.pid" ]; then kill -TERM "$(cat "$dir/operator.pid")" 2>/dev/null || true; rm -f "$dir/operator.pid"; fi
  "$root/e2e/cluster.sh" down "$dir/cluster"
  echo "stopped"
  exit 0
fi

"$root/e2e/build-tools.sh" >/dev/null
(cd "$root" && cargo build --quiet --bin flotilla)
mkdir -p "$dir"
[ -f "$dir/cluster/kube-apiserver.pid" ] || "$root/e2e/cluster.sh" up "$dir/cluster" >/dev/null
export KUBECONFIG=$dir/cluster/kubeconfig
kubectl=$("$root/e2e/cluster.sh" bin kubectl)
"$kubectl" apply -f "$root/crds/" >/dev/null
"$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null
if ! { [ -f "$dir/operator.pid" ] && kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null; }; then
  nohup "$root/target/debug/flotilla" run --probe-addr 127.0.0.1:18080 >"$dir/operator.log" 2>&1 &
  echo $! >"$dir/operator.pid"
fi
until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do
  kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null || { cat "$dir/operator.log"; exit 1; }
  sleep 0.2
done
"$kubectl" apply -f "$root/examples/quickstart/"
"$kubectl" wait --for=jsonpath='{.status.observedGeneration}'=1 registry/dev registry/mirror replicationpolicy/dev-to-mirror --timeout=60s >/dev/null
"$kubectl" get registries,replicationpolicies
cat <<MSG

Flotilla is running (log: $dir/operator.log, metrics: http://127.0.0.1:18080/metrics).
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe replicationpolicy dev-to-mirror
Stop everything with: e2e/quickstart.sh down
MSG
