# A real node for e2e/cluster.sh (sourced; `up DIR --real-node`): containerd + runc, kubelet,
# kube-proxy (iptables mode) and bridge CNI, all inside a network namespace of its own, so that
# its iptables rules (kube-proxy's KUBE-* chains), its bridge and its routes never touch the
# host's, and several clusters side by side do not share any of them.
#
# Network of cluster slot N (0..99, the first free one; see DIR/node.env):
#   host  flt<N>h 10.233.N.1/30 ==veth== flt<N>n 10.233.N.2/30  netns flotilla-<N> (node IP)
#   netns bridge flt<N>br 10.234.N.1/24: pod addresses 10.234.N.0/24 (host-local IPAM)
#   Service CIDR 10.235.N.0/24 (the `kubernetes` Service: 10.235.N.1 -> API server on 10.233.N.1)
# The host routes the pod and Service CIDRs to the node link and the netns routes the Service
# CIDR onto its bridge before anything starts (an unrouted ClusterIP would leave by the default
# route); the netns has no default route, and the host drops anything it would forward from or
# to the node link: nothing from a pod or Service address goes anywhere but the host and the node.
# The API server binds and advertises 10.233.N.1 (pods reach it through the `kubernetes` Service).
# Cluster DNS: CoreDNS (its `kubernetes` plugin) on the bridge address 10.234.N.1:53, the
# kubelet's clusterDNS, so pods resolve `<service>.<namespace>.svc` as in any cluster.
# Images: a bootstrap registry (Debian's docker-registry) on the node's own loopback,
# 127.0.0.1:5000 inside the netns, holds the images of e2e/node-images.sh, pushed there with
# `flotilla copy oci:...`; containerd resolves `flotilla.local/...` to it (certs.d hosts.toml),
# so every image a pod runs is a real pull. `cluster.sh image DIR operator BIN` adds the operator.
#
# Containment: the kubelet's cgroupRoot is <this harness's memory cgroup>/flotilla-node-<N>
# (cgroupsPerQOS on), containerd, kubelet, CNI and pod state live under DIR; the few paths the
# programs insist on (/run/containerd/s, /var/lib/cni/results, /var/log/containers) hold only
# entries of this node, which `down` removes, with the directories when left empty.

node_bin() { # name -> path in the cache (containerd-*, runc-*) or $NAME_BIN
  local name=$1 dir=$2 var
  var=$(echo "$name" | tr 'a-z-' 'A-Z_')_BIN
  if [ -n "${!var:-}" ]; then
    [ -x "${!var}" ] || die "$var=${!var} is not an executable"
    echo "${!var}"; return
  fi
  local cached
  cached=$(ls -d "${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin/$dir"-v* 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$cached" ] && [ -x "$cached/$name" ]; then echo "$cached/$name"; return; fi
  die "no $name binary for a real node: run e2e/build-tools.sh (builds it from its Go module), or set $var"
}

node_check() {
  [ "$(id -u)" = 0 ] || die "a real node needs root (network namespace, cgroups, mounts)"
  local t
  for t in ip nsenter iptables ip6tables python3 mountpoint; do
    command -v "$t" >/dev/null || die "$t missing: apt-get install iproute2 util-linux iptables python3"
  done
  for t in bridge host-local loopback; do
    [ -x "/usr/lib/cni/$t" ] || die "CNI plugin $t missing: apt-get install containernetworking-plugins"
  done
  [ -x /bin/busybox ] || die "no busybox for the pause image: apt-get install busybox-static"
  [ -x /usr/bin/docker-registry ] || die "no docker-registry for the registry image: apt-get install docker-registry"
  bin kubelet >/dev/null; bin kube-proxy >/dev/null
  node_bin containerd containerd >/dev/null; node_bin runc runc >/dev/null
  coredns_bin >/dev/null; flotilla_bin >/dev/null
}

coredns_bin() { # -> the CoreDNS build of e2e/tools/coredns's current sources ($COREDNS_BIN)
  "$here/tool-path.sh" coredns 2>/dev/null \
    || die "no coredns for a real node's cluster DNS: run e2e/build-tools.sh, or set COREDNS_BIN"
}

flotilla_bin() { # -> the flotilla binary that pushes images into the bootstrap registry
  local path=${FLOTILLA_BIN:-$here/../target/debug/flotilla}
  [ -x "$path" ] || die "no flotilla binary at $path to push the node's images: cargo build --bin flotilla, or set FLOTILLA_BIN"
  echo "$path"
}

nsx() { nsenter --net="/run/netns/$NODE_NETNS" -- "$@"; }

node_net_up() { # dir: claims a free slot, sets up link, netns, bridge, routes, filter rules
  local d=$1 n
  for n in $(seq 0 99); do
    # `ip link add` fails if the name exists: claiming the slot is atomic across clusters.
    if ip link add "flt${n}h" type veth peer name "flt${n}n" 2>/dev/null; then break; fi
    [ "$n" -lt 99 ] || die "no free node slot (flt0h..flt99h all exist)"
  done
  local cg
  cg=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
  cat >"$d/node.env" <<ENV
NODE_SLOT=$n
NODE_NAME=flotilla-node-$n
NODE_NETNS=flotilla-$n
NODE_HOST_IF=flt${n}h
NODE_IF=flt${n}n
NODE_BRIDGE=flt${n}br
NODE_HOST_IP=10.233.$n.1
NODE_IP=10.233.$n.2
NODE_POD_CIDR=10.234.$n.0/24
NODE_POD_GW=10.234.$n.1
NODE_SERVICE_CIDR=10.235.$n.0/24
NODE_SERVICE_IP=10.235.$n.1
NODE_CGROUP=${cg%/}/flotilla-node-$n
ENV
  # shellcheck disable=SC1091
  . "$d/node.env"
  # The kubelet's cgroupRoot in every v1 hierarchy.
  local h
  : >"$d/node.cgroups-made"
  for h in /sys/fs/cgroup/*/; do
    [ "$(stat -fc %T "$h")" = cgroupfs ] || continue
    local acc=
    for part in $(echo "$NODE_CGROUP" | tr / ' '); do
      acc=$acc/$part
      [ ! -d "${h%/}$acc" ] || continue
      # The kubelet refuses a cgroupRoot missing in any hierarchy: make it, recording what was
      # made. A new cpuset has no CPUs or memory nodes until given its parent's.
      mkdir "${h%/}$acc"
      echo "${h%/}$acc" >>"$d/node.cgroups-made"
      if [ -f "${h%/}$acc/cpuset.cpus" ]; then
        cat "$(dirname "${h%/}$acc")/cpuset.cpus" >"${h%/}$acc/cpuset.cpus"
        cat "$(dirname "${h%/}$acc")/cpuset.mems" >"${h%/}$acc/cpuset.mems"
      fi
    done
  done
  ip netns add "$NODE_NETNS"
  ip link set "$NODE_IF" netns "$NODE_NETNS"
  sysctl -qw "net.ipv6.conf.$NODE_HOST_IF.disable_ipv6=1"
  ip addr add "$NODE_HOST_IP/30" dev "$NODE_HOST_IF"
  ip link set "$NODE_HOST_IF" up
  # Host: nothing from or to the node link is forwarded (the host only talks to it itself).
  iptables -I FORWARD 1 -i "$NODE_HOST_IF" -j DROP -m comment --comment "flotilla node $n"
  iptables -I FORWARD 1 -o "$NODE_HOST_IF" -j DROP -m comment --comment "flotilla node $n"
  ip route add "$NODE_POD_CIDR" via "$NODE_IP" dev "$NODE_HOST_IF"
  ip route add "$NODE_SERVICE_CIDR" via "$NODE_IP" dev "$NODE_HOST_IF"
  # Node netns: loopback, link, the pods' bridge (the CNI bridge plugin reuses it), the Service
  # CIDR onto the bridge, forwarding only between bridge and link.
  nsx ip link set lo up
  nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  nsx ip addr add "$NODE_IP/30" dev "$NODE_IF"
  nsx ip link set "$NODE_IF" up
  nsx ip link add "$NODE_BRIDGE" type bridge
  nsx ip addr add "$NODE_POD_GW/24" dev "$NODE_BRIDGE"
  nsx ip link set "$NODE_BRIDGE" up
  nsx ip route add "$NODE_SERVICE_CIDR" dev "$NODE_BRIDGE"
  nsx sysctl -qw net.ipv4.ip_forward=1
  nsx sysctl -qw net.bridge.bridge-nf-call-iptables=1
  nsx iptables -P FORWARD DROP
  nsx iptables -A FORWARD -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j ACCEPT
  nsx iptables -A FORWARD -i "$NODE_BRIDGE" -o "$NODE_IF" -j ACCEPT
  nsx iptables -A FORWARD -i "$NODE_IF" -o "$NODE_BRIDGE" -j ACCEPT
}

node_certs() { # dir: the API server's client certificate towards the kubelet
  local d=$1
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$d/kubelet-client.key" -out "$d/kubelet-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$d/kubelet-client.ext"
  openssl x509 -req -in "$d/kubelet-client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -out "$d/kubelet-client.crt" -extfile "$d/kubelet-client.ext" 2>/dev/null
}

node_tokens() { # dir -> lines of tokens.csv for the kubelet and kube-proxy
  local d=$1
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$d/kubelet.token"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$d/kube-proxy.token"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$d/coredns.token"
  echo "$(cat "$d/kubelet.token"),system:node:$NODE_NAME,node-uid,system:nodes"
  echo "$(cat "$d/kube-proxy.token"),system:kube-proxy,kube-proxy-uid,"
  echo "$(cat "$d/coredns.token"),system:coredns,coredns-uid,"
}

node_push() { # dir, name, layout: pushes an image layout into the bootstrap registry
  local d=$1 name=$2 layout=$3 path=${2#flotilla.local/}
  nsx "$(flotilla_bin)" copy --progress never --dest-insecure \
    "oci:$layout:${path##*:}" "http://127.0.0.1:5000/$path" >/dev/null \
    || die "pushing $name into the bootstrap registry failed"
}

node_images() { # dir: builds the pause and registry images into the bootstrap registry
  local d=$1 name layout
  "$here/node-images.sh" "$d/images" >"$d/images.list"
  while read -r name layout; do node_push "$d" "$name" "$layout"; done <"$d/images.list"
  awk '$1 ~ /distribution/ {print $1}' "$d/images.list" >"$d/registry.image"
}

node_operator_image() { # dir, flotilla binary -> prints the reference of its operator image
  local d=$1 name layout
  # shellcheck disable=SC1091
  . "$d/node.env"
  read -r name layout < <("$here/node-images.sh" "$d/images" operator "$2")
  node_push "$d" "$name" "$layout"
  echo "$name"
}

node_up() { # dir, API server port
  local d=$1 p_api=$2
  local kubelet proxy containerd runc ctr kubectl
  kubelet=$(bin kubelet); proxy=$(bin kube-proxy); kubectl=$(bin kubectl)
  containerd=$(node_bin containerd containerd); runc=$(node_bin runc runc)
  ctr=$(node_bin ctr containerd)
  mkdir -p "$d/containerd/certs.d/flotilla.local" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" \
    "$d/pod-logs" "$d/bootstrap/data"
  kubeconfig "$d" "$p_api" "$(cat "$d/kubelet.token")" "system:node:$NODE_NAME" >"$d/kubelet.kubeconfig"
  kubeconfig "$d" "$p_api" "$(cat "$d/kube-proxy.token")" system:kube-proxy >"$d/kube-proxy.kubeconfig"
  kubeconfig "$d" "$p_api" "$(cat "$d/coredns.token")" system:coredns >"$d/coredns.kubeconfig"
  "$kubectl" --kubeconfig="$d/kubeconfig" create clusterrolebinding flotilla-e2e-nodes \
    --clusterrole=system:node --group=system:nodes >/dev/null
  # What CoreDNS's kubernetes plugin reads, and nothing more.
  "$kubectl" --kubeconfig="$d/kubeconfig" apply -f - >/dev/null <<RBAC
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "flotilla-e2e:coredns"}
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "flotilla-e2e:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "flotilla-e2e:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
RBAC
  # The bootstrap registry: only the node's own loopback reaches it.
  cat >"$d/bootstrap/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $d/bootstrap/data}}
http: {addr: "127.0.0.1:5000", debug: {addr: "127.0.0.1:5001"}}
YAML
  cat >"$d/containerd/certs.d/flotilla.local/hosts.toml" <<TOML
server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
TOML
  cat >"$d/Corefile" <<DNS
.:53 {
  bind $NODE_POD_GW
  errors
  health 127.0.0.1:8053
  ready 127.0.0.1:8181
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $d/coredns.kubeconfig flotilla-e2e
    pods insecure
  }
  cache 5
}
DNS
  cat >"$d/cni/net.d/10-flotilla.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "flt$NODE_SLOT", "plugins": [
  {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam",
            "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_POD_GW"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}]}
CNI
  cat >"$d/containerd/config.toml" <<TOML
version = 3
root = "$d/containerd/root"
state = "$d/containerd/state"
# Plugins that would write outside DIR (/opt/containerd, /var/run/nri) or are not needed.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/containerd/containerd.sock"
[ttrpc]
  address = "$d/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.cri.v1.runtime"]
  # These VMs lack CAP_SYS_RESOURCE: negative OOM scores (pause: -998) are refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$d/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$runc"
        Root = "$d/containerd/runc"
        SystemdCgroup = false
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "flotilla.local/pause:1"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "$d/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
  cat >"$d/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$d/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $NODE_CGROUP
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
# Preloaded images are never collected; no eviction on a shared disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "0%", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%"}
podLogsDir: $d/pod-logs
volumePluginDir: $d/kubelet/volume-plugins
resolvConf: ""
clusterDomain: cluster.local
clusterDNS: [$NODE_POD_GW]
serializeImagePulls: false
registerNode: true
YAML
  echo "nsenter --net=/run/netns/$NODE_NETNS -- /usr/bin/docker-registry serve $d/bootstrap/config.yml" \
    >"$d/bootstrap-registry.cmd"
  echo "nsenter --net=/run/netns/$NODE_NETNS -- $(coredns_bin) -conf $d/Corefile" >"$d/coredns.cmd"
  echo "env PATH=$(dirname "$containerd"):$PATH nsenter --net=/run/netns/$NODE_NETNS -- \
    $containerd --config $d/containerd/config.toml --log-level warn" >"$d/containerd.cmd"
  echo "nsenter --net=/run/netns/$NODE_NETNS -- $kubelet --config=$d/kubelet/config.yaml \
    --kubeconfig=$d/kubelet.kubeconfig --root-dir=$d/kubelet --cert-dir=$d/kubelet/pki \
    --hostname-override=$NODE_NAME --node-ip=$NODE_IP --v=1" >"$d/kubelet.cmd"
  echo "nsenter --net=/run/netns/$NODE_NETNS -- $proxy --kubeconfig=$d/kube-proxy.kubeconfig \
    --hostname-override=$NODE_NAME --bind-address=$NODE_IP --proxy-mode=iptables \
    --cluster-cidr=$NODE_POD_CIDR --healthz-bind-address=127.0.0.1:10256 \
    --metrics-bind-address=127.0.0.1:10249 --conntrack-max-per-core=0 \
    --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 --v=1" >"$d/kube-proxy.cmd"
  start "$d" bootstrap-registry
  wait_until 60 "the bootstrap registry" nsx curl -sf http://127.0.0.1:5001/debug/health
  node_images "$d"
  start "$d" containerd
  wait_until 60 containerd "$ctr" --address "$d/containerd/containerd.sock" version
  start "$d" coredns
  wait_until 60 "CoreDNS ready" nsx curl -sf http://127.0.0.1:8181/ready
  start "$d" kubelet
  start "$d" kube-proxy
  wait_until 180 "node $NODE_NAME Ready" \
    "$kubectl" --kubeconfig="$d/kubeconfig" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
  wait_until 120 "the node lifecycle controller to lift $NODE_NAME's taints" node_untainted "$d" "$kubectl"
}

node_untainted() { # dir, kubectl
  [ -z "$("$2" --kubeconfig="$1/kubeconfig" get "node/$NODE_NAME" -o 'jsonpath={.spec.taints}')" ]
}

node_stop_workloads() { # dir: stops the kubelet (so nothing restarts), kills every container
  local d=$1 pid
  # shellcheck disable=SC1091
  . "$d/node.env"
  stop "$d" kubelet
  # Every container process sits in the node's cgroups; the shims, in the harness's, go in
  # node_down once containerd is stopped.
  if [ -d "/sys/fs/cgroup/memory$NODE_CGROUP" ]; then
    for pid in $(find "/sys/fs/cgroup/memory$NODE_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  fi
}

node_pids() { # dir -> pids of processes left by this node: in its cgroups, or shims of its containerd
  local d=$1 f
  if [ -d "/sys/fs/cgroup/memory$NODE_CGROUP" ]; then
    find "/sys/fs/cgroup/memory$NODE_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null
  fi
  for f in /proc/[0-9]*/cmdline; do
    { tr '\0' ' ' <"$f" | grep -qF -- "-address $d/containerd/containerd.sock" \
      && basename "$(dirname "$f")"; } 2>/dev/null || true
  done
}

node_down() { # dir: removes processes, mounts, netns, link, routes, rules, cgroups, state
  local d=$1 pid m
  # shellcheck disable=SC1091
  . "$d/node.env"
  # Shim sockets (under /run/containerd/s, named by a hash) bound in this node's netns, and
  # the sandboxes whose CNI results libcni caches in /var/lib/cni/results: recorded before the
  # processes go.
  local sockets=() sandboxes=()
  if [ -e "/run/netns/$NODE_NETNS" ]; then
    mapfile -t sockets < <(nsx cat /proc/net/unix | awk '$NF ~ /^\/run\/containerd\/s\// {print $NF}' | sort -u)
  fi
  [ ! -d "$d/containerd/root/io.containerd.grpc.v1.cri/sandboxes" ] \
    || mapfile -t sandboxes < <(ls "$d/containerd/root/io.containerd.grpc.v1.cri/sandboxes")
  for pid in $(node_pids "$d" | sort -u); do kill -KILL "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 30)) left
  while left=$(node_pids "$d" | sort -u | while read -r pid; do
      # a zombie (its parent has not reaped it yet) is gone for our purposes
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] || echo "$pid"; done) && [ -n "$left" ]; do
    [ $SECONDS -lt $deadline ] || { echo "cluster.sh: processes of the node left: $left" >&2; break; }
    sleep 0.1
  done
  for m in "${sockets[@]}"; do rm -f "$m"; done
  for m in "${sandboxes[@]}"; do rm -f /var/lib/cni/results/*-"$m"-*; done
  # Mounts under DIR (rootfs overlays, Secret tmpfs, pod netns), deepest first.
  awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  ip netns del "$NODE_NETNS" 2>/dev/null || true
  ip link del "$NODE_HOST_IF" 2>/dev/null || true # also removes the routes via it
  while iptables -D FORWARD -i "$NODE_HOST_IF" -j DROP -m comment --comment "flotilla node $NODE_SLOT" 2>/dev/null; do :; done
  while iptables -D FORWARD -o "$NODE_HOST_IF" -j DROP -m comment --comment "flotilla node $NODE_SLOT" 2>/dev/null; do :; done
  # Cgroups the kubelet made (deepest first), then the parents this node had to create.
  local h
  for h in /sys/fs/cgroup/*/; do
    [ ! -d "${h%/}$NODE_CGROUP" ] || find "${h%/}$NODE_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  [ ! -f "$d/node.cgroups-made" ] || sort -r "$d/node.cgroups-made" | while read -r m; do
    rmdir "$m" 2>/dev/null || true
  done
  # Entries of this node in the paths the programs insist on.
  rm -f /var/lib/cni/results/"flt$NODE_SLOT"-* 2>/dev/null || true
  find /var/log/containers -maxdepth 1 -type l -lname "$d/*" -delete 2>/dev/null || true
  for m in /var/lib/cni/results /var/lib/cni /var/log/containers /run/containerd/s /run/containerd; do
    rmdir "$m" 2>/dev/null || true
  done
  rm -rf "$d/containerd" "$d/kubelet" "$d/cni" "$d/pod-logs" "$d/images" "$d/bootstrap"
  rm -f "$d/node.env"
}
