#!/usr/bin/env bash
# Builds the images a real node runs, without a container engine, as OCI layouts and archives
# under OUT (e2e/oci-image.py):
#   pause:        flotilla.local/pause:1 (Debian's static busybox running `sleep infinity`)
#   distribution: flotilla.local/distribution:<Debian version> (Debian's docker-registry, with
#                 the real files of its libc and loader, its default config; entrypoint
#                 `docker-registry serve`, so the operator's argument, a config path, completes it)
# Prints "NAME ARCHIVE LAYOUT" per image.
#
#   e2e/node-images.sh OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: node-images.sh OUT}
mkdir -p "$out"
die() { echo "node-images.sh: $*" >&2; exit 1; }
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
  || die "no static busybox for the pause image: apt-get install busybox-static"
[ -x /usr/bin/docker-registry ] || die "no /usr/bin/docker-registry: apt-get install docker-registry"

build() { # name, short, args...
  local name=$1 short=$2; shift 2
  python3 "$here/oci-image.py" --name "$name" --layout "$out/$short" --archive "$out/$short.tar" "$@" >/dev/null
  echo "$name $out/$short.tar $out/$short"
}

build flotilla.local/pause:1 pause --file /bin/busybox:/bin/busybox:755 \
  --symlink bin/sleep:busybox --entrypoint '["/bin/sleep"]' --cmd '["infinity"]' --user 65535

# The registry binary is dynamically linked: store the real files behind its libraries'
# paths (on Debian /lib64/ld-linux-x86-64.so.2 is a symlink), at the paths it asks for.
libs=()
while read -r path; do
  libs+=(--file "$(readlink -f "$path"):$path")
done < <(ldd /usr/bin/docker-registry | grep -o '/[^ ]*' | sort -u)
version=$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null | sed 's/[+~].*//' || true)
[ -n "$version" ] || version=2.8
config=()
[ -f /etc/docker/registry/config.yml ] && config=(--file /etc/docker/registry/config.yml:/etc/docker/registry/config.yml:644)
build "flotilla.local/distribution:$version" distribution \
  --file /usr/bin/docker-registry:/usr/bin/docker-registry:755 "${libs[@]}" "${config[@]}" \
  --dir tmp --dir var/lib/docker-registry \
  --entrypoint '["/usr/bin/docker-registry","serve"]' --cmd '["/etc/docker/registry/config.yml"]'
