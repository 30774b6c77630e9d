#!/usr/bin/env bash
# Installs the Debian packages Flotilla's local cluster and tests need, when missing: the
# Distribution registry, skopeo, redis, openssl, curl, nginx (the reverse proxy of
# e2e_ingress); for the real node the CNI plugins, a static busybox (pause image), libseccomp
# (runc's build), iptables and iproute2.
# Used by .ci/run and e2e/quickstart.sh. Needs root (apt-get).
set -euo pipefail
need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need_apt+=(busybox-static)
pkg-config --exists libseccomp 2>/dev/null || need_apt+=(libseccomp-dev pkg-config)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
