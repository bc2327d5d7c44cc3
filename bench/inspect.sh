#!/usr/bin/env bash
# `airgap-check inspect` on a cached buildpack zip of about 1 GiB in the packager's shape: 8
# dependencies of 128 MiB of random data each, deflated, at dependencies/<md5 of the uri>/<name>,
# with a manifest.yml that names them with their sha256. Made under $TMPDIR and removed after.
#
#   bench/inspect.sh                 8 x 128 MiB, 3 runs
#   DEPS=4 MIB=64 RUNS=5 bench/inspect.sh
#
# Prints each run's wall time and peak RSS (GNU time), and the hashing time inspect reports.
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS=${DEPS:-8}
MIB=${MIB:-128}
RUNS=${RUNS:-3}

command -v /usr/bin/time >/dev/null || { echo "error: GNU time not found: run scripts/install-deps.sh bench" >&2; exit 2; }
cargo build --release --quiet --bin airgap-check
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
zip="$dir/bench_buildpack-cached-cflinuxfs4-v1.0.0.zip"
DEPS=$DEPS MIB=$MIB ZIP=$zip python3 - <<'PY'
import hashlib, os, zipfile
n, size, out = int(os.environ["DEPS"]), int(os.environ["MIB"]) << 20, os.environ["ZIP"]
entries = []
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    z.writestr("bin/supply", "#!/bin/sh\n")
    for i in range(n):
        uri = f"https://deps.example.org/big/big-{i}.tgz"
        path = f"dependencies/{hashlib.md5(uri.encode()).hexdigest()}/big-{i}.tgz"
        h = hashlib.sha256()
        with z.open(path, "w", force_zip64=True) as f:
            left = size
            while left:
                b = os.urandom(min(left, 4 << 20))
                h.update(b)
                f.write(b)
                left -= len(b)
        entries.append(f"- name: big{i}\n  version: 1.0.{i}\n  uri: {uri}\n  sha256: {h.hexdigest()}\n  file: {path}\n")
    z.writestr("manifest.yml", "language: bench\nstack: cflinuxfs4\ndependencies:\n" + "".join(entries))
PY
ls -l "$zip"
cat "$zip" > /dev/null # from the page cache, as a CI runner that just built it would read it
for _ in $(seq "$RUNS"); do
  /usr/bin/time -f "wall %e s, peak RSS %M KiB" target/release/airgap-check inspect --buildpack "$zip" | grep -E "hashed|PASS|FAIL"
done
