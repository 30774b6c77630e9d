#!/usr/bin/env python3
"""Builds a one-layer OCI image without a container engine: an OCI image layout directory
(oci-layout, index.json, blobs/sha256/...) and, with --archive, the same as a tar that
`ctr images import` and `flotilla copy oci:DIR` read.

  oci-image.py --name flotilla.local/pause:1 --layout DIR [--archive FILE.tar]
      --entrypoint '["/bin/sleep"]' --cmd '["infinity"]' --user 65532
      --file SRC:DST[:MODE] ... --dir DST ... --symlink DST:TARGET ... --env K=V ...

Files are copied with their content (symlinks in SRC are followed, so a library's real file is
stored), owned by root, mtime 0: the same inputs give the same digests.
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def tar_info(name, kind, mode, size=0, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, target
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def layer(files, dirs, symlinks):
    out = io.BytesIO()
    made = set()
    entries = []  # (path in image, kind, payload)
    for d in dirs:
        entries.append((d.strip("/"), "dir", None))
    for spec in files:
        parts = spec.split(":")
        src, dst = parts[0], parts[1]
        mode = int(parts[2], 8) if len(parts) > 2 else (os.stat(src).st_mode & 0o777)
        entries.append((dst.strip("/"), "file", (src, mode)))
    for spec in symlinks:
        dst, target = spec.split(":", 1)
        entries.append((dst.strip("/"), "link", target))
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        def parents(path):
            acc = []
            for p in path.split("/")[:-1]:
                acc.append(p)
                d = "/".join(acc)
                if d not in made:
                    made.add(d)
                    t.addfile(tar_info(d + "/", tarfile.DIRTYPE, 0o755))
        for path, kind, payload in sorted(entries, key=lambda e: e[0]):
            parents(path)
            if kind == "dir":
                if path not in made:
                    made.add(path)
                    mode = 0o1777 if path in ("tmp", "var/tmp") else 0o755
                    t.addfile(tar_info(path + "/", tarfile.DIRTYPE, mode))
            elif kind == "file":
                src, mode = payload
                with open(src, "rb") as f:
                    data = f.read()
                t.addfile(tar_info(path, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
            else:
                t.addfile(tar_info(path, tarfile.SYMTYPE, 0o777, 0, payload))
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True, help="reference, e.g. flotilla.local/pause:1")
    ap.add_argument("--layout", required=True)
    ap.add_argument("--archive")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--user", default="")
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    ap.add_argument("--symlink", action="append", default=[])
    a = ap.parse_args()

    if os.path.exists(a.layout):
        shutil.rmtree(a.layout)
    os.makedirs(os.path.join(a.layout, "blobs", "sha256"))
    tar = layer(a.file, a.dir, a.symlink)
    layer_digest, layer_size = blob(a.layout, tar)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "User": a.user,
            "WorkingDir": a.workdir,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] + a.env,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "e2e/oci-image.py"}],
    }
    config_digest, config_size = blob(a.layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }
    m_digest, m_size = blob(a.layout, json.dumps(manifest, sort_keys=True).encode())
    tag = a.name.rsplit(":", 1)[1] if ":" in a.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_digest, "size": m_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": a.name,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    with open(os.path.join(a.layout, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True)
    with open(os.path.join(a.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    if a.archive:
        with tarfile.open(a.archive, "w") as t:
            for root, _, names in os.walk(a.layout):
                for n in sorted(names):
                    p = os.path.join(root, n)
                    t.add(p, arcname=os.path.relpath(p, a.layout))
    print(m_digest)


if __name__ == "__main__":
    sys.exit(main())
