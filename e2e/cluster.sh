#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, no containers: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (which makes pods on its fake nodes Ready).
#
#   e2e/cluster.sh up DIR            start one in DIR (certificates, free ports, admin kubeconfig
#                                    at DIR/kubeconfig); several DIRs side by side = several clusters
#   e2e/cluster.sh up DIR --real-node  instead of kwok's fake nodes, one real node (containerd, runc,
#                                    kubelet, kube-proxy in iptables mode, bridge CNI) that runs
#                                    real pods; also FLOTILLA_REAL_NODE=1. See e2e/node.sh.
#   e2e/cluster.sh down DIR          stop everything started in DIR, leaving nothing running
#   e2e/cluster.sh stop DIR NAME     stop one component (e.g. kube-apiserver)
#   e2e/cluster.sh start DIR NAME    start it again, same flags and ports
#   e2e/cluster.sh image DIR operator BIN  (real node) build the operator image of the flotilla
#                                    binary BIN, push it into the node's bootstrap registry and
#                                    print its reference (flotilla.local/flotilla:<digest>)
#   e2e/cluster.sh bin NAME          print the path of a binary (e.g. kubectl) as found below
#
# Binaries: $KUBEBUILDER_ASSETS/<name>, or per binary $ETCD_BIN, $KUBE_APISERVER_BIN,
# $KUBE_CONTROLLER_MANAGER_BIN, $KUBE_SCHEDULER_BIN, $KWOK_BIN, $KUBECTL_BIN; otherwise the cache
# filled by e2e/build-tools.sh.
set -euo pipefail
CLUSTER_DIR=
here=$(cd "$(dirname "$0")" && pwd)
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
API_HOST=127.0.0.1 # the API server's address (a real node's link address with --real-node)

die() { echo "cluster.sh: $*" >&2; exit 1; }

bin() { # name -> path
  local name=$1 var
  var=$(echo "$name" | tr 'a-z-' 'A-Z_')_BIN
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    echo "$KUBEBUILDER_ASSETS/$name"; return
  fi
  local cached
  cached=$(ls -d "${FLOTILLA_CACHE:-$HOME/.cache/flotilla}"/bin/k8s-* 2>/dev/null | sort | tail -n 1)
  if [ -n "$cached" ] && [ -x "$cached/$name" ]; then echo "$cached/$name"; return; fi
  die "no $name binary: run e2e/build-tools.sh (builds it from its Go module), or set $var or KUBEBUILDER_ASSETS"
}

free_ports() { # count -> ports, one per line, all bound at once so they differ
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_until() { # seconds, description, command...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out waiting for $what"
    dead=$(dead_components) && [ -z "$dead" ] || die "$dead exited while waiting for $what; see ${CLUSTER_DIR:-the}/$dead.log"
    sleep 0.2
  done
}

certs() { # dir
  local d=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=flotilla-e2e-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$d/apiserver.key" \
    -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc%s\nextendedKeyUsage=serverAuth\n' \
    "${EXTRA_SANS:-}" >"$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -out "$d/apiserver.crt" -extfile "$d/apiserver.ext" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

kubeconfig() { # dir, port, token, user -> file content
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: flotilla-e2e
  cluster:
    server: https://$API_HOST:$2
    certificate-authority-data: $(base64 -w0 <"$1/ca.crt")
users:
- name: $4
  user:
    token: $3
contexts:
- name: flotilla-e2e
  context: {cluster: flotilla-e2e, user: $4, namespace: default}
current-context: flotilla-e2e
KC
}

dead_components() { # names of started components whose process is gone
  local name
  for name in $(cat "$CLUSTER_DIR/components" 2>/dev/null || echo "${components[@]}"); do
    [ -f "$CLUSTER_DIR/$name.pid" ] || continue
    kill -0 "$(cat "$CLUSTER_DIR/$name.pid")" 2>/dev/null || { echo "$name"; return; }
  done
}

start() { # dir, component
  local d=$1 name=$2
  [ -f "$d/$name.cmd" ] || die "unknown component $name in $d"
  if [ -f "$d/$name.pid" ] && kill -0 "$(cat "$d/$name.pid")" 2>/dev/null; then return; fi
  # Own session so `down` can end the whole process group; clean env but PATH/HOME.
  setsid env -i PATH="$PATH" HOME="$HOME" bash -c "exec $(cat "$d/$name.cmd")" \
    >>"$d/$name.log" 2>&1 </dev/null &
  echo $! >"$d/$name.pid"
}

stop() { # dir, component
  local d=$1 name=$2 pid
  [ -f "$d/$name.pid" ] || return 0
  pid=$(cat "$d/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$d/$name.pid"
}

apiserver_ready() { # dir
  curl -sf --cacert "$1/ca.crt" -H "Authorization: Bearer $(cat "$1/admin.token")" \
    "https://$(cat "$1/apiserver.host" 2>/dev/null || echo 127.0.0.1):$(cat "$1/apiserver.port")/readyz" | grep -q ok
}

up() {
  local d=$1 real=${2:-}
  mkdir -p "$d" && d=$(cd "$d" && pwd)
  CLUSTER_DIR=$d
  [ ! -f "$d/kube-apiserver.pid" ] || die "$d already holds a control plane: run down first"
  command -v openssl >/dev/null || die "openssl missing: apt-get install openssl"
  local etcd apiserver kcm sched kwok
  etcd=$(bin etcd); apiserver=$(bin kube-apiserver); kcm=$(bin kube-controller-manager)
  sched=$(bin kube-scheduler); kwok=$(bin kwok)
  # kwok sends no heartbeats: without the node lifecycle controller nobody marks its nodes
  # NotReady; a real kubelet does, and that controller lifts the node's not-ready taint.
  local controllers='*,-nodeipam,-nodelifecycle'
  [ -z "$real" ] || controllers='*,-nodeipam'
  local service_cidr=10.96.0.0/16 apiserver_node_flags="--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none"
  if [ -n "$real" ]; then
    # The node's network first (link, bridge, routes for the pod and service CIDRs, filter
    # rules), so that nothing started later can send a pod or Service address anywhere else.
    node_check
    node_net_up "$d"
    # shellcheck disable=SC1091
    . "$d/node.env"
    API_HOST=$NODE_HOST_IP service_cidr=$NODE_SERVICE_CIDR
    EXTRA_SANS=",IP:$NODE_HOST_IP,IP:$NODE_SERVICE_IP"
    apiserver_node_flags="--bind-address=$NODE_HOST_IP --advertise-address=$NODE_HOST_IP \
      --kubelet-client-certificate=$d/kubelet-client.crt --kubelet-client-key=$d/kubelet-client.key \
      --kubelet-preferred-address-types=InternalIP"
    echo "etcd kube-apiserver kube-controller-manager kube-scheduler bootstrap-registry containerd coredns kubelet kube-proxy" >"$d/components"
  else
    echo "${components[*]}" >"$d/components"
  fi
  echo "$API_HOST" >"$d/apiserver.host"
  certs "$d"
  [ -z "$real" ] || node_certs "$d"
  local ports; mapfile -t ports < <(free_ports 6)
  local p_etcd=${ports[0]} p_peer=${ports[1]} p_api=${ports[2]} p_kcm=${ports[3]} p_sched=${ports[4]} p_kwok=${ports[5]}
  echo "$p_api" >"$d/apiserver.port"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$d/admin.token"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$d/system.token"
  {
    echo "$(cat "$d/admin.token"),admin,admin-uid,system:masters"
    echo "$(cat "$d/system.token"),system:kube-controller-manager,kcm-uid,system:masters"
    [ -z "$real" ] || node_tokens "$d"
  } >"$d/tokens.csv"
  kubeconfig "$d" "$p_api" "$(cat "$d/admin.token")" admin >"$d/kubeconfig"
  kubeconfig "$d" "$p_api" "$(cat "$d/system.token")" system >"$d/system.kubeconfig"
  mkdir -p "$d/etcd-data"
  echo "$etcd --name=default --data-dir=$d/etcd-data --unsafe-no-fsync \
    --listen-client-urls=http://127.0.0.1:$p_etcd --advertise-client-urls=http://127.0.0.1:$p_etcd \
    --listen-peer-urls=http://127.0.0.1:$p_peer --initial-advertise-peer-urls=http://127.0.0.1:$p_peer \
    --initial-cluster=default=http://127.0.0.1:$p_peer --log-level=warn" >"$d/etcd.cmd"
  echo "$apiserver --etcd-servers=http://127.0.0.1:$p_etcd $apiserver_node_flags --secure-port=$p_api --tls-cert-file=$d/apiserver.crt \
    --tls-private-key-file=$d/apiserver.key --client-ca-file=$d/ca.crt --token-auth-file=$d/tokens.csv \
    --authorization-mode=RBAC --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file=$d/sa.pub --service-account-signing-key-file=$d/sa.key \
    --service-cluster-ip-range=$service_cidr --allow-privileged=true --v=0" >"$d/kube-apiserver.cmd"
  echo "$kcm --kubeconfig=$d/system.kubeconfig --authentication-kubeconfig=$d/system.kubeconfig \
    --authorization-kubeconfig=$d/system.kubeconfig --bind-address=127.0.0.1 --secure-port=$p_kcm \
    --leader-elect=false --service-account-private-key-file=$d/sa.key --root-ca-file=$d/ca.crt \
    --controllers=$controllers --v=0" >"$d/kube-controller-manager.cmd"
  echo "$sched --kubeconfig=$d/system.kubeconfig --authentication-kubeconfig=$d/system.kubeconfig \
    --authorization-kubeconfig=$d/system.kubeconfig --bind-address=127.0.0.1 --secure-port=$p_sched \
    --leader-elect=false --v=0" >"$d/kube-scheduler.cmd"
  echo "$kwok --kubeconfig=$d/system.kubeconfig --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --config=$here/kwok-stages.yaml --node-ip=127.0.0.1 --node-port=$p_kwok --cidr=10.244.0.0/16 --server-address=127.0.0.1:$p_kwok" >"$d/kwok.cmd"
  start "$d" etcd
  wait_until 60 etcd curl -sf "http://127.0.0.1:$p_etcd/health"
  start "$d" kube-apiserver
  wait_until 120 kube-apiserver apiserver_ready "$d"
  start "$d" kube-controller-manager
  start "$d" kube-scheduler
  local kubectl; kubectl=$(bin kubectl)
  if [ -n "$real" ]; then
    node_up "$d" "$p_api"
    wait_until 120 "the default ServiceAccount" \
      "$kubectl" --kubeconfig="$d/kubeconfig" get serviceaccount default -n default
    echo "export KUBECONFIG=$d/kubeconfig"
    return
  fi
  start "$d" kwok
  for n in 1 2 3; do
    "$kubectl" --kubeconfig="$d/kubeconfig" apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$n
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$n, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec: {}
NODE
  done
  wait_until 120 "kwok to make the nodes Ready" \
    "$kubectl" --kubeconfig="$d/kubeconfig" wait --for=condition=Ready node --all --timeout=1s
  # Node registration adds the not-ready taint; with no nodelifecycle controller (kwok sends
  # no heartbeats) nobody would lift it once kwok reports the nodes Ready.
  "$kubectl" --kubeconfig="$d/kubeconfig" taint nodes --all node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
  wait_until 120 "the default ServiceAccount" \
    "$kubectl" --kubeconfig="$d/kubeconfig" get serviceaccount default -n default
  echo "export KUBECONFIG=$d/kubeconfig"
}

down() {
  local d=$1 i names
  [ -d "$d" ] || return 0
  d=$(cd "$d" && pwd)
  read -r -a names <"$d/components" 2>/dev/null || names=("${components[@]}")
  [ ! -f "$d/node.env" ] || node_stop_workloads "$d"
  for ((i=${#names[@]}-1; i>=0; i--)); do stop "$d" "${names[$i]}"; done
  [ ! -f "$d/node.env" ] || node_down "$d"
}

# shellcheck source=e2e/node.sh
. "$here/node.sh"

cmd=${1:-}; dir=${2:-}
if [ "$cmd" = bin ]; then bin "${2:?name}"; exit; fi
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 up DIR [--real-node] | down DIR | stop|start DIR COMPONENT | image DIR operator BIN"
case "$cmd" in
  up) real=
      if [ "${3:-}" = --real-node ] || [ "${FLOTILLA_REAL_NODE:-}" = 1 ]; then real=1
      elif [ -n "${3:-}" ]; then die "unknown option ${3}"; fi
      up "$dir" "$real" ;;
  down) down "$dir" ;;
  image) d=$(cd "$dir" && pwd)
         [ -f "$d/node.env" ] || die "$d has no real node (up DIR --real-node)"
         [ "${3:-}" = operator ] || die "usage: $0 image DIR operator BIN"
         node_operator_image "$d" "$(cd "$(dirname "${4:?flotilla binary}")" && pwd)/$(basename "$4")" ;;
  stop) stop "$(cd "$dir" && pwd)" "${3:?component}" ;;
  start) CLUSTER_DIR=$(cd "$dir" && pwd); start "$CLUSTER_DIR" "${3:?component}"
         [ "${3}" != kube-apiserver ] || wait_until 120 kube-apiserver apiserver_ready "$(cd "$dir" && pwd)" ;;
  *) die "unknown command $cmd" ;;
esac
