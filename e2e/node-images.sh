#!/usr/bin/env bash
# Builds the images a real node runs, without a container engine, as OCI image layouts
# under OUT (e2e/oci-image.py):
#   pause:        flotilla.local/pause:1 (Debian's static busybox running `sleep infinity`)
#   distribution: flotilla.local/distribution:<Debian version> (Debian's docker-registry, with
#                 the real files of its libc and loader, its default config; entrypoint
#                 `docker-registry serve`, so the operator's argument, a config path, completes it;
#                 `registry` on PATH too, the name the official image has and GC Jobs run)
#   operator:     flotilla.local/flotilla:<binary's digest> (only with `operator BIN`: the given
#                 `flotilla` binary and the real files of its libc, as the Dockerfile's image
#                 has it: /usr/local/bin/flotilla, user 65532:65532, entrypoint flotilla, cmd run,
#                 CA roots at /etc/ssl/certs, passwd/group naming nonroot, an empty /tmp)
# Prints "NAME LAYOUT" per image.
#
#   e2e/node-images.sh OUT                 pause and distribution
#   e2e/node-images.sh OUT operator BIN    the operator image of BIN
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: node-images.sh OUT [operator BIN]}
mkdir -p "$out"
die() { echo "node-images.sh: $*" >&2; exit 1; }

build() { # name, short, args...
  local name=$1 short=$2; shift 2
  python3 "$here/oci-image.py" --name "$name" --layout "$out/$short" "$@" >/dev/null
  echo "$name $out/$short"
}

libs_of() { # binary -> --file arguments storing the real files behind its libraries' paths
  local path
  ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | sort -u | while read -r path; do
    echo "--file"; echo "$(readlink -f "$path"):$path"
  done
}

if [ "${2:-}" = operator ]; then
  bin=${3:?usage: node-images.sh OUT operator BIN}
  [ -x "$bin" ] || die "$bin is not an executable flotilla binary"
  etc=$out/operator-etc
  mkdir -p "$etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$etc/group"
  certs=()
  [ ! -f /etc/ssl/certs/ca-certificates.crt ] \
    || certs=(--file /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:644)
  mapfile -t libs < <(libs_of "$bin")
  tag=$(sha256sum "$bin" | cut -c1-16)
  build "flotilla.local/flotilla:$tag" operator \
    --file "$bin:/usr/local/bin/flotilla:755" "${libs[@]}" "${certs[@]}" \
    --file "$etc/passwd:/etc/passwd:644" --file "$etc/group:/etc/group:644" \
    --dir tmp --user 65532:65532 \
    --entrypoint '["/usr/local/bin/flotilla"]' --cmd '["run"]'
  exit
fi
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
  || die "no static busybox for the pause image: apt-get install busybox-static"
[ -x /usr/bin/docker-registry ] || die "no /usr/bin/docker-registry: apt-get install docker-registry"

build flotilla.local/pause:1 pause --file /bin/busybox:/bin/busybox:755 \
  --symlink bin/sleep:busybox --entrypoint '["/bin/sleep"]' --cmd '["infinity"]' --user 65535

# The registry binary is dynamically linked: store the real files behind its libraries'
# paths (on Debian /lib64/ld-linux-x86-64.so.2 is a symlink), at the paths it asks for.
mapfile -t libs < <(libs_of /usr/bin/docker-registry)
version=$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null | sed 's/[+~].*//' || true)
[ -n "$version" ] || version=2.8
config=()
[ -f /etc/docker/registry/config.yml ] && config=(--file /etc/docker/registry/config.yml:/etc/docker/registry/config.yml:644)
build "flotilla.local/distribution:$version" distribution \
  --file /usr/bin/docker-registry:/usr/bin/docker-registry:755 "${libs[@]}" "${config[@]}" \
  --symlink usr/bin/registry:docker-registry \
  --dir tmp --dir var/lib/docker-registry \
  --entrypoint '["/usr/bin/docker-registry","serve"]' --cmd '["/etc/docker/registry/config.yml"]'
